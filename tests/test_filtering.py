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


# -- cuts chosen from the scores (no ground truth) ---------------------------------------------------


def _scored(*scores: float, empty: int = 0) -> LabelSet:
    images = [_im(f"{k}.png", _inst(s)) for k, s in enumerate(scores)]
    images += [_im(f"none{k}.png", error="no detection") for k in range(empty)]
    return _set(*images)


@pytest.mark.parametrize(
    "scores, empty, keep_top, kept, cut",
    [
        ((0.9, 0.2, 0.5, 0.7), 0, 0.5, 2, 0.7),  # the best half
        ((0.9, 0.2, 0.5, 0.7), 0, 0.3, 2, 0.7),  # ceil(0.3 * 4) = 2
        ((0.9, 0.2, 0.5, 0.7), 0, 1.0, 4, 0.2),  # everything labelled
        ((0.9, 0.2, 0.5, 0.7), 4, 0.25, 2, 0.7),  # a share of all images, empty ones included
        ((0.9, 0.2, 0.5, 0.7), 4, 1.0, 4, 0.2),  # cannot keep more than what was labelled
        ((0.8, 0.8, 0.8, 0.1), 0, 0.25, 3, 0.8),  # ties at the cut are kept
    ],
)
def test_keep_top_keeps_the_best_fraction(scores, empty, keep_top, kept, cut):
    out, summary = filter_labels(_scored(*scores, empty=empty), keep_top=keep_top)
    assert summary.kept == kept and summary.min_score == pytest.approx(cut)
    assert summary.mode == "keep_top" and summary.keep_top == keep_top
    assert all(i.score >= cut for im in out for i in im.instances)
    assert f"at score >= {cut:.3g} (keep top {100 * keep_top:g}%)" in summary.line()
    assert out.info["filter"]["mode"] == "keep_top"


def test_auto_cut_splits_two_groups_within_bounds():
    from afss.refine.filtering import AUTO_KEEP, cut_score

    high, low = [0.9, 0.85, 0.88, 0.92, 0.8], [0.2, 0.1, 0.25, 0.15, 0.3]
    assert cut_score(high + low, auto=True) == pytest.approx(0.8)  # between the two groups
    out, s = filter_labels(_scored(*high, *low), min_score="auto")
    assert s.kept == 5 and s.mode == "auto" and "(auto, keeping 30-50%)" in s.line()
    assert out.images[5].error == "filtered: score 0.2 < 0.8"
    # one tight group: no split to find, the bounds decide (never more than AUTO_KEEP[1])
    same = [0.5 + 0.001 * k for k in range(20)]
    kept = sum(v >= cut_score(same, auto=True) for v in same)
    assert AUTO_KEEP[0] * 20 <= kept <= AUTO_KEEP[1] * 20
    # a lone outlier on top: the split keeps at least AUTO_KEEP[0]
    skew = [0.99] + [0.1 + 0.01 * k for k in range(19)]
    assert sum(v >= cut_score(skew, auto=True) for v in skew) >= AUTO_KEEP[0] * 20
    # other bounds, given: the two groups split at 50 %, so a 40 % ceiling cuts inside the high group
    _out, s = filter_labels(_scored(*high, *low), min_score="auto", auto_keep=(0.3, 0.4))
    assert s.kept == 4 and s.min_score == pytest.approx(0.85)
    assert "(auto, keeping 30-40%)" in s.line() and s.to_dict()["auto_keep"] == [0.3, 0.4]
    # ties fill the bounds, so no split inside them: the most allowed is kept (ties at the cut too), never one
    tied = [0.9, 0.8] + [0.5] * 7 + [0.1]
    assert cut_score(tied, auto=True) == 0.5
    assert cut_score([0.9, 0.8, 0.7, 0.6], auto=True, auto_keep=(1.0, 1.0)) == 0.6




def test_the_auto_bounds_are_shares_of_all_the_images_as_the_summary_counts_them():
    # 3 of 10 images labelled (a teacher that finds little): "keep at least 30 %" keeps all three;
    # counted among the labelled ones it kept two, and the summary said 20 % "(auto, keeping 30-50%)"
    _out, s = filter_labels(_scored(0.9, 0.8, 0.2, empty=7), min_score="auto")
    assert s.kept == 3 and s.kept_fraction == pytest.approx(0.3) and s.min_score == pytest.approx(0.2)
    # fewer labelled than the least share: every one is kept, and the summary says so
    _out, s = filter_labels(_scored(0.9, 0.8, empty=8), min_score="auto")
    assert s.kept == 2 and "(auto, keeping 30-50%: every labelled image, fewer than that)" in s.line()
    _out, s = filter_labels(_scored(empty=3), min_score="auto")  # nothing labelled: no "score >= inf"
    assert s.line() == "kept 0/3 images (0.0%) (auto: no labelled image to cut); dropped: no_detection 3"
    # an odd count: "at most half" rounds down (5 of 9 was 56 %)
    for n in (9, 11, 13):
        _out, s = filter_labels(_scored(*(k / n for k in range(1, n + 1))), min_score="auto")
        assert 0.3 <= s.kept_fraction <= 0.5 and "fewer than that" not in s.line()
    # 8 of 20 labelled, evenly spread: what is kept lies inside the printed 30-50 % of the 20
    _out, s = filter_labels(_scored(*(0.1 * k for k in range(1, 9)), empty=12), min_score="auto")
    assert 6 <= s.kept <= 8 and 0.3 <= s.kept_fraction <= 0.5
    _out, s = filter_labels(_scored(*(0.1 * k for k in range(1, 9)), empty=2), min_score="auto")
    assert 3 <= s.kept <= 5 and 0.3 <= s.kept_fraction <= 0.5
    # more than the most share: one image (the least share rounds up to it), or ties at the cut; the
    # summary said "kept 1/1 (100.0%) (auto, keeping 30-80%)" as if that were inside the bounds
    _out, s = filter_labels(_scored(0.5), min_score="auto", auto_keep=(0.3, 0.8))
    assert "(auto, keeping 30-80%: 1 of 1, the least share rounded up)" in s.line()
    _out, s = filter_labels(_scored(*[0.5] * 10), min_score="auto")
    assert s.kept == 10 and "(auto, keeping 30-50%: ties at the cut kept too)" in s.line()

@pytest.mark.parametrize("bound, message", [
    ((0.5, 0.3), "0 < least <= most <= 1"), ((0.0, 0.5), "0 < least <= most <= 1"), ((0.3, 1.2), "0 < least"),
    ((0.3,), "two shares"), ("0.3,0.8", "two shares"), ("11", "two shares"), (("a", 0.5), "two shares"),
    ((0.3, 0.5, 0.8), "two shares"),
])
def test_auto_keep_bounds_are_checked_wherever_they_are_given(bound, message):
    from afss.distill import DistillConfig
    from afss.refine import RefineConfig

    for make in (lambda: filter_labels(_scored(0.5), min_score="auto", auto_keep=bound),
                 lambda: RefineConfig(min_score="auto", auto_keep=bound), lambda: DistillConfig(auto_keep=bound)):
        with pytest.raises(AfssError, match=message):
            make()
    assert DistillConfig(auto_keep=[0.3, 0.5]).auto_keep == (0.3, 0.5)  # a YAML list becomes the tuple


def test_a_bound_without_an_auto_cut_is_refused_since_it_would_change_nothing():
    from afss.distill import DistillConfig
    from afss.refine import RefineConfig

    for kw in ({"min_score": 0.6}, {"min_score": "auto", "keep_top": 0.5}):
        with pytest.raises(AfssError, match="auto_keep bounds only an auto cut"):
            RefineConfig(auto_keep=(0.3, 0.6), **kw)
        assert RefineConfig(**kw).auto_keep == (0.3, 0.5)  # the default bound is no request
    with pytest.raises(AfssError, match="distill: auto_keep bounds only an auto cut"):
        DistillConfig(min_score=0.6, auto_keep=(0.3, 0.5))  # refine's default is not distill's
    assert DistillConfig(min_score=0.6).auto_keep == (0.3, 0.8)
    assert DistillConfig(min_score=0.6, student_min_score="auto", auto_keep=(0.3, 0.5)).auto_keep == (0.3, 0.5)


def test_labels_kept_for_their_own_sake_are_cut_tighter_than_a_training_pool(capsys):
    """refine's auto keeps at most half (chosen leave-one-source-out for precision); distill and a run
    train on up to 80 % (students measured better with more images)."""
    from afss.cli import main
    from afss.distill import DistillConfig
    from afss.refine import RefineConfig
    from afss.run.config import config_from_dict

    scores = [0.86, 0.85, 0.84, 0.83, 0.82, 0.81, 0.80, 0.2, 0.15, 0.1]  # the high group is 70 %
    _out, s = filter_labels(_scored(*scores), min_score="auto")
    assert s.kept == 5 and s.min_score == pytest.approx(0.82) and "(auto, keeping 30-50%)" in s.line()
    _out, s = filter_labels(_scored(*scores), min_score="auto", auto_keep=DistillConfig().auto_keep)
    assert s.kept == 7 and s.min_score == pytest.approx(0.80) and "(auto, keeping 30-80%)" in s.line()
    assert RefineConfig(min_score="auto").auto_keep == (0.3, 0.5)
    assert config_from_dict({}).refine.auto_keep == [0.3, 0.8]
    for command, bound in (("refine", "(default 0.3,0.5; or 30%,50%)"), ("distill", "(default 0.3,0.8; or 30%,80%)")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert bound in " ".join(capsys.readouterr().out.split())


def test_refine_and_distill_take_the_auto_bound_from_the_cli_and_a_run_config(tmp_path, capsys):
    import argparse

    from afss.cli.common import add_cut_arguments, cut_options
    from afss.run.config import config_from_dict

    p = argparse.ArgumentParser()
    add_cut_arguments(p)
    assert cut_options(p.parse_args(["--min-score", "auto", "--auto-keep", "0.3,0.5"])) == {
        "min_score": "auto", "auto_keep": (0.3, 0.5)}
    with pytest.raises(AfssError, match="--auto-keep '0.5': expected two shares"):
        cut_options(p.parse_args(["--auto-keep", "0.5"]))
    assert cut_options(p.parse_args(["--min-score", "auto", "--auto-keep", "30%,50%"]))["auto_keep"] == (0.3, 0.5)
    with pytest.raises(AfssError, match=r"^--auto-keep '0.9,0.5': expected 0 < least <= most <= 1"):
        cut_options(p.parse_args(["--auto-keep", "0.9,0.5"]))
    assert config_from_dict({"refine": {"auto_keep": [0.3, 0.5]}}).refine.auto_keep == [0.3, 0.5]
    assert config_from_dict({"refine": {"auto_keep": "0.3,0.5"}}).refine.auto_keep == [0.3, 0.5]  # as --set gives it
    with pytest.raises(AfssError, match=r"refine.auto_keep: expected 0 < least <= most <= 1"):
        config_from_dict({"refine": {"auto_keep": [0.6, 0.5]}})
    with pytest.raises(AfssError, match=r"refine.auto_keep\[0\]: expected a number, got 'x'"):
        config_from_dict({"refine": {"auto_keep": "x,0.5"}})
    with pytest.raises(AfssError, match=r"refine.auto_keep bounds only an auto cut"):
        config_from_dict({"refine": {"min_score": 0.6, "auto_keep": [0.3, 0.5]}})
    with pytest.raises(AfssError, match=r"refine.auto_keep: expected a list of numbers, got 3"):
        config_from_dict({"refine": {"auto_keep": 3}})


def test_the_report_names_the_auto_cuts_bound():
    from afss.report.build import _filter_line

    _out, s = filter_labels(_scored(0.9, 0.8, 0.7, 0.2), min_score="auto", auto_keep=(0.3, 0.8))
    assert "(auto, keeping 30-80%)" in _filter_line({"filter": s.to_dict()})  # a training pool's
    _out, s = filter_labels(_scored(0.9, 0.8, 0.7, 0.2), min_score="auto")
    assert "(auto, keeping 30-50%)" in _filter_line({"filter": s.to_dict()})  # refine's, named as well
    old = {**s.to_dict(), "auto_keep": None}  # a summary written before the bound was recorded
    assert "(auto);" in _filter_line({"filter": old})


def test_cut_from_scores_with_nothing_labelled():
    _out, s = filter_labels(_scored(empty=3), keep_top=0.5)
    assert s.kept == 0 and s.to_dict()["min_score"] is None  # no cut: JSON-safe, not inf
    _out, s = filter_labels(_scored(empty=3), min_score="auto")
    assert s.kept == 0


@pytest.mark.parametrize("options, message", [
    ({"keep_top": 0.0}, "keep_top must be in"), ({"keep_top": 1.5}, "keep_top must be in"),
    ({"min_score": "best"}, "min_score must be in \\[0, 1\\] or 'auto'"),
])
def test_bad_cuts(options, message):
    with pytest.raises(AfssError, match=message):
        filter_labels(_scored(0.5), **options)
