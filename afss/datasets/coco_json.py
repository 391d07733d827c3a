"""COCO instances JSON as ground truth, optionally with a flat folder of same-named binary masks.

Two uses:

* a COCO file with its own annotations (polygon, uncompressed or compressed RLE; ``iscrowd`` kept):
  read as it is by :func:`afss.io.coco.read_coco`;
* the paper's splits (``instances_train_tango.json`` + ``masks/<split>/masks/<image name>``): the JSON
  gives the image list and sizes, the masks folder gives one instance per image (foreground ``> 127``).
  The JSON's own annotations are then replaced by the masks.

``root`` is the JSON file, or a folder holding it: with ``split`` the folder is searched for
``instances_<split>.json``, ``<split>.json``, ``annotations/instances_<split>.json``; without, it must
hold exactly one ``.json`` file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from afss.datasets.common import GT_SOURCE, DatasetReader, empty_error, image_size
from afss.datasets.masks_folder import MaskFolder
from afss.errors import AfssError
from afss.io.coco import read_coco
from afss.io.images import size_mismatch
from afss.types import ImageLabels, LabelSet

log = logging.getLogger(__name__)


def find_coco_json(root: str | os.PathLike, split: str | None = None) -> Path:
    """Resolve ``root`` (a JSON file or a folder) to the COCO JSON file; see the module docstring."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.exists():
        raise AfssError(f"{root}: no such COCO JSON file or folder")
    if split is not None:
        cands = [root / f"instances_{split}.json", root / f"{split}.json",
                 root / "annotations" / f"instances_{split}.json"]
        for c in cands:
            if c.is_file():
                return c
        raise AfssError(f"{root}: no COCO JSON for split {split!r} (looked for "
                        f"{', '.join(str(c.relative_to(root)) for c in cands)})")
    # hidden files are bookkeeping (afss synth's .afss-synth-files.json beside its gt.json), not a dataset
    found = sorted(p for p in root.glob("*.json") if not p.name.startswith("."))
    if len(found) != 1:
        names = ", ".join(p.name for p in found[:6]) or "none"
        raise AfssError(f"{root}: expected exactly one .json file (or give --split / the file itself), "
                        f"found {len(found)}: {names}")
    return found[0]


class CocoReader(DatasetReader):
    """Ground truth from a COCO instances JSON, optionally with a binary masks folder.

    Args:
        root: the JSON file, or the folder holding it (see `find_coco_json`).
        split: picks ``instances_<split>.json`` when ``root`` is a folder.
        masks: folder of binary masks named like the images; replaces the JSON's annotations.
        image_root: folder the JSON's ``file_name`` entries are relative to (default: afss's recorded
            root, else the JSON's folder).
        allow_absolute_paths: accept ``file_name`` entries that are absolute or leave the image root.

    Raises:
        AfssError: missing file, not JSON, not COCO instances, no images, masks folder missing.

    Example:
        >>> gt = CocoReader("instances_val_tango.json", masks="masks/val/masks").read()  # doctest: +SKIP
    """

    kind = "coco"

    def __init__(self, root: str | os.PathLike, *, split: str | None = None,
                 masks: str | os.PathLike | None = None, image_root: str | os.PathLike | None = None,
                 missing_mask: str = "empty", allow_absolute_paths: bool = False) -> None:
        super().__init__(missing_mask=missing_mask)
        self.path = find_coco_json(root, split)
        self._absent: list[str] = []  # listed images that are not here (warned about once read)
        self._coco: LabelSet = read_coco(self.path, image_root=image_root, allow_absolute_paths=allow_absolute_paths)
        if len(self._coco) == 0:
            raise empty_error(self.path, "the COCO file lists no images")
        self.root = Path(self._coco.image_root or self.path.parent)
        self.masks = None if masks is None else MaskFolder(masks, images=self.root)
        self.items = list(self._coco.images)
        cats = dict(self._coco.categories)
        if self.masks is not None:
            # One class per mask folder: keep the JSON's single category, else "spacecraft".
            cats = cats if len(cats) == 1 else {1: "spacecraft"}
            self.masks.expect(im.file_name for im in self.items)
            n_ann = self._coco.num_instances
            if n_ann:
                log.info("%s: %d annotations replaced by the masks in %s", self.path, n_ann, self.masks.folder)
        self.categories = cats
        self._category_id = next(iter(cats))
        self.info = {"coco_json": str(self.path), "masks": None if masks is None else str(masks),
                     "source_info": dict(self._coco.info)}

    def read(self, progress=None) -> LabelSet:
        self._absent = []
        labels = super().read(progress)
        absent = list(dict.fromkeys(self._absent))  # an image listed twice is one
        if absent:
            log.warning("%s: %d of %d images are not found under %s, e.g. %s: their ground truth is kept as the file "
                        "lists it (labelling them needs the files)", self.path, len(absent), len(labels),
                        self.root, absent[0])
        return labels

    def read_item(self, item: ImageLabels) -> ImageLabels:
        # the file, where it is here, must be the size the JSON records: annotations drawn on another
        # canvas would be rasterised wrong, and masks looked up for it blamed. A file that is not here
        # keeps the JSON's ground truth (converting a file away from its images is fine), counted.
        path = Path(self._coco.image_path(item))
        if not os.path.lexists(path):  # a broken link is there, unreadable, below
            self._absent.append(item.file_name)
        else:
            h, w, error = image_size(path)
            if error is not None:
                return item.replace(instances=(), error=error)
            if (h, w) != item.size_hw and item.size_hw != (0, 0):  # 0x0: afss recorded it as unreadable then
                return item.replace(instances=(), error=size_mismatch(path, item.size_hw, (h, w)))
        if self.masks is None:
            instances = tuple(i if i.source else i.replace(source=GT_SOURCE) for i in item.instances)
            return item.replace(instances=instances)
        instances, error, state = self.masks.instances(item.file_name, item.size_hw, category_id=self._category_id)
        meta = {**item.meta, "mask": state}
        return item.replace(instances=instances, error=error if error is not None else item.error, meta=meta)
