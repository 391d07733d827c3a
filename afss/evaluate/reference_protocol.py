"""The paper's protocol computed the way its reference script computes it, to reproduce published numbers.

The reference is ``evaluate_predictions.py`` in github.com/giddyyupp/annotation-free-spacecraft-segmentation
(read, not copied; this is the algorithm in our words). Where it differs from afss's exact ``paper``
protocol (`afss.evaluate.paper_protocol`), this module follows the reference:

* **ground truth** is each image's mask *file*, read as grey level ``> 0`` (TANGO: red ``> 0``), see
  `afss.evaluate.reference_masks`; not the COCO ground truth, whose masks afss's readers threshold
  at 128. JPEG ringing around a mask is therefore foreground.
* **every evaluated image is a target**, also one whose mask is empty: no prediction can reach it
  (its IoU is 0), yet it stays in the recall denominator. ``paper`` gives such an image no target.
* **the first prediction** of each image is scored (the first annotation stored for it), not the
  highest-scoring one.
* **float32 counters**: true/false positives are accumulated in float32, so recall and precision are
  float32; a recall that float32 rounds just below a point of the float64 101-point grid
  ``linspace(0, 1, 101)`` does not reach it. (The comparison is done in float64 on the float32
  recall, numpy >= 2's rule; under numpy 1.x the grid point itself was rounded to float32 first.)
* **thresholds** ``np.arange(0.50, 0.96, 0.05)``: 0.6000000000000001, ..., 0.7500000000000002, ...,
  0.9500000000000004, tested as IoU ``>=`` t; an IoU exactly at 0.6, 0.65, ... misses.
* **AP75**: the reference looks up 0.75 among those floats, finds nothing and prints NaN. This
  module reports AP75 at exactly 0.75 (same arithmetic) and says so in a note; AP and AP50 are the
  ones the reference prints.

Predictions are ranked by score with a stable sort; the reference breaks ties in ``os.listdir``
order of its prediction folders, which no other program can reproduce; here ties keep the ground
truth's image order. Masks only: the reference has no box protocol.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from afss.evaluate.pairing import Pairs
from afss.evaluate.reference_masks import ReferenceMasks
from afss.evaluate.report import ALL, EvalRow

__all__ = ["AP75_THRESHOLD", "REFERENCE_IOU_THRESHOLDS", "reference_ap", "reference_rows"]

REFERENCE_IOU_THRESHOLDS = np.arange(0.50, 0.96, 0.05)
"""The reference's thresholds, computed as it computes them (so the same floats)."""

AP75_THRESHOLD = 0.75
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AP75_NOTE = ("reference: AP75 is at IoU exactly 0.75; the reference script prints NaN there "
             "(its thresholds hold 0.7500000000000002)")


def reference_ap(ious: np.ndarray, scores: np.ndarray, num_targets: int,
                 thresholds: np.ndarray = REFERENCE_IOU_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """AP and final recall per threshold, with the reference's arithmetic.

    Args:
        ious: ``(P,)`` float64 IoU of each image's first prediction with that image's mask.
        scores: ``(P,)`` confidence of those predictions.
        num_targets: evaluated images, empty masks included (the recall denominator).
        thresholds: ``(T,)`` IoU thresholds, tested as ``iou >= t``.

    Returns:
        ``(ap, recall)``: ``(T,)`` float64 each; ``recall`` is the float32 final recall.
    """
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ious = np.asarray(ious, dtype=float)[order]
    ap = np.zeros(len(thresholds))
    recall_end = np.zeros(len(thresholds))
    if ious.size == 0:
        return ap, recall_end
    for j, t in enumerate(thresholds):
        hit = (ious >= t).astype(np.float32)
        tp = np.cumsum(hit)                    # float32, like the reference's counters
        fp = np.cumsum(np.float32(1) - hit)
        recall = tp / np.float32(num_targets)  # float32 division (its 1e-12 vanishes in float32)
        precision = tp / (tp + fp)             # float32; tp + fp >= 1
        best_after = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at recall >= r
        first = np.searchsorted(recall.astype(np.float64), RECALL_POINTS, side="left")
        reached = first < recall.size
        sampled = np.where(reached, best_after[np.minimum(first, recall.size - 1)].astype(np.float64), 0.0)
        ap[j] = sampled.mean()
        recall_end[j] = float(recall[-1])
    return ap, recall_end


def _bytes(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def reference_rows(pairs: Pairs, masks: ReferenceMasks) -> tuple[list[EvalRow], list[str]]:
    """The ``reference`` row (segm, one class) and notes on what it counted.

    Every image of ``pairs.gt`` is a target whose mask comes from ``masks``; its prediction is the
    first instance of ``pairs.pred``'s image (categories already mapped and collapsed).

    Raises:
        AfssError: a mask file missing, unreadable or not the image's size.
    """
    ious: list[float] = []
    scores: list[float] = []
    empty = 0
    for g, p in zip(pairs.gt, pairs.pred):
        mask = masks.read(g)
        empty += not mask.any()
        if not p.instances:
            continue
        first = p.instances[0]
        gt_rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        ious.append(float(mask_utils.iou([_bytes(first.rle)], [gt_rle], [0])[0, 0]))
        scores.append(first.score)
    targets = len(pairs.gt)
    ap, recall = reference_ap(np.array(ious), np.array(scores), targets)
    ap75, _ = reference_ap(np.array(ious), np.array(scores), targets, np.array([AP75_THRESHOLD]))
    row = EvalRow(protocol="reference", iou_type="segm", category=ALL, ap=float(ap.mean()), ap50=float(ap[0]),
                  ap75=float(ap75[0]), ar=float(recall.mean()), num_images=targets, num_gt=targets,
                  num_pred=len(scores))
    notes = [AP75_NOTE]
    if empty:
        notes.append(f"reference: {empty} image(s) have an empty ground-truth mask and count as targets "
                     "no prediction can reach")
    return [row], notes
