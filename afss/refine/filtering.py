"""Keep only the labels worth training on: a score cut, top-1 per image, minimum area.

The cut is one of three (`cut_score` picks it from the scores themselves, no ground truth needed):

* ``min_score=0.6``: a fixed threshold (the paper's), right when the score is calibrated on this data;
* ``keep_top=0.5``: the best-scoring half of the images, whatever the scores' scale: needs only
  that the score *ranks* labels by quality, which carries over between datasets far better than
  a calibrated value does;
* ``min_score="auto"``: Otsu's two-class split of the images' best scores (the cut that best
  separates a high and a low group), bounded so that it keeps between `AUTO_KEEP` of the images
  (`TRAIN_AUTO_KEEP` where the kept labels are a student's training pool), or every labelled one
  where fewer are labelled.

Nothing is silently dropped: an image whose every instance is filtered out stays in the output with
zero instances and ``error`` saying why (``"filtered: score 0.41 < 0.6"``), and `FilterSummary`
counts images in, kept, and dropped by reason.

Example:
    >>> kept, summary = filter_labels(labels, min_score=0.6)  # doctest: +SKIP
    >>> summary.kept, dict(summary.dropped)  # doctest: +SKIP
    (163, {'low_score': 31, 'no_detection': 6})
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.io.coco import as_labelset
from afss.types import FrozenDict, ImageLabels, Instance, LabelSet

log = logging.getLogger(__name__)

__all__ = ["AUTO_KEEP", "DROP_REASONS", "FILTERED_PREFIX", "TRAIN_AUTO_KEEP", "FilterSummary", "bound_for",
           "check_auto_keep", "cut_score", "filter_labels", "instance_score", "is_auto_cut"]

FILTERED_PREFIX = "filtered: "
DROP_REASONS = ("low_score", "small_area", "no_detection", "failed")
"""Why an image has no label after filtering: every instance below the score cut; every instance
below ``min_area_px``; nothing was found in the first place; the image could not be read or the
teacher failed on it (the earlier ``error`` is kept)."""

AUTO_KEEP = (0.3, 0.5)
"""Share of the images (labelled or not, as the summary counts the kept share) the ``"auto"`` cut
keeps, at least and at most, where the labels are kept for their own sake (``afss refine``): a cut
keeps a useful share (>= 30 %), and at most half. The upper bound was chosen leave-one-source-out
from 50, 60, 70 and 80 %: 50 % for every held-out source, and the cut then gained >= 10 AP on 13 of 20 sources, all where any cut of the confidence
can (80 %: 10; docs/label.md); 12 since the bounds count all the images and the most rounds down
(``soho`` 0.1 AP short). ``RefineConfig.auto_keep`` / ``--auto-keep`` sets another."""

TRAIN_AUTO_KEEP = (0.3, 0.8)
"""The same bound where the kept labels are a student's training pool (``afss distill``, ``afss
run``): the student needs images as much as clean ones. With 50 % its students came out slightly
worse on two render settings no choice saw and on SPARK-2021 (docs/label.md), so 80 % stays there."""


def check_auto_keep(bound: Sequence[float], what: str = "auto_keep", *, auto_cut: bool = True,
                    needs: str = "min_score 'auto'", given: str = "these cuts",
                    default: tuple[float, float] = AUTO_KEEP) -> tuple[float, float]:
    """``(least, most)`` shares of the images the ``auto`` cut keeps, as floats with
    ``0 < least <= most <= 1``; else `AfssError` naming ``what``. A bound other than the ``default``
    where no cut is ``auto`` (``auto_cut=False``) is refused too: it would change nothing
    (``needs``: the settings that would make one ``auto``; ``given``: the cuts given instead)."""
    try:
        if isinstance(bound, str | bytes) or len(bound) != 2:
            raise TypeError
        lo, hi = (float(v) for v in bound)
    except (TypeError, ValueError):
        raise AfssError(f"{what}: expected two shares, the least and the most kept, like 0.3,0.8, "
                        f"got {bound!r}") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise AfssError(f"{what}: expected 0 < least <= most <= 1, like 0.3,0.8, got {lo:g},{hi:g}")
    if (lo, hi) != tuple(default) and not auto_cut:
        raise AfssError(f"{what} bounds only an auto cut ({needs}); with {given} it would change nothing")
    return lo, hi


def is_auto_cut(min_score: float | str | None, keep_top: float | None = None) -> bool:
    """Whether these settings cut with ``auto`` (the only cut ``auto_keep`` bounds)."""
    return keep_top is None and min_score == "auto"


def bound_for(auto_keep: Sequence[float], min_score: float | str | None,
              keep_top: float | None = None) -> tuple[float, float]:
    """The ``auto_keep`` a `RefineConfig` with this cut takes: ``auto_keep`` where the cut is ``auto``,
    else `AUTO_KEEP` (no request). For callers that hold one bound for several cuts, some fixed: a
    run's or a distillation's training-pool bound (`TRAIN_AUTO_KEEP`) means nothing to a 0.6 cut."""
    return (float(auto_keep[0]), float(auto_keep[1])) if is_auto_cut(min_score, keep_top) else AUTO_KEEP


@dataclass(frozen=True)
class FilterSummary:
    """How many images survive filtering, and why the others did not.

    Attributes:
        images_in: images given.
        kept: images with at least one instance after filtering.
        dropped: ``{reason: images}`` for the reasons in `DROP_REASONS` (zero counts included).
        instances_in, instances_kept: instance counts before and after.
        min_score: the score cut applied (chosen from the scores for ``"auto"`` and ``keep_top``).
        top1, min_area_px, score_field: the settings used.
        mode: ``"min_score"`` (a fixed cut), ``"keep_top"`` or ``"auto"``.
        keep_top: the fraction asked for in ``keep_top`` mode.
        auto_keep: in ``auto`` mode, the least and most share of the images it could keep.
    """

    images_in: int
    kept: int
    dropped: Mapping[str, int]
    instances_in: int
    instances_kept: int
    min_score: float
    top1: bool
    min_area_px: float
    score_field: str = "score"
    mode: str = "min_score"
    keep_top: float | None = None
    auto_keep: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropped", FrozenDict(self.dropped))
        if self.auto_keep is not None:  # a JSON list from a summary file, or a tuple
            object.__setattr__(self, "auto_keep", tuple(float(v) for v in self.auto_keep))

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.images_in if self.images_in else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"images_in": self.images_in, "kept": self.kept, "kept_fraction": round(self.kept_fraction, 4),
                "dropped": dict(self.dropped), "instances_in": self.instances_in,
                "instances_kept": self.instances_kept,
                "min_score": self.min_score if math.isfinite(self.min_score) else None, "top1": self.top1,
                "min_area_px": self.min_area_px, "score_field": self.score_field, "mode": self.mode,
                "keep_top": self.keep_top, "auto_keep": None if self.auto_keep is None else list(self.auto_keep)}

    def line(self) -> str:
        """One human line: ``kept 163/200 images (81.5%); dropped: low_score 31, no_detection 6``;
        a cut chosen from the scores is named: ``... (81.5%) at score >= 0.412 (keep top 50%); ...``
        or ``... (auto, keeping 30-50%); ...``."""
        drops = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v) or "none"
        # the bound is always named: refine's and a training pool's defaults differ
        bound = "" if self.auto_keep is None else \
            f", keeping {100 * self.auto_keep[0]:g}-{100 * self.auto_keep[1]:g}%"
        if self.auto_keep is not None and not self.dropped.get("low_score") and \
                self.kept < _least_kept(self.auto_keep[0], self.images_in):
            bound += ": every labelled image, fewer than that"  # the teacher found too little to choose from
        elif self.auto_keep is not None and self.images_in and self.kept > self.auto_keep[1] * self.images_in + 1e-9:
            # more than the most share: a handful of images (1 of 1 is the least share rounded up), or ties
            bound += (f": {self.kept} of {self.images_in}, the least share rounded up"
                      if self.kept == _least_kept(self.auto_keep[0], self.images_in) else ": ties at the cut kept too")
        how = {"min_score": "", "auto": f" (auto{bound})", "keep_top": f" (keep top {100 * (self.keep_top or 0):g}%)"}
        cut = "" if self.mode == "min_score" else f" at {self.score_field} >= {self.min_score:.3g}{how[self.mode]}"
        if self.mode != "min_score" and not math.isfinite(self.min_score):  # no labelled image to choose a cut from
            cut = f" ({'auto' if self.mode == 'auto' else 'keep top'}: no labelled image to cut)"
        return f"kept {self.kept}/{self.images_in} images ({100 * self.kept_fraction:.1f}%){cut}; dropped: {drops}"


def instance_score(inst: Instance, score_field: str = "score", *, where: str = "") -> float:
    """``inst.score`` for ``"score"``, else the named sub-score ``inst.scores[score_field]``.

    Raises:
        AfssError: the instance has no such sub-score.
    """
    if score_field == "score":
        return inst.score
    if score_field not in inst.scores:
        have = ", ".join(sorted(inst.scores)) or "none"
        raise AfssError(f"{where or 'instance'}: no sub-score {score_field!r} to filter on (has: score, {have})")
    return float(inst.scores[score_field])


def cut_score(scores: Sequence[float], *, images: int | None = None, keep_top: float | None = None,
              auto: bool = False, auto_keep: tuple[float, float] = AUTO_KEEP) -> float:
    """A score cut chosen from the scores alone (no ground truth).

    Args:
        scores: the best score of every labelled image.
        images: all images, labelled or not (default ``len(scores)``); ``keep_top`` is a share of these.
        keep_top: keep this fraction (0, 1] of the images: the cut is the score of the last one kept
            (ties at the cut are kept too).
        auto: Otsu's split: the cut maximising the between-group variance of the scores, moved
            into the ``auto_keep`` range of kept images (every labelled one where they are fewer
            than its least share).
        auto_keep: the least and most share of the images ``auto`` keeps (`AUTO_KEEP`).

    Returns:
        The cut (labels scoring >= it are kept); ``inf`` when nothing is to be kept.
    """
    s = np.sort(np.asarray(scores, dtype=float))[::-1]  # best first
    if keep_top is not None:
        if not 0.0 < keep_top <= 1.0:
            raise AfssError(f"keep_top must be in (0, 1], got {keep_top}")
        k = min(len(s), math.ceil(keep_top * (len(s) if images is None else images) - 1e-9))
        return float(s[k - 1]) if k >= 1 else math.inf
    if not auto:
        raise ValueError("cut_score needs keep_top or auto")
    if len(s) < 2:
        return float(s[-1]) if len(s) else math.inf
    # Otsu on the sorted scores: keeping the best k, between-group variance w0 w1 (m0 - m1)^2
    k = np.arange(1, len(s))
    csum = np.cumsum(s)
    m_top, m_rest = csum[:-1] / k, (csum[-1] - csum[:-1]) / (len(s) - k)
    between = k * (len(s) - k) * (m_top - m_rest) ** 2
    between[s[k - 1] == s[k]] = -1.0  # a cut must fall between two different scores
    # the bounds are shares of all the images, like keep_top's and the kept share the summary prints:
    # where few images are labelled, "keep at least 30 %" keeps every labelled one
    n = len(s) if images is None else max(images, len(s))
    lo = min(len(s), _least_kept(auto_keep[0], n))
    hi = min(len(s), max(lo, math.floor(auto_keep[1] * n + 1e-9)))  # at most the most share, rounded down
    if lo >= len(s):
        return float(s[-1])
    allowed = np.where((k >= lo) & (k <= hi), between, -1.0)
    best = int(np.argmax(allowed))
    # no split between two different scores inside the bounds (ties throughout): keep the most
    # allowed, ties at the cut included
    kept = k[best] if allowed[best] >= 0 else min(hi, len(s))
    return float(s[kept - 1])


def _least_kept(share: float, images: int) -> int:
    """The fewest images an ``auto`` cut keeps out of ``images``: the least share, rounded up."""
    return max(1, math.ceil(share * images - 1e-9))


def filter_labels(
    labels: LabelSet | str | os.PathLike,
    *,
    min_score: float | str = 0.6,
    keep_top: float | None = None,
    top1: bool = True,
    min_area_px: float = 0.0,
    score_field: str = "score",
    auto_keep: tuple[float, float] = AUTO_KEEP,
) -> tuple[LabelSet, FilterSummary]:
    """Filter instances and record, per image, why nothing is left.

    Per image: drop instances with ``score_field`` below the cut, then those with area (mask
    pixels, or box area without a mask) below ``min_area_px``, then keep the best remaining one if
    ``top1``.

    Args:
        labels: refined (or raw) labels, or the path of their COCO JSON file.
        min_score: keep instances scoring at least this (the paper: 0.6 on SAM 2's predicted IoU),
            or ``"auto"``: a cut chosen from the score distribution (`cut_score`).
        keep_top: instead of ``min_score``, keep the best-scoring fraction (0, 1] of the images.
        top1: keep at most one instance per image, the highest-scoring.
        min_area_px: smallest instance area in pixels (0: no limit).
        score_field: ``"score"`` or a sub-score name such as ``"box_score"`` or ``"mask_score"``.
        auto_keep: the least and most share of the images the ``"auto"`` cut keeps.

    Returns:
        The filtered labels (same images, same order; ``info["filter"]`` added) and the summary,
        whose ``min_score`` is the cut applied.
    """
    labels = as_labelset(labels, "filter_labels")
    mode = "keep_top" if keep_top is not None else "auto" if min_score == "auto" else "min_score"
    if mode == "min_score" and (isinstance(min_score, str) or not 0.0 <= min_score <= 1.0):
        raise AfssError(f"min_score must be in [0, 1] or 'auto', got {min_score!r}")
    if min_area_px < 0:
        raise AfssError(f"min_area_px must be >= 0, got {min_area_px}")
    auto_keep = check_auto_keep(auto_keep)
    scored_images = [[(instance_score(i, score_field, where=im.file_name), i) for i in im.instances]
                     for im in labels.images]
    if mode != "min_score":
        best = [max(s for s, _ in sc) for sc in scored_images if sc]
        min_score = cut_score(best, images=len(labels.images), keep_top=keep_top, auto=mode == "auto",
                              auto_keep=auto_keep)
    out: list[ImageLabels] = []
    reasons: Counter[str] = Counter({r: 0 for r in DROP_REASONS})
    for im, scored in zip(labels.images, scored_images, strict=True):
        if not im.instances:
            reasons[_reason_of_empty(im.error)] += 1
            out.append(im)
            continue
        passing = [(s, i) for s, i in scored if s >= min_score]
        if not passing:
            best_s = max(s for s, _ in scored)
            reasons["low_score"] += 1
            out.append(im.replace(instances=(), error=f"{FILTERED_PREFIX}{score_field} {best_s:.3g} < {min_score:.3g}"))
            continue
        big = [(s, i) for s, i in passing if i.area >= min_area_px]
        if not big:
            largest = max(i.area for _, i in passing)
            reasons["small_area"] += 1
            out.append(im.replace(instances=(), error=f"{FILTERED_PREFIX}area {largest:.0f} px < {min_area_px:g} px"))
            continue
        if top1:
            big = [max(big, key=lambda si: si[0])]
        out.append(im.replace(instances=tuple(i for _, i in big)))
    kept = sum(1 for im in out if im.instances)
    summary = FilterSummary(
        images_in=len(labels), kept=kept, dropped=dict(reasons), instances_in=labels.num_instances,
        instances_kept=sum(len(im.instances) for im in out), min_score=float(min_score), top1=top1,
        min_area_px=min_area_px, score_field=score_field, mode=mode, keep_top=keep_top,
        auto_keep=auto_keep if mode == "auto" else None,
    )
    labelled = sum(1 for sc in scored_images if sc)
    if mode == "min_score" and labelled and kept < AUTO_KEEP[0] * labelled:
        # seen on third-party frames: a score calibrated elsewhere sits lower, and 0.6 left a pool
        # too small to train a student on
        log.warning("%s >= %g kept %d of %d labelled images (%.0f%%): a fixed cut trusts the score's "
                    "value on this data; --min-score auto or --keep-top cut by its ranking instead",
                    score_field, min_score, kept, labelled, 100 * kept / labelled)
    info = dict(labels.info)
    info["filter"] = summary.to_dict()
    return labels.replace(images=tuple(out), info=info), summary


def _reason_of_empty(error: str | None) -> str:
    """Drop reason of an image that already has no instance (re-filtering keeps earlier reasons)."""
    if error is None or error.startswith("no detection"):
        return "no_detection"
    if error.startswith(FILTERED_PREFIX):
        return "small_area" if error.startswith(f"{FILTERED_PREFIX}area") else "low_score"
    return "failed"
