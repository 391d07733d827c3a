"""COCO instances JSON <-> `LabelSet`, losslessly.

What afss writes is plain COCO that pycocotools, CVAT and FiftyOne read, plus a few extra keys they
ignore: ``score`` on every annotation (1.0 for ground truth), ``source``, optional ``scores`` and
``parts`` (RLE) on annotations; ``afss_error`` and ``afss_meta`` on images; run provenance and the
image root (relative to the JSON file) in ``info``. Masks are RLE with ``counts`` as ``str``.
Reading also accepts polygon and uncompressed-RLE segmentations and files without ``score``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from afss.errors import AfssError
from afss.io.atomic import write_json_atomic
from afss.types import ImageLabels, Instance, LabelSet, Rle, rle_box_xyxy

__all__ = ["labelset_from_coco", "labelset_to_coco", "read_coco", "write_coco"]


def read_coco(path: str | os.PathLike, *, image_root: str | os.PathLike | None = None) -> LabelSet:
    """Read a COCO instances JSON file.

    Args:
        path: the JSON file.
        image_root: folder the ``file_name`` entries are relative to. Default: the root recorded by
            afss in ``info["image_root"]`` (relative to the JSON file), else the JSON file's folder.

    Raises:
        AfssError: the file is missing, not JSON, or not COCO instances; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise AfssError(f"{path}: is a folder, expected a COCO JSON file")
    if not path.is_file():
        raise AfssError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AfssError(f"{path}: not valid JSON ({e})") from e
    if image_root is None:
        recorded = data.get("info", {}).get("image_root") if isinstance(data, dict) else None
        image_root = (path.parent / recorded) if recorded is not None else path.parent
    return labelset_from_coco(data, image_root=os.path.normpath(image_root), where=str(path))


def write_coco(labels: LabelSet, path: str | os.PathLike, *, indent: int | None = None) -> Path:
    """Write atomically as COCO instances JSON; returns the path. The image root is stored relative
    to the JSON file so the folder can be moved as a whole."""
    path = Path(path)
    data = labelset_to_coco(labels)
    if labels.image_root is not None:
        root = Path(labels.image_root).resolve()
        try:
            data["info"]["image_root"] = os.path.relpath(root, path.parent.resolve())
        except ValueError:  # different drive on Windows
            data["info"]["image_root"] = str(root)
    write_json_atomic(path, data, indent=indent)
    return path


def labelset_to_coco(labels: LabelSet) -> dict[str, Any]:
    images, annotations = [], []
    for im in labels.images:
        entry: dict[str, Any] = {
            "id": im.image_id, "file_name": im.file_name, "height": im.height, "width": im.width,
        }
        if im.error is not None:
            entry["afss_error"] = im.error
        if im.meta:
            entry["afss_meta"] = dict(im.meta)
        images.append(entry)
        for inst in im.instances:
            annotations.append(_annotation(inst, im.image_id, len(annotations) + 1))
    info = dict(labels.info)
    info.pop("image_root", None)
    return {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v, "supercategory": "object"} for k, v in labels.categories.items()],
    }


def _annotation(inst: Instance, image_id: int, ann_id: int) -> dict[str, Any]:
    x0, y0, x1, y1 = inst.box_xyxy
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": inst.category_id,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": inst.area,
        "iscrowd": int(inst.iscrowd),
        "score": inst.score,
    }
    if inst.rle is not None:
        ann["segmentation"] = {"size": list(inst.rle["size"]), "counts": inst.rle["counts"]}
    if inst.source:
        ann["source"] = inst.source
    if inst.scores:
        ann["scores"] = dict(inst.scores)
    if inst.parts:
        ann["parts"] = {k: {"size": list(r["size"]), "counts": r["counts"]} for k, r in inst.parts.items()}
    return ann


def labelset_from_coco(data: Any, *, image_root: str | None = None, where: str = "<coco>") -> LabelSet:
    """Build a `LabelSet` from parsed COCO JSON; ``where`` names the source in error messages."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        found = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)[:6]}"
        raise AfssError(f"{where}: not a COCO instances file (expected an object with 'images', found {found})")
    categories = {}
    for c in data.get("categories") or [{"id": 1, "name": "spacecraft"}]:
        try:
            categories[int(c["id"])] = str(c.get("name", c["id"]))
        except (KeyError, TypeError, ValueError) as e:
            raise AfssError(f"{where}: category {c!r} has no integer 'id'") from e

    images: dict[int, dict[str, Any]] = {}
    for k, im in enumerate(data["images"]):
        try:
            iid, h, w, name = int(im["id"]), int(im["height"]), int(im["width"]), str(im["file_name"])
        except (KeyError, TypeError, ValueError) as e:
            raise AfssError(f"{where}: image {k} needs id, file_name, height and width ({e!r} missing or bad)") from e
        if iid in images:
            raise AfssError(f"{where}: image id {iid} appears twice")
        meta = im.get("afss_meta") or {}
        if not isinstance(meta, Mapping):
            raise AfssError(f"{where}: image {iid}: afss_meta is a {type(meta).__name__}, expected an object")
        images[iid] = {"file_name": name, "height": h, "width": w, "image_id": iid,
                       "error": im.get("afss_error"), "meta": meta, "instances": []}

    for k, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, Mapping):
            raise AfssError(f"{where}: annotation {k} is not an object")
        iid = ann.get("image_id")
        if iid not in images:
            raise AfssError(f"{where}: annotation {ann.get('id', k)} refers to unknown image_id {iid!r}")
        im = images[iid]
        at = f"{where}: annotation {ann.get('id', k)}"
        try:
            im["instances"].append(_instance(ann, im["height"], im["width"], at))
        except (TypeError, ValueError) as e:  # a value of the wrong type or range, e.g. category_id 0
            raise AfssError(f"{at}: {e}") from e

    return LabelSet(
        images=tuple(ImageLabels(**im) for im in images.values()),
        categories=categories,
        image_root=image_root,
        info={k: v for k, v in (data.get("info") or {}).items() if k != "image_root"},
    )


def _instance(ann: Mapping[str, Any], h: int, w: int, where: str) -> Instance:
    rle = _segmentation_rle(ann.get("segmentation"), h, w, where)
    if "bbox" in ann:
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            n = len(bbox) if isinstance(bbox, (list, tuple)) else type(bbox).__name__
            raise AfssError(f"{where}: bbox has {n} numbers, expected 4 [x, y, w, h]")
        x, y, bw, bh = (float(v) for v in bbox)
        if bw < 0 or bh < 0:
            raise AfssError(f"{where}: bbox {list(bbox)} has negative width or height")
        box = (x, y, x + bw, y + bh)
    elif rle is not None:
        box = rle_box_xyxy(rle)
    else:
        raise AfssError(f"{where}: has neither bbox nor segmentation")
    parts = {name: _segmentation_rle(seg, h, w, f"{where}: part {name}") for name, seg in (ann.get("parts") or {}).items()}
    return Instance(
        box_xyxy=box,
        rle=rle,
        score=float(ann.get("score", 1.0)),
        category_id=int(ann.get("category_id", 1)),
        source=str(ann.get("source", "")),
        iscrowd=bool(ann.get("iscrowd", 0)),
        scores={str(k): float(v) for k, v in dict(ann.get("scores") or {}).items()},
        parts=parts,
    )


def _segmentation_rle(seg: Any, h: int, w: int, where: str) -> Rle | None:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) -> compressed RLE, str counts."""
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        return None
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise AfssError(f"{where}: RLE segmentation needs 'size' and 'counts'")
        if list(seg["size"]) != [h, w]:
            raise AfssError(f"{where}: mask size {list(seg['size'])} differs from its image size [{h}, {w}]")
        if isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(dict(seg), h, w)
        else:
            counts = seg["counts"]
            return {"size": [h, w], "counts": counts if isinstance(counts, str) else counts.decode("ascii")}
    elif isinstance(seg, list):
        polys = [list(map(float, p)) for p in seg if len(p) >= 6]
        if not polys:
            raise AfssError(f"{where}: polygon segmentation has no polygon with 3 or more points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    else:
        raise AfssError(f"{where}: segmentation is a {type(seg).__name__}, expected polygons or RLE")
    counts = rle["counts"]
    return {"size": [h, w], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}

