"""The refine stage: TTA views -> teacher -> map back -> Weighted Boxes Fusion -> mask -> filter.

Per image, as the paper's reference code does by default:

1. every view (`afss.refine.tta`) of the image goes through the teacher; the top-1 box of each view
   (``per_view_top_k``) is mapped back to the original frame exactly;
2. WBF (`afss.refine.fusion`) fuses the views that found something (``conf_type="avg"``, equal
   weights: a box found in one view of two gets half its score);
3. the best fused box prompts the teacher's segmenter on the *original* image
   (``mask_fusion="segmenter"``, the default where the teacher has a promptable one, see
   `Teacher.refine_mask_fusion`); ``score`` becomes the
   segmenter's own quality estimate (SAM 2's predicted IoU), ``scores["box_score"]`` the fused
   detector score. Without a segmenter (``"vote"``) the views' masks are fused by a pixel vote
   weighted by their detector scores and ``score`` is the fused detector score;
4. `afss.refine.filtering` keeps labels with ``score >= min_score`` (0.6), top-1 per image; or
   the best ``keep_top`` fraction, or a cut chosen from the scores (``min_score="auto"``).

With ``labels`` given (e.g. the label stage's output), the identity view's detections are taken
from it instead of running the teacher again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from afss.engines.base import TeacherJob
from afss.errors import AfssError, unknown_choice
from afss.io.atomic import write_json_atomic
from afss.io.coco import as_labelset, write_coco
from afss.io.outputs import check_output_path, check_replaceable, input_identity
from afss.label import NO_DETECTION, as_images, label_categories, teacher_provenance
from afss.refine.config import RefineConfig
from afss.refine.filtering import FilterSummary, filter_labels
from afss.refine.image import refine_batch, refine_image
from afss.refine.tta import View, parse_views
from afss.resumable import check_limit, run_resumable
from afss.teachers.base import Teacher
from afss.types import LabelSet

__all__ = ["NO_DETECTION", "RefineConfig", "RefineSummary", "refine_image", "refine_labels", "summary_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineSummary:
    """What refinement did.

    Attributes:
        images: images in.
        fused: images with at least one fused label before filtering.
        passed_on: images whose label no view's box fused (all under WBF's ``skip_box_thr``): the
            identity view's label, passed on unfused (``views_agreeing`` 0) for the filter to cut.
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
    passed_on: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "fused": self.fused, "passed_on": self.passed_on, "no_detection": self.no_detection,
                "failed": self.failed, "all_views_agree": self.all_views_agree, "views": list(self.views),
                "mask_fusion": self.mask_fusion, "seconds": round(self.seconds, 3), "filter": self.filter.to_dict()}

    def line(self) -> str:
        passed = f"{self.passed_on} passed on unfused, " if self.passed_on else ""
        return (f"{self.images} images, {self.fused} fused ({self.all_views_agree} with all {len(self.views)} "
                f"views agreeing), {passed}{self.no_detection} no detection, {self.failed} failed; {self.filter.line()}")


def refine_labels(
    teacher: Teacher,
    images: LabelSet,
    *,
    views: str | Sequence[str] | Sequence[View] = "identity,vflip",
    labels: LabelSet | None = None,
    config: RefineConfig | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    overwrite: bool = False,
    batch_size: int = 4,
    limit: int | None = None,
    engine: Any = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[LabelSet, RefineSummary]:
    """Refine the teacher's labels of ``images`` by TTA + WBF + re-segmentation, then filter.

    Args:
        teacher: the teacher (its segmenter re-segments fused boxes where it has one).
        images: the images (``file_name`` relative to ``images.image_root``); ids, names and
            ``meta`` are kept. A label set read from COCO works as is; so does a folder's path or a
            COCO JSON file's (`afss.label.as_images`).
        views: TTA views, a spec string like ``"identity,vflip"`` or `View` objects.
        labels: existing teacher labels (matched by ``file_name``) used as the identity view, or
            the path of their COCO JSON file.
        config: `RefineConfig` (or its fields as a dict); defaults follow the paper.
        out: COCO JSON to write (atomically), with ``<out stem>.summary.json`` beside it; also
            enables the progress journal (`afss.resumable`). ``None``: nothing is written.
        resume: continue from ``out``'s journal if there is one; ``False`` starts afresh.
        overwrite: replace an existing ``out`` even when it is not this stage's output of the same
            images and labels (refused by default, see `afss.io.outputs.check_replaceable`).
        limit: refine only the first ``limit`` images; images a journal holds beyond them are kept.
        engine: where to run (`afss.engines.build_engine`); the output is the same.
        batch_size: images whose views go to the teacher in one ``label`` call (GPU throughput).
        progress: called with the number of images just finished (after each batch; the images
            a resumed journal already holds are reported at the start).

    Returns:
        ``(refined, summary)``: every input image exactly once, in order; filtered-out images have
        zero instances and ``error`` saying why; provenance in ``info``.

    Example:
        >>> refined, summary = refine_labels(build_teacher("photometric"), read_coco("labels.json"),
        ...                                  views="identity,vflip", out="refined.json")  # doctest: +SKIP
        >>> summary.line()  # doctest: +SKIP
    """
    images = as_images(images)
    labels = None if labels is None else as_labelset(labels, "labels")
    if isinstance(config, Mapping):  # RefineConfig's fields as a dict, through its checks
        known = [f.name for f in fields(RefineConfig)]
        for key in config:
            if key not in known:
                raise unknown_choice("RefineConfig field", str(key), known)
        config = RefineConfig(**config)
    elif config is not None and not isinstance(config, RefineConfig):
        raise AfssError(f"refine: config must be a RefineConfig, e.g. RefineConfig(min_score=0.5), or its fields as "
                        f"a dict, got "
                        f"{type(config).__name__}")
    config = config or RefineConfig()
    if config.prompt is not None and not isinstance(config.prompt, str):
        raise AfssError(f"refine: the prompt is one string, e.g. 'spacecraft', got {type(config.prompt).__name__}")
    if config.prompt is None:  # ask every view what the given labels asked
        recorded = labels.info.get("prompt") if labels is not None else None
        config = replace(config, prompt=str(recorded or config.text_prompt))
    views = parse_views(views)
    mask_fusion = config.resolved_mask_fusion(teacher)
    given = {im.file_name: im for im in labels.images} if labels is not None else {}
    if labels is not None:  # an image without its given label is labelled afresh: say so, not silently
        missing = [im.file_name for im in images.images[:limit] if im.file_name not in given]
        if missing:
            log.warning("%d of %d images have no given label of the same file_name (e.g. %r): the %s teacher "
                        "labels them afresh", len(missing), len(images.images[:limit]), missing[0], teacher.name)
    inputs = input_identity(images, labels)
    check_limit(limit)
    if out is not None:
        check_output_path(summary_path(out), flag="--out (its summary)")
        keep = None if limit is None else [im.file_name for im in images.images[:limit]]
        check_replaceable(out, stage="refine", inputs=inputs, overwrite=overwrite, keep=keep)
    t0 = time.perf_counter()
    done, journal = run_resumable(
        images, RefineJob(teacher, given, views, config, mask_fusion), out=out, kind="refine",
        header={**_journal_header(teacher, views, config, mask_fusion, labels), "inputs": inputs},
        resume=resume, batch_size=batch_size, limit=limit, engine=engine, progress=progress)
    out_images = tuple(done[im.file_name] for im in images.images[:limit])
    # the given labels' categories are the label stage's own (`label_categories`): they name these ids
    declared = teacher.categories or (labels.categories if labels is not None else None)
    refined = LabelSet(images=out_images, categories=label_categories(images.categories, out_images, declared),
                       image_root=images.image_root)
    labelled = sum(1 for im in refined.images if im.instances)
    passed_on = sum(1 for im in refined.images if im.instances and im.instances[0].scores.get("views_agreeing") == 0)
    no_det = sum(1 for im in refined.images if im.error == NO_DETECTION)
    agree = sum(1 for im in refined.images if im.instances and im.instances[0].scores.get("views_agreeing") == len(views))
    filtered, fsum = filter_labels(refined, min_score=config.min_score, keep_top=config.keep_top, top1=config.top1,
                                   min_area_px=config.min_area_px, score_field=config.score_field,
                                   auto_keep=config.auto_keep)
    seconds = time.perf_counter() - t0
    summary = RefineSummary(images=len(refined), fused=labelled - passed_on, passed_on=passed_on, no_detection=no_det,
                            failed=len(refined) - labelled - no_det, all_views_agree=agree, filter=fsum, views=tuple(v.name for v in views),
                            mask_fusion=mask_fusion, seconds=seconds)
    result = filtered.replace(info={**_provenance(teacher, views, config, mask_fusion, labels, summary),
                                    "inputs": inputs, "limit": limit})
    if out is not None:
        try:
            path = write_coco(result, out)
            write_json_atomic(summary_path(path), summary.to_dict(), indent=2)
        except AfssError as e:
            raise journal.write_failed(e) from e
        journal.finish([im.file_name for im in result.images])
    return result, summary


class RefineJob(TeacherJob):
    """The refine stage's batch job (`afss.refine.image.refine_batch`), portable to other workers."""

    def __init__(self, teacher: Teacher, given, views, config: RefineConfig, mask_fusion: str) -> None:
        super().__init__(teacher, given)
        self.views, self.config, self.mask_fusion = tuple(views), config, mask_fusion

    def process(self, batch, loaded, priors) -> list:
        return refine_batch(self.teacher, batch, loaded, priors, self.views, config=self.config,
                            mask_fusion=self.mask_fusion)


def summary_path(out: str | os.PathLike) -> Path:
    """``refined.json`` -> ``refined.summary.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.summary.json")


def _journal_header(teacher, views, config, mask_fusion, labels) -> dict[str, Any]:
    """What determines the unfiltered result (filter settings may change between resumed runs)."""
    cfg = {k: v for k, v in asdict(config).items()
           if k not in ("min_score", "keep_top", "auto_keep", "min_area_px", "score_field")}
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
