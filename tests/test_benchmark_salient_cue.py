"""benchmarks/salient_cue.py: the cue is the two teachers' top-1 box IoU, and its rule (written before the
run) refuses a set that loses a source the eight cues meet, even when it meets more in all."""

from __future__ import annotations

import numpy as np
import pytest

from afss.evaluate.preview import box_iou
from afss.types import ImageLabels, Instance, LabelSet
from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def cue():
    return load_script("benchmarks/salient_cue.py", "salient_cue_benchmark")


def _row(source: str, base: tuple[float, float, bool], new: tuple[float, float, bool]) -> dict:
    def cell(spearman, raw_ap, bar):
        return {"spearman": spearman, "raw_ap": raw_ap, "auto": {"kept": 0.5, "ap_kept": raw_ap + 0.1, "bar": bar},
                "ceiling": {"ap_kept": raw_ap + 0.1}}
    return {"axis": "x", "source": source, "images": 10,
            "sets": {"8 cues (shipped set)": cell(*base), "8 cues + network agreement": cell(*new)}}


def test_rule_passes_only_without_a_lost_source(cue):
    better = [_row("a", (0.5, 0.30, True), (0.6, 0.30, True)), _row("b", (0.5, 0.20, False), (0.6, 0.20, True))]
    assert cue._summary(better)["rule_passed"]
    swapped = [_row("a", (0.5, 0.30, True), (0.6, 0.30, False)), _row("b", (0.5, 0.20, False), (0.6, 0.20, True)),
               _row("c", (0.5, 0.20, False), (0.6, 0.20, True))]  # 2 against 1, but "a" lost
    s = cue._summary(swapped)
    assert s["8 cues + network agreement"]["bar_lost"] == ["a"] and not s["rule_passed"]
    costly = [_row("a", (0.5, 0.30, False), (0.6, 0.28, True))]  # 2 raw AP lost
    assert not cue._summary(costly)["rule_passed"]


def test_cue_is_the_top1_box_iou(cue, tmp_path):
    import cv2

    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[32:64, 32:64] = 200  # one bright square: the photometric teacher's label
    cv2.imwrite(str(tmp_path / "a.png"), rgb)
    cv2.imwrite(str(tmp_path / "b.png"), rgb)
    truth = Instance.from_mask(rgb[..., 0] > 0, score=1.0)
    gt = LabelSet(images=tuple(ImageLabels(file_name=f, height=96, width=96, instances=(truth,), meta={"class": "x"})
                               for f in ("a.png", "b.png")), categories={1: "spacecraft"}, image_root=str(tmp_path))
    images = cue._analyse([("SPARK-2021 spacecraft: x", gt, "bbox")], _Half())
    assert len(images) == 2 and images[0].groups == {"spacecraft": "x"}
    half = Instance.from_mask(_Half().label([rgb])[0][0].mask, score=1.0)
    assert images[0].features[-1] == pytest.approx(box_iou(images[0].mask.box_xyxy, half.box_xyxy))
    assert 0.35 < images[0].features[-1] < 0.55  # about the left half of the square
    assert images[0].iou > 0.8  # the label is the square (grown by a pixel or two)
    nothing = cue._analyse([("SPARK-2021 spacecraft: x", gt, "bbox")], _Half(found=False))
    assert nothing[0].features[-1] == 0.0  # the network found nothing: no agreement


class _Half:
    """A network that draws the left half of the square (box IoU 0.5 with it), or nothing."""

    def __init__(self, found: bool = True) -> None:
        self.found = found

    def label(self, images, prompt="spacecraft"):
        out = []
        for im in images:
            mask = np.zeros(im.shape[:2], bool)
            mask[32:64, 32:48] = True
            out.append([Instance.from_mask(mask, score=0.9, source="salient")] if self.found else [])
        return out


def test_student_cue_counts_only_spark_spacecraft_as_gained():
    """student_cue.py's fourth test: the student saw afss synth in pretraining, so only a SPARK-2021
    spacecraft that the cue brings over the bar counts."""
    student_cue = load_script("benchmarks/student_cue.py", "student_cue_benchmark")
    rows = [_row("soho", (0.5, 0.3, False), (0.6, 0.3, True)), _row("cheops", (0.5, 0.3, True), (0.6, 0.3, True)),
            _row("clean", (0.5, 0.3, False), (0.6, 0.3, True))]
    rows[0]["axis"] = rows[1]["axis"] = "SPARK-2021 spacecraft"
    rows[2]["axis"] = "synth domain"
    assert student_cue.spark_gained(rows) == ["soho"]
    rows[0]["sets"]["8 cues + network agreement"]["auto"]["bar"] = False
    assert student_cue.spark_gained(rows) == []  # a synth setting alone is no gain here
