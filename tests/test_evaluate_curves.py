"""`pr_curves`: COCOeval's precision array as curves; its mean is the AP that `evaluate` reports."""

from __future__ import annotations

import numpy as np
import pytest

from afss.errors import AfssError
from afss.evaluate import evaluate
from afss.evaluate.curves import pr_curves
from afss.types import ImageLabels, Instance, LabelSet


def _square(x0: int, y0: int, side: int, score: float = 1.0) -> Instance:
    mask = np.zeros((64, 64), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return Instance.from_mask(mask, score=score)


GT = LabelSet(images=tuple(ImageLabels(f"{k}.png", 64, 64, (_square(4 * k, 8, 20),)) for k in range(4)))


def _pred(instances: list[tuple[Instance, ...]]) -> LabelSet:
    return LabelSet(images=tuple(ImageLabels(f"{k}.png", 64, 64, inst) for k, inst in enumerate(instances)))


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_perfect_predictions_give_precision_one_everywhere(iou_type):
    curve = pr_curves(GT, GT, iou_type=iou_type)
    assert curve.recall.shape == (101,) and curve.iou_thresholds.shape == (10,)
    assert np.array_equal(curve.at(0.5), np.ones(101)) and np.array_equal(curve.mean(), np.ones(101))


def test_no_predictions_give_precision_zero():
    curve = pr_curves(GT, _pred([()] * 4), iou_type="segm")
    assert np.array_equal(curve.precision, np.zeros((10, 101)))


def test_the_mean_of_the_curves_is_the_reported_ap():
    # a hit (IoU 1), a shifted box (IoU 0.6 for side 20 shifted 5 px), a miss elsewhere with a high score, none
    pred = _pred([(_square(0, 8, 20, 0.9),), (_square(9, 8, 20, 0.8),), (_square(40, 40, 10, 0.95),), ()])
    for iou_type in ("segm", "bbox"):
        curve = pr_curves(GT, pred, iou_type=iou_type)
        row = evaluate(GT, pred, protocols=("coco",), iou_types=(iou_type,)).get("coco", iou_type)
        assert curve.at(0.5).mean() == pytest.approx(row.ap50, abs=1e-9)
        assert curve.at(0.75).mean() == pytest.approx(row.ap75, abs=1e-9)
        assert curve.mean().mean() == pytest.approx(row.ap, abs=1e-9)
        assert 0 < row.ap50 < 1
    with pytest.raises(ValueError, match="not one of"):
        curve.at(0.52)


def test_segm_curves_need_masks():
    boxes = _pred([(Instance(box_xyxy=(4 * k, 8, 4 * k + 20, 28), score=0.9),) for k in range(4)])
    assert pr_curves(GT, boxes, iou_type="bbox").at(0.5).mean() == pytest.approx(1.0)
    with pytest.raises(AfssError, match="no mask precision-recall curve"):
        pr_curves(GT, boxes, iou_type="segm")
