"""Keep only the labels worth training on: minimum score, top-1 per image, minimum area.

Nothing is silently dropped: an image whose every instance is filtered out stays in the output with
zero instances and ``error`` saying why (``"filtered: score 0.41 < 0.6"``), and `FilterSummary`
counts images in, kept, and dropped by reason.

Example:
    >>> kept, summary = filter_labels(labels, min_score=0.6)  # doctest: +SKIP
    >>> summary.kept, dict(summary.dropped)  # doctest: +SKIP
    (163, {'low_score': 31, 'no_detection': 6})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from afss.errors import AfssError
from afss.types import ImageLabels, Instance, LabelSet

__all__ = ["DROP_REASONS", "FILTERED_PREFIX", "FilterSummary", "filter_labels", "instance_score"]

FILTERED_PREFIX = "filtered: "
DROP_REASONS = ("low_score", "small_area", "no_detection", "failed")
"""Why an image has no label after filtering: every instance below ``min_score``; every instance
below ``min_area_px``; nothing was found in the first place; the image could not be read or the
teacher failed on it (the earlier ``error`` is kept)."""


@dataclass(frozen=True)
class FilterSummary:
    """How many images survive filtering, and why the others did not.

    Attributes:
        images_in: images given.
        kept: images with at least one instance after filtering.
        dropped: ``{reason: images}`` for the reasons in `DROP_REASONS` (zero counts included).
        instances_in, instances_kept: instance counts before and after.
        min_score, top1, min_area_px, score_field: the settings used.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropped", MappingProxyType(dict(self.dropped)))

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.images_in if self.images_in else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"images_in": self.images_in, "kept": self.kept, "kept_fraction": round(self.kept_fraction, 4),
                "dropped": dict(self.dropped), "instances_in": self.instances_in,
                "instances_kept": self.instances_kept, "min_score": self.min_score, "top1": self.top1,
                "min_area_px": self.min_area_px, "score_field": self.score_field}

    def line(self) -> str:
        """One human line: ``kept 163/200 images (81.5%); dropped: low_score 31, no_detection 6``."""
        drops = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v) or "none"
        return f"kept {self.kept}/{self.images_in} images ({100 * self.kept_fraction:.1f}%); dropped: {drops}"


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


def filter_labels(
    labels: LabelSet,
    *,
    min_score: float = 0.6,
    top1: bool = True,
    min_area_px: float = 0.0,
    score_field: str = "score",
) -> tuple[LabelSet, FilterSummary]:
    """Filter instances and record, per image, why nothing is left.

    Per image: drop instances with ``score_field < min_score``, then those with area (mask pixels,
    or box area without a mask) below ``min_area_px``, then keep the best remaining one if ``top1``.

    Args:
        labels: refined (or raw) labels.
        min_score: keep instances scoring at least this (the paper: 0.6 on SAM 2's predicted IoU).
        top1: keep at most one instance per image, the highest-scoring.
        min_area_px: smallest instance area in pixels (0: no limit).
        score_field: ``"score"`` or a sub-score name such as ``"box_score"`` or ``"mask_score"``.

    Returns:
        The filtered labels (same images, same order; ``info["filter"]`` added) and the summary.
    """
    if not 0.0 <= min_score <= 1.0:
        raise AfssError(f"min_score must be in [0, 1], got {min_score}")
    if min_area_px < 0:
        raise AfssError(f"min_area_px must be >= 0, got {min_area_px}")
    out: list[ImageLabels] = []
    reasons: Counter[str] = Counter({r: 0 for r in DROP_REASONS})
    for im in labels.images:
        if not im.instances:
            reasons[_reason_of_empty(im.error)] += 1
            out.append(im)
            continue
        where = f"{im.file_name}"
        scored = [(instance_score(i, score_field, where=where), i) for i in im.instances]
        passing = [(s, i) for s, i in scored if s >= min_score]
        if not passing:
            best = max(s for s, _ in scored)
            reasons["low_score"] += 1
            out.append(im.replace(instances=(), error=f"{FILTERED_PREFIX}{score_field} {best:.3g} < {min_score:g}"))
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
        instances_kept=sum(len(im.instances) for im in out), min_score=min_score, top1=top1,
        min_area_px=min_area_px, score_field=score_field,
    )
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
