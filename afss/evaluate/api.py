"""`evaluate`: score predictions against ground truth with COCO AP and the paper's protocol."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from afss.errors import AfssError, unknown_choice
from afss.evaluate.coco_protocol import coco_rows
from afss.evaluate.inputs import load_labels, load_predictions, segm_skip_reason
from afss.evaluate.pairing import pair_images
from afss.evaluate.paper_protocol import paper_rows
from afss.evaluate.reference_masks import ReferenceMasks
from afss.evaluate.reference_protocol import reference_rows
from afss.evaluate.report import EvalReport, EvalRow
from afss.types import LabelSet

__all__ = ["ALL_PROTOCOLS", "IOU_TYPES", "PROTOCOLS", "evaluate"]

log = logging.getLogger(__name__)

IOU_TYPES = ("segm", "bbox")
PROTOCOLS = ("coco", "paper")
"""The default protocols: exact, from the COCO ground truth alone."""
ALL_PROTOCOLS = (*PROTOCOLS, "reference")
"""Every protocol `evaluate` knows; ``reference`` also reads the ground-truth mask files."""


def _check_choices(values: Sequence[str], valid: Sequence[str], kind: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    out = tuple(dict.fromkeys(values))
    for v in out:
        if v not in valid:
            raise unknown_choice(kind, v, valid)
    if not out:
        raise AfssError(f"no {kind} given, expected one or more of {', '.join(valid)}")
    return out


def evaluate(
    gt: LabelSet | str | os.PathLike,
    pred: LabelSet | str | os.PathLike,
    *,
    iou_types: Sequence[str] = IOU_TYPES,
    protocols: Sequence[str] = PROTOCOLS,
    categories: Sequence[int | str] | None = None,
    per_class: bool = False,
    only_labelled: bool = False,
    image_root: str | os.PathLike | None = None,
    allow_absolute_paths: bool = False,
    gt_masks: str | os.PathLike | None = None,
    names: tuple[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Score predictions against ground truth: COCO AP and the paper's single-target protocol.

    Images are matched by normalised ``file_name`` (never by id: every stage numbers its own
    images). Ground-truth images recorded with an ``error`` are excluded and counted; ground-truth
    images without predictions count as misses; predictions for images absent from the ground truth
    are an error.

    Args:
        gt: ground truth, a `LabelSet` or a COCO instances JSON path.
        pred: predictions (``score`` on every instance), a `LabelSet` or a COCO JSON path; a
            COCO results list (no images, matched by the ground truth's ``image_id``) also works.
        iou_types: any of ``"segm"`` (mask IoU) and ``"bbox"``. ``segm`` is skipped with a note when
            either side has no masks at all.
        protocols: any of ``"coco"`` (pycocotools-equal COCOeval, maxDets 100, crowd respected) and
            ``"paper"`` (top-1 prediction and one merged target per image; see
            `afss.evaluate.paper_protocol`); also ``"reference"``: the paper's protocol computed
            the way its reference script does, from the mask files (``gt_masks``), to reproduce
            numbers published with it (see `afss.evaluate.reference_protocol`); masks, one class.
        categories: ground-truth category ids or names to evaluate; ``None`` for all.
        per_class: score categories apart (predictions mapped to ground-truth categories by name)
            and report a row per category after the ``"all"`` row. Default: every category is
            collapsed into one class, as the paper does with its single target class.
        only_labelled: score only the images where ``pred`` holds at least one instance (e.g. the
            survivors of ``afss refine``'s confidence filter); by default the others are misses.
        image_root: folder a ``gt`` path's file names are relative to (default: recorded in the
            file, else its folder); matters where images are paired by absolute path.
        allow_absolute_paths: accept ``file_name`` entries that are absolute or leave the image root.
        gt_masks: folder of ground-truth mask images named like the images, read by the
            ``reference`` protocol only (see `afss.evaluate.reference_masks`; TANGO and SPEED+
            ground truth from ``afss convert`` find theirs without it).
        names: ``(gt, pred)``: what errors and the report call the inputs, e.g. the paths of files a
            caller has already read into `LabelSet` objects; default: the paths given, else none.
        progress: called with the number of images just paired.

    Returns:
        An `EvalReport`; ``report.get("coco", "segm").ap`` is the mask AP as a fraction.

    Raises:
        AfssError: unreadable or non-COCO input, no or stray matching images, unknown names.

    Example:
        >>> report = evaluate("data/gt.json", "runs/label/labels.json")  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
    """
    start = time.perf_counter()
    iou_types = _check_choices(iou_types, IOU_TYPES, "IoU type")
    protocols = _check_choices(protocols, ALL_PROTOCOLS, "protocol")
    reference = "reference" in protocols
    if gt_masks is not None and not reference:
        raise AfssError("a ground-truth masks folder is read only by the reference protocol; "
                        "add it to the protocols (--protocol reference) or leave the folder out")
    if reference and (per_class or categories is not None):
        raise AfssError("the reference protocol scores one class, the masks' foreground; "
                        "leave out per-class and categories (or the reference protocol)")
    if categories is not None and not isinstance(categories, str) and len(categories) == 0:
        raise AfssError("no category given to evaluate; name one or more, or leave categories out for all")
    gt_set, gt_name = load_labels(gt, "gt", image_root, allow_absolute_paths)
    pred_set, pred_name = load_predictions(pred, gt_set, allow_absolute_paths)
    if names is not None:
        gt_name, pred_name = map(str, names)
    if gt_set.info.get("stage") in ("label", "refine") and pred_set.info.get("stage") not in ("label", "refine"):
        # swapped arguments score silently (AP of the truth against the labels); scoring against a
        # teacher's labels on purpose stays possible
        log.warning("%s holds a teacher's labels (info.stage %r) and is scored as the ground truth, %s as the "
                    "predictions: the ground truth comes first (--gt, evaluate(gt, pred))", gt_name, gt_set.info["stage"],
                    pred_name)
    masks = ReferenceMasks(gt_set, gt_masks, gt_name=gt_name) if reference else None
    pairs = pair_images(gt_set, pred_set, categories=categories, per_class=per_class,
                        only_labelled=only_labelled, gt_name=gt_name, pred_name=pred_name, progress=progress)
    notes = list(pairs.notes)
    if not pairs.gt:
        why = f"{pairs.num_excluded} excluded for errors"
        if only_labelled:
            why += f"; only-labelled: {pred_name} labels none of the others"
        raise AfssError(f"{gt_name}: no ground-truth image left to evaluate ({why})")
    scores = {inst.score for im in pairs.pred for inst in im.instances}
    if scores == {1.0} and sum(len(im.instances) for im in pairs.pred) > 1:
        # a file without scores reads as 1.0 everywhere: AP then ranks by file order, silently
        notes.append(f"{pred_name}: every prediction has the score 1 (what a file without scores reads as); "
                     "AP cannot rank them, so it depends on their order")

    rows: list[EvalRow] = []
    for iou_type in iou_types:
        if iou_type == "segm":
            why = segm_skip_reason(pairs, gt_name, pred_name)
            if why is not None:
                notes.append(why)
                continue
        for protocol in protocols:
            if protocol == "coco":
                rows.extend(coco_rows(pairs, iou_type))
            elif protocol == "paper":
                rows.extend(paper_rows(pairs, iou_type))
            elif iou_type == "segm" and masks is not None:
                ref_rows, ref_notes = reference_rows(pairs, masks)
                rows.extend(ref_rows)
                notes.extend(ref_notes)
            else:
                notes.append("reference protocol: masks only (the reference script has no box protocol)")
    if not rows:
        raise AfssError(f"{gt_name}: nothing to evaluate: {'; '.join(notes)}")

    seconds = time.perf_counter() - start
    log.debug("evaluated %d images in %.2f s", len(pairs.gt), seconds)
    return EvalReport(
        rows=tuple(rows),
        num_images=len(pairs.gt),
        num_excluded=pairs.num_excluded,
        num_unpredicted=pairs.num_unpredicted,
        num_gt=sum(1 for im in pairs.gt for i in im.instances if not i.iscrowd),
        num_pred=sum(len(im.instances) for im in pairs.pred),
        notes=tuple(notes),
        gt=gt_name if names is not None or not isinstance(gt, LabelSet) else None,
        pred=pred_name if names is not None or not isinstance(pred, LabelSet) else None,
        meta={"categories": {str(k): v for k, v in pairs.categories.items()}, "per_class": per_class,
              "only_labelled": only_labelled,
              "iou_types": list(iou_types), "protocols": list(protocols),
              **({"gt_masks": os.fspath(gt_masks)} if gt_masks is not None else {}), "seconds": round(seconds, 3)},
    )


def default_metrics_path(pred: str | os.PathLike) -> Path:
    """``<pred folder>/<pred stem>.metrics.json``, where ``afss eval`` writes by default."""
    pred = Path(pred)
    return pred.with_name(f"{pred.stem}.metrics.json")
