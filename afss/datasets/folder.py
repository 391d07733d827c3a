"""A plain folder of images (recursive, sorted), optionally with a folder of same-named binary masks.

Without masks this is the unlabeled pool a teacher labels: images with no instances. With
``masks=DIR`` each image gets at most one ground-truth instance from its mask (see
:mod:`afss.datasets.masks_folder`); an image whose mask file is missing keeps no instances and
``meta["mask"] = "missing"``.
"""

from __future__ import annotations

import os
from pathlib import Path

from afss.datasets.common import (
    DatasetReader,
    empty_error,
    find_images,
    image_size,
    relative_name,
    require_dir,
)
from afss.datasets.masks_folder import MaskFolder
from afss.types import ImageLabels


class FolderReader(DatasetReader):
    """Images under ``root`` (every extension in ``afss.io.images.IMAGE_EXTENSIONS``, any depth).

    Args:
        root: the image folder; ``file_name`` entries are relative to it.
        masks: optional folder of binary masks named like the images (foreground ``> 127``).

    Raises:
        AfssError: ``root`` or ``masks`` is not a folder, or ``root`` holds no image.

    Example:
        >>> labels = FolderReader("frames/").read()  # doctest: +SKIP
        >>> labels.images[0].file_name, labels.num_instances
        ('orbit_0001.png', 0)
    """

    kind = "folder"

    def __init__(self, root: str | os.PathLike, *, masks: str | os.PathLike | None = None,
                 missing_mask: str = "empty") -> None:
        super().__init__(missing_mask=missing_mask)
        self.root = require_dir(root, "image folder")
        self.masks = None if masks is None else MaskFolder(masks, images=self.root)
        self.items = find_images(self.root)
        if not self.items:
            raise empty_error(self.root, "expected image files with an extension like .jpg or .png, any depth")
        if self.masks is not None:
            self.masks.expect(relative_name(item, self.root) for item in self.items)
        self.info = {"masks": None if masks is None else str(masks)}

    def read_item(self, item: Path) -> ImageLabels:
        name = relative_name(item, self.root)
        h, w, error = image_size(item)
        if self.masks is None or error is not None:
            return ImageLabels(file_name=name, height=h, width=w, error=error)
        instances, error, state = self.masks.instances(name, (h, w))
        return ImageLabels(file_name=name, height=h, width=w, instances=instances, error=error,
                           meta={"mask": state})
