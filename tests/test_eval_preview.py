import json
import os

import numpy as np
import pytest

from afss.cli import main
from afss.evaluate.preview import GT_COLOR, PRED_COLORS, _iou, preview_grid
from afss.io.coco import write_coco
from afss.io.images import load_image, save_image
from afss.types import ImageLabels, Instance, LabelSet


def square(x0, size=(64, 96)):
    m = np.zeros(size, bool)
    m[20:40, x0:x0 + 20] = True
    return Instance.from_mask(m, score=0.8)


@pytest.fixture
def sets(tmp_path):
    for k in range(3):
        save_image(tmp_path / f"{k}.png", np.zeros((64, 96, 3), np.uint8))
    gt = LabelSet(tuple(ImageLabels(f"{k}.png", 64, 96, (square(10 + k),)) for k in range(3)), image_root=str(tmp_path))
    pred = LabelSet(tuple(ImageLabels(f"{k}.png", 64, 96, (square(20 + k),)) for k in range(2)), image_root=str(tmp_path))
    return gt, pred


def test_iou_in_title_is_the_mask_iou(sets):
    gt, pred = sets
    assert _iou(gt.images[0], pred.images[0].instances[0]) == "0.33"  # 10 of 30 columns overlap


def test_grid_draws_ground_truth_and_predictions_in_their_colours(sets):
    gt, pred = sets
    grid = preview_grid(gt, {"pred": pred}, n=3, ncols=3, tile=64)
    assert grid.shape == (4 + 64 + 4, 4 + 3 * 68, 3)
    flat = grid.reshape(-1, 3)
    assert (flat == GT_COLOR).all(axis=1).any() and (flat == PRED_COLORS[0]).all(axis=1).any()


def test_cli_writes_the_preview(sets, tmp_path, capsys):
    gt, pred = sets
    write_coco(gt, tmp_path / "gt.json")
    write_coco(pred, tmp_path / "pred.json")
    code = main(["eval", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                 "--preview", str(tmp_path / "p.png"), "--preview-n", "2"])
    assert code == 0
    assert load_image(tmp_path / "p.png").rgb.shape[1] > 2 * 64


def test_cli_reads_ground_truth_and_each_prediction_once(sets, tmp_path, monkeypatch, capsys):
    from afss.evaluate import inputs

    gt, pred = sets
    write_coco(gt, tmp_path / "gt.json")
    write_coco(pred, tmp_path / "a.json")
    write_coco(pred, tmp_path / "b.json")
    reads = []
    real = inputs.read_coco
    monkeypatch.setattr(inputs, "read_coco", lambda path, **kw: reads.append(os.path.basename(path)) or real(path, **kw))
    monkeypatch.setattr("afss.io.coco.read_coco", lambda *a, **kw: pytest.fail("read outside afss.evaluate.inputs"))
    code = main(["eval", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "a.json"),
                 "--pred", str(tmp_path / "b.json"), "--preview", str(tmp_path / "p.png"),
                 "--score-plot", str(tmp_path / "s.png")])
    assert code == 0
    assert sorted(reads) == ["a.json", "b.json", "gt.json"]
    metrics = json.loads((tmp_path / "a.metrics.json").read_text())
    assert metrics["gt"] == str(tmp_path / "gt.json") and metrics["pred"] == str(tmp_path / "a.json")
