"""Rebuild the synth-pretrained student that afss ships (`afss/student/weights/student_synth.pt`).

The recipe is the one `afss pretrain` runs, with the settings below; it renders afss synth scenes of
every domain (seed 900000 on, far from every seed benchmarks and tests score on) and trains YOLO11n-seg
from random initialisation on their exact masks. No download, no annotation.

    python scripts/build_student_synth.py [--out runs/pretrain/student_synth.pt]

A killed run continues where it stopped when started again (Ultralytics' resume from last.pt).
With ``--ship`` the result (Ultralytics' stripped fp16 checkpoint, ~6 MB) is copied to
``afss/student/weights/student_synth.pt`` with a card beside it (``student_synth.json``: recipe,
validation metrics on held-out pretraining scenes, timings, command).
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

RECIPE = {"n": 1600, "size": 512, "domain": "mixed", "epochs": 10, "imgsz": 320, "batch": 16,
          "close_mosaic": 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/pretrain/student_synth.pt")
    ap.add_argument("--ship", action="store_true", help="copy the result into the package (--init synth)")
    args = ap.parse_args()
    t0 = time.time()
    config = TrainConfig(init="yolo11n-seg.yaml", epochs=RECIPE["epochs"], imgsz=RECIPE["imgsz"],
                         batch=RECIPE["batch"], extra={"close_mosaic": RECIPE["close_mosaic"]})
    out = Path(args.out)
    record = out.with_name(f"{out.stem}.pretrain") / "train" / "train.json"
    if out.is_file() and record.is_file():  # built before: ship it without training again
        done = json.loads(record.read_text())
        seconds, per_epoch, metrics = done["seconds"], done["seconds_per_epoch"], done["metrics"]
    else:
        out, result = pretrain_student(out, n=RECIPE["n"], size=RECIPE["size"], domain=RECIPE["domain"],
                                       config=config, overwrite=True)
        seconds, per_epoch, metrics = round(time.time() - t0, 1), round(result.seconds_per_epoch, 1), result.metrics
    card = {"recipe": {**RECIPE, "model": "yolo11n-seg.yaml (random init)", "seed": PRETRAIN_SEED},
            "command": "python scripts/build_student_synth.py --ship", "seconds": seconds,
            "seconds_per_epoch": per_epoch, "metrics": metrics,
            "machine": f"{os.cpu_count()} CPU cores, device {config.device}"}
    print(json.dumps({"out": str(out), **card}, indent=2))
    if args.ship:
        SHIPPED_SYNTH_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, SHIPPED_SYNTH_WEIGHTS)
        SHIPPED_SYNTH_WEIGHTS.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"shipped -> {SHIPPED_SYNTH_WEIGHTS}")


if __name__ == "__main__":
    main()
