"""The combined teacher (photometric + the salient network) on the leave-one-source-out sources.

Nothing here is fitted: the combined teacher's rule was chosen on other scenes (afss synth seed 11,
`benchmarks/salient_teacher.py`) and every option is the default. For each held-out source of
``benchmarks/loso.py`` (afss synth domains and families, the two render settings never tuned on, and
a sample of every SPARK-2021 spacecraft) it prints: raw AP of the photometric and the combined
teacher, the combined teacher's refined AP (``identity,vflip``, its default mask fusion, no cut) and
its change, and the share kept and AP on the kept images for the ≥ 0.6, top-50 % and ``auto`` cuts.
AP = segm AP on afss synth, bbox AP on SPARK-2021 (boxes only).

    afss models fetch isnet
    .venv/bin/python benchmarks/combined_held_out.py --n 30 --spark data/spark2021 --spark-per 10

The network runs twice per image (each view); ``--threads`` is its onnxruntime thread count.
Writes ``benchmarks/results/combined_held_out.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from loso import CUTS, NEVER_TUNED, TUNED

from afss.evaluate import evaluate
from afss.io.coco import read_coco
from afss.io.outputs import read_finished
from afss.label import label_images
from afss.refine import RefineConfig, filter_labels, refine_labels
from afss.synth.dataset import render_or_reuse
from afss.teachers import build_teacher
from afss.teachers.base import Teacher, teacher_provenance
from afss.teachers.combined import RULES, CombinedConfig, CombinedTeacher
from afss.types import Instance, LabelSet


def add_source_arguments(ap: argparse.ArgumentParser, *, n: int, spark_per: int, threads: int) -> None:
    """The arguments `_sources` reads (the sample of every held-out source), and the network's threads."""
    ap.add_argument("--n", type=int, default=n, help="afss synth scenes per render setting")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py, or none")
    ap.add_argument("--spark-per", type=int, default=spark_per, help="frames per SPARK-2021 spacecraft")
    ap.add_argument("--spark-skip", type=int, default=0, metavar="N",
                    help="a fresh sample: leave out the N frames per spacecraft that --spark-per N takes")
    ap.add_argument("--threads", type=int, default=threads, help="the salient network's onnxruntime threads")


def _sources(args) -> list[tuple[str, LabelSet, str]]:
    """(name, ground truth, iou type) of every held-out source; synth families span the domains' scenes."""
    scenes = {}
    for name in (*TUNED, *NEVER_TUNED):
        gt = render_or_reuse(ROOT / "runs" / "bench" / "loso_data" / f"{name}_{args.seed}_{args.n}", n=args.n,
                             size=512, domain=NEVER_TUNED.get(name, name), seed=args.seed)
        scenes[name] = gt
    out = [(f"synth domain: {d}", scenes[d], "segm") for d in TUNED]
    tuned = [(d, im) for d in TUNED for im in scenes[d].images]
    for family in sorted({im.meta["family"] for _, im in tuned}):
        out.append((f"synth family: {family}", [(d, im) for d, im in tuned if im.meta["family"] == family], "segm"))
    out += [(f"never tuned on: {d}", scenes[d], "segm") for d in NEVER_TUNED]
    if args.spark != "none":
        spark = read_coco(Path(args.spark) / "gt.json")
        rng, fresh = np.random.default_rng(0), np.random.default_rng(1)
        skip = args.spark_skip  # > 0: a fresh sample, outside the frames --spark-per SKIP takes
        for cls in sorted({im.meta["class"] for im in spark.images}):
            ims = [im for im in spark.images if im.meta["class"] == cls]
            if skip:
                taken = set(rng.choice(len(ims), size=min(skip, len(ims)), replace=False).tolist())
                rest = [k for k in range(len(ims)) if k not in taken]
                pick = sorted(fresh.choice(rest, size=min(args.spark_per, len(rest)), replace=False).tolist())
            else:
                pick = sorted(rng.choice(len(ims), size=min(args.spark_per, len(ims)), replace=False))
            out.append((f"SPARK-2021 spacecraft: {cls}", spark.replace(images=tuple(ims[i] for i in pick)), "bbox"))
    return [(name, gt if isinstance(gt, LabelSet) else _joined(gt, scenes), iou) for name, gt, iou in out]


def _joined(pairs, scenes) -> LabelSet:
    """Images of several synth folders as one set with absolute file names."""
    first = scenes[pairs[0][0]]
    return first.replace(image_root="/", images=tuple(
        im.replace(file_name=str(Path(scenes[d].image_root).resolve() / im.file_name), image_id=k)
        for k, (d, im) in enumerate(pairs, start=1)))


def _absolute(gt: LabelSet) -> LabelSet:
    """The same images with absolute file names under root ``/`` (one key per image across sources)."""
    root = Path(gt.image_root).resolve()
    return gt.replace(image_root="/", images=tuple(im.replace(file_name=str(root / im.file_name)) for im in gt.images))


def _ap(gt: LabelSet, pred: LabelSet, iou: str, names: set[str] | None = None) -> float | None:
    if names is not None:
        gt = gt.replace(images=tuple(im for im in gt.images if im.file_name in names))
        pred = pred.replace(images=tuple(im for im in pred.images if im.file_name in names))
    if not len(gt):
        return None
    return evaluate(gt, pred, iou_types=(iou,)).get("coco", iou).ap


class _Remembered(Teacher):
    """A member whose labels are kept on disk by image content, so that every rule compared reuses one
    run of the network per image and view."""

    def __init__(self, inner: Teacher, path: Path) -> None:
        self.inner, self.path, self.name = inner, path, inner.name
        self.memo: dict[str, list[dict]] = pickle.loads(path.read_bytes()) if path.exists() else {}

    def label(self, images, prompt="spacecraft"):
        # the pixels, their layout, the prompt and the network's options: another setting is another label
        setting = f"{prompt}|{json.dumps(teacher_provenance(self.inner), sort_keys=True, default=str)}"
        keys = [hashlib.sha1(f"{im.shape}|{im.dtype}|{setting}".encode() + np.ascontiguousarray(im).tobytes()).hexdigest()
                for im in images]
        todo = [k for k, key in enumerate(keys) if key not in self.memo]
        if todo:
            for k, found in zip(todo, self.inner.label([images[k] for k in todo], prompt)):
                # plain dicts: an Instance's read-only mappings do not pickle
                self.memo[keys[k]] = [{**vars(i), "scores": dict(i.scores), "parts": dict(i.parts)} for i in found]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(self.memo))
            tmp.replace(self.path)
        return [[Instance(**i) for i in self.memo[key]] for key in keys]

    @property
    def options(self):
        return teacher_provenance(self.inner)["options"]

    @property
    def can_segment_boxes(self) -> bool:
        return self.inner.can_segment_boxes

    @property
    def refine_mask_fusion(self) -> str:
        return self.inner.refine_mask_fusion

    def segment_boxes(self, image, boxes_xyxy):
        return self.inner.segment_boxes(image, boxes_xyxy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(ap, n=30, spark_per=10, threads=1)
    ap.add_argument("--tta", default="identity,vflip")
    ap.add_argument("--rule", default="best_score", choices=RULES, help="the combined teacher's rule")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench" / "combined_held_out"),
                    help="where each source's labels are kept")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "combined_held_out.json"))
    args = ap.parse_args(argv)
    photometric = build_teacher("photometric")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    # the network's labels of every image and view are kept in --work/salient.pkl: each rule reuses them
    salient = _Remembered(build_teacher("salient", threads=args.threads), work / "salient.pkl")
    combined = CombinedTeacher(CombinedConfig(rule=args.rule), [photometric, salient])
    if args.rule != "best_score":
        work = work / args.rule
        work.mkdir(exist_ok=True)
    rows = []
    t_start = time.perf_counter()
    done: dict[str, tuple] = {}  # file name -> (photometric, combined, refined, photometric refined): families reuse them
    for name, gt, iou in _sources(args):
        gt = _absolute(gt)
        todo = gt.replace(images=tuple(im.replace(instances=()) for im in gt.images if im.file_name not in done))
        if len(todo):  # kept in --work: a rerun (or a crash) does not run the network again
            slug = name.replace(": ", "_").replace(" ", "_")
            raw_c = (read_finished(work / f"{slug}.combined.json", "label")
                     or label_images(combined, todo, out=work / f"{slug}.combined.json"))
            refined = read_finished(work / f"{slug}.refined.json", "refine") or refine_labels(
                combined, todo, labels=raw_c, views=args.tta, config=RefineConfig(min_score=0.0),
                out=work / f"{slug}.refined.json")[0]
            raw_p = label_images(photometric, todo)
            refined_p = refine_labels(photometric, todo, labels=raw_p, views=args.tta, config=RefineConfig(min_score=0.0))[0]
            for four in zip(raw_p.images, raw_c.images, refined.images, refined_p.images, strict=True):
                done[four[0].file_name] = four
        raw_p, raw_c, refined, refined_p = (gt.replace(images=tuple(done[im.file_name][k].replace(image_id=im.image_id)
                                                                    for im in gt.images)) for k in range(4))
        row = {"source": name, "images": len(gt), "photometric": _ap(gt, raw_p, iou), "combined": _ap(gt, raw_c, iou),
               "refined": _ap(gt, refined, iou), "salient_won": sum(
                   1 for im in raw_c.images if im.instances and im.instances[0].source == "salient"), "cuts": {},
               "photometric_refined": _ap(gt, refined_p, iou), "photometric_cuts": {}}
        for cut, kw in CUTS:
            for key, labels in (("cuts", refined), ("photometric_cuts", refined_p)):
                kept, _ = filter_labels(labels, **kw)
                names = {im.file_name for im in kept.images if im.instances}
                row[key][cut] = {"kept": round(len(names) / len(gt), 3), "ap_kept": _ap(gt, kept, iou, names)}
        rows.append(row)
        print(_line(row), flush=True)
    print(f"{time.perf_counter() - t_start:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    out.with_suffix(".md").write_text(_markdown(rows))
    print(f"-> {out}")
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _line(r: dict) -> str:
    cuts = ", ".join(f"{c} {100 * x['kept']:.0f}% {_pct(x['ap_kept'])}" for c, x in r["cuts"].items())
    delta = "-" if r["refined"] is None else f"{100 * (r['refined'] - r['combined']):+.1f}"
    return (f"{r['source']:<40} n {r['images']:>3}  photometric {_pct(r['photometric']):>5}  combined "
            f"{_pct(r['combined']):>5} (salient won {r['salient_won']})  refined {_pct(r['refined']):>5} ({delta})  "
            f"{cuts}")


def _markdown(rows: list[dict]) -> str:
    head = ("| held out | images | photometric raw AP | combined raw AP (salient's label) | combined refined (Δ) "
            "| ≥ 0.6: kept, AP | top 50 %: AP | auto: kept, AP |\n|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        c = r["cuts"]
        body += (f"| {r['source']} | {r['images']} | {_pct(r['photometric'])} | {_pct(r['combined'])} "
                 f"({r['salient_won']}) | {_pct(r['refined'])} ({100 * (r['refined'] - r['combined']):+.1f}) | "
                 f"{100 * c['score >= 0.6']['kept']:.0f}%, {_pct(c['score >= 0.6']['ap_kept'])} | "
                 f"{_pct(c['top 50%']['ap_kept'])} | {100 * c['auto']['kept']:.0f}%, {_pct(c['auto']['ap_kept'])} |\n")
    return head + body


if __name__ == "__main__":
    raise SystemExit(main())
