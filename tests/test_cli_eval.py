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
    rows = [line for line in out.splitlines()[2:] if not line.startswith("note:")]
    assert [line.split()[:4] for line in rows] == [["paper", "bbox", "all", "100.0"]]
    assert "every prediction has the score 1" in out  # ground truth as predictions: no scores to rank by
    assert json.loads(out_path.read_text())["meta"]["per_class"] is True


def _unscored_one(folder):
    data = json.loads((folder / "pred.json").read_text())
    del data["annotations"][1]["score"]
    (folder / "unscored.json").write_text(json.dumps(data))
    return folder / "unscored.json"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.json", "no such file"),
        (lambda d: (d / "list.json").write_text("[1, 2]") and d / "list.json", "not a COCO instances file"),
        (lambda d: write_coco(LabelSet((ImageLabels("other.png", 64, 64),)), d / "other.json"),
         "no prediction image matches ground truth"),
        (lambda d: _unscored_one(d), "1 of 3 predictions have no score, e.g. annotation 2"),  # ranked first before
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
    import shutil

    copies = [shutil.copy(files / "pred.json", files / f"pred{k}.json") for k in range(6)]
    preds = [arg for copy in copies for arg in ("--pred", str(copy))]
    assert main(["eval", "--gt", str(files / "gt.json"), *preds,
                 "--preview", str(files / "p.png")]) == 2
    assert "--preview draws at most 5 --pred files, got 6" in capsys.readouterr().err
    assert main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json"),
                 "--preview", str(files / "p.png")]) == 2  # the fixture writes no image files
    assert "preview: none of the sampled images could be read" in capsys.readouterr().err


def test_image_root_finds_images_kept_elsewhere_and_score_plot(tmp_path, capsys):
    """Ground truth in one folder, its images in another: --image-root lets --preview read them;
    --score-plot draws score against IoU and prints the rank correlation."""
    from afss.io.images import load_image, save_image

    (tmp_path / "pics" / "images").mkdir(parents=True)
    for k in range(4):
        save_image(tmp_path / "pics" / "images" / f"{k}.png", np.zeros((64, 64, 3), np.uint8))
    gt = LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(5),)) for k in range(4)))
    # the higher the score, the better the label: IoU falls as the square moves away
    pred = LabelSet(tuple(ImageLabels(f"images/{k}.png", 64, 64, (square(5 + 4 * k, 0.9 - 0.2 * k),)) for k in range(4)))
    (tmp_path / "labels").mkdir()
    write_coco(gt, tmp_path / "labels" / "gt.json")
    write_coco(pred, tmp_path / "labels" / "pred.json")
    args = ["eval", "--gt", str(tmp_path / "labels" / "gt.json"), "--pred", str(tmp_path / "labels" / "pred.json"),
            "--preview", str(tmp_path / "p.png")]
    assert main(args) == 2  # the images are not next to the ground truth
    assert "preview: none of the sampled images could be read" in capsys.readouterr().err
    assert main([*args, "--image-root", str(tmp_path / "pics"), "--score-plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "score vs IoU, pred: Spearman(score, IoU) 1.00 over 4 images" in out
    assert load_image(tmp_path / "p.png").rgb.shape[1] > 64 and load_image(tmp_path / "s.png").rgb.shape == (640, 640, 3)


def test_spearman_and_score_iou_pairs():
    from afss.evaluate.score_quality import score_iou_pairs, spearman

    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 1, 2, 2]), np.array([5, 5, 9, 9])) == pytest.approx(1.0)  # ties: average ranks
    assert np.isnan(spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])))
    gt = LabelSet((ImageLabels("a.png", 64, 64, (square(5),)), ImageLabels("b.png", 64, 64, (square(5),))))
    boxes_only = LabelSet((ImageLabels("a.png", 64, 64, (Instance(box_xyxy=(5, 10, 45, 50)),)),))
    pred = LabelSet((ImageLabels("a.png", 64, 64, (square(25, 0.3), square(5, 0.8))), ImageLabels("b.png", 64, 64)))
    assert score_iou_pairs(gt, pred).tolist() == [[0.8, 1.0]]  # top-1 by score; unlabelled images skipped
    assert score_iou_pairs(boxes_only, pred).tolist() == [[0.8, 1.0]]  # box IoU for boxes-only ground truth


def test_the_score_line_says_why_there_is_no_ranking_instead_of_printing_nan():
    from afss.evaluate.score_quality import score_quality

    gt = LabelSet(tuple(ImageLabels(f"{k}.png", 64, 64, (square(5),)) for k in range(3)))
    nothing = LabelSet(tuple(ImageLabels(f"{k}.png", 64, 64) for k in range(3)))
    one = LabelSet((ImageLabels("0.png", 64, 64, (square(5, 0.8),)),))
    lines = [score_quality(gt, p).line() for p in (nothing, one)]
    assert lines == ["no image both labelled here and in the ground truth: no score to rank",
                     ("Spearman(score, IoU) undefined (it needs 3 images whose scores and IoUs both vary) over 1 "
                      "image; its IoU 1.00")]
    assert all("nan" not in line for line in lines)


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback(files):
    """`afss eval ... | head -1`: the table's first line, then a quiet stop (exit 141, as after SIGPIPE)."""
    import subprocess
    import sys

    cmd = f"{sys.executable} -m afss.cli eval --gt {files / 'gt.json'} --pred {files / 'pred.json'} --per-class"
    # the pipe is closed before afss writes: head has already exited when the table comes
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | (exec 0<&-; true)"], check=False,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141, (done.returncode, done.stderr)


def test_a_broken_pipe_elsewhere_than_stdout_is_not_swallowed(files, monkeypatch):
    """Only stdout's reader going away is a quiet stop; a worker's or subprocess's pipe is an error."""
    import afss.cli.eval as eval_cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(eval_cli, "run", broken)
    with pytest.raises(BrokenPipeError):
        main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json")])


def test_a_bad_ground_truth_is_the_error_shown_not_the_metrics_file_it_would_replace(files, capsys):
    """It said "pred.metrics.json: exists and was made from other inputs" and nothing of the bad file."""
    assert main(["eval", "--gt", str(files / "gt.json"), "--pred", str(files / "pred.json")]) == 0
    (files / "notcoco.json").write_text('{"annotations": []}')
    capsys.readouterr()
    assert main(["eval", "--gt", str(files / "notcoco.json"), "--pred", str(files / "pred.json")]) == 2
    assert "notcoco.json: not a COCO instances file" in capsys.readouterr().err
    # a good ground truth of other images still meets the refusal to replace the metrics
    write_coco(LabelSet((ImageLabels("images/0.png", 64, 64, (square(5),)),)), files / "gt2.json")
    assert main(["eval", "--gt", str(files / "gt2.json"), "--pred", str(files / "pred.json")]) == 2
    assert "exists and was made from other inputs" in capsys.readouterr().err
