"""The salient teacher (ISNet) against the photometric teacher on `afss synth` scenes.

Runs the network once per image and keeps its probability maps (``--work``), so the post-processing
choices (``threshold``, ``merge``, ``score``) and the combined teacher are compared on the same
maps without running the network again. Prints per variant: segm / bbox AP (COCO protocol), the
Spearman rank correlation between each image's top-1 score and its mask IoU, and the network's
speed (images/s, with the thread count; the first image's warm-up excluded).

    afss synth --n 60 --size 512 --seed 11 --domain mixed --out /tmp/sal/synth_mixed_11
    afss models fetch isnet
    .venv/bin/python benchmarks/salient_teacher.py --gt /tmp/sal/synth_mixed_11/gt.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from afss.evaluate import evaluate
from afss.io.coco import read_coco
from afss.teachers import build_teacher
from afss.teachers.photometric import PhotometricTeacher
from afss.teachers.salient import SalientConfig, SalientTeacher
from afss.types import ImageLabels, Instance, LabelSet


def spearman(x: list[float], y: list[float]) -> float:
    if len(x) < 3:
        return float("nan")
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def probabilities(teacher: SalientTeacher, gt: LabelSet, work: Path) -> tuple[dict[str, np.ndarray], float]:
    """The network's map of every image (cached as uint8 PNGs in ``work``) and its images/s."""
    work.mkdir(parents=True, exist_ok=True)
    out, times = {}, []
    for im in gt.images:
        cached = work / (Path(im.file_name).stem + ".png")
        if cached.is_file():
            out[im.file_name] = cv2.imread(str(cached), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535.0
            continue
        rgb = cv2.imread(str(Path(gt.image_root) / im.file_name))[..., ::-1]
        t0 = time.perf_counter()
        prob = teacher.probability(np.ascontiguousarray(rgb))
        times.append(time.perf_counter() - t0)
        cv2.imwrite(str(cached), np.round(prob * 65535).astype(np.uint16))
        out[im.file_name] = prob
        print(f"  {im.file_name}: {times[-1]:.2f} s", file=sys.stderr)
    speed = (len(times) - 1) / sum(times[1:]) if len(times) > 2 else float("nan")
    return out, speed


def labels_of(gt: LabelSet, per_image: dict[str, list[Instance]]) -> LabelSet:
    images = [ImageLabels(file_name=im.file_name, image_id=im.image_id, height=im.height, width=im.width,
                          instances=tuple(per_image.get(im.file_name, ()))) for im in gt.images]
    return LabelSet(images=images, categories=gt.categories)


def score_table(name: str, gt: LabelSet, pred: LabelSet) -> dict:
    m = evaluate(gt, pred, iou_types=("segm", "bbox"), protocols=("coco",))
    gts = {im.file_name: im for im in gt.images}
    scores, ious = [], []
    for im in pred.images:
        g = gts[im.file_name].instances[0].mask
        if im.instances:
            scores.append(im.instances[0].score)
            ious.append(mask_iou(im.instances[0].mask, g))
    row = {"name": name, "segm_ap": m.get("coco", "segm").ap or 0.0, "bbox_ap": m.get("coco", "bbox").ap or 0.0,
           "spearman": spearman(scores, ious), "mean_iou": float(np.mean(ious)) if ious else 0.0,
           "labelled": len(ious)}
    print(f"{name:<34} segm AP {100 * row['segm_ap']:5.1f}  bbox AP {100 * row['bbox_ap']:5.1f}  "
          f"mean IoU {row['mean_iou']:.3f}  Spearman(score, IoU) {row['spearman']:+.3f}  labelled {row['labelled']}")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", required=True, help="afss synth gt.json")
    ap.add_argument("--model", default="isnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=None, help="probability maps cache (default: <gt folder>/salient_probs)")
    ap.add_argument("--out", default=None, help="JSON of the rows")
    args = ap.parse_args(argv)
    gt = read_coco(args.gt)
    work = Path(args.work) if args.work else Path(args.gt).parent / f"salient_probs_{Path(args.model).stem}"
    teacher = build_teacher("salient", model=args.model, threads=args.threads)
    probs, speed = probabilities(teacher, gt, work)
    print(f"ISNet: {speed:.2f} images/s at {teacher.input_size}² with {args.threads} onnxruntime thread(s)")
    photo = PhotometricTeacher.build(threads=1)
    images = {im.file_name: np.ascontiguousarray(cv2.imread(str(Path(gt.image_root) / im.file_name))[..., ::-1])
              for im in gt.images}
    t0 = time.perf_counter()
    photo_labels = {f: photo.label([rgb])[0] for f, rgb in images.items()}
    photo_speed = len(images) / (time.perf_counter() - t0)
    print(f"photometric: {photo_speed:.1f} images/s (1 thread, {gt.images[0].height}²)")
    rows = [score_table("photometric", gt, labels_of(gt, photo_labels))]
    variants = {"salient (defaults)": {}, "salient score=mean_prob": {"score": "mean_prob"},
                "salient score=product": {"score": "product"}, "salient merge=false": {"merge": False},
                "salient threshold=0.3": {"threshold": 0.3}}
    by_variant = {}
    for name, opts in variants.items():
        t = SalientTeacher(SalientConfig(model=args.model, **opts), teacher.session, teacher.input_size)
        per = {}
        for f, prob in probs.items():
            found = t._instances(prob, merge=t.config.merge)[:1]
            per[f] = [Instance.from_mask(m, score=s, source="salient", scores=c) for m, s, c in found]
        rows.append(score_table(name, gt, labels_of(gt, per)))
        by_variant[name] = per
    for variant in ("salient (defaults)", "salient score=mean_prob"):
        for name, rule in COMBINED.items():
            per = {f: rule(photo_labels[f], by_variant[variant][f], probs[f]) for f in probs}
            rows.append(score_table(f"{name} [{variant.split()[-1]}]", gt, labels_of(gt, per)))
    if args.out:
        Path(args.out).write_text(json.dumps({"speed_isnet": speed, "speed_photometric": photo_speed, "rows": rows},
                                             indent=2))
    return 0


def _agree(p: list[Instance], s: list[Instance]) -> float:
    if not p or not s:
        return 0.0
    return mask_iou(p[0].mask, s[0].mask)


def combine_best_score(p, s, prob):
    """Whichever teacher's top-1 scores higher (scores are both roughly IoU estimates)."""
    cands = [*p[:1], *s[:1]]
    return [max(cands, key=lambda i: i.score)] if cands else []


def combine_agreement(p, s, prob):
    """Salient mask when the two agree (mask IoU >= 0.5); otherwise the more confident, its score
    multiplied by 0.5 (disagreement is doubt); the score when they agree is their mean, raised by
    the agreement."""
    if not p or not s:
        one = [*p[:1], *s[:1]]
        return [Instance(box_xyxy=i.box_xyxy, rle=i.rle, score=0.5 * i.score, source=i.source) for i in one]
    a = _agree(p, s)
    if a >= 0.5:
        best = s[0]
        return [Instance(box_xyxy=best.box_xyxy, rle=best.rle, score=(0.5 + 0.5 * a) * 0.5 * (p[0].score + s[0].score),
                         source="combined")]
    best = max((p[0], s[0]), key=lambda i: i.score)
    return [Instance(box_xyxy=best.box_xyxy, rle=best.rle, score=0.5 * best.score * (1 - a), source="combined")]


def combine_salient_in_photo_box(p, s, prob):
    """The salient probability inside the photometric box (grown 10 %), else the salient label."""
    if not p:
        return s[:1]
    h, w = prob.shape
    x0, y0, x1, y1 = p[0].box_xyxy
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    box = np.zeros((h, w), bool)
    box[max(0, int(y0 - my)):min(h, int(np.ceil(y1 + my))), max(0, int(x0 - mx)):min(w, int(np.ceil(x1 + mx)))] = True
    mask = (prob > 0.5) & box
    if mask.sum() < 0.3 * p[0].mask.sum():
        return p[:1]
    a = mask_iou(mask, p[0].mask)
    return [Instance.from_mask(mask, score=float(prob[mask].mean()) * (0.5 + 0.5 * a), source="combined")]


COMBINED = {"combined: best score": combine_best_score, "combined: agreement": combine_agreement,
            "combined: salient in photometric box": combine_salient_in_photo_box}

if __name__ == "__main__":
    sys.exit(main())
