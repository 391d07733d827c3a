"""The report's image cards: the val images where teacher and student disagree most, and the pool
images the confidence filter dropped.

A card is one image cropped around its labels (`afss.evaluate.preview.crop_window`) and drawn once
per layer with `afss.viz.draw_instances`, ground truth green, teacher red, student blue (the colours
of ``afss eval --preview``), each panel a small JPEG; the numbers go in the card's text.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from afss.evaluate.pairing import normalise_name
from afss.evaluate.preview import crop_window, top1_iou
from afss.io.images import ImageReadError, load_image
from afss.types import ImageLabels, Instance, LabelSet
from afss.viz import PALETTE, draw_instances

__all__ = ["PANEL_PX", "Card", "Panel", "disagreement", "disagreement_cards", "dropped_cards"]

PANEL_PX = 192
"""Longer side of a card's panel in pixels."""
JPEG_QUALITY = 82

GT_COLOR, TEACHER_COLOR, STUDENT_COLOR = PALETTE[0], PALETTE[1], PALETTE[2]


@dataclass(frozen=True)
class Panel:
    """One drawing of a card: ``jpeg`` bytes and its ``caption`` (plain text)."""

    jpeg: bytes
    caption: str
    width: int
    height: int


@dataclass(frozen=True)
class Card:
    """One image of a gallery: its file name, panels, ``numbers`` as ``(name, text)`` and a note."""

    title: str
    panels: tuple[Panel, ...]
    numbers: tuple[tuple[str, str], ...] = ()
    note: str = ""


def _top1(image: ImageLabels | None) -> Instance | None:
    return max(image.instances, key=lambda i: i.score) if image is not None and image.instances else None


def disagreement(image: ImageLabels, teacher: Instance | None, student: Instance | None) -> float:
    """1 − IoU of the teacher's and the student's top-1 label on ``image`` (mask IoU where both have
    masks, else box IoU); 1 where only one of them labels the image, 0 where neither does."""
    if teacher is None or student is None:
        return 0.0 if teacher is student else 1.0
    iou = top1_iou(image.replace(instances=(teacher,)), student)
    return 1.0 - (iou if iou is not None else 0.0)


def _panels(rgb: np.ndarray, layers: list[tuple[str, tuple[Instance, ...], tuple[int, int, int]]],
            image: ImageLabels) -> tuple[Panel, ...]:
    """Each layer drawn on the same crop (around every layer's boxes), as JPEG panels."""
    labelled = [image.replace(instances=insts) for _, insts, _ in layers]
    top, left, h, w = crop_window(rgb.shape[:2], labelled, context=0.6)
    thickness = max(1, round(1.5 * max(h, w) / PANEL_PX))  # about 1.5 px once the crop is resized
    scale = PANEL_PX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = []
    for caption, insts, color in layers:
        drawn = draw_instances(rgb, insts, color, label=False, thickness=thickness)[top:top + h, left:left + w]
        small = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # OpenCV encodes any uint8 image; failing here is a bug
            raise RuntimeError("JPEG encoding failed")
        out.append(Panel(jpeg=buf.tobytes(), caption=caption, width=size[0], height=size[1]))
    return tuple(out)


def _rgb(labels: LabelSet, image: ImageLabels) -> tuple[np.ndarray | None, str]:
    try:
        return load_image(labels.image_path(image)).rgb, ""
    except ImageReadError as e:
        return None, f"image not readable: {e}"


def _score(inst: Instance | None) -> str:
    return "-" if inst is None else f"{inst.score:.2f}"


def _decision(image: ImageLabels | None) -> str:
    """The filter's decision on one image: kept for training, or dropped and why."""
    if image is None:
        return "not in the filter's output"
    if image.instances:
        return "kept for training"
    return f"dropped: {image.error or 'no label'}"


def disagreement_cards(teacher: LabelSet, student: LabelSet, gt: LabelSet | None = None, *,
                       filtered: LabelSet | None = None, limit: int = 24) -> tuple[list[Card], int]:
    """Cards of the images both labelled, most teacher–student disagreement first.

    Args:
        teacher: the teacher's labels of the images (its image root gives the images).
        student: a student's predictions on the same images (matched by file name); only the
            teacher's images that ``student`` holds are compared.
        gt: ground truth of the images, if any: drawn, and each side's IoU with it shown.
        filtered: the confidence filter's output on the teacher's labels, if any: each card says
            whether the filter kept the image for training, or why it dropped it.
        limit: at most this many cards.

    Returns:
        ``(cards, number of images compared)``.
    """
    by_name = {normalise_name(im.file_name): im for im in student.images}
    truth = {normalise_name(im.file_name): im for im in gt.images} if gt is not None else {}
    decided = {normalise_name(im.file_name): im for im in filtered.images} if filtered is not None else {}
    rows = []
    for im in teacher.images:
        key = normalise_name(im.file_name)
        if key not in by_name:
            continue
        t, s = _top1(im), _top1(by_name.get(key))
        rows.append((disagreement(im, t, s), im.file_name, im, t, s, truth.get(key)))
    rows.sort(key=lambda r: (-r[0], r[1]))
    cards = []
    for d, name, im, t, s, g in rows[:limit]:
        numbers = [("disagreement", f"{d:.2f}"), ("teacher score", _score(t)), ("student score", _score(s))]
        if filtered is not None:
            numbers.append(("filter", _decision(decided.get(normalise_name(name)))))
        has_truth = g is not None and g.error is None and bool(g.instances)
        if has_truth:
            for who, inst in (("teacher", t), ("student", s)):
                iou = top1_iou(g, inst) if inst is not None else None
                numbers.append((f"{who} IoU", "-" if iou is None else f"{iou:.2f}"))
        rgb, note = _rgb(teacher, im)
        panels: tuple[Panel, ...] = ()
        if rgb is not None:
            layers = [("teacher " + _score(t), (t,) if t else (), TEACHER_COLOR),
                      ("student " + _score(s), (s,) if s else (), STUDENT_COLOR)]
            if has_truth:
                layers.insert(0, ("ground truth", g.instances, GT_COLOR))
            panels = _panels(rgb, layers, im)
        cards.append(Card(title=name, panels=panels, numbers=tuple(numbers), note=note))
    return cards, len(rows)


def dropped_cards(refined: LabelSet, labels: LabelSet | None, *, limit: int = 24) -> tuple[list[Card], int]:
    """Cards of the images ``refined`` holds without a label (the filter's ``error`` says why), with
    the teacher's label from ``labels`` drawn; the best-scoring (nearly kept) first.

    Returns:
        ``(cards, number of dropped images)``.
    """
    given = {normalise_name(im.file_name): im for im in labels.images} if labels is not None else {}
    rows = []
    for im in refined.images:
        if im.instances:
            continue
        t = _top1(given.get(normalise_name(im.file_name)))
        rows.append((-(t.score if t is not None else -1.0), im.file_name, im, t))
    rows.sort(key=lambda r: (r[0], r[1]))
    cards = []
    for _, name, im, t in rows[:limit]:
        rgb, note = _rgb(refined, im)
        panels = () if rgb is None else _panels(rgb, [(f"teacher {_score(t)}", (t,) if t else (), TEACHER_COLOR)], im)
        numbers = (("reason", im.error or "no label"), ("teacher score", _score(t)))
        cards.append(Card(title=name, panels=panels, numbers=numbers, note=note))
    return cards, len(rows)
