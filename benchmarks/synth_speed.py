"""Throughput of `afss synth`: images per second written to disk (render + PNG + RLE + gt.json).

    .venv/bin/python benchmarks/synth_speed.py [--small] [--size 512] [--n 100] [--workers 2] [--out FILE]

Prints a table (median of 3 runs per domain) and writes JSON (default runs/bench/synth_speed.json).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.synth import render_dataset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="quick run: 24 images per run")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--n", type=int, default=100, help="images per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--domains", default="clean,earth,harsh,mixed")
    ap.add_argument("--out", default="runs/bench/synth_speed.json")
    args = ap.parse_args()
    n = 24 if args.small else args.n
    load = os.getloadavg()
    rows = []
    for domain in args.domains.split(","):
        rates = []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                render_dataset(tmp, n=n, size=args.size, domain=domain, seed=run, workers=args.workers, overwrite=True)
                rates.append(n / (time.perf_counter() - t0))
        rows.append({"domain": domain, "img_per_s_median": statistics.median(rates), "runs": rates})
    load_after = os.getloadavg()
    cpu = os.cpu_count()
    print(f"afss synth throughput: {n} images of {args.size}x{args.size} per run, {args.workers} workers, "
          f"{cpu} CPUs, load avg before/after {load[0]:.2f}/{load_after[0]:.2f}")
    print(f"{'domain':<8} {'img/s (median of ' + str(args.runs) + ')':>22}  runs")
    for r in rows:
        print(f"{r['domain']:<8} {r['img_per_s_median']:>22.1f}  " + " ".join(f"{v:.1f}" for v in r["runs"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"size": args.size, "n": n, "workers": args.workers, "cpus": cpu,
                               "loadavg_before": load, "loadavg_after": load_after, "results": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
