"""Backgrounds and lens light: deep space with stars, the Earth (disc or limb with clouds), sun glare.

All images here are linear float32 ``(H, W, 3)`` RGB, 1.0 = nominal full scale before exposure.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def fbm(rng: np.random.Generator, shape_hw: tuple[int, int], *, base: int = 4, octaves: int = 5,
        gain: float = 0.5) -> np.ndarray:
    """Fractal value noise in [0, 1], ``(H, W)`` float32, wrapping horizontally-ish (smooth, cheap)."""
    h, w = shape_hw
    out = np.zeros((h, w), dtype=np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        g = base * 2**k
        grid = rng.random((max(2, g * h // max(h, w)) + 1, g + 1), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= gain
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def add_stars(img: np.ndarray, rng: np.random.Generator, per_10k_px: float) -> None:
    """Add point stars in place (power-law brightness, a few bright ones spread over a cross)."""
    h, w = img.shape[:2]
    n = rng.poisson(per_10k_px * h * w / 1e4)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    mag = (0.02 * rng.pareto(1.6, n) + 0.01).astype(np.float32)
    tint = np.stack([np.ones(n), 0.9 + 0.1 * rng.random(n), 0.8 + 0.3 * rng.random(n)], 1).astype(np.float32)
    np.add.at(img, (ys, xs), mag[:, None] * tint)
    bright = mag > 0.15
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        yy, xx = np.clip(ys[bright] + dy, 0, h - 1), np.clip(xs[bright] + dx, 0, w - 1)
        np.add.at(img, (yy, xx), 0.3 * mag[bright, None] * tint[bright])


def periodic_noise(rng: np.random.Generator, size: int = 128, cells: int = 8) -> np.ndarray:
    """Tileable smooth value noise ``(size, size)`` float32 in [0, 1]."""
    grid = rng.random((cells, cells), dtype=np.float32)
    big = cv2.resize(np.tile(grid, (3, 3)), (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)
    tile = big[size:2 * size, size:2 * size]
    lo, hi = float(tile.min()), float(tile.max())
    return (tile - lo) / max(hi - lo, 1e-6)


def sphere_noise(tex: np.ndarray, pts: tuple[np.ndarray, np.ndarray, np.ndarray], freqs: list[float],
                 gains: tuple[float, ...]) -> np.ndarray:
    """Fractal noise on the unit sphere by tri-planar projection of a tileable ``(T, T, C)`` texture.

    Args:
        tex: ``(T, T, C)`` float32 tileable noise, one independent noise per channel.
        pts: ``(wx, wy, wz)`` unit-sphere coordinates, each ``(h, w)`` float32.
        freqs: octave frequencies (texture periods per unit length).
        gains: per-channel amplitude ratio between octaves.

    Returns:
        ``(h, w, C)`` float32 in [0, 1].
    """
    t = tex.shape[0]
    c = tex.shape[2]
    wx, wy, wz = pts
    weights = [wx * wx, wy * wy, wz * wz]
    weights = [q * q for q in weights]
    total_w = weights[0] + weights[1] + weights[2] + np.float32(1e-6)
    out = np.zeros(wx.shape + (c,), np.float32)
    g = np.asarray(gains, np.float32)
    for (a, b), wgt in zip(((wy, wz), (wx, wz), (wx, wy)), weights):
        if float((wgt / total_w).max()) < 1e-3:
            continue
        acc = np.zeros(wx.shape + (c,), np.float32)
        amp, norm = np.ones(c, np.float32), np.zeros(c, np.float32)
        for k, f in enumerate(freqs):
            mx = a * np.float32(f * t) + np.float32(37.0 * k)
            my = b * np.float32(f * t) + np.float32(71.0 * k)
            acc += amp * cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP).reshape(acc.shape)
            norm += amp
            amp = amp * g
        out += (wgt / total_w)[..., None] * (acc / norm)
    return out


def render_earth(img: np.ndarray, rng: np.random.Generator, *, center_xy: tuple[float, float], radius_px: float,
                 sun_dir: np.ndarray) -> np.ndarray:
    """Draw the Earth in place (orthographic disc with land, ocean, clouds, terminator, atmosphere).

    The surface is shaded at half resolution and upsampled; the disc edge is exact at full resolution.

    Returns the ``(H, W)`` bool mask of Earth pixels (disc only, not the thin atmosphere glow).
    """
    h, w = img.shape[:2]
    ex, ey = center_xy
    earth = np.zeros((h, w), dtype=bool)
    pad = 0.06 * radius_px
    x0, x1 = int(max(0, math.floor(ex - radius_px - pad))), int(min(w, math.ceil(ex + radius_px + pad)))
    y0, y1 = int(max(0, math.floor(ey - radius_px - pad))), int(min(h, math.ceil(ey + radius_px + pad)))
    if x1 <= x0 or y1 <= y0:
        return earth
    L = np.asarray(sun_dir, dtype=np.float32)
    rot = np.linalg.qr(rng.standard_normal((3, 3)))[0].astype(np.float32)
    tex = np.stack([periodic_noise(rng, 128, 8), periodic_noise(rng, 128, 8)], axis=2)
    f0 = rng.uniform(0.7, 1.5)
    n_oct = int(np.clip(math.ceil(math.log2(max(radius_px / 12.0, 2.0) / f0)), 3, 6))
    freqs = [f0 * 2**k for k in range(n_oct)]

    # half-resolution surface
    rh, rw = max(1, (y1 - y0 + 1) // 2), max(1, (x1 - x0 + 1) // 2)
    xs = (x0 + (np.arange(rw, dtype=np.float32) + 0.5) * (x1 - x0) / rw - ex) / radius_px
    ys = (y0 + (np.arange(rh, dtype=np.float32) + 0.5) * (y1 - y0) / rh - ey) / radius_px
    dx, dy = np.meshgrid(xs, ys)
    r2 = np.clip(dx * dx + dy * dy, 0.0, 1.0)
    nz = -np.sqrt(1.0 - r2)
    ndl = dx * L[0] + dy * L[1] + nz * L[2]
    wpts = tuple(rot[i, 0] * dx + rot[i, 1] * dy + rot[i, 2] * nz for i in range(3))
    noise = sphere_noise(tex, wpts, freqs, (0.5, rng.uniform(0.5, 0.7)))
    land_t, cloud_t = noise[..., 0], noise[..., 1]
    sea = rng.uniform(0.5, 0.62)
    land = _smoothstep(sea, sea + 0.02, land_t)[..., None]
    ocean_rgb = np.array([0.012, 0.04, 0.12], np.float32)
    land_rgb = np.array([0.1, 0.1, 0.05], np.float32) if rng.random() < 0.5 else np.array([0.2, 0.15, 0.09], np.float32)
    albedo = ocean_rgb * (1 - land) + land_rgb * land * (0.7 + 0.6 * land_t[..., None])
    c_thr = rng.uniform(0.4, 0.62)
    clouds = _smoothstep(c_thr, c_thr + rng.uniform(0.08, 0.25), cloud_t)[..., None]
    albedo = albedo * (1 - clouds) + np.float32(rng.uniform(0.4, 0.75)) * clouds
    light = (np.clip(ndl + 0.04, 0.0, None) / 1.04)[..., None]
    rim = (1.0 - np.sqrt(1 - r2))[..., None]  # 0 at the disc centre, 1 at the limb
    haze = np.array([0.08, 0.18, 0.45], np.float32) * (0.15 + 1.0 * rim**3) * np.clip(ndl + 0.15, 0, None)[..., None]
    disc = (albedo * light + haze) * np.float32(rng.uniform(0.7, 1.1))
    disc = cv2.resize(disc.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    glow_l = cv2.resize(np.clip(ndl + 0.3, 0, None).astype(np.float32), (x1 - x0, y1 - y0))

    # full-resolution edge and atmosphere glow
    fx_ = (np.arange(x0, x1, dtype=np.float32) + 0.5 - ex) / radius_px
    fy_ = (np.arange(y0, y1, dtype=np.float32) + 0.5 - ey) / radius_px
    r = np.sqrt(fx_[None, :] ** 2 + fy_[:, None] ** 2)
    inside = r < 1.0
    glow = (np.exp(-np.clip(r - 1.0, 0, None) / 0.01) * glow_l * 0.5)[..., None] * np.array([0.1, 0.25, 0.7], np.float32)
    region = img[y0:y1, x0:x1]
    region[:] = np.where(inside[..., None], disc, region + np.where((r < 1.06)[..., None], glow, 0.0))
    earth[y0:y1, x0:x1] = inside
    return earth


def add_glare(img: np.ndarray, rng: np.random.Generator, sun_xy: tuple[float, float], strength: float) -> None:
    """Add sun glare in place: halo, diffraction spikes, flare ghosts and a veil (lens effects, drawn
    at half resolution and upsampled)."""
    h, w = img.shape[:2]
    s = 2
    hh, ww = (h + s - 1) // s, (w + s - 1) // s
    sx, sy = sun_xy[0] / s, sun_xy[1] / s
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    d = np.sqrt((xx + 0.5 - sx) ** 2 + (yy + 0.5 - sy) ** 2)
    r0 = max(hh, ww) * rng.uniform(0.03, 0.08)
    layer = np.zeros((hh, ww), np.float32)
    layer += strength * 1.5 / (1.0 + (d / r0) ** 2)
    layer += strength * 0.3 * np.exp(-d / (max(hh, ww) * 0.5))
    spikes = np.zeros((hh, ww), np.float32)
    n_sp = int(rng.choice([4, 6, 8]))
    a0 = rng.uniform(0, np.pi)
    length = max(hh, ww) * rng.uniform(0.5, 1.5)
    for k in range(n_sp):
        a = a0 + np.pi * 2 * k / n_sp
        p1 = (int(sx * 16), int(sy * 16))
        p2 = (int((sx + length * np.cos(a)) * 16), int((sy + length * np.sin(a)) * 16))
        cv2.line(spikes, p1, p2, float(strength * 0.8), 1, cv2.LINE_AA, shift=4)
    spikes *= np.exp(-d / (length * 0.3))
    layer += cv2.GaussianBlur(spikes, (0, 0), 0.8)
    rgb = np.repeat(layer[..., None], 3, axis=2)
    ghosts = np.zeros((hh, ww, 3), np.float32)
    cx, cy = ww / 2, hh / 2
    for _ in range(int(rng.integers(2, 6))):
        t = rng.uniform(-1.2, 0.9)
        gx, gy = cx + (cx - sx) * t, cy + (cy - sy) * t
        rad = max(hh, ww) * rng.uniform(0.01, 0.08)
        col = tuple(float(v) for v in strength * 0.06 * rng.uniform(0.3, 1.0, 3))
        cv2.circle(ghosts, (int(gx * 16), int(gy * 16)), int(rad * 16), col, -1, cv2.LINE_AA, shift=4)
    rgb += cv2.GaussianBlur(ghosts, (0, 0), 1.5)
    rgb += strength * rng.uniform(0.0, 0.05)  # veiling glare
    rgb *= np.array([1.0, 0.97, 0.9], np.float32)
    img += cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
