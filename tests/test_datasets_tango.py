"""TANGO segmentation set reader on a small replica of Tango_RoI_and_SS."""

from __future__ import annotations

import numpy as np
import pytest

from afss.datasets import read_dataset
from afss.errors import AfssError
from afss.io.images import save_image
from afss.types import mask_box_xyxy


def tango_mask(h, w, y0, y1, x0, x1) -> tuple[np.ndarray, np.ndarray]:
    craft = np.zeros((h, w), bool)
    craft[y0:y1, x0:x1] = True
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 2] = 200  # deep space
    rgb[h - 10:, :, 1] = 255  # Earth along the bottom
    rgb[h - 10:, :, 2] = 0
    rgb[craft] = (3, 0, 0)  # any R > 0 is spacecraft
    return rgb, craft


def make_tango(root, splits=("train", "test"), n=2, h=48, w=64):
    drawn = {}
    for split in splits:
        folder = root / "Tango_RoI_and_SS" / f"{split}_SS_img"
        for k in range(n):
            rgb, craft = tango_mask(h, w, 5 + k, 30, 10, 40 + k)
            save_image(folder / f"{k:04d}.png", np.full((h, w, 3), 50, np.uint8))
            save_image(folder / f"{k:04d}_mask.png", rgb)
            drawn[f"Tango_RoI_and_SS/{split}_SS_img/{k:04d}.png"] = craft
    return drawn


def test_reads_both_splits_exact_masks(tmp_path):
    drawn = make_tango(tmp_path)
    (tmp_path / "Tango_RoI_and_SS" / "train_ROI.json").write_text("{}")  # present but not needed
    gt = read_dataset("tango", tmp_path)
    assert len(gt) == 4 and dict(gt.categories) == {1: "spacecraft"}
    assert [im.meta["split"] for im in gt.images] == ["train", "train", "test", "test"]
    for im in gt.images:
        (inst,) = im.instances
        np.testing.assert_array_equal(inst.mask, drawn[im.file_name])
        assert inst.box_xyxy == mask_box_xyxy(drawn[im.file_name])
    assert gt.images[1].instances[0].box_xyxy == (10.0, 6.0, 41.0, 30.0)


def test_set_folder_as_root_and_split(tmp_path):
    make_tango(tmp_path, splits=("test",), n=3)
    gt = read_dataset("tango", tmp_path / "Tango_RoI_and_SS", split="test")
    assert [im.file_name for im in gt.images] == [f"test_SS_img/{k:04d}.png" for k in range(3)]


def test_missing_mask_wrong_size_and_corrupt(tmp_path):
    make_tango(tmp_path, splits=("train",), n=4)
    folder = tmp_path / "Tango_RoI_and_SS" / "train_SS_img"
    (folder / "0001_mask.png").unlink()
    save_image(folder / "0002_mask.png", np.zeros((10, 10, 3), np.uint8))
    (folder / "0003.png").write_bytes(b"broken")
    a, b, c, d = read_dataset("tango", tmp_path, split="train").images
    assert len(a.instances) == 1 and a.error is None
    assert b.instances == () and b.error is None and b.meta["mask"] == "missing"
    assert c.instances == () and "0002_mask.png" in c.error
    assert d.instances == () and "0003.png" in d.error


def test_errors(tmp_path):
    with pytest.raises(AfssError, match="no such TANGO dataset folder"):
        read_dataset("tango", tmp_path / "x")
    with pytest.raises(AfssError, match="no train_SS_img/ or test_SS_img/"):
        read_dataset("tango", tmp_path)
    (tmp_path / "train_SS_img").mkdir()
    with pytest.raises(AfssError, match="train_SS_img: no images found"):
        read_dataset("tango", tmp_path)
    with pytest.raises(AfssError, match="test_SS_img: no such TANGO split folder"):
        read_dataset("tango", tmp_path, split="test")


def test_missing_mask_policy(tmp_path, caplog):
    make_tango(tmp_path, splits=("test",), n=2)
    (tmp_path / "Tango_RoI_and_SS" / "test_SS_img" / "0000_mask.png").unlink()
    with caplog.at_level("WARNING", logger="afss.datasets.common"):
        a, b = read_dataset("tango", tmp_path).images
    assert a.error is None and a.instances == () and len(b.instances) == 1
    assert "1 of 2 images have no mask file" in caplog.text
    a, b = read_dataset("tango", tmp_path, missing_mask="error").images
    assert a.error == "Tango_RoI_and_SS/test_SS_img/0000.png: no mask file" and b.error is None
    with pytest.raises(AfssError, match="unknown missing_mask 'drop'"):
        read_dataset("tango", tmp_path, missing_mask="drop")
