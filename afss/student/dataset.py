"""Pseudo-labels (COCO, RLE masks) -> an Ultralytics YOLO-seg dataset, for training the student.

Layout written under ``out`` (what Ultralytics expects; it finds a label by replacing ``images`` with
``labels`` in the image path):

    dataset.yaml                 path, train, val, names
    images/{train,val}/<k>_<stem><ext>   symbolic links to the original images (copies where links fail;
                                 an 8-bit PNG of the pixels afss labelled where Ultralytics would read
                                 the file otherwise: EXIF-turned, 16-bit, .pgm/.ppm/.pnm; `read_alike`)
    labels/{train,val}/<k>_<stem>.txt    one line per instance: class x0 y0 x1 y1 ... (normalised)
    manifest.json                which source image each entry is, and the split

Rules:

* only images with at least one instance are used: an image whose label the filter dropped is not a
  background image (its spacecraft is still there), so it stays out of training;
* each instance becomes one polygon: the outer contour of every part of its mask, parts seen apart
  (a panel cut off from the body by a shadow) joined by zero-width bridges, as Ultralytics itself
  does for COCO instances with several polygons; parts smaller than ``min_part_frac`` of the
  instance (specks) are dropped;
* the validation split is carved from the pseudo-labels themselves, seeded: no ground truth is
  used anywhere in training.

Example:
    >>> ds = export_yolo(read_coco("refined.json"), "runs/student/data")  # doctest: +SKIP
    >>> ds.yaml, ds.train, ds.val  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from afss.errors import AfssError
from afss.io.atomic import write_json_atomic, write_text_atomic
from afss.io.images import image_orientation, load_image, save_image
from afss.types import ImageLabels, Instance, LabelSet

__all__ = ["YoloDataset", "check_trainable", "export_yolo", "mask_polygon"]


@dataclass(frozen=True)
class YoloDataset:
    """What `export_yolo` wrote.

    Attributes:
        root: the dataset folder; yaml: its ``dataset.yaml``.
        train, val: images in each split; instances: polygons written.
        names: class names in class-index order (category ids sorted).
        skipped: images left out (no instance).
        replay: exactly labelled synth scenes in the train split (counted in ``train``).
        converted: images written as 8-bit PNGs rather than linked (`read_alike`: EXIF-turned,
            more than 8 bits, or a format Ultralytics skips).
    """

    root: Path
    yaml: Path
    train: int
    val: int
    instances: int
    names: tuple[str, ...]
    skipped: int
    replay: int = 0
    converted: int = 0
    train_and_val_share: bool = False  # the single labelled image serves both splits

    @property
    def val_is_train(self) -> bool:
        """No image of its own to validate on: the training images stand in (``val_fraction`` 0, or one image)."""
        return self.val == 0 or self.train_and_val_share


def mask_polygon(mask: np.ndarray, *, min_part_frac: float = 0.01, epsilon_px: float = 0.7) -> np.ndarray | None:
    """One polygon ``(N, 2)`` (x, y pixels) covering every part of a bool mask, or ``None`` if empty.

    The outer contour of each connected part is simplified (``epsilon_px``, Douglas-Peucker); parts
    below ``min_part_frac`` of the mask's area are dropped; the rest are chained, largest first, each
    joined to the polygon so far at their closest points by a bridge out and back.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    areas = [max(cv2.contourArea(c), float(len(c))) for c in contours]
    total = sum(areas)
    parts = [cv2.approxPolyDP(c, epsilon_px, True).reshape(-1, 2).astype(np.float64)
             for c, a in sorted(zip(contours, areas), key=lambda t: -t[1]) if a >= min_part_frac * total]
    parts = [p for p in parts if len(p) >= 3] or [contours[int(np.argmax(areas))].reshape(-1, 2).astype(np.float64)]
    poly = parts[0]
    for part in parts[1:]:
        d = ((poly[:, None, :] - part[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        poly = np.concatenate([poly[: i + 1], part[j:], part[: j + 1], poly[i:]])
    return poly if len(poly) >= 3 else None


def _instance_polygon(inst: Instance, min_part_frac: float) -> np.ndarray | None:
    if inst.rle is not None:
        return mask_polygon(inst.mask, min_part_frac=min_part_frac)
    x0, y0, x1, y1 = inst.box_xyxy  # boxes-only labels: the box as a polygon
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64) if x1 > x0 and y1 > y0 else None


def _link(src: Path, dst: Path) -> None:
    try:
        dst.symlink_to(src.resolve())
    except OSError:  # file systems without links
        shutil.copyfile(src, dst)


# Ultralytics reads each training image itself (OpenCV, IMREAD_COLOR): it turns a picture by its EXIF
# orientation, shifts a 16-bit image down by 8 bits (a 12-bit camera frame comes out nearly black) and
# skips extensions it does not know (.pgm, .ppm, .pnm). afss labels the stored pixels, scaled by their
# container (`afss.io.images`), and `afss predict` feeds the student the same. So only files Ultralytics
# reads into those very pixels are linked; any other is written as an 8-bit PNG of what afss saw. That
# includes any picture with transparency: afss composites it over black, Ultralytics drops the alpha.
_READ_ALIKE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
_READ_ALIKE_MODES = ("1", "L", "P", "RGB")  # PIL's modes of 8-bit-or-less files without an alpha channel


def read_alike(path: Path) -> bool:
    """Whether Ultralytics decodes ``path`` into the pixels `afss.io.images.load_image` gives (from the header)."""
    if path.suffix.lower() not in _READ_ALIKE_SUFFIXES:
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return (im.mode in _READ_ALIKE_MODES and "transparency" not in im.info and _eight_bit(im)
                    and image_orientation(im) == 1)
    except Exception:  # noqa: BLE001 - a header PIL cannot read: write what afss decodes, to be safe
        return False


def _eight_bit(im) -> bool:
    """At most 8 bits a channel on disk. PIL opens a 16-bit colour PNG or TIFF as mode RGB: its raw mode
    (``RGB;16B``) and a TIFF's BitsPerSample tag say what the mode does not."""
    args = im.tile[0].args if im.tile else ""
    raw = str(args[0] if isinstance(args, tuple) and args else args)
    bits = getattr(im, "tag_v2", {}).get(258, (8,))
    return ";16" not in raw and ";32" not in raw and not raw.startswith(("I", "F")) and \
        max(bits if isinstance(bits, tuple) else (bits,)) <= 8


def _place(src: Path, dst_stem: Path, alike: bool) -> None:
    """The training image: a link to ``src``, or an 8-bit PNG of the pixels afss labelled (`read_alike`)."""
    if alike:
        _link(src, dst_stem.with_name(dst_stem.name + src.suffix.lower()))
    else:
        save_image(dst_stem.with_name(dst_stem.name + ".png"), load_image(src).rgb)


def check_trainable(labels: LabelSet) -> list[ImageLabels]:
    """The images with a kept instance; one line saying why there is none otherwise."""
    usable = [im for im in labels.images if im.instances]
    if not usable:
        reasons = sorted({(im.error or "no instance").split(":")[0] for im in labels.images})
        raise AfssError(f"no image has a kept instance to train on ({len(labels)} images: "
                        f"{', '.join(reasons) or 'none'}); refine with a lower --min-score, or label more images")
    return usable


def export_yolo(labels: LabelSet | str | os.PathLike, out: str | os.PathLike, *, val_fraction: float = 0.1,
                seed: int = 0, min_part_frac: float = 0.01, replay: LabelSet | None = None) -> YoloDataset:
    """Write ``labels`` (pseudo-labels) as an Ultralytics YOLO-seg dataset under ``out``.

    Args:
        labels: images with instances (masks, or boxes only), or a COCO file of them; images without any
            are skipped.
        out: dataset folder; replaced if it holds an earlier export (``manifest.json``).
        val_fraction: share of the labelled images held out for validation (at least one image;
            with a single image it serves both splits).
        seed: the split's seed.
        min_part_frac: mask parts smaller than this share of their instance are dropped.
        replay: images with exact labels (afss synth scenes) added to the train split only, as one class
            with the pseudo-labels (see `afss.student.train.TrainConfig.replay`); the validation split
            stays pseudo-labels only.

    Raises:
        AfssError: no image has an instance, a bad ``val_fraction``, a folder that is not an export.
    """
    if not isinstance(labels, LabelSet):  # a COCO file's path, as `afss export-yolo` takes it
        from afss.io.coco import read_coco

        labels = read_coco(labels)
    if not 0.0 <= val_fraction < 1.0:
        raise AfssError(f"val_fraction must be in [0, 1), got {val_fraction}")
    usable = check_trainable(labels)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise AfssError(f"{root}: exists and is not a folder; --out names the dataset folder")
    if root.exists() and any(root.iterdir()) and not (root / "manifest.json").exists():
        raise AfssError(f"{root}: folder is not empty and is not an afss YOLO export; choose another folder")
    shutil.rmtree(root, ignore_errors=True)
    cat_ids = sorted({i.category_id for im in usable for i in im.instances})
    index = {c: k for k, c in enumerate(cat_ids)}
    names = tuple(labels.categories.get(c, str(c)) for c in cat_ids)

    order = np.random.default_rng(seed).permutation(len(usable))
    n_val = max(1, round(val_fraction * len(usable))) if val_fraction > 0 else 0
    n_val = min(n_val, len(usable) - 1) if len(usable) > 1 else n_val
    val_set = {int(k) for k in order[:n_val]}
    manifest, counts, n_inst, converted = [], {"train": 0, "val": 0}, 0, 0
    extra = [(replay, im) for im in replay.images if im.instances] if replay is not None else []
    for k, (source, im) in enumerate([*((labels, im) for im in usable), *extra]):
        splits = ["val"] if k in val_set else ["train"]
        if len(usable) == 1 and n_val and k == 0:
            splits = ["train", "val"]
        src = Path(source.image_path(im))
        if not src.is_file():
            raise AfssError(f"{src}: image of {im.file_name!r} not found (check the labels' image root)")
        stem = f"{k:06d}_{Path(im.file_name).stem}"
        alike = read_alike(src)
        converted += not alike
        lines = []
        for inst in im.instances:
            poly = _instance_polygon(inst, min_part_frac)
            if poly is None:
                continue
            xy = np.clip(poly / [im.width, im.height], 0.0, 1.0).reshape(-1)
            cls = index[inst.category_id] if source is labels else 0  # replay: the one target class
            lines.append(" ".join([str(cls), *(f"{v:.6f}" for v in xy)]))
        for split in splits:
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            _place(src, root / "images" / split / stem, alike)
            write_text_atomic(root / "labels" / split / f"{stem}.txt", "\n".join(lines) + ("\n" if lines else ""))
            counts[split] += 1
        n_inst += len(lines)
        manifest.append({"entry": stem, "file_name": im.file_name, "splits": splits,
                         **({"replay": True} if source is not labels else {}),
                         **({} if alike else {"converted": "8-bit PNG of the pixels afss labelled"})})
    yaml = root / "dataset.yaml"
    # JSON is valid YAML, and keeps this free of a YAML writer
    write_text_atomic(yaml, json.dumps({"path": str(root.resolve()), "train": "images/train",
                                        "val": "images/val" if counts["val"] else "images/train",
                                        "names": dict(enumerate(names))}, indent=1))
    write_json_atomic(root / "manifest.json", {"source_image_root": labels.image_root, "seed": seed,
                                               "val_fraction": val_fraction, "images": manifest}, indent=1)
    return YoloDataset(root=root, yaml=yaml, train=counts["train"], val=counts["val"], instances=n_inst,
                       names=names, skipped=len(labels) - len(usable), replay=len(extra), converted=converted,
                       train_and_val_share=len(usable) == 1 and n_val > 0)
