"""The student: YOLO-seg export of pseudo-labels, training through Ultralytics, the student as a
teacher, ONNX export, and the CLI from pseudo-labels to predictions scored against ground truth."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

if importlib.util.find_spec("ultralytics") is None:  # not importorskip: afss must import it first (offline setup)
    pytest.skip("the student extra (ultralytics) is not installed", allow_module_level=True)

from afss.cli import main
from afss.errors import AfssError
from afss.io.coco import read_coco, write_coco
from afss.io.images import load_image, save_image
from afss.student.dataset import export_yolo, mask_polygon
from afss.types import ImageLabels, Instance, LabelSet
from tests.tiny_onnx import tiny_model


def _rasterise(poly: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(hw, np.uint8)
    cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], 1)
    return canvas.astype(bool)


def test_a_two_part_mask_becomes_one_polygon_covering_both_parts_and_specks_go():
    mask = np.zeros((60, 80), bool)
    mask[10:30, 5:25] = True      # body
    mask[15:25, 40:70] = True     # a panel seen apart
    mask[50, 75] = True           # a speck
    poly = mask_polygon(mask)
    back = _rasterise(poly, mask.shape)
    body_and_panel = mask.copy()
    body_and_panel[50, 75] = False
    iou = (back & body_and_panel).sum() / (back | body_and_panel).sum()
    assert iou > 0.9
    assert not back[50, 75]
    assert back[20, 15] and back[20, 55]


def _labelled_images(root: Path, n: int = 6) -> LabelSet:
    images = []
    for k in range(n):
        rgb = np.zeros((40, 50, 3), np.uint8)
        rgb[8:20, 10:30] = 200
        save_image(root / "imgs" / f"sub{k % 2}" / f"a{k}.png", rgb)
        m = np.zeros((40, 50), bool)
        m[8:20, 10:30] = True
        inst = Instance.from_mask(m, score=0.9, source="photometric")
        images.append(ImageLabels(file_name=f"sub{k % 2}/a{k}.png", height=40, width=50, instances=(inst,)))
    images.append(ImageLabels(file_name="sub0/a0.png", height=40, width=50, error="filtered: score 0.1 < 0.6")
                  .replace(file_name="dropped.png"))
    return LabelSet(images=tuple(images), image_root=str(root / "imgs"))


def test_export_links_images_writes_normalised_polygons_and_a_seeded_split(tmp_path):
    labels = _labelled_images(tmp_path)
    ds = export_yolo(labels, tmp_path / "yolo", val_fraction=0.34, seed=3)
    assert (ds.train, ds.val, ds.skipped, ds.names) == (4, 2, 1, ("spacecraft",)) and not ds.val_is_train
    # no image of its own to validate on: the training images stand in, and the dataset says so
    assert export_yolo(labels, tmp_path / "y0", val_fraction=0.0).val_is_train
    one = export_yolo(labels.replace(images=labels.images[:1]), tmp_path / "y1", val_fraction=0.34)
    assert (one.train, one.val) == (1, 1) and one.val_is_train
    ds = export_yolo(labels, tmp_path / "yolo", val_fraction=0.34, seed=3)
    images = sorted((tmp_path / "yolo" / "images").rglob("*.png"))
    assert len(images) == 6 and all(p.is_symlink() for p in images)
    label = next((tmp_path / "yolo" / "labels" / "train").glob("*.txt")).read_text().split()
    assert label[0] == "0"
    xy = np.array(label[1:], float).reshape(-1, 2)
    assert xy[:, 0].min() == pytest.approx(10 / 50, abs=0.03) and xy[:, 0].max() == pytest.approx(29 / 50, abs=0.03)
    assert xy[:, 1].min() == pytest.approx(8 / 40, abs=0.03)
    def val_names():
        manifest = json.loads((tmp_path / "yolo" / "manifest.json").read_text())
        return sorted(m["file_name"] for m in manifest["images"] if m["splits"] == ["val"])

    first = val_names()
    export_yolo(labels, tmp_path / "yolo", val_fraction=0.34, seed=3)  # an earlier export is replaced
    assert val_names() == first  # seeded: the same split again
    assert len({tuple(val_names()) for seed in range(6) if export_yolo(labels, tmp_path / "yolo", val_fraction=0.34,
                                                                       seed=seed)}) > 1
    assert json.loads(ds.yaml.read_text())["names"] == {"0": "spacecraft"}
    from afss.io.coco import write_coco

    write_coco(labels, tmp_path / "labels.json")  # a COCO file's path, as the CLI takes it (an AttributeError)
    assert export_yolo(tmp_path / "labels.json", tmp_path / "from_file", val_fraction=0.34, seed=3).train == 4


def test_ultralytics_trains_on_the_pixels_afss_labelled_whatever_the_file(tmp_path):
    """Ultralytics reads training images itself: it turns an EXIF-rotated JPEG, shifts a 12-bit frame
    stored in 16 bits down to nearly black and skips .pgm files. Those are exported as 8-bit PNGs of
    what afss labelled (and `afss predict` feeds the student), so labels and pixels line up; an ordinary
    file stays a link."""
    from PIL import Image

    from afss.student import env

    env.ultralytics()  # offline, its settings kept out of the home folder: before Ultralytics is imported
    from ultralytics.utils.patches import imread  # what Ultralytics' datasets read images with

    root = tmp_path / "imgs"
    root.mkdir()
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[5:15, 10:50] = (220, 180, 120)
    turned = Image.fromarray(rgb)
    exif = turned.getexif()
    exif[0x0112] = 6  # "rotate 90° to display": Ultralytics would see a 60 x 40 picture
    turned.save(root / "turned.jpg", exif=exif, quality=95)
    cv2.imwrite(str(root / "deep.png"), (rgb[..., 0].astype(np.uint16) * 16))  # 12-bit values in 16 bits
    cv2.imwrite(str(root / "deep_rgb.png"), (rgb.astype(np.uint16) * 16))  # PIL calls this mode RGB
    cv2.imwrite(str(root / "plain.pgm"), rgb[..., 1])
    save_image(root / "ordinary.png", rgb)
    alpha = np.where(rgb[..., :1] > 0, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([np.where(alpha > 0, rgb, 255), alpha]), "RGBA").save(root / "cutout.png")  # on white
    mask = np.zeros((40, 60), bool)
    mask[5:15, 10:50] = True
    names = ("turned.jpg", "deep.png", "deep_rgb.png", "plain.pgm", "cutout.png", "ordinary.png")
    labels = LabelSet(images=tuple(ImageLabels(n, 40, 60, instances=(Instance.from_mask(mask, score=0.9),))
                                   for n in names), image_root=str(root))
    ds = export_yolo(labels, tmp_path / "yolo", val_fraction=0.0)
    assert (ds.train, ds.converted) == (6, 5)
    assert load_image(root / "cutout.png").rgb[0, 0].tolist() == [0, 0, 0]  # the transparent white is black sky
    manifest = json.loads((tmp_path / "yolo" / "manifest.json").read_text())["images"]
    for entry in manifest:
        [path] = (tmp_path / "yolo" / "images" / "train").glob(f"{entry['entry']}.*")
        seen = imread(str(path))
        assert seen.shape == (40, 60, 3), entry["file_name"]  # the labelled orientation and size
        np.testing.assert_array_equal(seen[..., ::-1], load_image(root / entry["file_name"]).rgb)
        assert path.is_symlink() == (entry["file_name"] == "ordinary.png")
        assert ("converted" in entry) == (entry["file_name"] != "ordinary.png")


def test_replay_scenes_go_to_the_train_split_only_with_the_target_class(tmp_path):
    labels = _labelled_images(tmp_path)
    replay = _labelled_images(tmp_path / "synth", n=4)
    replay = replay.replace(images=tuple(im.replace(instances=tuple(i.replace(category_id=7) for i in im.instances))
                                         for im in replay.images))
    ds = export_yolo(labels, tmp_path / "yolo", val_fraction=0.34, seed=3, replay=replay)
    plain = export_yolo(labels, tmp_path / "plain", val_fraction=0.34, seed=3)
    assert (ds.train, ds.val, ds.replay) == (plain.train + 4, plain.val, 4)
    manifest = json.loads((tmp_path / "yolo" / "manifest.json").read_text())["images"]
    replayed = [m for m in manifest if m.get("replay")]
    assert len(replayed) == 4 and all(m["splits"] == ["train"] for m in replayed)
    # the validation split is the same pseudo-labelled images as without replay
    val = sorted(m["file_name"] for m in manifest if m["splits"] == ["val"])
    assert val == sorted(m["file_name"] for m in json.loads((tmp_path / "plain" / "manifest.json").read_text())["images"]
                         if m["splits"] == ["val"])
    for m in replayed:  # one class: replay instances are the pseudo-labels' target class, 0
        assert (tmp_path / "yolo" / "labels" / "train" / f"{m['entry']}.txt").read_text().split()[0] == "0"


def test_export_refuses_labels_without_a_kept_instance_and_foreign_folders(tmp_path):
    labels = _labelled_images(tmp_path)
    empty = labels.replace(images=tuple(im.replace(instances=(), error="filtered: score 0.1 < 0.6")
                                        for im in labels.images))
    with pytest.raises(AfssError, match="no image has a kept instance to train on .*filtered"):
        export_yolo(empty, tmp_path / "y")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(AfssError, match="not an afss YOLO export"):
        export_yolo(labels, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_weights_that_are_missing_foreign_or_detection_only_are_one_line(tmp_path):
    from afss.student.env import ultralytics
    from afss.teachers import build_teacher

    ultralytics().YOLO("yolo11n.yaml").save(str(tmp_path / "det.pt"))
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    cases = {"nope.pt": "no such weights file", "det.pt": "a YOLO detect model", "junk.pt": "not a YOLO model",
             "notes.txt": "must be a .pt or .onnx"}
    (tmp_path / "notes.txt").write_text("x")
    for name, message in cases.items():
        with pytest.raises(AfssError, match=message) as err:
            build_teacher("student", weights=str(tmp_path / name))
        assert "\n" not in str(err.value) and name in str(err.value)
    with pytest.raises(AfssError, match="weights=PATH is required"):
        build_teacher("student")
    with pytest.raises(AfssError, match="not a segmentation model config"):
        from afss.student.train import resolve_init

        resolve_init("yolo11n.yaml")


def test_ultralytics_is_offline_and_keeps_out_of_the_home_folder():
    from afss.student import env

    env.ultralytics()
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    assert not Path(USER_CONFIG_DIR).resolve().is_relative_to(Path.home().resolve())
    assert Path(USER_CONFIG_DIR, "Arial.ttf").is_file()  # so the plots never download it
    assert os.environ["YOLO_OFFLINE"] == "1" and SETTINGS["sync"] is False


def test_importing_ultralytics_leaves_opencv_its_threads():
    import subprocess
    import sys

    code = ("import cv2; before = cv2.getNumThreads()\n"
            "from afss.student.env import ultralytics; ultralytics()\n"
            "print(before, cv2.getNumThreads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after = done.stdout.split()
    assert after == before


def test_cli_pseudo_labels_to_a_trained_student_its_predictions_and_onnx(tmp_path, capsys, monkeypatch, caplog):
    """The tiny end-to-end run CI makes: files, shapes, masks at the original size, AP computed."""
    monkeypatch.chdir(tmp_path)
    q = ["-q"]
    assert main([*q, "synth", "--n", "12", "--size", "96", "--domain", "clean", "--seed", "4", "--workers", "1",
                 "--out", "data"]) == 0
    assert main([*q, "label", "--teacher", "photometric", "--gt", "data/gt.json", "--out", "labels.json"]) == 0
    assert main([*q, "train", "--labels", "labels.json", "--init", "yolo11n-seg.yaml", "--epochs", "1", "--imgsz", "64",
                 "--batch", "4", "--out", "run"]) == 0
    err = capsys.readouterr().err
    assert "afss train: " in err and "s/epoch" in err
    assert (tmp_path / "run" / "weights" / "best.pt").is_file() and (tmp_path / "run" / "results.csv").is_file()
    record = json.loads((tmp_path / "run" / "train.json").read_text())
    assert record["dataset"]["train"] + record["dataset"]["val"] >= 11 and record["labels_info"]["stage"] == "label"
    assert not (tmp_path / "runs").exists()  # Ultralytics' default folder stays unused
    trained = yaml.safe_load((tmp_path / "run" / "args.yaml").read_text())
    assert trained["freeze"] is None and trained["optimizer"] == "auto"  # from random weights: Ultralytics' recipe
    # from a checkpoint, the default recipe fine-tunes: backbone frozen, gentle SGD, what train.json records
    assert main([*q, "train", "--labels", "labels.json", "--init", "run/weights/best.pt", "--epochs", "1",
                 "--imgsz", "64", "--batch", "4", "--out", "tuned"]) == 0
    tuned = yaml.safe_load((tmp_path / "tuned" / "args.yaml").read_text())
    assert (tuned["freeze"], tuned["optimizer"], tuned["lr0"], tuned["warmup_epochs"]) == (10, "SGD", 0.002, 0)
    assert json.loads((tmp_path / "tuned" / "train.json").read_text())["recipe_args"]["freeze"] == 10
    # the heads recipe: only the head's box and class branches move; the backbone, neck, BatchNorm
    # statistics and the mask branch (prototypes, coefficients) keep the start's weights
    assert main([*q, "train", "--labels", "labels.json", "--init", "run/weights/best.pt", "--recipe", "heads",
                 "--epochs", "2", "--imgsz", "64", "--batch", "4", "--out", "heads"]) == 0
    start, heads = (_state("run/weights/best.pt"), _state("heads/weights/last.pt"))
    moved = {k.split(".")[2] if k.startswith("model.23.") else "body" for k in start
             if not np.allclose(start[k], heads[k], rtol=1e-3, atol=1e-4)}
    assert moved == {"cv2", "cv3"}, moved
    assert json.loads((tmp_path / "heads" / "train.json").read_text())["recipe_args"]["freeze"][-3:] == [
        "23.proto", "23.cv4", "23.one2one_cv4"]
    # pretraining continued from a checkpoint trains every layer, with Ultralytics' recipe
    assert main([*q, "pretrain", "--init", "run/weights/best.pt", "--n", "6", "--size", "96", "--workers", "1",
                 "--epochs", "1", "--imgsz", "64", "--batch", "4", "--out", "pre.pt"]) == 0
    assert (tmp_path / "pre.pt").is_file()
    pre = yaml.safe_load((tmp_path / "pre.pretrain" / "train" / "args.yaml").read_text())
    assert (pre["freeze"], pre["optimizer"]) == (None, "auto")
    assert main([*q, "predict", "--weights", "run/weights/best.pt", "--gt", "data/gt.json", "--imgsz", "64",
                 "--conf", "0.0", "--all", "--out", "pred.json"]) == 0
    pred = read_coco("pred.json")
    assert len(pred) == 12 and pred.info["teacher"] == "student"
    for im in pred.images:
        for inst in im.instances:
            assert inst.mask.shape == (96, 96) and 0.0 <= inst.score <= 1.0
    assert main([*q, "export", "--weights", "run/weights/best.pt", "--imgsz", "64", "--out", "m.onnx"]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 1e6
    assert main([*q, "predict", "--weights", "m.onnx", "--gt", "data/gt.json", "--conf", "0.0", "--all",
                 "--out", "pred_onnx.json"]) == 0
    assert len(read_coco("pred_onnx.json")) == 12
    # an exported model runs at the size it was built for: another --imgsz is said to be ignored, not dropped silently
    assert main([*q, "predict", "--weights", "m.onnx", "--images", "data/images", "--imgsz", "128",
                 "--out", "pred_onnx128.json"]) == 0
    assert "exported at 64 px, so it runs at 64, not imgsz 128" in caplog.text
    capsys.readouterr()
    assert main(["eval", "--gt", "data/gt.json", "--pred", "pred.json", "--pred", "labels.json",
                 "--iou-type", "bbox", "--protocol", "coco"]) == 0
    metrics = json.loads((tmp_path / "pred.metrics.json").read_text())
    ap = next(r["ap"] for r in metrics["rows"] if r["protocol"] == "coco")
    assert ap is not None and 0.0 <= ap <= 1.0  # computed (there is ground truth); no quality bound
    # the student is a teacher: refine runs it through TTA + WBF unchanged
    assert main([*q, "refine", "--teacher", "student", "-o", "weights=\"run/weights/best.pt\"", "-o", "imgsz=64",
                 "-o", "conf=0.0", "--images", "data/images", "--min-score", "0", "--out", "refined.json"]) == 0
    assert len(read_coco("refined.json")) == 12


def _state(weights: str) -> dict[str, np.ndarray]:
    """A checkpoint's float tensors (weights and BatchNorm statistics), as float32 arrays."""
    from afss.student.model import load_yolo

    return {k: v.float().numpy() for k, v in load_yolo(weights).model.state_dict().items() if v.is_floating_point()}


def test_auto_from_the_synth_start_adapts_every_layer_where_its_boxes_disagree_with_the_labels(tmp_path, monkeypatch):
    """``auto`` from the shipped start: ``box`` where the start already finds what the labels mark,
    ``ultralytics`` on its 25-epoch schedule where it does not; measured on the labels, no ground truth."""
    import afss.student.train as train_module
    from afss.label import label_images
    from afss.student.recipe import ADAPT_BELOW, RECIPE_EPOCHS, resolve_recipe
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS, TrainConfig, start_agreement, train_student
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    assert resolve_recipe("auto", "synth", 0.78) == "box" and resolve_recipe("auto", "synth") == "box"
    assert resolve_recipe("auto", "synth", ADAPT_BELOW - 0.01) == "ultralytics"
    assert resolve_recipe("auto", "/w/best.pt", 0.1) == "finetune" and resolve_recipe("heads", "synth", 0.1) == "heads"
    assert (RECIPE_EPOCHS["box"], RECIPE_EPOCHS["ultralytics"]) == (10, 25)

    scenes = render_dataset(tmp_path / "s", n=6, size=128, domain="clean", seed=21, workers=1)
    start = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=128)
    own = label_images(start, scenes)  # labels that are the start's own boxes: full agreement
    assert sum(1 for im in own.images if im.instances) >= 4
    assert start_agreement(SHIPPED_SYNTH_WEIGHTS, own, imgsz=128) == pytest.approx(1.0, abs=1e-6)

    def elsewhere(im):  # each label moved to the opposite corner: the start's boxes miss it
        def moved(inst):
            x0, y0, x1, y1 = inst.box_xyxy
            w, h = x1 - x0, y1 - y0
            nx, ny = (0.0 if x0 > im.width / 2 - w / 2 else im.width - w), (0.0 if y0 > im.height / 2 - h / 2 else im.height - h)
            return inst.replace(box_xyxy=(nx, ny, nx + w, ny + h), rle=None)
        return im.replace(instances=tuple(moved(i) for i in im.instances))

    unlike = own.replace(images=tuple(elsewhere(im) for im in own.images))
    assert start_agreement(SHIPPED_SYNTH_WEIGHTS, unlike, imgsz=128) < ADAPT_BELOW

    class Stop(Exception):
        pass

    def no_training(*args, **kwargs):  # what train_student decided is what is tested, not Ultralytics
        raise Stop

    monkeypatch.setattr(train_module, "export_yolo", no_training)
    for labels, want in ((own, ("box", 10)), (unlike, ("ultralytics", 25))):
        plans = []
        with pytest.raises(Stop):
            train_student(labels, tmp_path / want[0], TrainConfig(imgsz=128), on_plan=lambda *plan, plans=plans: plans.append(plan))
        assert [plan[:2] for plan in plans] == [want] and plans[0][2] is not None, plans
        assert json.loads((tmp_path / want[0] / "recipe.json").read_text())["recipe"] == want[0]


def test_a_continued_training_keeps_its_decision_and_comparisons_train_as_round_one(tmp_path, monkeypatch):
    """An interrupted training continues with the recipe it started with (``recipe.json``), not a new
    measurement; the supervised upper bound takes round 1's recipe and epochs (`trained_as`)."""
    import afss.student.train as train_module
    from afss.distill import trained_as
    from afss.student.train import TrainConfig

    labels = _labelled_images(tmp_path)
    monkeypatch.setattr(train_module, "start_agreement", lambda *a, **k: 0.4)
    record = tmp_path / "run" / "recipe.json"
    identity = {"labels": "digest", "config": {}}
    assert train_module._decide(labels, TrainConfig(), "synth.pt", record, False, identity) == ("ultralytics", 25, 0.4)
    assert json.loads(record.read_text()) == {"recipe": "ultralytics", "epochs": 25, "agreement": 0.4,
                                              "identity": identity}  # what it started with, for a rerun to match
    monkeypatch.setattr(train_module, "start_agreement", lambda *a, **k: pytest.fail("measured again"))
    assert train_module._decide(labels, TrainConfig(), "synth.pt", record, True, identity) == ("ultralytics", 25, 0.4)
    assert train_module._decide(labels, TrainConfig(epochs=3, recipe="box"), "synth.pt", tmp_path / "b.json",
                                False, identity) == ("box", 3, None)
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "train.json").write_text(json.dumps({"recipe": "ultralytics", "config": {"recipe": "ultralytics",
                                                                                                "epochs": 25}}))
    assert trained_as(tmp_path / "r1", TrainConfig()) == ("ultralytics", 25)
    # a record of an afss before `auto` looked at the labels: auto from synth was box, 10 epochs
    (tmp_path / "r1" / "train.json").write_text(json.dumps({"config": {"recipe": "auto", "init": "synth", "epochs": 10}}))
    assert trained_as(tmp_path / "r1", TrainConfig()) == ("box", 10)


def test_the_recipe_fine_tunes_checkpoints_and_leaves_random_starts_and_extra_alone():
    from afss.student.recipe import heads_freeze
    from afss.student.train import BOX, FINETUNE, TrainConfig

    assert TrainConfig(init="synth").recipe_args() == BOX  # the shipped start keeps its masks and scores
    assert TrainConfig().recipe_args() == BOX
    assert TrainConfig(init="/w/best.pt").recipe_args()["freeze"] == 10
    assert TrainConfig(init="yolo11n-seg.yaml").recipe_args() == {}
    assert TrainConfig(init="synth", recipe="ultralytics").recipe_args() == {}
    assert TrainConfig(init="yolo11n-seg.yaml", recipe="finetune").recipe_args() == FINETUNE
    assert TrainConfig(init="synth", recipe="heads").recipe_args()["freeze"] == "heads"  # resolved on the model
    assert heads_freeze(24) == [*range(23), "23.proto", "23.cv4", "23.one2one_cv4"]
    assert heads_freeze(24, classes=True) == [*heads_freeze(24), "23.cv3", "23.one2one_cv3"]
    assert TrainConfig(init="synth", recipe="box").recipe_args()["freeze"] == "box"
    with pytest.raises(AfssError, match=r"recipe heads .* needs a pretrained --init \(synth or a \.pt\), not yolo11n-seg"):
        TrainConfig(init="yolo11n-seg.yaml", recipe="heads")  # random features: refused before any work
    with pytest.raises(AfssError, match="recipe must be one of auto, finetune, heads, box, ultralytics"):
        TrainConfig(recipe="gentle")


def test_distill_rounds_resume_after_a_crash_and_never_train_on_ground_truth(tmp_path, monkeypatch):
    import afss.distill
    import afss.student.train
    from afss.distill import DistillConfig, distill
    from afss.student.train import TrainConfig
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    gt = render_dataset(tmp_path / "pool", n=10, size=64, domain="clean", seed=11, workers=1)
    teacher = build_teacher("photometric")
    calls = {"label": 0, "train": []}
    real_label, real_train = teacher.label, afss.student.train.train_student

    def counting_label(images, prompt="spacecraft"):
        calls["label"] += len(images)
        return real_label(images, prompt)

    def crashing_train(labels, out, config=None, **options):
        assert all(i.source != "gt" for im in labels.images for i in im.instances)  # pseudo-labels only
        calls["train"].append(str(out))
        if len(calls["train"]) == 1:
            raise KeyboardInterrupt  # killed in the middle of round 1's training
        return real_train(labels, out, config, **options)

    monkeypatch.setattr(teacher, "label", counting_label)
    monkeypatch.setattr(afss.student.train, "train_student", crashing_train)
    config = DistillConfig(rounds=2, min_score=0.3)
    train = TrainConfig(epochs=1, imgsz=64, batch=4)
    with pytest.raises(KeyboardInterrupt):
        distill(teacher, gt, tmp_path / "d", config=config, train=train)
    labelled = calls["label"]
    assert labelled > 0 and (tmp_path / "d" / "round-1" / "refined.json").is_file()
    rounds = distill(teacher, gt, tmp_path / "d", config=config, train=train, gt=gt)
    assert calls["label"] == labelled  # the teacher's finished labels and refinement were reused
    assert rounds[0].round == 1 and rounds[0].kept > 0 and rounds[0].metrics["refined"]["segm_ap"] is not None
    assert (tmp_path / "d" / "student.pt").is_file()
    record = json.loads((tmp_path / "d" / "distill.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [r.round for r in rounds]
    # a round finished before keeps its time when a rerun reads it back (not only the reading's seconds)
    record["rounds"][0]["seconds"] = 1000.0
    (tmp_path / "d" / "distill.json").write_text(json.dumps(record))
    again = distill(teacher, gt, tmp_path / "d", config=config, train=train, gt=gt)
    assert calls["label"] == labelled and again[0].seconds == 1000.0
    assert json.loads((tmp_path / "d" / "distill.json").read_text())["rounds"][0]["seconds"] == 1000.0  # not growing
    other = render_dataset(tmp_path / "other", n=3, size=64, domain="clean", seed=12, workers=1)
    with pytest.raises(AfssError, match="holds a distillation of another pool"):
        distill(teacher, other, tmp_path / "d", config=config, train=train)


def test_a_killed_training_continues_from_its_last_epoch(tmp_path):
    from afss.student.train import TrainConfig, train_student

    labels = _labelled_images(tmp_path, n=6)
    seen = []

    def stop_after_first(epoch, metrics):
        seen.append(epoch)
        if epoch == 1:
            raise KeyboardInterrupt  # killed after epoch 1 of 2 was saved

    config = TrainConfig(epochs=2, imgsz=64, batch=4)
    with pytest.raises(KeyboardInterrupt):
        train_student(labels, tmp_path / "run", config, progress=stop_after_first)
    assert (tmp_path / "run" / "weights" / "last.pt").is_file() and not (tmp_path / "run" / "train.json").exists()
    # continued only as it started: other settings or other labels would train a model of both, recorded as one
    with pytest.raises(AfssError, match=r"interrupted training on the same labels with other settings \(epochs 2, "
                                        r"now 5\); rerun the command it started with"):
        train_student(labels, tmp_path / "run", TrainConfig(epochs=5, imgsz=64, batch=4))
    with pytest.raises(AfssError, match="interrupted training on other labels"):
        train_student(labels.replace(images=labels.images[:3]), tmp_path / "run", config)
    result = train_student(labels, tmp_path / "run", config, progress=lambda e, m: seen.append(e))
    assert seen == [1, 2]  # epoch 2 ran once, epoch 1 was not trained again
    assert result.epochs == 2 and result.weights.is_file()


def test_a_checkpoint_cut_short_by_the_kill_is_trained_again_not_crashed_on(tmp_path, caplog):
    """Killed while Ultralytics wrote last.pt: every rerun crashed on the truncated file (a probe of afss run)."""
    from afss.student.train import TrainConfig, train_student

    labels = _labelled_images(tmp_path, n=6)
    config = TrainConfig(epochs=1, imgsz=64, batch=4)

    def stop(epoch, metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_student(labels, tmp_path / "run", config, progress=stop)
    last = tmp_path / "run" / "weights" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with caplog.at_level("WARNING"):
        result = train_student(labels, tmp_path / "run", config)
    assert "cut short" in caplog.text and result.epochs == 1 and result.weights.is_file()


def _unreadable_folder(root: Path) -> Path:
    (root / "calib").mkdir()
    (root / "calib" / "corrupt.jpg").write_bytes(b"\xff\xd8 not a picture \xff\xd9")
    return root / "calib"


def test_review_findings_each_one_line_and_nothing_replaced(tmp_path, capsys, monkeypatch):
    """What a new user tried: distill into a data folder or onto a file, --init an ONNX, export-yolo
    onto a file, a garbage ONNX, export over an existing file, a distill rerun with other settings (and one
    that only asks for one more round: it continues)."""
    from afss.distill import DistillConfig, distill
    from afss.student.env import ultralytics
    from afss.student.train import TrainConfig
    from afss.teachers import build_teacher

    labels = _labelled_images(tmp_path)
    (tmp_path / "labels.json").write_text("{}")
    teacher = build_teacher("photometric")
    with pytest.raises(AfssError, match="not empty and is not an afss distillation"):
        distill(teacher, labels, tmp_path / "imgs")
    with pytest.raises(AfssError, match="exists and is not a folder"):
        distill(teacher, labels, tmp_path / "labels.json")
    (tmp_path / "garbage.onnx").write_bytes(os.urandom(1000))
    weights = tmp_path / "s.pt"
    ultralytics().YOLO("yolo11n-seg.yaml").save(str(weights))
    from afss.cli import main

    cases = [
        (["train", "--labels", str(tmp_path / "labels.json"), "--init", str(tmp_path / "garbage.onnx"),
          "--out", str(tmp_path / "r")], "an ONNX file cannot be trained"),
        (["export-yolo", str(tmp_path / "labels.json"), "--out", str(tmp_path / "labels.json")], None),
        (["predict", "--weights", str(tmp_path / "garbage.onnx"), "--images", str(tmp_path / "imgs"),
          "--out", str(tmp_path / "p.json")], "not an ONNX model onnxruntime can load"),
        (["predict", "--weights", str(tiny_model(tmp_path / "salient.onnx")), "--images", str(tmp_path / "imgs"),
          "--out", str(tmp_path / "p.json")], "not a YOLO student (outputs [[1, 1, 64, 64]]"),  # once, not per image
        (["export", "--weights", str(weights), "--out", str(tmp_path / "garbage.onnx")], "exists; pass --overwrite"),
        (["export", "--weights", str(weights), "--calib", str(tmp_path), "--out", str(tmp_path / "m.onnx")],
         "needs --int8"),
        (["export", "--weights", str(weights), "--int8", "--calib", str(_unreadable_folder(tmp_path)), "--imgsz", "64",
          "--out", str(tmp_path / "m8.onnx")], "none of the 1 calibration images could be read (e.g. "),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(["-q", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("afss: error: ") and err.count("\n") == 1, err
        assert message is None or message in err, err
    assert not (tmp_path / "r").exists()
    capsys.readouterr()
    assert main(["-q", "export", "--weights", str(weights), "--imgsz", "50", "--out", str(tmp_path / "m.onnx")]) == 0
    assert "input 64 px" in capsys.readouterr().err  # 50 rounded up to the stride, as Ultralytics builds it
    student = build_teacher("student", weights=str(tmp_path / "m.onnx"))
    assert student.options["imgsz"] == 64  # what the exported model runs at, not the default
    grey = np.zeros((64, 64), np.uint8)  # a grey array was flipped left-right by the student's channel swap
    with pytest.raises(ValueError, match=r"image 0: expected an RGB uint8 \(H, W, 3\) image"):
        student.label([grey])
    with pytest.raises(AfssError, match="label takes a list of images: \\[image\\] for one"):
        student.label(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(AfssError, match="student: max_det must be a whole number >= 1, got 0"):
        build_teacher("student", weights=str(tmp_path / "m.onnx"), max_det=0)
    config, train = DistillConfig(rounds=1, min_score=0.0), TrainConfig(epochs=1, imgsz=64, batch=4)
    distill(teacher, labels.replace(images=labels.images[:6]), tmp_path / "d", config=config, train=train)
    with pytest.raises(AfssError, match=r"other settings \(config.min_score 0.0, now 0.3\)"):
        distill(teacher, labels.replace(images=labels.images[:6]), tmp_path / "d",
                config=DistillConfig(rounds=1, min_score=0.3), train=train)
    # one more round on top of a finished one: round 1 is reused as it is, round 2 trains from it
    first = tmp_path / "d" / "round-1" / "train" / "weights" / "best.pt"
    trained_at = first.stat().st_mtime_ns
    results = distill(teacher, labels.replace(images=labels.images[:6]), tmp_path / "d",
                      config=DistillConfig(rounds=2, min_score=0.0, rescore=None), train=train)
    assert [r.round for r in results] == [1, 2] and first.stat().st_mtime_ns == trained_at
    assert results[1].weights == tmp_path / "d" / "round-2" / "train" / "weights" / "best.pt"
    assert json.loads((tmp_path / "d" / "distill.json").read_text())["config"]["rounds"] == 2
    with pytest.raises(AfssError, match=r"other settings \(config.rescore None, now 'photometric'\)"):
        distill(teacher, labels.replace(images=labels.images[:6]), tmp_path / "d",  # round 2 used it
                config=DistillConfig(rounds=2, min_score=0.0), train=train)
    # with several rounds the result is the round the teacher trusts most (no ground truth), recorded
    qualities = [r.quality for r in results]
    assert all(q is not None and 0.0 <= q <= 1.0 for q in qualities) and sum(r.chosen for r in results) == 1
    pick = next(r for r in results if r.chosen)
    assert pick.quality == max(qualities) and pick.round == 1 + qualities.index(max(qualities))
    assert (tmp_path / "d" / "student.pt").read_bytes() == pick.weights.read_bytes()
    # the distilled student exports to int8 as it is: calibrated on its last round's training images
    from afss.student import export_student

    assert export_student(tmp_path / "d" / "student.pt", tmp_path / "d8.onnx", int8=True, imgsz=64).is_file()
    record = json.loads((tmp_path / "d" / "distill.json").read_text())
    assert [r["chosen"] for r in record["rounds"]] == [r.chosen for r in results]
    last = distill(teacher, labels.replace(images=labels.images[:6]), tmp_path / "d",  # nothing trains again
                   config=DistillConfig(rounds=2, min_score=0.0, rescore=None, choose="last"), train=train)
    assert [r.chosen for r in last] == [False, True] and [r.quality for r in last] == [None, None]
    assert (tmp_path / "d" / "student.pt").read_bytes() == last[1].weights.read_bytes()
    with pytest.raises(AfssError, match="distill: choose must be one of quality, last, got 'best'"):
        DistillConfig(choose="best")
    # the choice follows the qualities (fixed here; nothing trains again): the highest, ties to the earlier
    import afss.distill

    assert (tmp_path / "d" / "round-2" / "quality.json").is_file()  # a rerun does not judge again
    for given, want in (((0.6, 0.5), 1), ((0.5, 0.6), 2), ((0.5, 0.5), 1)):
        monkeypatch.setattr(afss.distill, "_judged", lambda folder, *a, q=given, **kw: q[int(folder.name[-1]) - 1])
        again = distill(teacher, labels.replace(images=labels.images[:6]), tmp_path / "d",
                        config=DistillConfig(rounds=2, min_score=0.0, rescore=None), train=train)
        assert [r.chosen for r in again] == [want == 1, want == 2], given
        assert (tmp_path / "d" / "student.pt").read_bytes() == again[want - 1].weights.read_bytes()
        record = json.loads((tmp_path / "d" / "distill.json").read_text())
        assert [r["round"] for r in record["rounds"] if r["chosen"]] == [want]


def test_the_shipped_synth_student_loads_and_finds_spacecraft_it_never_saw(tmp_path):
    """`--init synth` resolves to the file afss ships, and that student finds the target on synth scenes
    of a seed it was not trained on (its card records the recipe that rebuilds it)."""
    from afss.evaluate import evaluate
    from afss.label import label_images
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS, resolve_init
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    assert resolve_init("synth") == str(SHIPPED_SYNTH_WEIGHTS)
    card = json.loads(SHIPPED_SYNTH_WEIGHTS.with_suffix(".json").read_text())
    assert card["command"].startswith("python scripts/build_student_synth.py") and card["stages"]
    assert all(stage["recipe"]["seed"] == 900_000 for stage in card["stages"])
    gt = render_dataset(tmp_path / "scenes", n=12, size=320, domain="clean", seed=4242, workers=1)
    student = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=320)
    pred = label_images(student, gt.replace(images=tuple(im.replace(instances=()) for im in gt.images)))
    report = evaluate(gt, pred, protocols=("coco",))
    assert report.get("coco", "segm").ap50 > 0.5  # a broken or untrained file scores ~0


def test_label_free_quality_is_high_for_a_student_that_finds_the_target_and_zero_for_one_that_finds_nothing(
        tmp_path):
    """The teacher's mean confidence in a student's top-1 boxes (no ground truth): the shipped start on
    synth scenes it never saw is trusted; an untrained network finds nothing and scores 0."""
    from afss.distill import label_free_quality
    from afss.student.env import ultralytics
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.synth import render_dataset

    pool = render_dataset(tmp_path / "scenes", n=6, size=320, domain="clean", seed=4545, workers=1)
    assert label_free_quality(SHIPPED_SYNTH_WEIGHTS, pool, imgsz=320) > 0.4
    untrained = tmp_path / "untrained.pt"
    ultralytics().YOLO("yolo11n-seg.yaml").save(str(untrained))
    assert label_free_quality(untrained, pool, imgsz=320, sample=3) == 0.0
    with pytest.raises(AfssError, match="the pool has no image"):
        label_free_quality(SHIPPED_SYNTH_WEIGHTS, pool.replace(images=()), imgsz=320)


def test_student_boxes_are_its_masks_tight_boxes_inside_the_heads_and_head_boxes_on_request(tmp_path):
    """``box="mask"`` (default) gives each instance its mask's tight box, never larger than the head's
    box (Ultralytics crops masks to it); ``box="head"`` keeps the head's; anything else is one line."""
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.synth import render_dataset
    from afss.teachers import build_teacher
    from afss.types import mask_box_xyxy

    gt = render_dataset(tmp_path / "scenes", n=4, size=320, domain="clean", seed=4343, workers=1)
    images = [load_image(Path(gt.image_root) / im.file_name).rgb for im in gt.images]
    by_mask = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=320).label(images)
    by_head = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=320, box="head").label(images)
    found = 0
    for m_insts, h_insts in zip(by_mask, by_head, strict=True):
        assert len(m_insts) == len(h_insts)
        for m, h in zip(m_insts, h_insts, strict=True):
            assert m.score == h.score and m.rle == h.rle
            assert m.box_xyxy == mask_box_xyxy(m.mask)
            assert all(a >= b - 1.0 for a, b in zip(m.box_xyxy[:2], h.box_xyxy[:2]))  # inside the head's box
            assert all(a <= b + 1.0 for a, b in zip(m.box_xyxy[2:], h.box_xyxy[2:]))
            found += 1
    assert found >= 4
    with pytest.raises(AfssError, match="box must be one of mask, head"):
        build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), box="tight")


def test_rescore_ranks_the_students_instances_by_the_teachers_confidence_too(tmp_path, capsys):
    """``rescore="photometric"``: every score is sqrt(student x photometric confidence in the box),
    both kept in ``scores``, instances re-ranked; the same through afss predict; a teacher that cannot
    segment a box or an unknown name is one line, from the API, the CLI and a run config alike."""
    import math

    from afss.run.config import load_config
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    gt = render_dataset(tmp_path / "scenes", n=4, size=320, domain="clean", seed=4343, workers=1)
    images = [load_image(Path(gt.image_root) / im.file_name).rgb for im in gt.images]
    plain = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=320).label(images)
    rescored = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=320, rescore="photometric").label(images)
    photometric = build_teacher("photometric", threads=1)
    checked = 0
    for rgb, before, after in zip(images, plain, rescored, strict=True):
        assert sorted(i.rle["counts"] for i in before) == sorted(i.rle["counts"] for i in after)  # same instances
        assert [i.score for i in after] == sorted((i.score for i in after), reverse=True)
        for inst in after:
            [seg] = photometric.segment_boxes(rgb, np.array([inst.box_xyxy]))
            theirs = seg.scores["mask_score"]
            assert inst.scores["rescore_score"] == pytest.approx(theirs, abs=1e-5)
            assert inst.score == pytest.approx(math.sqrt(inst.scores["student_score"] * theirs), abs=1e-5)
            checked += 1
    assert checked >= 4
    assert main(["-q", "predict", "--weights", str(SHIPPED_SYNTH_WEIGHTS), "--images", str(Path(gt.image_root) / "images"),
                 "--rescore", "photometric", "--out", str(tmp_path / "p.json")]) == 0
    anns = json.loads((tmp_path / "p.json").read_text())["annotations"]
    assert anns and all("rescore_score" in a["scores"] for a in anns)
    with pytest.raises(AfssError, match="rescore must be a teacher name"):
        build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), rescore="student")
    assert main(["predict", "--weights", str(SHIPPED_SYNTH_WEIGHTS), "--images", str(tmp_path / "scenes" / "images"),
                 "--rescore", "photometrc", "--out", str(tmp_path / "q.json")]) == 2
    assert "rescore must be a teacher name" in capsys.readouterr().err and not (tmp_path / "q.json").exists()
    (tmp_path / "run.yaml").write_text("data: {source: synth, n: 4}\ndistill: {rescore: salient-x}\n")
    with pytest.raises(AfssError, match=r"distill.rescore: expected null \(its own confidence\) or a teacher name"):
        load_config(tmp_path / "run.yaml")


def test_int8_export_keeps_the_shipped_students_detections(tmp_path, caplog):
    """int8 with one scale for the whole concatenated output rounded every class probability to 0
    (0.0 AP); the head's decoding stays float, so int8 finds what fp32 finds."""
    from afss.evaluate import evaluate
    from afss.label import label_images
    from afss.student.export import export_student
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    calib = render_dataset(tmp_path / "calib", n=8, size=256, domain="clean", seed=4343, workers=1)
    gt = render_dataset(tmp_path / "scenes", n=12, size=320, domain="clean", seed=4242, workers=1)
    with caplog.at_level("WARNING"):
        model = export_student(SHIPPED_SYNTH_WEIGHTS, tmp_path / "m8.onnx", imgsz=320, int8=True,
                               calib=Path(calib.image_root) / "images")
    assert "int8 calibration on only 8 image(s)" in caplog.text  # one image made the scores tie (a probe)
    for bad in (0, "256", 10000, True):  # from Python: 0 wrote a 32-px model, 10000 tried to allocate 76 GB
        with pytest.raises(AfssError, match=r"export: imgsz must be a whole number in \[32, 4096\], got"):
            export_student(SHIPPED_SYNTH_WEIGHTS, tmp_path / "x.onnx", imgsz=bad)
    student = build_teacher("student", weights=str(model))
    pred = label_images(student, gt.replace(images=tuple(im.replace(instances=()) for im in gt.images)))
    assert evaluate(gt, pred, protocols=("coco",)).get("coco", "segm").ap50 > 0.5


def test_rounds_after_the_first_use_the_students_own_cut(tmp_path, monkeypatch):
    """student_min_score applies to the rounds where a student relabels; round 1 keeps the teacher's."""
    from types import SimpleNamespace

    import afss.distill
    import afss.student.model
    import afss.student.train
    from afss.distill import DistillConfig, distill
    from afss.student.train import TrainConfig
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    pool = render_dataset(tmp_path / "pool", n=6, size=64, domain="clean", seed=13, workers=1)
    teacher = build_teacher("photometric")
    cuts, real_refine = [], afss.distill.refine_labels

    def spy_refine(*args, config, **kwargs):
        cuts.append(config.min_score)
        return real_refine(*args, config=config, **kwargs)

    starts = []

    def fake_train(labels, out, config=None, **options):  # the cut is what is tested, not the training
        starts.append((Path(config.init).name, config.recipe, config.epochs, options.get("mask_start")))
        weights = Path(out) / "weights" / "best.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"not a model")
        # as train_student: auto made concrete by the start's agreement with the labels (here: unlike them)
        recipe = "ultralytics" if config.recipe == "auto" else config.recipe
        return SimpleNamespace(weights=weights, recipe=recipe, agreement=0.5 if config.recipe == "auto" else None,
                               epochs=config.epochs or 25, mask_swap=None)

    monkeypatch.setattr(afss.distill, "refine_labels", spy_refine)
    monkeypatch.setattr(afss.student.train, "train_student", fake_train)
    monkeypatch.setattr(afss.student.model.StudentTeacher, "build", classmethod(lambda cls, **o: teacher))
    config = DistillConfig(rounds=2, min_score=0.3, student_min_score="auto", stable_iou=1.01, choose="last")
    distill(teacher, pool, tmp_path / "d", config=config, train=TrainConfig(imgsz=64))
    assert cuts == [0.3, "auto"]
    # recipe auto is decided once, by round 1's training (its start and labels); round 2, which starts
    # from round 1's weights, trains with the recipe and schedule round 1 chose; its outlines, where
    # --mask-source start asks for them, are round 1's start's, not its labeller's
    assert starts == [("synth", "auto", None, None), ("best.pt", "ultralytics", 25, "synth")]
    summary = json.loads((tmp_path / "d" / "round-2" / "refined.summary.json").read_text())
    assert summary["filter"]["mode"] == "auto"
    with pytest.raises(AfssError, match="min_score"):
        DistillConfig(student_min_score=2.0)


def test_train_distill_and_the_run_config_share_one_set_of_defaults(tmp_path, monkeypatch, capsys):
    """No option: the shipped synth start, the recipe, epochs and size of the run configs; the help says so."""
    import afss.distill
    import afss.student.train
    from afss.run.config import RunConfig
    from afss.student.train import TrainConfig

    default = TrainConfig()
    # epochs None: the recipe's schedule (10; ultralytics 25)
    assert (default.init, default.recipe, default.epochs, default.imgsz, default.batch) == ("synth", "auto", None, 320, 16)
    student = RunConfig().student
    assert {k: getattr(student, k) for k in vars(student)} == {k: getattr(default, k) for k in vars(student)}
    seen = {}

    def fake_train(labels, out, config=None, **options):
        seen["train"] = config
        raise KeyboardInterrupt

    def fake_distill(teacher, pool, out, *, train=None, config=None, **options):
        seen["distill"], seen["rounds"] = train, config.rounds
        raise KeyboardInterrupt

    monkeypatch.setattr(afss.student.train, "train_student", fake_train)
    monkeypatch.setattr(afss.distill, "distill", fake_distill)
    labels = _labelled_images(tmp_path)
    from afss.io.coco import write_coco

    write_coco(labels, tmp_path / "l.json")
    assert main(["-q", "train", "--labels", str(tmp_path / "l.json"), "--out", str(tmp_path / "r")]) == 130
    assert main(["-q", "distill", "--teacher", "photometric", "--images", str(tmp_path / "imgs"),
                 "--out", str(tmp_path / "d")]) == 130
    # one round by default (as the run config): a second one lowered AP wherever it was measured
    assert seen == {"train": default, "distill": default, "rounds": 1} and RunConfig().distill.rounds == 1
    for command in ("train", "distill"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default synth)" in text and "(default: the recipe's schedule, 10; ultralytics 25)" in text, text
        assert "(default 320)" in text, text
        assert "(default auto)" in text and "yolo11n-seg.yaml: random weights" in text


def test_init_by_published_name_downloads_offline_fails_in_one_line_and_a_local_file_is_used(
        tmp_path, monkeypatch, capsys):
    """--init yolo11n-seg.pt: offline one line within seconds (file, address, where to put it); a
    file of that name is used as is and trains; detection-only names and files are refused."""
    import time

    from afss.io.coco import write_coco
    from afss.student import published
    from afss.student.env import ultralytics
    from afss.student.train import TrainConfig, resolve_init, train_student

    monkeypatch.chdir(tmp_path)
    labels = _labelled_images(tmp_path)
    write_coco(labels, tmp_path / "l.json")
    url = "https://github.com/ultralytics/assets/releases/download/"
    # offline, as this machine is (and as a machine with internet is made to look)
    monkeypatch.setattr(published, "_reachable", lambda url, timeout_s: False)
    t0 = time.perf_counter()
    assert main(["-q", "train", "--labels", "l.json", "--init", "yolo11n-seg.pt", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 10
    assert err.startswith("afss: error: --init yolo11n-seg.pt: not here") and err.count("\n") == 1, err
    assert f"{url}v" in err and f"put it at {tmp_path / 'yolo11n-seg.pt'}" in err and not Path("r").exists()
    # the host answers but the download fails: one line too, Ultralytics' emoji dropped
    monkeypatch.setattr(published, "_reachable", lambda url, timeout_s: True)

    def offline(file):
        raise ConnectionError("\u274c  Download failure for https://x/yolov8s-seg.pt. Environment may be offline.")

    monkeypatch.setattr(published, "_download", offline)
    with pytest.raises(AfssError, match=r"--init w/yolov8s-seg.pt: the download failed \(Download failure") as e:
        resolve_init("w/yolov8s-seg.pt")
    assert "\n" not in str(e.value) and "\u274c" not in str(e.value)
    # a download lands where --init points and is used
    model = ultralytics().YOLO("yolo11n-seg.yaml")

    def download(file):
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        model.save(file)
        return file

    monkeypatch.setattr(published, "_download", download)
    assert resolve_init("w/yolo11s-seg.pt") == str(tmp_path / "w" / "yolo11s-seg.pt")
    # a local file of that name is used as is: no download, and it trains
    monkeypatch.setattr(published, "_download", offline)
    model.save("yolo11n-seg.pt")
    result = train_student(labels, tmp_path / "run", TrainConfig(init="yolo11n-seg.pt", epochs=1, imgsz=64, batch=4))
    assert result.weights.is_file()
    assert json.loads((tmp_path / "run" / "train.json").read_text())["init_resolved"] == str(tmp_path / "yolo11n-seg.pt")
    # detection-only: a published name (never downloaded), or a file of that name
    for name, instead in (("yolo11n.pt", "yolo11n-seg.pt"), ("yolov8s-pose.pt", "yolov8s-seg.pt")):
        with pytest.raises(AfssError, match=rf"--init {name}: Ultralytics' .* is not a segmentation model; .* use {instead}"):
            resolve_init(name)
    ultralytics().YOLO("yolo11n.yaml").save("yolo11n.pt")
    with pytest.raises(AfssError, match="yolo11n.pt: a YOLO detect model"):
        resolve_init("yolo11n.pt")


def test_a_finished_training_is_returned_not_retrained_and_overwrite_trains_again(tmp_path, capsys):
    from afss.io.coco import write_coco
    from afss.student.train import TrainConfig, train_student

    labels = _labelled_images(tmp_path)
    config = TrainConfig(init="yolo11n-seg.yaml", epochs=1, imgsz=64, batch=4)
    first = train_student(labels, tmp_path / "run", config)
    stamp = first.weights.stat().st_mtime_ns
    again = train_student(labels, tmp_path / "run", config, progress=lambda e, m: pytest.fail("trained again"))
    assert again.reused and not first.reused and again.weights == first.weights
    assert (again.metrics, again.epochs, again.dataset.train, again.dataset.names) == (
        first.metrics, first.epochs, first.dataset.train, first.dataset.names)
    assert first.weights.stat().st_mtime_ns == stamp
    write_coco(labels, tmp_path / "l.json")
    argv = ["-q", "train", "--labels", str(tmp_path / "l.json"), "--init", "yolo11n-seg.yaml", "--epochs", "1",
            "--imgsz", "64", "--batch", "4", "--out", str(tmp_path / "cli")]
    assert main(argv) == 0 and main(argv) == 0
    assert "trained before with the same labels and recipe (--overwrite trains again)" in capsys.readouterr().err
    epochs = []
    redone = train_student(labels, tmp_path / "run", config, overwrite=True, progress=lambda e, m: epochs.append(e))
    assert not redone.reused and epochs == [1] and redone.weights.stat().st_mtime_ns != stamp
    # overwrite does not continue an interrupted run: it starts from init
    (tmp_path / "run" / "train.json").unlink()
    redone = train_student(labels, tmp_path / "run", config, overwrite=True, progress=lambda e, m: epochs.append(e))
    assert epochs == [1, 1] and json.loads((tmp_path / "run" / "train.json").read_text())["identity"]


def test_a_student_predicts_at_the_size_it_was_trained_at_unless_told(tmp_path):
    """The shipped start learnt at 320 px: predict and export default to that, not to 512 (at 512 its
    box AP on make demo's scored scenes falls from 54.3 to 38.0)."""
    from afss.student.env import ultralytics
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.teachers import build_teacher

    assert build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS)).options["imgsz"] == 320
    assert build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=256.0).options["imgsz"] == 256
    ultralytics().YOLO("yolo11n-seg.yaml").save(str(tmp_path / "untrained.pt"))  # Ultralytics records its 640
    assert build_teacher("student", weights=str(tmp_path / "untrained.pt")).options["imgsz"] == 640
    for bad in ("320", 16.5, 16):
        with pytest.raises(AfssError, match="student: imgsz must be a whole number in"):
            build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=bad)


def test_a_distillation_recorded_before_a_setting_existed_continues(tmp_path):
    """distill.json written by an afss without a newer setting (here ``rescore``) had its default then:
    a rerun with the same settings continues; a real change is named, and only it."""
    from dataclasses import asdict

    from afss.distill import DistillConfig, _check_same_pool
    from afss.student.train import TrainConfig

    inputs = {"image_root": "pool", "images": 3}
    settings = {"config": asdict(DistillConfig(rescore=None)), "train": asdict(TrainConfig())}
    old = {"config": {k: v for k, v in settings["config"].items() if k != "rescore"}, "train": settings["train"]}
    (tmp_path / "distill.json").write_text(json.dumps({"stage": "distill", "inputs": inputs, **old, "rounds": []},
                                                      default=str))
    _check_same_pool(tmp_path, inputs, settings)  # no error
    changed = {**settings, "config": asdict(DistillConfig())}  # today's default rescores; that record's did not
    _check_same_pool(tmp_path, inputs, changed)  # no round 2 has used it yet
    (tmp_path / "round-2").mkdir()
    with pytest.raises(AfssError, match=r"other settings \(config.rescore None, now 'photometric'\)"):
        _check_same_pool(tmp_path, inputs, changed)
    more = {**settings, "config": asdict(DistillConfig(rescore=None, rounds=3))}
    _check_same_pool(tmp_path, inputs, more)  # where it stops never changes a finished round


def test_a_rounds_scoring_made_with_another_rescoring_is_scored_again(tmp_path):
    """A rerun may change ``rescore`` before round 2: round 1's cached scoring of its student (the
    finished file, or the journal of an interrupted one) is then redone with the new rescoring."""
    from afss.distill import _score
    from afss.label import label_images
    from afss.resumable import journal_path
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS, TrainConfig
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    gt = render_dataset(tmp_path / "pool", n=2, size=96, domain="clean", seed=31, workers=1)
    pool = gt.replace(images=tuple(im.replace(instances=()) for im in gt.images))
    folder = tmp_path / "round-1"
    folder.mkdir()
    cached = folder / "student_predictions.json"
    label_images(build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=96), pool, out=cached)
    train = TrainConfig(imgsz=96)
    _score(gt, gt, SHIPPED_SYNTH_WEIGHTS, pool, folder, train, rescore=None)  # the same: reused
    assert read_coco(cached).info["teacher_options"]["rescore"] is None
    _score(gt, gt, SHIPPED_SYNTH_WEIGHTS, pool, folder, train, rescore="photometric")
    assert read_coco(cached).info["teacher_options"]["rescore"] == "photometric"
    cached.unlink()
    journal_path(cached).write_text(json.dumps({"afss_journal": "label", "teacher": {"options": {"rescore": None}}})
                                    + "\n")
    _score(gt, gt, SHIPPED_SYNTH_WEIGHTS, pool, folder, train, rescore="photometric")  # not refused
    assert read_coco(cached).info["teacher_options"]["rescore"] == "photometric"


@pytest.fixture(scope="module")
def start_outlined(tmp_path_factory):
    """Scenes whose labels are the shipped start's own boxes with rectangles for outlines (a teacher's),
    and the start's own labels of them."""
    from afss.label import label_images
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    root = tmp_path_factory.mktemp("outlined")
    scenes = render_dataset(root / "s", n=6, size=128, domain="clean", seed=21, workers=1)
    own = label_images(build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=128), scenes)
    assert sum(1 for im in own.images if im.instances) >= 4

    def boxed(inst):
        x0, y0, x1, y1 = (round(v) for v in inst.box_xyxy)
        m = np.zeros(inst.mask.shape, bool)
        m[y0:y1, x0:x1] = True
        return Instance.from_mask(m, score=inst.score, source="photometric").replace(box_xyxy=inst.box_xyxy)

    labels = own.replace(images=tuple(im.replace(instances=tuple(boxed(i) for i in im.instances)) for im in own.images))
    return own, labels


@pytest.mark.parametrize(("recipe", "swaps"), [("ultralytics", True), ("finetune", True), ("box", False), ("heads", False)])
def test_mask_source_start_trains_on_the_starts_outlines_only_where_the_mask_branch_learns(
        start_outlined, recipe, swaps, tmp_path, monkeypatch):
    """``mask_source="start"``: the labels the student is exported with carry the start's own masks
    where it finds the labelled object (here every labelled image); ``box`` and ``heads`` keep the
    mask branch frozen, so the labels go in as they are."""
    import afss.student.train as train_module
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS, TrainConfig, train_student

    own, labels = start_outlined
    exported = []

    class Stop(Exception):
        pass

    def capture(labels, *args, **kwargs):
        exported.append(labels)
        raise Stop

    monkeypatch.setattr(train_module, "export_yolo", capture)
    init = "synth" if recipe != "finetune" else str(SHIPPED_SYNTH_WEIGHTS)  # finetune: auto from another .pt
    with pytest.raises(Stop):
        train_student(labels, tmp_path / recipe, TrainConfig(init=init, imgsz=128, recipe=recipe, mask_source="start"))
    if not swaps:
        assert exported == [labels]
        return
    for was, start_own, now in zip(labels.images, own.images, exported[0].images, strict=True):
        for inst, theirs, got in zip(was.instances, start_own.instances, now.instances, strict=True):
            assert np.array_equal(got.mask, theirs.mask) and not np.array_equal(got.mask, inst.mask)
            assert got.box_xyxy == inst.box_xyxy and got.source == "photometric"


def test_the_cli_and_the_run_config_pass_the_mask_source_on(tmp_path, monkeypatch):
    import afss.distill
    import afss.student.train
    from afss.io.coco import write_coco
    from afss.run.config import config_from_dict

    seen = []

    def fake_train(labels, out, config=None, **options):
        seen.append(config.mask_source)
        raise KeyboardInterrupt

    def fake_distill(teacher, pool, out, *, train=None, config=None, **options):
        seen.append(train.mask_source)
        raise KeyboardInterrupt

    monkeypatch.setattr(afss.student.train, "train_student", fake_train)
    monkeypatch.setattr(afss.distill, "distill", fake_distill)
    labels = _labelled_images(tmp_path)
    write_coco(labels, tmp_path / "l.json")
    assert main(["-q", "train", "--labels", str(tmp_path / "l.json"), "--out", str(tmp_path / "r"),
                 "--mask-source", "start"]) == 130
    assert main(["-q", "distill", "--teacher", "photometric", "--images", str(tmp_path / "imgs"),
                 "--out", str(tmp_path / "d"), "--mask-source", "start"]) == 130
    assert seen == ["start", "start"]
    assert config_from_dict({"student": {"mask_source": "start"}}).student.mask_source == "start"
    # YAML reads `device: 0` as a number: the GPU index the help names, not refused as "expected text"
    assert config_from_dict({"student": {"device": 0}}).student.device == "0"
    with pytest.raises(AfssError, match="student.device: expected text or a whole number or null, got True"):
        config_from_dict({"student": {"device": True}})
    with pytest.raises(AfssError, match="config: student: device must be cpu, mps, cuda"):
        config_from_dict({"student": {"device": "gpu"}})  # before a run labels anything, not at training


def test_a_bad_device_or_gt_fails_before_any_work(tmp_path, capsys, monkeypatch):
    """predict, train and distill with a device this machine lacks, distill with a ground truth it
    cannot read, train on labels that keep nothing or with no training share: one line before any
    image is labelled or any label judged (review: predict wrote every image as failed and exited 0;
    train judged the labels and wrote its recipe first; distill read --gt after training)."""
    import torch

    from afss.distill import DistillConfig, distill
    from afss.student.model import check_device
    from afss.student.train import TrainConfig
    from afss.teachers.base import Teacher

    for bad in ("foo", "cuda:x", 1, "gpu"):
        with pytest.raises(AfssError, match="device must be cpu, mps, cuda"):
            check_device(bad)
    with pytest.raises(AfssError, match="device must be"):
        TrainConfig(device="foo")
    for fine in (None, "cpu", "CPU"):
        check_device(fine)
    assert TrainConfig(device="0").device == "0"  # a GPU named here is checked where it trains, not in a config
    # a training's `device: null` (Ultralytics' choice) carries over to the student that relabels: not the CPU
    from afss.student.model import StudentTeacher

    assert StudentTeacher._checked({"weights": "w.pt", "device": None})["device"] is None
    assert StudentTeacher._checked({"weights": "w.pt"})["device"] == "cpu"
    from afss.student.train import start_agreement

    built = {}

    def record(**options):
        built.update(options)
        raise RuntimeError("built")  # nothing to run: only what the start was built with matters

    monkeypatch.setattr(StudentTeacher, "build", record)
    one = LabelSet(images=(ImageLabels("a.png", 64, 64, (Instance(box_xyxy=(1, 1, 9, 9), score=0.9),)),),
                   categories={1: "spacecraft"})
    with pytest.raises(RuntimeError, match="built"):
        start_agreement("w.pt", one, device=None)
    assert built["device"] is None
    monkeypatch.undo()
    with pytest.raises(AfssError, match=r"val_fraction must be a fraction in \[0, 1\), got 1"):
        TrainConfig(val_fraction=1)

    class Counting(Teacher):
        name = "counting"
        calls = 0

        def label(self, images, prompt="spacecraft"):
            Counting.calls += len(images)
            return [[] for _ in images]

    labels = _labelled_images(tmp_path)
    from afss.student.train import train_student

    empty = labels.replace(images=tuple(im.replace(instances=()) for im in labels.images))
    with pytest.raises(AfssError, match="no image has a kept instance .* refine with a lower --min-score"):
        train_student(empty, tmp_path / "e")
    assert not (tmp_path / "e" / "recipe.json").exists()  # nothing decided or written for labels it cannot use
    config = DistillConfig(rounds=1, min_score=0.0)
    with pytest.raises(AfssError, match=r"missing\.json: no such file"):
        distill(Counting(), labels, tmp_path / "d1", config=config, gt=tmp_path / "missing.json")
    assert Counting.calls == 0
    if torch.cuda.is_available():
        return
    with pytest.raises(AfssError, match="no CUDA GPU"):
        distill(Counting(), labels, tmp_path / "d2", config=config, train=TrainConfig(device="0"))
    assert Counting.calls == 0
    weights = str(Path(__file__).resolve().parents[1] / "afss" / "student" / "weights" / "student_synth.pt")
    save_image(tmp_path / "one" / "a.png", np.zeros((32, 32, 3), np.uint8))
    write_coco(labels, tmp_path / "labels.json")
    capsys.readouterr()
    for argv in (["predict", "--weights", weights, "--images", str(tmp_path / "one"), "--out", str(tmp_path / "p.json"),
                  "--device", "cuda"],
                 ["train", "--labels", str(tmp_path / "labels.json"), "--out", str(tmp_path / "t"), "--device", "0"]):
        assert main(["-q", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("afss: error: ") and err.count("\n") == 1 and "no CUDA GPU" in err, err
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "t").exists()


@pytest.mark.parametrize("config, round1_bound", [
    ({}, (0.3, 0.8)),  # min_score auto, the default, with a training pool's bound (not refine's 0.3-0.5)
    ({"auto_keep": (0.3, 0.6)}, (0.3, 0.6)),
    ({"min_score": 0.6, "student_min_score": "auto", "auto_keep": (0.3, 0.6)}, (0.3, 0.5)),  # only rounds > 1 cut
    # auto: round 1's fixed cut takes refine's default bound, which asks for nothing
])
def test_distill_cuts_with_the_bound_it_is_given(tmp_path, monkeypatch, config, round1_bound):
    """The bound reaches the refinement that cuts: round 1's where its cut is auto (a fixed cut takes
    no bound)."""
    import afss.distill
    from afss.distill import DistillConfig, distill
    from afss.teachers.base import Teacher

    class Nothing(Teacher):
        name = "nothing"

        def label(self, images, prompt="spacecraft"):
            return [[] for _ in images]

    def capture(*args, config, **kwargs):
        raise _Seen(config)

    monkeypatch.setattr(afss.distill, "refine_labels", capture)
    labels = _labelled_images(tmp_path)
    with pytest.raises(_Seen) as seen:
        distill(Nothing(), labels, tmp_path / "d", config=DistillConfig(rounds=2, **config))
    assert seen.value.args[0].auto_keep == round1_bound


class _Seen(Exception):
    """Raised by a stand-in with the config it was given, to stop the pipeline there."""


@pytest.mark.parametrize("refine, val_bound, pool_bound", [
    ({"auto_keep": [0.3, 0.6]}, (0.3, 0.6), (0.3, 0.6)),
    ({}, (0.3, 0.8), (0.3, 0.8)),  # a run's default is a training pool's, for its val labels too
    ({"min_score": 0.6}, (0.3, 0.5), (0.3, 0.8)),  # a fixed cut takes no bound (refine's default asks nothing)
    ({"keep_top": 0.5}, (0.3, 0.5), (0.3, 0.8)),
])
def test_a_run_cuts_with_the_bound_its_config_gives(tmp_path, monkeypatch, refine, val_bound, pool_bound):
    """A run config's refine.auto_keep reaches both the teacher's refined row and distill; with a
    fixed cut the run still refines (the training pool's default bound is no request)."""
    import afss.distill
    import afss.refine
    from afss.run.config import config_from_dict
    from afss.run.runner import run_pipeline

    got = {}

    def refine_and_note(*args, config, **kwargs):
        got["refine"] = config.auto_keep
        return real_refine(*args, config=config, **kwargs)

    def distill_stub(*args, config, **kwargs):
        raise _Seen(config)

    real_refine = afss.refine.refine_labels
    monkeypatch.setattr(afss.refine, "refine_labels", refine_and_note)
    monkeypatch.setattr(afss.distill, "distill", distill_stub)
    run = config_from_dict({"data": {"source": "synth", "n": 3, "size": 96, "seed": 3},
                            "eval": {"source": "synth", "n": 2, "size": 96, "seed": 4},
                            "refine": refine, "report": False})
    with pytest.raises(_Seen) as seen:
        run_pipeline(run, tmp_path / "run", progress=False)
    assert got["refine"] == val_bound and seen.value.args[0].auto_keep == pool_bound


def test_a_releasable_teacher_is_released_after_round_one_before_any_training(tmp_path, monkeypatch):
    """afss run kept a vision-language teacher (1.6-3.4 GB of GPU memory) loaded through every training."""
    from types import SimpleNamespace

    import afss.student.train
    from afss.distill import DistillConfig, distill
    from afss.student.train import TrainConfig
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    pool = render_dataset(tmp_path / "pool", n=4, size=64, domain="clean", seed=13, workers=1)
    events = []

    class Releasable:  # what afss run's lazy teacher is: a teacher, and release()
        def __init__(self):
            self._teacher = build_teacher("photometric")

        def __getattr__(self, name):
            events.append("used") if name == "label" else None
            return getattr(self._teacher, name)

        def release(self):
            events.append("released")

    def fake_train(labels, out, config=None, **options):
        events.append("trained")
        weights = Path(out) / "weights" / "best.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"not a model")
        return SimpleNamespace(weights=weights, recipe="box", agreement=None, epochs=1, mask_swap=None)

    monkeypatch.setattr(afss.student.train, "train_student", fake_train)
    distill(Releasable(), pool, tmp_path / "d", config=DistillConfig(rounds=1), train=TrainConfig(imgsz=64))
    released = events.index("released")
    assert "used" in events[:released] and released < events.index("trained") and "used" not in events[released:]


def test_a_large_input_size_predicts_fewer_images_a_call(monkeypatch, caplog):
    """8 images at 4096 px in one predict call asked about 44 GB and were killed (a probe)."""
    import afss.student.model
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.synth import render_scene
    from afss.teachers import build_teacher

    images = [render_scene(seed=s, size=96)[0] for s in range(5)]
    student = build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), imgsz=96)
    whole = student.label(images)
    calls, predict = [], student.model.predict
    monkeypatch.setattr(student.model, "predict", lambda batch, **kw: calls.append(len(batch)) or predict(batch, **kw))
    monkeypatch.setattr(afss.student.model, "PIXELS_PER_CALL", 2 * 96 * 96)
    parts = student.label(images)
    assert calls == [2, 2, 1]
    with caplog.at_level("WARNING"):
        build_teacher("student", weights=str(SHIPPED_SYNTH_WEIGHTS), half=True, device="cpu")
    assert "half=true needs a GPU" in caplog.text  # it was dropped without a word (a probe)
    assert [[i.rle for i in found] for found in parts] == [[i.rle for i in found] for found in whole]
