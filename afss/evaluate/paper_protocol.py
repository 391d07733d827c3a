"""The single-target protocol of the paper's reference code (arXiv 2602.04699), written here because
no library implements it.

For each category (one when classes are collapsed):

* **one target per image**: the union of the image's non-crowd ground-truth instances (mask union
  for ``segm``, the box enclosing them all for ``bbox``). The datasets show one spacecraft per image;
  merging makes an image with a split ground truth (e.g. body and panels annotated apart) one target
  instead of two unreachable ones. Crowd instances are left out. An image without ground truth has
  no target: a prediction there is a false positive and it adds nothing to the recall denominator.
* **top-1 prediction per image**: the highest-scoring instance (first one on ties).
* predictions are ranked by score across images (stable sort, like COCO) and greedily matched to an
  unmatched target at IoU >= t for t in 0.50:0.05:0.95; with one prediction and one target per image
  a prediction is a true positive exactly when its IoU with its own image's target reaches t.
* precision is made monotone (COCO's envelope) and sampled at 101 recall points; an image without a
  prediction is a miss that stays in the recall denominator; AP is the mean over the thresholds.
  AP75 is read at t = 0.75 (the reference code's float-key lookup always gave NaN there).

This is exact, and it is not what the reference code's ``evaluate_predictions.py`` computes: that
reads the mask files as grey > 0 (JPEG ringing included), keeps images with an empty mask as
unreachable targets, takes each image's first stored prediction, counts in float32 and uses
``np.arange`` thresholds. `afss.evaluate.reference_protocol` reproduces it; docs/evaluation.md
measures each difference.

The summary row of several categories is the mean over categories with targets, as COCO does.
IoUs come from ``pycocotools.mask.iou`` on RLE, so masks are never decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from pycocotools import mask as mask_utils

from afss.evaluate.pairing import Pairs
from afss.evaluate.report import ALL, EvalRow
from afss.types import Instance

__all__ = ["IOU_THRESHOLDS", "RECALL_POINTS", "paper_rows", "single_target_ap"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
"""t = 0.50, 0.55, ..., 0.95 (the same floats COCOeval uses)."""

RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def single_target_ap(ious: np.ndarray, scores: np.ndarray, num_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """AP and final recall per IoU threshold for one prediction per image.

    Args:
        ious: ``(P,)`` float IoU of each scored prediction with its image's target (0 where the
            image has no target).
        scores: ``(P,)`` float confidence of each prediction.
        num_targets: images with a target (the recall denominator); misses included.

    Returns:
        ``(ap, recall)``, each ``(T,)`` float over `IOU_THRESHOLDS`; NaN when ``num_targets == 0``.
    """
    t_count = len(IOU_THRESHOLDS)
    if num_targets == 0:
        return np.full(t_count, np.nan), np.full(t_count, np.nan)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    ious = np.asarray(ious, dtype=float)[order]
    ap = np.zeros(t_count)
    recall_end = np.zeros(t_count)
    if ious.size == 0:
        return ap, recall_end
    for j, t in enumerate(IOU_THRESHOLDS):
        tp = np.cumsum(ious >= min(t, 1 - 1e-10))  # COCOeval's threshold test
        fp = np.arange(1, ious.size + 1) - tp
        recall = tp / num_targets
        precision = tp / np.maximum(tp + fp, np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
        idx = np.searchsorted(recall, RECALL_POINTS, side="left")
        q = np.where(idx < precision.size, precision[np.minimum(idx, precision.size - 1)], 0.0)
        ap[j] = q.mean()
        recall_end[j] = recall[-1]
    return ap, recall_end


def _bytes(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _iou(pred: Instance, target: Sequence[Instance], iou_type: str) -> float:
    if iou_type == "segm":
        rles = [_bytes(g.rle) for g in target]
        union = rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False)
        return float(mask_utils.iou([_bytes(pred.rle)], [union], [0])[0, 0])
    boxes = np.array([g.box_xyxy for g in target], dtype=float)
    gx0, gy0 = boxes[:, 0].min(), boxes[:, 1].min()
    gx1, gy1 = boxes[:, 2].max(), boxes[:, 3].max()
    px0, py0, px1, py1 = pred.box_xyxy
    inter = max(0.0, min(px1, gx1) - max(px0, gx0)) * max(0.0, min(py1, gy1) - max(py0, gy0))
    union_area = (px1 - px0) * (py1 - py0) + (gx1 - gx0) * (gy1 - gy0) - inter
    return inter / union_area if union_area > 0 else 0.0


def _category_row(pairs: Pairs, iou_type: str, cat: int, name: str) -> tuple[EvalRow, np.ndarray]:
    ious: list[float] = []
    scores: list[float] = []
    targets = 0
    for g, p in zip(pairs.gt, pairs.pred):
        target = [i for i in g.instances if i.category_id == cat and not i.iscrowd]
        targets += bool(target)
        preds = [i for i in p.instances if i.category_id == cat]
        if not preds:
            continue
        best = max(preds, key=lambda i: i.score)  # first of equal scores
        scores.append(best.score)
        ious.append(_iou(best, target, iou_type) if target else 0.0)
    ap, recall = single_target_ap(np.array(ious), np.array(scores), targets)
    row = EvalRow(
        protocol="paper", iou_type=iou_type, category=name,
        ap=_value(ap.mean()), ap50=_value(ap[0]), ap75=_value(ap[np.isclose(IOU_THRESHOLDS, 0.75)][0]),
        ar=_value(recall.mean()), num_images=len(pairs.gt), num_gt=targets, num_pred=len(scores),
    )
    return row, ap


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def paper_rows(pairs: Pairs, iou_type: str) -> list[EvalRow]:
    """Paper-protocol rows for one IoU type: ``"all"`` first, then one per category when several."""
    per_cat = [_category_row(pairs, iou_type, cid, name) for cid, name in pairs.categories.items()]
    if len(per_cat) == 1:
        return [replace(per_cat[0][0], category=ALL)]
    rows = [r for r, _ in per_cat]
    defined = [r for r in rows if r.ap is not None]

    def mean(key: str) -> float | None:
        vals = [getattr(r, key) for r in defined]
        return float(np.mean(vals)) if vals else None

    summary = EvalRow(
        protocol="paper", iou_type=iou_type, category=ALL,
        ap=mean("ap"), ap50=mean("ap50"), ap75=mean("ap75"), ar=mean("ar"),
        num_images=len(pairs.gt), num_gt=sum(r.num_gt for r in rows), num_pred=sum(r.num_pred for r in rows),
    )
    return [summary, *rows]
