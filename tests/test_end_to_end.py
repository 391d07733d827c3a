"""The whole pipeline that exists so far, through the CLI, on a tiny generated dataset:
synth -> label (photometric teacher) -> refine (identity + vflip, WBF, filter) -> eval."""

from __future__ import annotations

import json

from afss.cli import main
from afss.io.coco import read_coco


def test_synth_label_refine_eval(tmp_path, capsys):
    data, labels, refined = tmp_path / "data", tmp_path / "labels.json", tmp_path / "refined.json"
    assert main(["-q", "synth", "--domain", "mixed", "--n", "24", "--size", "256", "--seed", "3",
                 "--out", str(data), "--workers", "1"]) == 0
    assert main(["-q", "label", "--teacher", "photometric", "--coco", str(data / "gt.json"), "--out", str(labels)]) == 0
    assert main(["-q", "refine", "--tta", "identity,vflip", "--labels", str(labels), "--min-score", "0.6",
                 "--out", str(refined)]) == 0
    capsys.readouterr()

    gt, raw, kept = read_coco(data / "gt.json"), read_coco(labels), read_coco(refined)
    assert len(gt) == len(raw) == len(kept) == 24  # nothing lost: dropped images stay, with their reason
    assert {im.file_name for im in kept} == {im.file_name for im in gt}
    dropped = [im for im in kept if not im.instances]
    assert all(im.error for im in dropped)
    assert all(inst.score >= 0.6 for im in kept for inst in im.instances)
    assert kept.info["teacher"] == "photometric" and kept.info["views"] == ["identity", "vflip"]

    assert main(["eval", "--gt", str(data / "gt.json"), "--pred", str(labels), "--pred", str(refined),
                 "--only-labelled", "--iou-type", "segm"]) == 0
    table = capsys.readouterr().out
    assert "labels" in table and "refined" in table
    metrics = {name: json.loads((tmp_path / f"{name}.labelled.metrics.json").read_text()) for name in ("labels", "refined")}
    ap = {name: next(r["ap"] for r in m["rows"] if r["protocol"] == "paper") for name, m in metrics.items()}
    # The teacher finds most targets, and its confident labels are the better ones.
    assert ap["labels"] > 0.2
    assert ap["refined"] >= ap["labels"]
