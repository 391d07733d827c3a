"""``afss train``: train the YOLO-seg student on (refined, filtered) pseudo-labels."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import (
    add_path_policy_argument,
    add_recipe_argument,
    add_student_arguments,
    given,
    progress_bar,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.student.train import TrainConfig

    p = subparsers.add_parser(
        "train", help="train the student (YOLO-seg, Ultralytics) on pseudo-labels -> DIR/weights/best.pt",
        description="Export the labels as a YOLO-seg dataset (images linked; a validation split carved from the "
                    "labels themselves, seeded) and train an Ultralytics YOLO-seg model on it. Writes "
                    "DIR/weights/best.pt, DIR/results.csv, training curves and DIR/train.json. Needs the "
                    "optional extra afss[student] (Ultralytics, AGPL-3.0). .pt files are pickles: give --init "
                    "only weights you trust.",
    )
    p.add_argument("--labels", required=True, metavar="FILE", help="pseudo-labels, COCO JSON (e.g. from afss refine)")
    p.add_argument("--image-root", metavar="DIR", help="folder the label file names are relative to")
    add_student_arguments(p)
    p.add_argument("--device", default=None, help=f"cpu, 0 / cuda:0, mps (default {TrainConfig.device})")
    add_recipe_argument(p)
    p.add_argument("--val-fraction", type=float, default=None,
                   help=f"share of labelled images held out (default {TrainConfig.val_fraction})")
    p.add_argument("--seed", type=int, default=None, help=f"split and training seed (default {TrainConfig.seed})")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument("--overwrite", action="store_true",
                   help="train from --init into --out whatever it holds: another training, an interrupted one (not "
                        "continued), or this very one finished (rerunning the same command returns that one "
                        "without training; this trains it again). DIR/train.json and DIR/weights/ are replaced")
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from afss.errors import AfssError
    from afss.io.coco import read_coco
    from afss.student.recipe import plan_line
    from afss.student.train import TrainConfig, resolve_init, train_student

    start = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise AfssError(f"{out}: exists and is not a folder; --out names the run folder")
    config = TrainConfig(**given(args, "init", "epochs", "imgsz", "batch", "device", "val_fraction", "seed", "recipe", "mask_source"))
    resolve_init(config.init)  # a bad --init fails before the labels are read
    labels = read_coco(args.labels, image_root=args.image_root, allow_absolute_paths=args.allow_absolute_paths)
    with progress_bar(args, total=config.epochs, desc="train (student)", unit="epoch") as advance:
        result = train_student(labels, out, config, progress=lambda epoch, metrics: advance(1),
                               on_plan=lambda recipe, epochs, agreement: tqdm.write(
                                   f"afss train: {plan_line(recipe, epochs, agreement)}", file=sys.stderr),
                               overwrite=args.overwrite)
    if result.mask_swap is not None:
        print(f"afss train: {result.mask_swap.line()}", file=sys.stderr)
    elif config.mask_source == "start":
        print(f"afss train: --mask-source start: recipe {result.recipe} does not train the mask branch from a "
              "pretrained start; the labels' masks went in as they are", file=sys.stderr)
    m = result.metrics
    again = "trained before with the same labels and recipe (--overwrite trains again): " if result.reused else ""
    why = "" if result.agreement is None else f" (the start's boxes agree {result.agreement:.2f} with the labels)"
    print(f"afss train: {again}{result.dataset.train} train / {result.dataset.val} val images, recipe {result.recipe}{why}, "
          f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}, "
          f"{result.seconds_per_epoch:.1f} s/epoch; {'train-set' if result.dataset.val_is_train else 'val'} mask "
          f"mAP50-95 {m.get('metrics/mAP50-95(M)', float('nan')):.3f}, "
          f"mAP50 {m.get('metrics/mAP50(M)', float('nan')):.3f}; {time.perf_counter() - start:.1f} s -> {result.weights}",
          file=sys.stderr)
    return 0
