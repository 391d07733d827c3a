"""Precision–recall curves: COCOeval's interpolated precision at its 101 recall points.

The curve is the array COCO AP averages (``eval["precision"]``, area ``all``, 100 detections), so the
mean of ``curve.at(0.5)`` over the recall points is the COCO AP50 `afss.evaluate.evaluate` reports,
and the mean of ``curve.mean()`` is the AP. Images are paired and categories collapsed exactly as
`evaluate` does it.

Example:
    >>> curve = pr_curves("gt.json", "labels.json", iou_type="segm")  # doctest: +SKIP
    >>> curve.recall.shape, curve.at(0.5).shape  # doctest: +SKIP
    ((101,), (101,))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from afss.errors import AfssError, AfssValueError
from afss.evaluate.api import IOU_TYPES
from afss.evaluate.coco_protocol import run_cocoeval
from afss.evaluate.inputs import load_labels, load_predictions, segm_skip_reason
from afss.evaluate.pairing import pair_images
from afss.types import LabelSet

__all__ = ["PrCurve", "pr_curves"]


@dataclass(frozen=True)
class PrCurve:
    """Precision against recall at every COCO IoU threshold, one collapsed class.

    Args:
        iou_type: ``"segm"`` or ``"bbox"``.
        recall: ``(R,)`` float, the recall points 0, 0.01, ..., 1.
        iou_thresholds: ``(T,)`` float, 0.5, 0.55, ..., 0.95.
        precision: ``(T, R)`` float, interpolated precision (COCO's: the best precision at this
            recall or higher); 0 past the highest recall reached, NaN where there is no ground truth.
    """

    iou_type: str
    recall: np.ndarray
    iou_thresholds: np.ndarray
    precision: np.ndarray

    def at(self, iou_threshold: float) -> np.ndarray:
        """``(R,)`` precision at one of `iou_thresholds` (e.g. 0.5)."""
        hit = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold))
        if not hit.size:
            raise AfssValueError(f"IoU threshold {iou_threshold} is not one of {self.iou_thresholds.round(2).tolist()}")
        return self.precision[hit[0]]

    def mean(self) -> np.ndarray:
        """``(R,)`` precision averaged over the IoU thresholds (the curve under COCO's AP)."""
        return self.precision.mean(axis=0)


def pr_curves(gt: LabelSet | str | os.PathLike, pred: LabelSet | str | os.PathLike, *, iou_type: str = "segm",
              only_labelled: bool = False, allow_absolute_paths: bool = False) -> PrCurve:
    """The precision–recall curves of ``pred`` against ``gt`` (see the module docstring).

    Args:
        gt, pred: as for `afss.evaluate.evaluate` (label sets or COCO JSON paths).
        iou_type: ``"segm"`` (mask IoU) or ``"bbox"``.
        only_labelled: score only the images where ``pred`` holds an instance.
        allow_absolute_paths: accept absolute ``file_name`` entries.

    Raises:
        AfssError: as `evaluate`, and ``segm`` where a side has no masks.
    """
    if iou_type not in IOU_TYPES:
        raise AfssError(f"unknown IoU type {iou_type!r}, expected one of {', '.join(IOU_TYPES)}")
    gt_set, gt_name = load_labels(gt, "gt", allow_absolute_paths=allow_absolute_paths)
    pred_set, pred_name = load_predictions(pred, gt_set, allow_absolute_paths)
    pairs = pair_images(gt_set, pred_set, only_labelled=only_labelled, gt_name=gt_name, pred_name=pred_name)
    if not pairs.gt:
        raise AfssError(f"{gt_name}: no ground-truth image left to evaluate")
    if iou_type == "segm" and (why := segm_skip_reason(pairs, gt_name, pred_name)) is not None:
        raise AfssError(f"no mask precision-recall curve: {why}")
    ev = run_cocoeval(pairs, iou_type)
    p = ev.params
    area = list(p.areaRngLbl).index("all")
    m = list(p.maxDets).index(100) if 100 in p.maxDets else len(p.maxDets) - 1
    precision = np.asarray(ev.eval["precision"], dtype=float)[:, :, 0, area, m]  # [T, R]: one collapsed class
    precision = np.where(precision < 0, np.nan, precision)  # -1: no ground truth
    return PrCurve(iou_type=iou_type, recall=np.asarray(p.recThrs, dtype=float),
                   iou_thresholds=np.asarray(p.iouThrs, dtype=float), precision=precision)
