"""Promptable segmenters (SAM, SAM-HQ, SAM 2 / 2.1) prompted with boxes, through transformers.

One image embedding serves every box of that image; boxes go in as xyxy pixels of the original
image and masks come back at the original size, as in SAM 2's ``SAM2ImagePredictor`` with
``multimask_output=False`` (what the paper's reference code calls).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from afss.errors import AfssError, AfssValueError
from afss.teachers.hf import load_pretrained, resolve_device, resolve_dtype
from afss.types import Instance, encode_mask

log = logging.getLogger(__name__)

DEFAULT_SEGMENTER = "facebook/sam2.1-hiera-large"
# config model_type -> (model class, processor class); SAM 2 hub checkpoints are saved as "sam2_video".
KINDS: dict[str, tuple[str, str]] = {
    "sam2": ("Sam2Model", "Sam2Processor"),
    "sam2_video": ("Sam2Model", "Sam2Processor"),
    "sam": ("SamModel", "SamProcessor"),
    "sam_hq": ("SamHQModel", "SamHQProcessor"),
}
MAX_BOXES_PER_PASS = 64


@dataclass(frozen=True)
class SegmenterOutput:
    """Masks for the boxes of one image.

    Attributes:
        masks: bool ``(N, H, W)`` at the original image size.
        scores: float ``(N,)`` the segmenter's predicted mask IoU, clipped to [0, 1].
    """

    masks: np.ndarray
    scores: np.ndarray


class BoxSegmenter:
    """A SAM-family model that turns boxes into masks.

    Example:
        >>> seg = BoxSegmenter.from_pretrained("facebook/sam2.1-hiera-tiny")  # doctest: +SKIP
        >>> out = seg.segment([rgb], [np.array([[10., 20., 90., 80.]])])[0]
        >>> out.masks.shape, out.scores.shape   # (1, H, W), (1,)
    """

    def __init__(self, model: Any, processor: Any, *, kind: str, device: Any, dtype: Any, model_id: str = "") -> None:
        if kind not in KINDS:
            raise AfssError(f"{model_id}: model type {kind!r} is not a box-promptable segmenter "
                            f"(expected one of {', '.join(sorted(KINDS))})")
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.kind = kind
        self.device = device
        self.dtype = dtype
        self.model_id = model_id

    @classmethod
    def from_pretrained(cls, id_or_dir: str = DEFAULT_SEGMENTER, *, device: str = "auto",
                        dtype: str = "fp32") -> BoxSegmenter:
        """Load SAM / SAM-HQ / SAM 2 from a hub id or a ``save_pretrained`` folder."""
        import transformers

        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        config = load_pretrained(transformers.AutoConfig, id_or_dir)
        kind = config.model_type
        if kind not in KINDS:
            raise AfssError(f"{id_or_dir}: model type {kind!r} is not a box-promptable segmenter "
                            f"(expected one of {', '.join(sorted(KINDS))}: SAM, SAM-HQ, SAM 2)")
        model_cls, proc_cls = (getattr(transformers, n) for n in KINDS[kind])
        model = load_pretrained(model_cls, id_or_dir)
        processor = load_pretrained(proc_cls, id_or_dir)
        return cls(model, processor, kind=kind, device=dev, dtype=torch_dtype, model_id=str(id_or_dir))

    # -- geometry -------------------------------------------------------------------------------
    def boxes_to_model_frame(self, boxes_xyxy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        """Original-image xyxy pixels -> the model's input frame (what the processor does to boxes).

        SAM 2 resizes to a square ``target_size``; SAM / SAM-HQ scale the longest side to
        ``target_size`` (rounded like the image processor) and pad.
        """
        h, w = size_hw
        target = float(self.processor.target_size)
        if self.kind in ("sam2", "sam2_video"):
            sx, sy = target / w, target / h
        else:
            scale = target / max(h, w)
            sx, sy = int(w * scale + 0.5) / w, int(h * scale + 0.5) / h
        return np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])

    # -- inference ------------------------------------------------------------------------------
    def segment(self, images: Sequence[np.ndarray], boxes_xyxy: Sequence[np.ndarray]) -> list[SegmenterOutput]:
        """Masks for the boxes of each image; the images are embedded in one batch.

        Args:
            images: RGB uint8 ``(H, W, 3)`` arrays (sizes may differ).
            boxes_xyxy: per image a float ``(N_i, 4)`` array of xyxy pixels of that image (N_i may be 0).

        Returns:
            One `SegmenterOutput` per image, masks in box order.
        """
        import torch

        if len(images) != len(boxes_xyxy):
            raise AfssValueError(f"{len(images)} images but {len(boxes_xyxy)} box arrays")
        boxes_xyxy = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes_xyxy]
        results: list[SegmenterOutput | None] = [None] * len(images)
        todo = [i for i, b in enumerate(boxes_xyxy) if len(b)]
        for i, b in enumerate(boxes_xyxy):
            if not len(b):
                h, w = images[i].shape[:2]
                results[i] = SegmenterOutput(np.zeros((0, h, w), bool), np.zeros(0, np.float32))
        if not todo:
            return results  # type: ignore[return-value]
        enc = self.processor(images=[images[i] for i in todo], return_tensors="pt")
        pixel_values = enc["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(pixel_values)
            for k, i in enumerate(todo):
                size_hw = tuple(int(v) for v in images[i].shape[:2])
                reshaped = tuple(int(v) for v in enc["reshaped_input_sizes"][k]) if "reshaped_input_sizes" in enc else None
                masks, scores = [], []
                for start in range(0, len(boxes_xyxy[i]), MAX_BOXES_PER_PASS):
                    chunk = boxes_xyxy[i][start:start + MAX_BOXES_PER_PASS]
                    m, s = self._decode(self._slice(embeddings, k), chunk, size_hw, reshaped)
                    masks.append(m)
                    scores.append(s)
                results[i] = SegmenterOutput(np.concatenate(masks), np.concatenate(scores))
        return results  # type: ignore[return-value]

    def instances(self, image: np.ndarray, boxes_xyxy: np.ndarray, *, source: str) -> list[Instance]:
        """One `Instance` per box of one image: the box kept, the mask at the image's size, ``score``
        and ``scores["mask_score"]`` the predicted IoU (what `Teacher.segment_boxes` returns)."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        seg = self.segment([image], [boxes])[0]
        return [Instance(box_xyxy=tuple(b), rle=encode_mask(m), score=float(s), source=source,
                         scores={"mask_score": float(s)})
                for b, m, s in zip(boxes, seg.masks, seg.scores)]

    def _slice(self, embeddings: Any, k: int) -> dict[str, Any]:
        if self.kind == "sam_hq":
            image_emb, inter = embeddings
            return {"image_embeddings": image_emb[k:k + 1], "intermediate_embeddings": [t[k:k + 1] for t in inter]}
        if self.kind in ("sam2", "sam2_video"):
            return {"image_embeddings": [t[k:k + 1] for t in embeddings]}
        return {"image_embeddings": embeddings[k:k + 1]}

    def _decode(self, emb: dict[str, Any], boxes: np.ndarray, size_hw: tuple[int, int],
                reshaped_hw: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        # fp32 even for a half-precision model: the prompt encoder casts after dividing by the input size,
        # while bf16 here would round a box at 512-1024 px of the model frame to steps of 4 px
        model_boxes = torch.as_tensor(self.boxes_to_model_frame(boxes, size_hw), dtype=torch.float32,
                                      device=self.device)[None]  # (1, N, 4)
        out = self.model(input_boxes=model_boxes, multimask_output=False, **emb)
        low_res = out.pred_masks.float().cpu()  # (1, N, 1, h, w) logits
        if self.kind in ("sam2", "sam2_video"):
            masks = self.processor.post_process_masks(low_res, [size_hw])[0]
        else:
            masks = self.processor.post_process_masks(low_res, [size_hw], [reshaped_hw])[0]
        masks = masks[:, 0].numpy().astype(bool)  # (N, H, W)
        scores = out.iou_scores.float().cpu().reshape(-1).clamp(0, 1).numpy().astype(np.float32)
        return masks, scores
