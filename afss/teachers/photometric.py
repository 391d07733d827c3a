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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import cv2
import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.teachers.base import Teacher
from afss.types import Instance

__all__ = ["PhotometricConfig", "PhotometricTeacher"]

log = logging.getLogger(__name__)

_DISK_2 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_DISK_8 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
_MIN_AREA_PX = 48
_SHARP_EDGE = 0.2  # boundary gradient / inside contrast of a crisp edge; clouds and veils are far softer
_FRAME_FILLING = 0.35  # a component this large, touching two frame sides, is background clutter  # at work scale: anything smaller is a star, a hot pixel or noise
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
        grow_sigma_px: smoothing of the image the region grows on (averages the noise of dim,
            shadowed parts; the boundary is then re-decided on the sharp image).
        min_contrast: floor under the thresholds in grey levels (0..255), for very clean images.
        min_area_frac: components smaller than this fraction of the frame are stars or noise.
        close_frac: closing radius as a fraction of the longer side (joins panels to the body).
        earth: look for a bright, smooth, frame-touching Earth region and subtract it.
        earth_min_frac: smallest Earth region, as a fraction of the frame.
        earth_bg_frac: scale (fraction of the longer side) of the Earth's smooth brightness that a
            target in front of it must stand out from.
        max_instances: how many candidates to return per image, best first.
        threads: images of a batch labelled in parallel (the work releases the GIL).
        calibration: logistic weights of the confidence over `confidence_features` ``(bias,
            stability, log1p(cnr), log1p(surround), border, ambiguity, solidity, earth)``, fitted to the
            mask IoU on synthetic tuning scenes (seeds >= 1000), so the score estimates the IoU.
    """

    work_size: int = 512
    k_seed: float = 6.0
    k_grow: float = 4.0
    grow_sigma_px: float = 1.5
    min_contrast: float = 8.0
    min_area_frac: float = 0.0003
    close_frac: float = 0.012
    earth: bool = True
    earth_min_frac: float = 0.08
    earth_bg_frac: float = 0.04
    max_instances: int = 1
    threads: int = 2
    calibration: tuple[float, ...] = (-1.943, 0.322, 1.025, -0.717, -0.481, -0.713, 0.019, 0.579)

    def __post_init__(self) -> None:
        if self.work_size < 32:
            raise AfssError(f"photometric teacher: work_size must be >= 32, got {self.work_size}")
        if not 0 < self.k_grow <= self.k_seed:
            raise AfssError(f"photometric teacher: need 0 < k_grow <= k_seed, got {self.k_grow}, {self.k_seed}")
        if self.threads < 1:
            raise AfssError(f"photometric teacher: threads must be >= 1, got {self.threads}")
        if self.max_instances < 1:
            raise AfssError(f"photometric teacher: max_instances must be >= 1, got {self.max_instances}")
        if len(self.calibration) != 8:
            raise AfssError(f"photometric teacher: calibration needs 8 weights, got {len(self.calibration)}")
        object.__setattr__(self, "calibration", tuple(float(c) for c in self.calibration))


@dataclass
class _Scene:
    """What is known about a whole image at work scale."""

    fine: np.ndarray  # (h, w) float32, Gaussian sigma 1 px: seeds, boundaries, gradients
    wide: np.ndarray  # (h, w) float32, Gaussian sigma grow_sigma_px: growing into dim, noisy parts
    background: np.ndarray  # (h, w) float32: sky level, or the Earth's smooth brightness
    noise_fine: float  # noise sigma of `fine` on the sky
    noise_wide: float  # noise sigma of `wide` on the sky
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
        images = [_check_rgb(im) for im in images]
        if self.config.threads > 1 and len(images) > 1:  # OpenCV and numpy release the GIL
            with ThreadPoolExecutor(max_workers=min(self.config.threads, len(images))) as pool:
                return list(pool.map(self._label_one, images))
        return [self._label_one(im) for im in images]

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        rgb = _check_rgb(image)
        boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
        scene, scale = self._scene(rgb)
        out = []
        for box in boxes:
            inside = _box_mask(scene.fine.shape, box * scale)
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

    def confidence_inputs(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The best candidate's mask (bool ``(H, W)``) and its `confidence_features`, or ``None``
        when nothing is found: what the calibration is fitted on."""
        rgb = _check_rgb(image)
        scene, _ = self._scene(rgb)
        cands = self._candidates(scene, None)
        if not cands:
            return None
        return _to_input_size(cands[0]["mask"], rgb.shape[:2]), confidence_features(cands[0], cands)

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
            cues = {k: round(float(cand[k]), 4) for k in ("stability", "cnr", "surround", "earth", "border", "solidity")}
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
        fine = cv2.GaussianBlur(raw, (0, 0), 1.0)
        wide = cv2.GaussianBlur(raw, (0, 0), cfg.grow_sigma_px)
        background, noise_fine, noise_wide = _sky_background(fine, wide)
        glare = fine >= 250.0
        return _Scene(fine=fine, wide=wide, background=background, noise_fine=noise_fine, noise_wide=noise_wide,
                      glare=glare), scale

    def _candidates(self, scene: _Scene, inside: np.ndarray | None) -> list[dict[str, Any]]:
        """Target candidates, most salient first; each a dict of its work-scale mask and cues."""
        cfg = self.config
        h, w = scene.fine.shape
        resid = np.abs(scene.fine - scene.background)
        resid_sky = resid
        resid_wide = np.abs(scene.wide - scene.background)
        gx = cv2.Sobel(scene.fine, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(scene.fine, cv2.CV_32F, 0, 1, ksize=3)
        grad = cv2.magnitude(gx, gy) / 8.0  # per-pixel step in grey levels
        r = max(1, round(cfg.close_frac * max(h, w)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        fg = self._foreground(resid, resid_wide, scene.noise_fine, scene.noise_wide, inside, kernel)
        earth = _clutter(fg, cfg.earth_min_frac) if cfg.earth else None
        if earth is None:
            earth = np.zeros((h, w), bool)
        else:  # the target against the Earth: deviation from the Earth's own smooth brightness
            limb = cv2.dilate(earth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            fg &= ~limb
            bg = _masked_blur(scene.fine, earth, cfg.earth_bg_frac * max(h, w))
            res_e = np.abs(scene.fine - bg)
            res_e_wide = cv2.GaussianBlur(res_e, (0, 0), cfg.grow_sigma_px)
            core = cv2.erode(earth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            if core.any():
                n_fine, n_wide = _robust_sigma(res_e[core]), _robust_sigma(res_e_wide[core])
                within = core if inside is None else core & inside
                fg_e = self._foreground(res_e, res_e_wide, n_fine, n_wide, within, kernel)
                fg = _fill_holes(cv2.morphologyEx((fg | fg_e).astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool))
                resid = np.where(core, res_e, resid)
                if inside is not None:
                    fg &= inside
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
        min_area = max(cfg.min_area_frac * h * w, _MIN_AREA_PX)
        strict = resid_wide > 2.0 * max(cfg.k_grow * scene.noise_wide, cfg.min_contrast / 2)
        cands = []
        for k in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[k])
            if area < min_area:
                continue
            sl = (slice(y, y + bh), slice(x, x + bw))
            m = labels[sl] == k
            contrast = float(resid[sl][m].mean()) / max(scene.noise_fine, 1e-3)
            solidity = _solidity(m)
            border = _border_fraction(m, x, y, w, h)
            # stability: the mask from a doubled grow threshold, closed the same way, vs this one
            tight = _fill_holes(cv2.morphologyEx((strict[sl] & m).astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)) & m
            stability = float(tight.sum()) / area
            ring = cv2.dilate(m.astype(np.uint8), None, iterations=1).astype(bool) ^ cv2.erode(m.astype(np.uint8), None, iterations=1).astype(bool)
            cnr = float(grad[sl][ring].mean()) / max(scene.noise_fine, 1e-3) if ring.any() else 0.0
            against_earth = max(float(earth[sl][ring].mean()) if ring.any() else 0.0, float(scene.glare[sl][m].mean()))
            # what surrounds the target (3..8 px outside): black sky ~1 sigma, Earth or glare far more
            pad = (slice(max(0, y - 8), min(h, y + bh + 8)), slice(max(0, x - 8), min(w, x + bw + 8)))
            mp = (labels[pad] == k).astype(np.uint8)
            outer = cv2.dilate(mp, _DISK_8).astype(bool) & ~cv2.dilate(mp, _DISK_2).astype(bool)
            surround = float(resid_sky[pad][outer].mean()) / max(scene.noise_fine, 1e-3) if outer.any() else 0.0
            sharpness = min(1.0, max(0.15, cnr / max(contrast, 1e-3) / _SHARP_EDGE))
            saliency = (math.sqrt(area) * math.log1p(contrast) * (0.5 + solidity) * (0.25 + stability) * sharpness
                        * (1.0 - 0.5 * border))
            full = np.zeros((h, w), bool)
            full[sl] = m
            cands.append({"mask": full, "area": area, "earth": against_earth, "contrast": contrast,
                          "solidity": solidity, "border": border, "stability": stability, "cnr": cnr,
                          "surround": surround, "saliency": saliency})
        cands.sort(key=lambda c: -c["saliency"])
        return cands

    def _foreground(self, resid: np.ndarray, resid_wide: np.ndarray, noise_fine: float, noise_wide: float,
                    inside: np.ndarray | None, kernel: np.ndarray) -> np.ndarray:
        """Hysteresis (seeds on the sharp residual, growth on the smoothed one), stars dropped, closed,
        holes filled, rim re-decided at half contrast. Residuals are ``(h, w)`` float32 >= 0."""
        cfg = self.config
        h, w = resid.shape
        seed = resid > max(cfg.k_seed * noise_fine, cfg.min_contrast)
        grow = resid_wide > max(cfg.k_grow * noise_wide, cfg.min_contrast / 2)
        if inside is not None:
            grow &= inside
        fg = _hysteresis(grow, seed, max(cfg.min_area_frac * h * w * 0.25, _MIN_AREA_PX / 4))
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
        fg = _fill_holes(fg.astype(bool))
        fg = _refine_boundary(fg, resid, cfg.grow_sigma_px)
        return fg if inside is None else fg & inside

    def _confidence(self, cand: dict[str, Any], cands: Sequence[dict[str, Any]]) -> float:
        z = float(np.dot(self.config.calibration, confidence_features(cand, cands)))
        return float(1.0 / (1.0 + math.exp(-z)))


def confidence_features(cand: dict[str, Any], cands: Sequence[dict[str, Any]]) -> np.ndarray:
    """The cues the confidence combines, in the order of `PhotometricConfig.calibration`:
    ``(1, stability, log1p(cnr), log1p(surround), border, ambiguity, solidity, earth)``."""
    return np.array([1.0, cand["stability"], math.log1p(cand["cnr"]), math.log1p(cand["surround"]),
                     cand["border"], _ambiguity(cand, cands), cand["solidity"], cand["earth"]])


# -- helpers (pure functions on work-scale arrays) ---------------------------------------------------


def _check_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


def _sky_background(fine: np.ndarray, wide: np.ndarray, cells: int = 16) -> tuple[np.ndarray, float, float]:
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


def _refine_boundary(fg: np.ndarray, resid: np.ndarray, sigma_px: float) -> np.ndarray:
    """Re-decide the outer rim of a mask grown on a blurred image: keep a rim pixel where the sharp
    residual reaches half the local object contrast (the half-maximum point of a blurred step)."""
    if not fg.any():
        return fg
    level = _masked_blur(resid, fg, 2 * sigma_px)
    width = max(1, math.ceil(2 * sigma_px))
    core = cv2.erode(fg.astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)).astype(bool)
    rim = fg & ~core
    return fg & ~(rim & (resid < 0.5 * level))


def _robust_sigma(values: np.ndarray) -> float:
    """Noise sigma of non-negative residuals: their median is 0.6745 sigma for |N(0, sigma)|."""
    return max(0.3, float(np.median(values[:: max(1, values.size // 20000)])) / 0.6745)


def _masked_blur(img: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian mean of ``img`` over ``mask`` pixels only (normalised convolution), computed at a
    quarter of the resolution; ``(h, w)`` float32."""
    h, w = img.shape
    small = (max(1, w // 4), max(1, h // 4))
    d = cv2.resize(mask.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    v = cv2.resize(img * mask, small, interpolation=cv2.INTER_AREA)
    s = max(0.5, sigma_px / 4)
    mean = cv2.GaussianBlur(v, (0, 0), s) / np.maximum(cv2.GaussianBlur(d, (0, 0), s), 1e-3)
    return cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR)


def _clutter(fg: np.ndarray, min_frac: float) -> np.ndarray | None:
    """Background clutter to look through, ``(h, w)`` bool or ``None``: the Earth's disc when its limb
    is visible, else a frame-filling bright region (the Earth or a glare veil behind the target)."""
    h, w = fg.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    disc = _earth_disc(labels, stats, min_frac)
    if disc is not None:
        return disc
    if n < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh, area = (int(v) for v in stats[k])
    sides = (x == 0) + (y == 0) + (x + bw == w) + (y + bh == h)
    if area >= _FRAME_FILLING * h * w and sides >= 2:
        return labels == k
    return None


def _earth_disc(labels: np.ndarray, stats: np.ndarray, min_frac: float) -> np.ndarray | None:
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
            cx, cy, rad = _fit_circle(pts[keep])
            err = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - rad)
            keep = err <= np.quantile(err, 0.6)
        inliers = err <= max(2.0, 0.01 * rad)
        if rad < 0.25 * max(h, w) or inliers.mean() < 0.4 or inliers.sum() * max(1, len(pts) // 400) < 0.3 * max(h, w):
            continue
        yy, xx = np.ogrid[:h, :w]
        one = (xx - cx) ** 2 + (yy - cy) ** 2 <= rad**2
        disc = one if disc is None else disc | one
    return disc


def _fit_circle(pts: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) circle fit to ``(N, 2)`` xy points: ``(cx, cy, radius)``."""
    x, y = pts[:, 0], pts[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c0 / 2, c1 / 2
    return float(cx), float(cy), float(math.sqrt(max(c2 + cx * cx + cy * cy, 0.0)))


def _hysteresis(grow: np.ndarray, seed: np.ndarray, min_area: float) -> np.ndarray:
    """Components of ``grow`` that hold a ``seed`` pixel and at least ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grow.astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[labels[seed & grow]] = True
    hit &= stats[:, cv2.CC_STAT_AREA] >= min_area
    hit[0] = False
    return hit[labels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the frame edge."""
    inv = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(inv, connectivity=4)
    outside = np.zeros(n, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    outside[0] = False  # label 0 is the mask itself
    return ~outside[labels]


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
