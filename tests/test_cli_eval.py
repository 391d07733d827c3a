"""`afss eval` end to end on tiny generated COCO files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from afss.cli import main
from afss.io.coco import write_coco
from afss.types import ImageLabels, Instance, LabelSet


def square(x0: int, score: float = 1.0, cat: int = 1) -> Instance:
    m = np.zeros((64, 64), bool)
    m[10:50, x0:x0 + 40] = True
    return Instance.from_mask(m, score=score, category_id=cat)


@pytest.fixture
def files(tmp_path):
    gt = LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(5 + k),)) for k in range(3)))
    # IoU 31/49 = 0.633 on every image: AP50 100, AP75 0, AP 30.
    pred = LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(14 + k, 0.9),), image_id=7 + k)
                          for k in range(3)))
    write_coco(gt, tmp_path / "gt.json")
    write_coco(pred, tmp_path / "pred.json")
    return tmp_path


def test_eval_prints_table_and_writes_json_next_to_predictions(files, capsys):
    code = main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json")])
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["protocol", "iou", "category", "AP", "AP50", "AP75"]
    assert [line.split()[:6] for line in lines[2:6]] == [
        ["coco", "segm", "all", "30.0", "100.0", "0.0"],
        ["paper", "segm", "all", "30.0", "100.0", "0.0"],
        ["coco", "bbox", "all", "30.0", "100.0", "0.0"],
        ["paper", "bbox", "all", "30.0", "100.0", "0.0"],
    ]
    metrics = files / "pred.metrics.json"
    assert str(metrics) in err.strip().splitlines()[-1]
    data = json.loads(metrics.read_text())
    assert data["rows"][0]["ap50"] == 1.0 and data["num_images"] == 3
    assert data["pred"] == str(files / "pred.json")


def test_eval_options(files, capsys):
    out_path = files / "sub" / "m.json"
    code = main(["-q", "eval", "--gt", str(files / "gt.json"), "--pred", str(files / "gt.json"),
                 "--iou-type", "bbox", "--protocol", "paper", "--per-class", "--out", str(out_path)])
    out, _ = capsys.readouterr()
    assert code == 0
    assert [line.split()[:4] for line in out.splitlines()[2:]] == [["paper", "bbox", "all", "100.0"]]
    assert json.loads(out_path.read_text())["meta"]["per_class"] is True


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.json", "no such file"),
        (lambda d: (d / "list.json").write_text("[1, 2]") and d / "list.json", "not a COCO instances file"),
        (lambda d: write_coco(LabelSet((ImageLabels("other.png", 64, 64),)), d / "other.json"),
         "no prediction image matches ground truth"),
    ],
)
def test_eval_bad_input_exits_2_with_one_line(files, capsys, make, message):
    pred = make(files)
    code = main(["eval", "--gt", str(files / "gt.json"), "--pred", str(pred)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("afss: error: ") and message in lines[0]


def test_eval_unknown_iou_type(files, capsys):
    code = main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json"), "--iou-type", "mask"])
    _, err = capsys.readouterr()
    assert code == 2 and "unknown IoU type 'mask'" in err


def test_eval_compares_several_predictions_in_one_table(files, capsys):
    write_coco(LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(5 + k, 0.8),)) for k in range(3))),
               files / "perfect.json")
    code = main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json"),
                 "--pred", str(files / "perfect.json"), "--protocol", "paper"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [line.split()[:7] for line in out.splitlines()[2:]]
    assert rows == [
        ["pred", "paper", "segm", "all", "30.0", "100.0", "0.0"],
        ["perfect", "paper", "segm", "all", "100.0", "100.0", "100.0"],
        ["pred", "paper", "bbox", "all", "30.0", "100.0", "0.0"],
        ["perfect", "paper", "bbox", "all", "100.0", "100.0", "100.0"],
    ]
    assert (files / "pred.metrics.json").exists() and (files / "perfect.metrics.json").exists()
    assert main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json"),
                 "--pred", str(files / "perfect.json"), "--out", str(files / "m.json")]) == 2
    assert "--out names one metrics file" in capsys.readouterr().err


def test_eval_keeps_apart_predictions_with_the_same_file_name(files, capsys):
    (files / "run1").mkdir()
    (files / "run2").mkdir()
    (files / "run1" / "pred.json").write_text((files / "pred.json").read_text())
    write_coco(LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(5 + k, 0.8),)) for k in range(3))),
               files / "run2" / "pred.json")
    code = main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "run1" / "pred.json"),
                 "--pred", str(files / "run2" / "pred.json"), "--protocol", "paper", "--iou-type", "segm"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert [line.split()[:5] for line in out.splitlines()[2:]] == [
        ["run1/pred", "paper", "segm", "all", "30.0"],
        ["run2/pred", "paper", "segm", "all", "100.0"],
    ]
    assert json.loads((files / "run1" / "pred.metrics.json").read_text())["rows"][0]["ap"] == pytest.approx(0.3)
    assert json.loads((files / "run2" / "pred.metrics.json").read_text())["rows"][0]["ap"] == 1.0


def test_eval_accepts_an_image_the_labeller_could_not_read(files, capsys):
    # afss label records an unreadable image with size 0x0, no instances and an error
    pred = LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(5 + k, 0.9),)) for k in range(2))
                    + (ImageLabels("images/2.png", 0, 0, error="unreadable: images/2.png: cannot decode image"),))
    write_coco(pred, files / "partial.json")
    assert main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "partial.json"),
                 "--protocol", "paper", "--iou-type", "segm"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[:4] == ["paper", "segm", "all", f"{100 * 67 / 101:.1f}"]  # 2 of 3 found: recall stops at 2/3


def test_preview_errors_are_one_line(files, capsys):
    preds = [arg for _ in range(6) for arg in ("--pred", str(files / "pred.json"))]
    assert main(["eval", "--gt", str(files / "gt.json"), *preds,
                 "--preview", str(files / "p.png")]) == 2
    assert "--preview draws at most 5 --pred files, got 6" in capsys.readouterr().err
    assert main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json"),
                 "--preview", str(files / "p.png")]) == 2  # the fixture writes no image files
    assert "preview: none of the sampled images could be read" in capsys.readouterr().err
