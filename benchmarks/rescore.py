"""Does rescoring a student's instances with the teacher's confidence make its scores rank, and its AP rise?

For each student (``--weights``, repeatable, ``NAME=PATH``), on each source, predicts once with its
own class confidence and once with ``rescore=TEACHER`` (`afss.student.model.StudentTeacher`: the
geometric mean of its confidence and the teacher's confidence in its box), and prints AP and
Spearman(score, IoU) of the top-1 instances (the instances and their boxes are the same; only the
scores, and so the ranking, change).

Sources: ``spark`` — the 200 validation frames of ``benchmarks/distill.py``'s spread split (report
frames no training saw; bbox AP); ``synth`` — 100 ``afss synth --domain mixed`` scenes per
``--synth-seeds`` seed (segm and bbox AP).

    .venv/bin/python benchmarks/rescore.py --sources synth --synth-seeds 8,9,10 \\
        --weights demo=demo-run/distill/student.pt
    .venv/bin/python benchmarks/rescore.py --sources spark --weights u45=runs/bench/long_spark_u45/spark/distill/student.pt

Writes ``runs/bench/rescore.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from afss.io.coco import read_coco
from afss.label import label_images
from afss.synth.dataset import render_or_reuse
from afss.teachers import build_teacher

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distill as bench  # the SPARK-2021 split and the row scores of benchmarks/distill.py


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--sources", default="spark", help="comma list of spark, synth")
    ap.add_argument("--spark", default="data/spark2021")
    ap.add_argument("--synth-seeds", default="8,9,10")
    ap.add_argument("--rescore", default="photometric", help="the teacher that rescores")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--out", default="runs/bench/rescore.json")
    args = ap.parse_args(argv)
    rows = []
    for source, val, iou_types in _sources(args):
        for spec in args.weights:
            name, _, path = spec.partition("=")
            row = {"source": source, "student": name, "weights": path}
            for how, rescore in (("own", None), ("rescored", args.rescore)):
                student = build_teacher("student", weights=path, imgsz=args.imgsz, rescore=rescore)
                row[how] = bench._score(val, label_images(student, val), iou_types)
            rows.append(row)
            print(_line(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "rescore", "rescore": args.rescore, "rows": rows}, indent=2))
    print(f"-> {out}", file=sys.stderr)
    return 0


def _sources(args):
    for source in args.sources.split(","):
        if source == "spark":
            gt = read_coco(Path(args.spark) / "gt.json")
            report = [im for im in gt.images if im.meta.get("subset") == "report"]
            yield "SPARK-2021 spread val", gt.replace(images=tuple(bench._spread(report, 200))), ("bbox",)
        elif source == "synth":
            for seed in args.synth_seeds.split(","):
                folder = Path("runs/bench/rescore_synth") / f"mixed_{seed}"
                val = render_or_reuse(folder, n=100, size=512, domain="mixed", seed=int(seed))
                yield f"afss synth seed {seed}", val, ("segm", "bbox")
        else:
            raise SystemExit(f"unknown source {source!r}")


def _line(row: dict) -> str:
    cells = []
    for how in ("own", "rescored"):
        r = row[how]
        aps = " / ".join(f"{100 * r[k]:.1f}" for k in ("coco/segm/ap", "coco/bbox/ap") if k in r)
        cells.append(f"{how}: AP {aps}, Spearman {r['top1/spearman']:.2f}")
    return f"{row['source']:<24} {row['student']:<10} " + " | ".join(cells)


if __name__ == "__main__":
    sys.exit(main())
