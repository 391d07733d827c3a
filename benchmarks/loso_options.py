"""Leave-one-source-out choice of the photometric teacher's options: chosen without the source it is judged on.

Every combination of the ``--grid`` values labels every image of the sources of `loso.py` (afss synth
domains and families, SPARK-2021's spacecraft, the two render settings never tuned on) once, with
the shipped confidence. Then, for each held-out source, the combination with the best mean AP on
the *other* tuned sources (afss synth segm AP and SPARK-2021 bbox AP weigh the same) is chosen and
judged on the held-out one, against the shipped defaults. The composed rows give each image the
label of the combination chosen while its own source was held out: SPARK-2021 over all its frames
(by spacecraft), afss synth over all tuned scenes (by domain).

    .venv/bin/python benchmarks/loso_options.py --spark data/spark2021 \\
        --grid group_frac=0.04,0.06,0.08,0.11 --grid close_frac=0.012,0.025 --grid k_grow=3.0,4.0

Writes ``runs/bench/loso_options.{json,md}`` (``--out``); the last line is the combination chosen on
every tuned source, i.e. what the defaults would become.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loso  # the sources and folds of the confidence benchmark
from records import write_record

from afss.label import label_images
from afss.teachers.photometric import PhotometricConfig, PhotometricTeacher
from afss.types import LabelSet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="afss synth scenes per render setting")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py, or none")
    ap.add_argument("--grid", action="append", required=True, metavar="OPTION=V1,V2,...",
                    help="photometric option and the values to try (JSON each); repeatable")
    ap.add_argument("--out", default="runs/bench/loso_options.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    images = _images(loso._sources(args))
    grid = _grid(args.grid)
    everything = LabelSet(images=tuple(im.gt for im in images), categories={1: "spacecraft"}, image_root="/")
    labels = {}
    for k, combo in enumerate(grid):
        t1 = time.perf_counter()
        pred = label_images(PhotometricTeacher.build(**combo), everything, batch_size=8)
        labels[_key(combo)] = {im.file_name: im for im in pred.images}
        print(f"[{k + 1}/{len(grid)}] {_key(combo)}: labelled in {time.perf_counter() - t1:.0f} s",
              file=sys.stderr, flush=True)
    default = _key({name: getattr(PhotometricConfig(), name) for name in grid[0]})
    if default not in labels:
        raise SystemExit(f"the grid must hold the defaults ({default})")
    labels = {default: labels[default], **labels}  # ties go to the defaults (max keeps the first)
    rows, chosen_for = [], {}
    for axis, held, name in loso._folds(images):
        fit_on = [im for im in images if im not in held and im.groups.get("setting") not in loso.NEVER_TUNED]
        scores = {key: _objective(fit_on, labels[key]) for key in labels}
        best = max(scores, key=scores.get)
        chosen_for[(axis, name)] = best
        rows.append({"axis": axis, "source": name, "images": len(held), "chosen": best,
                     "ap_default": _ap(held, labels[default]), "ap_chosen": _ap(held, labels[best])})
        print(f"{axis:>22} {name:<24} chosen {best}: {_pct(rows[-1]['ap_default'])} -> {_pct(rows[-1]['ap_chosen'])}",
              file=sys.stderr, flush=True)
    composed = _composed(images, labels, chosen_for, default)
    tuned = [im for im in images if im.groups.get("setting") not in loso.NEVER_TUNED]
    final = max(labels, key=lambda key: _objective(tuned, labels[key]))
    result = {"benchmark": "loso_options", "grid": args.grid, "default": default, "rows": rows,
              "composed": composed, "chosen_on_every_tuned_source": final,
              "in_sample": {"spark_all": _ap([im for im in images if im.dataset == "spark"], labels[final]),
                            "synth_tuned": _ap([im for im in tuned if im.dataset == "synth"], labels[final])},
              "seconds": round(time.perf_counter() - t0, 1)}
    write_record(args.out, result, _markdown(result))
    return 0


def _images(sets: list[LabelSet]) -> list[loso.Analysed]:
    """Every image once, with one root and unique ids (nothing analysed: the options change the labels)."""
    out = []
    for gt in sets:
        synth = "setting" in gt.images[0].meta
        for im in gt.images:
            groups = ({"setting": im.meta["setting"], "family": im.meta["family"]} if synth
                      else {"spacecraft": im.meta["class"]})
            full = im.replace(file_name=str(Path(gt.image_root).resolve() / im.file_name), image_id=len(out) + 1)
            out.append(loso.Analysed("synth" if synth else "spark", groups, full, None, None, 0.0))
    return out


def _grid(specs: list[str]) -> list[dict]:
    names, values = [], []
    for spec in specs:
        name, _, vals = spec.partition("=")
        names.append(name)
        values.append([json.loads(v) for v in vals.split(",")])
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _key(combo: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in combo.items())


def _subset(images: list[loso.Analysed], by_name: dict) -> LabelSet:
    return LabelSet(images=tuple(by_name[im.gt.file_name] for im in images), categories={1: "spacecraft"},
                    image_root="/")


def _ap(images: list[loso.Analysed], by_name: dict) -> float | None:
    return loso._ap(images, _subset(images, by_name)) if images else None


def _objective(fit_on: list[loso.Analysed], by_name: dict) -> float:
    """Mean of afss synth segm AP and SPARK-2021 bbox AP over the fit sources (each dataset weighs the same)."""
    aps = [_ap([im for im in fit_on if im.dataset == ds], by_name) for ds in ("synth", "spark")]
    aps = [a for a in aps if a is not None]
    return sum(aps) / len(aps)


def _composed(images, labels, chosen_for, default) -> dict:
    """Each image labelled by the combination chosen while its source was held out."""
    out = {}
    for what, axis, group, ds in (("SPARK-2021, all frames (by spacecraft)", "SPARK-2021 spacecraft", "spacecraft",
                                   "spark"),
                                  ("afss synth, tuned domains (by domain)", "synth domain", "setting", "synth")):
        chosen = [im for im in images if im.dataset == ds and (axis, im.groups.get(group)) in chosen_for]
        if not chosen:
            continue
        mixed = {im.gt.file_name: labels[chosen_for[(axis, im.groups[group])]][im.gt.file_name] for im in chosen}
        out[what] = {"images": len(chosen), "ap_default": _ap(chosen, labels[default]), "ap_chosen": _ap(chosen, mixed)}
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _markdown(result: dict) -> str:
    lines = [(f"Options chosen without the held-out source (grid: {'; '.join(result['grid'])}); defaults "
              f"`{result['default']}`. AP = segm AP on afss synth, bbox AP on SPARK-2021."), "",
             "| held out | images | chosen on the other sources | AP, defaults | AP, chosen |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['axis']}: {r['source']} | {r['images']} | `{r['chosen']}` | {_pct(r['ap_default'])} | "
                     f"{_pct(r['ap_chosen'])} |")
    lines += ["", "| composed (each image from its own held-out fold) | images | AP, defaults | AP, chosen |",
              "|---|---|---|---|"]
    for what, c in result["composed"].items():
        lines.append(f"| {what} | {c['images']} | {_pct(c['ap_default'])} | {_pct(c['ap_chosen'])} |")
    ins = result["in_sample"]
    lines += ["", (f"Chosen on every tuned source: `{result['chosen_on_every_tuned_source']}` (in sample: "
                   f"SPARK-2021 all frames {_pct(ins['spark_all'])}, afss synth tuned scenes "
                   f"{_pct(ins['synth_tuned'])}).")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
