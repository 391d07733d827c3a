"""`afss convert`: exit codes, messages and the COCO file it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from test_datasets_spark import make_spark

import afss.cli
from afss.io.coco import read_coco
from afss.io.images import save_image


@pytest.fixture(autouse=True)
def only_convert(monkeypatch):
    # Other subcommands are built in parallel; this test needs only its own.
    monkeypatch.setattr(afss.cli, "COMMANDS", ("convert",))


def convert(*argv: str) -> int:
    return afss.cli.main(["-q", "convert", *argv])


def test_spark_to_coco_round_trip(tmp_path, capsys):
    make_spark(tmp_path / "spark", classes=("Cheops", "XMM Newton"), splits=("val",), n=2)
    out = tmp_path / "out" / "gt.json"
    assert convert("--from", "spark", "--root", str(tmp_path / "spark"), "--split", "val", "--out", str(out)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("afss convert: 4 images, 4 instances, 0 images with errors, ")
    assert err[-1].endswith(f"-> {out}")
    data = json.loads(out.read_text())
    assert data["info"]["image_root"] == "../spark" and data["info"]["dataset"] == "spark"
    assert [c["name"] for c in data["categories"]] == ["Cheops", "XMM Newton"]
    assert data["images"][2]["file_name"] == "images/XMM Newton/val/image_00000_img.jpg"
    assert data["images"][2]["afss_meta"]["class"] == "XMM Newton"
    coco = COCO(str(out))
    assert len(coco.getAnnIds()) == 4 and coco.annToMask(coco.anns[1]).shape == (96, 128)
    back = read_coco(out)
    assert back.image_root == str(tmp_path / "spark")
    assert set(back.images[0].instances[0].parts) == {"body", "panels"}


def test_folder_with_corrupt_image_goes_on(tmp_path, capsys):
    save_image(tmp_path / "a.png", np.zeros((10, 12, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"junk")
    out = tmp_path / "gt.json"
    assert convert("--from", "folder", "--root", str(tmp_path), "--out", str(out)) == 0
    assert "2 images, 0 instances, 1 images with errors" in capsys.readouterr().err
    images = json.loads(out.read_text())["images"]
    assert "afss_error" not in images[0] and "b.png" in images[1]["afss_error"]


@pytest.mark.parametrize("argv, expected", [
    (["--from", "folder", "--root", "{tmp}/missing"], "missing: no such image folder"),
    (["--from", "folder", "--root", "{tmp}/empty"], "empty: no images found"),
    (["--from", "spark", "--root", "{tmp}/bad_csv"], "train.csv: missing column 'Class' (found columns: 'Image name')"),
    (["--from", "coco", "--root", "{tmp}/list.json"], "list.json: not a COCO instances file"),
    (["--from", "speedplus", "--root", "{tmp}", "--domain", "nope"], "nope: no such SPEED+ domain folder"),
    (["--from", "tango", "--root", "{tmp}", "--domain", "x"], "'tango' does not take domain"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, argv, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad_csv").mkdir()
    (tmp_path / "bad_csv" / "train.csv").write_text("Image name\nimage_00001_img.jpg\n")
    (tmp_path / "list.json").write_text('[{"filename": "a.jpg"}]')
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert convert(*argv, "--out", str(tmp_path / "gt.json")) == 2
    err = capsys.readouterr().err
    assert err.startswith("afss: error: ") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "gt.json").exists()


def test_unknown_kind_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        convert("--from", "sparc", "--root", str(tmp_path), "--out", str(tmp_path / "x.json"))
    assert e.value.code == 2 and "invalid choice: 'sparc'" in capsys.readouterr().err


def test_speedplus_missing_mask_error_flag(tmp_path, capsys):
    from test_datasets_speedplus import make_speedplus

    make_speedplus(tmp_path / "sp", splits=("validation",), n=2)
    (tmp_path / "sp/synthetic/masks/imgva0001.jpg").unlink()
    out = tmp_path / "gt.json"
    argv = ("--from", "speedplus", "--root", str(tmp_path / "sp"), "--split", "val", "--out", str(out))
    assert convert(*argv) == 0
    assert "2 images, 1 instances, 0 images with errors" in capsys.readouterr().err
    assert convert(*argv, "--missing-mask", "error") == 0
    assert "2 images, 1 instances, 1 images with errors" in capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["images"][1]["afss_error"] == "synthetic/images/imgva0001.jpg: no mask file"
    assert data["info"]["camera"]["fx"] == 0.0176 and data["images"][0]["afss_meta"]["split"] == "validation"
