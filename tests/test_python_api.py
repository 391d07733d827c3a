"""The stages as a notebook user calls them: paths where the CLI takes files, files that read back
where they were written, and one clear line for what cannot be taken (found by an API probe)."""

from __future__ import annotations

import numpy as np
import pytest

from afss.errors import AfssError
from afss.evaluate.score_quality import score_quality
from afss.io.coco import read_coco, write_coco
from afss.io.images import save_image
from afss.label import label_images
from afss.refine import filter_labels, refine_labels
from afss.teachers import build_teacher
from afss.types import ImageLabels, Instance, LabelSet


def _scenes(root, n=3):
    """Bright rectangles on black, and their ground truth."""
    images = []
    for k in range(n):
        rgb = np.zeros((64, 80, 3), np.uint8)
        rgb[10 + 3 * k:40, 12:50 + 4 * k] = 180
        save_image(root / f"img{k}.png", rgb)
        images.append(ImageLabels(f"img{k}.png", 64, 80, (Instance.from_mask(rgb[..., 0] > 0),)))
    gt = LabelSet(tuple(images), image_root=str(root))
    write_coco(gt, root / "gt.json")
    return gt


def test_labels_written_below_the_working_folder_still_find_their_images(tmp_path, monkeypatch):
    """A label set without an image root means the working folder: written to a subfolder and read back,
    it must not look for the images beside the JSON file."""
    monkeypatch.chdir(tmp_path)
    _scenes(tmp_path / "data")
    images = LabelSet(tuple(ImageLabels(f"data/img{k}.png", 64, 80) for k in range(3)))  # image_root None
    labels = label_images(build_teacher("photometric"), images, out="runs/labels.json")
    back = read_coco("runs/labels.json")
    assert all((tmp_path / back.image_path(im)).is_file() for im in back.images)
    assert all(im.instances for im in back.images) and len(back) == len(labels) == 3


def test_stages_take_paths_where_the_cli_takes_files(tmp_path):
    gt = _scenes(tmp_path)
    teacher = build_teacher("photometric")
    from_folder = label_images(teacher, tmp_path)  # a folder of images
    from_json = label_images(teacher, tmp_path / "gt.json", out=tmp_path / "labels.json")  # a COCO file
    assert [im.file_name for im in from_folder.images] == [im.file_name for im in from_json.images]
    refined, summary = refine_labels(teacher, str(tmp_path / "gt.json"), labels=tmp_path / "labels.json",
                                     config={"min_score": 0.0})
    assert len(refined) == 3 and summary.filter.kept == 3
    kept, _ = filter_labels(str(tmp_path / "labels.json"), min_score=0.0)
    assert len(kept) == 3
    assert score_quality(tmp_path / "gt.json", tmp_path / "labels.json").n == score_quality(gt, from_json).n == 3


@pytest.mark.parametrize("call, message", [
    (lambda t, d: label_images(t, [str(d / "img0.png")]),
     r"got list \(image files: afss.label.images_from_folder"),
    (lambda t, d: refine_labels(t, d / "gt.json", config={"min_scor": 0.5}),
     "unknown RefineConfig field 'min_scor'.*did you mean 'min_score'"),
    (lambda t, d: refine_labels(t, d / "gt.json", config="strict"), "config must be a RefineConfig"),
    (lambda t, d: filter_labels(d), "is a folder, expected a COCO JSON file"),
    (lambda t, d: t.label(np.zeros((8, 8, 3), np.uint8)), r"label takes a list of images: \[image\] for one"),
    (lambda t, d: t.label(str(d / "img0.png")), r"label takes a list of images"),
    (lambda t, d: t.label([np.zeros((8, 8, 3), np.uint8)], ["spacecraft"]), "the prompt is one string"),
    (lambda t, d: write_coco(d / "x.json", read_coco(d / "gt.json")), "expected a LabelSet first"),
])
def test_what_cannot_be_taken_says_so_in_one_line(tmp_path, call, message):
    _scenes(tmp_path, n=1)
    with pytest.raises(AfssError, match=message) as e:
        call(build_teacher("photometric"), tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["photometric", "salient-tiny"])
def test_every_teacher_refuses_one_bare_image(name, tmp_path):
    """The rows of one array were taken as images (a path, as its characters)."""
    if name == "salient-tiny":
        from tests.tiny_onnx import tiny_model

        teacher = build_teacher("salient", model=str(tiny_model(tmp_path / "tiny.onnx")), threads=1)
    else:
        teacher = build_teacher(name)
    with pytest.raises(AfssError, match=r"\[image\] for one"):
        teacher.label(np.zeros((16, 16, 3), np.uint8))


def _rgb():
    return np.zeros((32, 32, 3), np.uint8)


@pytest.mark.parametrize("call, message", [
    (lambda: __import__("afss.synth.scene", fromlist=["x"]).render_scene(0, size=0),
     r"synth: size must be a whole number in \[32, 8192\], got 0"),
    (lambda: __import__("afss.viz", fromlist=["x"]).draw_instances(_rgb(), LabelSet(())), r"labels.images\[k\]"),
    (lambda: __import__("afss.viz", fromlist=["x"]).draw_instances(_rgb(), [Instance((1, 1, 5, 5))], color="red"),
     "color must be an RGB triple"),
    (lambda: __import__("afss.refine.fusion", fromlist=["x"]).fuse_masks([np.zeros((4, 4)), np.zeros((5, 4))]),
     r"fuse_masks needs \(H, W\) masks of one size"),
    (lambda: __import__("afss.engines", fromlist=["x"]).build_engine("local", num_workers=8),
     "the local engine takes no options, got num_workers"),
    (lambda: __import__("afss.evaluate", fromlist=["x"]).evaluate(LabelSet(()), [LabelSet(())]),
     "pred: expected a LabelSet or the path of a COCO JSON file, got list"),
])
def test_helpers_refuse_what_they_cannot_use(call, message):
    with pytest.raises(AfssError, match=message):
        call()


def test_one_instance_is_drawn_as_a_list_of_one():
    from afss.viz import draw_instances

    drawn = draw_instances(_rgb(), Instance((4, 4, 20, 20)), color=(255, 0, 0), label=False)
    red, inside = drawn[4, 10], drawn[12, 12]
    assert red[0] > 200 and red[1:].tolist() == [0, 0] and inside.tolist() == [0, 0, 0]  # the outline, not a fill


def test_swapped_ground_truth_and_labels_are_pointed_out(tmp_path, caplog):
    from afss.evaluate import evaluate

    gt = _scenes(tmp_path, n=2)
    labels = label_images(build_teacher("photometric"), gt)
    with caplog.at_level("WARNING", logger="afss.evaluate.api"):
        evaluate(gt, labels)
    assert not caplog.records
    with caplog.at_level("WARNING", logger="afss.evaluate.api"):
        evaluate(labels, gt)
    assert "the ground truth comes first" in caplog.text


def test_numpy_integers_render_a_scene():
    from afss.synth.scene import render_scene

    rgb, gt = render_scene(np.int64(3), size=np.int64(64), index=np.int64(2))
    assert rgb.shape == (64, 64, 3) and gt.image_id == 3


def test_summaries_pickle_like_the_labels(tmp_path):
    """A refinement run in a worker process returns its labels and its summary."""
    import pickle

    gt = _scenes(tmp_path, n=2)
    refined, summary = refine_labels(build_teacher("photometric"), gt)
    back_labels, back_summary = pickle.loads(pickle.dumps((refined, summary)))
    assert back_labels == refined and back_summary == summary


def test_a_file_with_absolute_names_says_how_to_read_it_from_python(tmp_path):
    gt = _scenes(tmp_path, n=1)
    absolute = gt.replace(images=tuple(im.replace(file_name=str(tmp_path / im.file_name)) for im in gt.images))
    write_coco(absolute, tmp_path / "abs.json")
    with pytest.raises(AfssError, match=r"pass read_coco\(path, allow_absolute_paths=True\) instead of the path"):
        filter_labels(tmp_path / "abs.json", min_score=0.0)
    kept, _ = filter_labels(read_coco(tmp_path / "abs.json", allow_absolute_paths=True), min_score=0.0)
    assert len(kept) == 1


def test_a_prompt_that_is_not_text_is_refused_before_any_image(tmp_path):
    _scenes(tmp_path, n=1)
    with pytest.raises(AfssError, match="the prompt is one string"):
        label_images(build_teacher("photometric"), tmp_path, prompt=["spacecraft"], out=tmp_path / "l.json")
    assert not (tmp_path / "l.json").exists()


def test_a_model_teachers_option_given_to_the_photometric_teacher_says_whose_it_is():
    with pytest.raises(AfssError, match="photometric teacher takes no 'device': that is an option of the "
                                        "vision-language teachers and the student"):
        build_teacher("photometric", device="cuda")
    with pytest.raises(AfssError, match="did you mean 'k_grow'"):  # not a model option: the closest name
        build_teacher("photometric", k_grwo=3.0)
