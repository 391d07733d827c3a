"""`RefineConfig`: the options of the refine stage, defaults faithful to the paper's reference code."""

from __future__ import annotations

from dataclasses import dataclass

from afss.errors import AfssError, unknown_choice
from afss.refine.filtering import AUTO_KEEP, check_auto_keep, is_auto_cut
from afss.refine.fusion import CONF_TYPES
from afss.teachers.base import Teacher

__all__ = ["MASK_FUSIONS", "SCORE_SOURCES", "RefineConfig"]

MASK_FUSIONS = ("segmenter", "vote")
SCORE_SOURCES = ("mask", "box", "mean")


@dataclass(frozen=True)
class RefineConfig:
    """Options of the refine stage; the defaults reproduce the paper's reference code.

    Attributes:
        iou_thr: WBF IoU above which boxes of different views are fused.
        skip_box_thr: WBF ignores boxes scoring below this (where no view has one above it, the
            identity view's label is passed on unchanged, for the filter to cut by score).
        conf_type: WBF confidence rule, one of ``avg``, ``max``, ``box_and_model_avg``,
            ``absent_model_aware_avg``.
        count_empty_views: pass views that found nothing to WBF as empty lists, so that a box found
            in one view of two gets half its score even when the other view found nothing. The
            reference code leaves such views out (``False``).
        per_view_top_k: boxes kept from each view before fusion (reference: 1; ``None``: all).
        box_score_field: the detector sub-score fused by WBF (``instance.scores[...]``); an instance
            without it contributes its ``score``.
        mask_fusion: ``"segmenter"`` (re-prompt the teacher's segmenter with the fused box on the
            original image) or ``"vote"`` (weighted pixel vote of the views' masks); ``None``: the
            teacher's own choice (`Teacher.refine_mask_fusion`: segmenter where it has a promptable
            one, vote for the photometric and salient teachers, whose re-segmentation of a box measured worse).
        vote_threshold: share of the weight a pixel needs in the vote.
        score_source: what a refined label's ``score`` is: ``"mask"`` (the segmenter's quality
            estimate, SAM 2's predicted IoU; the reference), ``"box"`` (the fused detector score,
            which reflects agreement between views) or ``"mean"`` (their geometric mean). Both
            are always kept in ``scores``. Without a segmenter (vote) there is no mask score and
            ``score`` is the fused detector score.
        min_score: filter threshold on ``score_field`` (paper: 0.6; 0 keeps everything), or
            ``"auto"``: a cut chosen from the scores themselves (Otsu's split, keeping 30-50 % of
            the images; see `afss.refine.filtering.cut_score`).
        auto_keep: the least and most share of the images the ``"auto"`` cut keeps
            (default `afss.refine.filtering.AUTO_KEEP`, 30-50 %); another bound with another cut is
            refused, since it would change nothing.
        keep_top: instead of ``min_score``, keep the best-scoring fraction (0, 1] of the images:
            needs no ground truth and no calibrated score, only one that ranks labels by quality.
        top1: at most one label per image (only the best fused box is segmented).
        min_area_px: smallest mask area kept (0: no limit).
        score_field: what the filter reads: ``"score"`` or a sub-score such as ``"box_score"``.
        prompt: the text prompt given to the teacher; ``None``: the prompt recorded in the labels
            being refined (so every view is asked what the identity view was), else ``"spacecraft"``.
    """

    iou_thr: float = 0.55
    skip_box_thr: float = 0.05
    conf_type: str = "avg"
    count_empty_views: bool = False
    per_view_top_k: int | None = 1
    box_score_field: str = "box_score"
    mask_fusion: str | None = None
    vote_threshold: float = 0.5
    score_source: str = "mask"
    min_score: float | str = 0.6
    keep_top: float | None = None
    auto_keep: tuple[float, float] = AUTO_KEEP
    top1: bool = True
    min_area_px: float = 0.0
    score_field: str = "score"
    prompt: str | None = None

    def __post_init__(self) -> None:
        if self.conf_type not in CONF_TYPES:
            raise unknown_choice("WBF conf_type", self.conf_type, CONF_TYPES)
        if self.mask_fusion is not None and self.mask_fusion not in MASK_FUSIONS:
            raise unknown_choice("mask_fusion", self.mask_fusion, MASK_FUSIONS)
        if self.score_source not in SCORE_SOURCES:
            raise unknown_choice("score_source", self.score_source, SCORE_SOURCES)
        for name in ("iou_thr", "skip_box_thr"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AfssError(f"refine: {name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.vote_threshold <= 1.0:  # 0: every pixel of the image would win the vote
            raise AfssError(f"refine: vote_threshold must be in (0, 1], got {self.vote_threshold}")
        if self.min_score != "auto" and (isinstance(self.min_score, str) or not 0.0 <= self.min_score <= 1.0):
            raise AfssError(f"refine: min_score must be in [0, 1] or 'auto', got {self.min_score!r}")
        if self.keep_top is not None and not 0.0 < self.keep_top <= 1.0:
            raise AfssError(f"refine: keep_top must be a fraction in (0, 1], e.g. 0.5, got {self.keep_top!r}")
        given = "keep_top" if self.keep_top is not None else f"min_score {self.min_score!r}"
        object.__setattr__(self, "auto_keep", check_auto_keep(
            self.auto_keep, "refine: auto_keep", auto_cut=is_auto_cut(self.min_score, self.keep_top), given=given))
        if self.per_view_top_k is not None and self.per_view_top_k < 1:
            raise AfssError(f"refine: per_view_top_k must be >= 1, got {self.per_view_top_k}")
        if self.min_area_px < 0:
            raise AfssError(f"refine: min_area_px must be >= 0, got {self.min_area_px}")

    @property
    def text_prompt(self) -> str:
        """The prompt the teacher is given."""
        return self.prompt or "spacecraft"

    def resolved_mask_fusion(self, teacher: Teacher) -> str:
        """The mask fusion for ``teacher``, checked with ``score_field`` against it before any image."""
        fusion = teacher.refine_mask_fusion if self.mask_fusion is None else self.mask_fusion
        if fusion == "segmenter" and not teacher.can_segment_boxes:
            raise AfssError(f"refine: mask_fusion 'segmenter' needs a teacher with a promptable segmenter; "
                            f"{teacher.name!r} has none (use 'vote')")
        fields = score_fields(fusion)
        if self.score_field not in fields:
            why = " (mask_score: with mask_fusion 'segmenter')" if self.score_field == "mask_score" else ""
            raise AfssError(f"refine: score_field must be one of {', '.join(fields)} for {teacher.name!r} with mask "
                            f"fusion {fusion!r}{why}, got {self.score_field!r}")
        return fusion


def score_fields(mask_fusion: str) -> tuple[str, ...]:
    """The scores a refined instance carries that a cut can read: its score, the fused box's, and
    the segmenter's own where it re-segments (the views' counts are not scores)."""
    return ("score", "box_score", "mask_score") if mask_fusion == "segmenter" else ("score", "box_score")
