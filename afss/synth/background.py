"""Backgrounds and lens light: deep space with stars, the Earth (disc or limb with clouds), sun glare.

All images here are linear float32 ``(H, W, 3)`` RGB, 1.0 = nominal full scale before exposure.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from afss.synth.camera import Camera


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


def render_earth(img: np.ndarray, rng: np.random.Generator, *, center_xy: tuple[float, float], radius_px: float,
                 sun_dir: np.ndarray) -> np.ndarray:
    """Draw the Earth in place (orthographic disc with land, ocean, clouds, terminator, atmosphere).

    Returns the ``(H, W)`` bool mask of Earth pixels (disc only, not the thin atmosphere glow).
    """
    h, w = img.shape[:2]
    ex, ey = center_xy
    earth = np.zeros((h, w), dtype=bool)
    pad = 0.04 * radius_px
    x0, x1 = int(max(0, math.floor(ex - radius_px - pad))), int(min(w, math.ceil(ex + radius_px + pad)))
    y0, y1 = int(max(0, math.floor(ey - radius_px - pad))), int(min(h, math.ceil(ey + radius_px + pad)))
    if x1 <= x0 or y1 <= y0:
        return earth
    xs = (np.arange(x0, x1, dtype=np.float32) + 0.5 - ex) / radius_px
    ys = (np.arange(y0, y1, dtype=np.float32) + 0.5 - ey) / radius_px
    dx, dy = np.meshgrid(xs, ys)
    r2 = dx * dx + dy * dy
    inside = r2 < 1.0
    nz = -np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    L = np.asarray(sun_dir, dtype=np.float32)
    ndl = dx * L[0] + dy * L[1] + nz * L[2]

    # texture lookup through a random rotation of the globe: lon/lat -> equirectangular texture
    q = rng.standard_normal((3, 3))
    rot, _ = np.linalg.qr(q)
    rot = rot.astype(np.float32)
    wx = rot[0, 0] * dx + rot[0, 1] * dy + rot[0, 2] * nz
    wy = rot[1, 0] * dx + rot[1, 1] * dy + rot[1, 2] * nz
    wz = rot[2, 0] * dx + rot[2, 1] * dy + rot[2, 2] * nz
    th, tw = 192, 384
    map_x = ((np.arctan2(wy, wx) / (2 * np.pi) + 0.5) * (tw - 1)).astype(np.float32)
    map_y = ((np.arcsin(np.clip(wz, -1, 1)) / np.pi + 0.5) * (th - 1)).astype(np.float32)
    land_n = fbm(rng, (th, tw), base=int(rng.integers(3, 6)), octaves=5)
    cloud_n = fbm(rng, (th, tw), base=int(rng.integers(2, 12)), octaves=5, gain=rng.uniform(0.45, 0.65))
    land_t = cv2.remap(land_n, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    cloud_t = cv2.remap(cloud_n, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)

    sea_level = rng.uniform(0.5, 0.7)
    land = _smoothstep(sea_level, sea_level + 0.03, land_t)[..., None]
    ocean_rgb = np.array([0.015, 0.05, 0.14], np.float32)
    land_rgb = np.array([0.12, 0.11, 0.06], np.float32) if rng.random() < 0.5 else np.array([0.22, 0.17, 0.1], np.float32)
    albedo = ocean_rgb * (1 - land) + land_rgb * land
    c_thr = rng.uniform(0.3, 0.7)
    clouds = _smoothstep(c_thr, c_thr + rng.uniform(0.08, 0.25), cloud_t)[..., None] * rng.uniform(0.6, 1.0)
    albedo = albedo * (1 - clouds) + np.float32(rng.uniform(0.6, 0.95)) * clouds

    light = np.clip(ndl + 0.05, 0.0, None)[..., None] / 1.05
    rim = np.clip(1.0 - np.sqrt(np.clip(1 - r2, 0, 1)), 0, 1)[..., None]  # 0 at disc centre, 1 at limb
    haze = np.array([0.1, 0.22, 0.5], np.float32) * (0.2 + 1.2 * rim**3) * np.clip(ndl + 0.2, 0, None)[..., None]
    disc = (albedo * light + haze) * np.float32(rng.uniform(0.8, 1.3))
    r = np.sqrt(r2)
    glow = np.exp(-(r - 1.0) / 0.012)[..., None] * np.array([0.1, 0.25, 0.7], np.float32)
    glow = glow * np.clip(ndl + 0.3, 0, None)[..., None] * 0.6
    region = img[y0:y1, x0:x1]
    region[:] = np.where(inside[..., None], disc, region + np.where(r[..., None] < 1.08, glow, 0.0))
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


def sun_in_view(cam: Camera, sun_dir: np.ndarray) -> tuple[float, float] | None:
    """Pixel position of the sun when it is in front of the camera, else ``None``."""
    if sun_dir[2] <= 1e-3:
        return None
    x, y = cam.project(np.asarray(sun_dir)[None])[0]
    return float(x), float(y)
