"""SPEED+ (and SPEED-UE-Cube): pose labels per domain, with the separately published binary masks.

Layout (see DATASETS.md)::

    <root>/camera.json                              intrinsics, kept in LabelSet.info["camera"]
    <root>/<domain>/{train,validation,test}.json    [{"filename", "q_vbs2tango_true", "r_Vo2To_vbs_true"}]
    <root>/<domain>/images/img000001.jpg
    <root>/<domain>/masks/img000001.jpg             optional; 0/255, foreground >= 128

File names match with or without an extension (SPEED-UE-Cube writes ``"img002000"``); a mask is
``masks/<image file name>``, else ``masks/<stem>.<png|jpg|...>``. The pose goes to ``meta``
(``q_vbs2tango_true`` scalar-first quaternion, ``r_Vo2To_vbs_true`` metres), with ``domain`` and
``split``.

SPEED+ ships without masks. An image without a mask file is kept with **no instances** and
``meta["mask"] = "missing"`` (not an ``error``): the output is then an image list with poses, ready
for labelling, but it is not ground truth for AP — scoring against it counts every prediction on
such an image as a false positive. A warning says how many images had no mask; with
``missing_mask="error"`` they are recorded as errors instead, which ``afss eval`` leaves out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afss.datasets.common import (
    DatasetReader,
    empty_error,
    find_with_stem,
    image_size,
    read_json,
    relative_name,
    require_dir,
)
from afss.datasets.masks_folder import MaskFolder
from afss.errors import AfssError
from afss.io.images import IMAGE_EXTENSIONS
from afss.types import ImageLabels

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "synthetic"
SPLIT_ORDER = ("train", "validation", "test")
SPLIT_ALIASES = {"val": "validation", "valid": "validation"}
POSE_KEYS = ("q_vbs2tango_true", "r_Vo2To_vbs_true")


@dataclass(frozen=True)
class _Entry:
    image: Path
    split: str
    pose: dict[str, Any]


class SpeedPlusReader(DatasetReader):
    """SPEED+ images of one domain with poses, and masks where ``<domain>/masks/`` has them.

    Args:
        root: the dataset folder (usually ``speedplusv2/``).
        domain: ``"synthetic"`` (default), ``"lightbox"``, ``"sunlamp"``, or any sub-folder (``"train"``
            for SPEED-UE-Cube).
        split: ``"train"``, ``"validation"`` (or ``"val"``), ``"test"``: reads ``<domain>/<split>.json``;
            default: every one of ``train.json``, ``validation.json``, ``test.json`` present.
        masks: masks folder; default ``<domain>/masks`` when it exists.

    Raises:
        AfssError: missing folder or label file, a JSON that is not a SPEED+ label list, no images.

    Example:
        >>> gt = SpeedPlusReader("speedplusv2", domain="lightbox").read()  # doctest: +SKIP
        >>> gt.images[0].meta["q_vbs2tango_true"], gt.info["camera"]["fx"]
    """

    kind = "speedplus"

    def __init__(self, root: str | os.PathLike, *, domain: str | None = None, split: str | None = None,
                 masks: str | os.PathLike | None = None, missing_mask: str = "empty") -> None:
        super().__init__(missing_mask=missing_mask)
        self.root = require_dir(root, "SPEED+ dataset folder")
        self.domain = domain or DEFAULT_DOMAIN
        domain_dir = self.root / self.domain
        if not domain_dir.is_dir():
            found = sorted(d.name for d in self.root.iterdir() if d.is_dir())
            raise AfssError(f"{domain_dir}: no such SPEED+ domain folder (found: {', '.join(found) or 'none'})")
        images_dir = require_dir(domain_dir / "images", "SPEED+ images folder")
        camera = self._read_camera()
        label_files = self._label_files(domain_dir, split)
        for path in label_files:
            self.items += self._plan(path, images_dir)
        if not self.items:
            raise empty_error(domain_dir, f"{', '.join(p.name for p in label_files)} list no image")
        mask_dir = Path(masks) if masks is not None else domain_dir / "masks"
        self.masks = MaskFolder(mask_dir) if masks is not None or mask_dir.is_dir() else None
        if self.masks is None:
            log.warning("%s: no masks folder; images get no instances (SPEED+ ships without masks)", mask_dir)
        self.info = {"domain": self.domain, "splits": [p.stem for p in label_files],
                     "masks": None if self.masks is None else str(self.masks.folder)}
        if camera is not None:
            self.info["camera"] = camera

    def _read_camera(self) -> dict[str, Any] | None:
        path = self.root / "camera.json"
        if not path.is_file():
            log.info("%s: not found; no camera intrinsics recorded", path)
            return None
        camera = read_json(path)
        if not isinstance(camera, dict):
            raise AfssError(f"{path}: expected an object with keys like fx, fy, cameraMatrix, "
                            f"found a {type(camera).__name__}")
        return camera

    @staticmethod
    def _label_files(domain_dir: Path, split: str | None) -> list[Path]:
        if split is not None:
            path = domain_dir / f"{SPLIT_ALIASES.get(split, split)}.json"
            if not path.is_file():
                found = sorted(p.name for p in domain_dir.glob("*.json"))
                raise AfssError(f"{path}: no such SPEED+ label file (found: {', '.join(found) or 'none'})")
            return [path]
        files = [domain_dir / f"{s}.json" for s in SPLIT_ORDER if (domain_dir / f"{s}.json").is_file()]
        if not files:
            raise AfssError(f"{domain_dir}: no train.json, validation.json or test.json")
        return files

    def _plan(self, path: Path, images_dir: Path) -> list[_Entry]:
        data = read_json(path)
        expected = "a SPEED+ label list (a JSON list of objects with 'filename', 'q_vbs2tango_true', 'r_Vo2To_vbs_true')"
        if not isinstance(data, list):
            found = f"an object with keys {sorted(data)[:6]}" if isinstance(data, dict) else f"a {type(data).__name__}"
            raise AfssError(f"{path}: expected {expected}, found {found}")
        entries = []
        for k, rec in enumerate(data):
            if not isinstance(rec, dict) or not isinstance(rec.get("filename"), str):
                raise AfssError(f"{path}: entry {k}: expected an object with a string 'filename', found {rec!r:.80}")
            image = find_with_stem(images_dir, rec["filename"], IMAGE_EXTENSIONS) or images_dir / rec["filename"]
            entries.append(_Entry(image=image, split=path.stem, pose={k2: rec[k2] for k2 in POSE_KEYS if k2 in rec}))
        return entries

    def read_item(self, entry: _Entry) -> ImageLabels:
        name = relative_name(entry.image, self.root)
        meta = {"domain": self.domain, "split": entry.split, **entry.pose}
        h, w, error = image_size(entry.image)
        if error is not None:
            return ImageLabels(file_name=name, height=h, width=w, error=error, meta=meta)
        if self.masks is None:
            return ImageLabels(file_name=name, height=h, width=w, meta=meta | {"mask": "missing"})
        instances, error, state = self.masks.instances(entry.image.name, (h, w))
        return ImageLabels(file_name=name, height=h, width=w, instances=instances, error=error,
                           meta=meta | {"mask": state})
