"""How one photometric confidence cue ranks the labels of the design data, before any held-out run.

A cue offered to the confidence has to rank labels the same way round on every source: the label's
size, for one, ranks SPARK-2021's labels (a larger label, a fuller one) and afss synth's not at all,
so a weight fitted on both serves neither. This prints, for each cue named, Spearman(cue, IoU) of the
photometric teacher's top-1 label on each design set and within each of its groups (spacecraft
family on afss synth, spacecraft on SPARK-2021), beside the shipped score's. Only the data the
teacher was designed on belongs here (the tuning scenes, seed 1000, and SPARK-2021's ``dev``
frames); whether a cue holds is then judged leave-one-source-out by ``benchmarks/loso.py``.

    afss synth --n 150 --size 512 --domain mixed --seed 1000 --out runs/bench/tune_mixed_1000_150
    .venv/bin/python benchmarks/cue_design.py --cues area_frac,stability \\
        --gt runs/bench/tune_mixed_1000_150/gt.json --gt data/spark2021/gt.json --subset dev

(The ``soft`` cue it was written for exists at commit 1ccf94e only: docs/label.md.)

(``--subset dev``: of a set whose images record a subset, as ``scripts/spark2021.py``'s do, only those
of that subset.) Writes ``runs/bench/cue_design.json`` (``--out``).
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
    """Spearman of at least 8 pairs, else ``None``; ``None`` too where a cue does not vary (no ranking)."""
    if len(x) < 8:
        return None
    rho = float(spearman(np.array(x), np.array(y)))
    return round(rho, 3) if np.isfinite(rho) else None


def _fmt(name: str, rho: float | None) -> str:
    return f"{name} {rho:+.2f}" if rho is not None else f"{name} -"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gt", action="append", required=True, help="a COCO ground truth of design images (repeatable)")
    ap.add_argument("--cues", default="stability", help="cues of the top-1 label's scores, comma-separated")
    ap.add_argument("--subset", default=None, help="keep only the images of this subset (afss_meta.subset), "
                                                   "where a set records subsets, e.g. dev")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "cue_design.json"))
    args = ap.parse_args(argv)
    cues = [c.strip() for c in args.cues.split(",") if c.strip()]
    teacher = build_teacher("photometric")
    result = {"cues": cues, "subset": args.subset, "sets": {}}
    for path in args.gt:
        gt = read_coco(path)
        if args.subset and any("subset" in im.meta for im in gt.images):
            gt = gt.replace(images=tuple(im for im in gt.images if im.meta.get("subset") == args.subset))
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
        print(f"{path}: {len(rows)} labelled; Spearman with the IoU: "
              + ", ".join(_fmt(c, v) for c, v in {"score": entry["score"], **entry["cues"]}.items()))
        for group in sorted({r[0] for r in rows}):
            sub = [r for r in rows if r[0] == group]
            g_iou = [r[3] for r in sub]
            g = {"images": len(sub), "score": _rho([r[2] for r in sub], g_iou),
                 "cues": {c: _rho([r[1][c] for r in sub], g_iou) for c in cues}}
            entry["groups"][group] = g
            if len(sub) >= 8:
                print(f"    {group:<26} n {len(sub):>3}  "
                      + "  ".join(_fmt(c, v) for c, v in {"score": g["score"], **g["cues"]}.items()))
        result["sets"][path] = entry
    write_json_atomic(Path(args.out), result, indent=2)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
