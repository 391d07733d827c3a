"""The report's plots, drawn with matplotlib's Agg canvas into PNG bytes (no display, no pyplot state).

One colour per stage everywhere on the page (`stage_style`): the teacher red, the refined labels
orange, the students in blues (darker for later rounds), the supervised upper bound grey and dashed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from afss.evaluate.curves import PrCurve

__all__ = ["TRAINING_PANELS", "png_bytes", "pr_figure", "score_histograms", "stage_style", "training_figure"]

TRAINING_PANELS = (("train/box_loss", "train box loss"), ("train/seg_loss", "train mask loss"),
                   ("val/seg_loss", "val mask loss"), ("metrics/mAP50-95(M)", "val mask mAP50-95"),
                   ("metrics/mAP50(M)", "val mask mAP50"))
"""``results.csv`` columns plotted per epoch (Ultralytics' segmentation names) and their titles."""

_STUDENT_BLUES = ("#1f77b4", "#17456b", "#5fa2d8", "#0b2a45", "#8cc3ee")


def stage_style(name: str) -> dict[str, object]:
    """matplotlib line keywords for stage ``name`` (``teacher``, ``refined``, ``student-round-K``,
    ``upper-bound``), the same in every plot."""
    if name == "teacher":
        return {"color": "#d62728"}
    if name == "refined":
        return {"color": "#ff7f0e"}
    if name == "upper-bound":
        return {"color": "#555555", "linestyle": "--"}
    if name.startswith("student-round-") and name.rsplit("-", 1)[1].isdigit():
        return {"color": _STUDENT_BLUES[(int(name.rsplit("-", 1)[1]) - 1) % len(_STUDENT_BLUES)]}
    return {"color": "#2ca02c"}


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG (no software tag, so the page holds no URL even inside an image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None})
    return buf.getvalue()


def pr_figure(curves: Mapping[str, PrCurve], titles: Mapping[str, str]) -> bytes:
    """Precision against recall per stage: at IoU 0.5 (left) and averaged over IoU 0.5:0.95 (right);
    the legend gives the area under each (AP50, AP)."""
    fig = _figure(10, 4)
    axes = fig.subplots(1, 2, sharey=True)
    iou_type = next(iter(curves.values())).iou_type
    for ax, (what, pick) in zip(axes, (("IoU 0.5", lambda c: c.at(0.5)), ("IoU 0.5:0.95 (mean)", PrCurve.mean))):
        for name, curve in curves.items():
            precision = pick(curve)
            area = float(np.nanmean(precision)) if np.isfinite(precision).any() else float("nan")
            ax.plot(curve.recall, precision, label=f"{titles.get(name, name)}: {100 * area:.1f}", linewidth=1.6,
                    **stage_style(name))
        ax.set(xlabel="recall", title=f"{iou_type} precision–recall, {what}", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8, title="AP50" if what == "IoU 0.5" else "AP", title_fontsize=8)
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    return png_bytes(fig)


def score_histograms(pairs: Mapping[str, np.ndarray], titles: Mapping[str, str], *,
                     good_iou: float = 0.5) -> bytes:
    """One histogram of top-1 scores per stage.

    Args:
        pairs: ``{stage: (N, 2) float array of (score, IoU)}``; IoU NaN where there is no ground truth,
            then the scores are drawn in one colour.
        titles: how to name each stage.
        good_iou: with ground truth, labels at or above this IoU are drawn green, the others red, so
            one sees whether the good labels score higher.
    """
    n = max(1, len(pairs))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _figure(3.6 * cols, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    bins = np.linspace(0, 1, 21)
    for ax, (name, data) in zip(axes, pairs.items()):
        scores, ious = data[:, 0], data[:, 1]
        known = np.isfinite(ious)
        if known.any():
            ax.hist([scores[known & (ious >= good_iou)], scores[known & (ious < good_iou)]], bins=bins, stacked=True,
                    color=["#2ca02c", "#d62728"], label=[f"IoU >= {good_iou:g}", f"IoU < {good_iou:g}"])
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.hist(scores, bins=bins, color=str(stage_style(name)["color"]))
        ax.set(title=f"{titles.get(name, name)} (n {len(scores)})", xlabel="top-1 score", xlim=(0, 1))
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    axes[0].set_ylabel("images")
    fig.tight_layout()
    return png_bytes(fig)


def training_figure(runs: Mapping[str, Mapping[str, Sequence[float]]], styles: Mapping[str, str]) -> bytes:
    """Losses and mask mAP per epoch, one line per training run.

    Args:
        runs: ``{label: {results.csv column: values per epoch}}`` (``epoch`` among the columns).
        styles: ``{label: stage name}`` for `stage_style`.
    """
    from matplotlib.ticker import MaxNLocator

    panels = [(col, title) for col, title in TRAINING_PANELS if any(col in r for r in runs.values())]
    cols = min(len(panels), 3) or 1
    rows = max(1, math.ceil(len(panels) / cols))
    fig = _figure(3.6 * cols, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    epochs = sorted({float(e) for r in runs.values() for e in r.get("epoch", ())})
    for ax, (col, title) in zip(axes, panels):
        for label, columns in runs.items():
            if col not in columns:
                continue
            y = np.asarray(columns[col], float)
            x = np.asarray(columns.get("epoch", range(1, len(y) + 1)), float)
            ax.plot(x, y, marker="o", markersize=3, linewidth=1.4, label=label, **stage_style(styles.get(label, "")))
        ax.set(title=title, xlabel="epoch")
        if 0 < len(epochs) <= 10:  # a short run: one tick per epoch, not 0.945 ... 1.055
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if panels:
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)
