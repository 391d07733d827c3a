"""What `afss.evaluate.evaluate` and `afss.evaluate.curves.pr_curves` read: ground truth and predictions
as `LabelSet` objects (from files or in memory), and whether their masks can be scored."""

from __future__ import annotations

import json
import os
from typing import Any

from afss.errors import AfssError
from afss.evaluate.pairing import Pairs
from afss.io.coco import labelset_from_coco, labelset_to_coco, read_coco
from afss.types import LabelSet

__all__ = ["load_labels", "load_predictions", "segm_skip_reason"]


def load_labels(labels: LabelSet | str | os.PathLike, role: str, image_root: str | os.PathLike | None = None,
                allow_absolute_paths: bool = False) -> tuple[LabelSet, str]:
    """``labels`` as a `LabelSet` and the name errors call it by: the file's path, or ``role``."""
    if isinstance(labels, LabelSet):
        return labels, role
    if not isinstance(labels, (str, os.PathLike)):
        raise AfssError(f"{role}: expected a LabelSet or the path of a COCO JSON file, got {type(labels).__name__}")
    return read_coco(labels, image_root=image_root, allow_absolute_paths=allow_absolute_paths,
                     predictions=role == "pred"), str(labels)


def load_predictions(pred: LabelSet | str | os.PathLike, gt: LabelSet,
                     allow_absolute_paths: bool = False) -> tuple[LabelSet, str]:
    """Predictions as afss/COCO instances JSON, or a plain COCO *results* list
    (``[{"image_id", "category_id", "bbox"/"segmentation", "score"}, ...]``, what detectors and
    pycocotools' ``loadRes`` use): a results list has no file names, so its ``image_id`` values
    must be the ground truth's."""
    try:
        return load_labels(pred, "pred", allow_absolute_paths=allow_absolute_paths)
    except AfssError:
        data = _json_list(pred)
        if data is None or not all(isinstance(a, dict) for a in data):
            raise
    known = {im.image_id for im in gt.images}
    unknown = [a.get("image_id") for a in data if a.get("image_id") not in known]
    if unknown:
        raise AfssError(f"{pred}: a COCO results list is matched by image_id, and {len(unknown)} result(s) "
                        f"have ids not in the ground truth, e.g. {unknown[0]!r}") from None
    coco = labelset_to_coco(gt.replace(images=tuple(im.replace(instances=(), error=None) for im in gt.images)))
    # a detector's own class ids: kept, named by their number (collapsed into one class by default;
    # --per-class then says they are not the ground truth's). Class 0, YOLO's first, which COCO files
    # cannot hold, takes a free id under the name "0".
    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    listed = {c["id"] for c in coco["categories"]}
    used = {a.get("category_id") for a in data if whole(a.get("category_id"))}
    zero = max(listed | used | {0}) + 1
    coco["annotations"] = [{**a, "id": k, **({"category_id": zero} if a.get("category_id") == 0 and whole(
        a.get("category_id")) else {})} for k, a in enumerate(data, start=1)]
    coco["categories"] += [{"id": c, "name": str(c), "supercategory": "object"} for c in sorted(
        {c for c in used if c > 0} - listed)]
    if 0 in used:
        coco["categories"].append({"id": zero, "name": "0", "supercategory": "object"})
    return labelset_from_coco(coco, image_root=gt.image_root, where=str(pred), predictions=True), str(pred)


def _json_list(path: str | os.PathLike) -> list | None:
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, ValueError, TypeError, RecursionError, MemoryError):  # the reader above said why, in one line
        return None
    return data if isinstance(data, list) else None


def segm_skip_reason(pairs: Pairs, gt_name: str, pred_name: str) -> str | None:
    """``None`` if segm can be scored, else why not (a note); raises on half-masked inputs."""
    for images, name in ((pairs.gt, gt_name), (pairs.pred, pred_name)):
        flags = [inst.rle is not None for im in images for inst in im.instances]
        if flags and not any(flags):
            return f"{name} has boxes but no masks: segm skipped"
        if not all(flags):
            im = next(im for im in images if any(i.rle is None for i in im.instances))
            raise AfssError(f"{name}: image {im.file_name!r} has an instance without a mask while others have "
                            "masks; segm needs masks everywhere (score boxes only: --iou-type bbox, or iou_types=('bbox',))")
    return None
