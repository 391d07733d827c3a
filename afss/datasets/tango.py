"""The TANGO segmentation set (``Tango_RoI_and_SS``): images and their masks side by side.

Layout (see DATASETS.md)::

    Tango_RoI_and_SS/train_SS_img/<stem>.<ext>  and  <stem>_mask.png
    Tango_RoI_and_SS/test_SS_img/...
    Tango_RoI_and_SS/{train,test}_ROI.json       optional, schema unconfirmed: not read

The mask is RGB: spacecraft where the red channel is ``> 0`` (G = Earth, B = deep space). A mask
stored in a lossy format (JPEG, WebP) uses red ``>= 128`` instead, so that compression noise is not
counted as spacecraft. Any image extension is accepted; a file whose stem ends in ``_mask`` is a mask,
never an image. ``root`` may be ``Tango_RoI_and_SS`` itself or the folder that holds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from afss.datasets.common import (
    DatasetReader,
    empty_error,
    find_images,
    find_with_stem,
    gt_instance,
    image_size,
    read_mask_pixels,
    relative_name,
    require_dir,
)
from afss.errors import AfssError
from afss.io.images import is_lossy
from afss.types import ImageLabels

SET_NAME = "Tango_RoI_and_SS"
SPLITS = ("train", "test")
MASK_SUFFIX = "_mask"
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class _Pair:
    image: Path
    mask: Path | None
    split: str


def split_dir_name(split: str) -> str:
    return f"{split}_SS_img"


class TangoReader(DatasetReader):
    """TANGO segmentation ground truth: one "spacecraft" instance per image from its ``_mask`` file.

    Args:
        root: ``Tango_RoI_and_SS`` or its parent; ``file_name`` entries are relative to ``root``.
        split: ``"train"`` or ``"test"`` (reads ``<split>_SS_img/``); default: every one present.

    An image without a ``<stem>_mask`` file keeps no instances and ``meta["mask"] = "missing"``.

    Raises:
        AfssError: missing folder, no ``*_SS_img`` folder, no images.

    Example:
        >>> gt = TangoReader("data/Tango_RoI_and_SS", split="test").read()  # doctest: +SKIP
    """

    kind = "tango"

    def __init__(self, root: str | os.PathLike, *, split: str | None = None, missing_mask: str = "empty") -> None:
        super().__init__(missing_mask=missing_mask)
        self.root = require_dir(root, "TANGO dataset folder")
        base = self.root / SET_NAME if (self.root / SET_NAME).is_dir() else self.root
        if split is None:
            splits = [s for s in SPLITS if (base / split_dir_name(s)).is_dir()]
            if not splits:
                raise AfssError(f"{base}: no train_SS_img/ or test_SS_img/ folder (is this {SET_NAME}?)")
        else:
            splits = [split]
        for s in splits:
            folder = require_dir(base / split_dir_name(s), "TANGO split folder")
            images = [p for p in find_images(folder, recursive=False) if not p.stem.endswith(MASK_SUFFIX)]
            if not images:
                raise empty_error(folder, f"expected <stem>.<ext> images beside <stem>{MASK_SUFFIX}.png masks")
            self.items += [_Pair(image=p, mask=find_with_stem(folder, p.stem + MASK_SUFFIX, MASK_EXTENSIONS), split=s)
                           for p in images]
        self.info = {"splits": splits}

    def read_item(self, pair: _Pair) -> ImageLabels:
        name = relative_name(pair.image, self.root)
        meta = {"split": pair.split}
        h, w, error = image_size(pair.image)
        if error is not None:
            return ImageLabels(file_name=name, height=h, width=w, error=error, meta=meta)
        if pair.mask is None:
            return ImageLabels(file_name=name, height=h, width=w, meta=meta | {"mask": "missing"})
        raw = read_mask_pixels(pair.mask, (h, w))
        if isinstance(raw, str):
            return ImageLabels(file_name=name, height=h, width=w, error=raw, meta=meta | {"mask": "error"})
        red = raw if raw.ndim == 2 else raw[..., 2]  # OpenCV order is BGR(A)
        threshold = 128 if is_lossy(pair.mask) else 1
        instances = gt_instance(red >= threshold)
        return ImageLabels(file_name=name, height=h, width=w, instances=instances,
                           meta=meta | {"mask": "ok" if instances else "empty"})
