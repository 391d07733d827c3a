"""The label stage: COCO output, recorded failures, crash-safe resume."""

from __future__ import annotations

import json
import os
from typing import ClassVar

import numpy as np
import pytest
from pycocotools.coco import COCO

from afss.errors import AfssError
from afss.io.coco import read_coco
from afss.io.images import save_image
from afss.label import NO_DETECTION, images_from_folder, journal_path, label_images
from afss.teachers.base import Teacher
from afss.types import Instance


class SquareTeacher(Teacher):
    """Finds the bright square drawn by `_write_images`; nothing in an all-black image."""

    name: ClassVar[str] = "square"

    def __init__(self, fail_on_value: int | None = None) -> None:
        self.options = {"fail_on_value": fail_on_value}
        self.calls = 0

    def label(self, images, prompt="spacecraft"):
        out = []
        for im in images:
            self.calls += 1
            if self.options["fail_on_value"] is not None and im[0, 0, 0] == self.options["fail_on_value"]:
                raise RuntimeError("boom")
            m = im[..., 0] > 100
            if not m.any():
                out.append([])
                continue
            weak = Instance.from_mask(m, score=0.2, source=self.name)
            strong = Instance.from_mask(m, score=0.9, source=self.name)
            out.append([weak, strong])
        return out


def _write_images(root, n=7):
    for k in range(n):
        im = np.zeros((40, 60, 3), np.uint8)
        im[0, 0] = k  # marks the image for the failing teacher
        if k != 3:  # image 3 is all black: no detection
            im[4 + k:16 + k, 4:4 + 4 * k + 12] = 200
        save_image(root / f"sub/img{k:02d}.png", im)
    (root / "broken.png").write_bytes(b"not an image")
    return images_from_folder(root)


def _norm(path):
    data = json.loads(path.read_text())
    data.pop("info")
    return data


def test_labels_every_image_once_and_records_reasons(tmp_path):
    images = _write_images(tmp_path / "imgs")
    out = tmp_path / "labels.json"
    labels = label_images(SquareTeacher(), images, out=out, batch_size=3)
    assert [im.file_name for im in labels.images] == ["broken.png"] + [f"sub/img{k:02d}.png" for k in range(7)]
    by_name = {im.file_name: im for im in labels.images}
    assert by_name["broken.png"].error.startswith("unreadable: ")
    assert by_name["sub/img03.png"].error == NO_DETECTION and by_name["sub/img03.png"].instances == ()
    img5 = by_name["sub/img05.png"]
    assert img5.error is None and (img5.height, img5.width) == (40, 60)
    assert len(img5.instances) == 1 and img5.instances[0].score == 0.9  # top-1 keeps the best
    assert img5.instances[0].box_xyxy == (4.0, 9.0, 36.0, 21.0)
    assert labels.info["counts"] == {"images": 8, "labelled": 6, "empty": 1, "failed": 1, "instances": 6}
    assert labels.info["teacher"] == "square" and labels.info["prompt"] == "spacecraft"
    assert not journal_path(out).exists()
    # the file is plain COCO that pycocotools reads, with scores for loadRes
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == 8 and len(coco.getAnnIds()) == 6
    res = coco.loadRes(json.loads(out.read_text())["annotations"])
    assert sorted(a["score"] for a in res.loadAnns(res.getAnnIds())) == [0.9] * 6
    back = read_coco(out)
    assert back.image_path(back.images[1]) == str(tmp_path / "imgs" / "sub/img00.png")


def test_all_instances_and_teacher_failure_recorded(tmp_path):
    images = _write_images(tmp_path / "imgs")
    labels = label_images(SquareTeacher(fail_on_value=5), images, top1=False, batch_size=4)
    by_name = {im.file_name: im for im in labels.images}
    assert by_name["sub/img05.png"].error == "teacher failed: RuntimeError: boom"
    assert len(by_name["sub/img04.png"].instances) == 2  # its batch-mates were relabelled one by one
    assert labels.info["counts"]["failed"] == 2


class BrokenDevice(SquareTeacher):
    """Fails on every image, as a GPU that the installed torch cannot run on does; ``works`` mends it."""

    name: ClassVar[str] = "broken-device"

    def __init__(self, works: bool = False) -> None:
        super().__init__()
        self.works = works

    def label(self, images, prompt="spacecraft"):
        if not self.works:
            raise RuntimeError("CUDA error: no kernel image is available for execution on the device")
        return super().label(images, prompt)


def test_a_teacher_that_fails_on_every_image_stops_the_run_and_a_rerun_tries_them_again(tmp_path):
    """It marked a whole dataset as failed, each batch run 1 + N times, and the command succeeded."""
    images = _write_images(tmp_path / "imgs")
    out = tmp_path / "labels.json"
    with pytest.raises(AfssError, match=r"^the broken-device teacher failed on each of the first 5 images and "
                                        r"answered none \(RuntimeError: CUDA error: no kernel image"):
        label_images(BrokenDevice(), images, out=out, batch_size=2)  # broken.png, unreadable, is not the teacher's
    assert not out.exists() and journal_path(out).exists()  # two batches (three failures) were journalled
    labels = label_images(BrokenDevice(works=True), images, out=out, batch_size=2)
    assert labels.info["resumed_images"] == 1  # broken.png; the images the teacher failed on were tried again
    assert labels.info["counts"] == {"images": 8, "labelled": 6, "empty": 1, "failed": 1, "instances": 6}
    # one image that fails among ones that work is that image's failure: the run goes on
    assert label_images(SquareTeacher(fail_on_value=0), images, batch_size=1).info["counts"]["failed"] == 2


class BadImages(SquareTeacher):
    """Raises on any call that holds one of the ``bad`` images (marked by their first pixel): bad images,
    not a broken device."""

    def __init__(self, bad: set[int]) -> None:
        super().__init__()
        self.bad = bad

    def label(self, images, prompt="spacecraft"):
        if any(int(im[0, 0, 0]) in self.bad for im in images):
            raise RuntimeError("bad image\nsecond line of the error")
        return super().label(images, prompt)


def test_bad_images_first_stop_a_run_once_and_its_rerun_finishes(tmp_path):
    """A rerun tried the images the teacher failed on first, failed on them again, and stopped again:
    every rerun the same. They now come last and do not count towards the stop."""
    images = _write_images(tmp_path / "imgs", n=10)
    out = tmp_path / "labels.json"
    with pytest.raises(AfssError, match="failed on each of the first 4 images"):  # the first four fail
        label_images(BadImages({0, 1, 2, 3}), images, out=out, batch_size=1)
    labels = label_images(BadImages({0, 1, 2, 3}), images, out=out, batch_size=1)
    assert labels.info["counts"] == {"images": 11, "labelled": 6, "empty": 0, "failed": 5, "instances": 6}
    failed = {im.file_name: im.error for im in labels.images if im.error and im.error.startswith("teacher")}
    assert sorted(failed) == [f"sub/img{k:02d}.png" for k in range(4)]
    assert set(failed.values()) == {"teacher failed: RuntimeError: bad image second line of the error"}  # one line


class _Activations:
    """Stands for the tensors of a forward pass."""


class OutOfMemoryOnBatches(SquareTeacher):
    """A batch runs out of memory; each retry records whether the failed batch's tensors were still held."""

    def __init__(self) -> None:
        super().__init__()
        self.held_during_retry: list[bool] = []

    def label(self, images, prompt="spacecraft"):
        import weakref

        if len(images) > 1:
            activations = _Activations()  # held by the traceback's frame while it lives
            self.batch_activations = weakref.ref(activations)
            raise RuntimeError("CUDA out of memory")
        self.held_during_retry.append(self.batch_activations() is not None)
        return super().label(images, prompt)


def test_a_failed_batch_is_retried_image_by_image_after_its_memory_is_let_go(tmp_path, monkeypatch):
    """The retries ran inside the except block, whose traceback kept the failed batch's tensors alive."""
    import afss.label

    released = []
    monkeypatch.setattr(afss.label, "release_accelerator_memory", lambda: released.append(True))
    teacher = OutOfMemoryOnBatches()
    labels = label_images(teacher, _write_images(tmp_path / "imgs"), batch_size=4)
    assert teacher.held_during_retry == [False] * 7 and len(released) == 2
    assert labels.info["counts"]["labelled"] == 6


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("stop_after", [1, 3, 5])
def test_interrupted_run_resumes_to_identical_output(tmp_path, stop_after):
    images = _write_images(tmp_path / "imgs")
    full = tmp_path / "full.json"
    label_images(SquareTeacher(), images, out=full, batch_size=2)

    out = tmp_path / "labels.json"
    seen = []

    def die(n):
        seen.append(n)
        if sum(seen) >= stop_after:
            raise Interrupt

    with pytest.raises(Interrupt):
        label_images(SquareTeacher(), images, out=out, batch_size=2, progress=die)
    assert not out.exists() and journal_path(out).exists()
    done_before = sum(seen)
    teacher = SquareTeacher()
    labels = label_images(teacher, images, out=out, batch_size=2)
    assert labels.info["resumed_images"] == done_before
    assert _norm(out) == _norm(full)  # same labels, same ids, no duplicates
    assert not journal_path(out).exists()


def test_torn_last_line_is_relabelled(tmp_path):
    images = _write_images(tmp_path / "imgs")
    out = tmp_path / "labels.json"
    with pytest.raises(Interrupt):
        label_images(SquareTeacher(), images, out=out, batch_size=4, progress=lambda n: (_ for _ in ()).throw(Interrupt))
    journal = journal_path(out)
    text = journal.read_text()
    journal.write_text(text[: len(text) - 25])  # crash in the middle of the last line
    labels = label_images(SquareTeacher(), images, out=out, batch_size=4)
    assert labels.info["resumed_images"] == 3
    full = tmp_path / "full.json"
    label_images(SquareTeacher(), images, out=full)
    assert _norm(out) == _norm(full)


def test_journal_of_another_run_is_refused(tmp_path):
    images = _write_images(tmp_path / "imgs")
    out = tmp_path / "labels.json"
    with pytest.raises(Interrupt):
        label_images(SquareTeacher(), images, out=out, progress=lambda n: (_ for _ in ()).throw(Interrupt))
    with pytest.raises(AfssError, match="different prompt 'spacecraft', now 'satellite'.*--no-resume"):
        label_images(SquareTeacher(), images, out=out, prompt="satellite")
    with pytest.raises(AfssError, match="different teacher"):
        label_images(SquareTeacher(fail_on_value=1), images, out=out)
    labels = label_images(SquareTeacher(), images, out=out, prompt="satellite", resume=False)
    assert labels.info["resumed_images"] == 0 and read_coco(out).info["prompt"] == "satellite"


def test_duplicate_file_names_refused(tmp_path):
    images = _write_images(tmp_path / "imgs")
    dup = images.replace(images=images.images + (images.images[1].replace(image_id=99),))
    with pytest.raises(AfssError, match="more than once"):
        label_images(SquareTeacher(), dup)


def test_empty_folder_refused(tmp_path):
    with pytest.raises(AfssError, match="no image files"):
        images_from_folder(tmp_path)


def test_cli_folder_coco_and_dataset_inputs(tmp_path, capsys):
    from afss.cli import main
    from afss.io.coco import write_coco

    images = _write_images(tmp_path / "imgs", n=4)
    out = tmp_path / "a.json"
    argv = ["-q", "label", "--teacher", "photometric", "--out", str(out), "--batch-size", "2"]
    assert main(argv + ["--images", str(tmp_path / "imgs")]) == 0
    err = capsys.readouterr().err
    assert "afss label: 5 images, 3 labelled, 1 empty, 1 failed, 3 instances" in err and str(out) in err
    labels = read_coco(out)
    assert labels.info["teacher"] == "photometric" and labels.info["images_per_second"] > 0

    gt = tmp_path / "gt.json"  # a COCO file listing the images, as afss synth/convert write it
    write_coco(images.replace(images=images.images[1:3]), gt)
    out2 = tmp_path / "b.json"
    assert main(["-q", "label", "--teacher", "photometric", "--coco", str(gt), "--out", str(out2), "--all"]) == 0
    assert [im.file_name for im in read_coco(out2).images] == ["sub/img00.png", "sub/img01.png"]

    out3 = tmp_path / "c.json"
    assert main(["-q", "label", "--teacher", "photometric", "--dataset", "folder", "--root", str(tmp_path / "imgs"),
                 "--out", str(out3), "--limit", "2", "-o", "k_grow=2.5"]) == 0
    c = read_coco(out3)
    assert len(c) == 2 and c.info["teacher_options"]["k_grow"] == 2.5


def test_cli_user_errors_exit_2(tmp_path, capsys):
    from afss.cli import main

    _write_images(tmp_path / "imgs", n=2)
    base = ["label", "--images", str(tmp_path / "imgs"), "--teacher", "photometric", "--out", str(tmp_path / "o.json")]
    assert main(base + ["-o", "k_grw=2"]) == 2
    assert "did you mean 'k_grow'" in capsys.readouterr().err
    assert main(base + ["--device", "cuda"]) == 2
    assert main(["label", "--dataset", "folder", "--teacher", "photometric", "--out", "x.json"]) == 2
    assert "needs --root" in capsys.readouterr().err
    assert main(["label", "--images", str(tmp_path / "nope"), "--teacher", "photometric", "--out", "x.json"]) == 2
    assert f"{tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
    assert main(["label", "--images", str(tmp_path / "o.json"), "--teacher", "photometric", "--out", "x.json"]) == 2


def test_meta_kept_and_numpy_meta_journalled(tmp_path):
    images = _write_images(tmp_path / "imgs", n=2)
    images = images.replace(images=tuple(im.replace(meta={"domain": "clean", "k": np.int64(k)})
                                         for k, im in enumerate(images.images)))
    labels = label_images(SquareTeacher(), images, out=tmp_path / "l.json")
    back = read_coco(tmp_path / "l.json")
    assert [dict(im.meta) for im in back.images] == [{"domain": "clean", "k": k} for k in range(3)]
    assert labels.images[2].meta["domain"] == "clean"


def test_unwritable_out_and_missing_images_fail_before_labelling(tmp_path):
    images = _write_images(tmp_path / "imgs", n=2)
    teacher = SquareTeacher()
    (tmp_path / "adir").mkdir()
    with pytest.raises(AfssError, match="adir: is a folder; --out names the file to write"):
        label_images(teacher, images, out=tmp_path / "adir")
    moved = images.replace(image_root=str(tmp_path / "elsewhere"))
    with pytest.raises(AfssError, match="none of the 3 images exists.*elsewhere.*--image-root"):
        label_images(teacher, moved, out=tmp_path / "l.json")
    assert teacher.calls == 0 and not list(tmp_path.glob("*.partial.jsonl"))


def test_cli_image_root_points_a_coco_list_at_its_images(tmp_path, capsys):
    from afss.cli import main
    from afss.io.coco import write_coco

    images = _write_images(tmp_path / "imgs", n=2)
    write_coco(images.replace(image_root=None), tmp_path / "list" / "images.json")  # names relative to nothing
    assert main(["-q", "label", "--teacher", "photometric", "--coco", str(tmp_path / "list" / "images.json"),
                 "--out", str(tmp_path / "l.json")]) == 2
    assert "none of the 3 images exists" in capsys.readouterr().err
    assert main(["-q", "label", "--teacher", "photometric", "--coco", str(tmp_path / "list" / "images.json"),
                 "--image-root", str(tmp_path / "imgs"), "--out", str(tmp_path / "l.json")]) == 0
    assert len(read_coco(tmp_path / "l.json")) == 3


def _interrupted(images, out, after, **kw):
    """Start labelling ``images`` into ``out`` and stop it once ``after`` images are journalled."""
    seen = []

    def die(n):
        seen.append(n)
        if sum(seen) >= after:
            raise Interrupt

    with pytest.raises(Interrupt):
        label_images(SquareTeacher(), images, out=out, batch_size=2, progress=die, **kw)
    return sum(seen)


def test_resume_with_other_images_is_refused_naming_what_changed(tmp_path):
    """A journal of folder A is never used for folder B, even when the file names are the same."""
    a = _write_images(tmp_path / "A")
    b = _write_images(tmp_path / "B")
    out = tmp_path / "l.json"
    _interrupted(a, out, after=3)
    with pytest.raises(AfssError) as err:
        label_images(SquareTeacher(), b, out=out)
    message = str(err.value)
    assert "inputs.image_root" in message and str(tmp_path / "A") in message and str(tmp_path / "B") in message
    assert "\n" not in message
    fewer = a.replace(images=a.images[1:])  # the same folder with one image gone
    with pytest.raises(AfssError, match="inputs.file_names .*inputs.images 8, now 7"):
        label_images(SquareTeacher(), fewer, out=out)
    # a finished output of A is not replaced by a run over B either
    label_images(SquareTeacher(), a, out=out)
    before = out.read_bytes()
    with pytest.raises(AfssError, match="exists and was made from other inputs.*--overwrite"):
        label_images(SquareTeacher(), b, out=out)
    assert out.read_bytes() == before
    label_images(SquareTeacher(), b, out=out, overwrite=True)
    assert read_coco(out).info["inputs"]["image_root"] == str(tmp_path / "B")


def test_limit_never_deletes_finished_work(tmp_path):
    images = _write_images(tmp_path / "imgs")  # 8 images
    out = tmp_path / "l.json"
    done = _interrupted(images, out, after=5)  # 6 journalled (batches of 2)
    teacher = SquareTeacher()
    limited = label_images(teacher, images, out=out, limit=3)
    assert [im.file_name for im in limited.images] == [im.file_name for im in images.images[:3]]
    assert teacher.calls == 0 and len(read_coco(out)) == 3
    assert journal_path(out).exists()  # the other finished images are kept for the next run
    teacher = SquareTeacher()
    full = label_images(teacher, images, out=out)
    assert full.info["resumed_images"] == done and len(full) == 8
    assert teacher.calls == 8 - done  # only the images no run had finished
    assert not journal_path(out).exists()
    reference = tmp_path / "ref.json"
    label_images(SquareTeacher(), images, out=reference)
    assert _norm(out) == _norm(reference)


def test_cli_limit_keeps_the_journal_and_a_full_rerun_completes(tmp_path, capsys):
    from afss.cli import main

    _write_images(tmp_path / "imgs")
    out = tmp_path / "l.json"
    argv = ["-q", "label", "--teacher", "photometric", "--images", str(tmp_path / "imgs"), "--out", str(out)]
    assert main([*argv, "--limit", "2"]) == 0 and len(read_coco(out)) == 2
    assert not journal_path(out).exists()  # nothing beyond the limit was done yet
    assert main(argv) == 0 and len(read_coco(out)) == 8
    assert main([*argv, "--limit", "0"]) == 2
    assert "limit must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_a_limited_rerun_never_replaces_finished_images(tmp_path, capsys):
    from afss.cli import main

    _write_images(tmp_path / "imgs")
    out = tmp_path / "l.json"
    argv = ["-q", "label", "--teacher", "photometric", "--images", str(tmp_path / "imgs"), "--out", str(out)]
    assert main([*argv, "--limit", "5"]) == 0
    before = out.read_bytes()
    assert main([*argv, "--limit", "3"]) == 2
    assert "holds 2 finished image(s) beyond this --limit" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*argv, "--limit", "6"]) == 0 and len(read_coco(out)) == 6  # a larger limit is fine


class TwoScoresTeacher(Teacher):
    """Two instances per image whose detector and mask scores disagree on which is best."""

    name: ClassVar[str] = "two-scores"
    options: ClassVar[dict] = {}

    def label(self, images, prompt="spacecraft"):
        box_best = Instance((0, 0, 4, 4), score=0.7, scores={"box_score": 0.9, "mask_score": 0.7})
        mask_best = Instance((5, 5, 9, 9), score=0.95, scores={"box_score": 0.5, "mask_score": 0.95})
        return [[mask_best, box_best] for _ in images]


def test_top1_is_the_detectors_most_confident_instance(tmp_path):
    images = _write_images(tmp_path / "imgs", n=2)

    def first(labels):  # the instances of sub/img01.png (broken.png sorts first)
        return {im.file_name: im.instances for im in labels.images}["sub/img01.png"]

    (best,) = first(label_images(TwoScoresTeacher(), images, top1=True))
    assert best.box_xyxy == (0, 0, 4, 4) and best.detector_score == 0.9 and best.score == 0.7
    every = first(label_images(TwoScoresTeacher(), images, top1=False))
    assert [i.score for i in every] == [0.95, 0.7]  # all instances: best score first, as before
    # no detector score recorded (the photometric teacher): top-1 by score, as before
    assert [i.score for i in first(label_images(SquareTeacher(), images, top1=True))] == [0.9]


@pytest.mark.parametrize("given", [{7: "spacecraft"}, {1: "CubeSat", 2: "debris"}, {1: "satellite"}])
def test_the_labels_name_their_own_class_whatever_the_ground_truth_numbers(tmp_path, given):
    """A teacher labels one class, id 1. A ground truth numbered otherwise (Roboflow's 7) left the labels'
    id out of their own file, which every later stage then refused; a multi-class one (SPARK's craft)
    named every label after its class 1. A single class numbered 1 keeps its name."""
    images = _write_images(tmp_path).replace(categories=given)
    labels = label_images(SquareTeacher(), images, out=tmp_path / "labels.json")
    assert dict(labels.categories) == (given if given == {1: "satellite"} else {1: "spacecraft"})
    back = read_coco(tmp_path / "labels.json")  # the file is valid: every annotation's category is listed
    assert {i.category_id for im in back.images for i in im.instances} <= set(back.categories)


def test_a_teacher_that_names_its_classes_keeps_their_names_through_label_and_refine(tmp_path):
    """A multi-class student names the classes it learnt (`Teacher.categories`); label and refine keep
    those names, which `afss eval --per-class` matches to the ground truth's by name."""
    from afss.refine import RefineConfig, refine_labels

    class TwoClasses(SquareTeacher):
        @property
        def categories(self):
            return {1: "CubeSat", 2: "debris"}

        def label(self, images, prompt="spacecraft"):
            return [[i.replace(category_id=2) for i in found] for found in super().label(images, prompt)]

    images = _write_images(tmp_path).replace(categories={5: "anything"})
    labels = label_images(TwoClasses(), images)
    assert dict(labels.categories) == {1: "CubeSat", 2: "debris"}
    refined, _ = refine_labels(SquareTeacher(), labels, labels=labels, views="identity",
                               config=RefineConfig(min_score=0.0))
    assert dict(refined.categories) == {1: "CubeSat", 2: "debris"}


def test_a_command_where_every_image_failed_says_so_and_fails_after_writing_its_output(tmp_path, capsys):
    """Labels for images that were since rendered again at another size: refine exited 0 with
    "20 failed; kept 0/20", and a script went on with nothing."""
    from afss.cli import main

    (tmp_path / "imgs").mkdir()
    for k in range(3):
        save_image(tmp_path / "imgs" / f"{k}.png", np.full((40, 60, 3), 200, np.uint8))
    argv = ["-q", "label", "--teacher", "photometric", "--images", str(tmp_path / "imgs")]
    assert main([*argv, "--out", str(tmp_path / "labels.json")]) == 0
    for k in range(3):
        save_image(tmp_path / "imgs" / f"{k}.png", np.full((20, 30, 3), 200, np.uint8))
    capsys.readouterr()
    assert main(["-q", "refine", "--labels", str(tmp_path / "labels.json"), "--out", str(tmp_path / "r.json")]) == 2
    summary, error = capsys.readouterr().err.strip().split("\n")
    assert "3 failed; kept 0/3 images" in summary
    assert error.startswith("afss: error: every one of the 3 images failed, e.g. 0.png: size mismatch")
    assert len(read_coco(tmp_path / "r.json")) == 3  # written: each image's reason is kept
    for k in range(3):
        (tmp_path / "imgs" / f"{k}.png").write_bytes(b"not an image")
    assert main([*argv, "--out", str(tmp_path / "broken.json")]) == 2
    assert "every one of the 3 images failed, e.g. 0.png: unreadable" in capsys.readouterr().err
    # one image with no detection is not a failure: all black, nothing found, exit 0; the failed ones are
    # named after the summary, one line each (their reasons were only in the file)
    save_image(tmp_path / "imgs" / "0.png", np.zeros((40, 60, 3), np.uint8))
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "some.json")]) == 0
    lines = capsys.readouterr().err.strip().split("\n")
    assert "1 empty, 2 failed" in lines[0]
    assert [line.split(": ")[:2] for line in lines[1:]] == [["  failed", "1.png"], ["  failed", "2.png"]]
    assert "unreadable" in lines[1]


class BreaksTheContract(SquareTeacher):
    """Returns something other than a list of Instance per image, or masks of another size."""

    def __init__(self, returns: str) -> None:
        super().__init__()
        self.returns = returns

    def label(self, images, prompt="spacecraft"):
        if self.returns == "arrays":
            return [[im[..., 0] > 100] for im in images]
        if self.returns == "flat":
            return [Instance.from_mask(im[..., 0] > 100, score=0.9) for im in images]
        return [[Instance.from_mask(np.ones((10, 10), bool), score=0.9)] for _ in images]


@pytest.mark.parametrize("returns, why", [("arrays", ("BreaksTheContract.label returned list for an image, expected "
                                                      "a list of Instance")),
                                          ("flat", "BreaksTheContract.label returned Instance for an image"),
                                          ("wrong size", "mask is (10, 10) (H, W)")])
def test_a_teacher_that_breaks_the_contract_fails_its_images_in_one_line(tmp_path, returns, why):
    """It ended label_images in a raw AttributeError / TypeError from afss's own code."""
    images = _write_images(tmp_path / "imgs")
    with pytest.raises(AfssError, match="failed on each of the first") as e:
        label_images(BreaksTheContract(returns), images, batch_size=8)
    assert why in str(e.value)
    with pytest.raises(AfssError, match=r"label_images needs a Teacher .*got str \(build_teacher\('photometric'\)"):
        label_images("photometric", images)


def test_a_sigterm_stops_a_command_as_ctrl_c_does_and_says_how_to_continue(tmp_path, monkeypatch, capsys):
    """`timeout`, a scheduler's stop or `kill` ended a command with no word (Ctrl-C said only "interrupted")."""
    import signal
    import time

    import afss.cli.label
    from afss.cli import main

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(afss.cli.label, "run", killed)
    before = signal.getsignal(signal.SIGTERM)
    start = time.perf_counter()
    assert main(["label", "--images", str(tmp_path), "--out", str(tmp_path / "l.json")]) == 143  # 128 + SIGTERM
    assert time.perf_counter() - start < 4
    assert "afss: stopped (what finished is kept: rerun the same command to continue)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # put back after the command

    def ray_stopped(args):  # Ray's driver handler: sys.exit(signum)
        raise SystemExit(signal.SIGTERM)

    monkeypatch.setattr(afss.cli.label, "run", ray_stopped)
    assert main(["label", "--images", str(tmp_path), "--out", str(tmp_path / "l.json")]) == 143
    assert "afss: stopped" in capsys.readouterr().err
