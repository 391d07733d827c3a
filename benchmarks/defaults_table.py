"""afss distill's defaults on both sources, over training seeds: mean and spread of each row.

Reads the records `benchmarks/distill.py` writes (one per training seed) and, for SPARK-2021, the
rescored scores `benchmarks/rescore.py` writes beside them, and prints one table per source: each
row's AP as ``mean (min-max)`` over the seeds, with the training's wall time.

    .venv/bin/python benchmarks/defaults_table.py \\
        --synth benchmarks/results/distill_synth_defaults_s0.json,...s1.json,...s2.json \\
        --spark benchmarks/results/distill_spark_spread_u25.json:benchmarks/results/rescore_spark_u25.json,...

Writes ``benchmarks/results/defaults_table.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    pct = [100 * v for v in values]
    mean = statistics.fmean(pct)
    return f"{mean:.1f}" if len(pct) == 1 else f"{mean:.1f} ({min(pct):.1f}-{max(pct):.1f})"


def _rows(records: list[dict], keys: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    """Row name -> key -> the value of every record that has the row."""
    out: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for name, row in record["rows"].items():
            for key in keys:
                if row.get(key) is not None:
                    out.setdefault(name, {}).setdefault(key, []).append(row[key])
    return out


def _spark_records(specs: list[str]) -> list[dict]:
    """``DISTILL.json[:RESCORE.json]`` -> distill records with the rescored student added as a row."""
    records = []
    for spec in specs:
        distill_path, _, rescore_path = spec.partition(":")
        record = json.loads(Path(distill_path).read_text())
        if rescore_path:
            rescored = json.loads(Path(rescore_path).read_text())
            for row in rescored["rows"] if isinstance(rescored, dict) else rescored:
                record["rows"]["student round 1 rescored"] = row["rescored"]
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", default="", help="comma list of benchmarks/distill.py --source synth records")
    ap.add_argument("--spark", default="", help="comma list of DISTILL.json[:RESCORE.json] (SPARK-2021)")
    ap.add_argument("--spark-start", default=None, help="benchmarks/rescore.py record of the start (its rescored row)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "defaults_table.json"))
    args = ap.parse_args(argv)
    result = {}
    for source, specs, keys in (("synth", args.synth, ("coco/segm/ap", "coco/bbox/ap")),
                                ("spark", args.spark, ("coco/bbox/ap",))):
        paths = [s for s in specs.split(",") if s]
        if not paths:
            continue
        records = (_spark_records(paths) if source == "spark"
                   else [json.loads(Path(p).read_text()) for p in paths])
        if source == "spark" and args.spark_start:
            start = json.loads(Path(args.spark_start).read_text())
            for record in records:
                record["rows"]["student synth-only rescored"] = start["rows"][0]["rescored"]
        rows = _rows(records, keys)
        seconds = [r["training"]["round-1"]["seconds"] if "training" in r
                   else r["seconds_per_epoch"]["round-1"] * r["args"]["epochs"] for r in records]
        trained: dict[str, list[float]] = {}  # every training's wall time, by what trained
        for r in records:
            for name, t in (r.get("training") or {}).items():
                trained.setdefault(name, []).append(t["seconds"])
            # the upper bound trains as round 1 did (its epochs), else as asked
            epochs = r["args"].get("epochs") or ((r.get("training") or {}).get("round-1") or {}).get("epochs")
            if "supervised" in (r.get("seconds_per_epoch") or {}) and epochs:
                trained.setdefault("supervised", []).append(r["seconds_per_epoch"]["supervised"] * epochs)
        result[source] = {"records": paths, "seeds": [r["args"]["seed"] for r in records],
                          "rows": rows, "round_1_training_seconds": seconds, "training_seconds": trained}
        print(f"\n{source}: {len(records)} training seeds {result[source]['seeds']}; AP in %, mean (min-max); "
              f"round 1 trained in {min(seconds) / 60:.1f}-{max(seconds) / 60:.1f} min")
        print(f"{'row':<36}" + "".join(f"{k:>24}" for k in keys))
        for name, values in rows.items():
            print(f"{name:<36}" + "".join(f"{_cell(values.get(k, [])):>24}" for k in keys))
        print("training wall time: " + "; ".join(f"{name} {min(t) / 60:.1f}-{max(t) / 60:.1f} min ({len(t)})"
                                                 for name, t in trained.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
