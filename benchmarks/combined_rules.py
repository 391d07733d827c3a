"""The combined teacher's rule, chosen leave-one-source-out from `combined_held_out.py` records.

Each record is one rule's run of ``benchmarks/combined_held_out.py`` on the same held-out sources
(the network's labels are kept in ``--work``, so every rule after the first costs minutes). For
each source in turn, the rule is chosen on the sources that share no image with it (``--criterion``: by default the
most sources where refinement stays within -0.3 AP of the raw labels and the ``auto`` cut keeps
>= 30 % at >= 10 AP above all; the photometric teacher alone is a candidate too) and reported on
the one left out: its raw AP, its refined AP's change and its ``auto`` cut.

    for r in best_score ...; do      # the rules of afss.teachers.combined.RULES (at 9272e54: four)
      .venv/bin/python benchmarks/combined_held_out.py --n 60 --spark data/spark2021 --spark-per 30 \\
          --rule $r --work runs/bench/combined_rules60 --out runs/bench/combined_rules_$r.json
    done
    .venv/bin/python benchmarks/combined_rules.py runs/bench/combined_rules_*.json

Writes ``benchmarks/results/combined_rules.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOMETRIC = "photometric alone"


def _candidates(records: list[dict]) -> dict[str, dict[str, dict]]:
    """candidate -> source -> {raw, refined, auto kept, auto AP}; the photometric teacher from the first."""
    out: dict[str, dict[str, dict]] = {PHOTOMETRIC: {}}
    for rec in records:
        rule = rec["args"].get("rule", "best_score")
        out[rule] = {}
        for r in rec["rows"]:
            auto = r["cuts"]["auto"]
            out[rule][r["source"]] = {"raw": r["combined"], "refined": r["refined"], "auto_kept": auto["kept"],
                                      "auto_ap": auto["ap_kept"]}
            mine = r["photometric_cuts"]["auto"]
            out[PHOTOMETRIC].setdefault(r["source"], {"raw": r["photometric"], "refined": r["photometric_refined"],
                                                      "auto_kept": mine["kept"], "auto_ap": mine["ap_kept"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+", help="combined_held_out.py JSON records, one per rule")
    ap.add_argument("--criterion", choices=("bars", "raw"), default="bars",
                    help="bars: the most other sources where refinement stays within -0.3 AP of the raw labels and "
                         "the auto cut meets its bar (ties: mean raw AP); raw: the highest mean raw AP")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "combined_rules.json"))
    args = ap.parse_args(argv)
    records = [json.loads(Path(p).read_text()) for p in args.records]
    cands = _candidates(records)
    sources = [r["source"] for r in records[0]["rows"]]
    for name, rows in cands.items():
        if list(rows) != sources:
            raise SystemExit(f"combined_rules: {name} was run on other sources than {args.records[0]}")

    def mean_raw(name: str, skip: str) -> float:
        return float(np.mean([cands[name][s]["raw"] for s in sources if not _shares_images(s, skip)]))

    def merit(name: str, skip: str) -> tuple:
        """What the choice maximises on the sources that share no image with ``skip``."""
        if args.criterion == "raw":
            return (mean_raw(name, skip),)
        bars = sum(_within(cands[name][s]) and _meets(cands[name][s]) for s in sources if not _shares_images(s, skip))
        return (bars, mean_raw(name, skip))

    rows = []
    for held in sources:
        chosen = max(cands, key=lambda c: merit(c, held))  # chosen without the held-out source
        got = cands[chosen][held]
        rows.append({"source": held, "chosen": chosen, "photometric": cands[PHOTOMETRIC][held]["raw"],
                     "raw": got["raw"], "refined": got.get("refined"), "auto_kept": got.get("auto_kept"),
                     "auto_ap": got.get("auto_ap"),
                     "every": {c: cands[c][held]["raw"] for c in cands}})
    summary = {c: {"mean_raw": float(np.mean([cands[c][s]["raw"] for s in sources])),
                   "beats_photometric": sum(cands[c][s]["raw"] > cands[PHOTOMETRIC][s]["raw"] + 1e-9 for s in sources),
                   "refine_within_0.3": sum(_within(cands[c][s]) for s in sources),
                   "auto_bar": sum(_meets(cands[c][s]) for s in sources)}
               for c in cands}
    md = _markdown(rows, summary, list(cands), args.criterion)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"records": args.records, "criterion": args.criterion, "rows": rows,
                               "summary": summary}, indent=2))
    out.with_suffix(".md").write_text(md)
    print(f"-> {out}")
    return 0


def _shares_images(a: str, b: str) -> bool:
    """Whether two sources of `combined_held_out.py` hold the same images: a source itself, and the
    afss synth domains and families, which are the same scenes grouped two ways."""
    synth = ("synth domain:", "synth family:")
    return a == b or (a.startswith(synth) and b.startswith(synth))


def _within(got: dict) -> bool:
    """Refinement's bar: the refined labels' AP at most 0.3 points under the raw labels'."""
    return got["refined"] >= got["raw"] - 0.003


def _meets(got: dict) -> bool:
    """The auto cut's bar: at least 30 % kept, at 10 AP or more above all the refined labels."""
    return (got.get("auto_kept") is not None and got["auto_kept"] >= 0.3 and got["auto_ap"] is not None
            and got["auto_ap"] >= got["refined"] + 0.10)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _markdown(rows: list[dict], summary: dict, names: list[str], criterion: str) -> str:
    every = " | ".join(names)
    how = {"raw": "the highest mean raw AP",
           "bars": "the most sources meeting both bars, refinement's and the auto cut's; ties: mean raw AP"}[criterion]
    text = (f"Raw AP of every candidate (segm AP on afss synth, bbox AP on SPARK-2021), and the one chosen on "
            f"the sources sharing no image with the held-out one ({how}), reported on it:\n\n"
            f"| held out | {every} | chosen on the others | its raw AP | refined (Δ) | auto: kept, AP |\n"
            f"|---|{'---|' * len(names)}---|---|---|---|\n")
    for r in rows:
        refined = f"{_pct(r['refined'])} ({100 * (r['refined'] - r['raw']):+.1f})"
        auto = f"{100 * r['auto_kept']:.0f}%, {_pct(r['auto_ap'])}" + (" (≥ +10)" if _meets(r) else "")
        cells = " | ".join(_pct(r["every"][c]) for c in names)
        text += f"| {r['source']} | {cells} | {r['chosen']} | {_pct(r['raw'])} | {refined} | {auto} |\n"
    text += ("\n| candidate | mean raw AP (all sources) | sources where it beats the photometric teacher "
             "| refined within −0.3 of raw | auto cut: ≥ 30 % kept at ≥ all + 10 |\n|---|---|---|---|---|\n")
    n = len(rows)
    for c, s in summary.items():
        text += (f"| {c} | {_pct(s['mean_raw'])} | {s['beats_photometric']}/{n} | {s['refine_within_0.3']}/{n} "
                 f"| {s['auto_bar']}/{n} |\n")
    return text


if __name__ == "__main__":
    raise SystemExit(main())
