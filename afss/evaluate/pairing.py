"""Pair ground-truth and predicted images by file name, and settle categories, before any scoring.

Predictions come from other stages with their own image ids, so images are matched by their
normalised ``file_name`` (``a/./b\\c.jpg`` == ``a/b/c.jpg``), falling back to the absolute path
(``image_root`` joined with ``file_name``) when the two label sets use different roots.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from afss.errors import AfssError, unknown_choice
from afss.io.images import turned_note
from afss.types import ImageLabels, Instance, LabelSet

__all__ = ["Pairs", "normalise_name", "pair_images"]


@dataclass(frozen=True)
class Pairs:
    """Ground truth and predictions on the same images, ready for scoring.

    Args:
        gt: evaluated ground-truth images, ids renumbered 1..N, categories already mapped.
        pred: the prediction for each ``gt`` image (same index, same id); an image without any
            prediction entry is an `ImageLabels` with no instances.
        categories: ``{category_id: name}`` to score (one entry when classes are collapsed).
        num_excluded: ground-truth images dropped because they carry an ``error``.
        num_unpredicted: ground-truth images with no prediction entry at all.
        notes: remarks for the report.
    """

    gt: tuple[ImageLabels, ...]
    pred: tuple[ImageLabels, ...]
    categories: dict[int, str]
    num_excluded: int
    num_unpredicted: int
    notes: tuple[str, ...]


def normalise_name(file_name: str) -> str:
    """``file_name`` with ``\\`` as ``/``, ``.`` and ``..`` resolved, no leading ``./``."""
    return posixpath.normpath(file_name.replace("\\", "/"))


def _absolute(labels: LabelSet, image: ImageLabels) -> str:
    return normalise_name(os.path.abspath(labels.image_path(image)))


def pair_images(
    gt: LabelSet,
    pred: LabelSet,
    *,
    categories: Sequence[int | str] | None = None,
    per_class: bool = False,
    only_labelled: bool = False,
    gt_name: str = "gt",
    pred_name: str = "pred",
    progress: Callable[[int], None] | None = None,
) -> Pairs:
    """Match ``pred`` images to ``gt`` images by file name and map categories.

    Args:
        gt, pred: the two label sets.
        categories: ground-truth category ids or names to evaluate; ``None`` for all.
        per_class: keep categories apart (predictions are mapped to ground-truth categories by
            name); otherwise every selected category is collapsed into one class, as the paper does.
        only_labelled: skip images where the predictions hold no instance (e.g. dropped by the
            confidence filter) instead of counting them as misses: the precision of what was kept.
        gt_name, pred_name: how to name the inputs in error messages (their paths).

    Raises:
        AfssError: duplicate file names, predictions for images absent from the ground truth,
            mismatched image sizes, unknown categories.
    """
    rel: dict[str, int] = {}
    absolute: dict[str, int] = {}
    for k, im in enumerate(gt.images):
        key = normalise_name(im.file_name)
        if key in rel:
            raise AfssError(f"{gt_name}: image file name {im.file_name!r} appears twice")
        rel[key] = k
        absolute.setdefault(_absolute(gt, im), k)

    found: dict[int, ImageLabels] = {}
    stray: list[str] = []
    for im in pred.images:
        k = rel.get(normalise_name(im.file_name))
        if k is None:
            k = absolute.get(_absolute(pred, im))
        if k is None:
            stray.append(im.file_name)
            continue
        if k in found:
            raise AfssError(f"{pred_name}: image {im.file_name!r} appears twice (also as {found[k].file_name!r})")
        g = gt.images[k]
        unread = (im.height, im.width) == (0, 0) and not im.instances  # an image the stage could not read
        if not unread and (im.height, im.width) != (g.height, g.width):
            raise AfssError(
                f"{pred_name}: image {im.file_name!r} is {im.height}x{im.width} (HxW), "
                f"the ground truth says {g.height}x{g.width}"
                f"{turned_note(pred.image_path(im), (g.height, g.width), (im.height, im.width))}"
            )
        found[k] = im
    if stray and not found:
        first = gt.images[0].file_name if gt.images else "(no images)"
        raise AfssError(
            f"{pred_name}: no prediction image matches ground truth; compare file names, "
            f"e.g. prediction {stray[0]!r} vs {first!r} in {gt_name}"
        )
    if stray:
        raise AfssError(
            f"{pred_name}: {len(stray)} prediction image(s) are not in ground truth {gt_name}, "
            f"e.g. {stray[0]!r}"
        )

    gt_map, pred_map, cats, notes = _category_maps(gt, pred, categories, per_class, gt_name, pred_name)
    out_gt: list[ImageLabels] = []
    out_pred: list[ImageLabels] = []
    excluded = unpredicted = unlabelled = 0
    for k, g in enumerate(gt.images):
        if progress is not None:
            progress(1)
        if g.error is not None:
            excluded += 1
            continue
        p = found.get(k)
        if only_labelled and (p is None or not p.instances):
            unlabelled += 1
            continue
        if p is None:
            unpredicted += 1
        out_gt.append(g.replace(instances=_mapped(g.instances, gt_map)))
        p_inst = () if p is None else _mapped(p.instances, pred_map)
        out_pred.append(ImageLabels(file_name=g.file_name, height=g.height, width=g.width,
                                    instances=p_inst, image_id=g.image_id))
    # in the order of the ground truth's own ids, numbered 1..N: COCOeval takes detections image by image
    # in id order, which breaks exact score ties, so the file's order must not decide them (nor the
    # paper protocol's, which takes the pairs in this order)
    order = sorted(range(len(out_gt)), key=lambda k: (out_gt[k].image_id or 0, k))
    out_gt = [out_gt[k].replace(image_id=r + 1) for r, k in enumerate(order)]
    out_pred = [out_pred[k].replace(image_id=r + 1) for r, k in enumerate(order)]
    if excluded:
        notes.append(f"{excluded} ground-truth image(s) recorded with an error were excluded")
    if unlabelled:
        notes.append(f"only labelled images scored: {unlabelled} image(s) without a predicted instance were skipped")
    if unpredicted:
        notes.append(f"{unpredicted} image(s) have no prediction entry and count as misses")
    return Pairs(tuple(out_gt), tuple(out_pred), cats, excluded, unpredicted, tuple(notes))


def _mapped(instances: Sequence[Instance], mapping: dict[int, int]) -> tuple[Instance, ...]:
    return tuple(
        inst if inst.category_id == mapping[inst.category_id] else inst.replace(category_id=mapping[inst.category_id])
        for inst in instances
        if inst.category_id in mapping
    )


def _category_maps(
    gt: LabelSet,
    pred: LabelSet,
    categories: Sequence[int | str] | None,
    per_class: bool,
    gt_name: str,
    pred_name: str,
) -> tuple[dict[int, int], dict[int, int], dict[int, str], list[str]]:
    """``(gt id -> scored id, pred id -> scored id, scored categories, notes)``."""
    gt_cats = dict(gt.categories)
    for im in gt.images:  # ids used by annotations but missing from the category list
        for inst in im.instances:
            gt_cats.setdefault(inst.category_id, str(inst.category_id))
    if categories is None:
        selected = dict(gt_cats)
    else:
        by_name = {v: k for k, v in gt_cats.items()}
        selected = {}
        for c in categories:
            if isinstance(c, int) or (isinstance(c, str) and c.isdigit() and c not in by_name):
                if int(c) not in gt_cats:
                    raise unknown_choice(f"category id in {gt_name}", str(c), map(str, gt_cats))
                selected[int(c)] = gt_cats[int(c)]
            elif c in by_name:
                selected[by_name[c]] = c
            else:
                raise unknown_choice(f"category in {gt_name}", str(c), by_name)
    pred_ids = set(pred.categories) | {i.category_id for im in pred.images for i in im.instances}
    notes: list[str] = []
    if not per_class:
        name = next(iter(selected.values())) if len(selected) == 1 else "object"
        if len(selected) > 1:
            notes.append(f"{len(selected)} categories collapsed into one class (--per-class, or per_class=True, keeps them apart)")
        gt_map = dict.fromkeys(selected, 1)
        # Collapsing everything: every prediction counts. A chosen subset: the predictions of those
        # categories, by name as --per-class matches them (the files' ids may differ), an unnamed id
        # taken as the ground truth's.
        names = set(selected.values())
        pred_map = dict.fromkeys(pred_ids if categories is None else [
            pid for pid in pred_ids
            if pred.categories.get(pid) in names or (pred.categories.get(pid) is None and pid in selected)], 1)
        return gt_map, pred_map, {1: name}, notes
    by_name = {v: k for k, v in selected.items()}
    pred_map = {}
    for pid in sorted(pred_ids):
        pname = pred.categories.get(pid)
        if pname is None and pid in selected:  # unnamed id: take it as the ground truth's id
            pred_map[pid] = pid
        elif pname in by_name:
            pred_map[pid] = by_name[pname]
        elif pname not in gt_cats.values():  # a known but unselected category is just left out
            raise AfssError(
                f"{pred_name}: category {pname or pid!r} (id {pid}) is not a ground-truth category "
                f"({', '.join(sorted(gt_cats.values()))}); evaluate without --per-class (per_class=False) to collapse classes"
            )
    return {k: k for k in selected}, pred_map, dict(sorted(selected.items())), notes
