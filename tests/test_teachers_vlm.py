"""VLM teachers with tiny random-weight checkpoints of the real transformers classes, loaded through
``from_pretrained(local_dir)``: geometry, modes, batching, thresholds, offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from afss.errors import AfssError
from afss.teachers import build_teacher
from afss.teachers.detect_segment import size_batches
from afss.teachers.hf import normalize_gdino_prompt, split_phrases
from afss.teachers.segmenters import BoxSegmenter
from tests.tiny_models import build_tiny_teacher, tiny_model_dir

VLM_TEACHERS = ["grounded-sam2", "owlv2-sam", "sam3"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    for kind in ("grounding-dino", "mm-grounding-dino", "sam2", "sam", "owlv2", "sam3"):
        tiny_model_dir(kind, root)
    return root


@pytest.fixture(scope="module")
def images():
    """Five generated RGB images, two sizes: a bright rectangle on a noisy dark background."""
    out = []
    for i, (h, w) in enumerate([(80, 120), (80, 120), (96, 64), (80, 120), (80, 120)]):
        rng = np.random.default_rng(i)
        im = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
        im[h // 4: h // 2 + i, w // 3: w // 2 + 2 * i] = 220
        out.append(im)
    return out


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_label_end_to_end_top1(tiny_root, images, name):
    teacher = build_tiny_teacher(name, tiny_root)
    done = []
    result = teacher.label(images, "Spacecraft", progress=done.append)
    assert sum(done) == len(images)
    assert len(result) == len(images)
    for im, insts in zip(images, result):
        h, w = im.shape[:2]
        assert len(insts) == 1  # threshold 0: every image has a best box
        inst = insts[0]
        x0, y0, x1, y1 = inst.box_xyxy
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
        assert inst.mask.shape == (h, w) and inst.mask.dtype == bool
        assert inst.source == name
        assert 0.0 <= inst.score <= 1.0
        assert "box_score" in inst.scores


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_all_instances_mode_is_sorted_and_contains_top1(tiny_root, images, name):
    top1 = build_tiny_teacher(name, tiny_root, top1=True).label(images[:3], "spacecraft")
    every = build_tiny_teacher(name, tiny_root, top1=False).label(images[:3], "spacecraft")
    for best, insts in zip(top1, every):
        assert len(insts) > 1
        scores = [i.score for i in insts]
        assert scores == sorted(scores, reverse=True)
        # top-1 keeps the detector's most confident box (ties broken by query order)
        top_box = max(insts, key=lambda i: i.scores["box_score"]).scores["box_score"]
        assert best[0].scores["box_score"] == pytest.approx(top_box)
        assert any(np.allclose(i.box_xyxy, best[0].box_xyxy) for i in insts)


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_label_images_top1_over_an_all_instances_teacher_picks_the_detectors_best(tiny_root, images, tmp_path, name):
    from afss.io.images import save_image
    from afss.label import images_from_folder, label_images

    for k, im in enumerate(images[:3]):
        save_image(tmp_path / f"img{k}.png", im)
    picked = label_images(build_tiny_teacher(name, tiny_root, top1=False), images_from_folder(tmp_path), top1=True)
    own = build_tiny_teacher(name, tiny_root, top1=True).label(images[:3], "spacecraft")
    for im, (inst,) in zip(picked.images, own):
        (best,) = im.instances
        np.testing.assert_allclose(best.box_xyxy, inst.box_xyxy, atol=1e-4)
        assert best.detector_score == pytest.approx(inst.scores["box_score"])


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_batch_of_4_equals_batches_of_1(tiny_root, images, name):
    a = build_tiny_teacher(name, tiny_root, top1=False, batch_size=4).label(images, "spacecraft")
    b = build_tiny_teacher(name, tiny_root, top1=False, batch_size=1).label(images, "spacecraft")
    for ia, ib in zip(a, b):
        assert len(ia) == len(ib)
        np.testing.assert_allclose([i.box_xyxy for i in ia], [i.box_xyxy for i in ib], atol=1e-3)
        np.testing.assert_allclose([i.score for i in ia], [i.score for i in ib], atol=1e-5)
        for x, y in zip(ia, ib):
            assert np.mean(x.mask != y.mask) < 1e-3


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_nothing_above_threshold_gives_empty_lists(tiny_root, images, name):
    result = build_tiny_teacher(name, tiny_root, box_threshold=1.0).label(images[:2], "spacecraft")
    assert result == [[], []]


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_segment_boxes_keeps_boxes_and_original_size(tiny_root, images, name):
    teacher = build_tiny_teacher(name, tiny_root)
    assert teacher.can_segment_boxes
    im = images[2]  # 96 x 64, portrait
    boxes = np.array([[5.0, 10.0, 40.0, 60.0], [0.0, 0.0, 64.0, 96.0]])
    out = teacher.segment_boxes(im, boxes)
    assert [i.box_xyxy for i in out] == [tuple(b) for b in boxes]
    assert all(i.mask.shape == (96, 64) for i in out)
    assert all(0.0 <= i.scores["mask_score"] <= 1.0 for i in out)
    assert teacher.segment_boxes(im, np.zeros((0, 4))) == []


def test_sam3_top1_post_processes_one_query_per_image(tiny_root, images):
    """Every query above the threshold was upsampled to full size and encoded (up to 200), for one kept."""
    teacher = build_tiny_teacher("sam3", tiny_root, box_threshold=0.0)
    queries = []
    post = teacher.processor.post_process_instance_segmentation
    teacher.processor.post_process_instance_segmentation = lambda out, **kw: queries.append(
        out.pred_masks.shape[1]) or post(out, **kw)
    top1 = teacher.label(images[:2], "spacecraft")
    every = build_tiny_teacher("sam3", tiny_root, box_threshold=0.0, top1=False).label(images[:2], "spacecraft")
    assert queries == [1] and len(every[0]) > 1  # the tiny model has several queries; one was post-processed
    assert [t[0].box_xyxy for t in top1] == [e[0].box_xyxy for e in every]
    np.testing.assert_array_equal(top1[0][0].mask, every[0][0].mask)


def test_device_auto_says_when_it_falls_back_to_the_cpu(tiny_root, caplog):
    """A GPU user with a CPU-only torch saw only seconds per image."""
    import logging

    from afss.teachers import hf

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: auto picks it")
    hf._say_cpu_fallback.cache_clear()  # said once per process: another test may have said it
    with caplog.at_level(logging.INFO, logger="afss.teachers.hf"):
        build_tiny_teacher("sam3", tiny_root, device="auto", segmenter=str(tiny_model_dir("sam2", tiny_root)))
    assert caplog.text.count("device auto:") == 1  # SAM 3 and its segmenter resolve auto each
    assert "device auto: torch sees no GPU, so the model runs on the CPU" in caplog.text or \
        "device auto: torch was built without CUDA, so the model runs on the CPU" in caplog.text


def test_sam3_without_segmenter_cannot_segment_boxes(tiny_root):
    teacher = build_tiny_teacher("sam3", tiny_root, segmenter=None)
    assert not teacher.can_segment_boxes


# -- controlled detector outputs --------------------------------------------------------------------

class StubDetector(torch.nn.Module):
    """Returns fixed outputs of the real transformers output class; records the inputs it was given."""

    def __init__(self, make_output):
        super().__init__()
        self.make_output = make_output
        self.calls = []

    def forward(self, **inputs):
        self.calls.append(inputs)
        return self.make_output(inputs)


def _logit(p):
    return float(np.log(p / (1 - p)))


def test_grounding_dino_coordinates_and_thresholds(tiny_root):
    from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoObjectDetectionOutput

    def output(inputs):
        n_img, n_tok = inputs["input_ids"].shape
        logits = torch.full((n_img, 3, 32), -1e4)
        logits[:, 0, 1] = _logit(0.351)  # just above 0.35: kept
        logits[:, 1, 1] = _logit(0.349)  # just below: dropped
        logits[:, 2, 1:n_tok - 1] = _logit(0.9)  # kept; box runs off the right edge
        boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.3, 0.3, 0.1, 0.1], [0.95, 0.25, 0.2, 0.1]])  # cx cy w h
        return GroundingDinoObjectDetectionOutput(logits=logits, pred_boxes=boxes.expand(n_img, 3, 4).clone())

    teacher = build_tiny_teacher("grounded-sam2", tiny_root, top1=False, box_threshold=0.35, text_threshold=0.99,
                                 score="box")
    teacher.detector_model = StubDetector(output)
    im = np.zeros((80, 120, 3), np.uint8)  # H=80, W=120
    insts = teacher.label([im, im], "Spacecraft")[1]
    tokens = teacher.detector_processor.tokenizer.convert_ids_to_tokens(teacher.detector_model.calls[0]["input_ids"][0])
    assert tokens == ["[CLS]", "spacecraft", ".", "[SEP]"]  # "Spacecraft" -> "spacecraft."
    # kept iff score > box_threshold; the text threshold only names phrases, it never drops a box
    np.testing.assert_allclose([i.scores["box_score"] for i in insts], [0.9, 0.351], atol=1e-6)
    np.testing.assert_allclose(insts[0].box_xyxy, [102.0, 16.0, 120.0, 24.0], atol=1e-4)  # x1 126 clipped to W
    np.testing.assert_allclose(insts[1].box_xyxy, [48.0, 24.0, 72.0, 56.0], atol=1e-4)
    top1 = build_tiny_teacher("grounded-sam2", tiny_root, box_threshold=0.35)
    top1.detector_model = StubDetector(output)
    (best,) = top1.label([im], "spacecraft")[0]
    np.testing.assert_allclose(best.box_xyxy, [102.0, 16.0, 120.0, 24.0], atol=1e-4)
    assert best.score == pytest.approx(best.scores["mask_score"])  # default score: SAM's predicted IoU


def test_owlv2_boxes_are_fractions_of_the_padded_square(tiny_root):
    from transformers.models.owlv2.modeling_owlv2 import Owlv2ObjectDetectionOutput

    def output(inputs):
        n_img = inputs["pixel_values"].shape[0]
        logits = torch.tensor([[[_logit(0.8)], [_logit(0.05)]]]).expand(n_img, 2, 1).clone()
        boxes = torch.tensor([[[0.5, 0.25, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]]]).expand(n_img, 2, 4).clone()
        return Owlv2ObjectDetectionOutput(logits=logits, pred_boxes=boxes)

    teacher = build_tiny_teacher("owlv2-sam", tiny_root, top1=False, box_threshold=0.1)
    teacher.detector_model = StubDetector(output)
    wide = teacher.label([np.zeros((80, 120, 3), np.uint8)], "spacecraft")[0]
    tall = teacher.label([np.zeros((120, 80, 3), np.uint8)], "spacecraft")[0]
    assert len(wide) == len(tall) == 1  # 0.05 < 0.1 dropped
    np.testing.assert_allclose(wide[0].box_xyxy, [48.0, 18.0, 72.0, 42.0], atol=1e-4)  # padded square 120
    np.testing.assert_allclose(tall[0].box_xyxy, [48.0, 18.0, 72.0, 42.0], atol=1e-4)


def _record_prompts(teacher):
    """Wrap the teacher's segmenter so that the boxes it is prompted with are recorded."""
    prompts, segment = [], teacher.segmenter.segment

    def spy(images, boxes_xyxy):
        prompts.append([np.array(b) for b in boxes_xyxy])
        return segment(images, boxes_xyxy)

    teacher.segmenter.segment = spy
    return prompts


def test_the_raw_detector_box_prompts_the_segmenter_and_the_stored_box_is_clipped(tiny_root):
    from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoObjectDetectionOutput
    from transformers.models.owlv2.modeling_owlv2 import Owlv2ObjectDetectionOutput

    def gdino(inputs):  # one box running off the right edge (x1 = 126 > W = 120) and above the top
        n_img, n_tok = inputs["input_ids"].shape
        logits = torch.full((n_img, 1, 32), -1e4)
        logits[:, 0, 1:n_tok - 1] = _logit(0.9)
        return GroundingDinoObjectDetectionOutput(
            logits=logits, pred_boxes=torch.tensor([[[0.95, 0.05, 0.2, 0.2]]]).expand(n_img, 1, 4).clone())

    def owl(inputs):  # padded square 120: y1 = 84 runs below H = 80
        n_img = inputs["pixel_values"].shape[0]
        return Owlv2ObjectDetectionOutput(logits=torch.full((n_img, 1, 1), _logit(0.8)),
                                          pred_boxes=torch.tensor([[[0.5, 0.6, 0.2, 0.2]]]).expand(n_img, 1, 4).clone())

    im = np.zeros((80, 120, 3), np.uint8)
    for name, output, raw, stored in [
        ("grounded-sam2", gdino, [102.0, -4.0, 126.0, 12.0], [102.0, 0.0, 120.0, 12.0]),
        ("owlv2-sam", owl, [48.0, 60.0, 72.0, 84.0], [48.0, 60.0, 72.0, 80.0]),
    ]:
        teacher = build_tiny_teacher(name, tiny_root, box_threshold=0.1)
        teacher.detector_model = StubDetector(output)
        prompts = _record_prompts(teacher)
        (inst,) = teacher.label([im], "spacecraft")[0]
        np.testing.assert_allclose(prompts[0][0], [raw], atol=1e-4)  # what the reference code prompts SAM with
        np.testing.assert_allclose(inst.box_xyxy, stored, atol=1e-4)
        # the mask is the one the raw box gives
        (direct,) = teacher.segment_boxes(im, np.array([raw]))
        assert inst.rle == direct.rle and inst.scores["mask_score"] == pytest.approx(direct.scores["mask_score"])


@pytest.mark.parametrize("kind", ["sam2", "sam"])
def test_segmenter_box_frame_matches_the_processor(tiny_root, kind):
    seg = BoxSegmenter.from_pretrained(str(tiny_model_dir(kind, tiny_root)), device="cpu")
    im = np.zeros((75, 130, 3), np.uint8)
    boxes = [[10.0, 5.0, 60.0, 70.0], [100.0, 20.0, 129.0, 74.0]]
    expected = seg.processor(images=[im], input_boxes=[boxes], return_tensors="pt")["input_boxes"][0].numpy()
    np.testing.assert_allclose(seg.boxes_to_model_frame(np.array(boxes), (75, 130)), expected, atol=1e-4)
    out = seg.segment([im], [np.array(boxes)])[0]
    assert out.masks.shape == (2, 75, 130) and out.scores.shape == (2,)


# -- options, prompts, errors -------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, expected", [
    ("spacecraft", "spacecraft."), ("Spacecraft.", "spacecraft."), ("  Satellite. Solar panel ", "satellite. solar panel."),
])
def test_gdino_prompt_convention(prompt, expected):
    assert normalize_gdino_prompt(prompt) == expected


def test_split_phrases_and_empty_prompt():
    assert split_phrases("Satellite. solar panel.") == ["satellite", "solar panel"]
    with pytest.raises(AfssError, match="empty text prompt"):
        split_phrases(" . ")


def test_size_batches_group_same_size_in_order():
    ims = [np.zeros(s, np.uint8) for s in [(4, 4, 3), (5, 4, 3), (4, 4, 3), (4, 4, 3), (5, 4, 3)]]
    assert size_batches(ims, 2) == [[0, 2], [1, 4], [3]]


def test_unknown_option_suggests_the_close_one(tiny_root):
    with pytest.raises(AfssError, match="did you mean 'box_threshold'"):
        build_tiny_teacher("grounded-sam2", tiny_root, box_treshold=0.3)


def test_bad_dtype_and_device(tiny_root):
    with pytest.raises(AfssError, match="dtype"):
        build_tiny_teacher("grounded-sam2", tiny_root, dtype="fp8")
    with pytest.raises(AfssError, match="fp16"):
        build_tiny_teacher("grounded-sam2", tiny_root, dtype="fp16", device="cpu")


@pytest.mark.parametrize("name", ["grounded-sam2", "owlv2-sam"])
def test_the_detector_keeps_fp32_when_the_segmenter_runs_in_bf16(tiny_root, images, name):
    teacher = build_tiny_teacher(name, tiny_root, dtype="bfloat16")
    assert {p.dtype for p in teacher.segmenter.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in teacher.detector_model.parameters()} == {torch.float32}
    seen = []
    forward = teacher.detector_model.forward
    teacher.detector_model.forward = lambda **inputs: seen.append(inputs["pixel_values"].dtype) or forward(**inputs)
    (inst,) = teacher.label(images[:1], "spacecraft")[0]
    assert seen == [torch.float32] and inst.mask.shape == images[0].shape[:2]
    assert (teacher.options["dtype"], teacher.options["detector_dtype"]) == ("bfloat16", "float32")
    cast = build_tiny_teacher(name, tiny_root, dtype="fp32", detector_dtype="bf16")
    assert {p.dtype for p in cast.detector_model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in cast.segmenter.model.parameters()} == {torch.float32}
    assert len(cast.label(images[:1], "spacecraft")[0]) == 1


def test_a_half_precision_segmenter_gets_its_boxes_in_fp32(tiny_root, images):
    """bf16 boxes in SAM's 1024 frame are rounded to steps of 4 px between 512 and 1024; the prompt
    encoder casts to its own precision only after dividing by the input size, which loses less."""
    teacher = build_tiny_teacher("grounded-sam2", tiny_root, dtype="bfloat16")
    seen = []
    forward = teacher.segmenter.model.forward
    teacher.segmenter.model.forward = lambda **inputs: seen.append(inputs["input_boxes"]) or forward(**inputs)
    box = np.array([[801.6, 521.39, 949.87, 864.43]]) * images[0].shape[1] / 1024
    teacher.segment_boxes(images[0], box)
    frame = teacher.segmenter.boxes_to_model_frame(box, images[0].shape[:2])
    assert seen[0].dtype == torch.float32
    np.testing.assert_allclose(seen[0][0].numpy(), frame, rtol=1e-6)


def test_detector_dtype_errors(tiny_root):
    with pytest.raises(AfssError, match="detector_dtype 'fp16' needs device cuda"):
        build_tiny_teacher("grounded-sam2", tiny_root, detector_dtype="fp16")
    with pytest.raises(AfssError, match="unknown detector_dtype 'fp8'"):
        build_tiny_teacher("owlv2-sam", tiny_root, detector_dtype="fp8")
    with pytest.raises(AfssError, match="'sam3' has no separate detector.*dtype"):
        build_tiny_teacher("sam3", tiny_root, detector_dtype="fp32")


def test_cli_detector_dtype_apart_from_dtype(tiny_root, images, tmp_path):
    from afss.cli import main
    from afss.io.coco import read_coco
    from afss.io.images import save_image

    save_image(tmp_path / "imgs" / "a.png", images[0])
    out = tmp_path / "labels.json"
    argv = ["-q", "label", "--images", str(tmp_path / "imgs"), "--out", str(out), "--teacher", "grounded-sam2",
            "--detector", str(tiny_model_dir("grounding-dino", tiny_root)), "--segmenter",
            str(tiny_model_dir("sam2", tiny_root)), "--device", "cpu", "--box-threshold", "0", "--dtype", "bfloat16"]
    assert main(argv) == 0
    options = read_coco(out).info["teacher_options"]
    assert (options["dtype"], options["detector_dtype"]) == ("bfloat16", "float32")
    assert main(argv + ["--overwrite", "--detector-dtype", "bfloat16"]) == 0
    assert read_coco(out).info["teacher_options"]["detector_dtype"] == "bfloat16"


def test_quiet_hides_the_hugging_face_progress_bars_too(tiny_root, images, tmp_path):
    """`afss -q label` still drew transformers' "Loading weights" bars (README: -q hides progress bars)."""
    import os
    import subprocess
    import sys

    from afss.io.images import save_image

    save_image(tmp_path / "imgs" / "a.png", images[0])
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}

    def stderr(*quiet: str) -> str:
        argv = [sys.executable, "-m", "afss.cli", *quiet, "label", "--images", str(tmp_path / "imgs"),
                "--out", str(tmp_path / f"l{len(quiet)}.json"), "--teacher", "grounded-sam2", "--detector",
                str(tiny_model_dir("grounding-dino", tiny_root)), "--segmenter", str(tiny_model_dir("sam2", tiny_root)),
                "--device", "cpu", "--box-threshold", "0"]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "Loading weights" in stderr()
    assert "Loading weights" not in stderr("-q")


def test_offline_hub_id_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(AfssError) as err:
        build_teacher("grounded-sam2", segmenter="afss-test/no-such-sam2", device="cpu")
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "afss-test/no-such-sam2" in msg and "local folder" in msg and "HF_HUB_OFFLINE" in msg and "HF_HOME" in msg
    assert "\n" not in msg


def test_a_mistyped_local_folder_is_said_to_be_no_folder_too(monkeypatch, tmp_path):
    """`--detector tiny/nothere` (tiny/ a folder here) got the hub's cache message alone."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    from transformers import AutoConfig

    from afss.teachers import hf

    (tmp_path / "tiny").mkdir()
    with pytest.raises(AfssError) as err:
        hf.load_pretrained(AutoConfig, "tiny/nothere")
    assert str(err.value).startswith("cannot load model 'tiny/nothere': no such folder here (tiny/ has no nothere), "
                                     "and as a hub id it is not in the local Hugging Face cache")


def test_unreachable_hub_fails_fast(monkeypatch):
    import huggingface_hub.constants as hc

    from afss.teachers import hf

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "hub_reachable", lambda timeout_s=3.0: False)
    with pytest.raises(AfssError, match="hub is unreachable.*local folder"):
        build_teacher("owlv2-sam", detector="afss-test/no-such-owl", device="cpu")


def test_a_gated_models_error_keeps_where_to_ask_for_access(monkeypatch):
    """Only the hub message's first line was kept: "You are trying to access a gated repo.", no link."""
    from afss.teachers import hf

    class Gated:
        @classmethod
        def from_pretrained(cls, name, local_files_only=False, **kwargs):
            if local_files_only:
                raise OSError("not cached")
            raise OSError(f"You are trying to access a gated repo.\nMake sure to have access to it at "
                          f"https://huggingface.co/{name}.\n401 Client Error. (Request ID: x)")

    monkeypatch.setattr(hf, "hub_offline", lambda: False)
    monkeypatch.setattr(hf, "hub_reachable", lambda timeout_s=3.0: True)
    with pytest.raises(AfssError) as err:
        hf.load_pretrained(Gated, "facebook/sam3")
    assert str(err.value) == ("cannot load model 'facebook/sam3' from the Hugging Face hub: You are trying to access a "
                              "gated repo. Make sure to have access to it at https://huggingface.co/facebook/sam3. "
                              "401 Client Error. (Request ID: x)")


def test_bad_local_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AfssError, match="not a saved"):
        build_teacher("sam3", model=str(tmp_path / "empty"), device="cpu")
    with pytest.raises(AfssError, match="no such model folder"):
        build_teacher("sam3", model=str(tmp_path / "missing"), device="cpu")
    with pytest.raises(AfssError, match="not a SAM 3"):
        build_teacher("sam3", model=str(tiny_model_dir("sam2", tmp_path)), device="cpu")


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_options_record_models_and_thresholds(tiny_root, name):
    teacher = build_tiny_teacher(name, tiny_root, box_threshold=0.2)
    opts = teacher.options
    assert opts["teacher"] == name and opts["box_threshold"] == 0.2 and opts["device"] == "cpu"
    assert opts["dtype"] == "float32" and str(tiny_root) in str(opts.get("detector", opts.get("model")))


def test_mm_grounding_dino_detector(tiny_root, images):
    mm_dir = str(tiny_model_dir("mm-grounding-dino", tiny_root))
    teacher = build_tiny_teacher("grounded-sam2", tiny_root, detector=mm_dir)
    assert type(teacher.detector_model).__name__ == "MMGroundingDinoForObjectDetection"
    result = teacher.label(images[1:3], "spacecraft")
    assert [len(r) for r in result] == [1, 1]
    assert result[1][0].mask.shape == images[2].shape[:2]


@pytest.mark.parametrize("name", VLM_TEACHERS)
def test_flipped_views_with_negative_strides_are_accepted(tiny_root, images, name):
    teacher = build_tiny_teacher(name, tiny_root)
    image = images[0]
    flipped = teacher.label([image[::-1]], "spacecraft")[0]  # a numpy view, negative stride
    copied = teacher.label([np.ascontiguousarray(image[::-1])], "spacecraft")[0]
    assert [i.box_xyxy for i in flipped] == [i.box_xyxy for i in copied]
    if teacher.can_segment_boxes:
        boxes = np.array([[2.0, 3.0, 20.0, 30.0]])
        assert teacher.segment_boxes(image[:, ::-1], boxes)[0].mask.shape == image.shape[:2]
