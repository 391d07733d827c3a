"""Benchmark of pseudo-label quality on two sources: afss synth, and third-party SPARK-2021 frames.

For each source it labels every image with the weights-free photometric teacher (raw labels),
refines them (identity + vflip, Weighted Boxes Fusion, re-segmentation; unfiltered), then filters
the refined labels four ways, none of which looks at the ground truth:

* ``score >= 0.6`` (the paper's fixed cut);
* ``keep top 50%`` (the best-scoring half of the images) and ``keep top 30%`` (the smallest pool
  the automatic cut allows, `AUTO_KEEP`);
* ``auto`` (Otsu's split of the scores, see `afss.refine.filtering.cut_score`).

Filtered rows are scored twice: on the kept images only, and on all images with the dropped ones
counted as misses. Each row gives the fraction of images kept and the cut applied, and the raw and
refined rows Spearman's rank correlation of score and IoU (does the confidence track quality?).

Sources:

* ``synth``: ``afss synth --domain mixed``, 400 images of 512², seed 0 (the confidence was fitted
  on seeds >= 1000); segm and bbox AP.
* ``spark``: the SPARK-2021 frames rebuilt by ``scripts/spark2021.py`` (``--spark DIR`` holding
  its ``gt.json``); bbox AP (boxes-only ground truth), on all frames and on the ``report`` frames
  alone (the ``dev`` frames were looked at while developing and used to fit the confidence).

Usage::

    python scripts/spark2021.py <repository clone or git dir> data/spark2021
    .venv/bin/python benchmarks/label_quality.py --spark data/spark2021      # ~10 min on 2 cores
    .venv/bin/python benchmarks/label_quality.py --sources synth --n 60      # a quick look

Writes ``runs/bench/label_quality.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.evaluate import evaluate
from afss.evaluate.score_quality import score_quality
from afss.io.atomic import write_json_atomic
from afss.io.coco import read_coco
from afss.label import label_images
from afss.refine import RefineConfig, filter_labels, refine_labels
from afss.refine.filtering import AUTO_KEEP
from afss.teachers import build_teacher
from afss.types import LabelSet

CUTS = (("score >= 0.6", {"min_score": 0.6}), ("keep top 50%", {"keep_top": 0.5}), ("keep top 30%", {"keep_top": 0.3}),
        ("auto", {"min_score": "auto"}))


@dataclass
class Source:
    name: str
    gt: LabelSet
    iou_types: tuple[str, ...]
    subsets: dict[str, set[str] | None]  # subset name -> file names (None: all)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", default="synth,spark", help="comma list of synth, spark")
    ap.add_argument("--n", type=int, default=400, help="synth images (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="synth seed (the confidence is fitted on >= 1000)")
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py")
    ap.add_argument("--tta", default="identity,vflip")
    ap.add_argument("--out", default="runs/bench/label_quality.json")
    args = ap.parse_args(argv)
    sources = []
    for name in (s.strip() for s in args.sources.split(",") if s.strip()):
        if name == "synth":
            sources.append(_synth(args.n, args.seed))
        elif name == "spark":
            sources.append(_spark(Path(args.spark)))
        else:
            ap.error(f"unknown source {name!r} (synth, spark)")
    teacher = build_teacher("photometric")
    results = []
    for src in sources:
        images = src.gt.replace(images=tuple(im.replace(instances=()) for im in src.gt.images))
        t = time.perf_counter()
        raw = label_images(teacher, images, batch_size=8)
        label_s = time.perf_counter() - t
        t = time.perf_counter()
        refined, _ = refine_labels(teacher, images, views=args.tta, labels=raw, config=RefineConfig(min_score=0.0))
        refine_s = time.perf_counter() - t
        print(f"{src.name}: labelled in {label_s:.0f} s, refined in {refine_s:.0f} s", file=sys.stderr)
        for subset, names in src.subsets.items():
            gt = _subset(src.gt, names)
            rows = [_row("raw labels", gt, _subset(raw, names), src.iou_types, misses=True),
                    _row(f"refined ({args.tta})", gt, _subset(refined, names), src.iou_types, misses=True)]
            for label, cut in CUTS:
                kept, fsum = filter_labels(_subset(refined, names), **cut)
                on_kept = {im.file_name for im in kept.images if im.instances}
                extra = {"kept": fsum.kept, "images": fsum.images_in, "cut": round(fsum.min_score, 4)}
                rows.append({**_row(f"refined + {label}, on the kept images", _subset(gt, on_kept),
                                    _subset(kept, on_kept), src.iou_types, misses=False), **extra})
                rows.append({**_row(f"refined + {label}, dropped = miss", gt, kept, src.iou_types, misses=True),
                             **extra})
            results.append({"source": src.name, "subset": subset, "images": len(gt), "rows": rows,
                            "label_seconds": round(label_s, 1), "refine_seconds": round(refine_s, 1)})
    md = "\n\n".join(_table(r) for r in results)
    print(md)
    meta = {"tta": args.tta, "synth_n": args.n, "synth_seed": args.seed, "teacher": "photometric",
            "auto_keep": list(AUTO_KEEP),  # the auto rows' bound (afss refine's default)
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            "python": platform.python_version()}
    out = Path(args.out)
    write_json_atomic(out, {"meta": meta, "results": results}, indent=2)
    out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
    print(f"-> {out}", file=sys.stderr)
    return 0


def _synth(n: int, seed: int) -> Source:
    folder = Path(f"runs/bench/synth_mixed_512_s{seed}_n{n}")
    if not (folder / "gt.json").exists():
        from afss.synth import render_dataset

        render_dataset(folder, n=n, size=512, domain="mixed", seed=seed, overwrite=True)
    return Source(f"afss synth mixed (seed {seed})", read_coco(folder / "gt.json"), ("segm", "bbox"), {"all": None})


def _spark(folder: Path) -> Source:
    if not (folder / "gt.json").is_file():
        raise SystemExit(f"{folder}/gt.json not found: build it with scripts/spark2021.py (see its docstring)")
    gt = read_coco(folder / "gt.json")
    report = {im.file_name for im in gt.images if im.meta.get("subset") == "report"}
    return Source("SPARK-2021 (Roboflow export)", gt, ("bbox",), {"all frames": None, "report frames": report})


def _subset(labels: LabelSet, names: set[str] | None) -> LabelSet:
    if names is None:
        return labels
    return labels.replace(images=tuple(im for im in labels.images if im.file_name in names))


def _row(name: str, gt: LabelSet, pred: LabelSet, iou_types: tuple[str, ...], *, misses: bool) -> dict:
    row: dict = {"labels": name, "scored_images": len(gt), "with_label": sum(1 for im in pred.images if im.instances)}
    if len(gt):
        report = evaluate(gt, pred, iou_types=iou_types, protocols=("coco",))
        for iou_type in iou_types:
            r = report.get("coco", iou_type)
            row[f"{iou_type}_ap"], row[f"{iou_type}_ap50"] = r.ap, r.ap50
    if misses and "refined +" not in name:
        row["spearman"] = round(score_quality(gt, pred).spearman, 3)
    return row


def _table(result: dict) -> str:
    iou_types = [t for t in ("segm", "bbox") if f"{t}_ap" in result["rows"][0]]
    head = ["labels"] + [f"{t} {m}" for t in iou_types for m in ("AP", "AP50")] + ["images scored", "kept", "cut",
                                                                                   "Spearman"]
    lines = [f"**{result['source']}, {result['subset']}** ({result['images']} images)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [r["labels"]] + [_pct(r.get(f"{t}_{m}")) for t in iou_types for m in ("ap", "ap50")]
        kept = f"{r['kept']}/{r['images']} ({100 * r['kept'] / max(1, r['images']):.0f}%)" if "kept" in r else ""
        cells += [str(r["scored_images"]), kept, f"{r['cut']:.3f}" if "cut" in r else "",
                  f"{r['spearman']:.2f}" if "spearman" in r else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


if __name__ == "__main__":
    sys.exit(main())
