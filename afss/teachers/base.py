"""The contract every teacher keeps.

A teacher turns a batch of RGB images and a text prompt into instances per image, with boxes in the
pixels of each *input* image and masks at that image's size. Teachers that have a promptable
segmenter (SAM, SAM 2) also re-segment given boxes: refinement uses that to turn a fused box back
into a mask on the original image, as the paper does.
"""

from __future__ import annotations

import abc
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any, ClassVar

import numpy as np

from afss.errors import AfssError, AfssValueError, unknown_choice
from afss.types import Instance


def check_rgb(image: Any, where: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous RGB uint8 ``(H, W, 3)`` array of at least one pixel, or a ValueError
    that says how to get one (arrays with negative strides, e.g. ``rgb[::-1]``, are copied: torch
    refuses them inside the transformers processors). An array-like (a PIL image) is taken as its array."""
    if not isinstance(image, np.ndarray) and (hasattr(image, "__array__") or hasattr(image, "__array_interface__")):
        image = np.asarray(image)
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            and image.shape[0] > 0 and image.shape[1] > 0):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise AfssValueError(f"{where}: expected an RGB uint8 (H, W, 3) image of at least one pixel, got {got}; "
                         "afss.io.images.load_image(path).rgb reads any file so, and to_uint8 scales a deep or "
                         "float array (then np.dstack([gray] * 3) for a grey one)")
    return np.ascontiguousarray(image)


def check_batch(images: Any, prompt: Any = "spacecraft", teacher: str = "teacher") -> list[np.ndarray]:
    """A ``label`` call's arguments checked: a sequence of images (each through `check_rgb`) and a text
    prompt. One image where a list is meant would have its rows taken as images (a path, its characters):
    refused with one line saying how to pass it."""
    if isinstance(images, (np.ndarray, str, bytes, os.PathLike)) or hasattr(images, "__array_interface__"):
        raise AfssValueError(f"{teacher}: label takes a list of images: [image] for one, list(batch) for a stacked "
                             "batch, [load_image(path).rgb] for a file")
    if not isinstance(prompt, str):
        raise AfssValueError(f"{teacher}: the prompt is one string, e.g. 'spacecraft' or 'satellite. solar panel', "
                             f"got {type(prompt).__name__}")
    return [check_rgb(im, f"image {i}") for i, im in enumerate(images)]


def check_boxes(boxes_xyxy: Any, hw: tuple[int, int] | None = None) -> np.ndarray:
    """``(N, 4)`` float xyxy boxes, clipped to an image of size ``hw`` where given; a ValueError for a
    box that is not four finite numbers."""
    try:
        boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
    except (TypeError, ValueError) as e:
        raise AfssValueError(f"boxes: expected (N, 4) xyxy numbers, got {boxes_xyxy!r:.80}") from e
    if not np.isfinite(boxes).all():
        raise AfssValueError(f"boxes: every coordinate must be a finite number, got {boxes[~np.isfinite(boxes).all(1)][0]}")
    if hw is None:
        return boxes
    h, w = hw
    return np.clip(boxes, 0.0, [w, h, w, h])


# the options of the vision-language teachers and the student (the CLI's --device, --dtype, ... flags),
# named as theirs where another teacher is given one
MODEL_OPTIONS = ("box_threshold", "text_threshold", "device", "dtype", "detector_dtype", "detector", "segmenter")
MODEL_TEACHERS = ("grounded-sam2", "owlv2-sam", "sam3", "student")


def check_options(options: Mapping[str, Any], defaults: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Options checked against their defaults: unknown names get a close-match suggestion, values of
    the wrong kind (``-o work_size=abc``) a one-line error; ints given for floats become floats."""
    checked = {}
    for key, value in options.items():
        if key not in defaults and key in MODEL_OPTIONS:  # --device on the photometric teacher, say
            raise AfssError(f"{what} takes no {key!r}: that is an option of the vision-language teachers and the "
                            f"student ({', '.join(MODEL_TEACHERS)}); {what}'s own: {', '.join(sorted(defaults))}")
        if key not in defaults:
            raise unknown_choice(f"{what} option", key, defaults)
        default = defaults[key]
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) == isinstance(default, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float))
            value = float(value) if ok else value
        elif isinstance(default, int):
            ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            value = int(value) if ok else value
        elif isinstance(default, str) and isinstance(value, os.PathLike):  # a Path, for a file or folder option
            value, ok = os.fspath(value), True
        elif isinstance(default, (str, tuple, list)):
            ok = isinstance(value, type(default)) or (isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)))
        else:  # None or anything richer: the teacher checks it
            ok = True
        if not ok:
            kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(type(default), "a list")
            raise AfssError(f"{what} option {key}={value!r}: expected {kind}, like {default!r}")
        checked[key] = value
    return checked


class Teacher(abc.ABC):
    """Text-prompted labeller.

    Example:
        >>> teacher = build_teacher("photometric")  # doctest: +SKIP
        >>> per_image = teacher.label([rgb], "spacecraft")
        >>> per_image[0][0].box_xyxy
    """

    name: ClassVar[str]

    @property
    def categories(self) -> Mapping[int, str] | None:
        """The classes this teacher labels, by category id, or ``None``: one class, id 1 (a text-prompted
        teacher). A trained student names the classes it learnt."""
        return None

    @abc.abstractmethod
    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft") -> list[list[Instance]]:
        """Label a batch.

        Args:
            images: RGB uint8 arrays ``(H, W, 3)``; sizes may differ within a batch.
            prompt: what to find, in plain words ("spacecraft", "satellite. solar panel").

        Returns:
            One list of `Instance` per image (possibly empty), best first, ``source`` set to the
            teacher name, ``score`` the confidence used for filtering, sub-scores in ``scores``.
        """

    @classmethod
    def check(cls, **options: Any) -> None:
        """Check build options without loading anything heavy (``afss run --check``); raises
        `AfssError`. The default checks the option names and kinds against the keyword defaults of
        ``__init__`` (the VLM teachers'); a teacher built from a config object overrides it."""
        params = inspect.signature(cls.__init__).parameters
        defaults = {name: (None if p.default is inspect.Parameter.empty else p.default)
                    for name, p in params.items() if name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY}
        check_options(options, defaults, f"{cls.name} teacher")

    @property
    def can_segment_boxes(self) -> bool:
        """Whether `segment_boxes` is available (a promptable segmenter)."""
        return False

    @property
    def refine_mask_fusion(self) -> str:
        """How refinement makes a fused box's mask when the user does not say (`RefineConfig.mask_fusion`):
        ``"segmenter"`` (re-prompt `segment_boxes` with the fused box, the paper's way for SAM) where
        there is one, else ``"vote"`` (the views' own masks, voted). A teacher whose `segment_boxes`
        measures worse than its own labels returns ``"vote"``."""
        return "segmenter" if self.can_segment_boxes else "vote"

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        """Masks for given boxes on one image (``boxes_xyxy``: float ``(N, 4)`` pixels of ``image``).

        Returns one `Instance` per box with the box kept, the mask at the image's size and the
        segmenter's own quality estimate in ``scores["mask_score"]``.
        """
        raise NotImplementedError(f"teacher {self.name!r} has no promptable segmenter")


def teacher_provenance(teacher: Teacher) -> dict[str, Any]:
    """``{"name", "options"}`` of a teacher: its ``options`` mapping or ``config`` dataclass if it has one."""
    options: Any = getattr(teacher, "options", None)
    if options is None:
        config = getattr(teacher, "config", None)
        options = asdict(config) if is_dataclass(config) else {}
    from afss.io.atomic import plain

    return {"name": getattr(teacher, "name", type(teacher).__name__), "options": plain(dict(options))}
