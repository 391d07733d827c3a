"""Image-folder reader, with and without a same-named binary masks folder."""

from __future__ import annotations

import numpy as np
import pytest

from afss.datasets import read_dataset
from afss.datasets.folder import FolderReader
from afss.datasets.masks_folder import MaskFolder
from afss.errors import AfssError
from afss.io.images import save_image


def disk(h: int, w: int, cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_recursive_sorted_no_ground_truth(tmp_path):
    save_image(tmp_path / "b.png", np.zeros((10, 20, 3), np.uint8))
    save_image(tmp_path / "a.JPG", np.zeros((30, 40, 3), np.uint8))
    save_image(tmp_path / "sub" / "c.tif", np.zeros((5, 6), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    calls = []
    gt = read_dataset("folder", tmp_path, progress=calls.append)
    assert [im.file_name for im in gt.images] == ["a.JPG", "b.png", "sub/c.tif"]
    assert [im.size_hw for im in gt.images] == [(30, 40), (10, 20), (5, 6)]
    assert [im.image_id for im in gt.images] == [1, 2, 3]
    assert gt.num_instances == 0 and calls == [1, 1, 1]
    assert gt.image_root == str(tmp_path)


def test_linked_folders_are_entered_once_and_unread_formats_are_named(tmp_path, caplog):
    root = tmp_path / "set"
    save_image(root / "real" / "a.png", np.zeros((10, 20, 3), np.uint8))
    save_image(tmp_path / "elsewhere" / "b.png", np.zeros((10, 20, 3), np.uint8))
    (root / "linked").symlink_to(tmp_path / "elsewhere")  # a dataset assembled from links
    (root / "again").symlink_to(root / "real")  # the same folder twice: listed once
    (root / "real" / "loop").symlink_to(root)  # a loop: no hang
    save_image(root / "b" / "c" / "d.png", np.zeros((10, 20, 3), np.uint8))
    (root / "a" / "x").mkdir(parents=True)
    (root / "a" / "x" / "to_c").symlink_to(root / "b" / "c")  # a link deeper than the folder it names
    (root / "b" / "up").symlink_to(tmp_path)  # above the folder: would list what lies outside
    save_image(root / ".real" / "e.png", np.zeros((10, 20, 3), np.uint8))
    (root / "shown").symlink_to(root / ".real")  # a link to a hidden folder: entered, as before (review)
    (root / "c.jfif").write_bytes((root / "real" / "a.png").read_bytes())  # a JPEG-family name, PNG inside
    (root / "d.gif").write_bytes(b"GIF89a")
    (root / "notes.txt").write_text("not a picture")
    gt = read_dataset("folder", root)
    assert [im.file_name for im in gt.images] == ["b/c/d.png", "c.jfif", "linked/b.png", "real/a.png", "shown/e.png"]
    assert all(im.error is None for im in gt.images)
    assert "1 file(s) in a format afss does not read are left out, e.g. d.gif" in caplog.text


def test_corrupt_image_is_recorded_and_run_goes_on(tmp_path):
    save_image(tmp_path / "a.png", np.zeros((10, 20, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"\x00garbage")
    save_image(tmp_path / "c.png", np.zeros((7, 8, 3), np.uint8))
    gt = read_dataset("folder", tmp_path)
    a, b, c = gt.images
    assert a.error is None and c.error is None and c.size_hw == (7, 8)
    assert "b.jpg" in b.error and "cannot decode" in b.error and b.size_hw == (0, 0)


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(AfssError, match=r"nope: no such image folder"):
        FolderReader(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AfssError, match=r"empty: no images found"):
        FolderReader(tmp_path / "empty")


def test_masks_folder_gives_ground_truth(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    shape = disk(64, 80, 30, 40, 12)
    for name in ("x1.jpg", "x2.jpg", "x3.jpg", "x4.jpg"):
        save_image(images / name, np.zeros((64, 80, 3), np.uint8))
    save_image(masks / "x1.jpg", shape.astype(np.uint8) * 255, quality=75)  # same name, JPEG noise
    save_image(masks / "x2.png", shape.astype(np.uint8) * 255)  # same stem, PNG
    save_image(masks / "x3.jpg", np.zeros((32, 32), np.uint8))  # wrong size
    gt = read_dataset("folder", images, masks=masks)
    m1, m2, m3, m4 = gt.images
    for im in (m1, m2):
        (inst,) = im.instances
        got = inst.mask
        assert (got & shape).sum() / (got | shape).sum() >= 0.98
        assert np.abs(np.subtract(inst.box_xyxy, (28, 18, 53, 43))).max() <= 1
        assert im.meta["mask"] == "ok" and inst.source == "gt"
    assert m2.instances[0].box_xyxy == (28.0, 18.0, 53.0, 43.0)  # PNG: exact
    assert m3.instances == () and "x3.jpg" in m3.error and "32x32" in m3.error and "64x80" in m3.error
    assert m4.instances == () and m4.error is None and m4.meta["mask"] == "missing"


def test_masks_no_image_finds_are_named(tmp_path, caplog):
    """A convert probe: a misnamed mask (x4-mask.png for x4.jpg) was left out without a word."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name in ("x1.jpg", "x4.jpg"):
        save_image(images / name, np.zeros((16, 16, 3), np.uint8))
    save_image(masks / "x1.png", np.full((16, 16), 255, np.uint8))
    save_image(masks / "x4-mask.png", np.full((16, 16), 255, np.uint8))
    (masks / "notes.txt").write_text("not a mask")
    save_image(masks / ".ipynb_checkpoints" / "x9.png", np.full((16, 16), 255, np.uint8))  # hidden: not counted
    read_dataset("folder", images, masks=masks)
    assert "1 mask file(s) are found by no image, e.g. x4-mask.png: they are not used" in caplog.text


def test_the_image_folder_is_refused_as_its_own_masks_folder(tmp_path):
    """Each image found itself as its mask: a grey photo became a whole-frame instance (a review)."""
    save_image(tmp_path / "x.png", np.full((16, 16, 3), 200, np.uint8))
    with pytest.raises(AfssError, match="the masks folder is the image folder, so each image would be read as its own"):
        read_dataset("folder", tmp_path, masks=tmp_path)


def test_mask_lookup_order(tmp_path):
    (tmp_path / "sub").mkdir()
    for p in ("a.png", "sub/a.png", "b.png"):
        (tmp_path / p).write_bytes(b"")
    mf = MaskFolder(tmp_path)
    assert mf.find("sub/a.png") == tmp_path / "sub/a.png"
    assert mf.find("other/a.png") == tmp_path / "a.png"
    assert mf.find("b.jpg") == tmp_path / "b.png"
    assert mf.find("c.jpg") is None


def test_a_mask_found_by_base_name_for_several_images_is_given_to_none(tmp_path):
    """a/frame.jpg and b/frame.jpg are different pictures: one masks/frame.png cannot be the truth of both."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name in ("a/frame.jpg", "b/frame.jpg", "c/other.jpg", "d/own.png"):
        save_image(images / name, np.zeros((20, 30, 3), np.uint8))
    for name in ("frame.png", "other.png", "d/own.png"):
        save_image(masks / name, disk(20, 30, 10, 15, 5).astype(np.uint8) * 255)
    gt = read_dataset("folder", images, masks=masks)
    a, b, c, d = gt.images
    for im, other in ((a, "b/frame.jpg"), (b, "a/frame.jpg")):
        assert im.instances == () and im.meta["mask"] == "error"
        assert f"frame.png: found by base name for {im.file_name}, and for {other} too" in im.error
    assert len(c.instances) == 1 and c.error is None  # one image for that base name: as before
    assert len(d.instances) == 1 and d.error is None
    # the image whose own path names the mask keeps it; one finding it by base name does not
    save_image(images / "frame.png", np.zeros((20, 30, 3), np.uint8))
    by_name = {im.file_name: im for im in read_dataset("folder", images, masks=masks).images}
    assert len(by_name["frame.png"].instances) == 1 and by_name["frame.png"].error is None
    assert by_name["a/frame.jpg"].instances == () and "found by base name" in by_name["a/frame.jpg"].error


def test_coco_listing_an_image_twice_with_masks_reads(tmp_path):
    """The COCO reader keeps a file listed twice once; its mask lookup must not count it as two images."""
    import json

    save_image(tmp_path / "images" / "a.png", np.zeros((20, 30, 3), np.uint8))
    save_image(tmp_path / "masks" / "a.png", disk(20, 30, 10, 15, 5).astype(np.uint8) * 255)
    entry = {"file_name": "images/a.png", "height": 20, "width": 30}
    (tmp_path / "gt.json").write_text(json.dumps({"images": [{"id": 1, **entry}, {"id": 2, **entry}],
                                                  "annotations": [], "categories": [{"id": 1, "name": "s"}]}))
    gt = read_dataset("coco", tmp_path / "gt.json", masks=tmp_path / "masks")
    assert all(len(im.instances) == 1 and im.error is None for im in gt.images)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3), (5, 7, 4), (5, 7, 6)])
def test_fortran_pixels_same_values_column_major(shape):
    from afss.datasets.common import fortran_pixels
    from afss.types import encode_mask

    raw = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    f = fortran_pixels(raw)
    np.testing.assert_array_equal(f, raw)
    m = (f if f.ndim == 2 else f[..., 0]) >= 128
    assert m.flags.f_contiguous
    assert encode_mask(m) == encode_mask(np.ascontiguousarray(m))
