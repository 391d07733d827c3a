"""The two-model teacher shape the paper uses: a text-grounded detector finds boxes, a promptable
segmenter turns each kept box into a mask on the original image.

Subclasses (`GroundedSam2Teacher`, `Owlv2SamTeacher`) only say how their detector turns a batch of
images and a prompt into boxes in original-image pixels and scores; batching, top-1 selection,
segmentation, scoring and `segment_boxes` live here.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.teachers.base import Teacher, check_batch, check_boxes, check_rgb
from afss.teachers.hf import resolve_dtype
from afss.teachers.segmenters import BoxSegmenter
from afss.types import Instance, encode_mask

log = logging.getLogger(__name__)

SCORE_MODES = ("mask", "box", "product")


def size_batches(images: Sequence[np.ndarray], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of at most ``batch_size`` images of one size, in input order.

    Same-size batches need no padding, so a batch gives exactly what single images give.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape[:2]), []).append(i)
    batches = [idx[s:s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]
    return sorted(batches, key=lambda b: b[0])


class DetectSegmentTeacher(Teacher):
    """Detector boxes prompt a `BoxSegmenter`; one embedding per image serves all its boxes.

    Args:
        segmenter: the loaded promptable segmenter.
        box_threshold: keep detector boxes whose score is strictly greater.
        top1: keep only the detector's most confident box per image (the paper's default).
        score: what `Instance.score` is: ``"mask"`` the segmenter's predicted IoU (the reference
            code stores and filters on it), ``"box"`` the detector score, ``"product"`` both multiplied.
        batch_size: images per forward pass (batches hold images of one size).
        detector_dtype: the detector's precision, ``"fp32"`` (the reference keeps Grounding DINO in
            fp32 whatever SAM runs in), ``"bf16"`` or ``"fp16"``; the segmenter's is its own ``dtype``.
    """

    name: ClassVar[str]

    def __init__(self, segmenter: BoxSegmenter, *, box_threshold: float, top1: bool = True, score: str = "mask",
                 batch_size: int = 4, detector_dtype: str = "fp32") -> None:
        if score not in SCORE_MODES:
            raise unknown_choice("score", score, SCORE_MODES)
        if not 0.0 <= box_threshold <= 1.0:
            raise AfssError(f"box_threshold must be in [0, 1], got {box_threshold}")
        if batch_size < 1:
            raise AfssError(f"batch_size must be >= 1, got {batch_size}")
        self.segmenter = segmenter
        self.box_threshold = float(box_threshold)
        self.top1 = bool(top1)
        self.score = score
        self.batch_size = int(batch_size)
        self.detector_dtype = resolve_dtype(detector_dtype, segmenter.device, "detector_dtype")

    @abc.abstractmethod
    def detect(self, images: Sequence[np.ndarray], prompt: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per image: float ``(N, 4)`` xyxy boxes in original pixels, as the detector gave them (not
        clipped: a box may run past the frame), and ``(N,)`` scores > threshold."""

    @property
    def options(self) -> dict[str, Any]:
        """The resolved options (model ids, thresholds, device), for provenance in ``info``."""
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """Provenance for ``run.json`` / COCO ``info``."""
        return {"teacher": self.name, "segmenter": self.segmenter.model_id, "box_threshold": self.box_threshold,
                "top1": self.top1, "score": self.score, "batch_size": self.batch_size,
                "device": str(self.segmenter.device), "dtype": str(self.segmenter.dtype).replace("torch.", ""),
                "detector_dtype": str(self.detector_dtype).replace("torch.", "")}

    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft",
              progress: Callable[[int], None] | None = None) -> list[list[Instance]]:
        images = check_batch(images, prompt, self.name)
        results: list[list[Instance]] = [[] for _ in images]
        for idx in size_batches(images, self.batch_size):
            batch = [images[i] for i in idx]
            detections = self.detect(batch, prompt)
            kept = []
            for boxes, scores in detections:
                order = np.argsort(-scores, kind="stable")
                if self.top1:
                    order = order[:1]
                kept.append((boxes[order], scores[order]))
            # The detector's own box prompts the segmenter, as in the reference code; the stored box
            # is clipped to the frame.
            segs = self.segmenter.segment(batch, [b for b, _ in kept])
            for i, (boxes, box_scores), seg in zip(idx, kept, segs):
                stored = check_boxes(boxes, images[i].shape[:2])  # clipped to the frame
                results[i] = self._instances(stored, box_scores, seg.masks, seg.scores)
            if progress is not None:
                progress(len(idx))
        return results

    def _instances(self, boxes: np.ndarray, box_scores: np.ndarray, masks: np.ndarray,
                   mask_scores: np.ndarray) -> list[Instance]:
        out = []
        for box, bs, mask, ms in zip(boxes, box_scores, masks, mask_scores):
            bs, ms = float(bs), float(ms)
            score = {"mask": ms, "box": bs, "product": bs * ms}[self.score]
            out.append(Instance(box_xyxy=tuple(box), rle=encode_mask(mask), score=score, source=self.name,
                                scores={"box_score": bs, "mask_score": ms}))
        return sorted(out, key=lambda inst: -inst.score)

    @property
    def can_segment_boxes(self) -> bool:
        return True

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        """Masks for given boxes on one image; ``score`` and ``scores["mask_score"]`` are the predicted IoU."""
        image = check_rgb(image)
        return self.segmenter.instances(image, check_boxes(boxes_xyxy), source=self.name)
