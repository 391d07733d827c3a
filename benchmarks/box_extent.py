"""Where the photometric teacher's SPARK-2021 boxes part from the ground truth's, per spacecraft.

Each frame's top-1 box is put in one of five classes against the true box: IoU >= 0.75 (close);
``inside`` (>= 90 % of the label's box lies inside the true box, IoU < 0.75: the label is the
smaller, as where the truth is padded or takes in an unlit side); ``encloses`` (>= 90 % of the true
box lies inside the label's: the label takes in what the truth leaves out, such as panels or
booms); ``offset`` (IoU 0.5-0.75, neither); ``elsewhere`` (IoU < 0.5, neither) and ``missed``.
A confidence can raise the AP of a cut only by ranking the close labels first; labels that found
the spacecraft but drew it to another extent than the annotators did cost AP at every IoU
threshold above 0.5 whatever the ranking. So it also prints, per spacecraft, the bbox AP of all
labels and the AP a *perfect* confidence would reach on the 30 % it keeps (the frames of highest
true IoU, scored by it): where that is under all + 10, no confidence meets the ``auto`` cut's bar
with these boxes.

    .venv/bin/python benchmarks/box_extent.py --spark data/spark2021            # ~25 s

Writes ``benchmarks/results/box_extent.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from loso import perfect_share

from afss.evaluate import evaluate
from afss.evaluate.preview import box_iou
from afss.io.coco import read_coco
from afss.label import label_images
from afss.teachers import build_teacher

KINDS = ("close", "inside", "encloses", "offset", "elsewhere", "missed")


def extent_kind(label: tuple[float, ...] | None, truth: tuple[float, ...]) -> str:
    """The class of a label's ``xyxy`` box against the true box (module docstring)."""
    if label is None:
        return "missed"
    iw = max(0.0, min(label[2], truth[2]) - max(label[0], truth[0]))
    ih = max(0.0, min(label[3], truth[3]) - max(label[1], truth[1]))
    inter = iw * ih
    a = (label[2] - label[0]) * (label[3] - label[1])
    b = (truth[2] - truth[0]) * (truth[3] - truth[1])
    iou = box_iou(label, truth)
    if iou >= 0.75:
        return "close"
    if a > 0 and inter / a >= 0.9:
        return "inside"
    if b > 0 and inter / b >= 0.9:
        return "encloses"
    return "offset" if iou >= 0.5 else "elsewhere"


def _ap_and_ceiling(gt, labels, name: str) -> tuple[float, float]:
    """bbox AP of one spacecraft's labels, and of the 30 % of highest true IoU scored by that IoU."""
    pairs = [(t, g) for t, g in zip(gt.images, labels.images) if t.meta["class"] == name]
    truth = gt.replace(images=tuple(t for t, _ in pairs))
    got = labels.replace(images=tuple(g for _, g in pairs))
    all_ap = evaluate(truth, got, iou_types=("bbox",)).get("coco", "bbox").ap
    return all_ap, perfect_share(truth, got, "bbox")["ap_kept"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py")
    ap.add_argument("--subset", choices=("all", "dev", "report"), default="all")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "box_extent.json"))
    args = ap.parse_args(argv)
    gt = read_coco(Path(args.spark) / "gt.json")
    if args.subset != "all":
        gt = gt.replace(images=tuple(im for im in gt.images if im.meta.get("subset") == args.subset))
    labels = label_images(build_teacher("photometric"), gt.replace(images=tuple(im.replace(instances=())
                                                                                for im in gt.images)))
    counts: dict[str, Counter] = {}
    for truth, got in zip(gt.images, labels.images, strict=True):
        top = max(got.instances, key=lambda i: i.score, default=None)
        kind = extent_kind(None if top is None else top.box_xyxy, truth.instances[0].box_xyxy)
        counts.setdefault(truth.meta["class"], Counter())[kind] += 1
    total = sum(counts.values(), Counter())
    ap = {name: _ap_and_ceiling(gt, labels, name) for name in counts}
    md = (f"SPARK-2021 ({args.subset} frames), the photometric teacher's top-1 box against the true box; "
          f"bbox AP of all labels, and on the 30 % a perfect confidence keeps:\n\n"
          f"| spacecraft | frames | {' | '.join(KINDS)} | AP, all | AP, perfect 30 % |\n"
          f"|---|---|{'---|' * len(KINDS)}---|---|\n")
    for name, c in [*sorted(counts.items()), ("all", total)]:
        n = sum(c.values())
        all_ap, ceiling = ap.get(name, (None, None))
        tail = "- | -" if all_ap is None else f"{100 * all_ap:.1f} | {100 * ceiling:.1f}" + (
            "" if ceiling >= all_ap + 0.10 else " (< +10)")
        md += f"| {name} | {n} | " + " | ".join(f"{c[k]} ({100 * c[k] / n:.0f} %)" for k in KINDS) + f" | {tail} |\n"
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "counts": {k: dict(v) for k, v in counts.items()},
                               "ap": {k: {"all": a, "perfect_30": c} for k, (a, c) in ap.items()}}, indent=2))
    out.with_suffix(".md").write_text(md)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
