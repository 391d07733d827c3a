"""Rebuild the synth-pretrained student that afss ships (`afss/student/weights/student_synth.pt`).

The recipe is the one `afss pretrain` runs, with the settings below; it renders afss synth scenes of
every domain (seed 900000 on, far from every seed benchmarks and tests score on) and trains YOLO11n-seg
from random initialisation on their exact masks. No download, no annotation.

    python scripts/build_student_synth.py [--out runs/pretrain/student_synth.pt]

A killed run continues where it stopped when started again (Ultralytics' resume from last.pt).
Afterwards the fp16 copy is written by `afss.student.export.half_precision` (see --ship).
"""

from __future__ import annotations

import argparse
import json
import time

from afss.student.pretrain import pretrain_student
from afss.student.train import TrainConfig

RECIPE = {"n": 1600, "size": 512, "domain": "mixed", "epochs": 10, "imgsz": 320, "batch": 16,
          "close_mosaic": 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/pretrain/student_synth.pt")
    args = ap.parse_args()
    t0 = time.time()
    config = TrainConfig(init="yolo11n-seg.yaml", epochs=RECIPE["epochs"], imgsz=RECIPE["imgsz"],
                         batch=RECIPE["batch"], extra={"close_mosaic": RECIPE["close_mosaic"]})
    out, result = pretrain_student(args.out, n=RECIPE["n"], size=RECIPE["size"], domain=RECIPE["domain"],
                                   config=config, overwrite=True)
    print(json.dumps({"out": str(out), "recipe": RECIPE, "seconds": round(time.time() - t0, 1),
                      "seconds_per_epoch": round(result.seconds_per_epoch, 1), "metrics": result.metrics}, indent=2))


if __name__ == "__main__":
    main()
