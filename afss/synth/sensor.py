"""Sensor model: exposure, blur (Gaussian or motion), shot + read noise, clipping, gamma, 8-bit."""

from __future__ import annotations

import cv2
import numpy as np


def motion_kernel(length: float, angle_rad: float) -> np.ndarray:
    """A normalised linear motion-blur kernel ``(k, k)`` float32 of ``length`` pixels."""
    k = int(np.ceil(length)) | 1
    ker = np.zeros((k, k), np.float32)
    c = k // 2
    dx, dy = np.cos(angle_rad) * length / 2, np.sin(angle_rad) * length / 2
    cv2.line(ker, (int((c - dx) * 16), int((c - dy) * 16)), (int((c + dx) * 16), int((c + dy) * 16)), 1.0, 1,
             cv2.LINE_AA, shift=4)
    return ker / max(float(ker.sum()), 1e-6)


def expose(linear: np.ndarray, rng: np.random.Generator, *, gain: float, blur_sigma: float = 0.0,
           motion: tuple[float, float] | None = None, read_sigma: float = 0.0, shot_gain: float = 0.0,
           gamma: float = 2.2) -> np.ndarray:
    """Turn linear radiance into an 8-bit image.

    Args:
        linear: ``(H, W)`` or ``(H, W, C)`` float32 linear image (1.0 = full scale at gain 1).
        gain: exposure multiplier (``2 ** ev``).
        blur_sigma: Gaussian blur sigma in pixels (optics, focus); 0 or less: none.
        motion: ``(length_px, angle_rad)`` for a motion blur instead, or ``None``.
        read_sigma: read-noise sigma, fraction of the 8-bit full scale (0.004 is 1 grey level).
        shot_gain: signal-dependent noise variance per unit of encoded signal.
        gamma: display gamma applied after clipping.

    Returns:
        uint8 image of the input's shape.
    """
    img = linear * np.float32(gain)
    if motion is not None and motion[0] >= 1.5:
        img = cv2.filter2D(img, -1, motion_kernel(*motion), borderType=cv2.BORDER_REFLECT)
    elif blur_sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    np.clip(img, 0.0, 1.0, out=img)
    enc = cv2.pow(img, 1.0 / gamma)  # display-encoded signal in [0, 1]
    # noise in the encoded domain (what an 8-bit camera pipeline shows): read + signal-dependent.
    # Half the samples are drawn and reused point-mirrored for the other half (halves the cost).
    sigma = cv2.sqrt(np.float32(read_sigma) ** 2 + np.float32(shot_gain) * enc)
    h = enc.shape[0]
    half = rng.standard_normal(((h + 1) // 2, *enc.shape[1:]), dtype=np.float32)
    noise = np.concatenate([half, half[::-1, ::-1]], axis=0)[:h]
    enc += sigma * noise
    return (np.clip(enc, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
