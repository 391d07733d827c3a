"""The refine stage against fake teachers (exact geometry), the CLI, and tiny VLM teachers end to end."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from afss.errors import AfssError
from afss.io.coco import read_coco, write_coco
from afss.io.images import save_image
from afss.refine import RefineConfig, refine_labels
from afss.teachers.base import Teacher
from afss.types import ImageLabels, Instance, LabelSet, mask_box_xyxy

H, W = 37, 53  # odd, non-square


def _truth() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[4:12, 6:30] = True
    m[4:25, 6:11] = True  # an L: no flip or rotation maps it onto itself
    return m


def _rgb(mask: np.ndarray) -> np.ndarray:
    img = np.full((*mask.shape, 3), 15, np.uint8)
    img[mask] = 220
    return img


class ThresholdTeacher(Teacher):
    """Finds the bright pixels; ``upright_only`` makes it blind unless the object starts within 8 px of the top-left corner."""

    name = "fake"

    def __init__(self, *, segmenter: bool = True, score: float = 0.8, mask_score: float = 0.9,
                 upright_only: bool = False, fail_on_call: int | None = None, category_id: int = 1) -> None:
        self.segmenter, self.score, self.mask_score, self.category_id = segmenter, score, mask_score, category_id
        self.upright_only, self.fail_on_call = upright_only, fail_on_call
        self.calls: list[int] = []

    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft") -> list[list[Instance]]:
        self.calls.append(len(images))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("boom")
        out = []
        for im in images:
            m = im.mean(axis=2) > 100
            x0, y0, _, _ = mask_box_xyxy(m)
            if not m.any() or (self.upright_only and (x0 > 8 or y0 > 8)):
                out.append([])
                continue
            out.append([Instance.from_mask(m, score=self.score, source=self.name, scores={"box_score": self.score},
                                           category_id=self.category_id)])
        return out

    @property
    def can_segment_boxes(self) -> bool:
        return self.segmenter

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        out = []
        for box in np.asarray(boxes_xyxy).reshape(-1, 4):
            inside = np.zeros(image.shape[:2], bool)
            x0, y0, x1, y1 = np.floor(box[:2]).astype(int).tolist() + np.ceil(box[2:]).astype(int).tolist()
            inside[y0:y1, x0:x1] = True
            m = (image.mean(axis=2) > 100) & inside
            out.append(Instance.from_mask(m, box_xyxy=tuple(box), score=self.mask_score,
                                          scores={"mask_score": self.mask_score}))
        return out


def _images(tmp_path, n: int = 1, mask: np.ndarray | None = None) -> LabelSet:
    mask = _truth() if mask is None else mask
    for k in range(n):
        save_image(tmp_path / f"im{k}.png", _rgb(mask))
    return LabelSet(images=tuple(ImageLabels(f"im{k}.png", 0, 0) for k in range(n)), image_root=str(tmp_path))


ALL_GEOMETRIC = "identity,hflip,vflip,rot90,rot180,rot270,scale2,brightness1.1,contrast0.9,gamma0.8"


def test_default_path_flip_tta_resegments_fused_box(tmp_path):
    teacher = ThresholdTeacher()
    out, summary = refine_labels(teacher, _images(tmp_path), views="identity,vflip")
    [im] = out.images
    assert (im.height, im.width, im.error) == (H, W, None)
    [inst] = im.instances
    np.testing.assert_allclose(inst.box_xyxy, mask_box_xyxy(_truth()), atol=1e-3)
    np.testing.assert_array_equal(inst.mask, _truth())
    assert inst.score == pytest.approx(0.9)  # the segmenter's quality estimate
    assert inst.scores["box_score"] == pytest.approx(0.8, abs=1e-6)  # both views agree: the average
    assert (inst.scores["views_agreeing"], inst.scores["views"]) == (2, 2)
    assert inst.source == "fake+tta"
    assert teacher.calls == [2]  # both views of the image in one batch
    assert (summary.fused, summary.all_views_agree, summary.filter.kept) == (1, 1, 1)
    assert out.info["views"] == ["identity", "vflip"] and out.info["config"]["mask_fusion"] == "segmenter"
    assert out.info["config"]["iou_thr"] == 0.55 and out.info["config"]["skip_box_thr"] == 0.05


@pytest.mark.parametrize("mask_fusion", ["segmenter", "vote"])
def test_every_view_maps_back_exactly(tmp_path, mask_fusion):
    out, summary = refine_labels(ThresholdTeacher(), _images(tmp_path), views=ALL_GEOMETRIC,
                                 config=RefineConfig(mask_fusion=mask_fusion))
    [inst] = out.images[0].instances
    np.testing.assert_allclose(inst.box_xyxy, mask_box_xyxy(_truth()), atol=1e-3)
    np.testing.assert_array_equal(inst.mask, _truth())
    assert inst.scores["views_agreeing"] == 10 and summary.all_views_agree == 1


@pytest.mark.parametrize(("source", "expected"), [("mask", 0.9), ("box", 0.4), ("mean", 0.6)])
def test_score_source(tmp_path, source, expected):
    teacher = ThresholdTeacher(upright_only=True, score=0.8, mask_score=0.9)  # only identity finds it
    cfg = RefineConfig(min_score=0.0, count_empty_views=True, score_source=source)
    out, _ = refine_labels(teacher, _images(tmp_path), views="identity,vflip", config=cfg)
    [inst] = out.images[0].instances
    assert inst.score == pytest.approx(expected, abs=1e-6)
    assert inst.scores["box_score"] == pytest.approx(0.4, abs=1e-6) and inst.scores["mask_score"] == 0.9


def test_vote_without_segmenter_scores_by_agreement(tmp_path):
    teacher = ThresholdTeacher(segmenter=False, upright_only=True)  # vflip view finds nothing
    cfg = RefineConfig(min_score=0.0)
    out, _ = refine_labels(teacher, _images(tmp_path), views="identity,vflip", config=cfg)
    [inst] = out.images[0].instances
    assert out.info["config"]["mask_fusion"] == "vote"
    np.testing.assert_array_equal(inst.mask, _truth())
    assert inst.score == pytest.approx(0.8, abs=1e-6)  # reference: the empty view is left out of WBF
    assert inst.scores["views_agreeing"] == 1
    out, _ = refine_labels(teacher, _images(tmp_path), views="identity,vflip",
                           config=RefineConfig(min_score=0.0, count_empty_views=True))
    assert out.images[0].instances[0].score == pytest.approx(0.4, abs=1e-6)  # seen in one view of two


@pytest.mark.parametrize("mask_fusion", ["segmenter", "vote"])
def test_category_of_the_teacher_is_kept(tmp_path, mask_fusion):
    out, _ = refine_labels(ThresholdTeacher(category_id=2), _images(tmp_path), views="identity,vflip",
                           config=RefineConfig(mask_fusion=mask_fusion))
    assert out.images[0].instances[0].category_id == 2


def test_filter_records_reason_and_keeps_image(tmp_path):
    out, summary = refine_labels(ThresholdTeacher(mask_score=0.41), _images(tmp_path, n=2), views="identity,vflip")
    assert [im.error for im in out.images] == ["filtered: score 0.41 < 0.6"] * 2
    assert summary.filter.kept == 0 and summary.filter.dropped["low_score"] == 2
    assert summary.line().endswith("kept 0/2 images (0.0%); dropped: low_score 2")


def test_given_labels_replace_the_identity_view(tmp_path):
    images = _images(tmp_path)
    shifted = Instance(box_xyxy=(8.0, 4.0, 32.0, 25.0), score=0.8, scores={"box_score": 0.8})
    labels = images.replace(images=(ImageLabels("im0.png", H, W, instances=(shifted,)),))
    teacher = ThresholdTeacher(mask_score=0.95)
    out, _ = refine_labels(teacher, images, views="identity,vflip", labels=labels)
    assert teacher.calls == [1]  # only the vflip view was run
    [inst] = out.images[0].instances
    np.testing.assert_allclose(inst.box_xyxy, [7.0, 4.0, 31.0, 25.0], atol=1e-3)  # mean of (6..30) and (8..32)


def test_unreadable_image_and_teacher_failure_are_recorded(tmp_path):
    images = _images(tmp_path, n=2)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    images = images.replace(images=images.images + (ImageLabels("broken.png", 0, 0),))
    ticks = []
    out, summary = refine_labels(ThresholdTeacher(fail_on_call=2), images, views="identity,vflip", batch_size=1,
                                 progress=ticks.append)
    assert out.images[0].instances and not out.images[1].instances
    assert out.images[1].error == "teacher failed: RuntimeError: boom"
    assert out.images[2].error.startswith("unreadable: ")
    assert (summary.failed, summary.filter.dropped["failed"]) == (2, 2)
    assert ticks == [1, 1, 1]


class PoisonTeacher(ThresholdTeacher):
    """Raises on any call that contains an all-dark image."""

    def label(self, images, prompt="spacecraft"):
        if any(im.max() < 100 for im in images):
            self.calls.append(len(images))
            raise RuntimeError("dark image")
        return super().label(images, prompt)


class PromptRecorder(ThresholdTeacher):
    def label(self, images, prompt="spacecraft"):
        self.prompts = [*getattr(self, "prompts", []), prompt]
        return super().label(images, prompt)


def test_views_are_asked_the_prompt_the_labels_were_made_with(tmp_path):
    images = _images(tmp_path, n=2)
    labels, _ = refine_labels(ThresholdTeacher(), images, views="identity", config=RefineConfig(min_score=0))
    teacher = PromptRecorder()
    out, _ = refine_labels(teacher, images, views="identity,vflip", labels=labels.replace(info={"prompt": "satellite"}))
    assert set(teacher.prompts) == {"satellite"} and out.info["config"]["prompt"] == "satellite"
    teacher = PromptRecorder()
    refine_labels(teacher, images, views="identity,vflip", config=RefineConfig(prompt="probe"),
                  labels=labels.replace(info={"prompt": "satellite"}))
    assert set(teacher.prompts) == {"probe"}  # an explicit prompt wins
    teacher = PromptRecorder()
    refine_labels(teacher, images, views="identity,vflip")
    assert set(teacher.prompts) == {"spacecraft"}


def test_batch_sends_all_views_at_once_and_isolates_a_failing_image(tmp_path):
    images = _images(tmp_path, n=3)
    save_image(tmp_path / "im1.png", np.zeros((H, W, 3), np.uint8))  # the poison
    teacher = PoisonTeacher()
    out, summary = refine_labels(teacher, images, views="identity,vflip", batch_size=3)
    assert summary.failed == 1
    assert teacher.calls == [6, 2, 2, 2]  # one call for the batch, then image by image
    assert [bool(im.instances) for im in out.images] == [True, False, True]
    assert out.images[1].error == "teacher failed: RuntimeError: dark image"
    teacher = ThresholdTeacher()
    same, _ = refine_labels(teacher, _images(tmp_path, n=3), views="identity,vflip", batch_size=2)
    alone, _ = refine_labels(ThresholdTeacher(), _images(tmp_path, n=3), views="identity,vflip", batch_size=1)
    assert teacher.calls == [4, 2] and same.images == alone.images


@pytest.mark.parametrize("mask_fusion", ["segmenter", "vote"])
def test_a_label_too_low_for_fusion_is_passed_on_for_the_filter_to_cut(tmp_path, mask_fusion):
    """WBF skips boxes under skip_box_thr (0.05); with one box per view that would delete the label
    outright. Refinement passes the identity view's label on unchanged; the filter cuts by score."""
    teacher = ThresholdTeacher(score=0.03, mask_score=0.03)
    out, summary = refine_labels(teacher, _images(tmp_path), views="identity,vflip",
                                 config=RefineConfig(min_score=0.0, mask_fusion=mask_fusion))
    [inst] = out.images[0].instances
    np.testing.assert_array_equal(inst.mask, _truth())
    assert inst.score == pytest.approx(0.03) and inst.source == "fake+tta"
    assert inst.scores["views_agreeing"] == 0 and summary.no_detection == 0
    # the summary says the label was passed on, not fused
    assert (summary.fused, summary.passed_on, summary.failed) == (0, 1, 0)
    assert "0 fused" in summary.line() and "1 passed on unfused" in summary.line()
    out, summary = refine_labels(teacher, _images(tmp_path), views="identity,vflip", config=RefineConfig(min_score=0.6))
    assert out.images[0].error == "filtered: score 0.03 < 0.6" and summary.filter.dropped["low_score"] == 1
    # given labels (afss refine --labels) are passed on too, with their sub-scores; the mask score can be cut on
    given = images = _images(tmp_path)
    labels = images.replace(images=(ImageLabels("im0.png", H, W, instances=(
        Instance.from_mask(_truth(), score=0.02, scores={"box_score": 0.02, "mask_score": 0.02, "cue": 1.5}),)),))
    out, _ = refine_labels(teacher, given, views="identity,vflip", labels=labels,
                           config=RefineConfig(min_score=0.01, mask_fusion=mask_fusion, score_field="mask_score"
                                               if mask_fusion == "segmenter" else "score"))
    [inst] = out.images[0].instances
    assert inst.scores["cue"] == 1.5 and inst.scores["views_agreeing"] == 0
    assert inst.score == pytest.approx(0.02)
    # a view set without the identity view has no label of the image's own to pass on
    out, _ = refine_labels(teacher, _images(tmp_path), views="hflip,vflip", config=RefineConfig(min_score=0.0))
    assert out.images[0].error == "no detection"


def test_no_detection_everywhere(tmp_path):
    out, summary = refine_labels(ThresholdTeacher(), _images(tmp_path, mask=np.zeros((H, W), bool)))
    assert out.images[0].error == "no detection" and summary.no_detection == 1


def test_bad_config_and_views():
    with pytest.raises(AfssError, match="did you mean 'avg'"):
        RefineConfig(conf_type="avgg")
    with pytest.raises(AfssError, match="min_score"):
        RefineConfig(min_score=2)
    with pytest.raises(AfssError, match="promptable segmenter"):
        refine_labels(ThresholdTeacher(segmenter=False), LabelSet(images=()), config=RefineConfig(mask_fusion="segmenter"))
    with pytest.raises(AfssError, match="did you mean 'vflip'"):
        refine_labels(ThresholdTeacher(), LabelSet(images=()), views="identity,vflp")


def test_output_loads_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    out, _ = refine_labels(ThresholdTeacher(), _images(tmp_path, n=2), views="identity,vflip")
    path = write_coco(out, tmp_path / "refined.json")
    coco = COCO(str(path))
    assert len(coco.getAnnIds()) == 2
    dets = coco.loadRes(json.loads(path.read_text())["annotations"])
    assert len(dets.getAnnIds()) == 2
    back = read_coco(path)
    assert back.images[0].instances[0].scores["views_agreeing"] == 2


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_refine_labels_file_writes_coco_and_summary(tmp_path, capsys):
    from afss.cli import main

    images = _images(tmp_path, n=3)
    inst = Instance.from_mask(_truth(), score=0.9)
    labels = images.replace(images=tuple(im.replace(height=H, width=W, instances=(inst,)) for im in images.images),
                            info={"teacher": "photometric", "prompt": "satellite"})
    write_coco(labels, tmp_path / "labels.json")
    code = main(["-q", "refine", "--labels", str(tmp_path / "labels.json"), "--tta", "identity,vflip,rot90",
                 "--min-score", "0.0", "--out", str(tmp_path / "out" / "refined.json")])
    assert code == 0
    refined = read_coco(tmp_path / "out" / "refined.json")
    assert len(refined) == 3 and refined.info["teacher"] == "photometric"  # taken from the labels file
    assert refined.info["views"] == ["identity", "vflip", "rot90"]
    assert refined.info["config"]["prompt"] == "satellite"  # the other views are asked what the labels were
    summary = json.loads((tmp_path / "out" / "refined.summary.json").read_text())
    assert summary["images"] == 3 and summary["filter"]["images_in"] == 3
    err = capsys.readouterr().err
    assert "afss refine: 3 images" in err and "refined.json" in err


def test_cli_refine_user_errors_exit_2(tmp_path, capsys):
    from afss.cli import main

    _images(tmp_path)
    code = main(["refine", "--images", str(tmp_path), "--teacher", "photometric", "--tta", "identity,vflp",
                 "--out", str(tmp_path / "r.json")])
    assert code == 2
    assert "did you mean 'vflip'" in capsys.readouterr().err
    code = main(["refine", "--labels", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r.json")])
    assert code == 2 and "missing.json: no such file" in capsys.readouterr().err
    # a score the refined labels will not carry: refused before any view runs, nothing left behind
    for field, hint in (("mask_score", "with mask_fusion 'segmenter'"), ("views", "score, box_score")):
        code = main(["-q", "refine", "--images", str(tmp_path), "--teacher", "photometric", "--score-field", field,
                     "--out", str(tmp_path / "r.json")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and hint in err, err
    assert not list(tmp_path.glob("r.*"))


# -- VLM teachers with tiny random weights, end to end ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.mark.parametrize("name", ["grounded-sam2", "owlv2-sam", "sam3"])
def test_vlm_teacher_flow(tmp_path, tiny_root, name):
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_teacher

    teacher = build_tiny_teacher(name, tiny_root)
    images = _images(tmp_path, n=2)
    out, summary = refine_labels(teacher, images, views="identity,vflip,rot90,scale0.75",
                                 config=RefineConfig(min_score=0.0))
    assert summary.failed == 0 and summary.mask_fusion == ("segmenter" if teacher.can_segment_boxes else "vote")
    for im in out.images:
        assert (im.height, im.width) == (H, W)
        for inst in im.instances:
            x0, y0, x1, y1 = inst.box_xyxy
            assert 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H
            assert inst.mask.shape == (H, W)
            assert {"box_score", "views_agreeing", "views"} <= set(inst.scores)
            assert 1 <= inst.scores["views_agreeing"] <= 4 and 0.0 <= inst.score <= 1.0
    assert out.info["teacher"] == name
    write_coco(out, tmp_path / "refined.json")
    assert len(read_coco(tmp_path / "refined.json")) == 2


def test_cli_refine_with_tiny_grounded_sam2(tmp_path, tiny_root, capsys):
    pytest.importorskip("transformers")
    from afss.cli import main
    from tests.tiny_models import tiny_teacher_options

    opts = tiny_teacher_options("grounded-sam2", tiny_root)
    (tmp_path / "imgs").mkdir()
    _images(tmp_path / "imgs", n=2)
    code = main(["-q", "refine", "--images", str(tmp_path / "imgs"), "--teacher", "grounded-sam2",
                 "--detector", opts["detector"], "--segmenter", opts["segmenter"], "--box-threshold", "0",
                 "--device", "cpu", "--tta", "identity,vflip", "--min-score", "0.6", "--out", str(tmp_path / "r.json")])
    assert code == 0
    refined = read_coco(tmp_path / "r.json")
    assert len(refined) == 2
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["filter"]["kept"] + sum(summary["filter"]["dropped"].values()) == 2


# -- resume ----------------------------------------------------------------------------------------


class Interrupt(ThresholdTeacher):
    """Stops the run (like Ctrl-C) on the given label call."""

    def __init__(self, stop_on_call: int) -> None:
        super().__init__()
        self.stop_on_call = stop_on_call

    def label(self, images, prompt="spacecraft"):
        if len(self.calls) + 1 == self.stop_on_call:
            raise KeyboardInterrupt
        return super().label(images, prompt)


def _strip_times(path):
    data = json.loads(path.read_text())
    for key in ("created", "seconds", "summary"):
        data["info"].pop(key)
    return data


def test_interrupted_run_resumes_to_identical_output(tmp_path):
    from afss.resumable import journal_path

    images = _images(tmp_path, n=4)
    refine_labels(ThresholdTeacher(), images, out=tmp_path / "full.json")
    with pytest.raises(KeyboardInterrupt):
        refine_labels(Interrupt(stop_on_call=3), images, out=tmp_path / "part.json", batch_size=1)
    assert journal_path(tmp_path / "part.json").exists() and not (tmp_path / "part.json").exists()
    ticks, teacher = [], ThresholdTeacher()
    _, summary = refine_labels(teacher, images, out=tmp_path / "part.json", progress=ticks.append, batch_size=1)
    assert len(teacher.calls) == 2 and ticks == [2, 1, 1]  # 2 images came from the journal
    assert _strip_times(tmp_path / "part.json") == _strip_times(tmp_path / "full.json")
    assert not journal_path(tmp_path / "part.json").exists()
    assert json.loads((tmp_path / "part.summary.json").read_text())["filter"]["kept"] == 4 == summary.filter.kept


def test_resume_refuses_other_views_but_allows_another_threshold(tmp_path):
    images = _images(tmp_path, n=3)
    with pytest.raises(KeyboardInterrupt):
        refine_labels(Interrupt(stop_on_call=2), images, out=tmp_path / "r.json", batch_size=1)
    with pytest.raises(AfssError, match="different views"):
        refine_labels(ThresholdTeacher(), images, views="identity,hflip", out=tmp_path / "r.json")
    teacher = ThresholdTeacher()
    out, _ = refine_labels(teacher, images, config=RefineConfig(min_score=0.95), out=tmp_path / "r.json",
                           batch_size=1)
    assert len(teacher.calls) == 2 and [im.error for im in out.images] == ["filtered: score 0.9 < 0.95"] * 3
    teacher = ThresholdTeacher()  # --no-resume: everything again
    with pytest.raises(KeyboardInterrupt):
        refine_labels(Interrupt(stop_on_call=2), images, out=tmp_path / "s.json", batch_size=1)
    refine_labels(teacher, images, out=tmp_path / "s.json", resume=False, batch_size=1)
    assert len(teacher.calls) == 3


def test_torn_last_journal_line_is_refined_again(tmp_path):
    from afss.resumable import journal_path

    images = _images(tmp_path, n=3)
    with pytest.raises(KeyboardInterrupt):
        refine_labels(Interrupt(stop_on_call=3), images, out=tmp_path / "r.json", batch_size=1)
    path = journal_path(tmp_path / "r.json")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:25])  # the second image's line torn mid-write
    teacher = ThresholdTeacher()
    out, _ = refine_labels(teacher, images, out=tmp_path / "r.json", batch_size=1)
    assert len(teacher.calls) == 2 and all(im.instances for im in out.images)


class BlobTeacher(ThresholdTeacher):
    """One instance per connected bright blob, bigger blobs scoring higher."""

    def label(self, images, prompt="spacecraft"):
        import cv2

        self.calls.append(len(images))
        out = []
        for im in images:
            n, lab = cv2.connectedComponents((im.mean(axis=2) > 100).astype(np.uint8))
            blobs = [lab == k for k in range(1, n)]
            out.append([Instance.from_mask(b, score=min(1.0, b.sum() / 200), scores={"box_score": min(1.0, b.sum() / 200)})
                        for b in sorted(blobs, key=lambda b: -b.sum())])
        return out


def test_several_objects_per_image(tmp_path):
    two = np.zeros((H, W), bool)
    two[3:10, 4:20] = True   # 112 px
    two[20:30, 30:45] = True  # 150 px
    cfg = RefineConfig(top1=False, per_view_top_k=None, min_score=0.0, mask_fusion="vote")
    out, _ = refine_labels(BlobTeacher(), _images(tmp_path, mask=two), views="identity,vflip,rot270", config=cfg)
    boxes = sorted(i.box_xyxy for i in out.images[0].instances)
    np.testing.assert_allclose(boxes, [[4, 3, 20, 10], [30, 20, 45, 30]], atol=1e-3)
    assert all(i.scores["views_agreeing"] == 3 for i in out.images[0].instances)
    out, _ = refine_labels(BlobTeacher(), _images(tmp_path, mask=two), views="identity,vflip",
                           config=RefineConfig(min_score=0.0, mask_fusion="vote"))  # the reference: top-1
    assert [i.box_xyxy for i in out.images[0].instances] == [pytest.approx((30, 20, 45, 30), abs=1e-3)]


def test_cli_reuses_the_teacher_options_recorded_in_labels(tmp_path, tiny_root, capsys):
    pytest.importorskip("transformers")
    from afss.cli import main
    from afss.label import label_images
    from tests.tiny_models import build_tiny_teacher

    images = _images(tmp_path, n=2)
    label_images(build_tiny_teacher("grounded-sam2", tiny_root), images, out=tmp_path / "labels.json")
    # no --teacher, --detector or --segmenter: all taken from labels.json (the hub is unreachable here)
    code = main(["-q", "refine", "--labels", str(tmp_path / "labels.json"), "--min-score", "0",
                 "--out", str(tmp_path / "refined.json")])
    assert code == 0, capsys.readouterr().err
    refined = read_coco(tmp_path / "refined.json")
    assert refined.info["teacher"] == "grounded-sam2"
    assert refined.info["teacher_options"]["detector"].endswith("grounding-dino")
    assert all(im.instances for im in refined.images)


def test_cli_refine_chooses_the_cut_from_the_scores(tmp_path, capsys):
    from afss.cli import main

    images = _images(tmp_path, n=4)
    labels = images.replace(images=tuple(
        im.replace(height=H, width=W, instances=(Instance.from_mask(_truth(), score=s),))
        for im, s in zip(images.images, (0.9, 0.2, 0.7, 0.4))), info={"teacher": "photometric"})
    write_coco(labels, tmp_path / "labels.json")
    base = ["-q", "refine", "--labels", str(tmp_path / "labels.json"), "--teacher", "photometric", "--tta", "identity",
            "--score-source", "box"]  # the scores given, fused: all four images look alike to the teacher
    assert main([*base, "--keep-top", "50%", "--out", str(tmp_path / "top.json")]) == 0
    err = capsys.readouterr().err
    assert "kept 2/4 images (50.0%) at score >= " in err and "(keep top 50%)" in err
    summary = json.loads((tmp_path / "top.summary.json").read_text())["filter"]
    assert summary["mode"] == "keep_top" and summary["keep_top"] == 0.5 and summary["kept"] == 2
    assert main([*base, "--min-score", "auto", "--out", str(tmp_path / "auto.json")]) == 0
    assert "(auto, keeping 30-50%)" in capsys.readouterr().err
    # the auto cut's bounds, given: at most a quarter (1 of 4 images) where 30-80 % allows more
    assert main([*base, "--min-score", "auto", "--auto-keep", "0.25,0.25", "--out", str(tmp_path / "a25.json")]) == 0
    assert "kept 1/4 images (25.0%) at score >= " in capsys.readouterr().err
    assert json.loads((tmp_path / "a25.summary.json").read_text())["filter"]["auto_keep"] == [0.25, 0.25]


def test_a_fixed_cut_that_keeps_under_30_percent_says_to_cut_by_rank(caplog):
    """Seen on SPARK-2021: a score fitted elsewhere sits lower, and 0.6 keeps a pool too small to
    train on. The ranking cuts never warn: they keep what they are asked to."""
    from afss.refine import filter_labels

    m = _truth()
    labels = LabelSet(images=tuple(ImageLabels(f"{k}.png", H, W, instances=(Instance.from_mask(m, score=s),))
                                   for k, s in enumerate((0.9, 0.2, 0.7, 0.4))))
    with caplog.at_level("WARNING", logger="afss.refine.filtering"):
        filter_labels(labels, min_score=0.5)  # 2 of 4: fine
        filter_labels(labels, keep_top=0.25)  # asked for a quarter
        assert not caplog.records
        filter_labels(labels, min_score=0.85)
    [record] = caplog.records
    assert "score >= 0.85 kept 1 of 4 labelled images (25%)" in record.getMessage()
    assert "--min-score auto or --keep-top" in record.getMessage()


@pytest.mark.parametrize("args, message", [
    (["--keep-top", "abc"], "afss: error: --keep-top 'abc': expected a number, e.g. 0.5"),
    (["--keep-top", "1.5"], "afss: error: refine: keep_top must be a fraction in (0, 1], e.g. 0.5, got 1.5"),
    (["--keep-top", "0"], "afss: error: refine: keep_top must be a fraction in (0, 1]"),
    (["--min-score", "best"], "afss: error: --min-score 'best': expected a number, e.g. 0.6 or auto"),
    (["--min-score", "2"], "afss: error: refine: min_score must be in [0, 1] or 'auto', got 2.0"),
    (["--auto-keep", "0.3,0.6"], ("afss: error: refine: auto_keep bounds only an auto cut (min_score 'auto'); "
                                  "with min_score 0.6 it would change nothing")),
    (["--min-score", "auto", "--auto-keep", "0.5"], "afss: error: --auto-keep '0.5': expected two shares"),
    (["--vote-threshold", "0"], "afss: error: refine: vote_threshold must be in (0, 1], got 0.0"),  # masks: the image
    (["--tta", ""], "afss: error: TTA views: expected at least one view name"),  # was the default views, silently
])
def test_cli_refine_bad_cut_is_one_line_exit_2(tmp_path, capsys, args, message):
    from afss.cli import main

    _images(tmp_path)
    code = main(["refine", "--images", str(tmp_path), "--teacher", "photometric", *args, "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_refine_config_cut_checks():
    with pytest.raises(AfssError, match="keep_top must be a fraction"):
        RefineConfig(keep_top=2.0)
    with pytest.raises(AfssError, match="min_score must be in"):
        RefineConfig(min_score="best")
    assert RefineConfig(min_score="auto").min_score == "auto"


def test_photometric_labels_are_voted_not_reanalysed(tmp_path):
    """The photometric teacher's refinement defaults to voting its views' masks: where both views
    found the target, the refined mask is the label's own (re-analysing the fused box lowered AP on
    held-out sources, benchmarks/loso.py); ``mask_fusion="segmenter"`` still re-analyses."""
    from afss.label import label_images
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    gt = render_dataset(tmp_path / "scenes", n=4, size=160, domain="clean", seed=3, workers=1)
    teacher = build_teacher("photometric", threads=1)
    raw = label_images(teacher, gt)
    refined, summary = refine_labels(teacher, gt, labels=raw, config=RefineConfig(min_score=0.0))
    assert summary.mask_fusion == "vote" and refined.info["config"]["mask_fusion"] == "vote"
    agreeing = 0
    for r, f in zip(raw.images, refined.images, strict=True):
        if r.instances and f.instances and f.instances[0].scores["views_agreeing"] == 2:
            a, b = r.instances[0].mask, f.instances[0].mask
            assert (a & b).sum() / (a | b).sum() > 0.95
            assert f.instances[0].score == pytest.approx(r.instances[0].score, abs=0.15)
            agreeing += 1
    assert agreeing >= 3
    _, forced = refine_labels(teacher, gt, labels=raw, config=RefineConfig(min_score=0.0, mask_fusion="segmenter"))
    assert forced.mask_fusion == "segmenter"


def test_refining_a_file_that_records_no_teacher_says_the_default_was_tried(tmp_path, monkeypatch, capsys):
    """A ground truth names no teacher: refine fell back to grounded-sam2, and its model error
    did not say why that teacher was being loaded at all."""
    from afss.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["-q", "synth", "--n", "2", "--size", "64", "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    gt = tmp_path / "s" / "gt.json"
    assert main(["-q", "refine", "--labels", str(gt), "--out", str(tmp_path / "r.json")]) == 2
    assert (f"afss: error: {gt} records no teacher, so refine tried the default, grounded-sam2; pass --teacher "
            "(e.g. photometric, weights-free): cannot load model") in capsys.readouterr().err
    assert main(["-q", "refine", "--labels", str(gt), "--teacher", "photometric", "--out", str(tmp_path / "r.json")]) == 0


def test_images_without_a_given_label_are_said_to_be_labelled_afresh(tmp_path, caplog):
    """Labels whose file names did not match (`./a.png`) were ignored without a word and the teacher
    labelled every image again."""
    import logging

    from afss.cli import main

    assert main(["-q", "synth", "--n", "3", "--size", "64", "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    gt = read_coco(tmp_path / "s" / "gt.json")
    renamed = gt.replace(images=tuple(im.replace(file_name="./" + im.file_name) for im in gt.images[:2]))
    from afss.teachers import build_teacher

    with caplog.at_level(logging.WARNING, logger="afss.refine.refiner"):
        refine_labels(build_teacher("photometric"), gt, labels=renamed, views="identity")
    assert "3 of 3 images have no given label of the same file_name (e.g. 'images/000000.png')" in caplog.text
