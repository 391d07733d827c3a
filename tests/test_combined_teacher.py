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
    # refinement's default follows the segmenter member: photometric and salient vote (re-segmenting a
    # fused box measured worse than their labels), none votes
    assert [t.refine_mask_fusion for t in (teacher, salient)] == ["vote", "vote"]
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
