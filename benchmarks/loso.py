"""Leave-one-source-out benchmark of the photometric teacher's confidence and of refinement.

Everything the teacher fits or chooses on data is judged here on a source that took no part in the
fit. The sources:

* **afss synth by domain**: ``clean``, ``earth``, ``harsh`` (each held out in turn);
* **afss synth by spacecraft family**: ``winged_box``, ``cylinder``, ``tango``, ``cubesat`` (the
  same tuned scenes, grouped by what is in them);
* **SPARK-2021 by spacecraft**: its 11 classes, each held out in turn (``--spark``);
* **render settings never tuned on**, only ever held out (never in any fit, including the shipped
  one): ``dim`` (new lighting: mostly back-lit, shadowed targets with almost no fill light) and
  ``sensor`` (a new sensor model: grey, heavy read and shot noise, strong and motion blur).

For each held-out source the confidence's logistic weights are fitted on every *other* source
(`fit_calibration`: afss synth and SPARK-2021 weigh the same, whatever their sizes), then the
source is labelled and refined with them. Printed per held-out source: Spearman(score, IoU), raw
AP, refined AP (each refinement variant, minus raw), and for the refined labels the fixed (score
>= 0.6), top-50 % and ``auto`` cuts: the share kept and the AP on the kept images (segm AP on
afss synth, bbox AP on SPARK-2021, which has boxes only). Confidence variants are cue subsets of
`afss.teachers.photometric.CONFIDENCE_CUES`; the summary shows each one's worst held-out source.

Usage::

    python scripts/spark2021.py <repository clone or git dir> data/spark2021
    .venv/bin/python benchmarks/loso.py --spark data/spark2021        # ~5 min on 2 cores
    .venv/bin/python benchmarks/loso.py --n 20 --spark none           # a quick look, synth only
    .venv/bin/python benchmarks/loso.py --fit --spark data/spark2021  # the weights to ship: fitted on
                                                                      # every tuned source

Writes ``runs/bench/loso.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import write_record

from afss.evaluate import evaluate
from afss.evaluate.preview import top1_iou
from afss.evaluate.score_quality import spearman
from afss.io.coco import read_coco
from afss.io.images import load_image
from afss.refine import RefineConfig, filter_labels, refine_labels
from afss.refine.filtering import AUTO_KEEP
from afss.synth.dataset import render_or_reuse
from afss.synth.domains import PRESETS
from afss.teachers.base import Teacher
from afss.teachers.photometric import CONFIDENCE_CUES, PhotometricTeacher
from afss.types import ImageLabels, Instance, LabelSet

TUNED = ("clean", "earth", "harsh")
NEVER_TUNED = {
    "dim": replace(PRESETS["clean"], name="dim", p_backlit=0.8, ambient=(0.0, 0.006), exposure_ev=(-1.2, 0.3),
                   p_earth=0.3, stars_per_10k_px=(2.0, 10.0)),
    "sensor": replace(PRESETS["earth"], name="sensor", p_earth=0.4, p_gray=1.0, noise_read=(0.02, 0.05),
                      noise_shot=(0.002, 0.006), blur_sigma=(1.0, 3.0), p_motion_blur=0.5),
}
CONFIDENCES = {
    "8 cues (shipped set)": CONFIDENCE_CUES[:8],
    "10 cues": CONFIDENCE_CUES,
    "46027f2 set": ("bias", "stability", "log(1+cnr)", "log(1+surround)", "border", "ambiguity", "solidity", "earth"),
    "stability+agreement": ("bias", "stability", "agreement"),
    "agreement only": ("bias", "agreement"),
    "4 cues": ("bias", "stability", "ambiguity", "agreement"),
    "5 cues": ("bias", "stability", "ambiguity", "agreement", "border"),
    "size only": ("bias", "log(area_frac)"),
    "size+agreement": ("bias", "agreement", "log(area_frac)"),
    "size+agreement+ambiguity": ("bias", "ambiguity", "agreement", "log(area_frac)"),
}
REFINES = {  # the first is the teacher's default (`PhotometricTeacher.refine_mask_fusion`); cuts are on its labels
    "vote": {"mask_fusion": "vote"},
    "segmenter+mask score": {"mask_fusion": "segmenter", "score_source": "mask"},
    "segmenter+mean score": {"mask_fusion": "segmenter", "score_source": "mean"},
}
SALIENT = {  # slow (the network on every fused box's crop): only when asked, --refines "vote,salient segmenter"
    "salient segmenter": {"mask_fusion": "segmenter", "score_source": "box"},
}
CUTS = (("score >= 0.6", {"min_score": 0.6}), ("top 50%", {"keep_top": 0.5}), ("auto", {"min_score": "auto"}))


@dataclass
class Analysed:
    """One image, analysed once by the default teacher: what any calibration's raw label is made of."""

    dataset: str  # "synth" or "spark"
    groups: dict[str, str]  # axis -> group
    gt: ImageLabels
    features: np.ndarray | None  # CONFIDENCE_CUES values of the top candidate, None: nothing found
    mask: Instance | None  # its mask (score to be set by a calibration)
    iou: float  # with the ground truth (mask IoU on synth, box IoU on SPARK); 0 when nothing found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="afss synth scenes per render setting (default 100)")
    ap.add_argument("--seed", type=int, default=2026, help="synth seed (tuning seeds are >= 1000 of mixed)")
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py, or none")
    ap.add_argument("--confidences", default=",".join(CONFIDENCES), help="comma list of the variants to compare")
    ap.add_argument("--refine-confidence", default="8 cues (shipped set)",
                    help="the confidence variant whose labels are refined and cut (refining is the slow part)")
    ap.add_argument("--refines", default=",".join(REFINES), help="comma list of refinement variants, or none")
    ap.add_argument("--tta", default="identity,vflip")
    ap.add_argument("--auto-keep-grid", default=None, metavar="U,U,...",
                    help="also cut with `auto` bounded to keep at most U of the images, for each U, and choose U "
                         "per held-out source on the others (the one meeting the auto cut's bar on most of them)")
    ap.add_argument("--fit", action="store_true", help="print the weights fitted on every tuned source and stop")
    ap.add_argument("--out", default="runs/bench/loso.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    images = _analyse(_sources(args))
    print(f"analysed {len(images)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.fit:
        cues = CONFIDENCES[args.refine_confidence]
        w = fit_calibration([im for im in images if im.groups.get("setting") in (*TUNED, None)], cues)
        print(f"{args.refine_confidence}: calibration = ({', '.join(f'{v:.3f}' for v in w)})")
        return 0
    folds = _folds(images)
    rows = []
    for axis, held, name in folds:
        fit_on = [im for im in images if im not in held and im.groups.get("setting") not in NEVER_TUNED]
        row = {"axis": axis, "source": name, "images": len(held), "confidences": {}}
        for conf in args.confidences.split(","):
            w = fit_calibration(fit_on, CONFIDENCES[conf])
            raw = _raw_labels(held, w)
            row["confidences"][conf] = {"spearman": _spearman(held, w), "raw_ap": _ap(held, raw)}
            if conf == args.refine_confidence and args.refines != "none":
                row["refined"] = _refined(held, raw, w, args)
        rows.append(row)
        _print_row(row, args.refine_confidence)
    loso_keep = (_loso_auto_keep(rows, args.refines.split(",")[0])
                 if args.auto_keep_grid and args.refines != "none" else None)
    if loso_keep:
        print(f"auto cut, its upper bound chosen per held-out source on the others: bar met on {loso_keep['met']}/"
              f"{loso_keep['sources']}; with one U for all: {loso_keep['met_by_u']}", file=sys.stderr)
    result = {"benchmark": "loso", "auto_keep": list(AUTO_KEEP), "auto_keep_loso": loso_keep, "n_per_setting": args.n, "seed": args.seed, "tta": args.tta,
              "refine_confidence": args.refine_confidence, "rows": rows, "summary": _summary(rows, args),
              "seconds": round(time.perf_counter() - t0, 1),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    write_record(args.out, result, _markdown(result))
    return 0


# -- the sources -------------------------------------------------------------------------------------


def _sources(args) -> list[LabelSet]:
    root = Path("runs/bench/loso_data")
    sets = []
    for name in (*TUNED, *NEVER_TUNED):
        gt = render_or_reuse(root / f"{name}_{args.seed}_{args.n}", n=args.n, size=512,
                             domain=NEVER_TUNED.get(name, name), seed=args.seed)
        sets.append(gt.replace(images=tuple(im.replace(meta={**im.meta, "setting": name}) for im in gt.images)))
    if args.spark != "none":
        sets.append(read_coco(Path(args.spark) / "gt.json"))
    return sets


def _analyse(sets: list[LabelSet]) -> list[Analysed]:
    teacher = PhotometricTeacher.build(threads=1)
    out = []
    for gt in sets:
        synth = "setting" in gt.images[0].meta
        for im in gt.images:
            found = teacher.confidence_inputs(load_image(gt.image_path(im)).rgb)
            groups = ({"setting": im.meta["setting"], "family": im.meta["family"]} if synth
                      else {"spacecraft": im.meta["class"]})
            full = im.replace(file_name=str(Path(gt.image_root).resolve() / im.file_name),  # one root for all
                              image_id=len(out) + 1)
            if found is None:
                out.append(Analysed("synth" if synth else "spark", groups, full, None, None, 0.0))
                continue
            mask = Instance.from_mask(found[0], score=0.0, source="photometric")
            out.append(Analysed("synth" if synth else "spark", groups, full, found[1], mask, top1_iou(im, mask) or 0.0))
    return out


def _folds(images: list[Analysed]) -> list[tuple[str, list[Analysed], str]]:
    folds = []
    tuned = [im for im in images if im.groups.get("setting") in TUNED]
    for d in TUNED:
        folds.append(("synth domain", [im for im in tuned if im.groups["setting"] == d], d))
    for f in sorted({im.groups["family"] for im in tuned}):
        folds.append(("synth family", [im for im in tuned if im.groups["family"] == f], f))
    for c in sorted({im.groups["spacecraft"] for im in images if "spacecraft" in im.groups}):
        folds.append(("SPARK-2021 spacecraft", [im for im in images if im.groups.get("spacecraft") == c], c))
    for s in NEVER_TUNED:
        folds.append(("never tuned on", [im for im in images if im.groups.get("setting") == s], s))
    return [f for f in folds if f[1]]


# -- the confidence ----------------------------------------------------------------------------------


def fit_calibration(images: list[Analysed], cues: tuple[str, ...], l2: float = 1e-2,
                    columns: tuple[str, ...] = CONFIDENCE_CUES) -> np.ndarray:
    """Logistic regression of the IoU (a soft target) on the chosen cues, by Newton's method, L2
    ``l2`` on every weight but the bias; afss synth and SPARK-2021 weigh the same whatever their
    sizes. ``columns`` names the features' layout. Returns the full-length weight vector (zeros for
    the cues left out)."""
    cols = [columns.index(c) for c in cues]
    data = []
    for ds in ("synth", "spark"):
        found = [im for im in images if im.dataset == ds and im.features is not None]
        if found:
            data.append((np.array([im.features[cols] for im in found]), np.array([im.iou for im in found])))
    full = np.zeros(len(columns))
    full[cols] = logistic_fit(data, l2)
    return full


def logistic_fit(data: list[tuple[np.ndarray, np.ndarray]], l2: float = 1e-2, steps: int = 60,
                 weights: list[float] | None = None) -> np.ndarray:
    """Weights ``w`` of ``sigmoid(x @ w)`` fitted to soft targets ``y`` in [0, 1] (the IoU), by Newton's
    method: every ``(x, y)`` set weighs the same whatever its size (or ``weights[k]`` of their sum);
    L2 ``l2`` on every weight but the first (the bias column). Small and exact enough not to need
    scikit-learn's weighted soft targets."""
    dim = data[0][0].shape[1]
    w = np.zeros(dim)
    reg = np.r_[0.0, np.full(dim - 1, l2)]
    share = np.full(len(data), 1 / len(data)) if weights is None else np.asarray(weights, float) / np.sum(weights)
    for _ in range(steps):
        grad, hess = reg * w, np.diag(reg)
        for (x, y), a in zip(data, share, strict=True):
            p = 1 / (1 + np.exp(-x @ w))
            grad = grad + a * x.T @ (p - y) / len(y)
            hess = hess + a * (x * (p * (1 - p))[:, None]).T @ x / len(y)
        w = w - np.linalg.solve(hess, grad)
    return w


def _score(im: Analysed, w: np.ndarray) -> float:
    z = float(im.features @ w)  # the sigmoid, without overflow for a fit that ran away on a tiny sample
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def _spearman(held: list[Analysed], w: np.ndarray) -> float:
    found = [im for im in held if im.features is not None]
    return spearman(np.array([_score(im, w) for im in found]), np.array([im.iou for im in found]))


def _raw_labels(held: list[Analysed], w: np.ndarray) -> LabelSet:
    """The label stage's output under calibration ``w`` (the top-1 mask, scored), without relabelling."""
    images = []
    for im in held:
        inst = () if im.mask is None else (replace(im.mask, score=_score(im, w)),)
        images.append(im.gt.replace(instances=inst, error=None if inst else "no detection"))
    return LabelSet(images=tuple(images), categories={1: "spacecraft"}, image_root="/")


def _gt(held: list[Analysed]) -> LabelSet:
    return LabelSet(images=tuple(im.gt for im in held), categories={1: "spacecraft"}, image_root="/")


def _ap(held: list[Analysed], pred: LabelSet, names: set[str] | None = None) -> float | None:
    gt = _gt(held)
    if names is not None:
        gt = gt.replace(images=tuple(im for im in gt.images if im.file_name in names))
        pred = pred.replace(images=tuple(im for im in pred.images if im.file_name in names))
    if not len(gt):
        return None
    iou = "segm" if held[0].dataset == "synth" else "bbox"
    return evaluate(gt, pred, iou_types=(iou,)).get("coco", iou).ap


# -- refinement and cuts -----------------------------------------------------------------------------


def _refined(held: list[Analysed], raw: LabelSet, w: np.ndarray, args) -> dict:
    teacher = PhotometricTeacher.build(calibration=tuple(w))
    out = {}
    for name in args.refines.split(","):
        refiner = _SalientSegmenter(teacher) if name in SALIENT else teacher
        refined, _ = refine_labels(refiner, _gt(held), labels=raw, views=args.tta,
                                   config=RefineConfig(min_score=0.0, **{**REFINES, **SALIENT}[name]))
        res = {"ap": _ap(held, refined), "cuts": {}}
        for cut, kw in CUTS:
            kept, _ = filter_labels(refined, **kw)
            names = {im.file_name for im in kept.images if im.instances}
            res["cuts"][cut] = {"kept": round(len(names) / len(held), 3), "ap_kept": _ap(held, kept, names)}
        res["ceiling"] = _ceiling(held, refined)
        res["perfect"] = _perfect(held, refined)
        if args.auto_keep_grid:
            res["auto_grid"] = _auto_grid(held, refined, args.auto_keep_grid)
        out[name] = res
    return out


def _auto_grid(held: list[Analysed], refined: LabelSet, grid: str) -> dict:
    """The `auto` cut with its upper bound on the share kept set to each U of ``grid`` (today's: 0.8)."""
    out = {}
    for u in (float(x) for x in grid.split(",")):
        kept, _ = filter_labels(refined, min_score="auto", auto_keep=(AUTO_KEEP[0], u))
        names = {im.file_name for im in kept.images if im.instances}
        out[f"{u:g}"] = {"kept": round(len(names) / len(held), 3), "ap_kept": _ap(held, kept, names)}
    return out


def _loso_auto_keep(rows: list[dict], refine: str) -> dict:
    """Per held-out source, the U chosen on the other sources (most of them meeting the bar; ties to the
    larger U, the nearer today's) and whether the held-out source meets it with that U."""
    def meets(r: dict, u: str) -> bool:
        res = r["refined"][refine]
        cut = res["auto_grid"][u]
        return meets_auto_bar(cut["kept"], cut["ap_kept"], res["ap"])

    grid = list(rows[0]["refined"][refine]["auto_grid"])
    chosen = {}
    for r in rows:
        others = [o for o in rows if o is not r]
        u = max(grid, key=lambda u: (sum(meets(o, u) for o in others), float(u)))
        chosen[f"{r['axis']}: {r['source']}"] = {"u": u, "met": meets(r, u)}
    return {"per_source": chosen, "met": sum(c["met"] for c in chosen.values()), "sources": len(rows),
            "met_by_u": {u: sum(meets(r, u) for r in rows) for u in grid}}


def _ceiling(held: list[Analysed], refined: LabelSet) -> dict:
    """What the best cut on this confidence could do, keeping >= 30 %: the top fraction (0.30, 0.35, ...,
    1.0) with the highest AP on the kept images, chosen *with* the ground truth. No label-free cut can
    beat it, so a source where it gains < 10 AP cannot meet the auto cut's bar with this confidence."""
    best = {"kept": None, "ap_kept": None}
    for frac in np.arange(0.30, 1.0001, 0.05):
        kept, _ = filter_labels(refined, keep_top=float(round(frac, 2)))
        names = {im.file_name for im in kept.images if im.instances}
        ap = _ap(held, kept, names)
        if ap is not None and (best["ap_kept"] is None or ap > best["ap_kept"]):
            best = {"kept": round(len(names) / len(held), 3), "ap_kept": ap}
    return best


def perfect_share(gt: LabelSet, labels: LabelSet, iou_type: str, share: float = 0.3) -> dict:
    """What a *perfect* confidence would reach with these labels: each label scored by its true IoU
    (`top1_iou`: mask IoU where the truth has masks, else box IoU, as the AP is scored), the best
    ``share`` of the images kept (ties at the cut too). Where even this gains < 10 AP, no
    confidence can meet the auto cut's bar there: the labels themselves are the limit (already near
    the top, or drawn to another extent). Also `benchmarks/box_extent.py`'s ceiling."""
    truth = {im.file_name: im for im in gt.images}
    oracle = labels.replace(images=tuple(
        im.replace(instances=tuple(i.replace(score=top1_iou(truth[im.file_name], i) or 0.0) for i in im.instances))
        for im in labels.images))
    kept, _ = filter_labels(oracle, keep_top=share)
    names = {im.file_name for im in kept.images if im.instances}
    if not names:
        return {"kept": 0.0, "ap_kept": None}
    scored = evaluate(gt.replace(images=tuple(im for im in gt.images if im.file_name in names)),
                      kept.replace(images=tuple(im for im in kept.images if im.file_name in names)),
                      iou_types=(iou_type,))
    return {"kept": round(len(names) / len(gt), 3), "ap_kept": scored.get("coco", iou_type).ap}


def _perfect(held: list[Analysed], refined: LabelSet) -> dict:
    return perfect_share(_gt(held), refined, "segm" if held[0].dataset == "synth" else "bbox")


class _SalientSegmenter(Teacher):
    """The photometric teacher's labels with the salient network as refinement's segmenter (the
    fused box's crop, `afss.teachers.salient`); the label's score stays the fused photometric one."""

    name = "photometric+salient-segmenter"

    def __init__(self, photometric: PhotometricTeacher) -> None:
        from afss.teachers import build_teacher

        self.photometric, self.salient = photometric, build_teacher("salient")
        self.options = {"photometric": photometric.options, "segmenter": "salient"}

    @property
    def can_segment_boxes(self) -> bool:
        return True

    def label(self, images, prompt: str = "spacecraft"):
        return self.photometric.label(images, prompt)

    def segment_boxes(self, image, boxes_xyxy):
        return self.salient.segment_boxes(image, boxes_xyxy)


# -- reporting ---------------------------------------------------------------------------------------


def _summary(rows: list[dict], args) -> dict:
    """Per variant: the worst held-out source, and how many sources meet the issue's bars."""
    conf = {}
    for name in args.confidences.split(","):
        sp = [r["confidences"][name]["spearman"] for r in rows]
        sp = [v for v in sp if not math.isnan(v)]
        conf[name] = {"min_spearman": round(min(sp), 3), "mean_spearman": round(float(np.mean(sp)), 3)}
    ref = {}
    for name in [] if args.refines == "none" else args.refines.split(","):
        deltas = [100 * (r["refined"][name]["ap"] - r["confidences"][args.refine_confidence]["raw_ap"]) for r in rows]
        auto_ok = sum(1 for r in rows if _auto_ok(r["refined"][name]))
        reachable = sum(1 for r in rows if _reachable(r["refined"][name]))
        ref[name] = {"min_delta": round(min(deltas), 2), "mean_delta": round(float(np.mean(deltas)), 2),
                     "sources_within_0.3": sum(d >= -0.3 for d in deltas), "auto_bar_met": auto_ok,
                     "bar_reachable_by_any_cut": reachable,
                     "bar_reachable_by_a_perfect_confidence": sum(1 for r in rows
                                                                  if _reachable(r["refined"][name], "perfect")),
                     "sources": len(rows)}
    return {"confidences": conf, "refines": ref}


def meets_auto_bar(kept: float, ap_kept: float | None, all_ap: float | None) -> bool:
    """The issue's bar for a cut: >= 30 % of the images kept, at >= 10 AP above all the labels."""
    return kept >= 0.3 and ap_kept is not None and all_ap is not None and ap_kept >= all_ap + 0.10


def _auto_ok(res: dict) -> bool:
    cut = res["cuts"]["auto"]
    return meets_auto_bar(cut["kept"], cut["ap_kept"], res["ap"])


def _reachable(res: dict, ceiling: str = "ceiling") -> bool:
    """Whether ``res[ceiling]`` (the best cut on the truth, or a perfect confidence's ``"perfect"``)
    keeps its images at >= 10 AP above all the labels."""
    best = res.get(ceiling) or {}
    return best.get("ap_kept") is not None and best["ap_kept"] >= res["ap"] + 0.10


def _pct(v) -> str:
    return "-" if v is None or math.isnan(v) else f"{100 * v:.1f}"


def _print_row(row: dict, refine_conf: str) -> None:
    c = row["confidences"][refine_conf]
    ref = " ".join(f"{k[:4]}:{_pct(v['ap'])}" for k, v in row.get("refined", {}).items())
    print(f"{row['axis']:>22} {row['source']:<24} n={row['images']:<4} rho={c['spearman']:.2f} "
          f"raw={_pct(c['raw_ap'])} {ref}", file=sys.stderr, flush=True)


def _ceiling_cell(res: dict, ceiling: str = "ceiling") -> str:
    """A ceiling's AP on its kept images (and, for the best cut, the share it keeps)."""
    best = res.get(ceiling) or {}
    if best.get("ap_kept") is None:
        return "-"
    share = f"{100 * best['kept']:.0f}%, " if ceiling == "ceiling" else ""
    return f"{share}{_pct(best['ap_kept'])}" + (" (≥ +10)" if _reachable(res, ceiling) else "")


def _markdown(result: dict) -> str:
    rc = result["refine_confidence"]
    confs = list(result["summary"]["confidences"])
    refines = list(result["summary"]["refines"])
    rows = result["rows"]
    lines = [("Each row's source is held out: the confidence is refitted on every other tuned source. "
              "AP = segm AP on afss synth, bbox AP on SPARK-2021. Spearman(score, IoU) / raw AP:"), "",
             "| held out | images | " + " | ".join(confs) + " |", "|---|---|" + "---|" * len(confs)]
    for r in rows:
        cells = [f"{r['confidences'][c]['spearman']:.2f} / {_pct(r['confidences'][c]['raw_ap'])}" for c in confs]
        lines.append(f"| {r['axis']}: {r['source']} | {r['images']} | " + " | ".join(cells) + " |")
    lines += ["", "| confidence | worst Spearman | mean Spearman | raw AP: worst Δ against the first |",
              "|---|---|---|---|"]
    for name in confs:
        s = result["summary"]["confidences"][name]
        d = [100 * (r["confidences"][name]["raw_ap"] - r["confidences"][confs[0]]["raw_ap"]) for r in rows]
        lines.append(f"| {name} | {s['min_spearman']:.2f} | {s['mean_spearman']:.2f} | {min(d):+.1f} |")
    if not refines:
        return "\n".join(lines) + "\n"
    lines += ["", (f"Refinement (`{result['tta']}`) and cuts, with the confidence `{rc}` refitted per held-out "
                   f"source; cuts on the labels refined by `{refines[0]}`, AP on the kept images:"), "",
              "| held out | raw AP | " + " | ".join(f"{k} (Δ)" for k in refines)
              + " | ≥ 0.6: kept, AP | top 50 %: AP | auto: kept, AP | best cut keeping ≥ 30 % (chosen on the truth) "
              "| a perfect confidence's 30 % |",
              "|---|---|" + "---|" * len(refines) + "---|---|---|---|---|"]
    for r in rows:
        raw = r["confidences"][rc]["raw_ap"]
        cells = [f"{_pct(r['refined'][k]['ap'])} ({100 * (r['refined'][k]['ap'] - raw):+.1f})" for k in refines]
        cuts = r["refined"][refines[0]]["cuts"]
        lines.append(f"| {r['axis']}: {r['source']} | {_pct(raw)} | " + " | ".join(cells)
                     + f" | {100 * cuts['score >= 0.6']['kept']:.0f}%, {_pct(cuts['score >= 0.6']['ap_kept'])} | "
                     f"{_pct(cuts['top 50%']['ap_kept'])} | {100 * cuts['auto']['kept']:.0f}%, "
                     f"{_pct(cuts['auto']['ap_kept'])} | {_ceiling_cell(r['refined'][refines[0]])} | "
                     f"{_ceiling_cell(r['refined'][refines[0]], 'perfect')} |")
    lines += ["", ("| refinement | worst Δ AP | mean Δ AP | sources within −0.3 | auto cut: ≥ 30 % kept at ≥ all "
                   "+ 10 | any cut could (chosen on the truth) | a perfect confidence could |"), "|---|---|---|---|---|---|---|"]
    for name, s in result["summary"]["refines"].items():
        lines.append(f"| {name} | {s['min_delta']:+.1f} | {s['mean_delta']:+.1f} | {s['sources_within_0.3']}/"
                     f"{s['sources']} | {s['auto_bar_met']}/{s['sources']} | "
                     f"{s.get('bar_reachable_by_any_cut', '-')}/{s['sources']} | "
                     f"{s.get('bar_reachable_by_a_perfect_confidence', '-')}/{s['sources']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
