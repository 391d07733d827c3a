"""Which fine-tuning recipe keeps what the synth-pretrained student knows, and learns from pseudo-labels?

Fine-tunes the shipped synth student on one set of labels with each recipe, then scores it on held-out
ground truth (mask and box AP, COCO protocol). The labels are those of an `afss run` folder (the
first round's refined, filtered pseudo-labels; by default `make demo`'s), or, to tell what the recipe
itself costs from what the labels cost, afss synth scenes with the renderer's exact masks
(``--labels synth:N``, seed 950000, never a scored one):

    .venv/bin/python benchmarks/finetune_recipe.py --run demo-run
    .venv/bin/python benchmarks/finetune_recipe.py --run demo-run --labels synth:170 --only ultralytics,finetune

Each recipe is the `afss.student.train.TrainConfig` recipe (``ultralytics``, ``finetune``) with
further Ultralytics arguments over it. Results go to ``--out`` (JSON, rewritten after every recipe,
so a stopped run keeps what it finished; a rerun skips those). Minutes per recipe on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (TrainConfig recipe, Ultralytics arguments over it, training size)
RECIPES: dict[str, tuple[str, dict, int]] = {
    "ultralytics": ("ultralytics", {}, 320),
    "freeze10": ("ultralytics", {"freeze": 10}, 320),
    "freeze23 (head only)": ("ultralytics", {"freeze": 23}, 320),
    "finetune": ("finetune", {}, 320),
    "finetune lr0 0.0005": ("finetune", {"lr0": 0.0005}, 320),
    "finetune lr0 0.005": ("finetune", {"lr0": 0.005}, 320),
    "freeze10 at 512": ("ultralytics", {"freeze": 10}, 512),
    "finetune mask-frozen": ("finetune", {"freeze": [*range(10), "23.proto", "23.cv4"]}, 320),
    "heads lr0 0.002": ("heads", {"lr0": 0.002}, 320),
    "heads": ("heads", {}, 320),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="demo-run", help="an afss run folder (labels and held-out ground truth)")
    ap.add_argument("--labels", default=None, help="training labels: a COCO file, or synth:N for exact synth masks "
                                                   "(default: the run's round-1 refined labels)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--only", default="", help="recipes to run, comma-separated (default: all)")
    ap.add_argument("--out", default=None, help="JSON (default runs/bench/finetune_recipe[_synthN].json)")
    ap.add_argument("--work", default=None, help="trainings go here (default runs/bench/finetune_recipe[_synthN]/)")
    args = ap.parse_args()

    from afss.evaluate import evaluate
    from afss.io.coco import read_coco
    from afss.label import label_images
    from afss.student.train import TrainConfig, train_student
    from afss.teachers import build_teacher

    run = Path(args.run)
    tag = "" if args.labels is None else "_" + args.labels.replace(":", "")
    out = Path(args.out or ROOT / "runs" / "bench" / f"finetune_recipe{tag}.json")
    work = Path(args.work or ROOT / "runs" / "bench" / f"finetune_recipe{tag}")
    if args.labels and args.labels.startswith("synth:"):
        from afss.student.train import REPLAY_SEED
        from afss.synth.dataset import render_or_reuse

        labels = render_or_reuse(work / "synth", n=int(args.labels[6:]), size=512, domain="mixed", seed=REPLAY_SEED)
    else:
        labels = read_coco(args.labels or run / "distill" / "round-1" / "refined.json", allow_absolute_paths=True)
    gt = read_coco(run / "data" / "val_gt.json", allow_absolute_paths=True)
    images = gt.replace(images=tuple(im.replace(instances=()) for im in gt.images))
    record = json.loads(out.read_text()) if out.is_file() else {"rows": {}}
    record.update({"run": str(run), "labels": args.labels or "round-1 refined", "epochs": args.epochs,
                   "train_images": sum(1 for im in labels.images if im.instances), "val_images": len(gt)})

    def score(pred) -> dict:
        rep = evaluate(gt, pred, protocols=("coco",))
        return {f"{r.iou_type}/{k}": round(100 * getattr(r, k), 1) for r in rep.rows if r.category == "all"
                for k in ("ap", "ap50", "ap75")}

    if "start (no fine-tuning)" not in record["rows"]:
        start = build_teacher("student", weights=str(ROOT / "afss" / "student" / "weights" / "student_synth.pt"),
                              imgsz=320)
        record["rows"]["start (no fine-tuning)"] = score(label_images(start, images))
    wanted = [n for n in args.only.split(",") if n] or list(RECIPES)
    for name in wanted:
        if name in record["rows"]:
            print(f"{name}: done before", file=sys.stderr)
            continue
        recipe, extra, imgsz = RECIPES[name]
        t0 = time.perf_counter()
        result = train_student(labels, work / name.replace(" ", "_"), TrainConfig(
            init="synth", epochs=args.epochs, imgsz=imgsz, batch=16, recipe=recipe, extra=extra), overwrite=True)
        student = build_teacher("student", weights=str(result.weights), imgsz=imgsz)
        row = {**score(label_images(student, images)), "seconds_per_epoch": round(result.seconds_per_epoch, 1),
               "args": json.loads((result.out / "train.json").read_text())["recipe_args"], "imgsz": imgsz,
               "seconds": round(time.perf_counter() - t0, 1)}
        record["rows"][name] = row
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2))
        print(f"{name}: {row}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"\n{record['labels']} ({record['train_images']} training images, {args.epochs} epochs), scored on "
          f"{record['val_images']} held-out images; AP in %\n")
    print(f"{'recipe':<24}{'segm AP':>9}{'AP50':>7}{'AP75':>7}{'bbox AP':>9}{'AP50':>7}{'AP75':>7}")
    for name, r in record["rows"].items():
        print(f"{name:<24}{r['segm/ap']:>9.1f}{r['segm/ap50']:>7.1f}{r['segm/ap75']:>7.1f}"
              f"{r['bbox/ap']:>9.1f}{r['bbox/ap50']:>7.1f}{r['bbox/ap75']:>7.1f}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
