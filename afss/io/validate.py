"""The one validation layer for COCO input: every value a reader takes from a COCO file passes here.

A COCO file is user input, and pycocotools trusts it: a NaN or 1e300 polygon coordinate makes
``frPyObjects`` allocate without bound (the process grows until the OOM killer stops it), and RLE
counts that do not add up to the image size make ``decode`` write past its buffer. So each value is
checked for its type, for being finite and for a range that bounds memory and time *before* any
mask is built. Every failure is one `AfssError` line naming the file, the record and the field:

    labels.json: annotation 7 (image 3): segmentation: polygon coordinate nan is not a finite number

Limits (generous for any camera image, small enough that one record cannot take the machine):
sides up to `MAX_SIDE` pixels and `MAX_PIXELS` in all; polygon and box coordinates within one image
size outside the frame; at most `MAX_POLYGON_VALUES` polygon numbers per annotation.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping
from typing import Any

import numpy as np

from afss.errors import AfssError

__all__ = [
    "MAX_PIXELS",
    "MAX_POLYGON_VALUES",
    "MAX_SIDE",
    "check_counts",
    "check_file_name",
    "check_int",
    "check_mapping",
    "check_number",
    "check_polygons",
    "check_text",
    "rle_counts_sum",
]

MAX_SIDE = 65536
MAX_PIXELS = 1 << 28  # 268 Mpx: a 16k x 16k frame; one bool mask of it is 256 MB
MAX_POLYGON_VALUES = 1_000_000


ABSOLUTE_HINT = "pass --allow-absolute-paths, allow_absolute_paths=True from Python, to accept it"

def _found(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_int(value: Any, where: str, field: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An integer (``3`` or ``3.0``; not ``True``, not ``"3"``) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise AfssError(f"{where}: {field}: expected an integer, found {_found(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise AfssError(f"{where}: {field}: {value} is out of range [{minimum}, {maximum}]")
    return value


def check_number(value: Any, where: str, field: str, *, minimum: float | None = None,
                 maximum: float | None = None) -> float:
    """A finite number within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AfssError(f"{where}: {field}: expected a number, found {_found(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise AfssError(f"{where}: {field}: {value} is not a finite number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise AfssError(f"{where}: {field}: {value:g} is out of range [{minimum:g}, {maximum:g}]")
    return value


def check_text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise AfssError(f"{where}: {field}: expected a string, found {_found(value)}")
    return value


def check_mapping(value: Any, where: str, field: str) -> Mapping[str, Any]:
    """An object; ``None`` counts as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AfssError(f"{where}: {field}: expected an object, found a {type(value).__name__}")
    return value


def check_file_name(value: Any, where: str, *, allow_absolute: bool = False) -> str:
    """A relative path that stays under the image root (no ``/abs`` and no ``../`` escape), unless
    ``allow_absolute``: a labels file must not make afss open files anywhere on the machine."""
    name = check_text(value, where, "file_name")
    if not name.strip():
        raise AfssError(f"{where}: file_name is empty")
    if "\x00" in name:
        raise AfssError(f"{where}: file_name contains a NUL character")
    if allow_absolute:
        return name
    if os.path.isabs(name) or posixpath.isabs(name.replace("\\", "/")):
        raise AfssError(f"{where}: file_name {name!r} is an absolute path; file names must be relative to the "
                        f"image root ({ABSOLUTE_HINT})")
    if posixpath.normpath(name.replace("\\", "/")).split("/")[0] == "..":
        raise AfssError(f"{where}: file_name {name!r} points outside the image root "
                        f"({ABSOLUTE_HINT})")
    return name


def check_polygons(seg: list, h: int, w: int, where: str) -> list[list[float]]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (a flat list is taken as one polygon):
    finite coordinates within one image size outside the frame, at most `MAX_POLYGON_VALUES`."""
    polys = [seg] if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seg) else seg
    total = 0
    out = []
    for k, poly in enumerate(polys):
        if not isinstance(poly, (list, tuple)):
            raise AfssError(f"{where}: segmentation: polygon {k} is a {type(poly).__name__}, expected a list of "
                            "numbers [x0, y0, x1, y1, ...]")
        total += len(poly)
        if total > MAX_POLYGON_VALUES:
            raise AfssError(f"{where}: segmentation: more than {MAX_POLYGON_VALUES} polygon numbers")
        if len(poly) % 2:
            raise AfssError(f"{where}: segmentation: polygon {k} has an odd count of numbers ({len(poly)}), "
                            "expected x, y pairs")
        try:
            arr = np.asarray(poly, dtype=float)
        except (TypeError, ValueError) as e:
            raise AfssError(f"{where}: segmentation: polygon {k} holds a value that is not a number") from e
        if arr.ndim != 1 or any(isinstance(v, bool) for v in poly):
            raise AfssError(f"{where}: segmentation: polygon {k} holds a value that is not a number")
        if not np.isfinite(arr).all():
            bad = arr[~np.isfinite(arr)][0]
            raise AfssError(f"{where}: segmentation: polygon coordinate {bad} is not a finite number")
        xs, ys = arr[0::2], arr[1::2]
        if arr.size and (xs.min() < -w or xs.max() > 2 * w or ys.min() < -h or ys.max() > 2 * h):
            raise AfssError(f"{where}: segmentation: polygon {k} reaches ({xs.min():g}..{xs.max():g}, "
                            f"{ys.min():g}..{ys.max():g}), far outside its {w}x{h} (W x H) image")
        if len(poly) >= 6:
            out.append(arr.tolist())
    if not out:
        raise AfssError(f"{where}: segmentation: no polygon with 3 or more points")
    return out


def rle_counts_sum(counts: str) -> int:
    """Validate compressed COCO RLE ``counts`` and return the pixel count they cover.

    pycocotools has no validator (its decoder writes as many pixels as the counts say), so this
    decodes the string the way its ``rleFrString`` does, vectorised: 5-bit groups from chars 48..111,
    bit 0x20 continues a number, bit 0x10 of the last group is the sign, and counts from the fourth on
    are stored as the difference to the count two before.

    Raises:
        ValueError: a character outside the alphabet, a number cut off, too long, or a negative count.
    """
    c = np.frombuffer(counts.encode("latin-1", errors="replace"), dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return 0
    if c.min() < 0 or c.max() > 63:
        raise ValueError("counts hold characters outside the RLE alphabet")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise ValueError("counts end in the middle of a number")
    group = np.concatenate(([0], np.cumsum(last)[:-1]))
    start = np.flatnonzero(np.concatenate(([True], last[:-1])))
    k = np.arange(c.size) - start[group]
    if k.max() > 6:
        raise ValueError("a count is longer than 35 bits")
    x = np.zeros(start.size, dtype=np.int64)
    np.add.at(x, group, (c & 0x1F) << (5 * k))
    ends = np.flatnonzero(last)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.int64(1) << (5 * (k[ends][negative] + 1))
    cnts = x.copy()
    cnts[3::2] = np.cumsum(x[1::2])[1:]
    cnts[4::2] = np.cumsum(x[2::2])[1:]
    if (cnts < 0).any():
        raise ValueError("counts decode to a negative run length")
    return int(cnts.sum())


def check_counts(counts: Any, h: int, w: int, where: str) -> str | list[int]:
    """RLE ``counts`` (compressed str/bytes or an uncompressed list) that cover exactly ``h * w`` pixels;
    uncompressed counts that stop short are completed with background (a common shorthand)."""
    if isinstance(counts, bytes):
        counts = counts.decode("latin-1")
    if isinstance(counts, str):
        try:
            total = rle_counts_sum(counts)
        except ValueError as e:
            raise AfssError(f"{where}: segmentation: malformed RLE counts ({e})") from e
    elif isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise AfssError(f"{where}: segmentation: uncompressed RLE counts must be non-negative integers")
        total = sum(counts)
        if total < h * w:  # short counts leave pycocotools' buffer uninitialised: the rest is background
            counts = counts + [h * w - total] if len(counts) % 2 == 0 else [*counts[:-1], counts[-1] + h * w - total]
            total = h * w
    else:
        raise AfssError(f"{where}: segmentation: RLE counts is a {type(counts).__name__}, expected a string or "
                        "a list of integers")
    if total != h * w:
        raise AfssError(f"{where}: segmentation: RLE counts cover {total} pixels, its {h}x{w} image has {h * w}")
    return counts
