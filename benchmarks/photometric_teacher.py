"""Benchmark of the weights-free photometric teacher on `afss synth --domain mixed` scenes.

Prints, per domain (clean, earth, harsh drawn inside the mixed set, and all of mixed), the mask
(segm) AP under the COCO protocol and the paper's single-target protocol, for all images and for
the images whose label has score >= 0.6 (the refine stage's confidence filter), with the fraction of
images that survive the filter, plus labelling speed (images/s through `afss.label.label_images`,
PNG decoding included, median of repeats). If the score is worth anything, the filtered AP is higher.

    .venv/bin/python benchmarks/photometric_teacher.py            # 400 images at 512², seed 0
    .venv/bin/python benchmarks/photometric_teacher.py --small    # 60 images, a quick look
    .venv/bin/python benchmarks/photometric_teacher.py --fit-calibration --seed 1000 --n 300 \
        --fit-extra data/spark2021/gt.json
        # fit the confidence weights on tuning scenes (never the benchmark seed) and on the
        # ``dev`` frames of a second source (only images with afss_meta.subset == "dev"), each
        # source weighted equally, and print them

Writes JSON to ``--out`` (default ``runs/bench/photometric_teacher.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from afss.evaluate import evaluate
from afss.io.coco import read_coco
from afss.label import label_images
from afss.synth import render_dataset
from afss.teachers.photometric import PhotometricTeacher
from afss.types import LabelSet

DOMAINS = ("clean", "earth", "harsh")
THRESHOLD = 0.6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="images (mixed domain)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0, help="benchmark seed 0; tune on seeds >= 1000")
    ap.add_argument("--small", action="store_true", help="60 images")
    ap.add_argument("--repeats", type=int, default=3, help="timed labelling runs (median reported)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--data", default=None, help="synth folder (default runs/bench/photometric_data_<seed>_<n>)")
    ap.add_argument("--out", default="runs/bench/photometric_teacher.json")
    ap.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                    help="teacher option, value as JSON (repeatable), to compare settings on tuning seeds")
    ap.add_argument("--fit-calibration", action="store_true",
                    help="fit the confidence's logistic weights to the mask IoU on these scenes and print them")
    ap.add_argument("--fit-extra", action="append", default=[], metavar="GT_JSON",
                    help="with --fit-calibration: also fit on this ground truth's images marked "
                         "afss_meta.subset == 'dev' (box IoU where it has no masks); repeatable")
    args = ap.parse_args()
    n = 60 if args.small else args.n
    data = Path(args.data or f"runs/bench/photometric_data_{args.seed}_{n}_{args.size}")
    gt = _dataset(data, n, args.size, args.seed)
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}

    if args.fit_calibration:
        if args.seed < 1000:
            print("refusing to fit on benchmark seeds (< 1000); use --seed 1000 or higher", file=sys.stderr)
            return 2
        extra = [_dev_frames(p) for p in args.fit_extra]
        return _fit_calibration([gt, *extra], options)

    teacher = PhotometricTeacher.build(**options)
    pred_path = data / "photometric_labels.json"
    times = []
    for k in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        pred = label_images(teacher, gt, batch_size=args.batch_size, out=pred_path if k == 0 else None, resume=False)
        times.append(time.perf_counter() - t0)
    ips = [len(gt) / t for t in times]
    pred = read_coco(pred_path)

    rows = []
    for name in (*DOMAINS, "mixed"):
        keep = {im.file_name for im in gt.images if name == "mixed" or im.meta.get("domain") == name}
        rows.append(_row(name, _subset(gt, keep), _subset(pred, keep)))
    result = {
        "benchmark": "photometric_teacher", "n": len(gt), "size": args.size, "seed": args.seed,
        "threshold": THRESHOLD, "rows": rows,
        "images_per_second_median": round(statistics.median(ips), 2), "images_per_second_runs": [round(v, 2) for v in ips],
        "teacher_options": teacher.options,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version()},
    }
    _print(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}", file=sys.stderr)
    return 0


def _dataset(folder: Path, n: int, size: int, seed: int) -> LabelSet:
    gt_path = folder / "gt.json"
    if gt_path.is_file():
        gt = read_coco(gt_path)
        if len(gt) == n:
            return gt
    print(f"rendering {n} mixed scenes at {size}² (seed {seed}) into {folder} ...", file=sys.stderr)
    return render_dataset(folder, n=n, size=size, domain="mixed", seed=seed, overwrite=True)


def _subset(labels: LabelSet, names: set[str]) -> LabelSet:
    return labels.replace(images=tuple(im for im in labels.images if im.file_name in names))


def _aps(gt: LabelSet, pred: LabelSet) -> dict[str, float | None]:
    if not len(gt):
        return {"coco": None, "paper": None}
    report = evaluate(gt, pred, iou_types=("segm",))
    return {p: report.get(p, "segm").ap for p in ("coco", "paper")}


def _row(name: str, gt: LabelSet, pred: LabelSet) -> dict:
    confident = {im.file_name for im in pred.images if im.instances and max(i.score for i in im.instances) >= THRESHOLD}
    return {
        "domain": name, "images": len(gt),
        "ap_all": _aps(gt, pred),
        "ap_confident": _aps(_subset(gt, confident), _subset(pred, confident)),
        "kept_fraction": round(len(confident) / max(1, len(gt)), 3),
    }


def _print(result: dict) -> None:
    def pct(v):
        return "   -" if v is None else f"{100 * v:5.1f}"

    print(f"photometric teacher, afss synth mixed, {result['n']} images {result['size']}², seed {result['seed']}")
    print("segm AP (%)    images | COCO all  COCO s>=.6 | paper all  paper s>=.6 | kept")
    for r in result["rows"]:
        a, c = r["ap_all"], r["ap_confident"]
        print(f"{r['domain']:<8} {r['images']:>12} | {pct(a['coco'])}     {pct(c['coco'])}   | {pct(a['paper'])}      "
              f"{pct(c['paper'])}    | {100 * r['kept_fraction']:4.0f}%")
    print(f"labelling speed: {result['images_per_second_median']:.1f} images/s median of {len(result['images_per_second_runs'])} "
          f"(load average {result['machine']['load_avg_1m']}, {result['machine']['cpus']} CPUs)")


def _dev_frames(path: str) -> LabelSet:
    """The ``dev`` images of a ground truth (see scripts/spark2021.py): never the reported ones."""
    gt = read_coco(path)
    dev = gt.replace(images=tuple(im for im in gt.images if im.meta.get("subset") == "dev"))
    if not len(dev):
        raise SystemExit(f"{path}: no image with afss_meta.subset == 'dev' to fit on")
    return dev


def _fit_calibration(sources: list[LabelSet], options: dict) -> int:
    """Logistic regression of the IoU (soft target) on the confidence features, L2 0.01, Newton;
    every source weighs the same whatever its size."""
    teacher = PhotometricTeacher.build(**options)
    from afss.evaluate.preview import top1_iou
    from afss.io.images import load_image
    from afss.types import Instance

    data = []
    for gt in sources:
        feats, ious = [], []
        for im in gt.images:
            rgb = load_image(gt.image_path(im)).rgb
            found = teacher.confidence_inputs(rgb)
            if found is None:
                continue
            mask, features = found
            feats.append(features)
            ious.append(top1_iou(im, Instance.from_mask(mask)))
        data.append((np.array(feats), np.array(ious)))
    shipped = 8  # the shipped cue set: CONFIDENCE_CUES[:8] (the last two are offered, not used: benchmarks/loso.py)
    data = [(x[:, :shipped], y) for x, y in data]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from loso import logistic_fit

    w = logistic_fit(data, l2=1e-2)
    for (x, y), gt in zip(data, sources):
        p = 1 / (1 + np.exp(-x @ w))
        print(f"{len(y)} images: Spearman(score, IoU) = {_spearman(p, y):.3f}, "
              f"mean IoU score>=0.6: {y[p >= THRESHOLD].mean() if (p >= THRESHOLD).any() else math.nan:.3f} "
              f"({(p >= THRESHOLD).mean():.0%} kept), <0.6: {y[p < THRESHOLD].mean() if (p < THRESHOLD).any() else math.nan:.3f}")
    print("calibration = (" + ", ".join(f"{v:.3f}" for v in w) + ")")
    return 0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


if __name__ == "__main__":
    sys.exit(main())
