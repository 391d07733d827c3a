"""SPARK-2024 reader on small replicas of its layout, with real JPEG-compressed colour masks."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from afss.datasets import read_dataset
from afss.datasets.spark import parse_box, spark_mask_parts
from afss.errors import AfssError
from afss.io.images import save_image
from afss.types import mask_box_xyxy

H, W = 96, 128


def draw_parts(h: int, w: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Body: a rectangle; panels: two wings left and right of it. Bool (H, W) each."""
    body = np.zeros((h, w), bool)
    panels = np.zeros((h, w), bool)
    cy, cx = h // 2, w // 2 + shift
    body[cy - h // 6: cy + h // 6, cx - w // 10: cx + w // 10] = True
    panels[cy - h // 12: cy + h // 12, cx - w // 3: cx - w // 10 - 2] = True
    panels[cy - h // 12: cy + h // 12, cx + w // 10 + 2: cx + w // 3] = True
    return body, panels


def colour_mask(body: np.ndarray, panels: np.ndarray) -> np.ndarray:
    rgb = np.zeros((*body.shape, 3), np.uint8)
    rgb[body] = (255, 0, 0)
    rgb[panels] = (0, 0, 255)
    return rgb


def make_spark(root: Path, classes=("Cheops", "XMM Newton"), splits=("train", "val"), n: int = 2,
               header=("Image name", "Mask name", "Class", "Bounding box"), size=(H, W), quality: int = 75,
               box_offset: int = 0) -> dict[str, np.ndarray]:
    """Write a SPARK-2024 stream 1 replica; returns {image file_name: drawn union mask}."""
    drawn = {}
    rng = np.random.default_rng(0)
    for split in splits:
        rows = []
        for cls in classes:
            for k in range(n):
                img_name, mask_name = f"image_{k:05d}_img.jpg", f"image_{k:05d}_layer.jpg"
                body, panels = draw_parts(*size, shift=4 * k)
                image = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
                image[body | panels] = 200
                save_image(root / "images" / cls / split / img_name, image, quality=quality)
                save_image(root / "mask" / cls / split / mask_name, colour_mask(body, panels), quality=quality)
                x0, y0, x1, y1 = (int(v) for v in mask_box_xyxy(body | panels))
                rows.append([img_name, mask_name, cls, f"({x0 + box_offset}, {y0}, {x1}, {y1})"])
                drawn[f"images/{cls}/{split}/{img_name}"] = body | panels
        with (root / f"{split}.csv").open("w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(header)
            wr.writerows(rows)
    return drawn


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_reads_counts_classes_parts_and_boxes(tmp_path):
    drawn = make_spark(tmp_path)
    calls = []
    gt = read_dataset("spark", tmp_path, progress=calls.append)
    assert len(gt) == 8 and sum(calls) == 8
    assert dict(gt.categories) == {1: "Cheops", 2: "XMM Newton"}
    assert gt.image_root == str(tmp_path)
    for im in gt.images:
        assert (im.height, im.width) == (H, W) and im.error is None
        assert im.meta["class"] in ("Cheops", "XMM Newton")
        assert im.meta["split"] in ("train", "val")
        (inst,) = im.instances
        assert inst.category_id == (1 if im.meta["class"] == "Cheops" else 2)
        assert inst.source == "gt" and inst.score == 1.0
        assert set(inst.parts) == {"body", "panels"}
        mask = inst.mask
        assert inst.box_xyxy == mask_box_xyxy(mask)
        np.testing.assert_array_equal(mask, inst.part_mask("body") | inst.part_mask("panels"))
        assert not (inst.part_mask("body") & inst.part_mask("panels")).any()
        assert iou(mask, drawn[im.file_name]) >= 0.98
    assert gt.images[0].file_name == "images/Cheops/train/image_00000_img.jpg"


def test_jpeg_noise_mask_iou_per_part(tmp_path):
    body, panels = draw_parts(256, 256)
    save_image(tmp_path / "m.jpg", colour_mask(body, panels), quality=75)
    import cv2

    noisy = cv2.cvtColor(cv2.imread(str(tmp_path / "m.jpg")), cv2.COLOR_BGR2RGB)
    assert not np.isin(noisy.reshape(-1, 3), [[0, 0, 0], [255, 0, 0], [0, 0, 255]]).all(axis=1).all()  # it IS noisy
    got_body, got_panels = spark_mask_parts(noisy)
    assert iou(got_body, body) >= 0.98
    assert iou(got_panels, panels) >= 0.95
    assert iou(got_body | got_panels, body | panels) >= 0.98


@pytest.mark.parametrize("pixel, expected", [
    ((254, 0, 0), (True, False)), ((0, 3, 250), (False, True)), ((20, 12, 9), (False, False)),
    ((140, 0, 120), (True, False)), ((120, 0, 140), (False, True)), ((127, 0, 0), (False, False)),
])
def test_nearest_colour_assignment(pixel, expected):
    body, panels = spark_mask_parts(np.array([[pixel]], np.uint8))
    assert (bool(body[0, 0]), bool(panels[0, 0])) == expected


def test_split_selection_and_column_names_tolerant(tmp_path):
    make_spark(tmp_path, classes=("Soho",), splits=("val",), n=3, header=("image_name", " Mask Name", "CLASS",
                                                                            "bounding_box"))
    gt = read_dataset("spark", tmp_path, split="val")
    assert len(gt) == 3 and dict(gt.categories) == {1: "Soho"}


def test_csv_without_required_column(tmp_path):
    make_spark(tmp_path, classes=("Soho",), splits=("train",), n=1)
    (tmp_path / "train.csv").write_text("Image name,Mask name,Bounding box\nimage_00000_img.jpg,x.jpg,\"(1, 2, 3, 4)\"\n")
    with pytest.raises(AfssError) as e:
        read_dataset("spark", tmp_path, split="train")
    msg = str(e.value)
    assert "train.csv" in msg and "'Class'" in msg and "'Mask name'" in msg and "\n" not in msg


def test_box_disagreement_warns_and_mask_box_is_kept(tmp_path, caplog):
    make_spark(tmp_path, classes=("Soho",), splits=("train",), n=1, box_offset=20)
    with caplog.at_level(logging.WARNING, logger="afss.datasets.spark"):
        gt = read_dataset("spark", tmp_path)
    (inst,) = gt.images[0].instances
    assert inst.box_xyxy == mask_box_xyxy(inst.mask)
    assert any("differs from the mask extents" in r.message for r in caplog.records)
    assert gt.images[0].meta["csv_box_xyxy"][0] == inst.box_xyxy[0] + 20


def test_bad_mask_and_corrupt_image_are_recorded(tmp_path):
    make_spark(tmp_path, classes=("Soho",), splits=("train",), n=3)
    save_image(tmp_path / "mask/Soho/train/image_00001_layer.jpg", np.zeros((50, 50, 3), np.uint8))
    (tmp_path / "images/Soho/train/image_00002_img.jpg").write_bytes(b"not a jpeg at all")
    gt = read_dataset("spark", tmp_path)
    ok, wrong_size, corrupt = gt.images
    assert ok.error is None and len(ok.instances) == 1
    assert "image_00001_layer.jpg" in wrong_size.error and "50x50" in wrong_size.error
    assert wrong_size.instances == () and wrong_size.height == H
    assert "image_00002_img.jpg" in corrupt.error and corrupt.instances == ()
    assert (corrupt.height, corrupt.width) == (0, 0)


def test_a_row_with_a_box_but_no_usable_mask_is_an_error_not_an_empty_frame(tmp_path, caplog):
    """A convert probe: a missing or all-black mask whose CSV row gives a box read as "no spacecraft", so a
    right detection there counted as a false positive; a box cell that is not four numbers went unsaid."""
    make_spark(tmp_path, classes=("Soho",), splits=("train",), n=3)
    (tmp_path / "mask/Soho/train/image_00001_layer.jpg").unlink()
    save_image(tmp_path / "mask/Soho/train/image_00002_layer.jpg", np.zeros((H, W, 3), np.uint8))
    ok, missing, empty = read_dataset("spark", tmp_path).images
    assert ok.error is None and len(ok.instances) == 1
    rows = (tmp_path / "train.csv").read_text().splitlines()  # "(0, 0, 0, 0)": no target, not a box
    (tmp_path / "train.csv").write_text("\n".join([*rows[:2], rows[2].rsplit(",", 4)[0] + ',"(0, 0, 0, 0)"',
                                                    *rows[3:]]) + "\n")
    assert read_dataset("spark", tmp_path).images[1].error is None
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    assert "image_00001_layer.jpg: no such mask, though the CSV gives a box" in missing.error
    assert "image_00002_layer.jpg: the mask is empty, though the CSV gives a box" in empty.error
    rows = (tmp_path / "train.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join([rows[0], rows[1].rsplit(",", 4)[0] + ',"abc"', *rows[2:]]) + "\n")
    with caplog.at_level(logging.WARNING):
        read_dataset("spark", tmp_path)
    assert "1 'Bounding box' cells are not four numbers, e.g. line 2: 'abc'" in caplog.text


def test_an_image_or_mask_under_another_extension_or_case_is_found(tmp_path):
    """A convert probe: a .JPG on disk, or a mask saved again as .png, read as missing (SPEED+ and TANGO find them)."""
    drawn = make_spark(tmp_path, classes=("Soho",), splits=("train",), n=2)
    img = tmp_path / "images/Soho/train/image_00000_img.jpg"
    img.rename(img.with_suffix(".JPG"))
    mask = tmp_path / "mask/Soho/train/image_00001_layer.jpg"
    save_image(mask.with_suffix(".png"), colour_mask(*draw_parts(H, W, shift=4)))
    mask.unlink()
    first, second = read_dataset("spark", tmp_path).images
    assert first.error is None and first.file_name == "images/Soho/train/image_00000_img.JPG"
    assert second.error is None and (second.instances[0].mask == drawn["images/Soho/train/image_00001_img.jpg"]).all()


def test_a_quote_left_open_is_refused_not_swallowing_rows(tmp_path):
    make_spark(tmp_path, classes=("Soho",), splits=("train",), n=2)
    rows = (tmp_path / "train.csv").read_text().splitlines()
    rows[1] = rows[1][:-1]  # the box's closing quote lost: the next row became part of the box
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(AfssError, match=r"train.csv: line 2: a cell runs over several lines \(a quote left open\?\)"):
        read_dataset("spark", tmp_path)


def test_test_split_without_csv_or_masks(tmp_path):
    make_spark(tmp_path, classes=("Soho",), splits=("train",), n=1)
    for k in range(2):
        save_image(tmp_path / f"images/test/test_{k:05d}_img.jpg", np.zeros((H, W, 3), np.uint8))
    gt = read_dataset("spark", tmp_path, split="test")
    assert [im.file_name for im in gt.images] == ["images/test/test_00000_img.jpg", "images/test/test_00001_img.jpg"]
    assert gt.num_instances == 0 and all(im.error is None for im in gt.images)
    assert all("mask" not in im.meta for im in gt.images)  # no mask expected, none missing
    assert all(im.error is None for im in read_dataset("spark", tmp_path, split="test", missing_mask="error"))


def test_spark2022_boxes_only(tmp_path):
    save_image(tmp_path / "train/img001.jpg", np.zeros((H, W, 3), np.uint8))
    (tmp_path / "train.csv").write_text('filename,class,bbox\nimg001.jpg,smart_1,"[10, 20, 40, 70]"\n')
    gt = read_dataset("spark", tmp_path, split="train")
    (inst,) = gt.images[0].instances
    assert inst.box_xyxy == (20.0, 10.0, 70.0, 40.0) and inst.rle is None  # rows first -> xyxy
    assert dict(gt.categories) == {1: "smart_1"}
    (tmp_path / "train.csv").write_text("filename,class,bbox\nimg001.jpg,smart_1\n")  # a row cut short
    with pytest.raises(AfssError, match=r"train.csv: line 2: bbox '' is not '\[r_min"):
        read_dataset("spark", tmp_path, split="train")
    (tmp_path / "train.csv").write_text('filename,class,bbox\nimg001.jpg,smart_1,"[40, 20, 10, 70]"\n')  # inverted
    (image,) = read_dataset("spark", tmp_path, split="train").images  # that image's error: the rest goes on
    assert "CSV box [20, 40, 70, 10] (xyxy) is empty or inverted" in image.error
    (tmp_path / "train.csv").write_text('filename,class,bbox\nimg001.jpg,smart_1,"[10, 200, 40, 270]"\n')  # outside
    (image,) = read_dataset("spark", tmp_path, split="train").images
    assert "CSV box [200, 10, 270, 40] (xyxy) lies outside the 96x128 (HxW) image" in image.error


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(AfssError, match="nowhere: no such SPARK dataset folder"):
        read_dataset("spark", tmp_path / "nowhere")
    with pytest.raises(AfssError, match="no train.csv or val.csv"):
        read_dataset("spark", tmp_path)


def test_parse_box():
    assert parse_box("(397, 253, 653, 486)") == (397.0, 253.0, 653.0, 486.0)
    assert parse_box("[1.5, 2, 3, 4]") == (1.5, 2.0, 3.0, 4.0)
    assert parse_box("(1, 2, 3)") is None


def test_csv_not_utf8(tmp_path):
    (tmp_path / "val.csv").write_bytes(b"Image name,Class\n\xff\xfe\x00bad\n")
    with pytest.raises(AfssError, match="val.csv: not a readable UTF-8 CSV"):
        read_dataset("spark", tmp_path)
