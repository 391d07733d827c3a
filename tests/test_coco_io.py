import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from afss.errors import AfssError
from afss.io.coco import read_coco, write_coco
from afss.types import ImageLabels, Instance, LabelSet


def random_labelset(n_images=20, seed=0) -> LabelSet:
    rng = np.random.default_rng(seed)
    images = []
    for k in range(n_images):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        insts = []
        for _ in range(int(rng.integers(0, 3))):
            mask = np.zeros((h, w), bool)
            y0, x0 = rng.integers(0, h - 5), rng.integers(0, w - 5)
            mask[y0 : y0 + rng.integers(2, 8), x0 : x0 + rng.integers(2, 8)] = True
            mask ^= rng.random((h, w)) > 0.97  # ragged edges and stray pixels
            insts.append(Instance.from_mask(mask, score=float(rng.random()), source="test",
                                            scores={"box_score": 0.5}, parts={"body": mask & (rng.random((h, w)) > 0.5)}))
        if k % 7 == 3:
            insts.append(Instance(box_xyxy=(1.5, 2.25, 9.0, 10.0), score=0.3))  # boxes-only
        images.append(ImageLabels(f"sub/img_{k:03d}.png", h, w, insts, meta={"class": "Soho", "pose": [1, 0, 0, 0]},
                                  error="unreadable: test" if k == 5 else None))
    return LabelSet(images=images, categories={1: "spacecraft"}, info={"stage": "test"})


def test_read_write_read_is_identical_and_masks_bit_exact(tmp_path):
    labels = random_labelset().replace(image_root=str(tmp_path / "imgs"))
    path = write_coco(labels, tmp_path / "out" / "labels.json")
    back = read_coco(path)
    assert back.images == labels.images
    assert dict(back.categories) == dict(labels.categories)
    assert dict(back.info) == {"stage": "test"}
    assert back.image_root == str(tmp_path / "imgs")  # stored relative to the JSON, resolved on read
    for a, b in zip(labels.images, back.images):
        for ia, ib in zip(a.instances, b.instances):
            if ia.rle is not None:
                np.testing.assert_array_equal(ia.mask, ib.mask)
    # and once more: written bytes are stable
    write_coco(back, tmp_path / "out" / "again.json")
    assert (tmp_path / "out" / "labels.json").read_text() == (tmp_path / "out" / "again.json").read_text()


def test_written_file_loads_in_pycocotools_as_gt_and_as_results(tmp_path):
    labels = random_labelset(seed=1)
    path = write_coco(labels, tmp_path / "labels.json")
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == len(labels)
    assert len(coco.getAnnIds()) == labels.num_instances
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert isinstance(ann["segmentation"]["counts"], str) and "score" in ann
    anns = json.loads(path.read_text())["annotations"]
    res = coco.loadRes([a for a in anns if "segmentation" in a])
    assert len(res.getAnnIds()) == sum("segmentation" in a for a in anns)


def test_reads_polygons_and_crowd(tmp_path):
    data = {
        "images": [{"id": 7, "file_name": "a.jpg", "height": 20, "width": 30}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 3, 10, 5], "iscrowd": 0,
             "segmentation": [[2, 3, 12, 3, 12, 8, 2, 8]]},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 4, 4], "iscrowd": 1,
             "segmentation": {"size": [20, 30], "counts": [0, 4, 16, 4, 16, 4, 16, 4, 516]}},
        ],
        "categories": [{"id": 3, "name": "satellite"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(data))
    ls = read_coco(tmp_path / "gt.json")
    im = ls.images[0]
    assert im.image_id == 7 and dict(ls.categories) == {3: "satellite"}
    poly, crowd = im.instances
    assert poly.box_xyxy == (2.0, 3.0, 12.0, 8.0) and poly.score == 1.0 and not poly.iscrowd
    assert 45 <= poly.area <= 66  # pycocotools rasterises the 10x5 polygon
    assert crowd.iscrowd and crowd.mask[:4, :4].all() and crowd.area == 16


def test_a_roboflow_export_with_its_project_as_category_0_reads(tmp_path):
    """Roboflow lists the project as category 0, used by no annotation; pycocotools reads such a file."""
    data = {"images": [{"id": 0, "file_name": "a.jpg", "height": 20, "width": 30}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [2, 3, 10, 5], "iscrowd": 0}],
            "categories": [{"id": 0, "name": "space-debris", "supercategory": "none"},
                           {"id": 1, "name": "spacecraft", "supercategory": "space-debris"}]}
    (tmp_path / "rf.json").write_text(json.dumps(data))
    ls = read_coco(tmp_path / "rf.json")
    assert dict(ls.categories) == {1: "spacecraft"} and ls.images[0].instances[0].box_xyxy == (2.0, 3.0, 12.0, 8.0)
    data["annotations"][0]["category_id"] = 0  # an annotation of category 0 is still refused, in one line
    (tmp_path / "rf.json").write_text(json.dumps(data))
    with pytest.raises(AfssError, match=r"category_id: 0 is out of range \[1, "):
        read_coco(tmp_path / "rf.json")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "not a COCO instances file"),
        ('{"annotations": []}', "not a COCO instances file"),
        ('{"images": "x"}', "an 'images' list, found 'images' holding a str"),
        ('{"images": [{"id": 1}]}', "image 0: file_name is missing"),
        (('{"images": [{"id": 1, "file_name": "a", "height": 4, "width": 4}],'
         ' "annotations": [{"id": 9, "image_id": 2, "bbox": [0, 0, 1, 1]}]}'), "annotation 9 refers to unknown image_id 2"),
        (('{"images": [{"id": 1, "file_name": "a", "height": 4, "width": 4}],'
         ' "annotations": [{"id": 9, "image_id": 1, "bbox": [0, 0, 1]}]}'), "bbox has 3 numbers, expected 4"),
        (('{"images": [{"id": 1, "file_name": "a", "height": 4, "width": 4}],'
         ' "annotations": [{"id": 9, "image_id": 1, "segmentation": {"size": [5, 4], "counts": "04"}}]}'),
         r"mask size \[5, 4\] differs from its image size \[4, 4\]"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AfssError, match=message) as err:
        read_coco(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_file_saved_with_a_bom_is_read(tmp_path):
    """Windows editors save UTF-8 with a byte-order mark: refused as "not valid JSON" before."""
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}], "annotations": [],
            "categories": [{"id": 1, "name": "spacecraft"}]}
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())
    assert [im.file_name for im in read_coco(tmp_path / "bom.json").images] == ["a.png"]


def test_missing_file(tmp_path):
    with pytest.raises(AfssError, match="no such file"):
        read_coco(tmp_path / "nope.json")


def test_outputs_are_written_with_normal_permissions(tmp_path):
    import os
    import stat

    path = write_coco(random_labelset(n_images=2), tmp_path / "l.json")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "annotation, message",
    [
        ({"category_id": 0, "bbox": [0, 0, 1, 1]}, r"annotation 9: category_id: 0 is out of range \[1, "),
        ({"bbox": ["a", 1, 2, 3]}, "annotation 9: bbox: expected a number, found 'a'"),
        ({"bbox": [0, 0, 1, 1], "score": None}, "annotation 9: score is null"),
        ({"bbox": [0, 0, 1, 1], "scores": [1, 2]}, "annotation 9: scores: expected an object, found a list"),
    ],
)
def test_wrong_value_types_are_one_line_errors_not_tracebacks(tmp_path, annotation, message):
    data = {"images": [{"id": 1, "file_name": "a", "height": 4, "width": 4}],
            "annotations": [{"id": 9, "image_id": 1, **annotation}]}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(AfssError, match=message):
        read_coco(tmp_path / "bad.json")


def test_meta_that_is_not_an_object_and_a_folder_given_as_file(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a", "height": 4, "width": 4, "afss_meta": "x"}]}
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(AfssError, match="image 0 \\(id 1\\): afss_meta: expected an object, found a str"):
        read_coco(tmp_path / "bad.json")
    with pytest.raises(AfssError, match="is a folder, expected a COCO JSON file"):
        read_coco(tmp_path)


def test_write_coco_refuses_what_read_coco_would_and_writes_nothing(tmp_path):
    """A teacher of one's own returning score 2.0 got its labels.json written; every later stage then
    refused the file."""
    m = np.zeros((60, 80), bool)
    m[10:30, 20:50] = True
    bad = LabelSet(images=(ImageLabels("a.png", 60, 80, (Instance.from_mask(m, score=2.0),)),))
    with pytest.raises(AfssError, match=r"s\.json \(not written\): annotation 1.*score: 2 is out of range"):
        write_coco(bad, tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()
    # numpy values in meta are plain JSON (an array used to fail naming no field)
    good = LabelSet(images=(ImageLabels("a.png", 60, 80, meta={"pose": np.arange(3.0), "k": np.int64(4)}),))
    back = read_coco(write_coco(good, tmp_path / "g.json"))
    assert back.images[0].meta == {"pose": [0.0, 1.0, 2.0], "k": 4}
