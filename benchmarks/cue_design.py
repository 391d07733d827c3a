"""How one photometric confidence cue ranks the labels of the design data, before any held-out run.

A cue offered to the confidence has to rank labels the same way round on every source: the label's
size, for one, ranks SPARK-2021's labels (a larger label, a fuller one) and afss synth's the other
way, so no single weight serves both. This prints, for each cue named, Spearman(cue, IoU) of the
photometric teacher's top-1 label on each design set and within each of its groups (spacecraft
family on afss synth, spacecraft on SPARK-2021), beside the shipped score's. Only the data the
teacher was designed on belongs here (the tuning scenes, seed 1000, and SPARK-2021's ``dev``
frames); whether a cue holds is then judged leave-one-source-out by ``benchmarks/loso.py``.

    .venv/bin/python benchmarks/cue_design.py --cues area_frac,stability \\
        --gt runs/bench/tune_mixed_1000_150/gt.json --gt data/spark2021/gt_dev.json

(The ``soft`` cue it was written for exists at commit 1ccf94e only: docs/label.md.)

The tuning scenes: ``afss synth --n 150 --size 512 --domain mixed --seed 1000 --out runs/bench/tune_mixed_1000_150``.
Writes ``runs/bench/cue_design.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from afss.evaluate.preview import top1_iou
from afss.evaluate.score_quality import spearman
from afss.io.atomic import write_json_atomic
from afss.io.coco import read_coco
from afss.label import label_images
from afss.teachers import build_teacher


def _rho(x: list[float], y: list[float]) -> float | None:
    return round(float(spearman(np.array(x), np.array(y))), 3) if len(x) >= 8 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gt", action="append", required=True, help="a COCO ground truth of design images (repeatable)")
    ap.add_argument("--cues", default="stability", help="cues of the top-1 label's scores, comma-separated")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "cue_design.json"))
    args = ap.parse_args(argv)
    cues = [c.strip() for c in args.cues.split(",") if c.strip()]
    teacher = build_teacher("photometric")
    result = {"cues": cues, "sets": {}}
    for path in args.gt:
        gt = read_coco(path)
        labels = label_images(teacher, gt)
        rows = []  # (group, {cue: value}, score, IoU)
        for truth, got in zip(gt.images, labels.images):
            if not got.instances:
                continue
            top = got.instances[0]
            missing = [c for c in cues if c not in top.scores]
            if missing:
                sys.exit(f"cue_design: the teacher's labels have no cue {', '.join(missing)}; "
                         f"they have {', '.join(sorted(top.scores))}")
            group = truth.meta.get("class") or truth.meta.get("family") or "all"
            rows.append((group, {c: float(top.scores[c]) for c in cues}, float(top.score), top1_iou(truth, top) or 0.0))
        iou = [r[3] for r in rows]
        entry = {"images": len(rows), "score": _rho([r[2] for r in rows], iou),
                 "cues": {c: _rho([r[1][c] for r in rows], iou) for c in cues}, "groups": {}}
        print(f"{path}: {len(rows)} labelled; Spearman with the IoU: score {entry['score']:+.2f}, "
              + ", ".join(f"{c} {v:+.2f}" for c, v in entry["cues"].items() if v is not None))
        for group in sorted({r[0] for r in rows}):
            sub = [r for r in rows if r[0] == group]
            g_iou = [r[3] for r in sub]
            g = {"images": len(sub), "score": _rho([r[2] for r in sub], g_iou),
                 "cues": {c: _rho([r[1][c] for r in sub], g_iou) for c in cues}}
            entry["groups"][group] = g
            if g["score"] is not None:
                print(f"    {group:<26} n {len(sub):>3}  score {g['score']:+.2f}  "
                      + "  ".join(f"{c} {v:+.2f}" for c, v in g["cues"].items() if v is not None))
        result["sets"][path] = entry
    write_json_atomic(Path(args.out), result, indent=2)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
