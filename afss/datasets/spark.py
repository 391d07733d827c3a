"""SPARK-2024 stream 1 (spacecraft semantic segmentation), and SPARK-2022 boxes as a fallback.

Layout (see DATASETS.md)::

    <root>/train.csv  val.csv                 columns: Image name, Mask name, Class, Bounding box
    <root>/images/<Class>/<split>/image_00001_img.jpg
    <root>/mask/<Class>/<split>/image_00001_layer.jpg   RGB JPEG: red body, blue panels, black background

Columns are matched by name, ignoring case, spaces and punctuation (``Image name`` = ``image_name``).
``Image name`` and ``Class`` are required; ``Mask name`` defaults to the image name with ``_img``
replaced by ``_layer``; ``Bounding box`` ``"(x_min, y_min, x_max, y_max)"`` is only a cross-check
(a warning when it differs from the mask extents by more than ``box_tolerance_px``): the stored box is
the mask's tight extents. One instance per image = body ∪ panels, with both part masks kept.

Mask colours are assigned to the nearest of black, red (255, 0, 0) and blue (0, 0, 255). Green adds
the same amount to all three distances, so this reduces to: body = ``R >= 128 and R >= B``, panels =
``B >= 128 and B > R`` — robust to JPEG drift and coloured fringes. A one-channel mask counts as body.

A split without a CSV (the test split) is read from ``images/<Class>/<split>/`` or
``images/<split>/``: images without instances. A CSV in the SPARK-2022 form (``filename, class, bbox``
with bbox ``"[r_min, c_min, r_max, c_max]"``, rows first) gives boxes-only ground truth; its images
are looked for in ``<split>/``, ``images/<split>/``, ``<split>/images/`` and ``images/``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from afss.datasets.common import (
    GT_SOURCE,
    DatasetReader,
    empty_error,
    find_images,
    find_with_stem,
    gt_instance,
    image_size,
    norm_key,
    read_mask_pixels,
    relative_name,
    require_dir,
)
from afss.errors import AfssError
from afss.io.images import IMAGE_EXTENSIONS
from afss.types import ImageLabels, Instance

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
_WARN_FIRST = 3


@dataclass(frozen=True)
class _Row:
    image: Path
    split: str
    cls: str | None
    mask: Path | None = None
    csv_box: tuple[float, float, float, float] | None = None  # xyxy from the CSV
    boxes_only: bool = False  # SPARK-2022: the CSV box is the ground truth


def spark_mask_parts(mask_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a SPARK colour mask into body and panels.

    Args:
        mask_rgb: ``(H, W, 3)`` uint8 **RGB**, or ``(H, W)`` uint8 gray (all foreground is body).

    Returns:
        ``(body, panels)``: bool ``(H, W)`` arrays, disjoint.
    """
    if mask_rgb.ndim == 2:
        return mask_rgb >= 128, np.zeros(mask_rgb.shape, dtype=bool)
    r, b = mask_rgb[..., 0], mask_rgb[..., 2]
    body = (r >= 128) & (r >= b)
    panels = (b >= 128) & (b > r)
    return body, panels


def parse_box(text: str) -> tuple[float, ...] | None:
    """The numbers of ``"(397, 253, 653, 486)"`` or ``"[1, 2, 3, 4]"``; ``None`` unless exactly four."""
    nums = re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text or "")
    return tuple(float(v) for v in nums) if len(nums) == 4 else None


def _check_one_line(path: Path, line_no: int, rec: list[str]) -> None:
    """A cell holding a line break is a quote left open, which swallowed the rows after it."""
    if any("\n" in v or "\r" in v for v in rec):
        raise AfssError(f"{path}: line {line_no}: a cell runs over several lines (a quote left open?), which "
                        "takes in the rows after it")


def _cell(rec: list[str], cols: dict[str, int], key: str) -> str:
    i = cols.get(key)
    return rec[i].strip() if i is not None and i < len(rec) else ""


class SparkReader(DatasetReader):
    """SPARK-2024 stream 1 ground truth: one instance per image with ``body`` and ``panels`` parts.

    Args:
        root: the dataset folder holding ``train.csv``/``val.csv``, ``images/`` and ``mask/``.
        split: ``"train"``, ``"val"``, ``"test"`` or any ``<split>.csv``; default: every one of
            ``train.csv``, ``val.csv`` present.
        box_tolerance_px: allowed difference between the CSV box and the mask extents before warning.

    Categories are the class names found, sorted, with ids ``1..K``; ``meta["class"]`` keeps each
    image's class name.

    Raises:
        AfssError: missing folder or CSV, a CSV without a required column, no images.

    Example:
        >>> gt = SparkReader("spark2024", split="val").read()  # doctest: +SKIP
        >>> gt.categories[1], gt.images[0].meta["class"]
        ('Cheops', 'Cheops')
    """

    kind = "spark"

    def __init__(self, root: str | os.PathLike, *, split: str | None = None, box_tolerance_px: float = 4.0,
                 missing_mask: str = "empty") -> None:
        super().__init__(missing_mask=missing_mask)
        self.root = require_dir(root, "SPARK dataset folder")
        self.box_tolerance_px = box_tolerance_px
        mask_dir = self.root / "mask"
        self.mask_dir = mask_dir if mask_dir.is_dir() or not (self.root / "masks").is_dir() else self.root / "masks"
        if split is None:
            splits = [s for s in SPLITS if (self.root / f"{s}.csv").is_file()]
            if not splits:
                raise AfssError(f"{self.root}: no train.csv or val.csv (is this a SPARK-2024 stream 1 folder?)")
        else:
            splits = [split]
        for s in splits:
            csv_path = self.root / f"{s}.csv"
            if not csv_path.is_file():
                self.items += self._plan_scan(s)
                continue
            try:
                self.items += self._plan_csv(csv_path, s)
            except (UnicodeDecodeError, csv.Error) as e:
                raise AfssError(f"{csv_path}: not a readable UTF-8 CSV ({e})") from e
            except OSError as e:
                raise AfssError(f"{csv_path}: cannot read ({e.strerror or e})") from e
        if not self.items:
            raise empty_error(self.root, f"split(s) {', '.join(splits)} list no image")
        classes = sorted({r.cls for r in self.items if r.cls is not None})
        self.categories = {k: c for k, c in enumerate(classes, start=1)} or {1: "spacecraft"}
        self._class_id = {c: k for k, c in self.categories.items()}
        self.info = {"splits": splits}
        self._box_warnings = 0

    # -- planning ---------------------------------------------------------------------------------
    def _plan_csv(self, path: Path, split: str) -> list[_Row]:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise AfssError(f"{path}: empty CSV, expected a header row with 'Image name, Mask name, Class, "
                                "Bounding box'")
            cols = {norm_key(h): i for i, h in enumerate(header)}
            if "imagename" not in cols and "filename" in cols and "bbox" in cols and "class" in cols:
                return self._plan_2022(path, split, cols, reader)
            missing = [name for key, name in (("imagename", "Image name"), ("class", "Class")) if key not in cols]
            if missing:
                raise AfssError(f"{path}: missing column {', '.join(repr(m) for m in missing)} "
                                f"(found columns: {', '.join(repr(h) for h in header)})")
            rows, unparsed = [], []
            end = reader.line_num
            for rec in reader:
                line_no, end = end + 1, reader.line_num  # the line the record starts on
                if not any(v.strip() for v in rec):
                    continue
                _check_one_line(path, line_no, rec)
                name, cls = _cell(rec, cols, "imagename"), _cell(rec, cols, "class")
                if not name or not cls:
                    raise AfssError(f"{path}: line {line_no}: empty 'Image name' or 'Class'")
                mask_name = _cell(rec, cols, "maskname") or name.replace("_img", "_layer")
                box_text = _cell(rec, cols, "boundingbox")
                csv_box = parse_box(box_text) if "boundingbox" in cols else None
                if box_text and csv_box is None:
                    unparsed.append(f"line {line_no}: {box_text!r}")
                rows.append(_Row(image=self.root / "images" / cls / split / name, split=split, cls=cls,
                                 mask=self.mask_dir / cls / split / mask_name, csv_box=csv_box))
            if unparsed:  # the mask is the ground truth; the box only cross-checks it
                log.warning("%s: %d 'Bounding box' cells are not four numbers, e.g. %s: those masks are not "
                            "cross-checked", path, len(unparsed), unparsed[0])
            return rows

    def _plan_2022(self, path: Path, split: str, cols: dict[str, int], reader) -> list[_Row]:
        folders = [self.root / split, self.root / "images" / split, self.root / split / "images", self.root / "images"]
        folder = next((d for d in folders if d.is_dir()), folders[0])
        rows = []
        end = reader.line_num
        for rec in reader:
            line_no, end = end + 1, reader.line_num  # the line the record starts on
            if not any(v.strip() for v in rec):
                continue
            _check_one_line(path, line_no, rec)
            name, cls, box = (_cell(rec, cols, k) for k in ("filename", "class", "bbox"))  # a short row: ""
            rc = parse_box(box)
            if not name or rc is None:
                raise AfssError(f"{path}: line {line_no}: " + (f"bbox {box!r} is not '[r_min, c_min, r_max, c_max]'"
                                                              if name else "no filename"))
            r0, c0, r1, c1 = rc
            rows.append(_Row(image=folder / name, split=split, cls=cls, csv_box=(c0, r0, c1, r1), boxes_only=True))
        return rows

    def _plan_scan(self, split: str) -> list[_Row]:
        images = self.root / "images"
        rows = [_Row(image=p, split=split, cls=None) for p in find_images(images / split)] \
            if (images / split).is_dir() else []
        if images.is_dir():
            for class_dir in sorted(d for d in images.iterdir() if d.is_dir() and d.name != split):
                if (class_dir / split).is_dir():
                    rows += [_Row(image=p, split=split, cls=class_dir.name) for p in find_images(class_dir / split)]
        if not rows:
            raise AfssError(f"{self.root / (split + '.csv')}: no such CSV, and no images under "
                            f"images/<Class>/{split}/ or images/{split}/")
        return rows

    # -- reading ----------------------------------------------------------------------------------
    def read_item(self, row: _Row) -> ImageLabels:
        if not row.image.exists():  # another extension or case than the CSV names (.JPG, a mask saved as .png)
            row = replace(row, image=find_with_stem(row.image.parent, row.image.name, IMAGE_EXTENSIONS) or row.image)
        if row.mask is not None and not row.mask.exists():
            row = replace(row, mask=find_with_stem(row.mask.parent, row.mask.name, IMAGE_EXTENSIONS) or row.mask)
        name = relative_name(row.image, self.root)
        meta = {"split": row.split} | ({"class": row.cls} if row.cls is not None else {})
        if row.csv_box is not None:
            meta["csv_box_xyxy"] = list(row.csv_box)
        h, w, error = image_size(row.image)
        if error is not None:
            return ImageLabels(file_name=name, height=h, width=w, error=error, meta=meta)
        cat = self._class_id.get(row.cls, 1)
        if row.boxes_only:
            x0, y0, x1, y1 = row.csv_box
            if not (x1 > x0 and y1 > y0):  # one image's problem: a 100k-row CSV goes on
                return ImageLabels(file_name=name, height=h, width=w, meta=meta, error=(
                    f"{name}: CSV box {[int(v) for v in row.csv_box]} (xyxy) is empty or inverted"))
            if x0 < -1 or y0 < -1 or x1 > w + 1 or y1 > h + 1:
                return ImageLabels(file_name=name, height=h, width=w, meta=meta, error=(
                    f"{name}: CSV box {[int(v) for v in row.csv_box]} (xyxy) lies outside the {h}x{w} (HxW) image"))
            inst = Instance(box_xyxy=(max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)),
                            category_id=cat, source=GT_SOURCE)
            return ImageLabels(file_name=name, height=h, width=w, instances=(inst,), meta=meta)
        if row.mask is None:  # a split without labels (test): no mask expected
            return ImageLabels(file_name=name, height=h, width=w, meta=meta)
        boxed = row.csv_box is not None and row.csv_box[2] > row.csv_box[0] and row.csv_box[3] > row.csv_box[1]
        if not row.mask.is_file():
            if boxed:  # the CSV says a spacecraft is there: not "no spacecraft"
                return ImageLabels(file_name=name, height=h, width=w, meta=meta | {"mask": "error"}, error=(
                    f"{row.mask}: no such mask, though the CSV gives a box {[int(v) for v in row.csv_box]}"))
            return ImageLabels(file_name=name, height=h, width=w, meta=meta | {"mask": "missing"})
        raw = read_mask_pixels(row.mask, (h, w))
        if isinstance(raw, str):
            return ImageLabels(file_name=name, height=h, width=w, error=raw, meta=meta | {"mask": "error"})
        rgb = raw if raw.ndim == 2 else raw[..., 0] if raw.shape[2] < 3 else raw[..., 2::-1]  # BGR(A) -> RGB
        body, panels = spark_mask_parts(rgb)
        instances = gt_instance(body | panels, category_id=cat, parts={"body": body, "panels": panels})
        if not instances and boxed:
            return ImageLabels(file_name=name, height=h, width=w, meta=meta | {"mask": "error"}, error=(
                f"{row.mask}: the mask is empty, though the CSV gives a box {[int(v) for v in row.csv_box]}"))
        if instances and row.csv_box is not None:
            self._check_box(row, instances[0].box_xyxy)
        return ImageLabels(file_name=name, height=h, width=w, instances=instances,
                           meta=meta | {"mask": "ok" if instances else "empty"})

    def _check_box(self, row: _Row, mask_box: tuple[float, float, float, float]) -> None:
        diff = max(abs(a - b) for a, b in zip(row.csv_box, mask_box))
        if diff <= self.box_tolerance_px:
            return
        self._box_warnings += 1
        if self._box_warnings <= _WARN_FIRST:
            log.warning("%s: CSV box %s differs from the mask extents %s by %.0f px (the mask is used)",
                        row.mask, [int(v) for v in row.csv_box], [int(v) for v in mask_box], diff)
        elif self._box_warnings == _WARN_FIRST + 1:
            log.warning("spark: more CSV boxes differ from their masks; not reporting each")
