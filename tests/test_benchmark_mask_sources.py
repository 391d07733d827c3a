"""benchmarks/mask_sources.py: each mix of a teacher's and a start's mask scored against the truth, and
the summary that says which source was better where."""

from __future__ import annotations

import numpy as np
import pytest

from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/mask_sources.py", "mask_sources_benchmark")


def _square(x0, y0, x1, y1, size=20):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_compare_scores_each_mix_against_the_truth(bench):
    truth = _square(4, 4, 14, 14)        # 100 px
    teacher = _square(4, 4, 16, 16)      # takes in a 44 px halo: IoU 100 / 144
    start = _square(4, 4, 14, 12)        # misses two rows: IoU 80 / 100
    r = bench.compare(teacher, start, truth)
    assert r["teacher"] == pytest.approx(100 / 144)
    assert r["start"] == pytest.approx(0.8)
    assert r["union"] == pytest.approx(100 / 144)  # the start lies inside the teacher's mask
    assert r["intersection"] == pytest.approx(0.8)
    assert r["better_of_two"] == pytest.approx(0.8)
    assert r["mask_iou"] == pytest.approx(80 / 144)
    assert r["log_area_ratio"] == pytest.approx(np.log(81 / 145))
    assert r["start_inside"] == 1.0


def test_empty_masks_score_zero_not_nan(bench):
    empty = np.zeros((8, 8), bool)
    r = bench.compare(empty, empty, _square(1, 1, 4, 4, size=8))
    assert r["teacher"] == r["start"] == r["better_of_two"] == 0.0
    assert bench.mask_iou(empty, empty) == 0.0


def test_summary_counts_where_each_source_wins_and_the_cue_sign(bench):
    # the teacher is better exactly where its score is high: its score's Spearman with the gap is +1
    rows = [{"teacher": t, "start": s, "union": 0.5, "intersection": 0.5, "better_of_two": max(t, s),
             "teacher_score": score, "start_score": 0.5, "box_iou": 0.8, "mask_iou": 0.7, "log_area_ratio": 0.0,
             "start_inside": 0.9}
            for t, s, score in ((0.9, 0.5, 0.9), (0.8, 0.6, 0.7), (0.5, 0.9, 0.2), (0.7, 0.7, 0.4))]
    out = bench.summary(rows)
    assert (out["images"], out["teacher_better"], out["start_better"]) == (4, 2, 1)
    assert out["mean_iou"]["better_of_two"] == pytest.approx((0.9 + 0.8 + 0.9 + 0.7) / 4, abs=1e-4)
    assert out["spearman_with_teacher_minus_start"]["teacher_score"] == pytest.approx(1.0)
    assert out["mean_cue"]["teacher_score"] == pytest.approx(0.55)
