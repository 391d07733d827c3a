"""Engines: the Ray engine (local Ray, 2 CPUs) gives the same COCO as the local one, for label, refine
and predict, and a run killed in the middle and rerun has every image exactly once."""

from __future__ import annotations

import importlib.util
import json

import pytest

from afss.cli import main
from afss.errors import AfssError
from afss.label import journal_path, label_images
from afss.refine import refine_labels
from afss.teachers import build_teacher

if importlib.util.find_spec("ray") is None:
    pytest.skip("the ray extra is not installed (pip install 'afss[ray]')", allow_module_level=True)


@pytest.fixture(scope="module")
def ray_engine():
    import ray

    from afss.engines import build_engine

    engine = build_engine("ray", num_workers=2)
    engine.start()
    yield engine
    ray.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from afss.synth import render_dataset

    root = tmp_path_factory.mktemp("ray-scenes")
    render_dataset(root / "data", n=12, size=96, domain="mixed", seed=21, workers=1)
    (root / "data" / "images" / "broken.png").write_bytes(b"not an image")
    from afss.label import images_from_folder

    return root, images_from_folder(root / "data" / "images")


def _coco(path):
    data = json.loads(path.read_text())
    data.pop("info")
    return data


def test_label_and_refine_on_ray_equal_the_local_engine(ray_engine, scenes, tmp_path):
    _, images = scenes
    teacher = build_teacher("photometric")
    label_images(teacher, images, out=tmp_path / "local.json", batch_size=3)
    labels = label_images(teacher, images, out=tmp_path / "ray.json", batch_size=3, engine=ray_engine)
    assert _coco(tmp_path / "ray.json") == _coco(tmp_path / "local.json")  # bit-exact masks, equal scores
    broken = next(im for im in labels.images if im.file_name == "broken.png")
    assert "unreadable" in broken.error  # recorded, not fatal
    refine_labels(teacher, labels, labels=labels, views="identity,vflip,hflip", out=tmp_path / "rlocal.json")
    refine_labels(teacher, labels, labels=labels, views="identity,vflip,hflip", out=tmp_path / "rray.json",
                  engine=ray_engine)
    assert _coco(tmp_path / "rray.json") == _coco(tmp_path / "rlocal.json")


class Killed(Exception):
    pass


def test_a_killed_ray_run_rerun_has_every_image_exactly_once(ray_engine, scenes, tmp_path):
    _, images = scenes
    teacher = build_teacher("photometric")
    out = tmp_path / "l.json"
    seen = []

    def kill(n):
        seen.append(n)
        if sum(seen) >= 6:
            raise Killed

    with pytest.raises(Killed):
        label_images(teacher, images, out=out, batch_size=3, engine=ray_engine, progress=kill)
    assert journal_path(out).exists() and not out.exists()
    labels = label_images(teacher, images, out=out, batch_size=3, engine=ray_engine)
    assert labels.info["resumed_images"] == 6
    names = [im.file_name for im in labels.images]
    assert names == [im.file_name for im in images.images] and len(set(names)) == len(names)
    label_images(teacher, images, out=tmp_path / "ref.json")
    assert _coco(out) == _coco(tmp_path / "ref.json")


def test_predict_on_ray_equals_local(ray_engine, scenes, tmp_path):
    pytest.importorskip("ultralytics")
    from afss.student.env import ultralytics

    _, images = scenes
    weights = tmp_path / "student.pt"
    ultralytics().YOLO("yolo11n-seg.yaml").save(str(weights))
    import torch

    student = build_teacher("student", weights=str(weights), imgsz=64, conf=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each one-CPU actor uses: the same float sums, so the same bits
    try:
        label_images(student, images, out=tmp_path / "plocal.json", batch_size=4)
    finally:
        torch.set_num_threads(threads)
    label_images(student, images, out=tmp_path / "pray.json", batch_size=4, engine=ray_engine)
    assert _coco(tmp_path / "pray.json") == _coco(tmp_path / "plocal.json")
    assert len(_coco(tmp_path / "pray.json")["annotations"]) > 0  # an untrained student at conf 0 finds plenty


def test_cli_ray_flags_and_one_line_errors(scenes, tmp_path, capsys):
    root, _ = scenes
    argv = ["-q", "label", "--teacher", "photometric", "--images", str(root / "data" / "images")]
    assert main([*argv, "--out", str(tmp_path / "a.json"), "--num-workers", "2"]) == 2
    assert "need --engine ray" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "a.json"), "--engine", "ray", "--ray-address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster" in err and err.count("\n") == 1
    assert main([*argv, "--out", str(tmp_path / "a.json"), "--engine", "ray", "--num-workers", "0"]) == 2
    assert "--num-workers must be" in capsys.readouterr().err


def test_a_teacher_that_cannot_be_rebuilt_by_name_is_refused_on_ray(ray_engine, scenes, tmp_path):
    from afss.teachers.base import Teacher

    class Custom(Teacher):
        name = "custom"

        def label(self, images, prompt="spacecraft"):
            return [[] for _ in images]

    with pytest.raises(AfssError, match="can only run with the local engine"):
        label_images(Custom(), scenes[1], out=tmp_path / "c.json", engine=ray_engine)


def test_a_workers_one_line_error_is_shown_as_its_line_not_rays_traceback():
    """A teacher that fails on every image stops the run with one line; through Ray, that line arrived
    as a RayTaskError whose text is the worker's traceback."""
    from ray.exceptions import RayTaskError

    from afss.engines.ray_engine import worker_afss_error

    line = "the salient teacher failed on each of the first 4 images and answered none (RuntimeError: CUDA)"
    delivered = RayTaskError("map_batches", "Traceback (most recent call last):\n  ...", AfssError(line)).as_instanceof_cause()
    assert isinstance(delivered, AfssError) and "\n" in str(delivered)  # the worker's process and traceback
    assert str(worker_afss_error(delivered)) == line
    try:  # Ray Data's own wrapping: UserCodeException from the original
        try:
            raise AfssError(line)
        except AfssError as inner:
            raise RuntimeError("UDF failed to process a data block.") from inner
    except RuntimeError as outer:
        assert str(worker_afss_error(outer)) == line
    assert worker_afss_error(RuntimeError("a worker died")) is None
