"""What the confidence is fitted *for*, leave-one-source-out: the IoU itself, or the ranking within a source.

The photometric teacher's confidence is a logistic function of its eight cues fitted to the labels'
IoU, afss synth and SPARK-2021 weighing the same (`benchmarks/loso.py`'s `fit_calibration`, the
shipped fit). An `auto` cut, though, only needs the labels of *one* set ranked: a fit to the IoU
also spends its weights on telling sources apart (SPARK-2021's spacecraft differ in label quality:
raw bbox AP 39.2 on cheops, 5.9 on debris, `loso.md`). This script fits the same eight cues four ways,
on the same folds as `loso.py` (each afss synth domain and family, each SPARK-2021 spacecraft and the
two render settings never tuned on held out in turn; the never-tuned settings in no fit), and
reports per held-out source Spearman(score, IoU), raw AP, the `auto` cut (kept share, AP on the
kept images) and the best cut keeping >= 30 % chosen with the truth:

* ``IoU (shipped)``: logistic regression of the IoU, the two datasets weighing the same;
* ``IoU, groups equal``: the same, every group (a synth setting, a SPARK-2021 spacecraft) weighing
  the same within its dataset;
* ``pairs within groups``: a pairwise logistic ranking, P(label i has the higher IoU than label j)
  for pairs of one group whose IoUs differ by more than 0.05, groups equal within a dataset and
  datasets equal; then one slope and bias map the ranking onto the IoU (so a fixed cut still means
  an IoU);
* ``half IoU, half pairs``: both losses, each half the weight.

The cuts here are on the raw labels: refinement (``identity,vflip``, votes) moves AP by at most
0.11 on these sources (`loso.py`), so this costs a minute rather than five. AP = segm AP on afss
synth, bbox AP on SPARK-2021.

    .venv/bin/python benchmarks/fit_objective.py --spark data/spark2021      # ~1 min on 2 cores

Writes ``runs/bench/fit_objective.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loso import (
    CONFIDENCE_CUES,
    CONFIDENCES,
    NEVER_TUNED,
    Analysed,
    _analyse,
    _ap,
    _ceiling,
    _folds,
    _raw_labels,
    _sources,
    _spearman,
    fit_calibration,
    logistic_fit,
    meets_auto_bar,
)
from records import write_record

from afss.refine import filter_labels

CUES = CONFIDENCES["8 cues (shipped set)"]
PAIR_GAP = 0.05  # pairs closer in IoU than this say little about which is better


def _groups(images: list[Analysed]) -> dict[tuple[str, str], list[Analysed]]:
    """The fit's images by (dataset, group): a synth setting or a SPARK-2021 spacecraft."""
    out: dict[tuple[str, str], list[Analysed]] = {}
    for im in images:
        if im.features is not None:
            out.setdefault((im.dataset, im.groups.get("spacecraft") or im.groups["setting"]), []).append(im)
    return out


def _group_shares(keys, total: float = 1.0) -> list[float]:
    """``total`` split between the datasets equally, and within a dataset between its groups equally."""
    datasets = {d for d, _ in keys}
    per = {d: sum(1 for k in keys if k[0] == d) for d in datasets}
    return [total / len(datasets) / per[d] for d, _ in keys]


def _xy(images: list[Analysed], cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([im.features[cols] for im in images]), np.array([im.iou for im in images])


def _pairs(images: list[Analysed], cols: list[int], bias: float) -> tuple[np.ndarray, np.ndarray]:
    """Differences of the cues of every pair of one group whose IoUs differ by more than `PAIR_GAP`, in
    both orders (so the fit is symmetric), target 1 where the first has the higher IoU. The bias column
    holds ``bias``: 1 for a ranking alone (its weight then stays 0), 0 beside the IoU's own rows."""
    x, y = _xy(images, cols)
    i, j = np.triu_indices(len(images), 1)
    far = np.abs(y[i] - y[j]) > PAIR_GAP
    d = x[i[far]] - x[j[far]]
    t = (y[i[far]] > y[j[far]]).astype(float)
    d, t = np.r_[d, -d], np.r_[t, 1 - t]
    d[:, 0] = bias
    return d, t


def fit_groups_equal(images: list[Analysed], cues=CUES, l2: float = 1e-2) -> np.ndarray:
    """Logistic regression of the IoU, each group weighing the same within its dataset, datasets the same."""
    cols = [CONFIDENCE_CUES.index(c) for c in cues]
    groups = _groups(images)
    full = np.zeros(len(CONFIDENCE_CUES))
    full[cols] = logistic_fit([_xy(g, cols) for g in groups.values()], l2, weights=_group_shares(list(groups)))
    return full


def fit_within(images: list[Analysed], cues=CUES, l2: float = 1e-2, iou_share: float = 0.0) -> np.ndarray:
    """The cues' weights from the ranking within groups (``iou_share`` of the weight on the IoU itself,
    datasets equal), then one slope and bias that map the ranking onto the IoU."""
    cols = [CONFIDENCE_CUES.index(c) for c in cues]
    groups = _groups(images)
    data = [_pairs(g, cols, bias=0.0 if iou_share else 1.0) for g in groups.values()]
    shares = _group_shares(list(groups), 1.0 - iou_share)
    if iou_share:
        datasets = sorted({d for d, _ in groups})
        data += [_xy([im for (d, _), g in groups.items() if d == ds for im in g], cols) for ds in datasets]
        shares += [iou_share / len(datasets)] * len(datasets)
    kept = [(d, a) for d, a in zip(data, shares, strict=True) if len(d[1])]  # a group with no pair says nothing
    w = logistic_fit([d for d, _ in kept], l2, weights=[a for _, a in kept])
    w[0] = 0.0  # the ranking says nothing about the level: the calibration below sets it
    datasets = sorted({d for d, _ in groups})
    ranked = [_xy([im for (d, _), g in groups.items() if d == ds for im in g], cols) for ds in datasets]
    a_b = logistic_fit([(np.c_[np.ones(len(y)), x @ w], y) for x, y in ranked], l2=0.0)
    full = np.zeros(len(CONFIDENCE_CUES))
    full[cols] = a_b[1] * w
    full[cols[0]] += a_b[0]
    return full


OBJECTIVES: dict[str, Callable[[list[Analysed]], np.ndarray]] = {
    "IoU (shipped)": lambda images: fit_calibration(images, CUES),
    "IoU, groups equal": fit_groups_equal,
    "pairs within groups": fit_within,
    "half IoU, half pairs": lambda images: fit_within(images, iou_share=0.5),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="afss synth scenes per render setting (default 100)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py, or none")
    ap.add_argument("--out", default="runs/bench/fit_objective.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    images = _analyse(_sources(args))
    rows = []
    for axis, held, name in _folds(images):
        fit_on = [im for im in images if im not in held and im.groups.get("setting") not in NEVER_TUNED]
        row = {"axis": axis, "source": name, "images": len(held), "objectives": {}}
        for objective, fit in OBJECTIVES.items():
            row["objectives"][objective] = judge(held, fit(fit_on))
        rows.append(row)
        print(_line(row), flush=True)
    result = {"benchmark": "fit_objective", "n_per_setting": args.n, "seed": args.seed, "cues": list(CUES),
              "pair_gap": PAIR_GAP, "rows": rows, "summary": _summary(rows),
              "seconds": round(time.perf_counter() - t0, 1)}
    write_record(args.out, result, _markdown(result))
    return 0


def judge(held: list[Analysed], w: np.ndarray) -> dict:
    """Calibration ``w`` on the held-out images: Spearman(score, IoU), raw AP, the `auto` cut of the raw
    labels (kept share, AP on the kept, the bar) and the best cut chosen on the truth."""
    raw = _raw_labels(held, w)
    all_ap = _ap(held, raw)
    kept, _ = filter_labels(raw, min_score="auto")
    names = {im.file_name for im in kept.images if im.instances}
    kept_ap = _ap(held, kept, names)
    share = len(names) / len(held)
    return {"spearman": _spearman(held, w), "raw_ap": all_ap,
            "auto": {"kept": round(share, 3), "ap_kept": kept_ap, "bar": meets_auto_bar(share, kept_ap, all_ap)},
            "ceiling": _ceiling(held, raw)}


def _summary(rows: list[dict]) -> dict:
    """Per fit (the rows' order; the first is the one the others are compared with): mean and worst
    Spearman, worst raw AP against the first, and the sources meeting the `auto` bar."""
    names = list(rows[0]["objectives"])
    first = names[0]
    out = {}
    for objective in names:
        res = [r["objectives"][objective] for r in rows]
        sp = [x["spearman"] for x in res if x["spearman"] is not None]
        delta = [x["raw_ap"] - r["objectives"][first]["raw_ap"] for x, r in zip(res, rows)
                 if x["raw_ap"] is not None and r["objectives"][first]["raw_ap"] is not None]
        out[objective] = {"mean_spearman": round(float(np.mean(sp)), 3) if sp else None,
                          "worst_spearman": round(float(min(sp)), 3) if sp else None,
                          "worst_raw_ap_delta": round(float(min(delta)), 4) if delta else None,
                          "auto_bar": sum(x["auto"]["bar"] for x in res), "sources": len(rows)}
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _cell(x: dict) -> str:
    auto = x["auto"]
    spearman = "-" if x["spearman"] is None else f"{x['spearman']:.2f}"
    return (f"{spearman} / {_pct(x['raw_ap'])} / "
            f"{100 * auto['kept']:.0f}%, {_pct(auto['ap_kept'])}{' ✓' if auto['bar'] else ''} / "
            f"{_pct(x['ceiling']['ap_kept'])}")


def _line(row: dict) -> str:
    return f"{row['axis']}: {row['source']:<26} " + " | ".join(
        f"{k}: {_cell(x)}" for k, x in row["objectives"].items())


def _markdown(result: dict) -> str:
    names = list(result["rows"][0]["objectives"])
    lines = [("Each cell: Spearman(score, IoU) / raw AP / `auto` cut on the raw labels: kept, AP on the kept "
             "(✓: ≥ 30 % kept at ≥ all + 10) / the best cut keeping ≥ 30 % (chosen on the truth). "
             "AP = segm AP on afss synth, bbox AP on SPARK-2021."), "",
             "| held out | images | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in result["rows"]:
        lines.append(f"| {r['axis']}: {r['source']} | {r['images']} | "
                     + " | ".join(_cell(r["objectives"][k]) for k in names) + " |")
    lines += ["", ("| fitted for | mean Spearman | worst Spearman | raw AP: worst Δ against the shipped fit "
              "| `auto` cut: ≥ 30 % kept at ≥ all + 10 |"), "|---|---|---|---|---|"]
    for k, s in result["summary"].items():
        lines.append(f"| {k} | {s['mean_spearman']:.3f} | {s['worst_spearman']:.2f} | "
                     f"{100 * s['worst_raw_ap_delta']:+.1f} | {s['auto_bar']}/{s['sources']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
