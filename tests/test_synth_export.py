"""Round trip: synth -> native layout (SPARK-2024, SPEED+, TANGO) -> afss.datasets reader == direct COCO GT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from afss.io.coco import read_coco
from afss.synth import render_dataset

datasets = pytest.importorskip("afss.datasets")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.mark.parametrize("fmt", ["spark", "speedplus", "tango"])
def test_native_layout_reads_back_as_the_direct_ground_truth(tmp_path, fmt):
    direct = render_dataset(tmp_path, n=6, size=128, domain="mixed", seed=2, fmt=fmt, workers=1)
    assert read_coco(tmp_path / "gt.json").images[0].instances[0].rle == direct.images[0].instances[0].rle
    back = datasets.read_dataset(fmt, tmp_path, split="train")
    by_name = {im.file_name: im for im in back}
    assert set(by_name) == {im.file_name for im in direct}
    for want in direct:
        got = by_name[want.file_name]
        assert got.error is None and (got.height, got.width) == (128, 128)
        assert len(got.instances) == 1
        g, w = got.instances[0], want.instances[0]
        assert _iou(g.mask, w.mask) >= 0.99, want.file_name
        assert np.allclose(g.box_xyxy, w.box_xyxy, atol=1.0)
        if fmt == "spark":  # part masks survive the colour JPEG
            for part in ("body", "panels"):
                assert _iou(g.part_mask(part), w.part_mask(part)) >= 0.95


def test_speedplus_files_follow_the_layout(tmp_path):
    direct = render_dataset(tmp_path, n=2, size=96, seed=4, fmt="speedplus", workers=1)
    cam = json.loads((tmp_path / "camera.json").read_text())
    assert {"Nu", "Nv", "ppx", "ppy", "fx", "fy", "ccx", "ccy", "cameraMatrix", "distCoeffs"} <= set(cam)
    rows = json.loads((tmp_path / "synthetic" / "train.json").read_text())
    assert json.loads((tmp_path / "synthetic" / "validation.json").read_text()) == []
    assert rows[0]["filename"] == "img000001.jpg"
    assert rows[0]["q_vbs2tango_true"] == direct.images[0].meta["pose"]["quaternion_wxyz"]
    # the pose projects the body origin inside the image with the written camera
    k = np.array(cam["cameraMatrix"])
    u, v, w = k @ np.array(rows[1]["r_Vo2To_vbs_true"])
    assert -48 <= u / w <= 144 and -48 <= v / w <= 144
    assert (tmp_path / "synthetic" / "masks" / "img000002.png").is_file()


def test_spark_csv_header_and_box(tmp_path):
    direct = render_dataset(tmp_path, n=2, size=96, seed=4, fmt="spark", workers=1)
    lines = (tmp_path / "train.csv").read_text().splitlines()
    assert lines[0] == "Image name,Mask name,Class,Bounding box"
    name, mask, cls, box = lines[1].split(",", 3)
    assert name == "image_00001_img.jpg" and mask == "image_00001_layer.jpg"
    assert (tmp_path / "images" / cls / "train" / name).is_file()
    assert (tmp_path / "mask" / cls / "train" / mask).is_file()
    x0, y0, x1, y1 = (int(v) for v in box.strip('"()').split(","))
    assert np.allclose((x0, y0, x1, y1), direct.images[0].instances[0].box_xyxy, atol=1)
