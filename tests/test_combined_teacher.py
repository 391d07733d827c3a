"""The `combined` teacher: the rule on stub members (each member wins somewhere), then the photometric
teacher with the tiny ONNX salient model (`tests/tiny_onnx.py`) through the Python API, the CLI
(label, refine) and ``afss run --check``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from afss.errors import AfssError
from afss.teachers import build_teacher
from afss.teachers.base import Teacher
from afss.teachers.combined import CombinedConfig, CombinedTeacher
from afss.types import Instance
from tests.tiny_onnx import tiny_model

pytest.importorskip("onnx", reason="the tiny test model is built with onnx (pip install 'afss[student]')")
pytest.importorskip("onnxruntime", reason="the salient teacher needs onnxruntime (pip install 'afss[salient]')")


class Stub(Teacher):
    """Returns one instance per image with the given scores (``None``: nothing found)."""

    def __init__(self, name: str, scores: list[float | None]) -> None:
        self.name = name
        self.scores = scores

    def label(self, images, prompt="spacecraft"):
        return [[] if s is None else [Instance(box_xyxy=(k, k, k + 5, k + 5), score=s, source=self.name,
                                               scores={"cue": 1.0})]
                for k, s in zip(range(len(images)), self.scores)]


@pytest.mark.parametrize("photo, salient, winner", [
    (0.8, 0.6, "photometric"),
    (0.4, 0.9, "salient"),
    (None, 0.2, "salient"),  # something beats nothing, however low its score
    (0.1, None, "photometric"),
    (0.5, 0.5, "photometric"),  # ties go to the first member
    (None, None, None),
])
def test_best_score_keeps_the_more_confident_members_label(photo, salient, winner):
    teacher = CombinedTeacher(CombinedConfig(), [Stub("photometric", [photo]), Stub("salient", [salient])])
    [got] = teacher.label([np.zeros((8, 8, 3), np.uint8)])
    if winner is None:
        assert got == []
        return
    [inst] = got
    assert inst.source == winner and inst.score == {"photometric": photo, "salient": salient}[winner]
    assert dict(inst.scores) == {"cue": 1.0, "photometric_score": photo or 0.0, "salient_score": salient or 0.0}


def test_each_image_of_a_batch_is_decided_on_its_own():
    teacher = CombinedTeacher(CombinedConfig(), [Stub("photometric", [0.9, 0.2, None]),
                                                 Stub("salient", [0.3, 0.7, 0.5])])
    got = teacher.label([np.zeros((8, 8, 3), np.uint8)] * 3)
    assert [[i.source for i in f] for f in got] == [["photometric"], ["salient"], ["salient"]]
    assert [f[0].box_xyxy for f in got] == [(0, 0, 5, 5), (1, 1, 6, 6), (2, 2, 7, 7)]  # the winner's own box


class Fixed(Teacher):
    """The same box and score on every image (boxes symmetric under a vertical flip of a 16 x 16
    image), counting the images it was asked to label."""

    def __init__(self, name: str, box, score: float) -> None:
        self.name, self.box, self.score, self.seen = name, box, score, 0

    def label(self, images, prompt="spacecraft"):
        self.seen += len(images)
        return [[Instance(box_xyxy=self.box, score=self.score, source=self.name)] for _ in images]


PHOTO_BOX, SALIENT_BOX = (2.0, 2.0, 10.0, 14.0), (6.0, 4.0, 14.0, 12.0)  # box IoU 0.25: WBF keeps them apart


def test_refinement_labels_an_images_views_with_the_member_that_labelled_it():
    from afss.refine import RefineConfig, refine_image
    from afss.refine.image import refine_batch
    from afss.refine.tta import parse_views
    from afss.types import ImageLabels

    photo, salient = Fixed("photometric", PHOTO_BOX, 0.4), Fixed("salient", SALIENT_BOX, 0.99)
    teacher = CombinedTeacher(CombinedConfig(), [photo, salient])
    views, rgb, config = parse_views("identity,vflip"), np.zeros((16, 16, 3), np.uint8), RefineConfig(min_score=0.0)
    # the salient member would win the flipped view (0.99 > 0.4): with both members on it, its box
    # beats the photometric label's own (WBF halves a box one view of two found: 0.495 > 0.45)
    given = [Instance(box_xyxy=PHOTO_BOX, score=0.5, source="photometric")]
    assert teacher.view_teacher(given) is photo and teacher.view_teacher([]) is teacher
    [refined] = refine_image(teacher, rgb, views, config=config, mask_fusion="vote", identity_instances=given)
    assert refined.box_xyxy == pytest.approx(PHOTO_BOX) and refined.scores["views_agreeing"] == 2
    assert (photo.seen, salient.seen) == (1, 0)  # only the member that made the label saw the flipped view
    [mixed] = refine_image(teacher, rgb, views, config=config, mask_fusion="vote", identity_instances=None)
    assert mixed.box_xyxy == pytest.approx(SALIENT_BOX)  # no given label: every member labels every view
    # a batch: one label call per member, each with the views of the images it labelled
    photo.seen = salient.seen = 0
    ims = [ImageLabels(image_id=k, file_name=f"{k}.png", height=16, width=16) for k in (1, 2, 3)]
    priors = {"1.png": ims[0].replace(instances=tuple(given)),
              "2.png": ims[1].replace(instances=(Instance(box_xyxy=SALIENT_BOX, score=0.9, source="salient"),)),
              "3.png": ims[2].replace(instances=(Instance(box_xyxy=PHOTO_BOX, score=0.3, source="photometric"),))}
    out = refine_batch(teacher, ims, [rgb] * 3, priors, views, config=config, mask_fusion="vote")
    assert [im.instances[0].box_xyxy for im in out] == [pytest.approx(b) for b in (PHOTO_BOX, SALIENT_BOX, PHOTO_BOX)]
    assert (photo.seen, salient.seen) == (2, 1)
    # a prior that found nothing has no member: every member labels its other views, as without labels
    photo.seen = salient.seen = 0
    nothing = {"1.png": ims[0].replace(instances=(), error="no detection")}
    [again] = refine_batch(teacher, ims[:1], [rgb], nothing, views, config=config, mask_fusion="vote")
    assert (photo.seen, salient.seen) == (1, 1) and again.instances[0].box_xyxy == pytest.approx(SALIENT_BOX)


def test_a_member_that_fails_costs_only_the_images_it_labelled():
    from afss.refine import RefineConfig
    from afss.refine.image import refine_batch
    from afss.refine.tta import parse_views
    from afss.types import ImageLabels

    class Broken(Fixed):
        def label(self, images, prompt="spacecraft"):
            raise RuntimeError("out of memory")

    photo, salient = Fixed("photometric", PHOTO_BOX, 0.4), Broken("salient", SALIENT_BOX, 0.9)
    teacher = CombinedTeacher(CombinedConfig(), [photo, salient])
    ims = [ImageLabels(image_id=k, file_name=f"{k}.png", height=16, width=16) for k in (1, 2, 3)]
    priors = {im.file_name: im.replace(instances=(Instance(box_xyxy=box, score=0.5, source=src),))
              for im, (box, src) in zip(ims, [(PHOTO_BOX, "photometric"), (SALIENT_BOX, "salient"),
                                              (SALIENT_BOX, "salient")])}
    out = refine_batch(teacher, ims, [np.zeros((16, 16, 3), np.uint8)] * 3, priors, parse_views("identity,vflip"),
                       config=RefineConfig(min_score=0.0), mask_fusion="vote")
    assert out[0].error is None and out[0].instances[0].box_xyxy == pytest.approx(PHOTO_BOX)
    # the failed group is retried image by image, and each records why
    assert [im.error for im in out[1:]] == ["teacher failed: RuntimeError: out of memory"] * 2
    assert not out[1].instances and not out[2].instances


def test_a_refine_journal_says_whose_views_it_holds(model_path):
    """An interrupted refinement from before `view_teacher`, where every member labelled every view,
    is not continued with member-labelled views (its journal header lacks the mark)."""
    from afss.refine.refiner import _journal_header
    from afss.refine.tta import parse_views

    views = parse_views("identity,vflip")
    from afss.refine import RefineConfig

    combined = CombinedTeacher(CombinedConfig(), [Stub("photometric", [0.5]), Stub("salient", [0.5])])
    assert _journal_header(combined, views, RefineConfig(), "vote", None)["views_by_label_member"] is True
    assert "views_by_label_member" not in _journal_header(build_teacher("photometric"), views, RefineConfig(), "vote", None)


# -- with the photometric teacher and the tiny ONNX model -------------------------------------------

@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("combined") / "tiny.onnx")


def scene(value: int, square=(40, 30, 80, 70)) -> np.ndarray:
    """Dark sky (grey 8) with one square of ``value``: the tiny model sees only squares brighter
    than about 100 grey levels, the photometric teacher also dim ones."""
    img = np.full((128, 128, 3), 8, np.uint8)
    x0, y0, x1, y1 = square
    img[y0:y1, x0:x1] = value
    return img


def test_real_members_each_win_where_the_other_is_weaker(model_path):
    # min_contrast=250 leaves the photometric teacher only a weak label (score ~0.3) of each square
    teacher = build_teacher("combined", **{"salient.model": str(model_path), "salient.threads": 1,
                                           "photometric.min_contrast": 250})
    bright, dim, empty = teacher.label([scene(220), scene(60), scene(8)])
    assert [i.source for i in bright] == ["salient"] and bright[0].score > 0.9 > bright[0].scores["photometric_score"]
    assert [i.source for i in dim] == ["photometric"] and dim[0].scores["salient_score"] == 0.0  # ISNet-alike sees nothing
    assert np.allclose(bright[0].box_xyxy, (40, 30, 80, 70), atol=2)  # the winner's own label, unchanged
    assert dim[0].mask[30:70, 40:80].all()
    assert empty == []
    defaults = build_teacher("combined", salient={"model": str(model_path), "threads": 1})
    [[inst]] = defaults.label([scene(220)])  # with its defaults the photometric label of a crisp square scores higher
    assert inst.source == "photometric" and inst.score == pytest.approx(inst.scores["photometric_score"], abs=1e-6)
    assert inst.scores["photometric_score"] > inst.scores["salient_score"] > 0.9


def test_options_round_trip_and_the_segmenter(model_path):
    teacher = build_teacher("combined", salient={"model": str(model_path), "threads": 1}, **{"photometric.k_grow": 3})
    opts = teacher.options
    assert opts["members"] == ["photometric", "salient"] and opts["rule"] == "best_score"
    assert opts["segmenter"] == "photometric" and opts["photometric"]["k_grow"] == 3.0
    assert build_teacher("combined", **opts).options == opts  # afss refine rebuilds it from what label recorded
    every = build_teacher("combined", top1=False, salient={"model": str(model_path), "top1": True})  # afss label --all
    assert every.options["photometric"]["top1"] is False and every.options["salient"]["top1"] is True
    box = np.array([[36.0, 26.0, 84.0, 74.0]])
    [by_photo] = teacher.segment_boxes(scene(220), box)
    assert by_photo.source == "photometric" and by_photo.mask[30:70, 40:80].all()
    salient = build_teacher("combined", segmenter="salient", salient={"model": str(model_path), "threads": 1})
    [by_salient] = salient.segment_boxes(scene(220), box)
    assert by_salient.source == "salient" and by_salient.mask[30:70, 40:80].all()
    assert salient.can_segment_boxes
    assert not build_teacher("combined", segmenter="none", salient={"model": str(model_path)}).can_segment_boxes
    # refinement's default follows the segmenter member: photometric votes (its re-analysis of a box
    # measured worse than its labels), salient re-segments, none votes
    assert [t.refine_mask_fusion for t in (teacher, salient)] == ["vote", "segmenter"]
    assert build_teacher("combined", segmenter="none", salient={"model": str(model_path)}).refine_mask_fusion == "vote"


@pytest.mark.parametrize("options, message", [
    ({"members": ["photometric"]}, "members must be two or more different teachers"),
    ({"members": ["photometric", "photometric"]}, "members must be two or more different teachers"),
    ({"members": "photometric"}, "members must be a list of teacher names"),
    ({"members": ["photometric", "salinet"]}, "unknown combined teacher member 'salinet'"),
    ({"members": ["photometric", "combined"]}, "unknown combined teacher member 'combined'"),
    ({"rule": "agreement"}, "unknown combined teacher rule 'agreement'"),
    ({"segmenter": "sam"}, "unknown combined teacher segmenter 'sam'"),
    ({"segmenter": 1}, "segmenter=1: expected a string"),
    ({"treshold": 0.4}, "unknown combined teacher option 'treshold'"),
    ({"salient": 3}, "salient=3: expected the member's options as a mapping"),
    ({"salient.treshold": 0.4}, "combined teacher: unknown salient teacher option 'treshold'"),
    ({"photometric.k_grow": "high"}, "combined teacher: photometric teacher option k_grow='high'"),
    ({"salient.model": "missing/model.onnx"}, "combined teacher: missing/model.onnx: no such model file"),
])
def test_bad_options_are_one_line_errors_from_build_and_check(model_path, options, message):
    options = {"salient.model": str(model_path), **options}
    for make in (lambda: build_teacher("combined", **options), lambda: CombinedTeacher.check(**options)):
        with pytest.raises(AfssError) as e:
            make()
        assert message in str(e.value) and "\n" not in str(e.value)


def test_check_loads_no_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    CombinedTeacher.check(salient={"model": str(bad)})  # only the file's existence is checked
    with pytest.raises(AfssError, match="combined teacher: .*not an ONNX model onnxruntime can load"):
        build_teacher("combined", salient={"model": str(bad)})


# -- through the CLI ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for k, value in enumerate((220, 60, 200)):
        cv2.imwrite(str(folder / f"im{k}.png"), scene(value, (40 - 10 * k, 30, 80, 70 + 10 * k))[..., ::-1])
    return folder


def test_label_and_refine_through_the_cli(tmp_path, model_path, image_folder):
    from afss.cli import main
    from afss.io.coco import read_coco

    labels = tmp_path / "labels.json"
    assert main(["-q", "label", "--images", str(image_folder), "--out", str(labels), "--teacher", "combined",
                 "-o", f"salient.model={model_path}", "-o", "salient.threads=1",
                 "-o", "photometric.min_contrast=250"]) == 0
    got = read_coco(labels)
    assert got.info["teacher"] == "combined"
    recorded = got.info["teacher_options"]
    assert recorded["salient"]["model"] == str(model_path) and recorded["photometric"]["min_contrast"] == 250.0
    assert [[i.source for i in im.instances] for im in got.images] == [["salient"], ["photometric"], ["salient"]]
    assert all({"photometric_score", "salient_score"} <= set(i.scores) for im in got.images for i in im.instances)
    refined = tmp_path / "refined.json"
    assert main(["-q", "refine", "--labels", str(labels), "--out", str(refined), "--min-score", "0.1"]) == 0
    out = read_coco(refined)
    assert out.info["teacher"] == "combined" and out.info["teacher_options"] == recorded
    assert {i.source for im in out.images for i in im.instances} == {"combined+tta"}
    assert sum(len(im.instances) for im in out.images) == 3
    top = tmp_path / "top.json"
    assert main(["-q", "refine", "--labels", str(labels), "--out", str(top), "--keep-top", "0.34"]) == 0
    assert sum(len(im.instances) for im in read_coco(top).images) < 3  # --keep-top cuts by rank (ties stay)


@pytest.mark.parametrize("name, options, bad, error", [
    ("salient", "{model: MODEL, threads: 1}", "{model: nowhere/x.onnx}", "teacher.options: nowhere/x.onnx"),
    ("combined", "{salient: {model: MODEL, threads: 1}}", "{salient: {model: nowhere/x.onnx}}",
     "teacher.options: combined teacher: nowhere/x.onnx"),
])
def test_a_run_config_naming_the_teacher_checks_without_loading_it(tmp_path, capsys, model_path, name, options, bad,
                                                                   error):
    from afss.cli import main

    config = tmp_path / "c.yaml"
    config.write_text("data: {source: synth, n: 4, size: 96, seed: 3}\n"
                      f"teacher: {{name: {name}, options: {options.replace('MODEL', str(model_path))}}}\n"
                      "eval: {source: synth, n: 2, size: 96, seed: 4}\n")
    assert main(["run", str(config), "--check"]) == 0
    assert f"name: {name}" in capsys.readouterr().out
    config.write_text(f"teacher: {{name: {name}, options: {bad}}}\n")
    assert main(["run", str(config), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{error}: no such model file" in err, err
