"""Dataset readers: public spacecraft datasets on disk -> a ground-truth `LabelSet`.

``read_dataset(kind, root, ...)`` reads one by name; ``open_dataset`` does the same in two steps
(check and plan, then ``read(progress)``) so a caller can size a progress bar first. Kinds:

* ``folder``    – an image folder (no ground truth), optionally with same-named binary masks;
* ``coco``      – a COCO instances JSON, optionally with a flat folder of same-named binary masks;
* ``spark``     – SPARK-2024 stream 1 (``<split>.csv``, ``images/<Class>/<split>/``, colour masks);
* ``speedplus`` – SPEED+ / SPEED-UE-Cube (``<domain>/<split>.json``, ``images/``, optional ``masks/``);
* ``tango``     – ``Tango_RoI_and_SS`` (``<split>_SS_img/<stem>.<ext>`` + ``<stem>_mask.png``).

Every reader returns ground truth with ``file_name`` relative to ``image_root`` (the dataset root),
sizes from the stored images, masks as RLE, score 1.0, source ``"gt"`` and 1-based category ids.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from afss.datasets.common import DatasetReader, Progress
from afss.errors import AfssError, unknown_choice
from afss.types import LabelSet

# kind -> ("module:Class", options it takes); imported lazily.
READERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "folder": ("afss.datasets.folder:FolderReader", ("masks", "missing_mask")),
    "coco": ("afss.datasets.coco_json:CocoReader", ("split", "masks", "image_root", "missing_mask",
                                                     "allow_absolute_paths")),
    "spark": ("afss.datasets.spark:SparkReader", ("split", "missing_mask", "box_tolerance_px")),
    "speedplus": ("afss.datasets.speedplus:SpeedPlusReader", ("split", "domain", "masks", "missing_mask")),
    "tango": ("afss.datasets.tango:TangoReader", ("split", "missing_mask")),
}


def reader_class(kind: str) -> type[DatasetReader]:
    if kind not in READERS:
        raise unknown_choice("dataset kind", kind, READERS)
    module, cls = READERS[kind][0].split(":")
    return getattr(importlib.import_module(module), cls)


def open_dataset(kind: str, root: str | os.PathLike, **options: Any) -> DatasetReader:
    """Check the dataset and plan its images (fast; no pixels read). ``None`` options are ignored.

    Raises:
        AfssError: unknown kind, an option this kind does not take, or bad input (see each reader).
    """
    cls = reader_class(kind)
    options = {k: v for k, v in options.items() if v is not None}
    allowed = READERS[kind][1]
    extra = sorted(set(options) - set(allowed))
    if extra:
        takes = ", ".join(allowed) or "no options"
        raise AfssError(f"dataset kind {kind!r} does not take {', '.join(extra)} (it takes: {takes})")
    return cls(root, **options)


def read_dataset(kind: str, root: str | os.PathLike, *, split: str | None = None, domain: str | None = None,
                 masks: str | os.PathLike | None = None, progress: Progress | None = None,
                 **options: Any) -> LabelSet:
    """Read a dataset's ground truth.

    Args:
        kind: one of ``folder``, ``coco``, ``spark``, ``speedplus``, ``tango``.
        root: the dataset folder (for ``coco``: the JSON file or its folder).
        split: which split (``spark``: train/val/test; ``speedplus``: train/validation/test;
            ``tango``: train/test; ``coco``: picks ``instances_<split>.json``); default: all present.
        domain: ``speedplus`` only; default ``"synthetic"``.
        masks: folder of binary masks named like the images (``folder``, ``coco``, ``speedplus``).
        progress: called with ``1`` after each image.
        **options: further reader options: ``missing_mask`` (``"empty"`` or ``"error"``, see
            `DatasetReader`), ``image_root`` (``coco``), ``box_tolerance_px`` (``spark``).

    Returns:
        The ground truth as a `LabelSet`; unreadable images are recorded with ``error`` set.

    Example:
        >>> gt = read_dataset("spark", "data/spark2024", split="val")  # doctest: +SKIP
        >>> len(gt), gt.categories[1]
        (20000, 'Cheops')
    """
    reader = open_dataset(kind, root, split=split, domain=domain, masks=masks, **options)
    return reader.read(progress)


__all__ = ["READERS", "DatasetReader", "open_dataset", "read_dataset", "reader_class"]
