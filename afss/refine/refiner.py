"""The refine stage: TTA views -> teacher -> map back -> Weighted Boxes Fusion -> mask -> filter.

Per image, as the paper's reference code does by default:

1. every view (`afss.refine.tta`) of the image goes through the teacher; the top-1 box of each view
   (``per_view_top_k``) is mapped back to the original frame exactly;
2. WBF (`afss.refine.fusion`) fuses the views that found something (``conf_type="avg"``, equal
   weights: a box found in one view of two gets half its score);
3. the best fused box prompts the teacher's segmenter on the *original* image
   (``mask_fusion="segmenter"``, the default where the teacher has one); ``score`` becomes the
   segmenter's own quality estimate (SAM 2's predicted IoU), ``scores["box_score"]`` the fused
   detector score. Without a segmenter (``"vote"``) the views' masks are fused by a pixel vote
   weighted by their detector scores and ``score`` is the fused detector score;
4. `afss.refine.filtering` keeps labels with ``score >= min_score`` (0.6), top-1 per image.

With ``labels`` given (e.g. the label stage's output), the identity view's detections are taken
from it instead of running the teacher again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.io.atomic import write_json_atomic
from afss.io.coco import write_coco
from afss.io.images import ImageReadError, load_image
from afss.label import NO_DETECTION, teacher_provenance
from afss.refine.filtering import FilterSummary, filter_labels
from afss.refine.fusion import CONF_TYPES, fuse_boxes, fuse_masks
from afss.refine.tta import Identity, View, parse_views
from afss.teachers.base import Teacher
from afss.types import ImageLabels, Instance, LabelSet

__all__ = ["NO_DETECTION", "RefineConfig", "RefineSummary", "refine_image", "refine_labels"]

log = logging.getLogger(__name__)

MASK_FUSIONS = ("segmenter", "vote")
SCORE_SOURCES = ("mask", "box", "mean")


@dataclass(frozen=True)
class RefineConfig:
    """Options of the refine stage; the defaults reproduce the paper's reference code.

    Attributes:
        iou_thr: WBF IoU above which boxes of different views are fused.
        skip_box_thr: WBF ignores boxes scoring below this.
        conf_type: WBF confidence rule, one of ``avg``, ``max``, ``box_and_model_avg``,
            ``absent_model_aware_avg``.
        count_empty_views: pass views that found nothing to WBF as empty lists, so that a box found
            in one view of two gets half its score even when the other view found nothing. The
            reference code leaves such views out (``False``).
        per_view_top_k: boxes kept from each view before fusion (reference: 1; ``None``: all).
        box_score_field: the detector sub-score fused by WBF (``instance.scores[...]``); an instance
            without it contributes its ``score``.
        mask_fusion: ``"segmenter"`` (re-prompt the teacher's segmenter with the fused box on the
            original image) or ``"vote"`` (weighted pixel vote of the views' masks); ``None``:
            segmenter when the teacher has one, else vote.
        vote_threshold: share of the weight a pixel needs in the vote.
        score_source: what a refined label's ``score`` is: ``"mask"`` (the segmenter's quality
            estimate, SAM 2's predicted IoU; the reference), ``"box"`` (the fused detector score,
            which reflects agreement between views) or ``"mean"`` (their geometric mean). Both
            are always kept in ``scores``. Without a segmenter (vote) there is no mask score and
            ``score`` is the fused detector score.
        min_score: filter threshold on ``score_field`` (paper: 0.6; 0 keeps everything).
        top1: at most one label per image (only the best fused box is segmented).
        min_area_px: smallest mask area kept (0: no limit).
        score_field: what the filter reads: ``"score"`` or a sub-score such as ``"box_score"``.
        prompt: the text prompt given to the teacher.
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
    min_score: float = 0.6
    top1: bool = True
    min_area_px: float = 0.0
    score_field: str = "score"
    prompt: str = "spacecraft"

    def __post_init__(self) -> None:
        if self.conf_type not in CONF_TYPES:
            raise unknown_choice("WBF conf_type", self.conf_type, CONF_TYPES)
        if self.mask_fusion is not None and self.mask_fusion not in MASK_FUSIONS:
            raise unknown_choice("mask_fusion", self.mask_fusion, MASK_FUSIONS)
        if self.score_source not in SCORE_SOURCES:
            raise unknown_choice("score_source", self.score_source, SCORE_SOURCES)
        for name in ("iou_thr", "skip_box_thr", "vote_threshold", "min_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AfssError(f"refine: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.per_view_top_k is not None and self.per_view_top_k < 1:
            raise AfssError(f"refine: per_view_top_k must be >= 1, got {self.per_view_top_k}")
        if self.min_area_px < 0:
            raise AfssError(f"refine: min_area_px must be >= 0, got {self.min_area_px}")

    def resolved_mask_fusion(self, teacher: Teacher) -> str:
        if self.mask_fusion is None:
            return "segmenter" if teacher.can_segment_boxes else "vote"
        if self.mask_fusion == "segmenter" and not teacher.can_segment_boxes:
            raise AfssError(f"refine: mask_fusion 'segmenter' needs a teacher with a promptable segmenter; "
                            f"{teacher.name!r} has none (use 'vote')")
        return self.mask_fusion


@dataclass(frozen=True)
class RefineSummary:
    """What refinement did.

    Attributes:
        images: images in.
        fused: images with at least one fused label before filtering.
        no_detection: images where no view found anything.
        failed: unreadable images or teacher errors.
        all_views_agree: images whose best fused box was found by every view.
        filter: the filtering summary (kept, dropped by reason).
        views: the view names.
        mask_fusion: ``"segmenter"`` or ``"vote"``.
        seconds: wall-clock time of the stage.
    """

    images: int
    fused: int
    no_detection: int
    failed: int
    all_views_agree: int
    filter: FilterSummary
    views: tuple[str, ...]
    mask_fusion: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "fused": self.fused, "no_detection": self.no_detection,
                "failed": self.failed, "all_views_agree": self.all_views_agree, "views": list(self.views),
                "mask_fusion": self.mask_fusion, "seconds": round(self.seconds, 3), "filter": self.filter.to_dict()}

    def line(self) -> str:
        return (f"{self.images} images, {self.fused} fused ({self.all_views_agree} with all {len(self.views)} "
                f"views agreeing), {self.no_detection} no detection, {self.failed} failed; {self.filter.line()}")


def refine_labels(
    teacher: Teacher,
    images: LabelSet,
    *,
    views: str | Sequence[str] | Sequence[View] = "identity,vflip",
    labels: LabelSet | None = None,
    config: RefineConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[LabelSet, RefineSummary]:
    """Refine the teacher's labels of ``images`` by TTA + WBF + re-segmentation, then filter.

    Args:
        teacher: the teacher (its segmenter re-segments fused boxes where it has one).
        images: the images (``file_name`` relative to ``images.image_root``); ids, names and
            ``meta`` are kept. A label set read from COCO works as is.
        views: TTA views, a spec string like ``"identity,vflip"`` or `View` objects.
        labels: existing teacher labels (matched by ``file_name``) used as the identity view.
        config: `RefineConfig`; defaults follow the paper.
        out: COCO JSON to write (atomically), with ``<out stem>.summary.json`` beside it; also
            enables the progress journal (`afss.refine.journal`). ``None``: nothing is written.
        resume: continue from ``out``'s journal if there is one; ``False`` starts afresh.
        progress: called with the number of images just finished (1 per image; the images a
            resumed journal already holds are reported at the start).

    Returns:
        ``(refined, summary)``: every input image exactly once, in order; filtered-out images have
        zero instances and ``error`` saying why; provenance in ``info``.

    Example:
        >>> refined, summary = refine_labels(build_teacher("photometric"), read_coco("labels.json"),
        ...                                  views="identity,vflip", out="refined.json")  # doctest: +SKIP
        >>> summary.line()  # doctest: +SKIP
    """
    config = config or RefineConfig()
    views = parse_views(views)
    mask_fusion = config.resolved_mask_fusion(teacher)
    names = [im.file_name for im in images.images]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AfssError(f"input images: file_name {dup!r} appears more than once; file names must be unique")
    given = {im.file_name: im for im in labels.images} if labels is not None else {}
    journal = None
    if out is not None:
        from afss.refine.journal import RefineJournal

        journal = RefineJournal(out, _journal_header(teacher, views, config, mask_fusion, labels), resume=resume)
        if journal.done:
            log.info("resuming %s: %d of %d images already refined", out, len(journal.done), len(images))
            if progress is not None:
                progress(sum(1 for n in names if n in journal.done))
    done = dict(journal.done) if journal is not None else {}
    t0 = time.perf_counter()
    try:
        for im in images.images:
            if im.file_name in done:
                continue
            result = _refine_one(teacher, images, im, given.get(im.file_name), views, config, mask_fusion)
            done[im.file_name] = result
            if journal is not None:
                journal.append(result)
            _tick(progress)
    finally:
        if journal is not None:
            journal.close()
    refined = LabelSet(images=tuple(done[n] for n in names), categories=images.categories,
                       image_root=images.image_root)
    fused = sum(1 for im in refined.images if im.instances)
    no_det = sum(1 for im in refined.images if im.error == NO_DETECTION)
    agree = sum(1 for im in refined.images if im.instances and im.instances[0].scores.get("views_agreeing") == len(views))
    filtered, fsum = filter_labels(refined, min_score=config.min_score, top1=config.top1,
                                   min_area_px=config.min_area_px, score_field=config.score_field)
    seconds = time.perf_counter() - t0
    summary = RefineSummary(images=len(refined), fused=fused, no_detection=no_det, failed=len(refined) - fused - no_det,
                            all_views_agree=agree, filter=fsum, views=tuple(v.name for v in views),
                            mask_fusion=mask_fusion, seconds=seconds)
    result = filtered.replace(info=_provenance(teacher, views, config, mask_fusion, labels, summary))
    if out is not None:
        path = write_coco(result, out)
        write_json_atomic(summary_path(path), summary.to_dict(), indent=2)
        journal.remove()
    return result, summary


def summary_path(out: str | os.PathLike) -> Path:
    """``refined.json`` -> ``refined.summary.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.summary.json")


def _refine_one(teacher: Teacher, images: LabelSet, im: ImageLabels, prior: ImageLabels | None,
                views: Sequence[View], config: RefineConfig, mask_fusion: str) -> ImageLabels:
    """One image, never raising for a bad image or a teacher error: the reason goes into ``error``."""
    try:
        rgb = load_image(images.image_path(im)).rgb
    except ImageReadError as e:
        return im.replace(instances=(), error=f"unreadable: {e}")
    h, w = rgb.shape[:2]
    if prior is not None and prior.error is not None and not prior.error.startswith(NO_DETECTION):
        prior = None  # the label stage failed on it: ask the teacher again
    if prior is not None and prior.height and prior.size_hw != (h, w):
        raise AfssError(f"{im.file_name}: the given labels are for a {prior.height}x{prior.width} image, "
                        f"the file is {h}x{w} (H x W)")
    try:
        instances = refine_image(teacher, rgb, views, config=config, mask_fusion=mask_fusion,
                                 identity_instances=None if prior is None else prior.instances)
    except Exception as e:  # one bad image must not sink the run; recorded in error
        log.warning("%s: teacher failed: %s: %s", im.file_name, type(e).__name__, e,
                    exc_info=log.isEnabledFor(logging.DEBUG))
        return im.replace(height=h, width=w, instances=(), error=f"teacher failed: {type(e).__name__}: {e}")
    return im.replace(height=h, width=w, instances=tuple(instances), error=None if instances else NO_DETECTION)


def refine_image(
    teacher: Teacher,
    rgb: np.ndarray,
    views: Sequence[View],
    *,
    config: RefineConfig,
    mask_fusion: str,
    identity_instances: Sequence[Instance] | None = None,
) -> list[Instance]:
    """Refined instances of one image, best first (one if ``config.top1``), before filtering.

    Args:
        rgb: ``(H, W, 3)`` uint8 original image.
        views: the TTA views.
        mask_fusion: ``"segmenter"`` or ``"vote"`` (see `RefineConfig`).
        identity_instances: detections to use for the identity view instead of running the teacher.

    Returns:
        Instances with ``box_xyxy`` the fused box, the mask, ``score`` (segmenter quality, or the
        fused box score when voting) and ``scores``: ``box_score`` (fused), ``mask_score``,
        ``views_agreeing`` (views whose box went into it) and ``views``.
    """
    h, w = rgb.shape[:2]
    run = [v for v in views if not (identity_instances is not None and isinstance(v, Identity))]
    found = dict(zip(run, teacher.label([v.apply(rgb) for v in run], config.prompt), strict=True)) if run else {}
    boxes_list, scores_list, masks_list = [], [], []
    for view in views:
        dets = list(identity_instances) if view not in found else found[view]
        dets = sorted(dets, key=lambda i: -_box_score(i, config))[: config.per_view_top_k]
        if not dets and not config.count_empty_views:
            continue
        vh, vw = view.output_size_hw((h, w)) if view in found else (h, w)
        mapper = view if view in found else Identity()
        boxes = mapper.boxes_to_original(np.array([d.box_xyxy for d in dets]).reshape(-1, 4), (h, w))
        boxes_list.append(boxes)
        scores_list.append(np.array([_box_score(d, config) for d in dets]))
        if mask_fusion == "vote":
            masks_list.append([None if d.rle is None else _mask_back(mapper, d, (vh, vw), (h, w)) for d in dets])
    fusedb = fuse_boxes(boxes_list, scores_list, (h, w), iou_thr=config.iou_thr,
                        skip_box_thr=config.skip_box_thr, conf_type=config.conf_type)
    keep = range(min(1, len(fusedb))) if config.top1 else range(len(fusedb))
    if not keep:
        return []
    out = []
    if mask_fusion == "segmenter":
        segmented = teacher.segment_boxes(rgb, fusedb.boxes_xyxy[list(keep)])
    for k in keep:
        box, box_score = fusedb.boxes_xyxy[k], float(fusedb.scores[k])
        members = fusedb.members[k]
        sub = {"box_score": round(box_score, 6), "views_agreeing": len({m[0] for m in members}), "views": len(views)}
        if mask_fusion == "segmenter":
            seg = segmented[k]
            mask_score = float(seg.scores.get("mask_score", seg.score))
            score = {"mask": mask_score, "box": box_score, "mean": (max(mask_score, 0.0) * box_score) ** 0.5}
            out.append(Instance(box_xyxy=_clip_box(box, h, w), rle=seg.rle, score=score[config.score_source],
                                source=f"{teacher.name}+tta", scores={**sub, "mask_score": round(mask_score, 6)}))
            continue
        member_masks = [masks_list[i][j] for i, j in members if masks_list[i][j] is not None]
        weights = [scores_list[i][j] for i, j in members if masks_list[i][j] is not None]
        rle = None
        if member_masks:
            rle = Instance.from_mask(fuse_masks(member_masks, weights, threshold=config.vote_threshold)).rle
        out.append(Instance(box_xyxy=_clip_box(box, h, w), rle=rle, score=box_score,
                            source=f"{teacher.name}+tta", scores=sub))
    return out


def _box_score(inst: Instance, config: RefineConfig) -> float:
    return float(inst.scores.get(config.box_score_field, inst.score))


def _mask_back(view: View, inst: Instance, view_hw: tuple[int, int], size_hw: tuple[int, int]) -> np.ndarray:
    mask = inst.mask
    if mask.shape != tuple(view_hw):
        raise ValueError(f"teacher returned a {mask.shape} mask for a {view_hw} view image")
    return view.mask_to_original(mask, size_hw)


def _clip_box(box: np.ndarray, h: int, w: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
    y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    return (x0, y0, max(x0, x1), max(y0, y1))


def _tick(progress: Callable[[int], None] | None) -> None:
    if progress is not None:
        progress(1)


def _journal_header(teacher, views, config, mask_fusion, labels) -> dict[str, Any]:
    """What determines the unfiltered result (filter settings may change between resumed runs)."""
    cfg = {k: v for k, v in asdict(config).items() if k not in ("min_score", "min_area_px", "score_field")}
    return {"teacher": teacher_provenance(teacher), "views": [v.name for v in views],
            "config": {**cfg, "mask_fusion": mask_fusion}, "given_labels": labels is not None}


def _provenance(teacher, views, config, mask_fusion, labels, summary) -> dict[str, Any]:
    from afss import __version__

    prov = teacher_provenance(teacher)
    return {
        "stage": "refine",
        "teacher": prov["name"],
        "teacher_options": prov["options"],
        "views": [v.name for v in views],
        "config": {**asdict(config), "mask_fusion": mask_fusion},
        "input_labels": None if labels is None else dict(labels.info).get("teacher", "given"),
        "afss_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(summary.seconds, 3),
        "summary": summary.to_dict(),
    }
