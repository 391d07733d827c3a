"""SPEED+ reader on a small replica: label lists, camera, poses, optional masks, extension-less names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from afss.datasets import read_dataset
from afss.errors import AfssError
from afss.io.images import save_image

H, W = 60, 96
CAMERA = {"Nu": W, "Nv": H, "ppx": 5.86e-6, "ppy": 5.86e-6, "fx": 0.0176, "fy": 0.0176, "ccx": 48.0,
          "ccy": 30.0, "cameraMatrix": [[3003.4, 0, 48.0], [0, 3003.4, 30.0], [0, 0, 1]],
          "distCoeffs": [-0.22, 0.51, -0.0007, 0.0021, -0.13]}


def label(name: str, k: int) -> dict:
    return {"filename": name, "q_vbs2tango_true": [1.0, 0.0, 0.0, float(k)], "r_Vo2To_vbs_true": [0.1, 0.2, 6.0 + k]}


def make_speedplus(root, domain="synthetic", splits=("train", "validation"), n=2, masks=True, ext=".jpg"):
    shape = np.zeros((H, W), bool)
    shape[10:40, 20:70] = True
    for split in splits:
        names = [f"img{split[:2]}{k:04d}{ext}" for k in range(n)]
        (root / domain).mkdir(parents=True, exist_ok=True)
        (root / domain / f"{split}.json").write_text(json.dumps([label(nm, k) for k, nm in enumerate(names)]))
        for nm in names:
            save_image(root / domain / "images" / nm, np.full((H, W), 90, np.uint8))  # gray JPEG
            if masks:
                save_image(root / domain / "masks" / nm, shape.astype(np.uint8) * 255, quality=75)
    (root / "camera.json").write_text(json.dumps(CAMERA))
    return shape


def test_default_domain_reads_all_label_files_with_pose_and_camera(tmp_path):
    shape = make_speedplus(tmp_path)
    calls = []
    gt = read_dataset("speedplus", tmp_path, progress=calls.append)
    assert len(gt) == 4 and sum(calls) == 4
    assert [im.file_name for im in gt.images][:2] == ["synthetic/images/imgtr0000.jpg", "synthetic/images/imgtr0001.jpg"]
    assert [im.meta["split"] for im in gt.images] == ["train", "train", "validation", "validation"]
    assert gt.info["camera"]["cameraMatrix"][0][0] == 3003.4 and gt.info["domain"] == "synthetic"
    im = gt.images[1]
    assert im.size_hw == (H, W) and im.meta["domain"] == "synthetic"
    assert list(im.meta["q_vbs2tango_true"]) == [1.0, 0.0, 0.0, 1.0]
    assert list(im.meta["r_Vo2To_vbs_true"]) == [0.1, 0.2, 7.0]
    (inst,) = im.instances
    assert (inst.mask & shape).sum() / (inst.mask | shape).sum() >= 0.98
    assert np.abs(np.subtract(inst.box_xyxy, (20, 10, 70, 40))).max() <= 1


def test_domain_split_alias_and_missing_masks(tmp_path, caplog):
    make_speedplus(tmp_path, domain="lightbox", splits=("test",), n=3, masks=False)
    gt = read_dataset("speedplus", tmp_path, domain="lightbox", split="test")
    assert len(gt) == 3 and gt.num_instances == 0
    assert all(im.meta["mask"] == "missing" and im.error is None for im in gt.images)
    make_speedplus(tmp_path, splits=("validation",), n=1)
    assert len(read_dataset("speedplus", tmp_path, split="val")) == 1


def test_filenames_without_extension_png_images(tmp_path):
    dom = tmp_path / "train"
    for k in range(2):
        save_image(dom / "images" / f"img{k:06d}.png", np.zeros((H, W, 3), np.uint8))
    save_image(dom / "masks" / "img000001.png", np.full((H, W), 255, np.uint8))
    (dom / "train.json").write_text(json.dumps([{"filename": f"img{k:06d}"} for k in range(2)]))
    gt = read_dataset("speedplus", tmp_path, domain="train")
    assert [im.file_name for im in gt.images] == ["train/images/img000000.png", "train/images/img000001.png"]
    assert gt.images[0].meta["mask"] == "missing" and len(gt.images[1].instances) == 1
    assert "camera" not in gt.info


def test_bad_mask_size_and_missing_image_are_recorded(tmp_path):
    make_speedplus(tmp_path, splits=("train",), n=3)
    save_image(tmp_path / "synthetic/masks/imgtr0001.jpg", np.zeros((8, 8), np.uint8))
    (tmp_path / "synthetic/images/imgtr0002.jpg").unlink()
    a, b, c = read_dataset("speedplus", tmp_path).images
    assert a.error is None and len(a.instances) == 1
    assert "imgtr0001.jpg" in b.error and "8x8" in b.error and b.instances == ()
    assert "imgtr0002.jpg: no such file" in c.error


@pytest.mark.parametrize("content, expected", [
    ('{"images": []}', "expected a SPEED+ label list"),
    ('[{"file": "a.jpg"}]', "entry 0: expected an object with a string 'filename'"),
    ("[{not json", "not valid JSON"),
])
def test_not_a_label_list(tmp_path, content, expected):
    make_speedplus(tmp_path, splits=("train",), n=1)
    (tmp_path / "synthetic/train.json").write_text(content)
    with pytest.raises(AfssError, match="train.json: ") as e:
        read_dataset("speedplus", tmp_path)
    assert expected in str(e.value)


def test_missing_root_domain_and_split(tmp_path):
    with pytest.raises(AfssError, match="no such SPEED\\+ dataset folder"):
        read_dataset("speedplus", tmp_path / "nope")
    make_speedplus(tmp_path, splits=("train",), n=1)
    with pytest.raises(AfssError, match="sunlamp: no such SPEED\\+ domain folder \\(found: synthetic\\)"):
        read_dataset("speedplus", tmp_path, domain="sunlamp")
    with pytest.raises(AfssError, match="test.json: no such SPEED\\+ label file \\(found: train.json\\)"):
        read_dataset("speedplus", tmp_path, split="test")
    (tmp_path / "synthetic/train.json").write_text("[]")
    with pytest.raises(AfssError, match="synthetic: no images found"):
        read_dataset("speedplus", tmp_path)
