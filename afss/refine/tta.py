"""Test-time augmentation views with exact inverses.

A `View` turns the original RGB image into an augmented one (`View.apply`) and maps what a teacher
found on the augmented image back to the original frame (`View.boxes_to_original`,
`View.mask_to_original`). Coordinates are continuous pixel coordinates (a pixel column ``x`` spans
``[x, x + 1)``), so the geometric inverses are exact:

* ``hflip``: ``x -> W - x``; ``vflip``: ``y -> H - y``; ``rot180``: both.
* ``rot90`` / ``rot270``: rotate the image 90 degrees counter-clockwise / clockwise (NumPy's
  ``np.rot90`` with ``k = 1`` / ``k = 3``). A point ``(x, y)`` of the original goes to ``(y, W - x)``
  under ``rot90`` and to ``(H - y, x)`` under ``rot270``; the augmented image is ``(W, H)``.
* ``scaleS``: resize by ``S`` to ``(round(H * S), round(W * S))`` (at least 1 pixel); boxes come back
  by the exact ratio of the sizes actually used (``W / W'``, ``H / H'``), masks by resizing the
  mask as a float and thresholding at 0.5 (exact for masks aligned to the scale grid, otherwise
  the boundary moves by at most one original pixel).
* ``brightnessB``, ``contrastC``, ``gammaG``: photometric, geometry unchanged (identity inverse).

Views are named by a spec string, e.g. ``"identity,vflip"`` (the paper's best set) or
``"identity,hflip,vflip,rot90,scale0.75,brightness1.2,contrast0.8,gamma0.7"``; see `parse_views`.
"""

from __future__ import annotations

import abc
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from afss.errors import AfssError, AfssValueError

__all__ = ["VIEW_NAMES", "Flip", "Identity", "Photometric", "Rotate", "Scale", "View", "parse_views"]


class View(abc.ABC):
    """One augmentation of the original image, with the exact inverse of its geometry."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Spec name, e.g. ``"vflip"`` or ``"scale0.75"``; `parse_views` reads it back."""

    @abc.abstractmethod
    def apply(self, image: np.ndarray) -> np.ndarray:
        """The augmented image: ``image`` is ``(H, W, C)`` or ``(H, W)``, any dtype; never modified."""

    def output_size_hw(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        """Size ``(H', W')`` of the augmented image for an original of ``size_hw``."""
        return (int(size_hw[0]), int(size_hw[1]))

    def boxes_to_original(self, boxes_xyxy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        """Map boxes found on the augmented image back to the original.

        Args:
            boxes_xyxy: float ``(N, 4)`` ``(x0, y0, x1, y1)`` pixels of the augmented image.
            size_hw: ``(H, W)`` of the *original* image.

        Returns:
            float64 ``(N, 4)`` xyxy pixels of the original image (a new array).
        """
        return np.array(boxes_xyxy, dtype=np.float64).reshape(-1, 4)

    def mask_to_original(self, mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        """Map a bool ``(H', W')`` mask of the augmented image to bool ``(H, W)`` of the original."""
        return np.array(mask, dtype=bool)

    def __repr__(self) -> str:
        return f"View({self.name})"


@dataclass(frozen=True, repr=False)
class Identity(View):
    """The original image unchanged."""

    @property
    def name(self) -> str:
        return "identity"

    def apply(self, image: np.ndarray) -> np.ndarray:
        return image.copy()


@dataclass(frozen=True, repr=False)
class Flip(View):
    """Horizontal (``axis="x"``, mirror left-right) or vertical (``axis="y"``, upside down) flip."""

    axis: str = "x"

    def __post_init__(self) -> None:
        if self.axis not in ("x", "y"):
            raise AfssValueError(f"Flip axis must be 'x' or 'y', got {self.axis!r}")

    @property
    def name(self) -> str:
        return "hflip" if self.axis == "x" else "vflip"

    def apply(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1] if self.axis == "x" else image[::-1])

    def boxes_to_original(self, boxes_xyxy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        b = np.array(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        h, w = size_hw
        if self.axis == "x":
            return np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
        return np.stack([b[:, 0], h - b[:, 3], b[:, 2], h - b[:, 1]], axis=1)

    def mask_to_original(self, mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        return np.ascontiguousarray(self.apply(np.asarray(mask, dtype=bool)))


@dataclass(frozen=True, repr=False)
class Rotate(View):
    """Rotation by ``quarter_turns`` x 90 degrees counter-clockwise (``np.rot90`` convention)."""

    quarter_turns: int = 1

    def __post_init__(self) -> None:
        if self.quarter_turns not in (1, 2, 3):
            raise AfssValueError(f"quarter_turns must be 1, 2 or 3, got {self.quarter_turns}")

    @property
    def name(self) -> str:
        return f"rot{90 * self.quarter_turns}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(image, k=self.quarter_turns, axes=(0, 1)))

    def output_size_hw(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = size_hw
        return (h, w) if self.quarter_turns == 2 else (w, h)

    def boxes_to_original(self, boxes_xyxy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        b = np.array(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        h, w = size_hw
        x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        if self.quarter_turns == 1:  # original (x, y) -> (y, W - x)
            return np.stack([w - y1, x0, w - y0, x1], axis=1)
        if self.quarter_turns == 2:  # (x, y) -> (W - x, H - y)
            return np.stack([w - x1, h - y1, w - x0, h - y0], axis=1)
        return np.stack([y0, h - x1, y1, h - x0], axis=1)  # (x, y) -> (H - y, x)

    def mask_to_original(self, mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(np.asarray(mask, dtype=bool), k=-self.quarter_turns, axes=(0, 1)))


@dataclass(frozen=True, repr=False)
class Scale(View):
    """Resize by ``factor`` (bilinear up, area-averaging down)."""

    factor: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.factor) and self.factor > 0):
            raise AfssValueError(f"scale factor must be > 0, got {self.factor}")

    @property
    def name(self) -> str:
        return f"scale{self.factor:g}"

    def output_size_hw(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = size_hw
        return (max(1, round(h * self.factor)), max(1, round(w * self.factor)))

    def apply(self, image: np.ndarray) -> np.ndarray:
        h, w = self.output_size_hw(image.shape[:2])
        interp = cv2.INTER_AREA if self.factor < 1 else cv2.INTER_LINEAR
        return cv2.resize(image, (w, h), interpolation=interp)

    def boxes_to_original(self, boxes_xyxy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        b = np.array(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        h, w = size_hw
        sh, sw = self.output_size_hw(size_hw)
        return b * np.array([w / sw, h / sh, w / sw, h / sh])

    def mask_to_original(self, mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        h, w = size_hw
        m = np.asarray(mask, dtype=np.float32)
        if m.shape == (h, w):
            return m >= 0.5
        interp = cv2.INTER_AREA if self.factor > 1 else cv2.INTER_LINEAR
        return cv2.resize(m, (w, h), interpolation=interp) >= 0.5


@dataclass(frozen=True, repr=False)
class Photometric(View):
    """Pixel-value change on uint8 images; geometry is untouched.

    ``kind``: ``"brightness"`` (multiply by ``value``), ``"contrast"`` (stretch around the image mean
    by ``value``) or ``"gamma"`` (``255 * (I / 255) ** value``).
    """

    kind: str = "brightness"
    value: float = 1.0

    KINDS: ClassVar[tuple[str, ...]] = ("brightness", "contrast", "gamma")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise AfssValueError(f"photometric kind must be one of {self.KINDS}, got {self.kind!r}")
        if not (np.isfinite(self.value) and self.value > 0):
            raise AfssValueError(f"{self.kind} value must be > 0, got {self.value}")

    @property
    def name(self) -> str:
        return f"{self.kind}{self.value:g}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image, dtype=np.float32)
        if self.kind == "brightness":
            out = img * self.value
        elif self.kind == "contrast":
            out = (img - img.mean()) * self.value + img.mean()
        else:
            out = 255.0 * (img / 255.0) ** self.value
        return np.clip(np.rint(out), 0, 255).astype(image.dtype)


_FIXED: dict[str, View] = {
    "identity": Identity(),
    "hflip": Flip("x"),
    "vflip": Flip("y"),
    "rot90": Rotate(1),
    "rot180": Rotate(2),
    "rot270": Rotate(3),
}
_PARAMETRIC = ("scale", "brightness", "contrast", "gamma")
VIEW_NAMES: tuple[str, ...] = tuple(_FIXED) + tuple(f"{p}<factor>" for p in _PARAMETRIC)
"""What `parse_views` accepts; ``<factor>`` is a positive number such as ``0.75``."""

FACTOR_RANGES = {"scale": (0.25, 4.0), "brightness": (0.1, 10.0), "contrast": (0.1, 10.0), "gamma": (0.1, 10.0)}
"""Allowed factors per parametric view: wide enough for any useful augmentation, bounded so that one
view cannot take the machine's memory and time."""

_PARAM_RE = re.compile(r"^(scale|brightness|contrast|gamma)([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)$")


def parse_view(name: str) -> View:
    """One view from its spec name (see `VIEW_NAMES`).

    Raises:
        AfssError: unknown name (with the closest valid one), or a factor that is missing or outside
            `FACTOR_RANGES`.
    """
    key = name.strip().lower()
    if key in _FIXED:
        return _FIXED[key]
    match = _PARAM_RE.match(key)
    if match:
        kind, value = match.group(1), float(match.group(2))
        lo, hi = FACTOR_RANGES[kind]
        if not lo <= value <= hi:  # scale100 would make a 100x larger image: minutes and gigabytes per image
            raise AfssError(f"TTA view {name!r}: {kind} factor must be in [{lo:g}, {hi:g}], got {value:g}")
        return Scale(value) if kind == "scale" else Photometric(kind, value)
    stem, rest = re.match(r"^([a-z_]*)(.*)$", key).groups()  # the name, then what should be its factor
    if stem in _PARAMETRIC:
        lo, hi = FACTOR_RANGES[stem]
        given = f", got {rest!r}" if rest else ""
        raise AfssError(f"TTA view {name!r} needs a positive factor in [{lo:g}, {hi:g}] after {stem!r}, "
                        f"e.g. '{stem}{1.25 if stem == 'scale' else 1.2}'{given}")
    close = difflib.get_close_matches(stem or key, [*_FIXED, *_PARAMETRIC], n=1)
    hint = f"; did you mean {close[0] + (rest if close[0] in _PARAMETRIC else '')!r}?" if close else ""
    raise AfssError(f"unknown TTA view {name!r}, expected one of {', '.join(VIEW_NAMES)}{hint}")


def parse_views(spec: str | Sequence[str] | Sequence[View]) -> tuple[View, ...]:
    """Views from a comma-separated spec (``"identity,vflip"``), a list of names, or `View` objects.

    Raises:
        AfssError: empty spec, unknown or repeated view.

    Example:
        >>> [v.name for v in parse_views("identity, vflip, scale0.75")]
        ['identity', 'vflip', 'scale0.75']
    """
    items = [s for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    views = [v if isinstance(v, View) else parse_view(str(v)) for v in items if isinstance(v, View) or str(v).strip()]
    if not views:
        raise AfssError(f"TTA views: expected at least one view name (e.g. 'identity,vflip'), found {spec!r}")
    names = [v.name for v in views]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AfssError(f"TTA views {','.join(names)!r}: {', '.join(repeated)} given more than once")
    return tuple(views)
