"""What ``--recipe auto`` chooses from the shipped synth start, on each set of training labels.

For each ``NAME=LABELS.json`` (refined, filtered pseudo-labels, as ``afss distill`` trains on them),
the start predicts the fixed sample `afss.student.train.start_agreement` takes, and its top-1 boxes
are compared with the labels' (mean box IoU; no ground truth). At or above
`afss.student.recipe.ADAPT_BELOW` ``auto`` keeps the start's masks and scores (``box``, 10 epochs);
below it every layer learns (``ultralytics``, 25 epochs).

    .venv/bin/python benchmarks/start_agreement.py \\
        synth=runs/bench/defaults_synth_s0/synth/pool_refined.json \\
        spark=runs/bench/long_spark_u25/spark/pool_refined.json

Writes ``runs/bench/start_agreement.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from afss.io.coco import read_coco
from afss.student.recipe import ADAPT_BELOW, recipe_epochs, resolve_recipe
from afss.student.train import SHIPPED_SYNTH_WEIGHTS, TrainConfig, start_agreement


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labels", nargs="+", metavar="NAME=LABELS.json")
    ap.add_argument("--imgsz", type=int, default=TrainConfig.imgsz)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "start_agreement.json"))
    args = ap.parse_args(argv)
    rows = []
    print(f"{'labels':<12}{'labelled':>10}{'agreement':>11}  auto chooses (bound {ADAPT_BELOW})")
    for spec in args.labels:
        name, _, path = spec.partition("=")
        labels = read_coco(path)
        t0 = time.perf_counter()
        agreement = start_agreement(SHIPPED_SYNTH_WEIGHTS, labels, imgsz=args.imgsz)
        recipe = resolve_recipe("auto", "synth", agreement)
        rows.append({"name": name, "labels": path, "labelled": sum(1 for im in labels.images if im.instances),
                     "agreement": round(agreement, 4), "recipe": recipe,
                     "epochs": recipe_epochs("auto", "synth", agreement), "seconds": round(time.perf_counter() - t0, 1)})
        r = rows[-1]
        print(f"{name:<12}{r['labelled']:>10}{agreement:>11.3f}  {recipe}, {r['epochs']} epochs", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bound": ADAPT_BELOW, "imgsz": args.imgsz, "rows": rows}, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
