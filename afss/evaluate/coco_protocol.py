"""Standard COCO AP through faster-coco-eval's ``COCOeval_faster`` (the same numbers as pycocotools'
``COCOeval``; ``tests/test_evaluate.py`` checks them to 1e-6 on random data).

Ground truth and predictions are handed over as in-memory COCO dicts that share image ids (the
pairing already matched images by file name). Prediction ``area`` is the mask area for ``segm`` and
the box area for ``bbox``, exactly what pycocotools' ``loadRes`` computes for separate segm and bbox
result files, so size-range APs agree with the usual tools. Crowd ground truth is ignored as COCO does.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster
from pycocotools import mask as mask_utils

from afss.evaluate.pairing import Pairs
from afss.evaluate.report import ALL, EvalRow
from afss.types import ImageLabels

__all__ = ["coco_rows"]


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """faster-coco-eval's ``print_function``: say nothing (the CLI prints one table)."""


def _images(images: tuple[ImageLabels, ...]) -> list[dict[str, Any]]:
    return [{"id": im.image_id, "file_name": im.file_name, "height": im.height, "width": im.width} for im in images]


def _anns(images: tuple[ImageLabels, ...], iou_type: str, *, is_gt: bool) -> list[dict[str, Any]]:
    anns: list[dict[str, Any]] = []
    for im in images:
        for inst in im.instances:
            x0, y0, x1, y1 = inst.box_xyxy
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": im.image_id,
                "category_id": inst.category_id,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": int(inst.iscrowd) if is_gt else 0,
                "score": inst.score,
            }
            if iou_type == "segm":
                rle = {"size": list(inst.rle["size"]), "counts": inst.rle["counts"]}
                ann["segmentation"] = rle
                # Ground truth keeps its recorded area (mask area when it has a mask); a predicted
                # mask's area is its pixel count, as pycocotools' loadRes sets it.
                ann["area"] = inst.area if is_gt else float(_rle_area(rle))
            else:
                ann["area"] = inst.area if is_gt else (x1 - x0) * (y1 - y0)
            anns.append(ann)
    return anns


def _rle_area(rle: dict[str, Any]) -> int:
    counts = rle["counts"]
    return int(mask_utils.area({"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}))


def run_cocoeval(pairs: Pairs, iou_type: str) -> COCOeval_faster:
    """Run ``COCOeval_faster`` (evaluate + accumulate, silenced) and return it."""
    cats = [{"id": k, "name": v, "supercategory": "object"} for k, v in pairs.categories.items()]
    images = _images(pairs.gt)
    gt = COCO({"images": images, "annotations": _anns(pairs.gt, iou_type, is_gt=True), "categories": cats},
              print_function=_quiet)
    dt = COCO({"images": images, "annotations": _anns(pairs.pred, iou_type, is_gt=False), "categories": cats},
              print_function=_quiet)
    ev = COCOeval_faster(gt, dt, iouType=iou_type, print_function=_quiet)
    ev.params.imgIds = [im.image_id for im in pairs.gt]
    ev.params.catIds = list(pairs.categories)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    return ev


def _mean(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else None


def _row(ev: COCOeval_faster, iou_type: str, name: str, k: slice | int, counts: tuple[int, int, int]) -> EvalRow:
    """Summarise like ``COCOeval.summarize`` (maxDets 100) for category index ``k`` or all (slice)."""
    p = ev.params
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    recall = ev.eval["recall"]  # [T, K, A, M]
    m = list(p.maxDets).index(100) if 100 in p.maxDets else len(p.maxDets) - 1
    labels = list(p.areaRngLbl)
    thrs = np.asarray(p.iouThrs)

    def ap(area: str = "all", thr: float | None = None) -> float | None:
        s = precision[..., labels.index(area), m][:, :, k]
        if thr is not None:
            s = s[np.isclose(thrs, thr)]
        return _mean(np.asarray(s))

    return EvalRow(
        protocol="coco", iou_type=iou_type, category=name,
        ap=ap(), ap50=ap(thr=0.5), ap75=ap(thr=0.75),
        aps=ap("small"), apm=ap("medium"), apl=ap("large"),
        ar=_mean(np.asarray(recall[:, k, labels.index("all"), m])),
        num_images=counts[0], num_gt=counts[1], num_pred=counts[2],
    )


def coco_rows(pairs: Pairs, iou_type: str) -> list[EvalRow]:
    """COCO AP rows for one IoU type: ``"all"`` first, then one per category when there are several."""
    ev = run_cocoeval(pairs, iou_type)
    n_img = len(pairs.gt)

    def count(images: tuple[ImageLabels, ...], cat: int | None, gt: bool) -> int:
        return sum(1 for im in images for i in im.instances
                   if (cat is None or i.category_id == cat) and not (gt and i.iscrowd))

    rows = [_row(ev, iou_type, ALL, slice(None), (n_img, count(pairs.gt, None, True), count(pairs.pred, None, False)))]
    if len(pairs.categories) > 1:
        cat_ids = list(ev.params.catIds)
        for cid, name in pairs.categories.items():
            rows.append(_row(ev, iou_type, name, cat_ids.index(cid),
                             (n_img, count(pairs.gt, cid, True), count(pairs.pred, cid, False))))
    return rows
