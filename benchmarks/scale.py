"""Throughput of the engines: images/s against Ray workers, and Ray's overhead against the local path.

    .venv/bin/python benchmarks/scale.py [--n 120] [--size 512] [--repeat 2]

For the photometric teacher and the student (YOLO11n-seg; untrained weights run as fast as trained
ones), on ``--n`` afss synth scenes: the local engine, then Ray with 1 and 2 workers on this
machine (local Ray, one CPU per actor). Ray's start (``ray.init``) is timed apart; each run's time
includes building the actor pool. Prints a table, writes ``runs/bench/scale.json``, and works out
from the measured per-image costs how long SPARK-2024's training set would take on N GPUs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPARK2024_TRAIN = 60_000  # 10 classes x 6,000 training images (shared/DATASETS.md)
GSAM2_GPU_S_PER_IMAGE = 1.0  # Grounding DINO + SAM 2 on one GPU, the reference's loop (issue 15's figure, not measured here)


def _time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "scale.json"))
    args = ap.parse_args()

    import ray

    from afss.engines import build_engine
    from afss.label import images_from_folder, label_images
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    work = Path(tempfile.mkdtemp(prefix="afss-scale-"))
    render_dataset(work / "data", n=args.n, size=args.size, domain="mixed", seed=3000, overwrite=True)
    images = images_from_folder(work / "data" / "images")
    teachers = {"photometric": build_teacher("photometric")}
    try:
        from afss.student.env import ultralytics

        weights = work / "student.pt"
        ultralytics().YOLO("yolo11n-seg.yaml").save(str(weights))
        teachers["student"] = build_teacher("student", weights=str(weights), imgsz=args.size)
    except Exception as e:  # noqa: BLE001 - the student extra is optional
        print(f"student skipped: {e}", file=sys.stderr)

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - t0
    rows = []
    for name, teacher in teachers.items():
        local = _time(lambda t=teacher: label_images(t, images, batch_size=8), args.repeat)
        rows.append({"model": name, "engine": "local", "workers": 1, "seconds": local,
                     "images_per_second": args.n / local})
        for workers in (1, 2):
            engine = build_engine("ray", num_workers=workers)
            seconds = _time(lambda t=teacher, e=engine: label_images(t, images, batch_size=8, engine=e), args.repeat)
            rows.append({"model": name, "engine": "ray", "workers": workers, "seconds": seconds,
                         "images_per_second": args.n / seconds, "overhead_vs_local": seconds / local})
    ray.shutdown()

    print(f"\n{args.n} afss synth scenes of {args.size}², {args.repeat} runs each (median); ray.init {ray_start:.1f} s\n")
    print("model        engine  workers  seconds  images/s  vs local")
    print("-----------  ------  -------  -------  --------  --------")
    for r in rows:
        ratio = f"{r['overhead_vs_local']:.2f}x" if "overhead_vs_local" in r else "-"
        print(f"{r['model']:<11}  {r['engine']:<6}  {r['workers']:>7}  {r['seconds']:7.2f}  "
              f"{r['images_per_second']:8.1f}  {ratio:>8}")

    # SPARK-2024 on N GPUs: label (one teacher pass) + refine identity,vflip (one more pass on the
    # flipped view; the fused box re-prompts SAM, a fraction of a pass): about 2 passes per image.
    by = {(r["model"], r["engine"], r["workers"]): r for r in rows}
    ray1 = by.get(("photometric", "ray", 1))
    ray2 = by.get(("photometric", "ray", 2))
    efficiency = (ray1["seconds"] / ray2["seconds"]) / 2 if ray1 and ray2 else 1.0
    estimate = []
    for gpus in (1, 4, 8, 32):
        hours = 2 * SPARK2024_TRAIN * GSAM2_GPU_S_PER_IMAGE / (gpus * max(min(efficiency, 1.0), 0.5)) / 3600
        estimate.append({"gpus": gpus, "hours": round(hours, 1)})
    print(f"\nSPARK-2024 train ({SPARK2024_TRAIN} images), grounded-sam2 at {GSAM2_GPU_S_PER_IMAGE:g} s/image/GPU "
          f"(not measured here), label + refine identity,vflip = 2 passes, scaling efficiency {efficiency:.2f} "
          f"(measured 1 -> 2 workers above, floor 0.5):")
    for e in estimate:
        print(f"  {e['gpus']:>3} GPUs: {e['hours']:6.1f} h")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"n": args.n, "size": args.size, "repeat": args.repeat,
                                          "ray_init_seconds": ray_start, "rows": rows,
                                          "scaling_efficiency": efficiency, "spark2024_estimate": estimate,
                                          "commit": commit}, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
