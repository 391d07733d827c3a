"""``masks="start"``: the teacher says where the object is, the start how it is outlined
(`afss.student.start_masks`), wherever the start's box agrees with the label's."""

from __future__ import annotations

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


def test_masks_is_checked_everywhere_and_the_default_leaves_older_trainings_found(tmp_path):
    from afss.student.train import TrainConfig, training_identity

    with pytest.raises(AfssError, match="masks must be one of labels, start"):
        TrainConfig(masks="teacher")
    labels = _labels(tmp_path, [[]])
    # a training recorded before `masks` existed had the labels' masks: its identity is unchanged
    assert "masks" not in training_identity(labels, TrainConfig())["config"]
    assert training_identity(labels, TrainConfig(masks="start"))["config"]["masks"] == "start"
    from afss.run.config import RunConfig, config_from_dict

    with pytest.raises(AfssError, match=r"my.yaml: student.masks: expected labels or start, got 'teacher'"):
        config_from_dict({"student": {"masks": "teacher"}}, where="my.yaml")
    assert config_from_dict({"student": {"masks": "start"}}).student.masks == "start"
    assert RunConfig().student.masks == TrainConfig().masks == "labels"
