"""Procedural spacecraft: shape families assembled from parts (bus, wings on booms, dish, thrusters).

Every builder takes a random generator and returns a `Mesh` in the body frame (metres, origin near
the bus centre). Families:

* ``winged_box``  box bus, one or two solar wings of 1-4 panels on booms, dish, thrusters;
* ``cylinder``    cylindrical bus (often with body-mounted cells), optional wings, dish or cone antenna;
* ``tango``       flat bus with one solar panel on top and whip antennas (like SPEED+'s Tango);
* ``cubesat``     1U-6U box with 2 or 4 deployed panels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from afss.synth.mesh import PART_PANELS, TEX_CELLS, TEX_FOIL, Material, Mesh, MeshBuilder, axis_rotation

FAMILIES = ("winged_box", "cylinder", "tango", "cubesat")


def _body_material(rng: np.random.Generator) -> Material:
    kind = rng.choice(["gold_foil", "silver_foil", "white", "grey", "black"], p=[0.35, 0.25, 0.2, 0.12, 0.08])
    if kind == "gold_foil":
        return Material(albedo=(0.75, 0.52, 0.18), specular=0.9, shininess=40, texture=TEX_FOIL,
                        cell_m=rng.uniform(0.05, 0.15))
    if kind == "silver_foil":
        return Material(albedo=(0.6, 0.6, 0.62), specular=1.0, shininess=60, texture=TEX_FOIL,
                        cell_m=rng.uniform(0.05, 0.15))
    if kind == "white":
        return Material(albedo=(0.8, 0.8, 0.78), specular=0.15, shininess=10)
    if kind == "grey":
        return Material(albedo=(0.35, 0.35, 0.37), specular=0.3, shininess=20)
    return Material(albedo=(0.06, 0.06, 0.07), specular=0.4, shininess=30)


def _cell_material(rng: np.random.Generator) -> Material:
    blue = rng.uniform(0.8, 1.2)
    tint = (0.03 * blue, 0.05 * blue, rng.uniform(0.12, 0.25)) if rng.random() < 0.8 else (0.08, 0.08, 0.1)
    return Material(albedo=tint, specular=rng.uniform(0.6, 1.4), shininess=80, texture=TEX_CELLS,
                    cell_m=rng.uniform(0.08, 0.2), line_albedo=(0.55, 0.55, 0.58))


def _wing(b: MeshBuilder, rng, *, root: np.ndarray, direction: str, boom_len: float, panel_w: float,
          panel_h: float, n_panels: int, tilt: float, mats: dict) -> None:
    """A boom from ``root`` along ``direction`` (+y/-y/+x/-x) then ``n_panels`` panels in a row."""
    d = np.zeros(3)
    d["xyz".index(direction[1])] = 1.0 if direction[0] == "+" else -1.0
    if boom_len > 0:
        b.box((0.04, 0.04, 0.04) + np.abs(d) * boom_len, center=root + d * boom_len / 2, mat=mats["boom"])
    # panel plane contains d; normal is z rotated about d by tilt
    R = axis_rotation(d, 0.0)  # local z -> d
    thick = 0.03
    # local frame of a panel: x along d (length panel_w), y across (panel_h), z normal (thin)
    ex = d
    ez0 = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.5 else np.array([1.0, 0.0, 0.0])
    ey0 = np.cross(ez0, ex)
    c, s = np.cos(tilt), np.sin(tilt)
    ey, ez = c * ey0 + s * ez0, -s * ey0 + c * ez0
    R = np.stack([ex, ey, ez], axis=1)
    gap = 0.02 * panel_w
    for k in range(n_panels):
        center = root + d * (boom_len + panel_w / 2 + k * (panel_w + gap))
        b.box((panel_w, panel_h, thick), center=center, R=R, part=PART_PANELS,
              mat=[mats["edge"]] * 4 + [mats["cells"], mats["back"]])


def _thrusters(b: MeshBuilder, rng, *, face_center: np.ndarray, axis: str, spread: float, scale: float,
               mat: int) -> None:
    n = int(rng.choice([1, 2, 4]))
    R = axis_rotation(axis)
    offsets = [np.zeros(2)] if n == 1 else [np.array(o) * spread for o in
                                            ([(-1, 0), (1, 0)] if n == 2 else [(-1, -1), (1, -1), (1, 1), (-1, 1)])]
    for o in offsets:
        c = face_center + R @ np.array([o[0], o[1], 0.0])
        b.frustum(0.04 * scale, 0.1 * scale, 0.18 * scale, segments=8, center=c, R=R, mat=mat,
                  caps=False, double_sided=True)


def _materials(b: MeshBuilder, rng) -> dict:
    return {
        "body": b.material(_body_material(rng)),
        "body2": b.material(_body_material(rng)),
        "cells": b.material(_cell_material(rng)),
        "back": b.material(Material(albedo=(0.5, 0.5, 0.5), specular=0.2, shininess=10)),
        "edge": b.material(Material(albedo=(0.4, 0.4, 0.4), specular=0.3)),
        "boom": b.material(Material(albedo=(0.55, 0.55, 0.55), specular=0.5, shininess=30)),
        "dish": b.material(Material(albedo=(0.85, 0.85, 0.83), specular=0.2, shininess=8)),
        "nozzle": b.material(Material(albedo=(0.2, 0.2, 0.22), specular=0.8, shininess=40)),
    }


def winged_box(rng: np.random.Generator) -> Mesh:
    b = MeshBuilder()
    m = _materials(b, rng)
    sx, sy, sz = rng.uniform(0.8, 2.2, size=3)
    b.box((sx, sy, sz), mat=[m["body"], m["body"], m["body2"], m["body2"], m["body"], m["body"]])
    n_wings = 2 if rng.random() < 0.8 else 1
    pw, ph = rng.uniform(0.8, 2.0), rng.uniform(0.8, 1.8)
    n_pan = int(rng.integers(1, 5))
    tilt = rng.uniform(-0.6, 0.6) if rng.random() < 0.6 else 0.0
    boom = rng.uniform(0.2, 1.2)
    for sgn in ([1, -1] if n_wings == 2 else [1]):
        _wing(b, rng, root=np.array([0, sgn * sy / 2, 0]), direction="+y" if sgn > 0 else "-y", boom_len=boom,
              panel_w=pw, panel_h=ph, n_panels=n_pan, tilt=tilt, mats=m)
    if rng.random() < 0.8:
        r = rng.uniform(0.3, 0.8) * min(sx, sy, 1.6)
        ax = rng.choice(["+z", "+x", "-x"])
        h = {"+z": sz, "+x": sx, "-x": sx}[ax] / 2
        R = axis_rotation(ax)
        mast = rng.uniform(0.05, 0.5)
        b.frustum(0.05, 0.05, mast, segments=6, center=R @ np.array([0, 0, h]), R=R, mat=m["boom"], caps=False)
        b.dish(r, r * rng.uniform(0.2, 0.45), center=R @ np.array([0, 0, h + mast]), R=R, mat=m["dish"])
        b.frustum(0.03, 0.01, r * 0.8, segments=5, center=R @ np.array([0, 0, h + mast]), R=R, mat=m["boom"])
    if rng.random() < 0.7:
        _thrusters(b, rng, face_center=np.array([0, 0, -sz / 2]), axis="-z", spread=min(sx, sy) * 0.3,
                   scale=rng.uniform(0.8, 2.0), mat=m["nozzle"])
    return b.build()


def cylinder(rng: np.random.Generator) -> Mesh:
    b = MeshBuilder()
    m = _materials(b, rng)
    r, length = rng.uniform(0.5, 1.2), rng.uniform(1.2, 3.0)
    seg = int(rng.choice([6, 8, 12, 16]))
    side = m["cells"] if rng.random() < 0.4 else m["body"]
    b.frustum(r, r, length, segments=seg, center=(0, 0, -length / 2), mat=side,
              part=PART_PANELS if side == m["cells"] else 1)
    b.frustum(r * 1.02, r * 1.02, 0.08, segments=seg, center=(0, 0, length / 2 - 0.04), mat=m["body2"])
    if side == m["cells"] or rng.random() < 0.5:
        if rng.random() < 0.6:
            pw, ph, n_pan = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.2), int(rng.integers(1, 4))
            for sgn in (1, -1):
                _wing(b, rng, root=np.array([0, sgn * r, 0]), direction="+y" if sgn > 0 else "-y",
                      boom_len=rng.uniform(0.2, 0.8), panel_w=pw, panel_h=ph, n_panels=n_pan, tilt=0.0, mats=m)
    else:
        pw, ph, n_pan = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.4), int(rng.integers(2, 5))
        for sgn in (1, -1):
            _wing(b, rng, root=np.array([0, sgn * r, 0]), direction="+y" if sgn > 0 else "-y",
                  boom_len=rng.uniform(0.2, 0.8), panel_w=pw, panel_h=ph, n_panels=n_pan,
                  tilt=rng.uniform(-0.5, 0.5), mats=m)
    if rng.random() < 0.5:
        dr = rng.uniform(0.4, 0.9) * r
        b.dish(dr, dr * 0.35, center=(0, 0, length / 2 + 0.1), mat=m["dish"])
    else:
        b.frustum(r * 0.5, r * 0.1, rng.uniform(0.3, 0.8), segments=seg, center=(0, 0, length / 2), mat=m["body2"])
    _thrusters(b, rng, face_center=np.array([0, 0, -length / 2]), axis="-z", spread=r * 0.4,
               scale=rng.uniform(1.0, 2.5), mat=m["nozzle"])
    return b.build()


def tango(rng: np.random.Generator) -> Mesh:
    b = MeshBuilder()
    m = _materials(b, rng)
    sx, sy, sz = rng.uniform(0.5, 0.9), rng.uniform(0.6, 1.0), rng.uniform(0.25, 0.45)
    b.box((sx, sy, sz), mat=m["body"])
    gap = rng.uniform(0.03, 0.1)
    px, py = sx * rng.uniform(1.0, 1.4), sy * rng.uniform(1.0, 1.3)
    b.box((px, py, 0.03), center=(0, 0, sz / 2 + gap), part=PART_PANELS,
          mat=[m["edge"]] * 4 + [m["cells"], m["back"]])
    for k in range(4):
        b.box((0.04, 0.04, gap), center=(np.sign(k % 2 - 0.5) * sx / 3, np.sign(k // 2 - 0.5) * sy / 3,
                                           sz / 2 + gap / 2), mat=m["boom"])
    n_ant = int(rng.integers(3, 6))
    for k in range(n_ant):
        base = np.array([rng.uniform(-sx, sx) / 2, rng.uniform(-sy, sy) / 2, -sz / 2])
        direction = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.5)])
        b.frustum(0.012, 0.012, rng.uniform(0.2, 0.6), segments=4, center=base,
                  R=axis_rotation(direction), mat=m["boom"], caps=False)
    return b.build()


def cubesat(rng: np.random.Generator) -> Mesh:
    b = MeshBuilder()
    m = _materials(b, rng)
    units = int(rng.choice([1, 2, 3, 6]))
    u = 0.1
    size = {1: (u, u, u), 2: (u, u, 2 * u), 3: (u, u, 3.4 * u), 6: (2 * u, u, 3.4 * u)}[units]
    body_cells = rng.random() < 0.5
    b.box(size, mat=[m["cells"] if body_cells else m["body"]] * 4 + [m["body2"]] * 2,
          part=PART_PANELS if body_cells else 1)
    for k in range(4 if units >= 2 and rng.random() < 0.5 else 2):
        axis = ["+x", "-x", "+y", "-y"][k]
        d = np.zeros(3)
        d["xyz".index(axis[1])] = 1 if axis[0] == "+" else -1
        half = np.asarray(size)["xyz".index(axis[1])] / 2
        pw = size[2] * rng.uniform(0.9, 1.0)
        _wing(b, rng, root=d * half + np.array([0, 0, size[2] / 2 - pw / 2]) * 0, direction=axis, boom_len=0.0,
              panel_w=pw, panel_h=min(size[:2]) * 0.95, n_panels=int(rng.integers(1, 3)),
              tilt=rng.uniform(-0.3, 0.3), mats={**m, "edge": m["edge"]})
    for _ in range(int(rng.integers(0, 3))):
        base = np.array([rng.uniform(-1, 1) * size[0] / 2, rng.uniform(-1, 1) * size[1] / 2, size[2] / 2])
        b.frustum(0.003, 0.003, rng.uniform(0.1, 0.25), segments=4, center=base,
                  R=axis_rotation(np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 1.0])), mat=m["boom"],
                  caps=False)
    return b.build()


BUILDERS: dict[str, Callable[[np.random.Generator], Mesh]] = {
    "winged_box": winged_box, "cylinder": cylinder, "tango": tango, "cubesat": cubesat,
}


def build_spacecraft(family: str, rng: np.random.Generator) -> Mesh:
    """Build one random spacecraft of ``family`` (one of `FAMILIES`)."""
    from afss.errors import unknown_choice

    if family not in BUILDERS:
        raise unknown_choice("spacecraft family", family, BUILDERS)
    return BUILDERS[family](rng)
