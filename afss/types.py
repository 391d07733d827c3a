"""The data carriers every stage speaks, from dataset reader to teacher, refiner and scorer.

Conventions, stated once:

* Boxes are ``box_xyxy``: float ``(x0, y0, x1, y1)`` in pixels of the *original* image, continuous
  coordinates, so a mask whose foreground spans pixel columns 3..7 has ``x0 = 3`` and ``x1 = 8``
  (the same extents pycocotools' ``toBbox`` reports as ``[x, y, w, h]``).
* Sizes are ``(height, width)``; images in memory are RGB ``uint8`` arrays of shape ``(H, W, 3)``.
* Masks are boolean ``(H, W)`` arrays at the original resolution. An `Instance` keeps its mask as a
  compressed COCO RLE (``counts`` as ``str``) so that thousands of full-size masks fit in memory;
  ``Instance.mask`` decodes it on demand.
* Category and image ids start at 1 (pycocotools treats 0 as "no match").
* COCO ``[x, y, w, h]`` exists only in :mod:`afss.io.coco`.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from afss.errors import AfssValueError

__all__ = ["FrozenDict", "ImageLabels", "Instance", "LabelSet", "Rle", "decode_mask", "encode_mask", "mask_box_xyxy", "rle_area",
           "rle_box_xyxy"]

Rle = dict[str, Any]
"""COCO run-length encoding: ``{"size": [H, W], "counts": str}``."""


def encode_mask(mask: np.ndarray) -> Rle:
    """Encode a boolean ``(H, W)`` mask as compressed COCO RLE with ``counts`` as ``str``."""
    if mask.ndim != 2:
        raise AfssValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(rle: Rle) -> np.ndarray:
    """Decode COCO RLE (compressed str/bytes counts, or uncompressed list counts) to bool ``(H, W)``."""
    if isinstance(rle.get("counts"), list):
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def rle_area(rle: Rle) -> int:
    return int(mask_utils.area(_bytes_rle(rle)))


def rle_box_xyxy(rle: Rle) -> tuple[float, float, float, float]:
    """Tight box of an RLE mask; ``(0, 0, 0, 0)`` for an empty mask."""
    x, y, w, h = mask_utils.toBbox(_bytes_rle(rle)).tolist()
    return (float(x), float(y), float(x + w), float(y + h))


def _boolean(mask: Any) -> np.ndarray:
    """``mask`` as a bool array, where it holds booleans or 0/1 values only (or 0/255 in ``uint8``, how
    OpenCV and image files store a binary mask)."""
    arr = np.asarray(mask)
    if arr.dtype == np.uint8 and arr.size and arr.max() == 255 and ((arr == 0) | (arr == 255)).all():
        return arr > 0
    if arr.dtype != bool:
        if arr.size and not ((arr == 0) | (arr == 1)).all():
            raise AfssValueError(f"mask must be boolean or 0/1, got {arr.dtype} values in [{arr.min():.3g}, {arr.max():.3g}]: "
                             "threshold probabilities or logits first, e.g. probs > 0.5")
        arr = arr.astype(bool)
    return arr


def mask_box_xyxy(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box of a boolean mask in continuous pixel coordinates; ``(0, 0, 0, 0)`` if empty."""
    # occupied rows and columns, not every pixel's coordinates: 20x faster on a 512² mask
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def _bytes_rle(rle: Rle) -> Rle:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


class FrozenDict(dict):
    """A read-only dict: the carriers' sub-scores, parts, meta, categories and info. Unlike
    `types.MappingProxyType` it pickles and deep-copies (multiprocessing, joblib, ``copy.deepcopy``)
    and prints as the dict it is; changing it raises ``TypeError`` (build a new carrier instead,
    e.g. ``inst.replace(scores={...})``)."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("the carriers' mappings are read-only: build a new one, e.g. im.replace(meta={**im.meta, ...})")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict) -> FrozenDict:
        return FrozenDict(copy.deepcopy(dict(self), memo))


def _frozen(mapping: Mapping[str, Any] | None, what: str = "mapping") -> Mapping[str, Any]:
    if mapping is not None and not isinstance(mapping, Mapping):
        raise AfssValueError(f"{what}: expected a mapping such as {{'name': value}}, got {type(mapping).__name__}")
    return mapping if isinstance(mapping, FrozenDict) else FrozenDict(mapping or {})


def _scalar(value: Any) -> Any:
    """A 0-d array or tensor (``scores[k]`` of a model's output) as the Python number it holds."""
    return value.item() if hasattr(value, "item") and np.ndim(value) == 0 else value


def _whole(value: Any, what: str, least: int) -> int:
    """``value`` as an int >= ``least`` (NumPy integers too); one line naming ``what`` otherwise."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise AfssValueError(f"{what} must be a whole number >= {least}, got {value!r}")
    return int(value)


def _real(value: Any, what: str, keep_int: bool = False) -> float:
    """``value`` as a float (an int kept as it is with ``keep_int``); NaN, text and booleans refused."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AfssValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value) if keep_int else float(value)
    value = float(value)
    if math.isnan(value):
        raise AfssValueError(f"{what} must be a number, not NaN")
    return value


def _normal_rle(rle: Any, what: str) -> Rle:
    """``rle`` as afss keeps it: compressed, ``counts`` as ``str``, from what pycocotools gives
    (``bytes`` counts) or an uncompressed RLE (a list of counts)."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise AfssValueError(f"{what}: expected COCO RLE {{'size': [H, W], 'counts': ...}}, got {type(rle).__name__}; "
                             "from a boolean mask use Instance.from_mask(mask)")
    try:
        h, w = (_whole(v, f"{what} size", 0) for v in rle["size"])
    except (TypeError, ValueError):
        raise AfssValueError(f"{what}: size must be [H, W], got {rle['size']!r}") from None
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed: runs that must cover the image exactly
        if not all(isinstance(c, numbers.Integral) and c >= 0 for c in counts) or sum(counts) != h * w:
            raise AfssValueError(f"{what}: uncompressed counts must be runs >= 0 adding up to H x W = {h * w}")
        counts = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, str):
        raise AfssValueError(f"{what}: counts must be a string, bytes or a list of runs, got {type(counts).__name__}")
    if isinstance(rle, dict) and rle["counts"] is counts and isinstance(rle["size"], list):
        return rle  # already in afss's form: keep the caller's dict
    return {"size": [h, w], "counts": counts}


@dataclass(frozen=True, repr=False)
class Instance:
    """One object in one image: a box, optionally a mask, a score and where it came from.

    Args:
        box_xyxy: ``(x0, y0, x1, y1)`` float pixels of the original image.
        rle: the instance mask as COCO RLE at the original size, or ``None`` for boxes-only labels.
        score: confidence in [0, 1]; ground truth uses 1.0.
        category_id: 1-based category id.
        source: provenance, e.g. ``"gt"``, ``"photometric"``, ``"grounded-sam2"``, ``"wbf"``.
        iscrowd: COCO crowd flag (ground truth only); crowd regions are ignored by COCO AP.
        scores: named sub-scores, e.g. ``{"box_score": .8, "mask_score": .9}``.
        parts: named part masks as RLE, e.g. SPARK's ``{"body": ..., "panels": ...}``.
    """

    box_xyxy: tuple[float, float, float, float]
    rle: Rle | None = None
    score: float = 1.0
    category_id: int = 1
    source: str = ""
    iscrowd: bool = False
    scores: Mapping[str, float] = field(default_factory=dict)
    parts: Mapping[str, Rle] = field(default_factory=dict)

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in np.asarray(self.box_xyxy, dtype=float).reshape(-1))
        if len(box) != 4:
            raise AfssValueError(f"box_xyxy needs 4 numbers (x0, y0, x1, y1), got {len(box)}")
        if not (box[2] >= box[0] and box[3] >= box[1]):
            raise AfssValueError(f"box_xyxy must have x1 >= x0 and y1 >= y0, got {box}")
        category = self.category_id if type(self.category_id) is int else _whole(self.category_id, "category_id", 0)
        if category < 1:
            raise AfssValueError(f"category_id must be >= 1, got {category} (COCO tools treat 0 as "
                                 "'no category'; number categories from 1)")
        object.__setattr__(self, "category_id", category)
        object.__setattr__(self, "box_xyxy", box)
        object.__setattr__(self, "score", _real(self.score, "score"))
        if self.rle is not None:
            object.__setattr__(self, "rle", _normal_rle(self.rle, "rle"))
        scores = _frozen(self.scores, "scores")
        if not all((type(v) is float and not math.isnan(v)) or type(v) is int for v in scores.values()):
            scores = FrozenDict({k: _real(v, f"scores[{k!r}]", keep_int=True) for k, v in scores.items()})
        object.__setattr__(self, "scores", scores)
        parts = _frozen(self.parts, "parts")
        object.__setattr__(self, "parts", FrozenDict({k: _normal_rle(v, f"parts[{k!r}]") for k, v in parts.items()})
                           if parts else parts)

    def __repr__(self) -> str:
        mask = "None" if self.rle is None else f"<RLE {self.rle['size'][0]}x{self.rle['size'][1]}>"
        box = ", ".join(f"{v:.1f}" for v in self.box_xyxy)
        extra = "".join(f", {k}={v!r}" for k, v in (("scores", dict(self.scores)), ("parts", list(self.parts)))
                        if v)
        return (f"Instance(box_xyxy=({box}), score={self.score:.3g}, category_id={self.category_id}, "
                f"source={self.source!r}, rle={mask}{', iscrowd=True' if self.iscrowd else ''}{extra})")

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray,
        *,
        box_xyxy: Sequence[float] | None = None,
        parts: Mapping[str, np.ndarray] | None = None,
        **kwargs: Any,
    ) -> Instance:
        """Build from a boolean (or 0/1, or ``uint8`` 0/255) ``(H, W)`` mask; the box defaults to the
        mask's tight extents.

        Raises:
            ValueError: other values, such as probabilities or logits (as booleans, every non-zero
                value would be foreground): threshold them first, e.g. ``probs > 0.5``.
        """
        mask = _boolean(mask)
        box = mask_box_xyxy(mask) if box_xyxy is None else tuple(box_xyxy)
        enc_parts = {name: encode_mask(_boolean(m)) for name, m in (parts or {}).items()}
        return cls(box_xyxy=box, rle=encode_mask(mask), parts=enc_parts, **kwargs)

    @property
    def detector_score(self) -> float:
        """The detector's confidence, what picks the top-1 instance of an image (as the reference code
        does): ``scores["box_score"]`` where the teacher recorded one, else ``score``."""
        return float(self.scores.get("box_score", self.score))

    @property
    def mask(self) -> np.ndarray | None:
        """The boolean ``(H, W)`` mask, decoded from RLE, or ``None`` for a boxes-only instance."""
        return None if self.rle is None else decode_mask(self.rle)

    @property
    def area(self) -> float:
        """Mask area in pixels, or box area for a boxes-only instance."""
        if self.rle is not None:
            return float(rle_area(self.rle))
        x0, y0, x1, y1 = self.box_xyxy
        return (x1 - x0) * (y1 - y0)

    def part_mask(self, name: str) -> np.ndarray:
        return decode_mask(self.parts[name])

    def replace(self, **changes: Any) -> Instance:
        return replace(self, **changes)


@dataclass(frozen=True, repr=False)
class ImageLabels:
    """One image and its instances (ground truth or predictions).

    Args:
        file_name: path of the image relative to the label set's ``image_root`` (or absolute).
        height, width: size of the stored image in pixels (EXIF orientation is ignored everywhere).
        instances: zero or more instances; zero is normal.
        image_id: 1-based COCO image id.
        error: why this image has no usable result (unreadable file, nothing found, filtered out),
            ``None`` when it was processed normally. Recorded, never silently dropped.
        meta: anything else a reader knows (class name, pose, domain), kept through COCO round trips.
    """

    file_name: str
    height: int
    width: int
    instances: tuple[Instance, ...] = ()
    image_id: int = 0
    error: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "file_name", os.fspath(self.file_name))  # a Path works as its text
        for name in ("height", "width", "image_id"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:  # the common case checked without building a message
                object.__setattr__(self, name, _whole(value, f"{self.file_name}: {name}", 0))
        if self.error is not None and not isinstance(self.error, str):
            raise AfssValueError(f"{self.file_name}: error must be a string or None, got {type(self.error).__name__}")
        if isinstance(self.instances, Instance):
            raise AfssValueError(f"{self.file_name}: instances must be a sequence of Instance objects: (instance,) for one")
        object.__setattr__(self, "instances", tuple(self.instances))
        object.__setattr__(self, "meta", _frozen(self.meta, f"{self.file_name}: meta"))
        for i, inst in enumerate(self.instances):
            if not isinstance(inst, Instance):
                raise AfssValueError(f"{self.file_name}: instance {i} is a {type(inst).__name__}, expected an Instance "
                                     "(Instance(box_xyxy=(x0, y0, x1, y1)) or Instance.from_mask(mask))")
            if inst.rle is not None and tuple(inst.rle["size"]) != (self.height, self.width):
                raise AfssValueError(
                    f"{self.file_name}: instance {i} mask is {tuple(inst.rle['size'])} (H, W), "
                    f"image is {(self.height, self.width)}"
                )

    @classmethod
    def empty(cls, file_name: str, height: int, width: int, error: str | None = None, **kw: Any) -> ImageLabels:
        return cls(file_name=file_name, height=height, width=width, error=error, **kw)

    @property
    def size_hw(self) -> tuple[int, int]:
        return (self.height, self.width)

    def boxes(self) -> np.ndarray:
        """``(N, 4)`` float array of ``box_xyxy``."""
        return np.array([i.box_xyxy for i in self.instances], dtype=float).reshape(-1, 4)

    def scores(self) -> np.ndarray:
        return np.array([i.score for i in self.instances], dtype=float)

    def top1(self) -> ImageLabels:
        """Keep only the highest-``score`` instance (the paper's one-target-per-image setting).
        `afss.label.label_images` ``(top1=True)`` picks by `Instance.detector_score` instead, as the
        reference code does."""
        if len(self.instances) <= 1:
            return self
        best = max(self.instances, key=lambda i: i.score)
        return replace(self, instances=(best,))

    def replace(self, **changes: Any) -> ImageLabels:
        return replace(self, **changes)

    def __repr__(self) -> str:
        n = len(self.instances)
        extra = (f", error={self.error!r}" if self.error is not None else "") + (f", meta={dict(self.meta)!r}"
                                                                                  if self.meta else "")
        return (f"ImageLabels({self.file_name!r}, {self.height}x{self.width} (HxW), image_id={self.image_id}, "
                f"{n} instance{'' if n == 1 else 's'}{extra})")


@dataclass(frozen=True, repr=False)
class LabelSet:
    """A collection of labelled images: what every stage reads and writes (as COCO JSON on disk).

    Args:
        images: the images in order, with unique 1-based ``image_id``.
        categories: ``{category_id: name}``; single-class "spacecraft" by default.
        image_root: folder that ``file_name`` paths are relative to (``None``: relative to CWD).
        info: run provenance (tool, stage, models, thresholds, versions); goes to COCO ``info``.
    """

    images: tuple[ImageLabels, ...]
    categories: Mapping[int, str] = field(default_factory=lambda: {1: "spacecraft"})
    image_root: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.images, ImageLabels):
            raise AfssValueError("images must be a sequence of ImageLabels: [image] for one")
        images = tuple(self.images)
        for k, im in enumerate(images):
            if not isinstance(im, ImageLabels):
                raise AfssValueError(f"images[{k}] is a {type(im).__name__}, expected ImageLabels(file_name, height, "
                                     "width, instances); to read a file or folder: afss.read_coco(path), "
                                     "afss.label.images_from_folder(folder)")
        ids = [im.image_id for im in images]
        if any(i == 0 for i in ids):  # ids for the images the caller left without one, the others kept
            used = set(ids)
            free = (k for k in itertools.count(1) if k not in used)
            images = tuple(im if im.image_id else im.replace(image_id=next(free)) for im in images)
            ids = [im.image_id for im in images]
        if len(set(ids)) != len(ids):
            raise AfssValueError("image ids must be unique")
        object.__setattr__(self, "images", images)
        if self.image_root is not None:
            object.__setattr__(self, "image_root", os.fspath(self.image_root))  # a Path compares equal as text
        if not isinstance(self.categories, Mapping):
            raise AfssValueError(f"categories: expected {{id: name}}, e.g. {{1: 'spacecraft'}}, got "
                                 f"{type(self.categories).__name__}")
        object.__setattr__(self, "categories", FrozenDict(
            {_whole(k, "a category id", 1): str(v) for k, v in self.categories.items()}))
        object.__setattr__(self, "info", _frozen(self.info, "info"))

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"LabelSet({len(self.images)} images, {self.num_instances} instances, "
                f"categories={dict(self.categories)!r}, image_root={self.image_root!r})")

    def __iter__(self):
        return iter(self.images)

    @property
    def num_instances(self) -> int:
        return sum(len(im.instances) for im in self.images)

    def image_path(self, image: ImageLabels) -> str:
        """Where the image file is on disk."""
        name = image.file_name
        path = name if self.image_root is None or os.path.isabs(name) else os.path.join(self.image_root, name)
        if "\\" in name and os.sep == "/" and not os.path.exists(path):
            # a list written on Windows: its separators are folders here too (as `afss eval` pairs names)
            path = path[: len(path) - len(name)] + name.replace("\\", "/")
        return path

    def replace(self, **changes: Any) -> LabelSet:
        return replace(self, **changes)
