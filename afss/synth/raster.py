"""Z-buffered triangle rasteriser (vectorised numpy per triangle) with deferred Lambert + Blinn-Phong
shading, shadow-map cast shadows and procedural textures.

A pixel ``(i, j)`` is covered by a triangle when its centre ``(j + 0.5, i + 0.5)`` lies inside the
projected triangle (edges included), so the visible silhouette is exact and the same buffer that
shades the image gives the masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from afss.synth.camera import Camera, look_rotation
from afss.synth.mesh import TEX_CELLS, TEX_FOIL, Mesh


@dataclass(frozen=True)
class Raster:
    """What the rasteriser saw.

    Attributes:
        face: ``(H, W)`` int32 index of the visible triangle, -1 where nothing was drawn.
        bary: ``(H, W, 2)`` float32 screen-space barycentric weights of vertices 0 and 1.
        key: ``(H, W)`` float32 depth key of the visible surface (bigger is nearer), -inf elsewhere.
    """

    face: np.ndarray
    bary: np.ndarray
    key: np.ndarray


def rasterize(xy: np.ndarray, key: np.ndarray, size_hw: tuple[int, int]) -> Raster:
    """Rasterise triangles with a depth test.

    Args:
        xy: ``(F, 3, 2)`` float vertex positions in continuous pixel coordinates ``(x, y)``.
        key: ``(F, 3)`` float per-vertex depth key, affine in screen space (``1/z`` for a perspective
            camera, distance towards the light for an orthographic one); bigger is nearer.
        size_hw: ``(H, W)`` of the target buffer.
    """
    h, w = size_hw
    face = np.full((h, w), -1, dtype=np.int32)
    bary = np.zeros((h, w, 2), dtype=np.float32)
    zbuf = np.full((h, w), -np.inf, dtype=np.float32)
    if len(xy) == 0:
        return Raster(face, bary, zbuf)
    x, y = xy[..., 0], xy[..., 1]
    j0 = np.maximum(np.ceil(x.min(1) - 0.5), 0).astype(np.int64)
    j1 = np.minimum(np.floor(x.max(1) - 0.5), w - 1).astype(np.int64)
    i0 = np.maximum(np.ceil(y.min(1) - 0.5), 0).astype(np.int64)
    i1 = np.minimum(np.floor(y.max(1) - 0.5), h - 1).astype(np.int64)
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    ok = (j1 >= j0) & (i1 >= i0) & (np.abs(area) > 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        # l0 = a0 x + b0 y + c0 ; l1 = a1 x + b1 y + c1  (affine barycentrics)
        a0 = (y[:, 1] - y[:, 2]) / area
        b0 = (x[:, 2] - x[:, 1]) / area
        c0 = (x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1]) / area
        a1 = (y[:, 2] - y[:, 0]) / area
        b1 = (x[:, 0] - x[:, 2]) / area
        c1 = (x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2]) / area
    for f in np.flatnonzero(ok):
        xs = np.arange(j0[f], j1[f] + 1, dtype=np.float32) + np.float32(0.5)
        ys = np.arange(i0[f], i1[f] + 1, dtype=np.float32) + np.float32(0.5)
        l0 = (a0[f] * xs)[None, :] + (b0[f] * ys + c0[f])[:, None]
        l1 = (a1[f] * xs)[None, :] + (b1[f] * ys + c1[f])[:, None]
        l2 = 1.0 - l0 - l1
        k = key[f, 2] + l0 * (key[f, 0] - key[f, 2]) + l1 * (key[f, 1] - key[f, 2])
        sl = (slice(i0[f], i1[f] + 1), slice(j0[f], j1[f] + 1))
        zr = zbuf[sl]
        upd = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (k > zr)
        if not upd.any():
            continue
        zr[upd] = k[upd]
        face[sl][upd] = f
        br = bary[sl]
        br[..., 0][upd] = l0[upd]
        br[..., 1][upd] = l1[upd]
    return Raster(face, bary, zbuf)


@dataclass(frozen=True)
class Posed:
    """A mesh placed in the camera frame: ``p_cam = R @ p_body + t``."""

    mesh: Mesh
    vertices: np.ndarray  # (F, 3, 3) camera frame
    normals: np.ndarray  # (F, 3, 3) camera frame

    @classmethod
    def place(cls, mesh: Mesh, R: np.ndarray, t: np.ndarray) -> Posed:
        return cls(mesh, mesh.vertices @ R.T + t, mesh.normals @ R.T)


def render_mesh(posed: Posed, cam: Camera) -> Raster:
    """Rasterise the posed mesh (back faces of closed parts culled)."""
    v = posed.vertices
    centre = v.mean(axis=1)
    fn = posed.normals.mean(axis=1)
    front = (np.einsum("fi,fi->f", fn, centre) < 0) | posed.mesh.double_sided
    front &= (v[..., 2] > 1e-6).all(axis=1)
    idx = np.flatnonzero(front)
    r = rasterize(cam.project(v[idx]), 1.0 / v[idx, :, 2], (cam.height, cam.width))
    face = np.where(r.face >= 0, idx[np.maximum(r.face, 0)], -1).astype(np.int32)
    return Raster(face, r.bary, r.key)


def shadow_test(posed: Posed, points: np.ndarray, light: np.ndarray, *, res: int = 384) -> np.ndarray:
    """``(N,)`` bool: which camera-frame ``points`` (N, 3) are in the mesh's own cast shadow."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    basis = look_rotation(light)  # rows u, v, towards light
    v = posed.vertices @ basis.T  # (F, 3, 3): u, v, d
    fn = posed.normals.mean(axis=1) @ basis.T
    occ = (fn[:, 2] < 0) | posed.mesh.double_sided  # faces turned away from the light cast the shadow
    lo = v[..., :2].reshape(-1, 2).min(0)
    span = max(float((v[..., :2].reshape(-1, 2).max(0) - lo).max()), 1e-9)
    scale = (res - 2) / span
    xy = (v[occ, :, :2] - lo) * scale + 1.0
    r = rasterize(xy, v[occ, :, 2], (res, res))
    p = points @ basis.T
    pij = np.clip(((p[:, :2] - lo) * scale + 1.0).astype(np.int64), 0, res - 1)
    occluder = r.key[pij[:, 1], pij[:, 0]]
    bias = 3.0 / scale + 0.002 * span
    return occluder > p[:, 2] + bias


@dataclass(frozen=True)
class Lighting:
    """Light in the camera frame.

    Args:
        sun_dir: unit vector from the target towards the sun.
        sun_rgb: sun irradiance (linear RGB, 1.0 = nominal exposure).
        ambient: constant fill light (linear).
        earth_dir: unit vector towards the Earth (for Earth-shine), or ``None``.
        earth_rgb: Earth-shine irradiance (linear RGB).
    """

    sun_dir: np.ndarray
    sun_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.02
    earth_dir: np.ndarray | None = None
    earth_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)


def shade(posed: Posed, raster: Raster, light: Lighting, foil_noise: np.ndarray, *, fx: float,
          shadows: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shade the covered pixels.

    Args:
        posed: the mesh in the camera frame.
        raster: its rasterisation.
        light: sun, ambient and Earth-shine.
        foil_noise: ``(S, S)`` float32 smooth noise in [0, 1], tiled over crinkled foil.
        fx: focal length in pixels (for texture filtering).
        shadows: compute cast shadows with a shadow map.

    Returns:
        ``(ij, rgb, lit)``: ``(N, 2)`` int row/col of covered pixels, their ``(N, 3)`` float32 linear
        colours, and ``(N,)`` bool whether the sun lights them directly (not turned away, not shadowed).
    """
    fg = raster.face >= 0
    ii, jj = np.nonzero(fg)
    f = raster.face[ii, jj]
    l01 = raster.bary[ii, jj].astype(np.float64)
    lam = np.concatenate([l01, 1.0 - l01.sum(1, keepdims=True)], axis=1)
    vz = posed.vertices[f, :, 2]
    wts = lam / vz
    wts /= wts.sum(1, keepdims=True)
    p = np.einsum("nk,nki->ni", wts, posed.vertices[f])
    n = np.einsum("nk,nki->ni", wts, posed.normals[f])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    uv = np.einsum("nk,nki->ni", wts, posed.mesh.uvs[f])
    flip = np.einsum("ni,ni->n", n, p) > 0  # seen from behind (double-sided parts)
    n[flip] *= -1.0

    mats = posed.mesh.materials
    mid = posed.mesh.material[f]
    albedo = np.array([m.albedo for m in mats])[mid]
    ks = np.array([m.specular for m in mats])[mid]
    shin = np.array([m.shininess for m in mats])[mid]
    tex = np.array([m.texture for m in mats])[mid]
    cell = np.array([m.cell_m for m in mats])[mid]
    line = np.array([m.line_albedo for m in mats])[mid]
    mod_d = np.ones(len(f))
    mod_s = np.ones(len(f))
    is_cell = tex == TEX_CELLS
    if is_cell.any():
        uc = uv[is_cell] / cell[is_cell, None]
        fr = uc - np.floor(uc)
        on_line = ((fr < 0.05) | (fr > 0.95)).any(axis=1)
        ci = np.floor(uc)
        hsh = np.sin(ci[:, 0] * 12.9898 + ci[:, 1] * 78.233) * 43758.5453
        hsh -= np.floor(hsh)
        base = albedo[is_cell] * (0.85 + 0.3 * hsh)[:, None]
        lines = line[is_cell]
        hard = np.where(on_line[:, None], lines, base)
        # cells smaller than ~3 pixels: blend towards the area average instead of aliasing
        cells_per_px = (p[is_cell, 2] / fx) / cell[is_cell]
        t = np.clip((cells_per_px - 0.15) / 0.35, 0.0, 1.0)[:, None]
        albedo[is_cell] = hard * (1 - t) + (0.81 * albedo[is_cell] + 0.19 * lines) * t
        mod_s[np.flatnonzero(is_cell)[on_line]] = 0.3
    is_foil = tex == TEX_FOIL
    if is_foil.any():
        sz = foil_noise.shape[0]
        q = (uv[is_foil] / cell[is_foil, None] * (sz / 4.0)).astype(np.int64) % sz
        t = foil_noise[q[:, 1], q[:, 0]]
        mod_d[is_foil] = 0.6 + 0.8 * t
        mod_s[is_foil] = 0.2 + 2.0 * t * t

    L = np.asarray(light.sun_dir, dtype=np.float64)
    ndl = np.clip(n @ L, 0.0, None)
    if shadows and (ndl > 0).any():
        lit = np.flatnonzero(ndl > 0)
        ndl[lit[shadow_test(posed, p[lit], L)]] = 0.0
    view = -p / np.linalg.norm(p, axis=1, keepdims=True)
    hv = view + L
    hv /= np.linalg.norm(hv, axis=1, keepdims=True) + 1e-12
    spec = ks * mod_s * np.clip(np.einsum("ni,ni->n", n, hv), 0.0, 1.0) ** shin * (ndl > 0)
    sun = np.asarray(light.sun_rgb)
    irr = ndl[:, None] * sun + light.ambient
    if light.earth_dir is not None:
        irr = irr + np.clip(n @ np.asarray(light.earth_dir), 0.0, None)[:, None] * np.asarray(light.earth_rgb)
    rgb = albedo * mod_d[:, None] * irr + (spec * (shin + 8) / 40.0)[:, None] * sun
    return np.stack([ii, jj], axis=1), rgb.astype(np.float32), ndl > 0
