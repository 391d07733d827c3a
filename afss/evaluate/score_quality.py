"""Does the confidence track label quality? Score against IoU, image by image, and a picture of it.

For every ground-truth image with a predicted instance, the top-1 instance's ``score`` is paired
with its IoU with the ground truth (mask IoU where both sides have masks, else box IoU; see
`afss.evaluate.preview.top1_iou`). `ScoreQuality` summarises the pairs: Spearman's rank correlation
(does a higher score mean a better label?), and the mean IoU of the better- and worse-scoring
halves. `score_plot` draws them, one colour per prediction set. This is what a confidence filter
needs: a score that *ranks* labels, on the data at hand.

Example:
    >>> q = score_quality(read_coco("gt.json"), read_coco("labels.json"))  # doctest: +SKIP
    >>> q.spearman, q.mean_iou_top_half, q.mean_iou_bottom_half  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from afss.evaluate.pairing import normalise_name
from afss.evaluate.preview import top1_iou
from afss.io.coco import as_labelset
from afss.io.images import save_image
from afss.types import LabelSet

__all__ = ["ScoreQuality", "score_iou_pairs", "score_plot", "score_quality", "spearman", "write_score_plot"]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two 1-D arrays (ties get their average rank); NaN under 3 points."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def score_iou_pairs(gt: LabelSet, pred: LabelSet) -> np.ndarray:
    """``(N, 2)`` float array of ``(score, IoU)`` of the top-1 prediction, for the ground-truth
    images (without an ``error``, with at least one instance) that ``pred`` labels, matched by name."""
    by_name = {normalise_name(im.file_name): im for im in pred.images}
    rows = []
    for g in gt.images:
        p = by_name.get(normalise_name(g.file_name))
        if g.error is not None or not g.instances or p is None or not p.instances:
            continue
        best = max(p.instances, key=lambda i: i.score)
        iou = top1_iou(g, best)
        if iou is not None:
            rows.append((best.score, iou))
    return np.array(rows, dtype=float).reshape(-1, 2)


@dataclass(frozen=True)
class ScoreQuality:
    """How well a score ranks labels: ``spearman`` (rank correlation of score and IoU), the mean
    IoU of the better- and worse-scoring halves, over ``n`` labelled images."""

    n: int
    spearman: float
    mean_iou_top_half: float
    mean_iou_bottom_half: float

    def line(self) -> str:
        if self.n == 0:
            return "no image both labelled here and in the ground truth: no score to rank"
        rho = (f"{self.spearman:.2f}" if math.isfinite(self.spearman)
               else "undefined (it needs 3 images whose scores and IoUs both vary)")
        if self.n < 2:
            return f"Spearman(score, IoU) {rho} over 1 image; its IoU {self.mean_iou_bottom_half:.2f}"
        return (f"Spearman(score, IoU) {rho} over {self.n} images; mean IoU {self.mean_iou_top_half:.2f} "
                f"for the better-scoring half, {self.mean_iou_bottom_half:.2f} for the rest")


def score_quality(gt: LabelSet | str | os.PathLike, pred: LabelSet | str | os.PathLike) -> ScoreQuality:
    """How well ``pred``'s scores rank its top-1 labels by their IoU with ``gt`` (LabelSets, or the paths
    of their COCO JSON files)."""
    pairs = score_iou_pairs(as_labelset(gt, "gt"), as_labelset(pred, "pred"))
    order = np.argsort(-pairs[:, 0], kind="stable")
    half = len(order) // 2
    top, rest = pairs[order[:half], 1], pairs[order[half:], 1]
    return ScoreQuality(n=len(pairs), spearman=spearman(pairs[:, 0], pairs[:, 1]),
                        mean_iou_top_half=float(top.mean()) if len(top) else float("nan"),
                        mean_iou_bottom_half=float(rest.mean()) if len(rest) else float("nan"))


def score_plot(gt: LabelSet, preds: Mapping[str, LabelSet], *, size_px: int = 640) -> np.ndarray:
    """Scatter of score (x) against IoU with the ground truth (y), one colour per prediction set,
    Spearman's rho in the legend; RGB uint8 ``(size_px, size_px, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px / 100, size_px / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ("tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:green")
    for (name, pred), color in zip(preds.items(), colors):
        pairs = score_iou_pairs(gt, pred)
        q = score_quality(gt, pred)
        ax.scatter(pairs[:, 0], pairs[:, 1], s=8, alpha=0.5, color=color,
                   label=f"{name}: rho {q.spearman:.2f}, n {q.n}")
    ax.set(xlabel="score (top-1 label)", ylabel="IoU with ground truth", xlim=(0, 1), ylim=(0, 1),
           title="does the confidence track label quality?")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_score_plot(path: str | os.PathLike, gt: LabelSet, preds: Mapping[str, LabelSet], **options) -> str:
    """`score_plot` saved as an image (format from the extension); returns the path."""
    save_image(path, score_plot(gt, preds, **options))
    return os.fspath(path)
