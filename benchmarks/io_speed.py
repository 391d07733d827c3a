"""Speed of reading a dataset layout and of scoring it: `afss convert --from spark` and `afss eval`.

    .venv/bin/python benchmarks/io_speed.py [--n 200] [--size 1024] [--runs 3] [--out FILE]

Renders a SPARK-2024 replica with `afss synth --format spark` (RGB JPEG images and colour JPEG
masks), then times, median of ``--runs``: reading it (`read_dataset("spark")`: JPEG decoding,
colour thresholding, RLE encoding of instance and parts) and evaluating its ground truth against
jittered predictions (`evaluate`, both protocols, segm and bbox). Prints a table, writes JSON
(default runs/bench/io_speed.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.datasets import read_dataset
from afss.evaluate import evaluate
from afss.synth import render_dataset
from afss.types import Instance


def jittered(labels, seed: int = 0):
    """Predictions: every ground-truth mask shifted by a few pixels, with a random score."""
    rng = np.random.default_rng(seed)
    images = []
    for im in labels.images:
        insts = []
        for inst in im.instances:
            dy, dx = rng.integers(-4, 5, size=2)
            insts.append(Instance.from_mask(np.roll(inst.mask, (dy, dx), axis=(0, 1)), score=float(rng.random())))
        images.append(im.replace(instances=tuple(insts)))
    return labels.replace(images=tuple(images))


def median_seconds(fn, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images")
    ap.add_argument("--size", type=int, default=1024, help="image side (SPARK-2024 images are 1024)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="runs/bench/io_speed.json")
    args = ap.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        render_dataset(tmp, n=args.n, size=args.size, domain="mixed", seed=0, fmt="spark", overwrite=True)
        gt = read_dataset("spark", tmp, split="train")
        pred = jittered(gt)
        read_s, read_runs = median_seconds(lambda: read_dataset("spark", tmp, split="train"), args.runs)
        eval_s, eval_runs = median_seconds(lambda: evaluate(gt, pred), args.runs)
    rows = [("afss convert --from spark (read_dataset)", read_s, read_runs),
            ("afss eval, coco+paper, segm+bbox (evaluate)", eval_s, eval_runs)]
    print(f"{args.n} images of {args.size}x{args.size}, {os.cpu_count()} CPUs, load avg before {load[0]:.2f}")
    print(f"{'what':46s} {'s (median)':>10s} {'img/s':>8s}  runs")
    for name, sec, runs in rows:
        print(f"{name:46s} {sec:10.2f} {args.n / sec:8.0f}  {' '.join(f'{r:.2f}' for r in runs)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "size": args.size, "cpus": os.cpu_count(), "load_before": load[0],
                               "rows": [{"what": n, "seconds_median": s, "runs": r} for n, s, r in rows]},
                              indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
