"""The start's own masks in the training labels, where it finds the labelled object (`TrainConfig.masks`).

A teacher's mask and a pretrained start's mask of the same object fail differently: the photometric
teacher thresholds brightness, so it cuts off the unlit half of a spacecraft and takes in glare; the
shipped start learnt outlines from the renderer's exact masks. When every layer of the student
learns from pseudo-labels (``ultralytics``, ``finetune``), its mask branch copies the teacher's
outlines: on a renderer afss never saw, the start's 35.0 mask AP fell to 22.0 after two rounds
(issue 27), while its boxes gained. With ``masks="start"`` the boxes still come from the teacher
(the image, the object and its extent), and each labelled object's outline comes from the start
wherever the start's own top box for it agrees with the label's (box IoU >= `MASK_AGREE`): the two
then see the same object at the same extent, and only the outline is in question. Elsewhere (the
start misses the object, or sees it at another extent) the label stays as it is.

Nothing here looks at ground truth: the start and the labels are all it compares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from afss.teachers.base import Teacher
from afss.types import LabelSet

__all__ = ["MASK_AGREE", "MASK_SOURCES", "MaskSwap", "swap_in_start_masks"]

MASK_SOURCES = ("labels", "start")
"""`TrainConfig.masks`: the labels' masks as they are, or the start's where it agrees (`swap_in_start_masks`)."""

MASK_AGREE = 0.7
"""Box IoU at which the start's instance is taken to be the labelled object at its extent. Fixed
before any measurement (not fitted): a match tight enough that the box the student learns (YOLO-seg
takes it from the polygon's extent) moves little from the teacher's."""


@dataclass(frozen=True)
class MaskSwap:
    """What `swap_in_start_masks` changed: instances whose mask is now the start's, and those kept."""

    from_start: int
    kept: int

    def line(self) -> str:
        total = self.from_start + self.kept
        return (f"masks: the start's outline for {self.from_start}/{total} labelled objects "
                f"(its box agrees >= {MASK_AGREE}), the labels' for the rest")


def swap_in_start_masks(labels: LabelSet, start: Teacher, *, min_iou: float = MASK_AGREE,
                        prompt: str = "spacecraft") -> tuple[LabelSet, MaskSwap]:
    """``labels`` with each instance's mask replaced by the start's mask of the same object, where the
    start's best-matching box has IoU >= ``min_iou`` with the instance's box; box, score, category
    and source stay the label's. Images without instances are passed through (the start is not run on
    them); instances without a mask (boxes-only labels) are kept as they are.

    Args:
        labels: training labels (images readable from ``labels.image_root``).
        start: the model training starts from, as a `Teacher` (`afss.student.model.StudentTeacher`).
        min_iou: box IoU at which the start's instance counts as the labelled object.
        prompt: passed to the start (a student ignores it).
    """
    from afss.evaluate.preview import box_iou
    from afss.label import label_images

    labelled = [im for im in labels.images if any(inst.rle is not None for inst in im.instances)]
    if not labelled:
        return labels, MaskSwap(0, sum(len(im.instances) for im in labels.images))
    subset = labels.replace(images=tuple(im.replace(instances=()) for im in labelled))
    found = {im.file_name: im.instances for im in label_images(start, subset, prompt=prompt, top1=False).images}
    swapped = kept = 0
    images = []
    for im in labels.images:
        own = found.get(im.file_name, ())
        instances = []
        for inst in im.instances:
            ious = [box_iou(inst.box_xyxy, o.box_xyxy) for o in own if o.rle is not None]
            best = int(np.argmax(ious)) if ious else -1
            if inst.rle is not None and best >= 0 and ious[best] >= min_iou:
                donor = [o for o in own if o.rle is not None][best]
                instances.append(replace(inst, rle=donor.rle))
                swapped += 1
            else:
                instances.append(inst)
                kept += 1
        images.append(im.replace(instances=tuple(instances)))
    return labels.replace(images=tuple(images)), MaskSwap(swapped, kept)
