"""``grounded-sam2``: the paper's teacher. Grounding DINO boxes prompt SAM 2.1 on the original image.

Defaults follow the reference code: prompt normalised to Grounding DINO's convention (lower case,
ending in "."), box threshold 0.35, text threshold 0.25 (it only decides which prompt words name a
box, as in Grounding DINO's own ``predict``), the single most confident box per image, SAM 2.1
Hiera-L with ``multimask_output=False``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.teachers.detect_segment import DetectSegmentTeacher
from afss.teachers.hf import build_from_options, load_pretrained, normalize_gdino_prompt, to_device
from afss.teachers.segmenters import DEFAULT_SEGMENTER, BoxSegmenter

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
DETECTOR_TYPES = ("grounding-dino", "mm-grounding-dino")


def load_detector(id_or_dir: str, device: Any, dtype: Any, types: Sequence[str]) -> tuple[Any, Any]:
    """A zero-shot detector and its processor; the config's model type must be one of ``types``."""
    import transformers

    config = load_pretrained(transformers.AutoConfig, id_or_dir)
    if config.model_type.replace("_", "-") not in types:
        raise AfssError(f"{id_or_dir}: model type {config.model_type!r} is not a {' / '.join(types)} detector")
    model = load_pretrained(transformers.AutoModelForZeroShotObjectDetection, id_or_dir)
    processor = load_pretrained(transformers.AutoProcessor, id_or_dir)
    return model.to(device=device, dtype=dtype).eval(), processor


class GroundedSam2Teacher(DetectSegmentTeacher):
    """Grounding DINO (or MM-Grounding-DINO) + SAM 2.1 (or SAM / SAM-HQ / other SAM 2 sizes).

    Args:
        detector: hub id or local folder of a Grounding DINO / MM-Grounding-DINO checkpoint, e.g.
            ``"IDEA-Research/grounding-dino-base"``, ``"openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det"``.
        segmenter: hub id or local folder of SAM 2 / 2.1 (any size), SAM or SAM-HQ.
        box_threshold: keep boxes whose best token probability is > this (paper 0.35).
        text_threshold: token probability above which a prompt word names a box (paper 0.25).
        top1: keep only the most confident box per image; ``False``: every box above the threshold.
        score: ``Instance.score``: ``"mask"`` (SAM's predicted IoU, the reference), ``"box"``, ``"product"``.
        device: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        dtype: the segmenter's precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU only).
        detector_dtype: the detector's precision, fp32 by default whatever ``dtype`` is (the reference
            runs Grounding DINO in fp32); ``"bf16"`` / ``"fp16"`` to cast it too.
        batch_size: images per forward pass.

    Example:
        >>> teacher = GroundedSam2Teacher(device="cuda")  # doctest: +SKIP
        >>> inst = teacher.label([rgb], "spacecraft")[0][0]
        >>> inst.box_xyxy, inst.scores["box_score"], inst.scores["mask_score"]
    """

    name = "grounded-sam2"

    def __init__(self, *, detector: str = DEFAULT_DETECTOR, segmenter: str = DEFAULT_SEGMENTER,
                 box_threshold: float = 0.35, text_threshold: float = 0.25, top1: bool = True, score: str = "mask",
                 device: str = "auto", dtype: str = "fp32", batch_size: int = 4,
                 detector_dtype: str = "fp32") -> None:
        if not 0.0 <= text_threshold <= 1.0:
            raise AfssError(f"text_threshold must be in [0, 1], got {text_threshold}")
        seg = BoxSegmenter.from_pretrained(segmenter, device=device, dtype=dtype)
        super().__init__(seg, box_threshold=box_threshold, top1=top1, score=score, batch_size=batch_size,
                         detector_dtype=detector_dtype)
        self.text_threshold = float(text_threshold)
        self.detector_id = str(detector)
        self.detector_model, self.detector_processor = load_detector(detector, seg.device, self.detector_dtype,
                                                                     DETECTOR_TYPES)

    @classmethod
    def build(cls, **options: Any) -> GroundedSam2Teacher:
        return build_from_options(cls, options)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "detector": self.detector_id, "text_threshold": self.text_threshold}

    def detect(self, images: Sequence[np.ndarray], prompt: str) -> list[tuple[np.ndarray, np.ndarray]]:
        import torch

        text = normalize_gdino_prompt(prompt)
        sizes = [tuple(int(v) for v in im.shape[:2]) for im in images]
        enc = self.detector_processor(images=list(images), text=[text] * len(images), return_tensors="pt")
        with torch.inference_mode():
            out = self.detector_model(**to_device(enc, self.segmenter.device, self.detector_dtype))
        out.logits = out.logits.float()
        out.pred_boxes = out.pred_boxes.float()
        results = self.detector_processor.post_process_grounded_object_detection(
            out, enc["input_ids"].to(out.logits.device), threshold=self.box_threshold,
            text_threshold=self.text_threshold, target_sizes=sizes)
        dets = []
        for r in results:
            boxes = r["boxes"].cpu().numpy().astype(np.float64)  # unclipped: the segmenter's prompt
            scores = r["scores"].cpu().numpy().astype(np.float64)
            log.debug("%s: %d boxes, phrases %s", self.name, len(scores), r["text_labels"])
            dets.append((boxes, scores))
        return dets
