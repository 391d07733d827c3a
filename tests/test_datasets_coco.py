"""COCO JSON reader: annotations as they are, or the paper's JSON + flat masks folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from afss.datasets import open_dataset, read_dataset
from afss.errors import AfssError
from afss.io.images import save_image


def coco(images, annotations=(), categories=({"id": 1, "name": "spacecraft"},)):
    return {"images": list(images), "annotations": list(annotations), "categories": list(categories)}


def image(i, name, h=40, w=50):
    return {"id": i, "file_name": name, "height": h, "width": w}


def test_polygon_rle_and_crowd(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]],
         "bbox": [10, 10, 20, 10], "area": 200, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "segmentation": {"size": [40, 50], "counts": [0, 5, 1995]},
         "bbox": [0, 0, 1, 5], "area": 5, "iscrowd": 1},
    ]
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(coco([image(1, "a.jpg"), image(2, "b.jpg")], anns)))
    gt = read_dataset("coco", tmp_path, split="val")
    a, b = gt.images
    assert a.instances[0].box_xyxy == (10.0, 10.0, 30.0, 20.0) and not a.instances[0].iscrowd
    assert a.instances[0].source == "gt" and a.instances[0].mask.shape == (40, 50)
    assert b.instances[0].iscrowd and b.instances[0].mask[:5, 0].all() and b.instances[0].area == 5
    assert gt.image_root == str(tmp_path)


def test_an_image_of_another_size_than_recorded_is_an_error_and_an_absent_one_keeps_its_truth(tmp_path, caplog):
    """convert --from coco checked neither: a polygon was drawn on the recorded 40x50 canvas of a 30x60 file."""
    save_image(tmp_path / "a.png", np.zeros((40, 50, 3), np.uint8))
    save_image(tmp_path / "b.png", np.zeros((30, 60, 3), np.uint8))
    box = {"category_id": 1, "bbox": [10, 10, 20, 10], "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]}
    anns = [{"id": k, "image_id": k, **box} for k in (1, 2, 3)]
    (tmp_path / "gt.json").write_text(json.dumps(coco([image(1, "a.png"), image(2, "b.png"), image(3, "gone.png")],
                                                      anns)))
    a, b, gone = read_dataset("coco", tmp_path / "gt.json").images
    assert a.error is None and len(a.instances) == 1
    assert b.error == "size mismatch: recorded as 40x50 (H x W), the file is 30x60" and b.instances == ()
    assert gone.error is None and len(gone.instances) == 1  # not here: the JSON's ground truth stands
    assert "1 of 3 images are not found under" in caplog.text and "gone.png" in caplog.text
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a broken link: there, unreadable
    assert "broken symbolic link" in read_dataset("coco", tmp_path / "gt.json").images[2].error


def test_json_plus_masks_folder(tmp_path):
    shape = np.zeros((40, 50), bool)
    shape[5:25, 10:45] = True
    (tmp_path / "masks").mkdir()
    save_image(tmp_path / "masks" / "a.jpg", shape.astype(np.uint8) * 255, quality=75)
    save_image(tmp_path / "masks" / "b.jpg", np.zeros((20, 20), np.uint8))  # wrong size
    images = [image(1, "imgs/a.jpg"), image(2, "imgs/b.jpg"), image(3, "imgs/c.jpg")]
    ann = {"id": 1, "image_id": 1, "bbox": [0, 0, 1, 1], "category_id": 7}
    (tmp_path / "gt.json").write_text(json.dumps(coco(images, [ann], [{"id": 7, "name": "tango"}])))
    gt = read_dataset("coco", tmp_path / "gt.json", masks=tmp_path / "masks")
    a, b, c = gt.images
    (inst,) = a.instances  # the masks replace the JSON's annotations
    assert (inst.mask & shape).sum() / (inst.mask | shape).sum() >= 0.98
    assert inst.category_id == 7 and dict(gt.categories) == {7: "tango"}
    assert "b.jpg" in b.error and "20x20" in b.error and b.instances == ()
    assert c.meta["mask"] == "missing" and c.instances == () and c.error is None


@pytest.mark.parametrize("content, expected", [
    ('[{"filename": "a.jpg"}]', "not a COCO instances file"),
    ('{"annotations": []}', "not a COCO instances file"),
    ("{oops", "not valid JSON"),
])
def test_not_coco(tmp_path, content, expected):
    (tmp_path / "x.json").write_text(content)
    with pytest.raises(AfssError, match="x.json: ") as e:
        read_dataset("coco", tmp_path / "x.json")
    assert expected in str(e.value)


def test_find_json_errors(tmp_path):
    with pytest.raises(AfssError, match="no such COCO JSON file or folder"):
        read_dataset("coco", tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(AfssError, match="expected exactly one .json file.*found 2: a.json, b.json"):
        read_dataset("coco", tmp_path)
    with pytest.raises(AfssError, match="no COCO JSON for split 'val'"):
        read_dataset("coco", tmp_path, split="val")
    (tmp_path / "e.json").write_text(json.dumps(coco([])))
    with pytest.raises(AfssError, match="e.json: no images found"):
        read_dataset("coco", tmp_path / "e.json")


def test_registry_rejects_unknown_kind_and_option(tmp_path):
    with pytest.raises(AfssError, match="unknown dataset kind 'sparc'.*did you mean 'spark'"):
        read_dataset("sparc", tmp_path)
    with pytest.raises(AfssError, match="'tango' does not take domain"):
        open_dataset("tango", tmp_path, domain="synthetic")


def test_a_folder_afss_synth_wrote_is_a_coco_root(tmp_path):
    """Its hidden bookkeeping file (.afss-synth-files.json) made "exactly one .json" find two."""
    from afss.cli import main

    assert main(["-q", "synth", "--n", "2", "--size", "64", "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    assert any(p.name.startswith(".") for p in (tmp_path / "s").glob("*.json"))
    gt = read_dataset("coco", tmp_path / "s")
    assert len(gt) == 2 and all(im.instances for im in gt.images)
