import os

import numpy as np
import pytest

from afss.types import ImageLabels, Instance, LabelSet, decode_mask, encode_mask, mask_box_xyxy, rle_box_xyxy


def test_mask_box_uses_continuous_pixel_extents():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:8] = True  # rows 2..4, cols 3..7
    assert mask_box_xyxy(mask) == (3.0, 2.0, 8.0, 5.0)
    assert rle_box_xyxy(encode_mask(mask)) == (3.0, 2.0, 8.0, 5.0)  # same as pycocotools' toBbox


def test_empty_mask_box_is_zero():
    assert mask_box_xyxy(np.zeros((4, 4), bool)) == (0.0, 0.0, 0.0, 0.0)


def test_mask_box_matches_pycocotools_on_scattered_and_corner_masks():
    rng = np.random.default_rng(3)
    masks = [rng.random((37, 53)) > t for t in (0.5, 0.99, 0.999)]
    corner = np.zeros((9, 7), bool)
    corner[8, 6] = True  # the last pixel: box (6, 8, 7, 9)
    for mask in [*masks, corner]:
        assert mask_box_xyxy(mask) == rle_box_xyxy(encode_mask(mask))
    assert mask_box_xyxy(corner) == (6.0, 8.0, 7.0, 9.0)


def test_rle_round_trip_bit_exact_with_str_counts():
    rng = np.random.default_rng(0)
    mask = rng.random((33, 47)) > 0.6
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [33, 47]
    np.testing.assert_array_equal(decode_mask(rle), mask)


def test_instance_from_mask_fills_box_and_area():
    mask = np.zeros((6, 9), bool)
    mask[1:4, 2:7] = True
    inst = Instance.from_mask(mask, score=0.7, source="test", parts={"body": mask})
    assert inst.box_xyxy == (2.0, 1.0, 7.0, 4.0)
    assert inst.area == 15.0
    np.testing.assert_array_equal(inst.mask, mask)
    np.testing.assert_array_equal(inst.part_mask("body"), mask)


@pytest.mark.parametrize(
    "box, message",
    [((1, 2, 3), "4 numbers"), ((5, 0, 1, 3), "x1 >= x0")],
)
def test_instance_rejects_bad_boxes(box, message):
    with pytest.raises(ValueError, match=message):
        Instance(box_xyxy=box)


def test_image_labels_rejects_mask_of_other_size():
    inst = Instance.from_mask(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=r"mask is \(4, 4\).*image is \(5, 4\)"):
        ImageLabels("a.png", 5, 4, [inst])


def test_top1_keeps_highest_score():
    a, b = Instance((0, 0, 1, 1), score=0.2), Instance((1, 1, 2, 2), score=0.9)
    assert ImageLabels("a.png", 4, 4, [a, b]).top1().instances == (b,)
    np.testing.assert_array_equal(ImageLabels("a.png", 4, 4, [a, b]).boxes(), [[0, 0, 1, 1], [1, 1, 2, 2]])
    assert ImageLabels("a.png", 4, 4).boxes().shape == (0, 4)


def test_labelset_assigns_ids_from_one_and_rejects_duplicates():
    ls = LabelSet(images=[ImageLabels("a.png", 2, 2), ImageLabels("b.png", 2, 2)])
    assert [im.image_id for im in ls] == [1, 2]
    with pytest.raises(ValueError, match="unique"):
        LabelSet(images=[ImageLabels("a.png", 2, 2, image_id=3), ImageLabels("b.png", 2, 2, image_id=3)])


def test_carriers_are_frozen():
    inst = Instance((0, 0, 1, 1), scores={"box_score": 0.5})
    with pytest.raises(AttributeError):
        inst.score = 0.3
    with pytest.raises(TypeError):
        inst.scores["box_score"] = 1.0


def test_a_file_name_written_on_windows_finds_its_image(tmp_path):
    """`images\\000000.png` (a list made on Windows) names images/000000.png here, as `afss eval` pairs it;
    a file whose name really holds a backslash is still found as it is."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")
    (tmp_path / "odd\\name.png").write_bytes(b"x")
    labels = LabelSet(images=(ImageLabels("images\\a.png", 4, 4), ImageLabels("odd\\name.png", 4, 4)),
                      image_root=str(tmp_path))
    assert [os.path.isfile(labels.image_path(im)) for im in labels.images] == [True, True]
    assert labels.image_path(labels.images[0]) == str(tmp_path / "images" / "a.png")


def test_what_an_integrator_passes_is_taken_as_meant():
    """Found by an API probe: soft masks became whole-image masks; Paths failed later; one image
    without an id renumbered every other image's id."""
    from pathlib import Path

    from afss.teachers.base import check_options

    probs = np.zeros((20, 30))
    probs[5:10, 5:15] = 0.9
    probs[probs == 0] = 0.1
    with pytest.raises(ValueError, match=r"mask must be boolean or 0/1, got float64 values in \[0.1, 0.9\]"):
        Instance.from_mask(probs)
    assert Instance.from_mask(probs > 0.5).box_xyxy == (5.0, 5.0, 15.0, 10.0)
    assert Instance.from_mask((probs > 0.5).astype(np.uint8)).area == 50  # 0/1 is a mask
    assert Instance.from_mask((probs > 0.5).astype(np.uint8) * 255).area == 50  # so is OpenCV's 0/255
    with pytest.raises(ValueError, match="mask must be boolean"):
        Instance.from_mask((probs * 255).astype(np.uint8))  # a grey picture is not
    im = ImageLabels(Path("sub/a.png"), 20, 30)
    assert im.file_name == "sub/a.png" and isinstance(im.file_name, str)
    assert LabelSet((im,), image_root=Path("/data")) == LabelSet((im,), image_root="/data")
    ids = [i.image_id for i in LabelSet((ImageLabels("a", 1, 1, image_id=5), ImageLabels("b", 1, 1),
                                          ImageLabels("c", 1, 1, image_id=1)))]
    assert ids == [5, 2, 1]  # the given ids kept, the missing one the first free
    assert check_options({"weights": Path("runs/s/weights/best.pt")}, {"weights": ""}, "student") == \
        {"weights": "runs/s/weights/best.pt"}


def test_carriers_pickle_copy_and_print_compactly():
    """Found by an API probe: the carriers did not pickle (multiprocessing, joblib) nor deep-copy, and a
    notebook printed every mask's RLE."""
    import copy
    import dataclasses
    import pickle

    mask = np.zeros((64, 48), bool)
    mask[10:20, 5:25] = True
    inst = Instance.from_mask(mask, score=0.8, source="photometric", scores={"box_score": 0.9},
                              parts={"body": mask})
    labels = LabelSet((ImageLabels("a.png", 64, 48, (inst,), meta={"class": "soho"}),), image_root="/data",
                      info={"stage": "label"})
    for back in (pickle.loads(pickle.dumps(labels)), copy.deepcopy(labels), copy.copy(labels)):
        assert back == labels
        assert back.images[0].instances[0].mask.sum() == 200
        with pytest.raises(TypeError):
            back.images[0].meta["class"] = "x"  # still read-only after the trip
    assert dataclasses.asdict(inst)["scores"] == {"box_score": 0.9}
    assert "counts" not in repr(labels.images[0]) and "counts" not in repr(inst)
    assert repr(labels) == "LabelSet(1 images, 1 instances, categories={1: 'spacecraft'}, image_root='/data')"
    assert repr(inst).startswith("Instance(box_xyxy=(5.0, 10.0, 25.0, 20.0), score=0.8, category_id=1, "
                                 "source='photometric', rle=<RLE 64x48>")


def test_rle_straight_from_pycocotools_is_taken():
    """bytes counts (pycocotools' encode) and uncompressed list counts become afss's str counts."""
    from pycocotools import mask as mask_utils

    mask = np.zeros((30, 40), bool)
    mask[3:9, 4:14] = True
    from_coco = Instance((4, 3, 14, 9), rle=mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))
    assert isinstance(from_coco.rle["counts"], str) and from_coco.area == 60
    flat = mask.flatten(order="F").astype(int)  # COCO runs go down the columns, starting with background
    edges = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]])) if flat[0] == 0 else None
    counts = np.diff(np.r_[0, edges]).tolist()
    assert sum(counts) == mask.size
    runs = Instance((4, 3, 14, 9), rle={"size": [30, 40], "counts": counts})
    assert runs.area == 60 and (runs.mask == mask).all() and runs.rle == from_coco.rle
    with pytest.raises(ValueError, match="rle: expected COCO RLE .* Instance.from_mask"):
        Instance((0, 0, 1, 1), rle=mask)
    with pytest.raises(ValueError, match="runs >= 0 adding up to H x W = 16"):
        Instance((0, 0, 1, 1), rle={"size": [4, 4], "counts": [3, 2]})  # covers 5 of 16 pixels


@pytest.mark.parametrize("make, message", [
    (lambda: Instance((0, 0, 1, 1), score="0.5"), "score must be a number"),
    (lambda: Instance((0, 0, 1, 1), score=float("nan")), "score must be a number, not NaN"),
    (lambda: Instance((0, 0, 1, 1), scores={"a": float("nan")}), r"scores\['a'\] must be a number, not NaN"),
    (lambda: Instance((0, 0, 1, 1), category_id=1.5), "category_id must be a whole number"),
    (lambda: Instance((0, 0, 1, 1), category_id="1"), "category_id must be a whole number"),
    (lambda: Instance((0, 0, 1, 1), scores={"a": "high"}), r"scores\['a'\] must be a number"),
    (lambda: ImageLabels("a", -3, 5), "a: height must be a whole number >= 0"),
    (lambda: ImageLabels("a", "10", 5), "a: height must be a whole number"),
    (lambda: ImageLabels("a", 8, 8, [(0, 0, 1, 1)]), "a: instance 0 is a tuple, expected an Instance"),
    (lambda: LabelSet(ImageLabels("a", 8, 8)), r"\[image\] for one"),
    (lambda: LabelSet(["a.png"]), r"images\[0\] is a str, expected ImageLabels.*read_coco"),
    (lambda: LabelSet((), categories=["spacecraft"]), "categories: expected {id: name}"),
    (lambda: LabelSet((), categories={0: "bg"}), "a category id must be a whole number >= 1"),
])
def test_carriers_refuse_bad_values_in_one_line(make, message):
    from afss.errors import AfssError

    with pytest.raises(AfssError, match=message) as e:
        make()
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)  # what the carriers always raised


def test_numpy_numbers_are_taken_as_python_ones():
    inst = Instance((0, 0, 1, 1), score=np.float32(0.5), category_id=np.int64(2), scores={"box_score": np.float32(1)})
    assert type(inst.category_id) is int and type(inst.score) is float and type(inst.scores["box_score"]) is float
    assert Instance((0, 0, 1, 1), scores={"views": 2}).scores["views"] == 2  # a count stays a whole number
    assert Instance((0, 0, 1, 1), score=np.array(0.5), category_id=np.array(3)).score == 0.5  # a 0-d array (a tensor)
    im = ImageLabels("a", np.int64(8), np.int32(6), image_id=np.int64(3))
    assert (type(im.height), type(im.width), type(im.image_id)) == (int, int, int)
