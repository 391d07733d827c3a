"""Ground-truth masks read the way the paper's reference script reads them, for the ``reference`` protocol.

The reference (``evaluate_predictions.py`` in github.com/giddyyupp/annotation-free-spacecraft-segmentation)
reads one mask image per evaluated image with Pillow and no threshold but zero: the image is converted
to 8-bit grey (``"L"``, ITU-R 601 weights) and every pixel ``> 0`` is foreground; TANGO masks
(``<stem>_mask.<ext>``, red = spacecraft, green = Earth, blue = deep space) are converted to RGB and
red ``> 0`` is foreground. So the faint ringing JPEG leaves around a 0/255 mask is foreground, and a
mask without any foreground is still a target. afss's dataset readers threshold at 128 instead
(`afss.datasets.masks_folder`), which is what the ``coco`` and ``paper`` protocols see.

Where the mask of ground-truth image ``a/b/img.jpg`` is found, given a folder ``DIR``
(``--gt-masks DIR``), first hit wins:

1. ``DIR/a/b/img.jpg``, 2. ``DIR/img.jpg`` (the reference's rule for SPEED+ and SPARK-2024),
3. ``DIR/img_mask.jpg`` (its rule for TANGO), 4. ``DIR/img.<ext>`` then ``DIR/img_mask.<ext>`` for
``ext`` in `MASK_EXTENSIONS`.

Without a folder: ground truth written by ``afss convert --from tango`` finds ``<stem>_mask.<ext>``
beside each image; ground truth from ``--from speedplus`` uses the masks folder recorded in its
``info["masks"]``. Anything else needs the folder. A file whose stem ends in ``_mask`` is read the
TANGO way, any other the grey way (the two agree on grey masks).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from afss.errors import AfssError
from afss.types import ImageLabels, LabelSet

__all__ = ["MASK_EXTENSIONS", "ReferenceMasks", "read_reference_mask"]

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".webp")
TANGO_SUFFIX = "_mask"


def read_reference_mask(path: str | os.PathLike) -> np.ndarray:
    """The foreground of one mask file as the reference reads it: bool ``(H, W)``.

    ``<stem>_mask.*`` (TANGO): red channel ``> 0`` after conversion to RGB; any other file: grey
    level ``> 0`` after Pillow's conversion to ``"L"``.

    Raises:
        AfssError: the file cannot be read as an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            if path.stem.endswith(TANGO_SUFFIX):
                return np.asarray(img.convert("RGB"))[..., 0] > 0
            return np.asarray(img.convert("L")) > 0
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise AfssError(f"{path}: cannot read the mask image ({e})") from e


class ReferenceMasks:
    """Finds and reads each ground-truth image's mask file for the ``reference`` protocol.

    Args:
        gt: the ground truth whose images need masks (file names and sizes).
        folder: the masks folder; ``None`` for the place the ground truth's dataset records (TANGO,
            SPEED+), else an error.
        gt_name: how errors name the ground truth.

    Raises:
        AfssError: ``folder`` is not a folder, or there is none and the ground truth records none.

    Example:
        >>> masks = ReferenceMasks(gt, "data/speedplus/sunlamp/masks")  # doctest: +SKIP
        >>> masks.read(gt.images[0]).shape
        (1200, 1920)
    """

    def __init__(self, gt: LabelSet, folder: str | os.PathLike | None = None, *, gt_name: str = "gt") -> None:
        self.gt = gt
        self.gt_name = gt_name
        self.beside_images = False
        if folder is not None:
            self.folder: Path | None = _require_dir(Path(folder), "--gt-masks")
            return
        self.folder = None
        dataset = gt.info.get("dataset")
        recorded = gt.info.get("masks")
        if dataset == "tango":
            self.beside_images = True
        elif dataset == "speedplus" and isinstance(recorded, str) and Path(recorded).is_dir():
            self.folder = Path(recorded)
        else:
            raise AfssError(f"{gt_name}: the reference protocol reads each image's ground-truth mask file; "
                            "give the masks folder (--gt-masks DIR, masks named like the images)")

    def path(self, image: ImageLabels) -> Path:
        """The mask file of ``image``; an `AfssError` naming where it was looked for when there is none."""
        rel = Path(image.file_name.replace("\\", "/"))
        if self.beside_images:
            where = Path(self.gt.image_path(image)).parent
            found = _first_with_stem(where, rel.stem + TANGO_SUFFIX, (rel.suffix, *MASK_EXTENSIONS))
            if found is None:
                raise AfssError(f"{where / (rel.stem + TANGO_SUFFIX + rel.suffix)}: no such mask file "
                                f"(TANGO ground truth: the reference protocol reads <stem>{TANGO_SUFFIX}.* beside each image)")
            return found
        folder = Path(self.folder or ".")  # set by the constructor whenever beside_images is False
        if not rel.is_absolute() and (folder / rel).is_file():
            return folder / rel
        for stem in (rel.stem, rel.stem + TANGO_SUFFIX):
            found = _first_with_stem(folder, stem, (rel.suffix, *MASK_EXTENSIONS))
            if found is not None:
                return found
        raise AfssError(f"{folder}: no mask file for image {image.file_name!r} (looked for {rel.name}, "
                        f"{rel.stem}{TANGO_SUFFIX}{rel.suffix} and other extensions)")

    def read(self, image: ImageLabels) -> np.ndarray:
        """``image``'s ground truth as the reference reads it: bool ``(H, W)``, the image's size."""
        path = self.path(image)
        mask = read_reference_mask(path)
        if mask.shape != (image.height, image.width):
            raise AfssError(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW), image {image.file_name!r} "
                            f"is {image.height}x{image.width}")
        return mask


def _require_dir(path: Path, flag: str) -> Path:
    if not path.exists():
        raise AfssError(f"{path}: no such masks folder ({flag})")
    if not path.is_dir():
        raise AfssError(f"{path}: expected a masks folder ({flag}), found a file")
    return path


def _first_with_stem(folder: Path, stem: str, extensions: tuple[str, ...]) -> Path | None:
    for ext in dict.fromkeys(e for e in extensions if e):
        for cand in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if cand.is_file():
                return cand
    return None
