"""Fusing what several TTA views found: boxes by Weighted Boxes Fusion, masks by weighted voting.

Boxes go through the reference implementation, ``ensemble_boxes.weighted_boxes_fusion``: they are
normalised to ``[0, 1]`` by the *original* image's width and height, fused, and scaled back. With
``conf_type="avg"`` and equal weights a fused box's score is the sum of its members' scores divided
by the number of box lists passed in, so a box found in one view of two gets half its score: the
fused confidence reflects agreement between views. (``ensemble_boxes`` computes in float32, so a
fused coordinate can differ from an exact average by ~1e-4 pixel.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ensemble_boxes import weighted_boxes_fusion

from afss.errors import AfssValueError

__all__ = ["CONF_TYPES", "FusedBoxes", "fuse_boxes", "fuse_masks"]

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
"""The confidence rules ``ensemble_boxes`` knows (see its documentation)."""


@dataclass(frozen=True)
class FusedBoxes:
    """Result of `fuse_boxes`, best first.

    Attributes:
        boxes_xyxy: float64 ``(M, 4)`` xyxy pixels of the original image.
        scores: float64 ``(M,)`` fused confidences.
        labels: int64 ``(M,)`` category labels.
        members: for each fused box, the ``(list_index, box_index)`` pairs of the input boxes it
            was made of (each input box above ``skip_box_thr`` belongs to the fused box of its
            label it overlaps most).
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    members: tuple[tuple[tuple[int, int], ...], ...]

    def __len__(self) -> int:
        return len(self.scores)


def fuse_boxes(
    boxes_list: Sequence[np.ndarray],
    scores_list: Sequence[np.ndarray],
    size_hw: tuple[int, int],
    *,
    labels_list: Sequence[np.ndarray] | None = None,
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.05,
    conf_type: str = "avg",
) -> FusedBoxes:
    """Weighted Boxes Fusion of several box lists (one per view or model) on one image.

    Args:
        boxes_list: per list, float ``(N_i, 4)`` xyxy pixels of the original image (``N_i`` may be 0).
        scores_list: per list, ``(N_i,)`` confidences in [0, 1].
        size_hw: ``(H, W)`` of the original image, used to normalise to [0, 1].
        labels_list: per list, ``(N_i,)`` integer labels; all 1 by default.
        weights: one weight per list; equal by default.
        iou_thr: boxes overlapping more than this (same label) are fused.
        skip_box_thr: boxes scoring below this are ignored.
        conf_type: one of `CONF_TYPES`.

    Returns:
        `FusedBoxes`, sorted by score, best first.

    Example:
        >>> fused = fuse_boxes([np.array([[10., 10, 50, 40]]), np.zeros((0, 4))], [np.array([.8]), np.zeros(0)], (100, 100))
        >>> fused.scores.round(2).tolist()
        [0.4]
    """
    if conf_type not in CONF_TYPES:
        raise AfssValueError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    n = len(boxes_list)
    if len(scores_list) != n or (labels_list is not None and len(labels_list) != n):
        raise AfssValueError(f"boxes_list, scores_list and labels_list need the same length, got {n}, "
                         f"{len(scores_list)}, {None if labels_list is None else len(labels_list)}")
    if weights is not None and len(weights) != n:
        raise AfssValueError(f"need one weight per box list ({n}), got {len(weights)}")
    h, w = size_hw
    norm = np.array([w, h, w, h], dtype=np.float64)
    boxes_n, scores_n, labels_n = [], [], []
    for k in range(n):
        b = np.asarray(boxes_list[k], dtype=np.float64).reshape(-1, 4)
        s = np.asarray(scores_list[k], dtype=np.float64).reshape(-1)
        lab = np.ones(len(b), dtype=np.int64) if labels_list is None else np.asarray(labels_list[k]).reshape(-1)
        if len(s) != len(b) or len(lab) != len(b):
            raise AfssValueError(f"box list {k}: {len(b)} boxes, {len(s)} scores, {len(lab)} labels")
        boxes_n.append(np.clip(b / norm, 0.0, 1.0))
        scores_n.append(s)
        labels_n.append(lab)
    if n == 0 or sum(len(b) for b in boxes_n) == 0:
        return _empty()
    valid = [(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) for b in boxes_n]  # WBF warns on zero-area boxes
    fused, fscores, flabels = weighted_boxes_fusion(
        [b[v].tolist() for b, v in zip(boxes_n, valid)],
        [s[v].tolist() for s, v in zip(scores_n, valid)],
        [lab[v].tolist() for lab, v in zip(labels_n, valid)],
        weights=None if weights is None else list(weights),
        iou_thr=iou_thr, skip_box_thr=skip_box_thr, conf_type=conf_type,
    )
    fused = np.asarray(fused, dtype=np.float64).reshape(-1, 4)
    if len(fused) == 0:
        return _empty()
    flabels = np.asarray(flabels).astype(np.int64)
    members: list[list[tuple[int, int]]] = [[] for _ in range(len(fused))]
    for k, (b, s, lab, v) in enumerate(zip(boxes_n, scores_n, labels_n, valid)):
        for j in np.flatnonzero(v & (s >= skip_box_thr)):
            same = flabels == lab[j]
            if not same.any():
                continue
            ious = np.where(same, _iou(b[j], fused), -1.0)
            members[int(np.argmax(ious))].append((k, int(j)))
    return FusedBoxes(
        boxes_xyxy=fused * norm,
        scores=np.asarray(fscores, dtype=np.float64),
        labels=flabels,
        members=tuple(tuple(m) for m in members),
    )


def fuse_masks(masks: Sequence[np.ndarray], weights: Sequence[float] | None = None, *, threshold: float = 0.5) -> np.ndarray:
    """Weighted pixel vote: a pixel is foreground where its share of the total weight >= ``threshold``.

    Args:
        masks: bool ``(H, W)`` masks of the same size, in the original frame.
        weights: one non-negative weight per mask (e.g. each view's detector score); equal if
            ``None`` or all zero.
        threshold: fraction of the total weight a pixel needs (0.5: at least half the vote; with
            two equal views that is their union, use a value just above 0.5 for the intersection).

    Returns:
        bool ``(H, W)``.
    """
    if len(masks) == 0:
        raise AfssValueError("fuse_masks needs at least one mask")
    shapes = {np.shape(m) for m in masks}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise AfssValueError(f"fuse_masks needs (H, W) masks of one size, got {sorted(shapes)}")
    stack = np.stack([np.asarray(m, dtype=bool) for m in masks])
    wts = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(wts) != len(stack):
        raise AfssValueError(f"need one weight per mask ({len(stack)}), got {len(wts)}")
    if np.any(wts < 0):
        raise AfssValueError(f"mask weights must be >= 0, got {wts.tolist()}")
    if wts.sum() <= 0:
        wts = np.ones(len(stack))
    vote = np.tensordot(wts / wts.sum(), stack.astype(np.float64), axes=1)
    return vote >= threshold - 1e-12


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _empty() -> FusedBoxes:
    return FusedBoxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), ())
