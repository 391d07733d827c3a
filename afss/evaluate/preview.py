"""A picture of predictions against ground truth: the quickest way to see what the numbers mean.

Each tile is one image, cropped around its target (targets are often a few percent of the frame),
ground truth outlined in green and each prediction set's top-1 instance in its own colour; the title
gives, per set, that instance's mask IoU with the ground truth and its score: ``labels 0.87 (0.84)``.
Images are sampled evenly across the set, deterministically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from afss.errors import AfssError
from afss.evaluate.pairing import normalise_name
from afss.io.images import ImageReadError, load_image, save_image
from afss.types import ImageLabels, LabelSet
from afss.viz import PALETTE, draw_instances, make_grid

__all__ = ["MAX_PREDICTION_SETS", "crop_around", "crop_window", "preview_grid", "write_preview"]

GT_COLOR = PALETTE[0]
PRED_COLORS = PALETTE[1:]
MAX_PREDICTION_SETS = len(PRED_COLORS)


def preview_grid(gt: LabelSet, preds: Mapping[str, LabelSet], *, n: int = 16, ncols: int = 4,
                 tile: int = 256, context: float = 1.0) -> np.ndarray:
    """Grid of ``n`` images (RGB uint8) with ground truth and every prediction set drawn.

    Args:
        gt: ground truth; its images are sampled (those with an ``error`` are skipped).
        preds: ``{name: predictions}``, matched to ``gt`` by file name; at most 5 sets.
        n: tiles; ncols: tiles per row; tile: tile side in pixels.
        context: margin around the union of all boxes, as a fraction of its size.
    """
    if len(preds) > MAX_PREDICTION_SETS:
        raise AfssError(f"a preview draws at most {MAX_PREDICTION_SETS} prediction sets, got {len(preds)}")
    by_name = {name: {normalise_name(im.file_name): im for im in p.images} for name, p in preds.items()}
    usable = [im for im in gt.images if im.error is None]
    if not usable:
        raise AfssError("preview: no ground-truth image to show (all are recorded with an error)")
    picks = np.unique(np.linspace(0, len(usable) - 1, min(n, len(usable))).round().astype(int))
    tiles, titles = [], []
    for k in picks:
        g = usable[k]
        try:
            rgb = load_image(gt.image_path(g)).rgb
        except ImageReadError:
            continue
        found = {name: images.get(normalise_name(g.file_name)) for name, images in by_name.items()}
        out = draw_instances(rgb, g.instances, GT_COLOR, label=False)
        parts = []
        for (name, p), color in zip(found.items(), PRED_COLORS):
            insts = (max(p.instances, key=lambda i: i.score),) if p is not None and p.instances else ()
            out = draw_instances(out, insts, color, label=False)
            parts.append(f"{name} {_iou(g, insts[0])} ({insts[0].score:.2f})" if insts else f"{name} -")
        tiles.append(crop_around(out, [g, *(p for p in found.values() if p is not None)], context))
        titles.append("  ".join(parts))
    if not tiles:
        first = gt.image_path(usable[int(picks[0])])
        raise AfssError(f"preview: none of the sampled images could be read, e.g. {first}")
    return make_grid(tiles, ncols=ncols, titles=titles, tile_hw=(tile, tile))


def write_preview(path: str | os.PathLike, gt: LabelSet, preds: Mapping[str, LabelSet], **options) -> str:
    """`preview_grid` saved as an image (format from the extension); returns the path."""
    save_image(path, preview_grid(gt, preds, **options))
    return os.fspath(path)


def _iou(gt: ImageLabels, pred) -> str:
    """Top-1 IoU as text: mask IoU where both sides have masks, else box IoU (boxes-only ground truth)."""
    value = top1_iou(gt, pred)
    return "-" if value is None else f"{value:.2f}"


def top1_iou(gt: ImageLabels, pred) -> float | None:
    """IoU of ``pred`` (an `Instance`) with the union of ``gt``'s instances: mask IoU where both
    have masks, else the IoU of ``pred``'s box with the ground truth's enclosing box; ``None``
    without ground truth."""
    if not gt.instances:
        return None
    masks = [i.mask for i in gt.instances if i.rle is not None]
    if masks and len(masks) == len(gt.instances) and pred.rle is not None:
        target = np.logical_or.reduce(masks)
        p = pred.mask
        union = np.logical_or(target, p).sum()
        return float(np.logical_and(target, p).sum() / union) if union else None
    b = gt.boxes()
    return box_iou((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()), pred.box_xyxy)


def box_iou(a, b) -> float:
    """IoU of two ``xyxy`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def crop_around(rgb: np.ndarray, labelled: list[ImageLabels], context: float) -> np.ndarray:
    """A square crop around every box in ``labelled`` plus ``context`` margin (whole image if none)."""
    top, left, side_h, side_w = crop_window(rgb.shape[:2], labelled, context)
    return rgb[top:top + side_h, left:left + side_w]


def crop_window(size_hw: tuple[int, int], labelled: list[ImageLabels], context: float) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` in pixels of `crop_around`'s crop of an image of ``size_hw``."""
    boxes = np.concatenate([im.boxes() for im in labelled]) if labelled else np.zeros((0, 4))
    h, w = size_hw
    if len(boxes) == 0:
        return 0, 0, h, w
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = min(max(x1 - x0, y1 - y0) * (1 + 2 * context), max(h, w))
    side = max(side, min(96, h, w))  # never zoom into a handful of pixels
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(cx - side / 2, 0, max(0, w - side)))
    top = int(np.clip(cy - side / 2, 0, max(0, h - side)))
    return top, left, min(int(side), h - top), min(int(side), w - left)
