"""What every dataset reader shares: the reader contract and small, strict file helpers.

A reader is built in two steps so that bad input fails before the long part:

* the constructor checks the folders and label files and plans the list of images (fast: no pixels);
* ``read(progress)`` reads image sizes (header only) and masks one image at a time, keeping each mask
  only as COCO RLE, so thousands of full-size masks never sit in memory at once.

A problem with one image (unreadable file, mask of another size) becomes an `ImageLabels` with
``error`` set and no instances; the rest goes on.
"""

from __future__ import annotations

import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.io.images import IMAGE_EXTENSIONS, ImageReadError, image_size_hw, read_raw, to_uint8
from afss.types import ImageLabels, Instance, LabelSet

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
GT_SOURCE = "gt"
MISSING_MASK = {
    "empty": "kept with no instances (scored as images without a spacecraft)",
    "error": "recorded as errors (left out of scoring)",
}
"""What to do with an image whose mask file is missing: choice -> what it means."""


class DatasetReader(ABC):
    """Plans a dataset's images in the constructor; ``read`` turns them into a ground-truth `LabelSet`.

    Subclasses fill ``self.root`` (the folder ``file_name`` paths are relative to), ``self.items``
    (one planned record per image), ``self.categories`` and ``self.info``, and implement
    ``read_item``.

    Args:
        missing_mask: an image whose mask file is missing is kept with no instances and
            ``meta["mask"] = "missing"``; with ``"error"`` it is also recorded with ``error`` set,
            which leaves it out of scoring (``afss eval`` skips ground-truth images with errors).
    """

    kind: str = ""

    def __init__(self, *, missing_mask: str = "empty") -> None:
        if missing_mask not in MISSING_MASK:
            raise unknown_choice("missing_mask", missing_mask, MISSING_MASK)
        self.missing_mask = missing_mask
        self.root: Path = Path(".")
        self.items: list[Any] = []
        self.categories: dict[int, str] = {1: "spacecraft"}
        self.info: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.items)

    @abstractmethod
    def read_item(self, item: Any) -> ImageLabels:
        """Read one planned image; per-image problems go into ``ImageLabels.error``, never raise."""

    def read(self, progress: Progress | None = None) -> LabelSet:
        """Read every planned image in order.

        Args:
            progress: called with ``1`` after each image.

        Returns:
            Ground truth: ``file_name`` relative to ``image_root``, score 1.0, source ``"gt"``.
        """
        t0 = time.perf_counter()
        images = []
        missing = 0
        seen: set[str] = set()
        duplicates: list[str] = []
        for item in self.items:
            im = self.read_item(item)
            if progress is not None:
                progress(1)
            if im.file_name in seen:  # a repeated CSV row or JSON entry: one image, kept once
                duplicates.append(im.file_name)
                continue
            seen.add(im.file_name)
            if im.meta.get("mask") == "missing":
                missing += 1
                if self.missing_mask == "error" and im.error is None:
                    im = im.replace(error=f"{im.file_name}: no mask file")
            images.append(im)
        if duplicates:
            log.warning("%s: %d entries name an image listed before (kept once, the first entry), e.g. %s",
                        self.kind, len(duplicates), duplicates[0])
        if missing:
            log.warning("%s: %d of %d images have no mask file: %s", self.kind, missing, len(images),
                        MISSING_MASK[self.missing_mask])
        info = {"dataset": self.kind, **self.info, "missing_mask": self.missing_mask}
        labels = LabelSet(images=tuple(images), categories=self.categories, image_root=str(self.root), info=info)
        n_err = sum(im.error is not None for im in labels.images)
        log.debug("%s: read %d images (%d with errors) in %.2f s", self.kind, len(labels), n_err,
                  time.perf_counter() - t0)
        return labels


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a `Path`, or an `AfssError` naming it when it is not a folder."""
    path = Path(path)
    if not path.exists():
        raise AfssError(f"{path}: no such {what}")
    if not path.is_dir():
        raise AfssError(f"{path}: expected a {what}, found a file")
    return path


def read_json(path: Path) -> Any:
    """Parse a JSON file; an `AfssError` naming the file when it is not JSON (any decoder limit too)."""
    from afss.io.coco import read_json_file

    return read_json_file(path)


def find_images(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files (by extension, case-insensitive) under ``folder``, sorted by relative path.

    Broken symbolic links with an image extension are listed too, so that they are recorded as
    unreadable images instead of vanishing. A subfolder that cannot be listed is logged.

    Raises:
        AfssError: ``folder`` itself cannot be listed (e.g. no permission).
    """
    folder = Path(folder)
    try:
        next(os.scandir(folder), None)
    except OSError as e:
        raise AfssError(f"{folder}: cannot list the folder ({e.strerror or e})") from e

    def unlisted(e: OSError) -> None:
        log.warning("%s: cannot list this folder (%s); its images are left out", e.filename, e.strerror or e)

    found, others = [], []
    root = os.path.realpath(folder)
    # linked subfolders are entered (a dataset assembled from links is common), each real folder once
    # and under its own name where it lies inside the folder: so every real folder is claimed first;
    # a link to the folder itself or above it would list what lies outside
    seen = {root}
    for top, dirs, _names in os.walk(folder, onerror=lambda e: None) if recursive else ():
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # as the walk below: a link to a hidden folder is entered
        seen.add(os.path.realpath(top))
    for top, dirs, names in os.walk(folder, onerror=unlisted, followlinks=True):
        kept = []
        for d in sorted(d for d in dirs if not d.startswith(".")):
            path = os.path.join(top, d)
            if not os.path.islink(path):
                kept.append(d)
                continue
            real = os.path.realpath(path)
            if real not in seen and os.path.commonpath([root, real]) != real and os.path.isdir(real):
                seen.add(real)
                kept.append(d)
        dirs[:] = kept
        for name in names:
            p = Path(top, name)
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS) and (p.is_file() or p.is_symlink()):
                found.append(p)
            else:
                others.append(p)
        if not recursive:
            break
    pictures = [p for p in others if p.suffix.lower() in OTHER_PICTURES]
    if pictures:
        log.warning("%s: %d file(s) in a format afss does not read are left out, e.g. %s (it reads %s)", folder,
                    len(pictures), pictures[0].name, " ".join(IMAGE_EXTENSIONS))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


# picture formats a folder of images may hold that afss does not list (some OpenCV builds decode a few):
# named in a warning, not skipped silently
OTHER_PICTURES = (".gif", ".tga", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".raw", ".dng", ".cr2", ".nef",
                  ".fits", ".fit", ".exr", ".hdr", ".svg")


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (what goes into COCO ``file_name``)."""
    return path.relative_to(root).as_posix()


def image_size(path: Path) -> tuple[int, int, str | None]:
    """``(height, width, None)`` from the image header, or ``(0, 0, reason)`` when unreadable."""
    try:
        h, w = image_size_hw(path)
        return int(h), int(w), None
    except ImageReadError as e:
        return 0, 0, str(e)


def read_mask_pixels(mask_path: Path, image_hw: Sequence[int]) -> np.ndarray | str:
    """A mask file's uint8 pixels as stored (BGR(A) order, column-major, see `fortran_pixels`), or why
    it cannot be used (unreadable, or not the size of its image): recorded per image, never fatal."""
    try:
        raw = fortran_pixels(to_uint8(read_raw(mask_path)))
    except ImageReadError as e:
        return str(e)
    if tuple(raw.shape[:2]) != tuple(image_hw):
        return f"{mask_path}: mask is {raw.shape[0]}x{raw.shape[1]} (HxW), image is {image_hw[0]}x{image_hw[1]}"
    return raw


def gt_instance(mask: np.ndarray, *, category_id: int = 1,
                parts: Mapping[str, np.ndarray] | None = None) -> tuple[Instance, ...]:
    """One ground-truth instance from a bool ``(H, W)`` mask; none when the mask is empty.

    Masks in Fortran order (see `fortran_pixels`) encode to RLE without a transposing copy.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return ()
    box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    return (Instance.from_mask(mask, box_xyxy=box, parts=parts, score=1.0, category_id=category_id,
                               source=GT_SOURCE),)


def fortran_pixels(raw: np.ndarray) -> np.ndarray:
    """The same ``(H, W[, C])`` pixels laid out column-major, so masks computed from them are Fortran
    arrays that pycocotools encodes without another copy (about 2x faster for 1024x1024 masks)."""
    if raw.ndim == 2:
        return cv2.transpose(raw).T
    if raw.shape[2] <= 4:
        return cv2.transpose(raw).transpose(1, 0, 2)
    return np.asfortranarray(raw)


def norm_key(name: str) -> str:
    """Column/key name for matching: lower case, letters and digits only (``"Image name"`` -> ``"imagename"``)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def find_with_stem(folder: Path, name: str, extensions: Iterable[str]) -> Path | None:
    """``folder/name`` if it exists, else ``folder/<stem of name><ext>`` for the first ``ext`` that exists.

    Matches file names given with or without an extension (SPEED-UE-Cube writes ``"img002000"``).
    """
    exact = folder / name
    if exact.is_file():
        return exact
    stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else Path(name).name
    for ext in extensions:
        for cand in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if cand.is_file():
                return cand
    return None


def empty_error(where: Path | str, what: str) -> AfssError:
    return AfssError(f"{where}: no images found ({what})")
