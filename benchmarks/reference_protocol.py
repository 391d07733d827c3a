"""How much each difference between the ``paper`` and ``reference`` protocols moves the numbers.

    .venv/bin/python benchmarks/reference_protocol.py [--n 200] [--size 1024] [--seed 0] [--out FILE]

Generated data, nothing downloaded: ``--n`` frames of ``--size``² with one spacecraft-like target
(a body and two panels, rotated) of about 170k px ("large") or 7k px ("small"), saved as a 0/255
mask in PNG (exact) and in JPEG at quality 75 (Pillow's default) and 95 (OpenCV's default).
Predictions are afss's reading of the mask shifted by a few pixels, with a score that follows the
IoU plus noise. Each difference is measured alone, everything else held equal:

* mask reading: IoU of afss's reading (any channel >= 128) with the reference's (grey > 0) of the
  same JPEG, and the reference AP with the JPEG masks minus with afss's reading of them (saved as
  PNG), predictions being afss's reading shifted;
* empty masks: 5% of the frames with an empty mask (a prediction there all the same), reference
  minus paper (which gives them no target; nothing else differs there beyond the last line);
* first vs top prediction: a second, worse instance stored first in half the images, half the
  time with a higher score;
* float32 counters: `reference_ap` minus the float64 `single_target_ap` on the same IoUs and
  thresholds, over random set sizes, and the set sizes below 1000 where float32 loses a grid point;
* ``arange`` thresholds: reference AP with its thresholds minus with COCO's ``linspace``;
* tie order: scores rounded to 0.01, AP with ties in image order minus in reverse order;
* all of float32, thresholds and AP75 together: reference minus paper on exact PNG masks with one
  prediction per image.

Prints a table and writes JSON (default runs/bench/reference_protocol.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.evaluate import evaluate
from afss.evaluate.paper_protocol import IOU_THRESHOLDS, single_target_ap
from afss.evaluate.reference_protocol import REFERENCE_IOU_THRESHOLDS, reference_ap
from afss.types import ImageLabels, Instance, LabelSet

AREAS = {"large": 170_000, "small": 7_000}


def spacecraft(size: int, area_px: float, rng: np.random.Generator) -> np.ndarray:
    """bool ``(size, size)``: a rotated body with two panels, about ``area_px`` pixels."""
    s = np.sqrt(area_px / 2.2) * rng.uniform(0.9, 1.1)  # body s x s, panels 1.5 s x 0.4 s each
    cx, cy = rng.uniform(0.35, 0.65, size=2) * size
    th = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    canvas = np.zeros((size, size), np.uint8)
    for (x0, y0, x1, y1) in ((-s / 2, -s / 2, s / 2, s / 2), (s / 2, -0.2 * s, 2 * s, 0.2 * s),
                             (-2 * s, -0.2 * s, -s / 2, 0.2 * s)):
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) @ rot.T + (cx, cy)
        cv2.fillPoly(canvas, [np.round(corners).astype(np.int32)], 1)
    return canvas.astype(bool)


def afss_reading(path: Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return (raw if raw.ndim == 2 else raw[..., :3].max(axis=2)) >= 128


def grey_reading(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")) > 0


def write_masks(root: Path, masks: list[np.ndarray]) -> dict[str, Path]:
    """The masks as PNG, JPEG q75 (Pillow) and JPEG q95 (OpenCV) folders: ``{kind: folder}``."""
    folders = {k: root / k for k in ("png", "jpeg75", "jpeg95")}
    for f in folders.values():
        f.mkdir(parents=True)
    for k, m in enumerate(masks):
        m8 = m.astype(np.uint8) * 255
        Image.fromarray(m8).save(folders["png"] / f"{k:04d}.png")
        Image.fromarray(m8).save(folders["jpeg75"] / f"{k:04d}.jpg", quality=75)
        cv2.imwrite(str(folders["jpeg95"] / f"{k:04d}.jpg"), m8)
    return folders


def labels(masks: list[np.ndarray], size: int) -> LabelSet:
    return LabelSet(tuple(ImageLabels(f"{k:04d}.jpg", size, size, (Instance.from_mask(m),) if m.any() else ())
                          for k, m in enumerate(masks)))


def predictions(masks: list[np.ndarray], size: int, rng: np.random.Generator, *, decoy: bool = False) -> LabelSet:
    """Each mask shifted by up to 6% of its side, score = IoU-like + noise; ``decoy``: a worse
    instance stored first in half the images, with a higher score half of those times."""
    images = []
    for k, m in enumerate(masks):
        ref = m if m.any() else spacecraft(size, 7000, rng)
        side = np.sqrt(ref.sum())
        dy, dx = np.round(rng.normal(0, 0.04 * side, size=2)).astype(int)
        shifted = np.roll(ref, (dy, dx), axis=(0, 1))
        score = float(np.clip(1 - np.hypot(dx, dy) / max(side, 1) + rng.normal(0, 0.1), 0.01, 1))
        insts = [Instance.from_mask(shifted, score=score)]
        if decoy and rng.random() < 0.5:
            bad = np.roll(ref, (int(0.3 * side), 0), axis=(0, 1))
            insts.insert(0, Instance.from_mask(bad, score=float(np.clip(score + rng.choice([-0.1, 0.1]), 0.01, 1))))
        images.append(ImageLabels(f"{k:04d}.jpg", size, size, tuple(insts)))
    return LabelSet(tuple(images))


def _bytes(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def ref_row(gt: LabelSet, pred: LabelSet, folder: Path):
    return evaluate(gt, pred, protocols=("paper", "reference"), iou_types=("segm",), gt_masks=folder)


def deltas(a, b) -> dict[str, float]:
    return {k: round(100 * (getattr(a, k) - getattr(b, k)), 2) for k in ("ap", "ap50", "ap75")}


def float32_effect(rng: np.random.Generator, trials: int = 2000) -> dict[str, object]:
    """reference_ap (float32) minus the float64 computation, same thresholds, random sets."""
    diffs = []
    for _ in range(trials):
        n = int(rng.integers(5, 1000))
        found = rng.random(n) < rng.uniform(0.5, 1.0)
        ious = np.where(rng.random(found.sum()) < 0.8, rng.uniform(0.5, 1.0, found.sum()), rng.uniform(0, 0.5, found.sum()))
        scores = np.round(rng.random(found.sum()), 6)
        a32, _ = reference_ap(ious, scores, n, IOU_THRESHOLDS)
        a64, _ = single_target_ap(ious, scores, n)
        diffs.append(100 * (a32.mean() - a64.mean()))
    lost = []
    grid = np.linspace(0, 1, 101)
    for n in range(1, 1000):
        k = np.arange(1, n + 1)
        a = np.searchsorted(k / n, grid, side="left")
        b = np.searchsorted((np.float32(k) / np.float32(n)).astype(np.float64), grid, side="left")
        if (a != b).any():
            lost.append(n)
    d = np.abs(diffs)
    return {"trials": trials, "mean_abs_ap_points": round(float(d.mean()), 4), "max_abs_ap_points": round(float(d.max()), 4),
            "share_changed": round(float((d > 1e-6).mean()), 3),
            "set_sizes_below_1000_losing_a_grid_point": len(lost), "first_such_sizes": lost[:12],
            "nine_of_ten_found_ap_points": round(100 * (reference_ap(np.ones(9), np.arange(9, 0, -1), 10)[0].mean()
                                                         - single_target_ap(np.ones(9), np.arange(9, 0, -1), 10)[0].mean()), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench/reference_protocol.json")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    out: dict[str, object] = {"n": args.n, "size": args.size, "seed": args.seed}
    lines = [f"{'what':<58} {'AP':>6} {'AP50':>6} {'AP75':>6}   (reference minus the other, AP points)"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, area in AREAS.items():
            masks = [spacecraft(args.size, area, rng) for _ in range(args.n)]
            folders = write_masks(Path(tmp) / name, masks)
            pred = predictions(masks, args.size, rng)
            exact = labels(masks, args.size)
            png = ref_row(exact, pred, folders["png"]).get("reference", "segm")
            for jpeg in ("jpeg75", "jpeg95"):
                files = sorted(folders[jpeg].iterdir())
                ious = []
                for f in files:
                    a, g = afss_reading(f), grey_reading(f)
                    ious.append((a & g).sum() / (a | g).sum())
                read = [afss_reading(f) for f in files]  # what afss convert stores
                thresholded = Path(tmp) / name / f"{jpeg}_afss"  # the same reading as exact PNG files
                thresholded.mkdir()
                for f, m in zip(files, read):
                    Image.fromarray(m.astype(np.uint8) * 255).save(thresholded / f"{f.stem}.png")
                gt = labels(read, args.size)
                pred_j = predictions(read, args.size, np.random.default_rng(1))
                rep = ref_row(gt, pred_j, folders[jpeg])
                rep_png = ref_row(gt, pred_j, thresholded)
                d = deltas(rep.get("reference", "segm"), rep_png.get("reference", "segm"))
                out[f"{name}_{jpeg}"] = {"mean_area_px": int(np.mean([m.sum() for m in masks])),
                                         "iou_readings_min": round(float(np.min(ious)), 4),
                                         "iou_readings_median": round(float(np.median(ious)), 4),
                                         "iou_readings_max": round(float(np.max(ious)), 4), "delta": d}
                lines.append(f"{f'{name} target, {jpeg}: grey > 0 vs >= 128 (IoU of readings {np.min(ious):.3f}-{np.max(ious):.3f})':<58} "
                             f"{d['ap']:>6} {d['ap50']:>6} {d['ap75']:>6}")
            # empty masks, 5% of frames, PNG (exact) masks
            with_empty = [np.zeros_like(m) if k % 20 == 7 else m for k, m in enumerate(masks)]
            folders_e = write_masks(Path(tmp) / f"{name}_empty", with_empty)
            gt_e = labels(with_empty, args.size)
            pred_e = predictions(with_empty, args.size, np.random.default_rng(2))
            rep = ref_row(gt_e, pred_e, folders_e["png"])
            # the same predictions scored with the reference but no empty frames: drop them from gt and pred
            keep = [k for k, m in enumerate(with_empty) if m.any()]
            gt_k = LabelSet(tuple(gt_e.images[k] for k in keep))
            pred_k = LabelSet(tuple(pred_e.images[k] for k in keep))
            d = deltas(rep.get("reference", "segm"), ref_row(gt_k, pred_k, folders_e["png"]).get("reference", "segm"))
            d_paper = deltas(rep.get("reference", "segm"), rep.get("paper", "segm"))
            out[f"{name}_empty_masks_5pct"] = {"vs_without_them": d, "vs_paper": d_paper}
            lines.append(f"{f'{name} target, 5% empty masks: unreachable targets vs none':<58} "
                         f"{d_paper['ap']:>6} {d_paper['ap50']:>6} {d_paper['ap75']:>6}")
            # first stored prediction vs top-scoring one
            pred_d = predictions(masks, args.size, np.random.default_rng(3), decoy=True)
            top_first = LabelSet(tuple(im.replace(instances=tuple(sorted(im.instances, key=lambda i: -i.score)))
                                       for im in pred_d.images))
            d = deltas(ref_row(exact, pred_d, folders["png"]).get("reference", "segm"),
                       ref_row(exact, top_first, folders["png"]).get("reference", "segm"))
            out[f"{name}_first_vs_top"] = d
            lines.append(f"{f'{name} target, first stored vs top-scoring prediction':<58} {d['ap']:>6} {d['ap50']:>6} {d['ap75']:>6}")
            # thresholds and tie order, on this set's IoUs
            rows = ref_row(exact, pred, folders["png"])
            ious = np.array([mask_utils.iou([_bytes(p.instances[0].rle)], [_bytes(g.instances[0].rle)], [0])[0, 0]
                             for g, p in zip(exact.images, pred.images)])
            scores = np.array([p.instances[0].score for p in pred.images])
            arange_ap, _ = reference_ap(ious, scores, len(ious), REFERENCE_IOU_THRESHOLDS)
            linspace_ap, _ = reference_ap(ious, scores, len(ious), IOU_THRESHOLDS)
            on_threshold = int(np.isin(ious, np.concatenate([REFERENCE_IOU_THRESHOLDS, IOU_THRESHOLDS])).sum())
            tied = np.round(scores, 2)
            fwd, _ = reference_ap(ious, tied, len(ious))
            rev, _ = reference_ap(ious[::-1], tied[::-1], len(ious))
            out[f"{name}_thresholds"] = {"ap_points": round(100 * (arange_ap.mean() - linspace_ap.mean()), 4),
                                         "ious_exactly_on_a_threshold": on_threshold}
            out[f"{name}_tie_order_2_decimals"] = {"ap_points": round(100 * (fwd.mean() - rev.mean()), 3)}
            out[f"{name}_png_reference_vs_paper"] = d = deltas(png, rows.get("paper", "segm"))
            lines.append(f"{f'{name} target, exact masks, one prediction: reference vs paper':<58} "
                         f"{d['ap']:>6} {d['ap50']:>6} {d['ap75']:>6}")
            lines.append(f"{f'{name} target, arange vs linspace thresholds ({on_threshold} IoUs on one)':<58} "
                         f"{100 * (arange_ap.mean() - linspace_ap.mean()):>6.2f}")
            lines.append(f"{f'{name} target, ties (scores at 0.01) in image vs reverse order':<58} "
                         f"{100 * (fwd.mean() - rev.mean()):>6.2f}")
    f32 = float32_effect(rng)
    out["float32"] = f32
    lines.append(f"{'float32 counters, random sets of 5-999 images (max |dAP|)':<58} {f32['max_abs_ap_points']:>6}"
                 f"   mean {f32['mean_abs_ap_points']}, {100 * f32['share_changed']:.0f}% of sets changed")
    lines.append(f"{'float32 counters, 9 of 10 targets found, perfect masks':<58} {f32['nine_of_ten_found_ap_points']:>6}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{args.n} frames of {args.size}x{args.size} per target size, seed {args.seed}")
    print("\n".join(lines))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
