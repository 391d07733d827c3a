"""Triangle-soup meshes built from primitives (boxes, cylinders, cones, dishes) with materials and parts.

A `Mesh` is a triangle soup in the body frame (metres): every triangle carries its own three
vertices, vertex normals, surface coordinates (metres, for textures), material index, part id and a
double-sided flag. Parts: ``PART_BODY`` (bus, booms, antennas, thrusters) and ``PART_PANELS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PART_BODY = 1
PART_PANELS = 2

TEX_PLAIN = 0
TEX_CELLS = 1
TEX_FOIL = 2


@dataclass(frozen=True)
class Material:
    """Surface reflectance.

    Args:
        albedo: linear RGB diffuse reflectance in [0, 1].
        specular: strength of the Blinn-Phong highlight.
        shininess: Blinn-Phong exponent.
        texture: ``TEX_PLAIN``, ``TEX_CELLS`` (solar cell grid) or ``TEX_FOIL`` (crinkled MLI).
        cell_m: cell pitch in metres for ``TEX_CELLS``; foil crinkle scale for ``TEX_FOIL``.
        line_albedo: linear RGB of the grid lines between cells.
    """

    albedo: tuple[float, float, float]
    specular: float = 0.1
    shininess: float = 20.0
    texture: int = TEX_PLAIN
    cell_m: float = 0.1
    line_albedo: tuple[float, float, float] = (0.6, 0.6, 0.6)


@dataclass(frozen=True)
class Mesh:
    """A triangle soup (F triangles).

    Attributes:
        vertices: ``(F, 3, 3)`` float64 body-frame positions in metres.
        normals: ``(F, 3, 3)`` float64 unit vertex normals (outward).
        uvs: ``(F, 3, 2)`` float64 surface coordinates in metres.
        material: ``(F,)`` int32 index into ``materials``.
        part: ``(F,)`` int8 part id (``PART_BODY`` or ``PART_PANELS``).
        double_sided: ``(F,)`` bool; open surfaces (dishes, nozzles) are seen from both sides.
        materials: the material table.
    """

    vertices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    material: np.ndarray
    part: np.ndarray
    double_sided: np.ndarray
    materials: tuple[Material, ...]

    @property
    def radius(self) -> float:
        """Radius of the bounding sphere around the body origin, metres."""
        return float(np.linalg.norm(self.vertices.reshape(-1, 3), axis=1).max())


class MeshBuilder:
    """Accumulates primitives, each placed by a rotation ``R`` (3x3, local -> body) and a centre."""

    def __init__(self) -> None:
        self._v: list[np.ndarray] = []
        self._n: list[np.ndarray] = []
        self._uv: list[np.ndarray] = []
        self._mat: list[np.ndarray] = []
        self._part: list[np.ndarray] = []
        self._ds: list[np.ndarray] = []
        self.materials: list[Material] = []

    def material(self, m: Material) -> int:
        """Register a material; returns its index."""
        self.materials.append(m)
        return len(self.materials) - 1

    def _add(self, v, n, uv, mat, part, R, center, double_sided=False) -> None:
        R = np.eye(3) if R is None else np.asarray(R, dtype=np.float64)
        c = np.asarray(center, dtype=np.float64)
        f = v.shape[0]
        self._v.append(v @ R.T + c)
        self._n.append(n @ R.T)
        self._uv.append(uv)
        self._mat.append(np.broadcast_to(np.asarray(mat, dtype=np.int32), (f,)).copy())
        self._part.append(np.full(f, part, dtype=np.int8))
        self._ds.append(np.full(f, double_sided, dtype=bool))

    def box(self, size, *, center=(0, 0, 0), R=None, mat: int | list[int] = 0, part: int = PART_BODY) -> None:
        """Axis-aligned (in its local frame) box of ``size`` (sx, sy, sz) metres.

        ``mat`` may list six materials for the faces +x, -x, +y, -y, +z, -z.
        """
        h = np.asarray(size, dtype=np.float64) / 2.0
        mats = [mat] * 6 if isinstance(mat, int) else list(mat)
        tris, norms, uvs, fm = [], [], [], []
        for k, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
            a, b = [(1, 2), (0, 2), (0, 1)][axis]
            if sign < 0:
                a, b = b, a
            # corners of the face, counter-clockwise seen from outside
            corners = []
            for ua, ub in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
                p = np.zeros(3)
                p[axis] = sign * h[axis]
                p[a] = ua * h[a]
                p[b] = ub * h[b]
                corners.append(p)
            corners = np.array(corners)
            uv = np.stack([corners[:, a] + h[a], corners[:, b] + h[b]], axis=1)
            nrm = np.zeros(3)
            nrm[axis] = sign
            for i0, i1, i2 in [(0, 1, 2), (0, 2, 3)]:
                tris.append(corners[[i0, i1, i2]])
                uvs.append(uv[[i0, i1, i2]])
                norms.append(np.tile(nrm, (3, 1)))
                fm.append(mats[k])
        self._add(np.array(tris), np.array(norms), np.array(uvs), np.array(fm), part, R, center)

    def frustum(self, r0: float, r1: float, length: float, *, segments: int = 16, center=(0, 0, 0), R=None,
                mat: int = 0, part: int = PART_BODY, caps: bool = True, double_sided: bool = False) -> None:
        """A cylinder (``r0 == r1``) or truncated cone along local +z from z=0 (radius r0) to z=length."""
        ang = np.linspace(0, 2 * np.pi, segments + 1)
        ca, sa = np.cos(ang), np.sin(ang)
        slope = (r0 - r1) / length
        tris, norms, uvs = [], [], []
        for i in range(segments):
            p = [np.array([r0 * ca[j], r0 * sa[j], 0.0]) for j in (i, i + 1)]
            q = [np.array([r1 * ca[j], r1 * sa[j], length]) for j in (i, i + 1)]
            nn = [np.array([ca[j], sa[j], slope]) / np.sqrt(1 + slope * slope) for j in (i, i + 1)]
            u0, u1 = ang[i] * max(r0, r1), ang[i + 1] * max(r0, r1)
            tris += [[p[0], p[1], q[1]], [p[0], q[1], q[0]]]
            norms += [[nn[0], nn[1], nn[1]], [nn[0], nn[1], nn[0]]]
            uvs += [[[u0, 0], [u1, 0], [u1, length]], [[u0, 0], [u1, length], [u0, length]]]
        if caps:
            for z, r, s in ((0.0, r0, -1.0), (length, r1, 1.0)):
                if r <= 0:
                    continue
                for i in range(segments):
                    a, b = np.array([r * ca[i], r * sa[i], z]), np.array([r * ca[i + 1], r * sa[i + 1], z])
                    c = np.array([0.0, 0.0, z])
                    tris.append([c, a, b] if s > 0 else [c, b, a])
                    norms.append([[0, 0, s]] * 3)
                    uvs.append([c[:2] + r, (a if s > 0 else b)[:2] + r, (b if s > 0 else a)[:2] + r])
        self._add(np.array(tris, dtype=np.float64), np.array(norms, dtype=np.float64),
                  np.array(uvs, dtype=np.float64), mat, part, R, center, double_sided)

    def dish(self, radius: float, depth: float, *, segments: int = 16, rings: int = 3, center=(0, 0, 0), R=None,
             mat: int = 0, part: int = PART_BODY) -> None:
        """A double-sided paraboloid dish opening towards local +z, vertex at the origin."""
        ang = np.linspace(0, 2 * np.pi, segments + 1)
        rs = np.linspace(0, radius, rings + 1)

        def pt(r, a):
            return np.array([r * np.cos(a), r * np.sin(a), depth * (r / radius) ** 2])

        def nm(r, a):
            g = 2 * depth * r / radius**2
            n = np.array([-g * np.cos(a), -g * np.sin(a), 1.0])
            return n / np.linalg.norm(n)

        tris, norms, uvs = [], [], []
        for k in range(rings):
            for i in range(segments):
                quad = [(rs[k], ang[i]), (rs[k], ang[i + 1]), (rs[k + 1], ang[i + 1]), (rs[k + 1], ang[i])]
                for t in ((0, 2, 3), (0, 1, 2)) if k > 0 else ((0, 2, 3),):
                    tris.append([pt(*quad[j]) for j in t])
                    norms.append([nm(*quad[j]) for j in t])
                    uvs.append([pt(*quad[j])[:2] for j in t])
        self._add(np.array(tris), np.array(norms), np.array(uvs), mat, part, R, center, True)

    def build(self, *, recenter: bool = True) -> Mesh:
        """The mesh; with ``recenter`` the body origin moves to the centre of its bounding box."""
        v = np.concatenate(self._v)
        if recenter:
            flat = v.reshape(-1, 3)
            v = v - (flat.min(0) + flat.max(0)) / 2
        return Mesh(
            vertices=v, normals=np.concatenate(self._n), uvs=np.concatenate(self._uv),
            material=np.concatenate(self._mat), part=np.concatenate(self._part),
            double_sided=np.concatenate(self._ds), materials=tuple(self.materials),
        )


def axis_rotation(axis: str | np.ndarray, angle: float = 0.0) -> np.ndarray:
    """Rotation taking local +z to ``axis`` (``"+x"``, ``"-y"``... or a vector), then spun by ``angle``
    radians about it."""
    if isinstance(axis, str):
        v = np.zeros(3)
        v["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    else:
        v = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    z = np.array([0.0, 0.0, 1.0])
    c = float(np.dot(z, v))
    if c > 1 - 1e-9:
        base = np.eye(3)
    elif c < -1 + 1e-9:
        base = np.diag([1.0, -1.0, -1.0])
    else:
        k = np.cross(z, v)
        s = np.linalg.norm(k)
        k /= s
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        base = np.eye(3) + s * kx + (1 - c) * kx @ kx
    ca, sa = np.cos(angle), np.sin(angle)
    spin = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    return base @ spin
