"""Image operations of the photometric teacher: pure functions on gray float32 ``(h, w)`` arrays at
the teacher's work scale (masks are bool ``(h, w)``; points are ``(x, y)`` pixels)."""

from __future__ import annotations

import math

import cv2
import numpy as np

FRAME_FILLING = 0.35  # a component this large, touching two frame sides, is background clutter


def sky_background(fine: np.ndarray, wide: np.ndarray, cells: int = 16) -> tuple[np.ndarray, float, float]:
    """The sky's smooth brightness (flat, or a veil of glare / Earth-shine) and its noise sigma.

    A quadratic surface is fitted to the means of ``cells`` x ``cells`` tiles of ``wide``, starting from
    the darker half and dropping tiles far above the fit (the target, the Earth, the sun), so that
    only sky tiles shape it. Returns ``(background (h, w) float32, sigma of fine, sigma of wide)``.
    """
    h, w = wide.shape
    mean = cv2.resize(wide, (cells, cells), interpolation=cv2.INTER_AREA).ravel().astype(np.float64)
    sq_f = cv2.resize(fine * fine, (cells, cells), interpolation=cv2.INTER_AREA).ravel()
    mean_f = cv2.resize(fine, (cells, cells), interpolation=cv2.INTER_AREA).ravel()
    sq_w = cv2.resize(wide * wide, (cells, cells), interpolation=cv2.INTER_AREA).ravel()
    std_f = np.sqrt(np.maximum(sq_f - mean_f * mean_f, 0.0))
    std_w = np.sqrt(np.maximum(sq_w - mean * mean, 0.0))
    c = (np.arange(cells) + 0.5) / cells * 2 - 1
    cy, cx = np.meshgrid(c, c, indexing="ij")
    cx, cy = cx.ravel(), cy.ravel()
    design = np.column_stack([np.ones_like(cx), cx, cy, cx * cx, cx * cy, cy * cy])
    keep = mean <= np.median(mean)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[keep], mean[keep], rcond=None)
        res = mean - design @ coef
        spread = 1.4826 * float(np.median(np.abs(res[keep]))) + 0.5
        keep = res < 2.5 * spread
    x = ((np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1)[None, :]
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1)[:, None]
    c0, c1, c2, c3, c4, c5 = (np.float32(v) for v in coef)
    background = (c0 + c2 * y + c5 * y * y) + (c1 + c4 * y) * x + c3 * x * x
    return (background.astype(np.float32), max(0.3, float(np.median(std_f[keep]))),
            max(0.3, float(np.median(std_w[keep]))))


def refine_boundary(fg: np.ndarray, resid: np.ndarray, sigma_px: float) -> np.ndarray:
    """Re-decide the outer rim of a mask grown on a blurred image: keep a rim pixel where the sharp
    residual reaches half the local object contrast (the half-maximum point of a blurred step)."""
    if not fg.any():
        return fg
    level = masked_blur(resid, fg, 2 * sigma_px)
    width = max(1, math.ceil(2 * sigma_px))
    core = cv2.erode(fg.astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)).astype(bool)
    rim = fg & ~core
    return fg & ~(rim & (resid < 0.5 * level))


def robust_sigma(values: np.ndarray) -> float:
    """Noise sigma of non-negative residuals: their median is 0.6745 sigma for |N(0, sigma)|."""
    return max(0.3, float(np.median(values[:: max(1, values.size // 20000)])) / 0.6745)


def masked_blur(img: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian mean of ``img`` over ``mask`` pixels only (normalised convolution), computed at a
    quarter of the resolution; ``(h, w)`` float32."""
    h, w = img.shape
    small = (max(1, w // 4), max(1, h // 4))
    d = cv2.resize(mask.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    v = cv2.resize(img * mask, small, interpolation=cv2.INTER_AREA)
    s = max(0.5, sigma_px / 4)
    mean = cv2.GaussianBlur(v, (0, 0), s) / np.maximum(cv2.GaussianBlur(d, (0, 0), s), 1e-3)
    return cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR)


def clutter(fg: np.ndarray, min_frac: float) -> np.ndarray | None:
    """Background clutter to look through, ``(h, w)`` bool or ``None``: the Earth's disc when its limb
    is visible, else a frame-filling bright region (the Earth or a glare veil behind the target)."""
    h, w = fg.shape
    fg8 = fg.astype(np.uint8)
    if cv2.countNonZero(fg8) < min(min_frac, FRAME_FILLING) * h * w:
        return None  # no component is large enough to be either (the usual case: no Earth in view)
    n, labels, stats = component_stats(fg8)
    disc = earth_disc(labels, stats, min_frac)
    if disc is not None:
        return disc
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[k])
    sides = (x == 0) + (y == 0) + (x + bw == w) + (y + bh == h)
    if area >= FRAME_FILLING * h * w and sides >= 2:
        return labels == k
    return None


def earth_disc(labels: np.ndarray, stats: np.ndarray, min_frac: float) -> np.ndarray | None:
    """The Earth among the foreground components, as a disc mask ``(h, w)`` bool, or ``None``.

    A component is the Earth when it is large, touches the frame edge and most of its boundary
    away from the frame edge lies on one circle of radius >= a quarter of the frame (a limb); a
    spacecraft's boundary is polygonal. A target in front of the limb merges with the Earth
    component, so the circle is fitted by trimmed least squares (the best-fitting 60% of points).
    """
    h, w = labels.shape
    disc = None
    for k in range(1, len(stats)):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < min_frac * h * w or not (x == 0 or y == 0 or x + bw == w or y + bh == h):
            continue
        contours, _ = cv2.findContours((labels == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        pts = np.concatenate(contours).reshape(-1, 2).astype(np.float64)
        pts = pts[(pts[:, 0] > 1) & (pts[:, 1] > 1) & (pts[:, 0] < w - 2) & (pts[:, 1] < h - 2)]
        if len(pts) < 0.3 * max(h, w):
            continue
        pts = pts[:: max(1, len(pts) // 400)]
        keep = np.ones(len(pts), bool)
        for _ in range(4):
            cx, cy, rad = fit_circle(pts[keep])
            err = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - rad)
            keep = err <= np.quantile(err, 0.6)
        inliers = err <= max(2.0, 0.01 * rad)
        if rad < 0.25 * max(h, w) or inliers.mean() < 0.4 or inliers.sum() * max(1, len(pts) // 400) < 0.3 * max(h, w):
            continue
        yy, xx = np.ogrid[:h, :w]
        one = (xx - cx) ** 2 + (yy - cy) ** 2 <= rad**2
        disc = one if disc is None else disc | one
    return disc


def fit_circle(pts: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) circle fit to ``(N, 2)`` xy points: ``(cx, cy, radius)``."""
    x, y = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c0 / 2, c1 / 2
    return float(cx), float(cy), float(math.sqrt(max(c2 + cx * cx + cy * cy, 0.0)))


def hysteresis(grow: np.ndarray, seed: np.ndarray, min_area: float) -> np.ndarray:
    """Components of ``grow`` that hold a ``seed`` pixel and at least ``min_area`` pixels."""
    # areas by counting labels: OpenCV's statistics cost far more (see `component_stats`)
    n, labels = cv2.connectedComponents(grow.astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[labels[seed & grow]] = True
    hit &= _areas(labels, grow, n) >= min_area
    hit[0] = False
    return np.take(hit, labels)  # a lookup per pixel; np.take is twice as fast as hit[labels]


def _areas(labels: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Pixels per label ``1..n-1`` of a labelling of ``mask``, counted on the mask's pixels only: a
    frame is mostly sky (5 % foreground: 0.09 ms against 0.45 for every pixel). Entry 0 is left 0."""
    return np.bincount(labels[mask.astype(bool, copy=False)], minlength=n)


def faint_surfaces(flat: np.ndarray, avoid: np.ndarray, inside: np.ndarray | None, *, k_sigma: float,
                   sigma_px: float, min_area: float) -> np.ndarray:
    """Faint surfaces, bool ``(h, w)``: what stays ``k_sigma`` noise sigmas above the sky (hysteresis,
    seeds ``k_sigma + 2``) at a quarter of the resolution, smoothed by ``sigma_px`` (work pixels).

    ``flat`` is the star-free image with the lit foreground already replaced by the sky; nothing
    within ``2 sigma_px`` of ``avoid`` (the lit foreground, the Earth) is kept, so the blurred glow
    around a bright part, or the limb glow, is not taken for a faint surface; within ``inside``
    only, when given. Blobs under ``min_area`` work pixels are noise of the smoothed sky.
    """
    h, w = flat.shape
    quarter = (max(1, w // 4), max(1, h // 4))
    small = cv2.GaussianBlur(cv2.resize(flat, quarter, interpolation=cv2.INTER_AREA), (0, 0), sigma_px / 4)
    sky, noise, _ = sky_background(small, small)
    resid = small - sky  # dim surfaces are brighter than the sky behind them
    grow = resid > max(k_sigma * noise, 1.0)
    seed = resid > max((k_sigma + 2.0) * noise, 2.0)
    r = max(1, round(sigma_px / 2))  # 2 sigma_px at the full work scale
    near = cv2.resize(avoid.astype(np.uint8), quarter, interpolation=cv2.INTER_AREA) > 0
    near = cv2.dilate(near.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    grow &= ~near.astype(bool)
    if inside is not None:
        grow &= cv2.resize(inside.astype(np.uint8), quarter, interpolation=cv2.INTER_NEAREST).astype(bool)
    dim = hysteresis(grow, seed, min_area / 16)
    return cv2.resize(dim.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def component_stats(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``cv2.connectedComponentsWithStats(mask, connectivity=8)`` without the centroids, faster:
    ``(n, labels (h, w) int32, stats (n, 5) int32)``, row 0 the background (its box left 0).

    OpenCV's statistics cost four times the labelling (3.0 ms against 0.7 on a 512² mask, opencv
    5.0); here each box comes from the component's outer contour (one per 8-connected component)
    and the areas from counting labels.
    """
    mask8 = mask.astype(np.uint8)
    n, labels = cv2.connectedComponents(mask8, connectivity=8)
    stats = np.zeros((n, 5), np.int32)
    stats[:, 4] = _areas(labels, mask, n)
    stats[0, 4] = mask8.size - int(stats[1:, 4].sum())
    # two levels: outer boundaries (a component inside another's hole among them), then holes
    contours, hierarchy = cv2.findContours(mask8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    for c, (_, _, _, parent) in zip(contours, hierarchy[0] if contours else (), strict=True):
        if parent < 0:
            x, y = c[0, 0]
            stats[labels[y, x], :4] = cv2.boundingRect(c)
    return n, labels, stats


def group_components(fg: np.ndarray, min_area: float, radius_px: int,
                     apart: np.ndarray | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """Components of ``fg`` of at least ``min_area`` pixels, those closer than ``2 radius_px`` joined
    into one group; components spanning the frame (touching two opposite sides) or touching
    ``apart`` (bool ``(h, w)``, e.g. the Earth) stay alone: a band of limb glow or a cloud is no
    part of a spacecraft.

    Returns ``(n, labels (h, w) int32 with 0 outside, stats (n, 5))`` like
    ``cv2.connectedComponentsWithStats`` (row 0 unused): each group's tight ``x, y, w, h, area``.
    """
    h, w = fg.shape
    n, labels, stats = component_stats(fg)
    big = stats[:, cv2.CC_STAT_AREA] >= min_area
    big[0] = False
    x, y, bw, bh = (stats[:, i] for i in range(4))
    joins = big & ~(((x == 0) & (x + bw == w)) | ((y == 0) & (y + bh == h)))  # a band across the frame
    if apart is not None:
        joins[np.unique(labels[apart & fg])] = False
    # the foreground's pixels, few in a frame of sky: every relabelling below is done on them only
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    out = np.zeros((h, w), np.int32)
    if radius_px < 1 or joins.sum() < 2:
        keep = big[lab]
        out[ys[keep], xs[keep]] = lab[keep]
        return n, out, np.where(big[:, None], stats, 0)
    # which components are near each other, decided at a quarter of the resolution (cheap)
    f = 4
    sw, sh = max(1, w // f), max(1, h // f)
    joined = joins[lab]
    jmask = np.zeros((h, w), np.uint8)
    jmask[ys[joined], xs[joined]] = 1
    small = cv2.resize(jmask, (sw, sh), interpolation=cv2.INTER_AREA) > 0
    r = max(1, round(radius_px / f))
    near = cv2.dilate(small.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    ng, groups_small = cv2.connectedComponents(near, connectivity=8)
    alone = np.flatnonzero(big & ~joins)
    remap = np.zeros(n, np.int32)
    remap[alone] = ng + np.arange(len(alone), dtype=np.int32)
    group_of = groups_small[np.minimum(ys // f, sh - 1), np.minimum(xs // f, sw - 1)]
    out[ys, xs] = np.where(joined, group_of, np.where(big[lab], remap[lab], 0))
    total = ng + len(alone)
    out_stats = np.zeros((total, 5), np.int64)
    for k in range(1, ng):
        gys, gxs = np.nonzero(groups_small == k)
        y0, y1, x0, x1 = gys.min() * f, min(h, (gys.max() + 1) * f), gxs.min() * f, min(w, (gxs.max() + 1) * f)
        m = out[y0:y1, x0:x1] == k
        if not m.any():
            continue
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        out_stats[k] = (x0 + cols[0], y0 + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1, int(m.sum()))
    out_stats[ng:] = stats[alone]
    return total, out, out_stats


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the frame edge.

    Holes lie inside the mask's box, and every pixel outside that box reaches the frame edge, so
    the work is done on the box grown by one pixel (the ring around it is outside): the same result
    as on the whole frame, at the cost of the target's size rather than the frame's.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask.copy()
    h, w = mask.shape
    y0, y1, x0, x1 = max(0, rows[0] - 1), min(h, rows[-1] + 2), max(0, cols[0] - 1), min(w, cols[-1] + 2)
    crop = mask[y0:y1, x0:x1]
    n, labels = cv2.connectedComponents((~crop).astype(np.uint8), connectivity=4)
    outside = np.zeros(n, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    outside[0] = False  # label 0 is the mask itself
    out = mask.copy()
    out[y0:y1, x0:x1] = ~outside[labels]
    return out


def solidity(m: np.ndarray) -> float:
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours))
    hull_area = cv2.contourArea(hull)
    return float(min(1.0, m.sum() / hull_area)) if hull_area > 0 else 0.0


def border_fraction(m: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Fraction of the component's perimeter that lies on the frame edge."""
    per = cv2.arcLength(max(cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0],
                            key=cv2.contourArea), True)
    on = 0
    if x == 0:
        on += int(m[:, 0].sum())
    if y == 0:
        on += int(m[0].sum())
    if x + m.shape[1] == w:
        on += int(m[:, -1].sum())
    if y + m.shape[0] == h:
        on += int(m[-1].sum())
    return float(min(1.0, on / max(per, 1.0)))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box_mask(shape_hw: tuple[int, int], box: np.ndarray) -> np.ndarray:
    h, w = shape_hw
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def to_input_size(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    if mask.shape == (h, w):
        return mask
    soft = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return soft >= 0.5
