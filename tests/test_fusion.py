"""Weighted Boxes Fusion through ensemble-boxes, in pixels of the original image, and mask voting."""

from __future__ import annotations

import numpy as np
import pytest

from afss.refine.fusion import fuse_boxes, fuse_masks

SIZE_HW = (37, 53)  # non-square: a mix-up of W and H in the normalisation would show


def _b(*rows):
    return np.array(rows, dtype=float).reshape(-1, 4)


def test_identical_boxes_fuse_unchanged():
    box = [3.5, 7.25, 40.0, 30.0]
    fused = fuse_boxes([_b(box), _b(box)], [np.array([0.8]), np.array([0.6])], SIZE_HW)
    assert len(fused) == 1
    np.testing.assert_allclose(fused.boxes_xyxy[0], box, atol=1e-4)  # ensemble-boxes works in float32
    assert fused.scores[0] == pytest.approx(0.7, abs=1e-6)  # avg of both views
    assert fused.members == (((0, 0), (1, 0)),)


def test_disjoint_boxes_stay_apart_and_halve_with_avg():
    a, b = [1, 1, 10, 10], [30, 20, 50, 35]
    fused = fuse_boxes([_b(a), _b(b)], [np.array([0.8]), np.array([0.6])], SIZE_HW)
    assert len(fused) == 2
    np.testing.assert_allclose(fused.boxes_xyxy, [a, b], atol=1e-4)  # best first
    np.testing.assert_allclose(fused.scores, [0.4, 0.3], atol=1e-6)  # seen in one view of two
    assert fused.members == (((0, 0),), ((1, 0),))


def test_box_in_one_of_two_views_gets_half_its_score():
    fused = fuse_boxes([_b([5, 5, 20, 20]), np.zeros((0, 4))], [np.array([0.9]), np.zeros(0)], SIZE_HW)
    np.testing.assert_allclose(fused.scores, [0.45], atol=1e-6)
    # With only the view that found something passed in (the reference code), the score is kept.
    fused = fuse_boxes([_b([5, 5, 20, 20])], [np.array([0.9])], SIZE_HW)
    np.testing.assert_allclose(fused.scores, [0.9], atol=1e-6)


def test_overlapping_boxes_average_weighted_by_score():
    # IoU([0,0,20,20], [2,0,22,20]) = 360/440 > 0.55 -> fused, x weighted 3:1
    fused = fuse_boxes([_b([0, 0, 20, 20]), _b([2, 0, 22, 20])], [np.array([0.75]), np.array([0.25])], SIZE_HW)
    np.testing.assert_allclose(fused.boxes_xyxy, [[0.5, 0, 20.5, 20]], atol=1e-4)
    np.testing.assert_allclose(fused.scores, [0.5], atol=1e-6)


def test_iou_threshold_boundary():
    # IoU of these two is 0.5: apart at iou_thr 0.55, fused at 0.45
    a, b = [0, 0, 30, 20], [10, 0, 40, 20]
    assert len(fuse_boxes([_b(a), _b(b)], [np.array([.9]), np.array([.9])], SIZE_HW, iou_thr=0.55)) == 2
    assert len(fuse_boxes([_b(a), _b(b)], [np.array([.9]), np.array([.9])], SIZE_HW, iou_thr=0.45)) == 1


def test_skip_box_thr_and_max_conf():
    boxes = [_b([0, 0, 10, 10]), _b([0, 0, 10, 10])]
    fused = fuse_boxes(boxes, [np.array([0.04]), np.array([0.5])], SIZE_HW)
    np.testing.assert_allclose(fused.scores, [0.25], atol=1e-6)  # the 0.04 box is skipped (< 0.05)
    assert fused.members == (((1, 0),),)
    fused = fuse_boxes(boxes, [np.array([0.3]), np.array([0.5])], SIZE_HW, conf_type="max")
    np.testing.assert_allclose(fused.scores, [0.5], atol=1e-6)


def test_empty_inputs_and_boxes_outside_the_image():
    assert len(fuse_boxes([], [], SIZE_HW)) == 0
    assert len(fuse_boxes([np.zeros((0, 4))] * 2, [np.zeros(0)] * 2, SIZE_HW)) == 0
    fused = fuse_boxes([_b([-5, -5, 60, 40])], [np.array([1.0])], SIZE_HW)  # clipped to the image
    np.testing.assert_allclose(fused.boxes_xyxy, [[0, 0, 53, 37]], atol=1e-4)
    assert len(fuse_boxes([_b([5, 5, 5, 9])], [np.array([1.0])], SIZE_HW)) == 0  # zero area


def test_bad_arguments():
    with pytest.raises(ValueError, match="conf_type"):
        fuse_boxes([_b([0, 0, 1, 1])], [np.array([1.0])], SIZE_HW, conf_type="mean")
    with pytest.raises(ValueError, match="same length"):
        fuse_boxes([_b([0, 0, 1, 1])], [], SIZE_HW)


def test_mask_vote():
    a = np.zeros((3, 4), bool)
    a[0, :3] = True
    b = np.zeros((3, 4), bool)
    b[0, 1:] = True
    c = np.zeros((3, 4), bool)
    c[1, 1] = True
    np.testing.assert_array_equal(fuse_masks([a, b]), a | b)  # half the vote is enough
    np.testing.assert_array_equal(fuse_masks([a, b], threshold=0.51), a & b)
    np.testing.assert_array_equal(fuse_masks([a, b, c]), (a.astype(int) + b + c) >= 2)  # majority
    np.testing.assert_array_equal(fuse_masks([a, b], [0.9, 0.1], threshold=0.6), a)  # weights decide
    np.testing.assert_array_equal(fuse_masks([a], [0.0]), a)  # zero weights -> equal
    with pytest.raises(ValueError):
        fuse_masks([])
