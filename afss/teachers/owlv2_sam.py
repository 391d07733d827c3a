"""``owlv2-sam``: OWLv2 open-vocabulary boxes prompt SAM 2 on the original image.

OWLv2 pads every image to a square (bottom and right) before resizing, so its normalised boxes are
fractions of the padded square: they are scaled by ``max(H, W)``; the box as scaled prompts the
segmenter, the stored box is clipped to the image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from afss.teachers.detect_segment import DetectSegmentTeacher
from afss.teachers.grounded_sam2 import load_detector
from afss.teachers.hf import build_from_options, split_phrases, to_device
from afss.teachers.segmenters import DEFAULT_SEGMENTER, BoxSegmenter

log = logging.getLogger(__name__)

DEFAULT_OWLV2 = "google/owlv2-base-patch16-ensemble"


class Owlv2SamTeacher(DetectSegmentTeacher):
    """OWLv2 + SAM 2.1 (or SAM / SAM-HQ).

    Args:
        detector: hub id or folder of an OWLv2 checkpoint, e.g. ``"google/owlv2-large-patch14-ensemble"``.
        segmenter: hub id or folder of SAM 2 / 2.1, SAM or SAM-HQ.
        box_threshold: keep boxes whose best query probability is > this (0.1, OWLv2's usual value; its
            scores run lower than Grounding DINO's).
        top1, score, device, dtype, batch_size, detector_dtype: as for `GroundedSam2Teacher` (``dtype``
            the segmenter's, ``detector_dtype`` OWLv2's, fp32 by default).

    The prompt is split at "." into queries: ``"satellite. solar panel"`` asks for both.
    """

    name = "owlv2-sam"

    def __init__(self, *, detector: str = DEFAULT_OWLV2, segmenter: str = DEFAULT_SEGMENTER,
                 box_threshold: float = 0.1, top1: bool = True, score: str = "mask", device: str = "auto",
                 dtype: str = "fp32", batch_size: int = 4, detector_dtype: str = "fp32") -> None:
        seg = BoxSegmenter.from_pretrained(segmenter, device=device, dtype=dtype)
        super().__init__(seg, box_threshold=box_threshold, top1=top1, score=score, batch_size=batch_size,
                         detector_dtype=detector_dtype)
        self.detector_id = str(detector)
        self.detector_model, self.detector_processor = load_detector(detector, seg.device, self.detector_dtype,
                                                                     ("owlv2",))
        self.max_text_len = self.detector_model.config.text_config.max_position_embeddings  # 16 for OWLv2

    @classmethod
    def build(cls, **options: Any) -> Owlv2SamTeacher:
        return build_from_options(cls, options)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "detector": self.detector_id}

    def detect(self, images: Sequence[np.ndarray], prompt: str) -> list[tuple[np.ndarray, np.ndarray]]:
        import torch

        queries = split_phrases(prompt)
        sizes = [tuple(int(v) for v in im.shape[:2]) for im in images]
        enc = self.detector_processor(images=list(images), text=[queries] * len(images), return_tensors="pt",
                                      padding="max_length", truncation=True, max_length=self.max_text_len)
        with torch.inference_mode():
            out = self.detector_model(**to_device(enc, self.segmenter.device, self.detector_dtype))
        out.logits = out.logits.float()
        out.pred_boxes = out.pred_boxes.float()
        squares = torch.tensor([[max(s), max(s)] for s in sizes], dtype=torch.float32)
        results = self.detector_processor.post_process_grounded_object_detection(
            out, threshold=self.box_threshold, target_sizes=squares)
        return [(r["boxes"].cpu().numpy().astype(np.float64), r["scores"].cpu().numpy().astype(np.float64))
                for r in results]
