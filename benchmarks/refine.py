"""Benchmark of label refinement (TTA + WBF + re-segmentation + filter) with the photometric teacher.

On synthetic mixed-domain scenes with exact masks (``afss.synth``, seed 0), it labels every image
with the weights-free photometric teacher (raw labels), refines them with several TTA view sets,
filters at min score 0.6 and scores everything with segm AP (COCO and the paper's single-target
protocol) against the ground truth. Filtered rows are scored twice: on the surviving images only,
and on all images with the dropped ones counted as misses.

Usage:
    .venv/bin/python benchmarks/refine.py            # 200 images of 512², ~10-15 min on 2 CPU cores
    .venv/bin/python benchmarks/refine.py --small    # 24 images of 256², about a minute
Writes the table and a JSON (default ``runs/bench/refine.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.evaluate import evaluate
from afss.io.atomic import write_json_atomic
from afss.io.coco import read_coco
from afss.label import label_images
from afss.refine import RefineConfig, filter_labels, refine_labels
from afss.teachers import build_teacher
from afss.types import LabelSet

# (row name, views, config changes); every refined row is scored unfiltered (min_score 0).
VIEW_SETS = [
    ("identity (re-segment only)", "identity", {}),
    ("identity+vflip (paper default)", "identity,vflip", {}),
    ("identity+vflip, score = box", "identity,vflip", {"score_source": "box"}),
    ("identity+vflip, score = mean", "identity,vflip", {"score_source": "mean"}),
    ("identity+vflip, mask vote", "identity,vflip", {"mask_fusion": "vote"}),
    ("identity+vflip, skip_box_thr 0", "identity,vflip", {"skip_box_thr": 0.0}),
    ("identity+vflip, mask vote, skip_box_thr 0", "identity,vflip", {"mask_fusion": "vote", "skip_box_thr": 0.0}),
    ("identity+hflip", "identity,hflip", {}),
    ("identity+hflip+vflip", "identity,hflip,vflip", {}),
    ("identity+rot90+rot180+rot270", "identity,rot90,rot180,rot270", {}),
    ("identity+scale0.75+scale1.25", "identity,scale0.75,scale1.25", {}),
    ("identity+brightness1.2+contrast0.8+gamma0.8", "identity,brightness1.2,contrast0.8,gamma0.8", {}),
    ("identity+scale0.75+scale1.25 (vote)", "identity,scale0.75,scale1.25", {"mask_fusion": "vote"}),
    ("identity+brightness1.2+contrast0.8+gamma0.8 (vote)", "identity,brightness1.2,contrast0.8,gamma0.8",
     {"mask_fusion": "vote"}),
    ("identity+vflip+hflip+scale0.75 (vote)", "identity,vflip,hflip,scale0.75", {"mask_fusion": "vote"}),
]
FILTERED = ("raw labels", "identity+vflip (paper default)", "identity+vflip, score = mean", "identity+vflip, mask vote",
            "identity+scale0.75+scale1.25", "identity+scale0.75+scale1.25 (vote)",
            "identity+vflip+hflip+scale0.75 (vote)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="24 images of 256² (a quick check)")
    ap.add_argument("--n", type=int, default=None, help="images (default 200, --small 24)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 512, --small 256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="synth folder (rendered there if it has no gt.json)")
    ap.add_argument("--min-score", type=float, default=0.6)
    ap.add_argument("--only", default=None, help="comma-separated row-name prefixes to run (default: all)")
    ap.add_argument("--out", default="runs/bench/refine.json")
    args = ap.parse_args(argv)
    n = args.n or (24 if args.small else 200)
    size = args.size or (256 if args.small else 512)
    data = Path(args.data or f"runs/bench/synth_mixed_{size}_s{args.seed}_n{n}")

    if not (data / "gt.json").exists():
        from afss.synth import render_dataset

        t = time.perf_counter()
        render_dataset(data, n=n, size=size, domain="mixed", seed=args.seed, overwrite=True)
        print(f"rendered {n} scenes of {size}² in {time.perf_counter() - t:.0f} s -> {data}", file=sys.stderr)
    gt = read_coco(data / "gt.json")
    images = gt.replace(images=tuple(im.replace(instances=()) for im in gt.images))
    teacher = build_teacher("photometric")

    results: list[dict] = []
    t = time.perf_counter()
    raw = label_images(teacher, images, top1=True)
    raw_s = time.perf_counter() - t
    sets = {"raw labels": raw}
    results.append(_row("raw labels", "-", raw, gt, raw_s))
    only = [p.strip() for p in args.only.split(",")] if args.only else None
    for name, views, changes in VIEW_SETS:
        if only and not any(name.startswith(p) for p in only):
            continue
        config = replace(RefineConfig(min_score=0.0), **changes)
        t = time.perf_counter()
        refined, summary = refine_labels(teacher, images, views=views, labels=raw, config=config)
        seconds = time.perf_counter() - t
        sets[name] = refined
        row = _row(name, views, refined, gt, seconds)
        row["all_views_agree"] = summary.all_views_agree
        row["mask_fusion"] = summary.mask_fusion
        results.append(row)
        print(f"{name}: {row['segm_ap_coco']:.3f} / {row['segm_ap_paper']:.3f} in {seconds:.0f} s", file=sys.stderr)
    for name in FILTERED:
        if name not in sets:
            continue
        filtered, fsum = filter_labels(sets[name], min_score=args.min_score)
        kept = {im.file_name for im in filtered.images if im.instances}
        surviving_gt = gt.replace(images=tuple(im for im in gt.images if im.file_name in kept))
        surviving = filtered.replace(images=tuple(im for im in filtered.images if im.file_name in kept))
        label = f"{name} + filter >= {args.min_score:g}"
        row = _row(f"{label} (surviving images)", "", surviving, surviving_gt, None)
        row.update(kept=fsum.kept, dropped=dict(fsum.dropped))
        results.append(row)
        row = _row(f"{label} (dropped = miss)", "", filtered, gt, None)
        row.update(kept=fsum.kept, dropped=dict(fsum.dropped))
        results.append(row)

    table = _table(results, n)
    print(table)
    meta = {"images": n, "size": size, "seed": args.seed, "domain": "mixed", "teacher": "photometric",
            "min_score": args.min_score, "git_commit": _git_commit(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}", "python": platform.python_version()}
    out = Path(args.out)
    write_json_atomic(out, {"meta": meta, "rows": results}, indent=2)
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    print(f"-> {out}", file=sys.stderr)
    return 0


def _git_commit() -> str | None:
    import subprocess

    try:
        here = Path(__file__).parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../afss"], capture_output=True, text=True,
                               check=True, cwd=here).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _row(name: str, views: str, pred: LabelSet, gt: LabelSet, seconds: float | None) -> dict:
    report = evaluate(gt, pred, iou_types=("segm", "bbox"), protocols=("coco", "paper"))
    return {
        "name": name, "views": views,
        "segm_ap_coco": report.get("coco", "segm").ap, "segm_ap50_coco": report.get("coco", "segm").ap50,
        "segm_ap_paper": report.get("paper", "segm").ap, "bbox_ap_coco": report.get("coco", "bbox").ap,
        "images": report.num_images, "with_label": sum(1 for im in pred.images if im.instances),
        "seconds": None if seconds is None else round(seconds, 1),
    }


def _table(rows: list[dict], n: int) -> str:
    head = "| labels | segm AP COCO | segm AP50 COCO | segm AP paper | box AP COCO | images scored | with label | s |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}"
        lines.append(f"| {r['name']} | {pct(r['segm_ap_coco'])} | {pct(r['segm_ap50_coco'])} | "
                     f"{pct(r['segm_ap_paper'])} | {pct(r['bbox_ap_coco'])} | {r['images']} | {r['with_label']} | "
                     f"{'' if r['seconds'] is None else r['seconds']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
