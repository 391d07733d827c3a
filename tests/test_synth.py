"""afss.synth: exact masks against analytic projection, determinism, ground-truth structure, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from afss.synth import render_dataset, render_scene
from afss.synth.camera import Camera, quat_to_matrix
from afss.synth.mesh import MeshBuilder
from afss.synth.raster import Posed, render_mesh
from afss.synth.scene import render
from afss.types import mask_box_xyxy


def _centres_between(lo: float, hi: float) -> int:
    """Number of pixel centres k + 0.5 with lo <= k + 0.5 <= hi."""
    return max(0, math.floor(hi - 0.5) - math.ceil(lo - 0.5) + 1)


@pytest.mark.parametrize("size_m, t, f", [
    ((2.0, 1.0, 0.5), (0.3, -0.2, 10.0), 500.0),
    ((0.4, 0.4, 0.4), (0.0, 0.0, 40.0), 800.0),  # tiny: about 8 px
    ((1.0, 3.0, 1.0), (-0.1, 0.4, 6.0), 300.0),
])
def test_box_facing_camera_matches_analytic_projection(size_m, t, f):
    cam = Camera(fx=f, fy=f, cx=128.0, cy=96.0, width=256, height=192)
    b = MeshBuilder()
    b.box(size_m)
    posed = Posed.place(b.build(), np.eye(3), np.array(t))
    mask = render_mesh(posed, cam).face >= 0
    sx, sy, sz = size_m
    z = t[2] - sz / 2  # the front face
    u0, u1 = cam.fx * (t[0] - sx / 2) / z + cam.cx, cam.fx * (t[0] + sx / 2) / z + cam.cx
    v0, v1 = cam.fy * (t[1] - sy / 2) / z + cam.cy, cam.fy * (t[1] + sy / 2) / z + cam.cy
    u0, u1, v0, v1 = max(u0, 0), min(u1, cam.width), max(v0, 0), min(v1, cam.height)  # clipped to the frame
    area = _centres_between(u0, u1) * _centres_between(v0, v1)
    assert int(mask.sum()) == area
    box = mask_box_xyxy(mask)
    assert np.allclose(box, (u0, v0, u1, v1), atol=1.0), (box, (u0, v0, u1, v1))


def test_box_cut_by_frame_edge_is_clipped():
    cam = Camera(fx=400, fy=400, cx=64, cy=64, width=128, height=128)
    b = MeshBuilder()
    b.box((4.0, 1.0, 0.2))  # spans the optical axis: only the front face is visible
    mask = render_mesh(Posed.place(b.build(), np.eye(3), np.array([1.5, 0.0, 5.0])), cam).face >= 0
    z = 4.9
    u0 = 400 * -0.5 / z + 64
    v0, v1 = -400 * 0.5 / z + 64, 400 * 0.5 / z + 64
    assert mask[:, -1].any()
    assert int(mask.sum()) == _centres_between(u0, 128) * _centres_between(v0, v1)


def test_quaternion_is_scalar_first_rotation():
    q = np.array([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])  # 90 deg about z
    assert np.allclose(quat_to_matrix(q) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])


def test_render_scene_is_deterministic_and_labels_are_consistent():
    a_img, a = render_scene(7, size=128, domain="mixed", index=3)
    b_img, _ = render_scene(7, size=128, domain="mixed", index=3)
    c_img, _ = render_scene(7, size=128, domain="mixed", index=4)
    assert a_img.shape == (128, 128, 3) and a_img.dtype == np.uint8
    assert np.array_equal(a_img, b_img) and not np.array_equal(a_img, c_img)
    assert a.file_name == "images/000003.png" and a.image_id == 4
    inst = a.instances[0]
    m = inst.mask
    body, panels = inst.part_mask("body"), inst.part_mask("panels")
    assert not (body & panels).any() and np.array_equal(body | panels, m)
    assert inst.box_xyxy == mask_box_xyxy(m)
    meta = a.meta
    assert meta["domain"] in ("clean", "earth", "harsh")
    assert len(meta["pose"]["quaternion_wxyz"]) == 4 and len(meta["pose"]["translation_m"]) == 3
    assert meta["intrinsics"]["width"] == 128
    d = meta["difficulty"]
    assert d["target_fraction"] == pytest.approx(m.sum() / 128**2)
    assert set(d) >= {"target_fraction", "truncated", "earth_behind", "glare"}


@pytest.mark.parametrize("domain", ["clean", "earth", "harsh"])
def test_every_scene_has_a_visible_target_and_mask_ignores_sensor(domain):
    for k in range(4):
        s = render(11, k, size=96, domain=domain)
        assert s.mask.sum() >= 4
        if s.meta["difficulty"]["truncated"]:
            edge = np.concatenate([s.mask[0], s.mask[-1], s.mask[:, 0], s.mask[:, -1]])
            assert s.mask.sum() > 0 and (edge.any() or s.mask.sum() < 96 * 96)
        if domain == "earth":
            assert not (s.earth & s.mask).any()


def test_pose_projects_into_the_mask_box():
    s = render(3, 1, size=128, domain="clean")
    k = np.array(s.meta["intrinsics"]["K"])
    t = np.array(s.meta["pose"]["translation_m"])
    u, v, w = k @ t
    x0, y0, x1, y1 = mask_box_xyxy(s.mask)
    pad = 0.5 * max(x1 - x0, y1 - y0)
    assert x0 - pad <= u / w <= x1 + pad and y0 - pad <= v / w <= y1 + pad


def test_dataset_is_independent_of_worker_count(tmp_path):
    one = render_dataset(tmp_path / "w1", n=4, size=96, seed=5, workers=1)
    two = render_dataset(tmp_path / "w2", n=4, size=96, seed=5, workers=2)
    for a, b in zip(one, two):
        assert a.file_name == b.file_name
        assert a.instances[0].rle == b.instances[0].rle
        assert (tmp_path / "w1" / a.file_name).read_bytes() == (tmp_path / "w2" / b.file_name).read_bytes()
    _, direct = render_scene(5, size=96, index=2)
    assert direct.instances[0].rle == one.images[2].instances[0].rle


def test_dataset_gt_loads_in_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    from afss.io.images import load_image

    gt = render_dataset(tmp_path, n=3, size=64, domain="harsh", seed=1, workers=1)
    coco = COCO(str(tmp_path / "gt.json"))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == gt.num_instances
    for im in gt:
        assert load_image(gt.image_path(im)).rgb.shape == (64, 64, 3)
        assert coco.annToMask(coco.loadAnns(coco.getAnnIds(imgIds=im.image_id))[0]).sum() == im.instances[0].area


def test_cli_synth_and_preview(tmp_path, capsys):
    from afss.cli import main

    assert main(["-q", "synth", "--n", "2", "--size", "64", "--domain", "clean", "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "gt.json").is_file()
    assert "2 images" in capsys.readouterr().err
    assert main(["synth", "--preview", str(tmp_path / "p.png"), "--n", "2", "--size", "64"]) == 0
    from afss.io.images import load_image

    h, w = load_image(tmp_path / "p.png").rgb.shape[:2]
    assert h > 3 * 64 and w > 2 * 64
    assert main(["synth", "--n", "1", "--domain", "clena", "--out", str(tmp_path / "e")]) == 2
    assert "did you mean 'clean'" in capsys.readouterr().err
    # an option of the other mode is refused, not dropped: --preview with --out wrote no dataset
    assert main(["synth", "--preview", str(tmp_path / "q.png"), "--out", str(tmp_path / "f")]) == 2
    assert "--preview writes one picture, not a dataset: --out would do nothing" in capsys.readouterr().err
    assert not (tmp_path / "q.png").exists() and not (tmp_path / "f").exists()
    assert main(["synth", "--parts", "--n", "1", "--out", str(tmp_path / "g")]) == 2
    assert "without --preview it would do nothing" in capsys.readouterr().err


def test_render_dataset_workers_do_not_hang_after_opencv_ran_threads(tmp_path):
    """A forked worker used to hang forever when the parent had already used OpenCV's thread pool."""
    import subprocess
    import sys

    code = (
        "import cv2, numpy as np, sys\n"
        "from afss.synth import render_dataset\n"
        "before = cv2.getNumThreads()\n"
        "cv2.GaussianBlur(np.zeros((3000, 3000), np.float32), (51, 51), 9)\n"
        "labels = render_dataset(sys.argv[1], n=6, size=64, workers=2)\n"
        "print(len(labels), before, cv2.getNumThreads())\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    count, before, after = done.stdout.split()
    assert count == "6" and after == before  # the parent's setting restored


def test_render_dataset_takes_a_preset_of_ones_own(tmp_path):
    """A `DomainPreset` renders a setting no built-in domain has (here: grey, noisy, one family);
    its name is the recorded domain, and a built-in name still works alike."""
    from dataclasses import replace

    from afss.io.images import load_image
    from afss.synth.domains import PRESETS

    preset = replace(PRESETS["clean"], name="grey-sensor", families=("cubesat",), p_gray=1.0, noise_read=(0.03, 0.04))
    gt = render_dataset(tmp_path / "own", n=3, size=96, domain=preset, seed=5, workers=1)
    assert gt.info["domain"] == "grey-sensor"
    for im in gt.images:
        assert im.meta["domain"] == "grey-sensor" and im.meta["family"] == "cubesat"
        rgb = load_image(gt.image_path(im)).rgb
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        assert im.instances and im.instances[0].area > 0
    from afss.synth.dataset import render_or_reuse

    stamp = (tmp_path / "own" / "gt.json").stat().st_mtime_ns
    assert len(render_or_reuse(tmp_path / "own", n=3, size=96, domain=preset, seed=5, workers=1)) == 3
    assert (tmp_path / "own" / "gt.json").stat().st_mtime_ns == stamp  # read back, not rendered again
    clean = render_dataset(tmp_path / "clean", n=3, size=96, domain="clean", seed=5, workers=1)
    assert clean.info["domain"] == "clean" and {im.meta["domain"] for im in clean.images} == {"clean"}
