"""Domain presets: what the scenes of a domain look like, as frozen dataclasses.

* ``clean``  black sky with stars, sun mostly behind the camera, good exposure, little noise or blur.
* ``earth``  the Earth (disc or limb, clouds of varied size and brightness) behind or beside the
  target, Earth-shine, moderate noise, some glare.
* ``harsh``  back-lit and shadowed targets, sun glare and lens flare, strong noise, blur (Gaussian or
  motion), under- and over-exposure, tiny or frame-cut targets; Earth half of the time.
* ``mixed``  each image draws one of the three above (weights 0.3 / 0.4 / 0.3); the drawn preset
  is recorded in the image's ``meta["domain"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from afss.errors import unknown_choice


@dataclass(frozen=True)
class DomainPreset:
    """Sampling ranges of one domain. Ranges are ``(low, high)``, sampled uniformly unless noted.

    Args:
        name: preset name.
        families: spacecraft families to draw from (see `afss.synth.spacecraft.FAMILIES`).
        target_extent: fraction of the frame width spanned by the target's bounding sphere (centred on its
            bounding-box centre)
            (log-uniform); 0.03 gives a target of a few pixels, 1.0 fills the frame.
        p_truncated: probability that the target is placed across the frame edge.
        fov_deg: horizontal field of view of the camera.
        p_backlit: probability that the sun is behind the target (we see mostly its shadowed side).
        p_earth: probability of an Earth disc or limb in the frame.
        p_earth_behind: given an Earth, probability that the Earth is placed behind the target.
        p_glare: probability of the sun near or in the field of view (glare, flare ghosts).
        p_gray: probability of a grayscale (SPEED+-like) image.
        ambient: fill light.
        stars_per_10k_px: star density.
        exposure_ev: exposure change in stops.
        noise_read: read noise sigma (fraction of the 8-bit full scale).
        noise_shot: signal-dependent noise variance per unit of (display-encoded) signal.
        blur_sigma: Gaussian blur sigma in pixels (0 = sharp).
        p_motion_blur: probability of a linear motion blur instead of Gaussian.
    """

    name: str
    families: tuple[str, ...] = ("winged_box", "cylinder", "tango", "cubesat")
    target_extent: tuple[float, float] = (0.25, 0.9)
    p_truncated: float = 0.05
    fov_deg: tuple[float, float] = (25.0, 50.0)
    p_backlit: float = 0.05
    p_earth: float = 0.0
    p_earth_behind: float = 0.7
    p_glare: float = 0.0
    p_gray: float = 0.3
    ambient: tuple[float, float] = (0.01, 0.03)
    stars_per_10k_px: tuple[float, float] = (1.0, 6.0)
    exposure_ev: tuple[float, float] = (-0.4, 0.4)
    noise_read: tuple[float, float] = (0.002, 0.008)
    noise_shot: tuple[float, float] = (0.0, 0.0002)
    blur_sigma: tuple[float, float] = (0.0, 0.6)
    p_motion_blur: float = 0.0


PRESETS: dict[str, DomainPreset] = {
    "clean": DomainPreset(name="clean"),
    "earth": DomainPreset(
        name="earth", target_extent=(0.12, 0.85), p_truncated=0.12, p_backlit=0.15, p_earth=1.0,
        p_glare=0.1, ambient=(0.01, 0.04), exposure_ev=(-0.8, 0.6), noise_read=(0.003, 0.012),
        noise_shot=(0.0, 0.001), blur_sigma=(0.0, 1.0),
    ),
    "harsh": DomainPreset(
        name="harsh", target_extent=(0.04, 1.0), p_truncated=0.3, p_backlit=0.3, p_earth=0.5,
        p_glare=0.35, p_gray=0.5, ambient=(0.005, 0.03), exposure_ev=(-2.5, 2.0), noise_read=(0.008, 0.04),
        noise_shot=(0.0005, 0.004), blur_sigma=(0.0, 2.5), p_motion_blur=0.3,
    ),
}
MIXED_WEIGHTS = {"clean": 0.3, "earth": 0.4, "harsh": 0.3}
DOMAINS = ("clean", "earth", "harsh", "mixed")


def pick_preset(domain: str | DomainPreset, rng: np.random.Generator) -> DomainPreset:
    """The preset for one image (``mixed`` draws one of the others with `MIXED_WEIGHTS`)."""
    if isinstance(domain, DomainPreset):
        return domain
    if domain == "mixed":
        names = list(MIXED_WEIGHTS)
        return PRESETS[names[int(rng.choice(len(names), p=list(MIXED_WEIGHTS.values())))]]
    if domain not in PRESETS:
        raise unknown_choice("synth domain", domain, DOMAINS)
    return PRESETS[domain]
