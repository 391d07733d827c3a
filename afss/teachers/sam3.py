"""``sam3``: SAM 3 promptable concept segmentation, text in, boxes and masks out, one model.

SAM 3 scores each instance once (query probability x the image-level presence probability); that
is both ``Instance.score`` and ``scores["box_score"]``. It has no per-box IoU head, so re-segmenting
given boxes (`segment_boxes`, used by refinement) needs a SAM-family ``segmenter``; without one
``can_segment_boxes`` is False.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.teachers.base import Teacher, check_batch, check_boxes, check_rgb
from afss.teachers.detect_segment import size_batches
from afss.teachers.hf import build_from_options, load_pretrained, resolve_device, resolve_dtype, split_phrases
from afss.teachers.segmenters import BoxSegmenter
from afss.types import Instance, encode_mask

log = logging.getLogger(__name__)

DEFAULT_SAM3 = "facebook/sam3"
# The hub's facebook/sam3 is saved as the video model ("sam3_video", a Sam3VideoConfig whose
# detector_config is the image model's Sam3Config); Sam3Model.from_pretrained loads its detector.
MODEL_TYPES = ("sam3", "sam3_video")


class Sam3Teacher(Teacher):
    """SAM 3 (``Sam3Model``) prompted with text.

    Args:
        model: hub id or folder of a SAM 3 checkpoint: model type ``sam3`` (the image model) or
            ``sam3_video`` (how the hub's ``facebook/sam3`` is saved; its detector is loaded).
        box_threshold: keep instances whose score is > this (0.5, the transformers example's value).
        mask_threshold: probability above which a pixel is in the mask.
        top1: keep only the highest-scoring instance per image.
        segmenter: optional SAM / SAM 2 id or folder for `segment_boxes` (refinement).
        device, dtype, batch_size: as for `GroundedSam2Teacher`.
        detector: alias of ``model`` (so ``afss label --detector`` works for every VLM teacher).

    Each "."-separated phrase of the prompt is one concept query; the image is encoded once for all.
    """

    name = "sam3"

    def __init__(self, *, model: str = DEFAULT_SAM3, box_threshold: float = 0.5, mask_threshold: float = 0.5,
                 top1: bool = True, segmenter: str | None = None, device: str = "auto", dtype: str = "fp32",
                 batch_size: int = 4, detector: str | None = None) -> None:
        import transformers

        model = detector if detector is not None else model  # `afss label --detector` names the model too

        for key, value in (("box_threshold", box_threshold), ("mask_threshold", mask_threshold)):
            if not 0.0 <= value <= 1.0:
                raise AfssError(f"{key} must be in [0, 1], got {value}")
        if batch_size < 1:
            raise AfssError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        config = load_pretrained(transformers.AutoConfig, model)
        if config.model_type not in MODEL_TYPES:
            raise AfssError(f"{model}: model type {config.model_type!r} is not a SAM 3 checkpoint "
                            f"(expected {' or '.join(map(repr, MODEL_TYPES))})")
        self.model_id = str(model)
        self.model = load_pretrained(transformers.Sam3Model, model).to(self.device, self.dtype).eval()
        self.processor = load_pretrained(transformers.Sam3Processor, model)
        self.box_threshold = float(box_threshold)
        self.mask_threshold = float(mask_threshold)
        self.top1 = bool(top1)
        self.batch_size = int(batch_size)
        self.segmenter = None if segmenter is None else BoxSegmenter.from_pretrained(segmenter, device=device,
                                                                                     dtype=dtype)

    @classmethod
    def build(cls, **options: Any) -> Sam3Teacher:
        cls.check(**options)
        return build_from_options(cls, options)

    @classmethod
    def check(cls, **options: Any) -> None:
        if "detector_dtype" in options:  # the other VLM teachers' option: say why it does not apply here
            raise AfssError("teacher 'sam3' has no separate detector (SAM 3 finds and segments in one model): "
                            "set its precision with dtype (--dtype)")
        super().check(**options)

    @property
    def options(self) -> dict[str, Any]:
        """The resolved options (model ids, thresholds, device), for provenance in ``info``."""
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {"teacher": self.name, "model": self.model_id, "box_threshold": self.box_threshold,
                "mask_threshold": self.mask_threshold, "top1": self.top1, "batch_size": self.batch_size,
                "segmenter": None if self.segmenter is None else self.segmenter.model_id,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}

    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft",
              progress: Callable[[int], None] | None = None) -> list[list[Instance]]:
        import torch

        images = check_batch(images, prompt, self.name)
        phrases = split_phrases(prompt)
        results: list[list[Instance]] = [[] for _ in images]
        for idx in size_batches(images, self.batch_size):
            batch = [images[i] for i in idx]
            sizes = [tuple(int(v) for v in im.shape[:2]) for im in batch]
            pixel_values = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            found: list[list[Instance]] = [[] for _ in batch]
            with torch.inference_mode():
                vision = self.model.get_vision_features(pixel_values.to(self.device, self.dtype))
                for phrase in phrases:
                    text = self.processor(text=[phrase] * len(batch), return_tensors="pt")
                    out = self.model(vision_embeds=vision, input_ids=text["input_ids"].to(self.device),
                                     attention_mask=text["attention_mask"].to(self.device))
                    for name in ("pred_logits", "pred_boxes", "pred_masks", "presence_logits"):
                        if getattr(out, name, None) is not None:
                            setattr(out, name, getattr(out, name).float())
                    if self.top1:  # keep each image's best query alone: post-processing upsamples (and we
                        # RLE-encode) every query above the threshold, up to 200 full-size masks, for one kept.
                        # The presence score scales every query of an image alike, so the best logit is the best.
                        best, rows = out.pred_logits.argmax(dim=1), torch.arange(out.pred_logits.shape[0])
                        for name in ("pred_logits", "pred_boxes", "pred_masks"):
                            setattr(out, name, getattr(out, name)[rows, best][:, None])
                    per_image = self.processor.post_process_instance_segmentation(
                        out, threshold=self.box_threshold, mask_threshold=self.mask_threshold, target_sizes=sizes)
                    for k, r in enumerate(per_image):
                        found[k].extend(self._instances(r, sizes[k]))
            for k, i in enumerate(idx):
                ranked = sorted(found[k], key=lambda inst: -inst.score)
                results[i] = ranked[:1] if self.top1 else ranked
            if progress is not None:
                progress(len(idx))
        return results

    def _instances(self, result: dict[str, Any], size_hw: tuple[int, int]) -> list[Instance]:
        boxes = check_boxes(result["boxes"].cpu().numpy(), size_hw)
        scores = result["scores"].cpu().numpy()
        masks = result["masks"].cpu().numpy().astype(bool)
        return [Instance(box_xyxy=tuple(b), rle=encode_mask(m), score=float(s), source=self.name,
                         scores={"box_score": float(s)})
                for b, s, m in zip(boxes, scores, masks)]

    @property
    def can_segment_boxes(self) -> bool:
        return self.segmenter is not None

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        if self.segmenter is None:
            raise NotImplementedError("teacher 'sam3' re-segments boxes only when built with segmenter=<SAM id>")
        image = check_rgb(image)
        return self.segmenter.instances(image, check_boxes(boxes_xyxy), source=self.name)
