"""``mask_source="start"``: the teacher says where the object is, the start how it is outlined
(`afss.student.start_masks`), wherever the box of the start's mask agrees with the label's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from afss.errors import AfssError
from afss.io.images import save_image
from afss.student.start_masks import MASK_AGREE, swap_in_start_masks
from afss.teachers.base import Teacher
from afss.types import ImageLabels, Instance, LabelSet

H, W = 40, 60


def _mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


class _Start(Teacher):
    """A start that finds, in image k (every pixel = 10 k), the instances given for k."""

    name = "start"

    def __init__(self, found: dict[int, list[Instance]]) -> None:
        self.found = found
        self.seen: list[int] = []

    def label(self, images, prompt="spacecraft"):
        keys = [int(img[0, 0, 0]) // 10 for img in images]
        self.seen += keys
        return [list(self.found.get(k, [])) for k in keys]


def _labels(root: Path, per_image: list[list[Instance]]) -> LabelSet:
    images = []
    for k, instances in enumerate(per_image):
        save_image(root / f"im{k}.png", np.full((H, W, 3), 10 * k, np.uint8))
        images.append(ImageLabels(file_name=f"im{k}.png", height=H, width=W, instances=tuple(instances)))
    return LabelSet(images=tuple(images), image_root=str(root))


def test_the_starts_outline_replaces_the_labels_only_where_its_box_agrees(tmp_path):
    # the teacher's outline: a full rectangle; the start's own: the same object, an L-shaped outline
    teacher = Instance.from_mask(_mask(10, 10, 40, 30), score=0.8, source="photometric", category_id=1)
    outline = _mask(10, 10, 40, 30)
    outline[10:20, 25:40] = False
    own = Instance.from_mask(outline, score=0.6, source="student")
    far = Instance.from_mask(_mask(0, 0, 12, 12), score=0.9, source="student")  # another object
    assert own.box_xyxy == teacher.box_xyxy  # the same extent: only the outline differs
    boxes_only = Instance(box_xyxy=(10, 10, 40, 30), score=0.7, source="photometric")
    labels = _labels(tmp_path, [[teacher], [teacher], [], [boxes_only]])
    start = _Start({0: [far, own], 1: [far], 3: [own]})

    swapped, swap = swap_in_start_masks(labels, start)
    first, second, empty, boxes = swapped.images
    assert np.array_equal(first.instances[0].mask, outline)  # the start's outline, its best-matching box
    got = first.instances[0]
    assert (got.box_xyxy, got.score, got.source, got.category_id) == (teacher.box_xyxy, 0.8, "photometric", 1)
    assert np.array_equal(second.instances[0].mask, teacher.mask)  # the start sees something else: kept
    assert empty.instances == () and boxes.instances == (boxes_only,)  # nothing to outline
    assert (swap.from_start, swap.kept) == (1, 2)
    assert "1/3 labelled objects" in swap.line()
    assert sorted(start.seen) == [0, 1]  # the start looks only at images with a mask to replace
    assert labels.images[0].instances[0] is teacher  # the input is not changed


def test_a_start_box_just_below_the_bound_keeps_the_labels_mask(tmp_path):
    teacher = Instance.from_mask(_mask(0, 0, 40, 20), score=0.8, source="photometric")
    # IoU of (0, 0, 40, 20) with (0, 0, 40, h): h / 20
    for h, swaps in ((int(20 * MASK_AGREE), True), (int(20 * MASK_AGREE) - 1, False)):
        own = Instance.from_mask(_mask(0, 0, 40, h), score=0.6, source="student")
        swapped, swap = swap_in_start_masks(_labels(tmp_path / str(h), [[teacher]]), _Start({0: [own]}))
        assert swap.from_start == int(swaps), h
        assert np.array_equal(swapped.images[0].instances[0].mask, (own if swaps else teacher).mask)


def test_several_objects_pair_one_to_one_and_an_empty_start_mask_is_no_outline(tmp_path):
    left = Instance.from_mask(_mask(0, 0, 20, 20), score=0.9, source="photometric")
    right = Instance.from_mask(_mask(30, 0, 50, 20), score=0.8, source="photometric")
    boxes_only = Instance(box_xyxy=(0, 25, 20, 40), score=0.7, source="photometric")
    own_left = Instance.from_mask(_mask(1, 1, 20, 20), score=0.5, source="student")
    own_right = Instance.from_mask(_mask(31, 1, 50, 20), score=0.4, source="student")
    # the head's box of a mask that came out empty: it matches `left` exactly, but outlines nothing
    empty = Instance(box_xyxy=(0, 0, 20, 20), rle=Instance.from_mask(np.zeros((H, W), bool)).rle, score=0.95)
    labels = _labels(tmp_path, [[left, right, boxes_only], [left]])
    swapped, swap = swap_in_start_masks(labels, _Start({0: [empty, own_right, own_left], 1: [empty]}))
    got = swapped.images[0].instances
    assert np.array_equal(got[0].mask, own_left.mask) and np.array_equal(got[1].mask, own_right.mask)
    assert got[2] is boxes_only
    assert np.array_equal(swapped.images[1].instances[0].mask, left.mask)  # only an empty mask there: kept
    assert (swap.from_start, swap.kept) == (2, 2)
    # two labels of one object, one start mask: it outlines the better-matching label only
    twin = Instance.from_mask(_mask(0, 0, 18, 20), score=0.3, source="photometric")
    swapped, swap = swap_in_start_masks(_labels(tmp_path / "twin", [[twin, left]]), _Start({0: [own_left]}))
    assert (swap.from_start, swap.kept) == (1, 1)
    assert np.array_equal(swapped.images[0].instances[1].mask, own_left.mask)  # IoU 0.9 against twin's 0.85
    assert np.array_equal(swapped.images[0].instances[0].mask, twin.mask)


def test_mask_source_is_checked_everywhere_and_the_default_leaves_older_trainings_found(tmp_path):
    from afss.student.train import TrainConfig, training_identity

    with pytest.raises(AfssError, match="mask_source must be one of labels, start"):
        TrainConfig(mask_source="teacher")
    labels = _labels(tmp_path, [[]])
    # a training recorded before `mask_source` existed had the labels' masks: its identity is unchanged
    assert "mask_source" not in training_identity(labels, TrainConfig())["config"]
    start = training_identity(labels, TrainConfig(mask_source="start"))["config"]
    assert start["mask_source"] == "start" and "mask_start" not in start  # the start is init
    other = training_identity(labels, TrainConfig(mask_source="start"), mask_start="/w/round1_start.pt")["config"]
    assert other["mask_start"] == "/w/round1_start.pt"
    from afss.run.config import RunConfig, config_from_dict

    with pytest.raises(AfssError, match=r"my.yaml: student.mask_source: expected labels or start, got 'teacher'"):
        config_from_dict({"student": {"mask_source": "teacher"}}, where="my.yaml")
    assert RunConfig().student.mask_source == TrainConfig().mask_source == "labels"


def test_a_training_from_before_mask_source_is_refused_naming_the_value_it_had(tmp_path):
    """A finished training recorded without the key had the labels' masks; asking for the start's
    is refused with that value named, not ``None``."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("the student extra (ultralytics) is not installed")
    from afss.student.train import TrainConfig, train_student, training_identity

    labels = _labels(tmp_path / "imgs", [[Instance.from_mask(_mask(0, 0, 20, 20))]])
    out = tmp_path / "run"
    out.mkdir()
    (out / "train.json").write_text(json.dumps({"identity": training_identity(labels, TrainConfig(init="x.yaml"))}))
    with pytest.raises(AfssError, match="mask_source 'labels', now 'start'"):
        train_student(labels, out, TrainConfig(init="yolo11n-seg.yaml", mask_source="start"))
