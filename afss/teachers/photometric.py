"""A weights-free teacher for space imagery: classical image analysis, CPU, no downloads, fast.

It finds the one target against the sky the way an on-board pipeline would, in a handful of OpenCV
passes on a gray image of at most ``work_size`` pixels a side:

1. *Sky and noise*: the sky level is a low percentile of a coarse (32 px) copy of the image; the noise
   sigma is the MAD of horizontal pixel differences (robust to stars and to the target).
2. *Earth*: large bright regions of the coarse image that touch the frame edge and are smooth at fine
   scale (a planet's limb and clouds, unlike a spacecraft's straight edges and panel grid) become an
   Earth mask. Inside it the background is the Earth's own smoothed brightness, so a target in front
   of the Earth is still found by its deviation from that background.
3. *Foreground*: hysteresis threshold on the background-subtracted image (seeds ``k_seed`` sigmas
   above, grown down to ``k_grow`` sigmas, so the dim, shadowed parts attached to lit ones come with
   them), plus strong gradients; stars (tiny isolated blobs) are dropped, then a closing and hole
   filling make the target solid.
4. *Target*: the connected component with the highest saliency (area x contrast x compactness,
   penalised for touching the frame edge or being Earth).
5. *Confidence*: a logistic combination of quality cues fitted on synthetic tuning scenes (never on
   the benchmark ones): mask stability under a threshold change (as SAM's stability score),
   contrast-to-noise at the boundary, overlap with Earth / glare, contact with the frame edge,
   ambiguity (second-best vs best component) and solidity. It is low where the target merges with
   the Earth, glare or the frame edge, which is where its masks are worst.

A photometric teacher cannot read text: ``prompt`` is accepted and recorded, and a warning is logged
once if it does not look like it asks for a spacecraft.

Example:
    >>> teacher = PhotometricTeacher.build()
    >>> [[inst]] = teacher.label([rgb])  # doctest: +SKIP
    >>> inst.box_xyxy, inst.score, dict(inst.scores)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import cv2
import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.teachers.base import Teacher
from afss.types import Instance

__all__ = ["PhotometricConfig", "PhotometricTeacher"]

log = logging.getLogger(__name__)

_MIN_AREA_PX = 48  # at work scale: anything smaller is a star, a hot pixel or noise
_SPACECRAFT_WORDS = ("spacecraft", "satellite", "space", "probe", "station", "cubesat", "rocket",
                     "debris", "target", "craft", "module", "vehicle", "telescope", "object")


@dataclass(frozen=True)
class PhotometricConfig:
    """Options of the photometric teacher (all have defaults; lengths relative to the work image).

    Attributes:
        work_size: analysis happens on a copy whose longer side is at most this many pixels; masks
            are returned at the input's size.
        k_seed: seed threshold, noise sigmas above the local background.
        k_grow: hysteresis grow threshold in sigmas (lower: more of the shadowed side is kept).
        min_contrast: floor under the thresholds in grey levels (0..255), for very clean images.
        min_area_frac: components smaller than this fraction of the frame are stars or noise.
        close_frac: closing radius as a fraction of the longer side (joins panels to the body).
        earth: look for a bright, smooth, frame-touching Earth region and subtract it.
        earth_min_frac: smallest Earth region, as a fraction of the frame.
        max_instances: how many candidates to return per image, best first.
        calibration: logistic weights of the confidence, ``(bias, stability, cnr, earth, border,
            ambiguity, solidity)``; fitted on synthetic tuning scenes (seeds >= 1000).
    """

    work_size: int = 512
    k_seed: float = 8.0
    k_grow: float = 3.0
    min_contrast: float = 8.0
    min_area_frac: float = 0.0008
    close_frac: float = 0.012
    earth: bool = True
    earth_min_frac: float = 0.08
    max_instances: int = 1
    calibration: tuple[float, ...] = (-4.0, 4.0, 1.5, -3.0, -2.0, -2.5, 2.0)

    def __post_init__(self) -> None:
        if self.work_size < 32:
            raise AfssError(f"photometric teacher: work_size must be >= 32, got {self.work_size}")
        if not 0 < self.k_grow <= self.k_seed:
            raise AfssError(f"photometric teacher: need 0 < k_grow <= k_seed, got {self.k_grow}, {self.k_seed}")
        if self.max_instances < 1:
            raise AfssError(f"photometric teacher: max_instances must be >= 1, got {self.max_instances}")
        if len(self.calibration) != 7:
            raise AfssError(f"photometric teacher: calibration needs 7 weights, got {len(self.calibration)}")
        object.__setattr__(self, "calibration", tuple(float(c) for c in self.calibration))


@dataclass
class _Scene:
    """What is known about a whole image at work scale."""

    gray: np.ndarray  # (h, w) float32, Gaussian-smoothed (sigma 1 px): seeds, gradients
    denoised: np.ndarray  # (h, w) float32, 3x3 median (keeps step edges, drops 1-px stars): growing
    background: np.ndarray  # (h, w) float32
    sigma: float
    earth: np.ndarray  # (h, w) bool
    glare: np.ndarray  # (h, w) bool: saturated or near-saturated


class PhotometricTeacher(Teacher):
    """Classical, weights-free spacecraft segmenter (see the module docstring for the method)."""

    name: ClassVar[str] = "photometric"

    def __init__(self, config: PhotometricConfig | None = None) -> None:
        self.config = config or PhotometricConfig()
        self._warned_prompt = False

    @classmethod
    def build(cls, **options: Any) -> PhotometricTeacher:
        """Build from keyword options (the fields of `PhotometricConfig`); unknown ones are refused."""
        valid = {f.name for f in fields(PhotometricConfig)}
        for key in options:
            if key not in valid:
                raise unknown_choice("photometric teacher option", key, valid)
        return cls(PhotometricConfig(**options))

    @property
    def options(self) -> dict[str, Any]:
        return asdict(self.config)

    @property
    def can_segment_boxes(self) -> bool:
        return True

    # -- the verbs ---------------------------------------------------------------------------------

    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft") -> list[list[Instance]]:
        self._check_prompt(prompt)
        return [self._label_one(_check_rgb(im)) for im in images]

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        rgb = _check_rgb(image)
        boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
        scene, scale = self._scene(rgb)
        out = []
        for box in boxes:
            inside = _box_mask(scene.gray.shape, box * scale)
            cands = self._candidates(scene, inside)
            if cands:
                cand = cands[0]
                mask = _to_input_size(cand["mask"], rgb.shape[:2]) & _box_mask(rgb.shape[:2], box)
                score = self._confidence(cand, cands)
            else:
                mask, score = np.zeros(rgb.shape[:2], bool), 0.0
            out.append(Instance.from_mask(mask, box_xyxy=tuple(box), score=score, source=self.name,
                                          scores={"mask_score": score}))
        return out

    # -- internals ---------------------------------------------------------------------------------

    def _check_prompt(self, prompt: str) -> None:
        if not self._warned_prompt and not any(w in prompt.lower() for w in _SPACECRAFT_WORDS):
            log.warning("photometric teacher cannot read text: it segments the main bright target whatever "
                        "the prompt (%r)", prompt)
            self._warned_prompt = True

    def _label_one(self, rgb: np.ndarray) -> list[Instance]:
        scene, _ = self._scene(rgb)
        cands = self._candidates(scene, None)
        out = []
        for cand in cands[: self.config.max_instances]:
            mask = _to_input_size(cand["mask"], rgb.shape[:2])
            if not mask.any():
                continue
            score = self._confidence(cand, cands)
            cues = {k: round(float(cand[k]), 4) for k in ("stability", "cnr", "earth", "border", "solidity")}
            cues["ambiguity"] = round(_ambiguity(cand, cands), 4)
            out.append(Instance.from_mask(mask, score=score, source=self.name, scores=cues))
        return out

    def _scene(self, rgb: np.ndarray) -> tuple[_Scene, float]:
        cfg = self.config
        h, w = rgb.shape[:2]
        scale = min(1.0, cfg.work_size / max(h, w))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        raw = gray.astype(np.float32)
        sigma = _noise_sigma(raw)
        smooth = cv2.GaussianBlur(raw, (0, 0), 1.0)
        denoised = cv2.medianBlur(gray, 3).astype(np.float32)
        coarse = cv2.resize(raw, (32, 32), interpolation=cv2.INTER_AREA)
        sky = float(np.percentile(coarse, 5))
        background = np.full_like(smooth, sky)
        earth = np.zeros(smooth.shape, bool)
        if cfg.earth:
            earth, earth_bg = _earth(raw, smooth, sky, sigma, cfg)
            background[earth] = earth_bg[earth]
        glare = smooth >= 250.0
        return _Scene(gray=smooth, denoised=denoised, background=background, sigma=sigma, earth=earth, glare=glare), scale

    def _candidates(self, scene: _Scene, inside: np.ndarray | None) -> list[dict[str, Any]]:
        """Target candidates, most salient first; each a dict of its work-scale mask and cues."""
        cfg = self.config
        h, w = scene.gray.shape
        resid = np.abs(scene.gray - scene.background)
        resid_grow = np.abs(scene.denoised - scene.background)
        t_seed = max(cfg.k_seed * scene.sigma, cfg.min_contrast)
        t_grow = max(cfg.k_grow * scene.sigma, cfg.min_contrast / 2)
        gx = cv2.Sobel(scene.gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(scene.gray, cv2.CV_32F, 0, 1, ksize=3)
        grad = cv2.magnitude(gx, gy) / 8.0  # per-pixel step in grey levels
        grow = resid_grow > t_grow
        if inside is not None:
            grow &= inside
        fg = _hysteresis(grow, resid > t_seed)
        fg = _drop_small(fg, max(cfg.min_area_frac * h * w * 0.25, _MIN_AREA_PX / 4))
        r = max(1, round(cfg.close_frac * max(h, w)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
        fg = _fill_holes(fg.astype(bool))
        if inside is not None:
            fg &= inside
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
        min_area = max(cfg.min_area_frac * h * w, _MIN_AREA_PX)
        strict = resid_grow > 2.0 * t_grow
        cands = []
        for k in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            if area < min_area:
                continue
            sl = (slice(y, y + bh), slice(x, x + bw))
            m = labels[sl] == k
            earth = float(scene.earth[sl][m].mean())
            contrast = float(resid[sl][m].mean()) / max(scene.sigma, 1e-3)
            solidity = _solidity(m)
            border = _border_fraction(m, x, y, w, h)
            # stability: the mask from a doubled grow threshold, closed the same way, vs this one
            tight = _fill_holes(cv2.morphologyEx((strict[sl] & m).astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)) & m
            stability = float(tight.sum()) / area
            ring = cv2.dilate(m.astype(np.uint8), None, iterations=1).astype(bool) ^ cv2.erode(m.astype(np.uint8), None, iterations=1).astype(bool)
            cnr = float(grad[sl][ring].mean()) / max(scene.sigma, 1e-3) if ring.any() else 0.0
            glare = float(scene.glare[sl][m].mean())
            saliency = math.sqrt(area) * math.log1p(contrast) * (0.5 + solidity) * (1.0 - 0.7 * earth) * (1.0 - 0.5 * border)
            full = np.zeros((h, w), bool)
            full[sl] = m
            cands.append({"mask": full, "area": area, "earth": max(earth, glare), "contrast": contrast,
                          "solidity": solidity, "border": border, "stability": stability, "cnr": cnr,
                          "saliency": saliency})
        cands.sort(key=lambda c: -c["saliency"])
        return cands

    def _confidence(self, cand: dict[str, Any], cands: Sequence[dict[str, Any]]) -> float:
        b0, w_stab, w_cnr, w_earth, w_border, w_amb, w_sol = self.config.calibration
        z = (b0 + w_stab * cand["stability"] + w_cnr * math.log1p(cand["cnr"]) / 3.0 + w_earth * cand["earth"]
             + w_border * cand["border"] + w_amb * _ambiguity(cand, cands) + w_sol * cand["solidity"])
        return float(1.0 / (1.0 + math.exp(-z)))


# -- helpers (pure functions on work-scale arrays) ---------------------------------------------------


def _check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


def _noise_sigma(gray: np.ndarray) -> float:
    """Robust noise sigma: MAD of horizontal differences / sqrt(2), floored at half a grey level."""
    d = np.abs(np.diff(gray[::2], axis=1)).ravel()
    return max(0.5, 1.4826 * float(np.median(d)) / math.sqrt(2.0))


def _earth(raw: np.ndarray, smooth: np.ndarray, sky: float, sigma: float, cfg: PhotometricConfig):
    """Bright, large, frame-touching, smooth regions and their smooth brightness (the background)."""
    h, w = raw.shape
    coarse = cv2.resize(smooth, (64, 64), interpolation=cv2.INTER_AREA)
    bright = (coarse > sky + max(6 * sigma, cfg.min_contrast)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    keep = np.zeros(coarse.shape, bool)
    for k in range(1, n):
        x, y, bw, bh, area = stats[k]
        touches = x == 0 or y == 0 or x + bw == 64 or y + bh == 64
        if touches and area >= cfg.earth_min_frac * 64 * 64:
            keep |= labels == k
    if not keep.any():
        return np.zeros((h, w), bool), smooth
    region = cv2.resize(keep.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    # Earth's own brightness: a wide median (robust to the target in front of it), at coarse scale.
    med = cv2.medianBlur(np.clip(coarse, 0, 255).astype(np.uint8), 9).astype(np.float32)
    earth_bg = cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR)
    # Smooth at fine scale: the Earth's texture is soft, a spacecraft's is sharp.
    fine = np.abs(raw - cv2.GaussianBlur(raw, (0, 0), 2.0))
    texture = cv2.blur(fine, (9, 9))
    region &= texture < max(4 * sigma, 3.0)
    region = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).astype(bool)
    return region, earth_bg


def _hysteresis(grow: np.ndarray, seed: np.ndarray) -> np.ndarray:
    n, labels = cv2.connectedComponents(grow.astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[np.unique(labels[seed & grow])] = True
    hit[0] = False
    return hit[labels]


def _drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the frame edge."""
    inv = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(inv, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, edge) & (inv > 0)
    return ~outside


def _solidity(m: np.ndarray) -> float:
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours))
    hull_area = cv2.contourArea(hull)
    return float(min(1.0, m.sum() / hull_area)) if hull_area > 0 else 0.0


def _border_fraction(m: np.ndarray, x: int, y: int, w: int, h: int) -> float:
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


def _ambiguity(cand: dict[str, Any], cands: Sequence[dict[str, Any]]) -> float:
    """Saliency of the strongest rival over this candidate's (0: no rival, 1: a tie)."""
    rivals = [c["saliency"] for c in cands if c is not cand]
    return float(min(1.0, max(rivals) / max(cand["saliency"], 1e-9))) if rivals else 0.0


def _box_mask(shape_hw: tuple[int, int], box: np.ndarray) -> np.ndarray:
    h, w = shape_hw
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _to_input_size(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    if mask.shape == (h, w):
        return mask
    soft = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return soft >= 0.5
