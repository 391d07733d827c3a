"""Whose outlines are better on a pool: the teacher's, the start's, or a mix of the two, per object?

``--mask-source`` (docs/student.md) picks, for a whole distillation, whether the student learns the
teacher's masks or the pretrained start's. On the two render settings no choice was made on, the
right answer was opposite (``sensor``: the start's; ``dim``: the teacher's). This asks whether a
per-object choice could do better, and whether anything label-free tells which is better where.

For each pool image of a ``benchmarks/distill.py --source synth`` folder with a refined label (its
top-1 mask, T), the start is run on the image and its mask whose box best matches the label's is
taken (S; empty when it finds nothing). Against the pool's ground truth (G, read only to score)
the table gives the mean mask IoU with G of T, S, their union and intersection, and of the better
of T and S per image (an oracle: the most any per-object choice between them could give). Then
the Spearman correlation, with IoU(T, G) - IoU(S, G), of label-free cues a judge could use: the
teacher's score, the start's confidence, the two masks' box IoU and mask IoU, log(area S /
area T) and the share of S inside T, each with its mean over the pool. A cue worth building a per-object judge on has the same
sign on every pool; a per-pool choice needs a mean that sides with the better source on every pool.

    .venv/bin/python benchmarks/mask_sources.py runs/bench/held_sensor_s0 runs/bench/held_dim_s0

Writes ``benchmarks/results/mask_sources.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from afss.evaluate.preview import box_iou
from afss.evaluate.score_quality import spearman
from afss.io.coco import read_coco
from afss.types import decode_mask, rle_box_xyxy

CUES = ("teacher_score", "start_score", "box_iou", "mask_iou", "log_area_ratio", "start_inside")
MIXES = ("teacher", "start", "union", "intersection", "better_of_two")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 0 when both are empty."""
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 0.0


def compare(teacher: np.ndarray, start: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Each mix's IoU with ``truth`` (`MIXES`), and the two label-free mask cues."""
    t, s = mask_iou(teacher, truth), mask_iou(start, truth)
    return {"teacher": t, "start": s, "union": mask_iou(teacher | start, truth),
            "intersection": mask_iou(teacher & start, truth), "better_of_two": max(t, s),
            "mask_iou": mask_iou(teacher, start),
            "start_inside": float((teacher & start).sum() / start.sum()) if start.any() else 0.0,
            "log_area_ratio": float(np.log((start.sum() + 1) / (teacher.sum() + 1)))}


def pool_rows(run: Path, start_weights: str) -> list[dict[str, float]]:
    from afss.label import label_images
    from afss.teachers import build_teacher

    pool = run / "synth" / "pool"
    truth = {im.file_name: im for im in read_coco(pool / "gt.json", image_root=pool).images}
    labels = read_coco(run / "synth" / "pool_refined.json", image_root=pool)
    labelled = labels.replace(images=tuple(im for im in labels.images if im.instances and im.instances[0].rle is not None))
    start = build_teacher("student", weights=start_weights)
    found = label_images(start, labelled.replace(images=tuple(im.replace(instances=()) for im in labelled.images)),
                         top1=False)
    rows = []
    for im, seen in zip(labelled.images, found.images, strict=True):
        label = im.instances[0]
        g = np.zeros(im.size_hw, bool)
        for inst in truth[im.file_name].instances:
            g |= decode_mask(inst.rle)
        donors = [o for o in seen.instances if o.rle is not None and decode_mask(o.rle).any()]
        best = max(donors, key=lambda o: box_iou(label.box_xyxy, rle_box_xyxy(o.rle)), default=None)
        t = decode_mask(label.rle)
        s = decode_mask(best.rle) if best is not None else np.zeros_like(t)
        rows.append({**compare(t, s, g), "teacher_score": float(label.score),
                     "start_score": float(best.score) if best is not None else 0.0,
                     "box_iou": box_iou(label.box_xyxy, rle_box_xyxy(best.rle)) if best is not None else 0.0})
    return rows


def summary(rows: list[dict[str, float]]) -> dict[str, object]:
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    gap = col["teacher"] - col["start"]
    return {"images": len(rows), "teacher_better": int((gap > 0.02).sum()), "start_better": int((gap < -0.02).sum()),
            "mean_iou": {m: round(float(col[m].mean()), 4) for m in MIXES},
            "mean_cue": {c: round(float(col[c].mean()), 4) for c in CUES},
            "spearman_with_teacher_minus_start": {c: round(spearman(col[c], gap), 3) for c in CUES}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", metavar="DIR", help="benchmarks/distill.py --source synth --out folders")
    ap.add_argument("--start", default=str(ROOT / "afss" / "student" / "weights" / "student_synth.pt"),
                    help="the start whose masks are compared (default: the shipped synth start)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mask_sources.json"))
    args = ap.parse_args(argv)
    results = {}
    for run in map(Path, args.runs):
        if not (run / "synth" / "pool_refined.json").is_file():
            sys.exit(f"mask_sources.py: {run}: no synth/pool_refined.json (a benchmarks/distill.py --source synth folder?)")
        t0 = time.time()
        results[run.name] = {**summary(pool_rows(run, args.start)), "seconds": round(time.time() - t0, 1)}
    print("mean mask IoU with the truth of each pool's labelled images (teacher T, start S)")
    print(f"{'pool':24s} {'images':>6s} " + " ".join(f"{m:>13s}" for m in MIXES) + "   T better / S better")
    for name, r in results.items():
        print(f"{name:24s} {r['images']:6d} " + " ".join(f"{r['mean_iou'][m]:13.3f}" for m in MIXES)
              + f"   {r['teacher_better']} / {r['start_better']}")
    print("\nlabel-free cues: Spearman with IoU(T) - IoU(S) over the pool's objects (the pool's mean)")
    print(f"{'pool':24s} " + " ".join(f"{c:>17s}" for c in CUES))
    for name, r in results.items():
        print(f"{name:24s} " + " ".join(f"{r['spearman_with_teacher_minus_start'][c]:+8.3f} ({r['mean_cue'][c]:6.3f})"
                                        for c in CUES))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"start": args.start, "pools": results}, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
