"""The start's own outlines in the training labels, where it finds the labelled object
(`TrainConfig.mask_source` ``"start"``).

A teacher's mask and a pretrained start's mask of the same object fail differently: the photometric
teacher thresholds brightness, so it cuts off the unlit half of a spacecraft and takes in glare; the
shipped start learnt outlines from the renderer's exact masks. When every layer of the student
learns from pseudo-labels (``ultralytics``, ``finetune``), its mask branch copies the teacher's
outlines: on a renderer afss never saw, the start's 35.0 mask AP fell to 22.0 after two rounds
(issue 27). With ``mask_source="start"`` the teacher still decides which images are trained on and
where their object is; each labelled object whose mask the start also finds at about the same place
and size (the box of the start's mask has IoU >= `MASK_AGREE` with the label's box) is outlined by
the start's mask instead of the teacher's. YOLO-seg takes an instance's box from its polygon, so
the student then learns the start's box there too, within that IoU of the teacher's. Elsewhere (the
start misses the object, sees it at another extent, or its mask is empty) the label stays as it is.

Nothing here looks at ground truth: the start and the labels are all it compares.
"""

from __future__ import annotations

from dataclasses import dataclass

from afss.teachers.base import Teacher
from afss.types import Instance, LabelSet, rle_area, rle_box_xyxy

__all__ = ["MASK_AGREE", "MASK_SOURCES", "MaskSwap", "swap_in_start_masks"]

MASK_SOURCES = ("labels", "start")
"""`TrainConfig.mask_source`: the labels' masks as they are, or the start's where it agrees (`swap_in_start_masks`)."""

MASK_AGREE = 0.7
"""Box IoU at which the start's mask is taken to outline the labelled object at its extent. Fixed
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
                f"(its mask's box agrees >= {MASK_AGREE} with the label's), the labels' for the rest")


def swap_in_start_masks(labels: LabelSet, start: Teacher, *, min_iou: float = MASK_AGREE,
                        prompt: str = "spacecraft") -> tuple[LabelSet, MaskSwap]:
    """``labels`` with each masked instance's mask replaced by a mask of the start's, where the box of
    that mask has IoU >= ``min_iou`` with the instance's box. Within an image, label instances and the
    start's non-empty masks are paired one to one, best IoU first (of equals, the start's more
    confident instance). Box, score, category and source
    stay the label's (the box is what the teacher said; a trainer that takes boxes from masks sees
    the start's). Images without a masked instance are passed through, and the start is not run on
    them; instances without a mask (boxes-only labels) are kept as they are.

    Args:
        labels: training labels (images readable from ``labels.image_root``).
        start: the model whose outlines are wanted, as a `Teacher` (`afss.student.model.StudentTeacher`).
        min_iou: box IoU at which the start's mask counts as the labelled object's.
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
        donors = [(o.rle, rle_box_xyxy(o.rle)) for o in found.get(im.file_name, ()) if o.rle is not None and rle_area(o.rle)]
        pairs = sorted(((box_iou(inst.box_xyxy, box), i, d) for i, inst in enumerate(im.instances) if inst.rle is not None
                        for d, (_, box) in enumerate(donors)), key=lambda p: (-p[0], p[1], p[2]))  # ties: the start's surer
        taken: dict[int, int] = {}  # label instance -> donor
        for iou, i, d in pairs:
            if iou < min_iou:
                break
            if i not in taken and d not in taken.values():
                taken[i] = d
        instances: list[Instance] = [inst.replace(rle=donors[taken[i]][0]) if i in taken else inst
                                     for i, inst in enumerate(im.instances)]
        swapped += len(taken)
        kept += len(instances) - len(taken)
        images.append(im.replace(instances=tuple(instances)))
    return labels.replace(images=tuple(images)), MaskSwap(swapped, kept)
