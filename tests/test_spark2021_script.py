"""scripts/spark2021.py on a generated replica of the Roboflow YOLOv8 export (no third-party image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from afss.io.coco import read_coco
from afss.io.images import save_image
from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def spark2021():
    return load_script("scripts/spark2021.py", "spark2021")


def _export(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "data.yaml").write_text("train: ../train/images\nnc: 2\nnames: ['cheops', 'debris']\n")
    files = {  # frame 1: two flipped train copies and the valid original; frame 2: train only
        "train/img000001_jpg.rf.bbb": "0 0.5 0.5 0.5 0.25",
        "train/img000001_jpg.rf.aaa": "0 0.5 0.5 0.5 0.25",
        "valid/img000001_jpg.rf.ccc": "0 0.25 0.5 0.5 0.25",
        "train/img000002_jpg.rf.ddd": "1 0.5 0.5 0.2 0.2",
        "test/img000002_jpg.rf.eee": None,  # an image whose label sits only under train
    }
    for stem, label in files.items():
        split, name = stem.split("/")
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        save_image(root / split / "images" / f"{name}.jpg", np.full((40, 80, 3), 30, np.uint8))
        if label is not None:
            (root / split / "labels" / f"{name}.txt").write_text(label)


def test_one_image_per_frame_boxes_in_pixels(tmp_path, spark2021):
    _export(tmp_path / "export")
    assert spark2021.main([str(tmp_path / "export"), str(tmp_path / "out")]) == 0
    gt = read_coco(tmp_path / "out" / "gt.json")
    assert [im.file_name for im in gt.images] == ["images/img000001.jpg", "images/img000002.jpg"]
    first, second = gt.images
    assert first.meta["split"] == "valid"  # the un-augmented copy wins
    assert second.meta["source_file"] == "train/images/img000002_jpg.rf.ddd.jpg"
    assert first.instances[0].box_xyxy == (0.0, 15.0, 40.0, 25.0)  # cx 0.25 w 0.5 of 80 px; cy 0.5 h 0.25 of 40
    assert first.instances[0].rle is None and second.instances[0].category_id == 2
    assert dict(gt.categories) == {1: "cheops", 2: "debris"}
    assert {im.meta["subset"] for im in gt.images} <= {"dev", "report"}
    assert (tmp_path / "out" / first.file_name).read_bytes() == (
        tmp_path / "export" / "valid" / "images" / "img000001_jpg.rf.ccc.jpg").read_bytes()  # bytes unchanged
    assert "CC BY 4.0" in gt.info["licence"]


def test_bad_label_and_source(tmp_path, spark2021):
    _export(tmp_path / "export")
    (tmp_path / "export" / "valid" / "labels" / "img000001_jpg.rf.ccc.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(SystemExit, match="expected one 'class cx cy w h' line"):
        spark2021.main([str(tmp_path / "export"), str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="expected a clone of the repository"):
        spark2021.main([str(tmp_path / "nowhere"), str(tmp_path / "out")])
