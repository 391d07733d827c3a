"""Rebuild the synth-pretrained student that afss ships (`afss/student/weights/student_synth.pt`).

The recipe is the one `afss pretrain` runs, in two stages; both render afss synth scenes of every
domain (seed 900000 on, far from every seed benchmarks and tests score on) and train YOLO11n-seg on
their exact masks. No download, no annotation.

1. Stage 1: from random initialisation, 1,600 scenes, 10 epochs (Ultralytics' defaults).
2. Stage 2: a warm restart from stage 1 on 2,400 scenes (the first 1,600 are stage 1's: image k
   depends only on the seed and k), 8 epochs, one warm-up epoch. Stage 1's validation mask mAP was
   still rising steeply at its last epoch (0.31, 0.39, 0.38, 0.41 over epochs 7-10), so the start
   was short of training, not of capacity.

    python scripts/build_student_synth.py [--out runs/pretrain/student_synth.pt] [--stages 1|2] [--ship]

A killed run continues where it stopped when started again (a finished stage is not trained again;
Ultralytics resumes the one under way from its last.pt). With ``--ship`` the last stage's result
(Ultralytics' stripped fp16 checkpoint, ~6 MB) is copied to ``afss/student/weights/student_synth.pt``
with a card beside it (``student_synth.json``: each stage's recipe, validation metrics on held-out
pretraining scenes and timings; the command).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.student.pretrain import PRETRAIN_SEED, pretrain_student
from afss.student.train import SHIPPED_SYNTH_WEIGHTS, TrainConfig

STAGES = [
    {"n": 1600, "size": 512, "domain": "mixed", "epochs": 10, "imgsz": 320, "batch": 16, "close_mosaic": 3},
    {"n": 2400, "size": 512, "domain": "mixed", "epochs": 8, "imgsz": 320, "batch": 16, "close_mosaic": 3,
     "warmup_epochs": 1},
]


def stage_out(out: Path, k: int) -> Path:
    """Stage 1 writes ``out`` itself (as this script always has); stage k > 1 ``<stem>_stage<k>.pt``."""
    return out if k == 1 else out.with_name(f"{out.stem}_stage{k}{out.suffix}")


def build_stage(out: Path, k: int) -> dict:
    """Train stage ``k`` (from stage k-1's weights when k > 1) unless it is done; its card entry."""
    recipe = STAGES[k - 1]
    card = {"stage": k, "recipe": {**recipe, "init": "yolo11n-seg.yaml (random init)" if k == 1 else f"stage {k - 1}",
                                   "seed": PRETRAIN_SEED}}
    target = stage_out(out, k)
    record = target.with_name(f"{target.stem}.pretrain") / "train" / "train.json"
    if target.is_file() and record.is_file():  # built before: do not train again
        done = json.loads(record.read_text())
        return {**card, "seconds": done["seconds"], "seconds_per_epoch": done["seconds_per_epoch"],
                "metrics": done["metrics"]}
    t0 = time.time()
    extra = {key: recipe[key] for key in ("close_mosaic", "warmup_epochs") if key in recipe}
    # recipe auto: pretrain_student trains every layer, from a checkpoint too
    config = TrainConfig(init="yolo11n-seg.yaml" if k == 1 else str(stage_out(out, k - 1)), epochs=recipe["epochs"],
                         imgsz=recipe["imgsz"], batch=recipe["batch"], extra=extra)
    _, result = pretrain_student(target, n=recipe["n"], size=recipe["size"], domain=recipe["domain"],
                                 config=config, overwrite=True)
    return {**card, "seconds": round(time.time() - t0, 1), "seconds_per_epoch": round(result.seconds_per_epoch, 1),
            "metrics": result.metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/pretrain/student_synth.pt")
    ap.add_argument("--stages", type=int, default=len(STAGES), choices=range(1, len(STAGES) + 1),
                    help=f"build stages 1..K (default {len(STAGES)})")
    ap.add_argument("--ship", action="store_true", help="copy the last stage's result into the package (--init synth)")
    args = ap.parse_args()
    out = Path(args.out)
    stages = []
    for k in range(1, args.stages + 1):
        stages.append(build_stage(out, k))
        print(json.dumps(stages[-1]), flush=True)
    card = {"stages": stages, "model": "yolo11n-seg", "command": "python scripts/build_student_synth.py --ship",
            "seconds": round(sum(s["seconds"] for s in stages), 1), "machine": f"{os.cpu_count()} CPU cores, device cpu"}
    final = stage_out(out, args.stages)
    print(json.dumps({"out": str(final), **card}, indent=2))
    if args.ship:
        SHIPPED_SYNTH_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, SHIPPED_SYNTH_WEIGHTS)
        SHIPPED_SYNTH_WEIGHTS.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"shipped -> {SHIPPED_SYNTH_WEIGHTS}")


if __name__ == "__main__":
    main()
