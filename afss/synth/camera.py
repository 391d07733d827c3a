"""Pinhole camera: intrinsics and projection.

Coordinates: the camera looks along +z, x to the right, y down (OpenCV convention). Pixel ``(i, j)``
(row, column) covers the continuous square ``[j, j+1) x [i, i+1)`` with its centre at
``(j + 0.5, i + 0.5)``, the same continuous frame as ``box_xyxy`` in :mod:`afss.types`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics without distortion.

    Args:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in continuous pixel coordinates (``width / 2`` is the frame centre).
        width, height: image size in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_fov(cls, size_hw: tuple[int, int], fov_x_deg: float) -> Camera:
        """A centred camera with square pixels and the given horizontal field of view."""
        h, w = size_hw
        f = (w / 2.0) / math.tan(math.radians(fov_x_deg) / 2.0)
        return cls(fx=f, fy=f, cx=w / 2.0, cy=h / 2.0, width=w, height=h)

    @property
    def matrix(self) -> np.ndarray:
        """``(3, 3)`` float64 intrinsic matrix ``K``."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Project ``(..., 3)`` camera-frame points (metres, z > 0) to ``(..., 2)`` continuous ``(x, y)`` pixels."""
        p = np.asarray(points_cam, dtype=np.float64)
        z = p[..., 2]
        return np.stack([self.fx * p[..., 0] / z + self.cx, self.fy * p[..., 1] / z + self.cy], axis=-1)

    def to_dict(self) -> dict:
        """JSON-ready intrinsics (also the SPEED+ ``camera.json`` fields ``fx, fy, ccx, ccy``)."""
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height, "K": self.matrix.tolist()}


def quat_to_matrix(q_wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a unit quaternion ``(w, x, y, z)`` (Hamilton, scalar first)."""
    w, x, y, z = np.asarray(q_wxyz, dtype=np.float64) / np.linalg.norm(q_wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def random_quaternion(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random unit quaternion ``(w, x, y, z)`` with ``w >= 0``."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def look_rotation(forward: np.ndarray) -> np.ndarray:
    """An orthonormal ``(3, 3)`` basis whose third row is ``forward`` (rows: u, v, forward)."""
    f = np.asarray(forward, dtype=np.float64)
    f = f / np.linalg.norm(f)
    helper = np.array([0.0, 1.0, 0.0]) if abs(f[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(helper, f)
    u /= np.linalg.norm(u)
    v = np.cross(f, u)
    return np.stack([u, v, f])
