"""Does a run's table hold on other held-out scenes? Its teacher and students on fresh synth seeds.

`afss run` scores every stage on one held-out set (``make demo``: 100 scenes of seed 1), and a
recipe compared on that set may be chosen for it. This rebuilds the run's teacher and each of its
students exactly as the run's prediction files record them (``teacher/val_labels.json``,
``students/*.json``: name and options), renders new scenes like the run's ``eval`` section but with
other seeds, and scores every stage there (COCO mask and box AP). Nothing is trained; the pool
seed and the pretraining seeds are refused.

    .venv/bin/python benchmarks/run_seeds.py --run demo-run --seeds 1,2,3,4 \\
        --student "round-1 finetune=runs/bench/finetune_recipe/finetune/weights/best.pt" \\
        --out benchmarks/results/demo_seeds.json

Seed 1 is ``make demo``'s own held-out set: its rows reproduce the demo's table (a check), and
``mean new`` leaves it out (the set a recipe may have been chosen on).
``--student`` adds a student trained on the same labels with another recipe (there: the
``finetune`` row of `benchmarks/finetune_recipe.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="demo-run", help="a finished afss run folder with a synth eval section")
    ap.add_argument("--seeds", default="2,3,4", help="synth seeds of the held-out scenes, comma-separated")
    ap.add_argument("--student", action="append", default=[], metavar="NAME=WEIGHTS",
                    help="another student to score beside the run's (e.g. one trained with another recipe on "
                         "the same labels), with the options of the run's last student; repeatable")
    ap.add_argument("--out", default=None, help="JSON (default runs/bench/run_seeds.json)")
    ap.add_argument("--work", default=None, help="scenes go here (default runs/bench/run_seeds/)")
    args = ap.parse_args()
    from afss.errors import AfssError

    try:
        _run(args)
    except AfssError as e:
        sys.exit(f"run_seeds: {e}")


def _round_order(path: Path) -> tuple[int, int, str]:
    """students/start.json first, then round-1, round-2, ..., round-10 in number order."""
    stem = path.stem
    if stem == "start":
        return (0, 0, stem)
    number = stem.removeprefix("round-")
    return (1, int(number), stem) if number.isdigit() else (2, 0, stem)


def _mean(rows: list[dict], names: list[str]) -> dict:
    return {n: {t: round(sum(r[n][t] for r in rows) / len(rows), 1) for t in ("segm", "bbox")} for n in names}


def _run(args: argparse.Namespace) -> None:
    import yaml

    from afss.evaluate import evaluate
    from afss.label import label_images
    from afss.student.pretrain import PRETRAIN_SEED
    from afss.student.train import REPLAY_SEED
    from afss.synth.dataset import render_or_reuse
    from afss.teachers import build_teacher

    run = Path(args.run)
    if not (run / "config.yaml").is_file():
        sys.exit(f"{run}: no config.yaml; --run names a finished afss run folder")
    config = yaml.safe_load((run / "config.yaml").read_text())
    data, held_out = config.get("data", {}), config.get("eval") or {}
    if held_out.get("source") != "synth":
        sys.exit(f"{run}: its eval section is not synth scenes; this check renders new ones")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not seeds:
        sys.exit("--seeds: give at least one seed, e.g. --seeds 2,3,4")
    for s in seeds:
        if (data.get("source") == "synth" and s == data.get("seed")) or s >= min(PRETRAIN_SEED, REPLAY_SEED):
            sys.exit(f"seed {s}: renders scenes a student trained on (pool seed {data.get('seed')}, "
                     f"pretraining and replay seeds from {min(PRETRAIN_SEED, REPLAY_SEED)})")
    students = sorted((run / "students").glob("*.json"), key=_round_order)
    if not (run / "teacher" / "val_labels.json").is_file() or not students:
        sys.exit(f"{run}: no teacher/val_labels.json or students/*.json: is the run finished?")
    stages = {"teacher": run / "teacher" / "val_labels.json", **{f"student-{p.stem}": p for p in students}}
    labellers = {}
    for name, path in stages.items():
        info = json.loads(path.read_text())["info"]
        labellers[name] = build_teacher(info["teacher"], **info.get("teacher_options", {}))
    last_options = json.loads(students[-1].read_text())["info"].get("teacher_options", {})
    for spec in args.student:
        name, sep, weights = spec.partition("=")
        if not sep or not Path(weights).is_file():
            sys.exit(f"--student {spec!r}: expected NAME=WEIGHTS with an existing .pt or .onnx file")
        if name in labellers:
            sys.exit(f"--student {spec!r}: {name!r} is a stage of the run already; choose another name")
        labellers[name] = build_teacher("student", **{**last_options, "weights": weights})
    out = Path(args.out or ROOT / "runs" / "bench" / "run_seeds.json")
    work = Path(args.work or ROOT / "runs" / "bench" / "run_seeds")
    record = {"run": str(run), "n": held_out["n"], "domain": held_out["domain"], "size": held_out["size"],
              "run_eval_seed": held_out.get("seed"), "seeds": {}}
    for seed in seeds:
        gt = render_or_reuse(work / f"seed{seed}", n=held_out["n"], size=held_out["size"],
                             domain=held_out["domain"], seed=seed)
        images = gt.replace(images=tuple(im.replace(instances=()) for im in gt.images))
        rows = {}
        for name, labeller in labellers.items():
            report = evaluate(gt, label_images(labeller, images), protocols=("coco",))
            rows[name] = {r.iou_type: round(100 * r.ap, 1) for r in report.rows if r.category == "all"}
            print(f"seed {seed} {name}: {rows[name]}", file=sys.stderr)
        record["seeds"][str(seed)] = rows
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2))

    names = list(labellers)
    print(f"\n{run}: its teacher and students on {held_out['n']} new {held_out['domain']} scenes per seed; "
          "COCO AP in %, mask / box\n")
    print(f"{'seed':<10}" + "".join(f"{n:>22}" for n in names))
    for seed, rows in record["seeds"].items():
        print(f"{seed:<10}" + "".join(f"{rows[n]['segm']:>15.1f} / {rows[n]['bbox']:4.1f}" for n in names))
    record["mean"] = _mean(list(record["seeds"].values()), names)
    # the run's own held-out seed chose nothing here, but may have chosen the run's recipe: apart
    new = [r for k, r in record["seeds"].items() if int(k) != held_out.get("seed")]
    record["mean_other_seeds"] = _mean(new, names) if new else None
    for label, mean in (("mean", record["mean"]), ("mean new", record["mean_other_seeds"])):
        if mean and (label == "mean" or len(new) < len(seeds)):
            print(f"{label:<10}" + "".join(f"{mean[n]['segm']:>15.1f} / {mean[n]['bbox']:4.1f}" for n in names))
    out.write_text(json.dumps(record, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
