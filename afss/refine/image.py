"""Refining one image, or a batch: run the teacher on the views, map back, fuse, re-segment or vote.

`refine_batch` sends every view of several images to the teacher in one ``label`` call (what a GPU
wants), then fuses image by image with `fuse_views`. Nothing here raises for a bad image: an
unreadable file or a teacher error becomes the image's ``error``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from afss.engines.base import release_accelerator_memory, teacher_failure
from afss.errors import AfssValueError
from afss.label import NO_DETECTION
from afss.refine.config import RefineConfig
from afss.refine.fusion import fuse_boxes, fuse_masks
from afss.refine.tta import Identity, View
from afss.teachers.base import Teacher
from afss.types import ImageLabels, Instance

__all__ = ["fuse_views", "refine_batch", "refine_image", "views_to_run"]

log = logging.getLogger(__name__)


def views_to_run(views: Sequence[View], identity_given: bool) -> list[View]:
    """The views the teacher must see (the identity view is skipped when its labels are given)."""
    return [v for v in views if not (identity_given and isinstance(v, Identity))]


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
        fused box score when voting; see ``RefineConfig.score_source``) and ``scores``:
        ``box_score`` (fused), ``mask_score``, ``views_agreeing`` (views whose box went into it)
        and ``views``.
    """
    run = views_to_run(views, identity_instances is not None)
    found = teacher.label([v.apply(rgb) for v in run], config.text_prompt) if run else []
    return fuse_views(teacher, rgb, views, dict(zip(run, found, strict=True)), config=config,
                      mask_fusion=mask_fusion, identity_instances=identity_instances)


def fuse_views(
    teacher: Teacher,
    rgb: np.ndarray,
    views: Sequence[View],
    found: Mapping[View, Sequence[Instance]],
    *,
    config: RefineConfig,
    mask_fusion: str,
    identity_instances: Sequence[Instance] | None = None,
) -> list[Instance]:
    """`refine_image` after the teacher ran: ``found`` holds its detections on each view it saw
    (boxes and masks in that view's pixels); the identity view's come from ``identity_instances``
    when it is not in ``found``."""
    h, w = rgb.shape[:2]
    boxes_list, scores_list, labels_list, masks_list = [], [], [], []
    for view in views:
        dets = list(identity_instances or ()) if view not in found else found[view]
        dets = sorted(dets, key=lambda i: -_box_score(i, config))[: config.per_view_top_k]
        if not dets and not config.count_empty_views:
            continue
        vh, vw = view.output_size_hw((h, w)) if view in found else (h, w)
        mapper = view if view in found else Identity()
        boxes = mapper.boxes_to_original(np.array([d.box_xyxy for d in dets]).reshape(-1, 4), (h, w))
        boxes_list.append(boxes)
        scores_list.append(np.array([_box_score(d, config) for d in dets]))
        labels_list.append(np.array([d.category_id for d in dets], dtype=np.int64))
        if mask_fusion == "vote":
            masks_list.append([None if d.rle is None else _mask_back(mapper, d, (vh, vw), (h, w)) for d in dets])
    fusedb = fuse_boxes(boxes_list, scores_list, (h, w), labels_list=labels_list, iou_thr=config.iou_thr,
                        skip_box_thr=config.skip_box_thr, conf_type=config.conf_type)
    keep = range(min(1, len(fusedb))) if config.top1 else range(len(fusedb))
    if not keep:
        return _unfused(teacher, views, found, identity_instances, config, mask_fusion)
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
            out.append(Instance(box_xyxy=_clip_box(box, h, w), rle=seg.rle,
                                score=_segmented_score(mask_score, box_score, config.score_source),
                                category_id=int(fusedb.labels[k]), source=f"{teacher.name}+tta",
                                scores={**sub, "mask_score": round(mask_score, 6)}))
            continue
        member_masks = [masks_list[i][j] for i, j in members if masks_list[i][j] is not None]
        weights = [scores_list[i][j] for i, j in members if masks_list[i][j] is not None]
        rle = None
        if member_masks:
            rle = Instance.from_mask(fuse_masks(member_masks, weights, threshold=config.vote_threshold)).rle
        out.append(Instance(box_xyxy=_clip_box(box, h, w), rle=rle, score=box_score,
                            category_id=int(fusedb.labels[k]), source=f"{teacher.name}+tta", scores=sub))
    return out


def _unfused(teacher: Teacher, views: Sequence[View], found: Mapping[View, Sequence[Instance]],
             identity_instances: Sequence[Instance] | None, config: RefineConfig, mask_fusion: str) -> list[Instance]:
    """The identity view's labels, box and mask unchanged, where no box of any view reached
    ``skip_box_thr``: WBF skips such boxes, and with one box per view that would delete a low-scoring
    label outright. The filter is where labels are cut by score (``min_score``), so refinement passes
    them on, scored as a fused label would be (``score_source``) and with the sub-scores it carries."""
    ident = next((v for v in views if isinstance(v, Identity)), None)
    if ident is None:
        return []
    dets = list(identity_instances or ()) if ident not in found else list(found[ident])
    dets = sorted(dets, key=lambda i: -_box_score(i, config))[: 1 if config.top1 else config.per_view_top_k]
    out = []
    for d in dets:
        box_score = _box_score(d, config)
        sub = {**d.scores, "box_score": round(box_score, 6), "views_agreeing": 0, "views": len(views)}
        score = box_score
        if mask_fusion == "segmenter":
            mask_score = float(d.scores.get("mask_score", d.score))
            sub["mask_score"] = round(mask_score, 6)
            score = _segmented_score(mask_score, box_score, config.score_source)
        out.append(Instance(box_xyxy=d.box_xyxy, rle=d.rle, score=score, category_id=d.category_id,
                            source=f"{teacher.name}+tta", scores=sub))
    return out


def _segmented_score(mask_score: float, box_score: float, source: str) -> float:
    """A re-segmented label's ``score`` by ``RefineConfig.score_source``: mask, box or their geometric mean."""
    return {"mask": mask_score, "box": box_score, "mean": (max(mask_score, 0.0) * box_score) ** 0.5}[source]


def _box_score(inst: Instance, config: RefineConfig) -> float:
    return float(inst.scores.get(config.box_score_field, inst.score))


def _mask_back(view: View, inst: Instance, view_hw: tuple[int, int], size_hw: tuple[int, int]) -> np.ndarray:
    mask = inst.mask
    if mask.shape != tuple(view_hw):
        raise AfssValueError(f"teacher returned a {mask.shape} mask for a {view_hw} view image")
    return view.mask_to_original(mask, size_hw)


def _clip_box(box: np.ndarray, h: int, w: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
    y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    return (x0, y0, max(x0, x1), max(y0, y1))


def refine_batch(
    teacher: Teacher,
    batch: Sequence[ImageLabels],
    loaded: Sequence[np.ndarray | str],
    priors: Mapping[str, ImageLabels],
    views: Sequence[View],
    *,
    config: RefineConfig,
    mask_fusion: str,
) -> list[ImageLabels]:
    """Refine several images with one ``teacher.label`` call for all their views.

    Args:
        batch: the images; ``loaded``: their pixels (or why they could not be read, see `afss.resumable`).
        priors: given labels by ``file_name`` (their instances are the identity view).

    Returns:
        One `ImageLabels` per image, in order, with size filled in and ``error`` set where nothing
        came out (``"no detection"``, ``"unreadable: ..."``, ``"teacher failed: ..."``).

    Given labels whose image size differs from the file's are recorded as ``"size mismatch: ..."``.
    """
    results: list[ImageLabels | None] = [None] * len(batch)
    jobs = []
    for k, (im, pixels) in enumerate(zip(batch, loaded, strict=True)):
        if isinstance(pixels, str):
            results[k] = im.replace(instances=(), error=pixels)
            continue
        prior = priors.get(im.file_name)
        if prior is not None and prior.height and prior.size_hw != tuple(pixels.shape[:2]):
            results[k] = im.replace(instances=(), error=(  # recorded, so one stale record cannot stop the run
                f"size mismatch: the given labels are for a {prior.height}x{prior.width} image, "
                f"the file is {pixels.shape[0]}x{pixels.shape[1]} (H x W)"))
            continue
        prior = _usable_prior(prior)
        ident = None if prior is None else prior.instances
        jobs.append((k, pixels, views_to_run(views, ident is not None), ident))
    flat = [v.apply(px) for _, px, run, _ in jobs for v in run]
    found_flat: list | None = None
    failure: str | None = None
    try:
        found_flat = list(teacher.label(flat, config.text_prompt)) if flat else []
        if len(found_flat) != len(flat):
            raise AfssValueError(f"teacher returned {len(found_flat)} results for {len(flat)} images")
    except Exception as e:  # noqa: BLE001 - one bad image must not sink the batch: retried one by one
        found_flat = None
        failure = teacher_failure(batch[jobs[0][0]], e) if len(jobs) == 1 else None
    if found_flat is None and failure is None:
        release_accelerator_memory()  # before the images are retried one by one
    pos = 0
    for k, pixels, run, ident in jobs:
        im, (h, w) = batch[k], pixels.shape[:2]
        start, pos = pos, pos + len(run)
        if failure is not None:
            results[k] = im.replace(height=h, width=w, instances=(), error=failure)
            continue
        try:
            if found_flat is None:
                instances = refine_image(teacher, pixels, views, config=config, mask_fusion=mask_fusion,
                                         identity_instances=ident)
            else:
                found = dict(zip(run, found_flat[start:pos], strict=True))
                instances = fuse_views(teacher, pixels, views, found, config=config, mask_fusion=mask_fusion,
                                       identity_instances=ident)
        except Exception as e:  # noqa: BLE001 - recorded in error, the run goes on
            results[k] = im.replace(height=h, width=w, instances=(), error=teacher_failure(im, e))
        else:
            results[k] = im.replace(height=h, width=w, instances=tuple(instances),
                                    error=None if instances else NO_DETECTION)
    return results


def _usable_prior(prior: ImageLabels | None) -> ImageLabels | None:
    if prior is None or (prior.error is not None and not prior.error.startswith(NO_DETECTION)):
        return None  # no given labels, or the label stage failed on it: ask the teacher again
    return prior

