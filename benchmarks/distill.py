"""The student against its teacher: does distillation beat the teacher, and the synth-only student?

    .venv/bin/python benchmarks/distill.py --source synth [--pool 400 --val 200] [--init synth.pt]
    .venv/bin/python benchmarks/distill.py --source spark --spark data/spark2021 [--init synth.pt]

One table (and ``<out>/<source>.json``, rewritten after every row, so a long run that is stopped
keeps what it finished and a rerun skips those rows) on a validation set with ground truth that no
training saw:

* ``teacher``            the teacher zero-shot on the validation images;
* ``teacher refined``    the teacher through TTA + WBF + the confidence filter on them (dropped = miss);
* ``student scratch``    YOLO-seg from random initialisation on the pool's filtered pseudo-labels;
* ``student synth-only`` the ``--init`` weights alone (pretrained on afss synth, no pseudo-labels);
* ``student round K``    ``afss distill`` rounds from ``--init`` on the pool's pseudo-labels;
  the record's ``chosen`` names the round whose student ``afss distill`` makes ``DIR/student.pt``;
* ``... rescored``       with ``--rescore TEACHER``: the start and every round again, each instance scored
                         by sqrt(its confidence x the teacher's confidence in its box);
* ``supervised (upper bound)`` the same recipe on the pool's *ground truth* — marked, for reference.

Sources: ``synth`` (afss synth ``mixed``, pool seed 5000, validation seed 6000: disjoint from the
pretraining seeds, 900000 on; ``--domain dim`` or ``sensor``: a render setting of `benchmarks/loso.py`
that no pretraining, fit or choice ever saw) with segm and bbox AP; ``spark``: the SPARK-2021 frames rebuilt by
``scripts/spark2021.py`` (boxes only: bbox AP), validation = ``--val`` frames of its ``report``
subset, pool = ``--pool`` of the other frames, both evenly spaced through the frame numbers so that
every spacecraft is in both (``--split first`` takes the first ones instead: the split of the tables
before 2026-12-04, whose validation frames hold 3 of the 11 spacecraft). Every number is COCO and
the paper's protocol, plus how often the top-1 instance hits (IoU >= 0.5) and how well the score
ranks the top-1 instances (Spearman with their IoU). ``--defaults`` trains and distils with every
setting ``afss distill`` takes by default (recipe, epochs, size, cut, rounds, rescoring). This is hours of 2-core CPU at the default
sizes; a GPU (``--device 0``) makes it minutes. ``--score-again`` scores every row again, reusing the
trainings in ``--out``. The record keeps every invocation that added rows to it (``runs``: its
arguments and commit) and, in each row, which one made it (``run``).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from loso import NEVER_TUNED  # the render settings only ever held out


def _sources(args):
    from afss.io.coco import read_coco
    from afss.synth import render_dataset

    work = Path(args.out) / args.source
    if args.source == "synth":
        domain = args.domain
        if domain in NEVER_TUNED:  # a render setting the shipped start and the teacher's confidence never saw
            domain = NEVER_TUNED[domain]
        pool = render_dataset(work / "pool", n=args.pool, size=args.size, domain=domain, seed=5000, overwrite=True)
        val = render_dataset(work / "val", n=args.val, size=args.size, domain=domain, seed=6000, overwrite=True)
        return pool, val, ("segm", "bbox")
    gt = read_coco(Path(args.spark) / "gt.json")
    report = [im for im in gt.images if im.meta.get("subset") == "report"]
    take = _first if args.split == "first" else _spread
    val = take(report, args.val)
    names = {im.file_name for im in val}
    pool = take([im for im in gt.images if im.file_name not in names], args.pool)
    for what, images in (("validation", val), ("pool", pool)):
        print(f"spark, split {args.split}: {what} {_composition(images)}", file=sys.stderr)
    return gt.replace(images=tuple(pool)), gt.replace(images=tuple(val)), ("bbox",)


def _composition(images: list) -> str:
    """Frames per spacecraft (``meta['class']``, from scripts/spark2021.py) and the median box side."""
    from collections import Counter
    from statistics import median

    classes = Counter(im.meta.get("class", "?") for im in images)
    sides = [((x1 - x0) * (y1 - y0)) ** 0.5 for im in images for x0, y0, x1, y1 in
             (inst.box_xyxy for inst in im.instances)]
    return (f"{len(images)} frames, {len(classes)} spacecraft ("
            + ", ".join(f"{c} {k}" for c, k in classes.most_common())
            + f"), median box side {median(sides) if sides else float('nan'):.0f} px")


def _first(images: list, n: int | None) -> list:
    return images[:n or None]


def _spread(images: list, n: int | None) -> list:
    """``n`` images evenly spaced through ``images`` (all of them for 0 or None), in their order:
    ``gt.json``'s, by file name, which is by frame number for SPARK-2021.

    SPARK-2021's frames are numbered class by class, so the first 200 report frames hold only 3 of
    its 11 spacecraft (proba_2 101, cheops 86, debris 13), and the first 400 others 6, with 50
    frames of the two that make up 187 of the 200 scored ones. Evenly spaced frames cover every
    class in proportion, with no random state.
    """
    if not n or n >= len(images):
        return list(images)
    return [images[(2 * i + 1) * len(images) // (2 * n)] for i in range(n)]


def _score(gt, pred, iou_types) -> dict:
    """COCO and paper AP, and two things AP mixes together: how often the top-1 instance of an image
    hits its target (IoU >= 0.5, mask IoU where both have masks; an image without one is a miss),
    and whether the score ranks the top-1 instances by their IoU (Spearman; AP rewards that)."""
    from afss.evaluate import evaluate
    from afss.evaluate.score_quality import score_iou_pairs, spearman

    report = evaluate(gt, pred, iou_types=iou_types)
    scores = {f"{r.protocol}/{r.iou_type}/{k}": getattr(r, k) for r in report.rows if r.category == "all"
              for k in ("ap", "ap50", "ap75")}
    pairs = score_iou_pairs(gt, pred)  # images with a target and a prediction
    targets = sum(1 for im in gt.images if im.instances and im.error is None)
    rank = spearman(pairs[:, 0], pairs[:, 1]) if len(pairs) else float("nan")
    scores["top1/hit50"] = float((pairs[:, 1] >= 0.5).sum() / targets) if targets else None
    scores["top1/spearman"] = None if math.isnan(rank) else rank  # NaN is not JSON
    scores["top1/pairs"] = len(pairs)
    return scores


def _note_round_training(record: dict, k: int, train_json: Path) -> None:
    """A round's seconds per epoch, and its final validation on the held-out tenth of its
    pseudo-labels (how closely the student reproduces them), into ``record``."""
    if not train_json.is_file():
        return
    run = json.loads(train_json.read_text())
    record.setdefault("seconds_per_epoch", {})[f"round-{k}"] = round(run["seconds_per_epoch"], 1)
    # what trained (`auto` made concrete, and the start's agreement with the labels that decided it)
    record.setdefault("training", {})[f"round-{k}"] = {
        "recipe": run.get("recipe", run["config"]["recipe"]), "epochs": run["config"]["epochs"],
        "start_agreement": run.get("start_agreement"), "seconds": run["seconds"]}
    record.setdefault("pseudo_label_val", {})[f"round-{k}"] = {
        key: run["metrics"].get(f"metrics/{key}") for key in ("mAP50-95(B)", "mAP50-95(M)")}
    record["pseudo_label_val"][f"round-{k}"]["images"] = run["dataset"]["val"]


def _finished_training(folder: Path, labels, config) -> tuple[Path, float] | None:
    """The weights and seconds per epoch of the finished training in ``folder``, if it trained ``config``
    on ``labels`` (the identity `afss.student.train.train_student` records), else ``None``."""
    from afss.student.train import training_identity

    record = folder / "train.json"
    if not record.is_file():
        return None
    run = json.loads(record.read_text())
    weights = Path(run.get("weights", ""))
    if run.get("identity") != training_identity(labels, config) or not weights.is_file():
        return None
    return weights, float(run["seconds_per_epoch"])


def _note_invocation(record: dict, settings: dict, commit: str) -> int:
    """Add this invocation to ``record["runs"]`` (unless it repeats the last one) and return its index.

    Rows of one record are often added by several invocations (round 2 after round 1, the upper bound
    later), so each row names the one that made it; ``args`` and ``commit`` are the latest's.
    """
    if "runs" not in record:  # a record from before "runs": its one invocation comes first
        record["runs"] = [{"args": record["args"], "commit": record.get("commit")}] if "args" in record else []
    runs = record["runs"]
    if not runs or runs[-1] != {"args": settings, "commit": commit}:
        runs.append({"args": settings, "commit": commit})
    record.update({"args": settings, "commit": commit})
    return len(runs) - 1


SOURCE_ARGS = ("source", "domain", "pool", "val", "size", "split", "spark")
"""The arguments that make the pool and the validation set: a record's rows hold only for the same."""


def _check_same_sources(record: dict, settings: dict) -> None:
    """Refuse to add rows to a record made on other images (another --domain, --pool, ...): its
    earlier rows would be kept as "done before" beside rows of the new images."""
    if "args" not in record:
        return
    before = {"domain": "mixed", **record["args"]}  # records from before --domain were mixed
    changed = [f"--{k} {before.get(k)}, now {settings.get(k)}" for k in SOURCE_ARGS
               if k in settings and before.get(k) != settings.get(k)]
    if changed:
        raise SystemExit(f"benchmarks/distill.py: the record in --out was made on other images ({'; '.join(changed)}); "
                         "choose another --out")


def _cell(key: str, value: float | None) -> str:
    """A table cell: a correlation as it is, every other figure in %."""
    if value is None:
        return f"{'nan':>18}"
    return f"{value:18.2f}" if key.endswith("spearman") else f"{100 * value:18.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("synth", "spark"), default="synth")
    ap.add_argument("--spark", default="data/spark2021", help="folder written by scripts/spark2021.py")
    ap.add_argument("--pool", type=int, default=400)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--size", type=int, default=512, help="synth image size")
    ap.add_argument("--domain", choices=("mixed", *NEVER_TUNED), default="mixed",
                    help="synth scenes: mixed (the shipped start's own domains), or a render setting that no "
                         "pretraining or fit ever saw (benchmarks/loso.py: dim lighting, a noisy blurred grey sensor)")
    ap.add_argument("--split", choices=("spread", "first"), default="spread",
                    help="SPARK frames of the validation set and the pool: evenly spaced through the frame "
                         "numbers (every class), or the first ones (the split of the tables before 2026-12-04, "
                         "which holds 3 of the 11 spacecraft)")
    ap.add_argument("--init", default=None, help="synth-pretrained student (.pt; default: the one afss ships); "
                                                 "without one the synth rows are skipped")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--replay", type=int, default=0, help="synth scenes mixed into the synth-init trainings")
    from afss.student.recipe import RECIPES

    ap.add_argument("--recipe", choices=RECIPES, default="finetune",
                    help="training recipe (afss.student.train.TrainConfig.recipe); the SPARK-2021 tables used "
                         "finetune, then ultralytics")
    ap.add_argument("--freeze", type=int, default=None, help="Ultralytics freeze (layers) of the synth-init trainings, "
                                                             "over the recipe's")
    from afss.student.start_masks import MASK_SOURCES

    ap.add_argument("--mask-source", choices=MASK_SOURCES, default="labels",
                    help="the masks the rounds' students learn (afss distill --mask-source)")
    ap.add_argument("--min-score", type=lambda v: v if v == "auto" else float(v), default=0.6,
                    help="confidence filter of every refinement: a number or auto")
    ap.add_argument("--tta", default="identity,vflip")
    ap.add_argument("--student-min-score", type=lambda v: v if v == "auto" else float(v), default=None,
                    help="cut of rounds > 1, where the student relabels (default: --min-score)")
    ap.add_argument("--auto-keep-max", type=float, default=None, metavar="F",
                    help="the most share of the labelled images every auto cut keeps (afss distill --auto-keep "
                         "0.3,F; default 0.8): what another bound does to distillation")
    ap.add_argument("--seed", type=int, default=0, help="training seed of every student row")
    ap.add_argument("-o", "--teacher-option", dest="teacher_options", action="append", default=None,
                    metavar="KEY=VALUE", help="photometric teacher option, value as JSON (as afss label -o)")
    ap.add_argument("--skip", default="", help="rows to leave out, comma-separated: scratch, supervised, rounds "
                                               "(the distillation rounds)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "distill"))
    ap.add_argument("--rescore", default=None, metavar="TEACHER",
                    help="also score the start and every round rescored by this teacher (afss distill --rescore)")
    ap.add_argument("--defaults", action="store_true",
                    help="afss distill's defaults for --recipe, --epochs, --imgsz, --batch, --mask-source, --rounds, --min-score and "
                         "--rescore, except those given beside it")
    ap.add_argument("--score-again", action="store_true",
                    help="score every row again, reusing the trainings already in --out (after a change of _score)")
    if ap.parse_known_args()[0].defaults:  # afss distill's defaults, under any flag given beside --defaults
        from afss.distill import DistillConfig
        from afss.student.train import TrainConfig

        d, t = DistillConfig(), TrainConfig()
        ap.set_defaults(recipe=t.recipe, epochs=t.epochs, imgsz=t.imgsz, batch=t.batch, mask_source=t.mask_source, rounds=d.rounds,
                        min_score=d.min_score, rescore=d.rescore)
    args = ap.parse_args()
    from afss.distill import DistillConfig
    from afss.errors import AfssError
    from afss.refine import RefineConfig
    from afss.refine.filtering import TRAIN_AUTO_KEEP, bound_for, check_auto_keep

    try:
        auto_keep = check_auto_keep((TRAIN_AUTO_KEEP[0], TRAIN_AUTO_KEEP[1] if args.auto_keep_max is None
                                     else args.auto_keep_max),
                                    "--auto-keep-max: the bound")
        # afss distill's own checks, here rather than after the validation frames are labelled
        DistillConfig(min_score=args.min_score, student_min_score=args.student_min_score, auto_keep=auto_keep)
        # the teacher's rows cut as round 1 does: the pool's bound where that cut is auto
        teacher_cut = RefineConfig(min_score=args.min_score, auto_keep=bound_for(auto_keep, args.min_score))
    except AfssError as e:
        sys.exit(str(e))
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS

    if args.init is None and SHIPPED_SYNTH_WEIGHTS.is_file():
        args.init = str(SHIPPED_SYNTH_WEIGHTS)

    from afss.distill import distill
    from afss.label import label_images
    from afss.refine import refine_labels
    from afss.student.train import TrainConfig, train_student
    from afss.teachers import build_teacher

    out = Path(args.out)
    record_path = out / f"{args.source}.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"rows": {}}
    # -dirty: the code that ran had changes not committed yet
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    settings = {k: v for k, v in vars(args).items() if args.source == "spark" or k not in ("spark", "split")}
    if args.source == "spark":
        settings.pop("domain")
    _check_same_sources(record, settings)
    run = _note_invocation(record, settings, commit)
    pool, val, iou_types = _sources(args)
    from afss.cli.common import teacher_options

    # only the -o options: this script's --device is the student's
    teacher = build_teacher("photometric", **teacher_options(argparse.Namespace(teacher_options=args.teacher_options)))
    work = out / args.source
    # from scratch (a model .yaml) there is nothing for `heads` or `box` to keep: that row trains with `auto`
    train = TrainConfig(init="yolo11n-seg.yaml", epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                        device=args.device, seed=args.seed, recipe="auto" if args.recipe in ("heads", "box") else args.recipe)

    skip = {f"student {s}" if s == "scratch" else "supervised (upper bound)" if s == "supervised" else s
            for s in args.skip.split(",") if s}

    def row(name: str, make) -> None:
        if name in skip:
            return
        if name in record["rows"] and not args.score_again:
            print(f"{name}: done before", file=sys.stderr)
            return
        t0 = time.perf_counter()
        pred = make()
        record["rows"][name] = {**_score(val, pred, iou_types), "seconds": round(time.perf_counter() - t0, 1),
                                "run": run}
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2))
        print(f"{name}: {record['rows'][name]}", file=sys.stderr)

    def trained(labels, folder: Path, config) -> Path:
        """The weights of a training of ``config`` on ``labels`` in ``folder`` (the finished one there, or a new
        one; `train_student` refuses a folder of another training), noting its seconds per epoch."""
        done = _finished_training(folder, labels, config)
        if done is None:
            result = train_student(labels, folder, config)
            done = result.weights, result.seconds_per_epoch
        record.setdefault("seconds_per_epoch", {})[folder.name] = round(done[1], 1)
        return done[0]

    def predict(weights: Path, rescore: str | None = None):
        student = build_teacher("student", weights=str(weights), imgsz=args.imgsz, device=args.device, rescore=rescore)
        return label_images(student, val)

    rescored = " rescored"  # by --rescore (recorded in args)

    row("teacher", lambda: label_images(teacher, val))
    row("teacher refined", lambda: refine_labels(teacher, val, views=args.tta,
                                                 config=teacher_cut)[0])
    pool_labels = label_images(teacher, pool, out=work / "pool_labels.json")
    pool_refined, _ = refine_labels(teacher, pool_labels, labels=pool_labels, views=args.tta,
                                    config=teacher_cut,
                                    out=work / "pool_refined.json")
    row("student scratch", lambda: predict(trained(pool_refined, work / "scratch", train)))
    # the synth-init recipe of the rounds and of the upper bound
    tuned = TrainConfig(**{**train.__dict__, "init": args.init or train.init, "replay": args.replay if args.init else 0,
                           "recipe": args.recipe if args.init else train.recipe,
                           "extra": {"freeze": args.freeze} if args.freeze and args.init else {},
                           "mask_source": args.mask_source})
    if args.init:
        row("student synth-only", lambda: predict(Path(args.init)))
        if args.rescore:
            row("student synth-only" + rescored, lambda: predict(Path(args.init), args.rescore))
        rounds = [] if "rounds" in skip else distill(
            teacher, pool, work / "distill", train=tuned, config=DistillConfig(
                rounds=args.rounds, views=args.tta, min_score=args.min_score, student_min_score=args.student_min_score,
                rescore=args.rescore, auto_keep=auto_keep))
        for r in rounds:
            row(f"student round {r.round}", lambda r=r: predict(r.weights))
            if args.rescore:
                row(f"student round {r.round}" + rescored, lambda r=r: predict(r.weights, args.rescore))
            _note_round_training(record, r.round, r.weights.parent.parent / "train.json")
            record_path.write_text(json.dumps(record, indent=2))
        if rounds:  # the round whose student afss distill makes DIR/student.pt, and what chose it
            record["chosen"] = {"round": next(r.round for r in rounds if r.chosen),
                                "quality": {r.round: r.quality for r in rounds}}
            record_path.write_text(json.dumps(record, indent=2))
    if (work / "distill" / "round-1" / "train" / "train.json").is_file():
        from afss.distill import trained_as

        # round 1's recipe and epochs: `auto` would decide again, on the true labels
        recipe, epochs = trained_as(work / "distill" / "round-1" / "train", tuned)
        tuned = TrainConfig(**{**tuned.__dict__, "recipe": recipe, "epochs": epochs})
    truth = TrainConfig(**{**tuned.__dict__, "mask_source": "labels"})  # the true masks, never the start's
    row("supervised (upper bound)", lambda: predict(trained(pool, work / "supervised", truth)))

    keys = [f"{p}/{t}/{k}" for t in iou_types for p in ("coco", "paper") for k in ("ap", "ap50", "ap75")]
    keys += ["top1/hit50", "top1/spearman"]
    print(f"\n{args.source}: pool {len(pool)}, validation {len(val)} (never trained on); AP and hits in %; "
          "hit50: images whose top-1 instance has IoU >= 0.5; spearman: of the top-1 score and IoU\n")
    print(f"{'row':<34}" + "".join(f"{k.replace('/', ' '):>18}" for k in keys))
    for name, r in record["rows"].items():
        print(f"{name:<34}" + "".join(_cell(k, r.get(k)) for k in keys))
    print(f"-> {record_path}")


if __name__ == "__main__":
    main()
