"""Drawing helpers for pictures of labels: mask outlines, boxes and score text on RGB images, and grids.

Every function takes and returns RGB ``uint8`` ``(H, W, 3)`` arrays (gray ``(H, W)`` inputs are
expanded) and never modifies its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from afss.errors import AfssValueError
from afss.types import ImageLabels, Instance, LabelSet

Color = tuple[int, int, int]

PALETTE: tuple[Color, ...] = ((0, 255, 0), (255, 64, 64), (64, 160, 255), (255, 200, 0), (255, 0, 255),
                              (0, 255, 255))


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A copy of ``image`` as ``(H, W, 3)`` uint8 RGB (gray and single-channel images expanded)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise AfssValueError(f"image must be uint8, got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return np.ascontiguousarray(img[..., :3]).copy()
    raise AfssValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {img.shape}")


def _thickness(shape: tuple[int, ...]) -> int:
    return max(1, round(min(shape[:2]) / 320))


def draw_text(rgb: np.ndarray, text: str, org_xy: tuple[int, int], color: Color = (255, 255, 255), *,
              scale: float | None = None, background: Color | None = (0, 0, 0)) -> np.ndarray:
    """Draw ``text`` with its top-left corner at ``org_xy`` (pixels), on a filled background; in place
    on ``rgb`` (which must be a writable RGB uint8 array), also returned."""
    scale = scale if scale is not None else max(0.35, min(rgb.shape[:2]) / 700)
    th = max(1, round(scale * 1.5))
    (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
    x, y = int(org_xy[0]), int(org_xy[1])
    x = min(max(0, x), max(0, rgb.shape[1] - tw - 2))
    y = min(max(0, y), max(0, rgb.shape[0] - tht - base - 2))
    if background is not None:
        cv2.rectangle(rgb, (x, y), (x + tw + 2, y + tht + base + 2), background, -1)
    cv2.putText(rgb, text, (x + 1, y + tht + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, color, th, cv2.LINE_AA)
    return rgb


def _color(color: Any) -> Color:
    """An RGB triple of 0-255 values, or one line saying so (``"red"`` is not one)."""
    try:
        c = tuple(int(v) for v in color)
    except (TypeError, ValueError):
        c = ()
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise AfssValueError(f"color must be an RGB triple of 0-255 values, e.g. (0, 255, 0), got {color!r}")
    return c  # type: ignore[return-value]


def draw_instances(rgb: np.ndarray, instances: Iterable[Instance] | ImageLabels, color: Color | None = (0, 255, 0),
                   label: bool = True, *, box: bool = True, names: Mapping[int, str] | None = None,
                   thickness: int | None = None) -> np.ndarray:
    """Draw mask outlines, boxes and score text.

    Args:
        rgb: ``(H, W, 3)`` or ``(H, W)`` uint8 image; not modified.
        instances: the instances (or an `ImageLabels`), masks and boxes in this image's pixels.
        color: RGB colour for all instances; ``None`` cycles through `PALETTE`.
        label: write ``"<name> <score>"`` (``name`` from ``names`` by category id, if given) above the box.
        box: draw the ``box_xyxy`` rectangle.
        names: category id -> name, for the label text.
        thickness: line thickness in pixels; default scales with the image size.

    Returns:
        A new ``(H, W, 3)`` uint8 RGB image.

    Example:
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> m = np.zeros((64, 64), bool); m[10:30, 20:40] = True
        >>> out = draw_instances(img, [Instance.from_mask(m, score=0.9)])
        >>> out.shape, bool(out[10, 20].any())
        ((64, 64, 3), True)
    """
    out = as_rgb(rgb)
    if isinstance(instances, Instance):
        instances = (instances,)
    if isinstance(instances, LabelSet):
        raise AfssValueError("draw_instances draws one image's instances: pass labels.images[k] (an ImageLabels), "
                             "or make_grid for several")
    items = instances.instances if isinstance(instances, ImageLabels) else tuple(instances)
    for k, inst in enumerate(items):
        if not isinstance(inst, Instance):
            raise AfssValueError(f"draw_instances: item {k} is a {type(inst).__name__}, expected an Instance")
    if color is not None:
        color = _color(color)
    th = thickness or _thickness(out.shape)
    for k, inst in enumerate(items):
        c = color if color is not None else tuple(int(v) for v in PALETTE[k % len(PALETTE)])
        if inst.rle is not None:
            m = inst.mask
            if m.shape != out.shape[:2]:
                raise AfssValueError(f"instance {k} mask is {m.shape} (H, W), image is {out.shape[:2]}")
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, c, th, cv2.LINE_8)
        x0, y0, x1, y1 = inst.box_xyxy
        if box:
            cv2.rectangle(out, (int(np.floor(x0)), int(np.floor(y0))), (int(np.ceil(x1)) - 1, int(np.ceil(y1)) - 1),
                          c, max(1, th // 2), cv2.LINE_AA)
        if label:
            name = f"{names.get(inst.category_id, inst.category_id)} " if names else ""
            text = f"{name}{inst.score:.2f}"
            (_, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(out.shape[:2]) / 700), 1)
            draw_text(out, text, (int(x0), int(y0) - tht - base - 3), (0, 0, 0), background=c)
    return out


def make_grid(images: Sequence[np.ndarray], ncols: int, titles: Sequence[str] | None = None, *,
              tile_hw: tuple[int, int] | None = None, pad: int = 4, background: Color = (255, 255, 255),
              row_titles: Sequence[str] | None = None) -> np.ndarray:
    """Tile images into one picture, row-major.

    Args:
        images: RGB or gray uint8 images; each is resized to ``tile_hw`` (default: the first's size).
        ncols: tiles per row.
        titles: one caption per image, drawn in its top-left corner.
        tile_hw: ``(H, W)`` of a tile.
        pad: pixels between tiles and around the grid.
        background: RGB colour of the padding.
        row_titles: one label per row, drawn in a column on the left.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Example:
        >>> make_grid([np.zeros((10, 20, 3), np.uint8)] * 3, ncols=2, pad=1).shape
        (23, 43, 3)
    """
    if not images:
        raise AfssValueError("make_grid needs at least one image")
    if ncols < 1:
        raise AfssValueError(f"ncols must be >= 1, got {ncols}")
    if titles is not None and len(titles) != len(images):
        raise AfssValueError(f"{len(titles)} titles for {len(images)} images")
    th, tw = tile_hw or as_rgb(images[0]).shape[:2]
    nrows = (len(images) + ncols - 1) // ncols
    left = 0
    if row_titles is not None:
        scale = max(0.4, th / 400)
        left = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in row_titles) + 2 * pad
    grid = np.empty((nrows * (th + pad) + pad, left + ncols * (tw + pad) + pad, 3), np.uint8)
    grid[:] = background
    for k, img in enumerate(images):
        tile = as_rgb(img)
        if tile.shape[:2] != (th, tw):
            interp = cv2.INTER_AREA if tile.shape[0] > th else cv2.INTER_LINEAR
            tile = cv2.resize(tile, (tw, th), interpolation=interp)
        if titles is not None and titles[k]:
            draw_text(tile, titles[k], (2, 2), (255, 255, 255), background=(0, 0, 0))
        r, c = divmod(k, ncols)
        y, x = pad + r * (th + pad), left + pad + c * (tw + pad)
        grid[y:y + th, x:x + tw] = tile
    if row_titles is not None:
        scale = max(0.4, th / 400)
        for r, t in enumerate(row_titles[:nrows]):
            (_w, h_), _ = cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            y = pad + r * (th + pad) + th // 2 + h_ // 2
            cv2.putText(grid, t, (pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return grid
