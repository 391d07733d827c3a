"""Filtering: min score (boundary included), min area, top-1, reasons recorded and counted."""

from __future__ import annotations

import numpy as np
import pytest

from afss.errors import AfssError
from afss.refine.filtering import filter_labels
from afss.types import ImageLabels, Instance, LabelSet


def _inst(score: float, side: int = 4, **scores: float) -> Instance:
    mask = np.zeros((10, 12), bool)
    mask[:side, :side] = True
    return Instance.from_mask(mask, score=score, scores=scores)


def _set(*images: ImageLabels) -> LabelSet:
    return LabelSet(images=images)


def _im(name: str, *instances: Instance, error: str | None = None) -> ImageLabels:
    return ImageLabels(file_name=name, height=10, width=12, instances=instances, error=error)


def test_min_score_boundary_and_reasons():
    labels = _set(
        _im("keep.png", _inst(0.6)),  # exactly at the threshold: kept
        _im("low.png", _inst(0.41)),
        _im("none.png", error="no detection"),
        _im("broken.png", error="unreadable: broken.png: empty file"),
    )
    out, summary = filter_labels(labels, min_score=0.6)
    assert [len(im.instances) for im in out] == [1, 0, 0, 0]
    assert [im.file_name for im in out] == ["keep.png", "low.png", "none.png", "broken.png"]  # nothing vanishes
    assert out.images[1].error == "filtered: score 0.41 < 0.6"
    assert out.images[3].error == "unreadable: broken.png: empty file"
    assert (summary.images_in, summary.kept) == (4, 1)
    assert dict(summary.dropped) == {"low_score": 1, "small_area": 0, "no_detection": 1, "failed": 1}
    assert summary.line() == "kept 1/4 images (25.0%); dropped: low_score 1, no_detection 1, failed 1"
    assert out.info["filter"]["kept"] == 1


def test_top1_keeps_best_passing_and_off_keeps_all():
    labels = _set(_im("a.png", _inst(0.7), _inst(0.9), _inst(0.2)))
    out, s = filter_labels(labels, min_score=0.5, top1=True)
    assert [i.score for i in out.images[0].instances] == [0.9]
    assert (s.instances_in, s.instances_kept) == (3, 1)
    out, s = filter_labels(labels, min_score=0.5, top1=False)
    assert [i.score for i in out.images[0].instances] == [0.7, 0.9]


def test_min_area_and_sub_score_field():
    labels = _set(_im("small.png", _inst(0.9, side=2)), _im("big.png", _inst(0.9, side=5)))
    out, s = filter_labels(labels, min_score=0.0, min_area_px=9)
    assert [len(im.instances) for im in out] == [0, 1]
    assert out.images[0].error == "filtered: area 4 px < 9 px"
    assert s.dropped["small_area"] == 1
    labels = _set(_im("a.png", _inst(0.9, box_score=0.3)), _im("b.png", _inst(0.1, box_score=0.8)))
    out, s = filter_labels(labels, min_score=0.5, score_field="box_score")
    assert [len(im.instances) for im in out] == [0, 1]
    assert out.images[0].error == "filtered: box_score 0.3 < 0.5"
    with pytest.raises(AfssError, match="no sub-score 'mask_score'"):
        filter_labels(labels, score_field="mask_score")


def test_refiltering_keeps_reasons_and_zero_threshold_keeps_everything():
    labels = _set(_im("low.png", _inst(0.3)), _im("ok.png", _inst(0.8)))
    once, _ = filter_labels(labels, min_score=0.5)
    twice, s = filter_labels(once, min_score=0.5)
    assert twice.images[0].error == "filtered: score 0.3 < 0.5" and s.dropped["low_score"] == 1
    out, s = filter_labels(labels, min_score=0.0)
    assert s.kept == 2 and out.images == labels.images


def test_bad_settings():
    with pytest.raises(AfssError, match="min_score"):
        filter_labels(_set(), min_score=1.5)
    with pytest.raises(AfssError, match="min_area_px"):
        filter_labels(_set(), min_area_px=-1)
