"""benchmarks/box_extent.py: how a label's box parts from the true box."""

from __future__ import annotations

import pytest

from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def extent():
    return load_script("benchmarks/box_extent.py", "box_extent_benchmark")


@pytest.mark.parametrize("label, kind", [
    ((10, 10, 50, 50), "close"),
    ((12, 12, 48, 48), "close"),  # IoU 0.81
    ((20, 20, 40, 40), "inside"),  # the truth is padded around it: IoU 0.25
    ((0, 0, 80, 80), "encloses"),  # panels the truth leaves out: IoU 0.25
    ((18, 10, 58, 50), "offset"),  # shifted: IoU 0.67
    ((40, 40, 90, 90), "elsewhere"),
    (None, "missed"),
])
def test_extent_kinds(extent, label, kind):
    assert extent.extent_kind(label, (10, 10, 50, 50)) == kind


def test_a_perfect_confidence_keeps_the_closest_30_percent(extent):
    from afss.types import ImageLabels, Instance, LabelSet

    truth = (10.0, 10.0, 50.0, 50.0)
    # 3 of 10 labels are exact, 7 are a quarter of the true box; the teacher scores the poor ones higher
    boxes = [truth] * 3 + [(20.0, 20.0, 40.0, 40.0)] * 7
    scores = [0.1] * 3 + [0.9] * 7
    images = [ImageLabels(f"{k}.png", 64, 64, image_id=k + 1, meta={"class": "x"},
                          instances=(Instance(box_xyxy=truth),)) for k in range(10)]
    gt = LabelSet(images=tuple(images))
    labels = LabelSet(images=tuple(im.replace(instances=(Instance(box_xyxy=b, score=s),))
                                   for im, b, s in zip(images, boxes, scores)))
    every, perfect = extent._ap_and_ceiling(gt, labels, "x")
    assert perfect == pytest.approx(1.0)  # the 3 exact labels, ranked by their IoU
    assert every == pytest.approx(0.3 * 31 / 101)  # recall 0.3 reached last, at precision 0.3 (101-point AP)
    assert [extent.extent_kind(b, truth) for b in boxes[2:4]] == ["close", "inside"]
