"""Does ``afss distill --choose quality`` pick the better round, without ground truth?

For each folder that ``benchmarks/distill.py`` wrote with two or more rounds, every round's student (and,
for reference, the start it began from) is judged by `afss.distill.label_free_quality`: the teacher's
mean confidence in its top-1 boxes over a fixed sample of 100 pool images. Nothing here reads the
ground truth to choose; the validation AP that ``benchmarks/distill.py`` recorded (rescored rows where
there are) only says afterwards whether the choice was right, against "last" (the paper's choice).

    .venv/bin/python benchmarks/choose_student.py runs/bench/defaults_synth_r2_s{0,1,2}

``--across``: the folders are one-round distillations of the same pool with different recipes, and the
question is whether the same criterion would pick the better recipe: each one's ``student.pt`` is
judged on the first folder's pool (and the start, for reference).

    .venv/bin/python benchmarks/choose_student.py --across runs/bench/held_sensor_s0 runs/bench/held_sensor_ultra_labels_s0

Writes ``benchmarks/results/choose_student.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from afss.distill import label_free_quality
from afss.io.coco import read_coco


def _ap(rows: dict, name: str, key: str) -> float | None:
    row = rows.get(f"{name} rescored") or rows.get(name) or {}
    return row.get(key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="DIR", help="benchmarks/distill.py --out folders")
    ap.add_argument("--across", action="store_true",
                    help="judge the final students of several one-round folders of one pool against each other")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "choose_student.json"))
    args = ap.parse_args(argv)
    if args.across:
        return _across([Path(r) for r in args.runs], Path(args.out))
    results = []
    for run in map(Path, args.runs):
        source = "spark" if (run / "spark.json").is_file() else "synth"
        record = json.loads((run / f"{source}.json").read_text())
        distill = json.loads((run / source / "distill" / "distill.json").read_text())
        key = "coco/bbox/ap" if source == "spark" else "coco/segm/ap"
        imgsz = int(record["args"]["imgsz"])
        judge = record["args"].get("rescore") or "photometric"  # as afss distill judges
        pool = read_coco(run / source / "distill" / "round-1" / "labels.json")
        init = record["args"].get("init")
        candidates = {"start": (Path(init), record, "student synth-only")} if init and init.endswith(".pt") else {}
        candidates.update({f"round {r['round']}": (Path(r["weights"]), record, f"student round {r['round']}")
                           for r in distill["rounds"]})
        rows = _judged(candidates, pool, imgsz=imgsz, judge=judge)
        rounds = [n for n in rows if n != "start"]
        chosen = max(rounds, key=lambda n: rows[n]["quality"])  # the earliest of equals, as afss distill
        best = max(rounds, key=lambda n: rows[n][key.split("/")[1] + "_ap"] or -1)
        recorded = [f"round {r['round']}" for r in distill["rounds"] if r.get("chosen")]
        results.append({"run": str(run), "source": source, "judged_by": key, "judge": judge, "candidates": rows,
                        "chosen": chosen, "afss_distill_chose": recorded[0] if recorded else None,
                        "last": rounds[-1], "best": best})
        print(f"{run.name} ({source}, {key}; afss distill chose: {recorded[0] if recorded else 'not recorded'}):")
        _print(rows, chosen, best)
    right = sum(r["chosen"] == r["best"] for r in results)
    last = sum(r["last"] == r["best"] for r in results)
    print(f"\nthe better round chosen: quality {right}/{len(results)}, last {last}/{len(results)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": results, "quality_right": right, "last_right": last}, indent=2))
    print(f"-> {out}")
    return 0


def _across(runs: list[Path], out: Path) -> int:
    """Which of several distillations of one pool (different recipes) the criterion would take."""
    source = "spark" if (runs[0] / "spark.json").is_file() else "synth"
    key = "bbox_ap" if source == "spark" else "segm_ap"
    first = json.loads((runs[0] / f"{source}.json").read_text())
    pool = read_coco(runs[0] / source / "distill" / "round-1" / "labels.json")
    imgsz, judge = int(first["args"]["imgsz"]), first["args"].get("rescore") or "photometric"
    records = {run.name: json.loads((run / f"{source}.json").read_text()) for run in runs}
    init = first["args"].get("init")
    candidates = {"start": (Path(init), first, "student synth-only")} if init and init.endswith(".pt") else {}
    candidates.update({run.name: (run / source / "distill" / "student.pt", records[run.name], "student round 1")
                       for run in runs})
    rows = _judged(candidates, pool, imgsz=imgsz, judge=judge)
    students = [r.name for r in runs]
    chosen = max(students, key=lambda n: rows[n]["quality"])
    best = max(students, key=lambda n: rows[n][key] or -1)
    _print(rows, chosen, best)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"across": [str(r) for r in runs], "judge": judge, "candidates": rows,
                               "chosen": chosen, "best": best}, indent=2))
    print(f"-> {out}")
    return 0


def _judged(candidates: dict[str, tuple[Path, dict, str]], pool, *, imgsz: int, judge: str) -> dict[str, dict]:
    """Each candidate ``name -> (weights, benchmark record, its row there)``: its label-free quality on
    ``pool`` and the validation AP the record holds for it."""
    rows = {}
    for name, (weights, record, row) in candidates.items():
        t0 = time.perf_counter()
        rows[name] = {"quality": round(label_free_quality(weights, pool, imgsz=imgsz, judge=judge), 4),
                      "segm_ap": _ap(record["rows"], row, "coco/segm/ap"),
                      "bbox_ap": _ap(record["rows"], row, "coco/bbox/ap"),
                      "seconds": round(time.perf_counter() - t0, 1)}
    return rows


def _print(rows: dict[str, dict], chosen: str, best: str) -> None:
    width = max(9, *map(len, rows))
    for name, r in rows.items():
        print(f"  {name:<{width}} quality {r['quality']:.4f}  segm AP {_pct(r['segm_ap'])}  bbox AP {_pct(r['bbox_ap'])}"
              f"{' <- chosen' if name == chosen else ''}{' (best)' if name == best else ''}", flush=True)


def _pct(value: float | None) -> str:
    return "  -" if value is None else f"{100 * value:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
