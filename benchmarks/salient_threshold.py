"""The salient teacher's threshold, chosen leave-one-source-out: fixed values against one that follows an unsure map's peak.

ISNet's map often peaks well under 0.5 on a small or faint target (harsh and Earth scenes), so a
fixed threshold of 0.5 labels nothing there. This script labels every held-out source of
`benchmarks/combined_held_out.py` (afss synth domains and families, the two render settings never
tuned on, a sample of every SPARK-2021 spacecraft) with each candidate threshold, from one network run
per image (the probability maps are kept in ``--probs``, by image content), and prints the raw AP per
source. Each source then gets the candidate that is worse than the default threshold (0.5) by more than
0.3 AP on the fewest other sources sharing no image with it (ties: the higher mean AP there). AP = segm
AP on afss synth, bbox AP on SPARK-2021. Raw labels only: `benchmarks/salient_refine.py` refines.

    afss models fetch isnet
    .venv/bin/python benchmarks/salient_threshold.py --n 30 --spark-per 30 --probs runs/bench/salient_probs_c
    # a fresh sample: another synth seed, SPARK-2021 frames outside the 30 per spacecraft above
    .venv/bin/python benchmarks/salient_threshold.py --n 20 --seed 2027 --spark-per 10 --spark-skip 30 \\
        --probs runs/bench/salient_probs_c --out runs/bench/salient_threshold_fresh.json

Writes ``runs/bench/salient_threshold.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from combined_held_out import _absolute, _ap, _sources, add_source_arguments
from combined_rules import _shares_images
from records import write_record
from salient_refine import _keep_probabilities

from afss.io.images import load_image
from afss.teachers import build_teacher
from afss.teachers.salient import SalientTeacher
from afss.types import Instance

CANDIDATES = {  # name -> SalientConfig options; the first is the default the others are judged against
    "0.5": {"threshold": 0.5, "relative_threshold": 0.0},
    "0.3": {"threshold": 0.3, "relative_threshold": 0.0},
    "0.2": {"threshold": 0.2, "relative_threshold": 0.0},
    "0.1": {"threshold": 0.1, "relative_threshold": 0.0},
    "0.05": {"threshold": 0.05, "relative_threshold": 0.0},
    "0.5, or half an unsure map's peak": {"threshold": 0.5, "relative_threshold": 0.5},
}
WORSE = 0.003  # more than 0.3 AP under the default threshold's


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(ap, n=30, spark_per=30, threads=2)
    ap.add_argument("--probs", default=str(ROOT / "runs" / "bench" / "salient_probs"), metavar="DIR",
                    help="where the network's probability maps are kept")
    ap.add_argument("--out", default="runs/bench/salient_threshold.json")
    args = ap.parse_args(argv)
    network = build_teacher("salient", threads=args.threads)
    _keep_probabilities(network, Path(args.probs))
    labellers = {name: _labeller(network, options) for name, options in CANDIDATES.items()}
    t0 = time.perf_counter()
    rows = []
    for name, gt, iou in _sources(args):
        gt = _absolute(gt)
        maps = [network.probability(load_image(im.file_name).rgb) for im in gt.images]  # read back from --probs
        row = {"source": name, "images": len(gt), "ap": {}, "labelled": {}}
        for cand, labeller in labellers.items():
            labels = gt.replace(images=tuple(im.replace(instances=labeller(m)) for im, m in zip(gt.images, maps)))
            row["ap"][cand] = _ap(gt, labels, iou)
            row["labelled"][cand] = sum(1 for im in labels.images if im.instances)
        rows.append(row)
        print(f"{name:<46} " + "  ".join(f"{c} {100 * a:5.1f}" for c, a in row["ap"].items()), flush=True)
    _choose(rows)
    default = next(iter(CANDIDATES))
    summary = {c: {"mean_ap": round(float(np.mean([r["ap"][c] for r in rows])), 4),
                   "worse": sum(_worse(r, c) for r in rows),
                   "better": sum(r["ap"][c] > r["ap"][default] + WORSE for r in rows),
                   "worst_delta": round(min(r["ap"][c] - r["ap"][default] for r in rows), 4)} for c in CANDIDATES}
    result = {"benchmark": "salient_threshold", "args": vars(args), "candidates": CANDIDATES, "rows": rows,
              "summary": summary, "seconds": round(time.perf_counter() - t0, 1)}
    write_record(args.out, result, _markdown(result))
    return 0


def _labeller(network: SalientTeacher, options: dict):
    """The salient teacher's labelling of a probability map with these options (its `_instances`; the
    map comes from ``network``, run once per image for every candidate)."""
    teacher = SalientTeacher(replace(network.config, **options), network.session, network.input_size)

    def label(prob: np.ndarray) -> tuple[Instance, ...]:
        found = teacher._instances(prob, merge=True)[:1]
        return tuple(Instance.from_mask(m, score=s, source="salient", scores=c) for m, s, c in found)

    return label


def _worse(row: dict, cand: str) -> bool:
    return row["ap"][cand] < row["ap"][next(iter(CANDIDATES))] - WORSE


def _choose(rows: list[dict]) -> None:
    """Each row's ``chosen`` candidate: worse than the default on the fewest other sources sharing no
    image with it, ties to the higher mean AP there, then to the first."""
    for row in rows:
        others = [o for o in rows if not _shares_images(o["source"], row["source"])]

        def merit(cand: str, others=others) -> tuple:
            return (-sum(_worse(o, cand) for o in others), float(np.mean([o["ap"][cand] for o in others])))

        row["chosen"] = max(row["ap"], key=merit)


def _markdown(result: dict) -> str:
    cands = list(result["candidates"])
    lines = ["| held out | images | " + " | ".join(f"t = {c}" for c in cands) + " | chosen on the other sources |",
             "|---|---|" + "---|" * len(cands) + "---|"]
    for r in result["rows"]:
        lines.append(f"| {r['source']} | {r['images']} | " + " | ".join(
            f"{100 * r['ap'][c]:.1f} ({r['labelled'][c]})" for c in cands) + f" | {r['chosen']} |")
    lines += ["", "| threshold | mean raw AP | sources worse than 0.5 by > 0.3 | better by > 0.3 | worst Δ |",
              "|---|---|---|---|---|"]
    for c, s in result["summary"].items():
        lines.append(f"| {c} | {100 * s['mean_ap']:.1f} | {s['worse']} | {s['better']} | {100 * s['worst_delta']:+.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
