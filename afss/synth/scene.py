"""One synthetic scene: spacecraft + background + lens + sensor -> image and exact ground truth.

Ground truth comes from the same z-buffer that shades the image, before glare, blur and noise, so
sensor effects never change a mask: the instance mask is every visible spacecraft pixel (shadowed
ones included), clipped to the frame; ``body`` (bus, booms, antennas, thrusters) and ``panels``
(solar cells) partition it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.synth.background import add_glare, add_stars, fbm, render_earth
from afss.synth.camera import Camera, quat_to_matrix, random_quaternion
from afss.synth.domains import DomainPreset, pick_preset
from afss.synth.mesh import PART_BODY, PART_PANELS
from afss.synth.raster import Lighting, Posed, render_mesh, shade
from afss.synth.sensor import expose
from afss.synth.spacecraft import build_spacecraft
from afss.types import ImageLabels, Instance

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass(frozen=True)
class Scene:
    """A rendered scene.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB (a grayscale scene has three identical channels).
        mask: ``(H, W)`` bool visible spacecraft pixels.
        parts: ``{"body": (H, W) bool, "panels": (H, W) bool}``, disjoint, union = ``mask``.
        earth: ``(H, W)`` bool visible Earth pixels (Earth disc minus the spacecraft).
        meta: JSON-ready description: domain, pose, intrinsics, difficulty factors.
    """

    image: np.ndarray
    mask: np.ndarray
    parts: dict[str, np.ndarray]
    earth: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def gray(self) -> bool:
        return bool(self.meta.get("gray", False))


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` of a dataset with ``seed`` (independent of worker count)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


SIZE_RANGE = (32, 8192)
MAX_SEED = 2**32 - 1


def check_whole(value: Any, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise AfssError(f"synth: {name} must be a whole number in [{lo}, {hi}], got {value!r}")


def check_scene_numbers(*, size: Any = None, seed: Any = None, index: Any = None) -> None:
    """Bounds on a scene's numbers, each error naming its range: a size of 0 or 100000 and a negative
    seed would crash deep in numpy or take the machine's memory."""
    if size is not None:
        for side in ((size,) if np.isscalar(size) else tuple(size)):
            check_whole(side, "size", *SIZE_RANGE)
    if seed is not None:
        check_whole(seed, "seed", 0, MAX_SEED)
    if index is not None:
        check_whole(index, "index", 0, MAX_SEED)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _place(rng, cam: Camera, radius: float, p: DomainPreset) -> tuple[np.ndarray, bool]:
    """Translation (camera frame, metres) for a target of bounding ``radius``; and whether it was
    deliberately placed across the frame edge."""
    h, w = cam.height, cam.width
    extent = _loguniform(rng, *p.target_extent)
    z = max(cam.fx * 2 * radius / (extent * w), 1.6 * radius)
    pr = cam.fx * radius / z  # projected bounding radius, px
    cut = bool(rng.random() < p.p_truncated)
    if cut:
        side = int(rng.integers(4))
        off = rng.uniform(-0.4, 0.5) * pr  # centre distance inside the edge (negative: outside)
        along = rng.uniform(0.1, 0.9)
        u, v = [(off, along * h), (w - off, along * h), (along * w, off), (along * w, h - off)][side]
    else:
        mx, my = min(0.9 * pr, 0.45 * w), min(0.9 * pr, 0.45 * h)
        u, v = rng.uniform(mx, w - mx), rng.uniform(my, h - my)
    return np.array([(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z]), cut


def _sun(rng, cam: Camera, p: DomainPreset) -> tuple[np.ndarray, bool, bool]:
    """Sun direction (camera frame, towards the sun), glare flag, back-lit flag."""
    if rng.random() < p.p_glare:
        sx, sy = rng.uniform(-0.4, 1.4) * cam.width, rng.uniform(-0.4, 1.4) * cam.height
        return _unit([(sx - cam.cx) / cam.fx, (sy - cam.cy) / cam.fy, 1.0]), True, True
    az = rng.uniform(0, 2 * np.pi)
    if rng.random() < p.p_backlit:
        half_fov = math.atan(cam.width / 2 / cam.fx)
        lz = rng.uniform(0.15, math.cos(1.4 * half_fov))
        backlit = True
    else:
        lz = -rng.uniform(-0.25, 1.0)
        backlit = False
    s = math.sqrt(max(0.0, 1 - lz * lz))
    return np.array([s * math.cos(az), s * math.sin(az), lz]), False, backlit


def render(seed: int, index: int = 0, *, size: int | tuple[int, int] = 512,
           domain: str | DomainPreset = "mixed", fov_deg: float | None = None) -> Scene:
    """Render image ``index`` of the dataset with ``seed``: deterministic in its arguments.

    Args:
        seed, index: together they seed the image's generator (see `image_rng`).
        size: an int (square) or ``(H, W)``.
        domain: a preset name (``clean``, ``earth``, ``harsh``, ``mixed``) or a `DomainPreset`.
        fov_deg: fixed horizontal field of view; default: drawn from the preset.
    """
    h, w = _size_hw(size)
    rng = image_rng(seed, index)
    preset = pick_preset(domain, rng)
    fov = rng.uniform(*preset.fov_deg)
    cam = Camera.from_fov((h, w), fov if fov_deg is None else fov_deg)
    family = str(rng.choice(preset.families))
    mesh = build_spacecraft(family, rng)
    q = random_quaternion(rng)
    R = quat_to_matrix(q)
    for _attempt in range(30):
        t, _cut = _place(rng, cam, mesh.radius, preset)
        posed = Posed.place(mesh, R, t)
        raster = render_mesh(posed, cam)
        if np.count_nonzero(raster.face >= 0) >= 4:
            break
    sun_dir, glare, backlit = _sun(rng, cam, preset)

    img = np.zeros((h, w, 3), np.float32)
    add_stars(img, rng, rng.uniform(*preset.stars_per_10k_px))
    earth = np.zeros((h, w), bool)
    earth_dir, earth_rgb = None, (0.0, 0.0, 0.0)
    uc, vc = cam.project(t[None])[0]
    if rng.random() < preset.p_earth:
        radius_px = w * _loguniform(rng, 0.6, 6.0)
        a = rng.uniform(0, 2 * np.pi)
        direction = np.array([math.cos(a), math.sin(a)])
        if rng.random() < preset.p_earth_behind:
            centre = np.array([uc, vc]) + direction * max(0.0, radius_px - rng.uniform(0.05, 0.7) * w)
        else:
            anchor = np.array([rng.uniform(0, w), rng.uniform(0, h)])
            away = anchor - np.array([uc, vc])
            away = away / (np.linalg.norm(away) + 1e-9)
            centre = anchor + away * radius_px * 0.98
        earth = render_earth(img, rng, center_xy=(float(centre[0]), float(centre[1])), radius_px=radius_px,
                             sun_dir=sun_dir)
        earth_dir = _unit([(centre[0] - uc) / w, (centre[1] - vc) / w, 1.0])
        phase = 0.5 + 0.5 * float(np.dot(sun_dir, -earth_dir))
        earth_rgb = tuple(float(c) * phase * 0.25 for c in (0.45, 0.6, 0.9))

    light = Lighting(sun_dir=sun_dir, ambient=rng.uniform(*preset.ambient), earth_dir=earth_dir,
                     earth_rgb=earth_rgb)
    foil = fbm(rng, (64, 64), base=4, octaves=3)
    ij, rgb, lit = shade(posed, raster, light, foil, fx=cam.fx)
    img[ij[:, 0], ij[:, 1]] = rgb
    mask = raster.face >= 0
    part = np.zeros((h, w), np.int8)
    part[mask] = mesh.part[raster.face[mask]]
    overlap = float((earth & mask).sum()) / max(1, int(mask.sum()))
    earth &= ~mask

    glare_strength = 0.0
    if glare:
        glare_strength = rng.uniform(0.2, 2.0)
        sx, sy = cam.project(sun_dir[None])[0]
        add_glare(img, rng, (float(sx), float(sy)), glare_strength)

    gray = bool(rng.random() < preset.p_gray)
    ev = rng.uniform(*preset.exposure_ev)
    motion = None
    blur = rng.uniform(*preset.blur_sigma)
    if rng.random() < preset.p_motion_blur:
        motion = (rng.uniform(2.0, 12.0), rng.uniform(0, np.pi))
    read = rng.uniform(*preset.noise_read)
    linear = img @ LUMA if gray else img
    out = expose(linear, rng, gain=2.0**ev, blur_sigma=blur, motion=motion, read_sigma=read,
                 shot_gain=rng.uniform(*preset.noise_shot))
    if gray:
        out = np.repeat(out[..., None], 3, axis=2)

    verts = cam.project(posed.vertices.reshape(-1, 3))
    truncated = bool((verts[:, 0] < 0).any() or (verts[:, 1] < 0).any() or (verts[:, 0] > w).any()
                     or (verts[:, 1] > h).any())
    n_px = int(mask.sum())
    meta = {
        "domain": preset.name,
        "seed": int(seed),
        "index": int(index),
        "family": family,
        "gray": gray,
        "pose": {"quaternion_wxyz": [float(v) for v in q], "translation_m": [float(v) for v in t]},
        "intrinsics": cam.to_dict(),
        "sun_dir_cam": [float(v) for v in sun_dir],
        "difficulty": {
            "target_fraction": n_px / float(h * w),
            "truncated": truncated,
            "earth_behind": overlap > 0.25,
            "earth_overlap": overlap,
            "glare": glare,
            "glare_strength": float(glare_strength),
            "backlit": backlit,
            "shadowed_fraction": float(1.0 - lit.mean()) if len(lit) else 0.0,
            "exposure_ev": float(ev),
            "noise_read": float(read),
            "blur_sigma": 0.0 if motion else float(blur),
            "motion_blur_px": float(motion[0]) if motion else 0.0,
        },
    }
    return Scene(image=out, mask=mask, parts={"body": mask & (part == PART_BODY),
                                              "panels": mask & (part == PART_PANELS)},
                 earth=earth, meta=meta)


def scene_labels(scene: Scene, *, file_name: str, image_id: int) -> ImageLabels:
    """The ground truth of ``scene``: one ``spacecraft`` instance (box = tight mask extents) with
    ``body``/``panels`` part masks, or no instance if nothing is visible; ``meta`` = ``scene.meta``."""
    h, w = scene.mask.shape
    instances = ()
    if scene.mask.any():
        instances = (Instance.from_mask(scene.mask, parts=scene.parts, source="gt", category_id=1),)
    return ImageLabels(file_name=file_name, height=h, width=w, instances=instances, image_id=image_id,
                       meta=scene.meta)


def render_scene(seed: int, *, size: int | tuple[int, int] = 512, domain: str = "mixed",
                 index: int = 0) -> tuple[np.ndarray, ImageLabels]:
    """Render one scene and its ground truth.

    Args:
        seed: dataset seed; with ``index`` it fixes the image (same as image ``index`` of
            ``render_dataset(seed=seed)``).
        size: an int (square) or ``(H, W)``.
        domain: ``clean``, ``earth``, ``harsh`` or ``mixed``.
        index: image number within the dataset.

    Returns:
        ``(rgb, labels)``: ``(H, W, 3)`` uint8 RGB image (grayscale scenes: three equal channels) and
        its `ImageLabels` (``file_name`` ``images/<index:06d>.png``, ``image_id`` ``index + 1``,
        ``meta`` with domain, family, pose, intrinsics and ``difficulty`` factors).

    Example:
        >>> rgb, gt = render_scene(0, size=256, domain="clean")
        >>> rgb.shape, len(gt.instances)
        ((256, 256, 3), 1)
    """
    check_scene_numbers(size=size, seed=seed, index=index)
    scene = render(seed, index, size=size, domain=domain)
    return scene.image, scene_labels(scene, file_name=f"images/{index:06d}.png", image_id=index + 1)
