"""``afss distill``: teacher -> refine -> filter -> student, in rounds (the paper's whole pipeline)."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import (
    add_cut_arguments,
    add_image_source_arguments,
    add_path_policy_argument,
    add_recipe_argument,
    add_student_arguments,
    add_teacher_arguments,
    cut_options,
    given,
    min_score_arg,
    progress_bar,
    read_images,
    teacher_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.distill import CHOICES
    from afss.refine.filtering import TRAIN_AUTO_KEEP
    from afss.teachers import DEFAULT_TEACHER, TEACHERS

    p = subparsers.add_parser(
        "distill", help="teacher -> TTA+WBF refine -> filter -> train the student; then the student relabels, in rounds",
        description="Round 1: the teacher labels the pool, refine (TTA + WBF) and the confidence filter keep the good "
                    "labels, the student trains on them. Round k > 1: the previous student relabels the pool the same "
                    "way and a student is trained again. Stops after --rounds or when the labels stop changing. "
                    "DIR/round-K/ keeps each round; DIR/student.pt is the chosen round's student (--choose). Rerun the "
                    "same command to continue after a crash, or with a larger --rounds to add rounds. --gt only scores each round; nothing trains on it.",
    )
    add_image_source_arguments(p, gt_alias=False)
    p.add_argument("--teacher", default=DEFAULT_TEACHER, choices=sorted(TEACHERS),
                   help=f"round 1's teacher (default {DEFAULT_TEACHER}; 'photometric' needs no weights)")
    p.add_argument("--out", required=True, metavar="DIR", help="distillation folder")
    p.add_argument("--rounds", type=int, default=None,
                   help="at most this many rounds (default 1); rerun with a larger number to add rounds to a "
                        "finished distillation")
    p.add_argument("--choose", default=None, choices=CHOICES,
                   help="with several rounds, which student becomes DIR/student.pt: quality (default: the one "
                        "whose top-1 boxes the --rescore teacher, or photometric, is most confident in; no "
                        "ground truth) or last")
    p.add_argument("--rescore", default=None, metavar="TEACHER|none",
                   help="wherever the student labels, score each of its instances by sqrt(its confidence x this "
                        "teacher's confidence in the box) (default photometric; none: its class confidence)")
    p.add_argument("--tta", dest="views", default=None, help="TTA views of every refinement (default identity,vflip)")
    add_cut_arguments(p, default="auto", auto_keep=TRAIN_AUTO_KEEP)
    p.add_argument("--student-min-score", default=None, metavar="X|auto",
                   help="the cut of rounds > 1, where the student relabels (default: the same as round 1); "
                        "'auto' chooses it from the student's own scores")
    p.add_argument("--from-init", dest="finetune", action="store_false", default=None,
                   help="train every round from --init instead of fine-tuning the previous student")
    p.add_argument("--gt", dest="gt", metavar="FILE", help="ground truth of the pool, to score each round (never trains)")
    add_student_arguments(p, epochs="epochs per round")
    add_recipe_argument(p)
    p.add_argument("--student-device", dest="student_device", default=None, help="student device: cpu (default), 0")
    add_teacher_arguments(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.distill import DistillConfig, distill
    from afss.student.train import TrainConfig, resolve_init
    from afss.teachers import build_teacher

    start = time.perf_counter()
    student_cut = {} if args.student_min_score is None else {
        "student_min_score": min_score_arg(args.student_min_score, "--student-min-score")}
    rescore = {} if args.rescore is None else {"rescore": None if args.rescore == "none" else args.rescore}
    config = DistillConfig(**given(args, "rounds", "views", "finetune", "prompt", "choose"), **rescore, **cut_options(args),
                           **student_cut)
    train = TrainConfig(**given(args, "init", "epochs", "imgsz", "batch", "recipe", "mask_source"),
                        **({"device": args.student_device} if args.student_device else {}))
    resolve_init(train.init)  # fail before the teacher runs
    pool = read_images(args)
    teacher = build_teacher(args.teacher, **teacher_options(args))
    rounds = distill(teacher, pool, args.out, config=config, train=train, gt=args.gt,
                     progress=lambda line: print(f"afss distill: {line}", file=sys.stderr),
                     bar=lambda title, total: progress_bar(args, total, title))
    for r in rounds:
        scores = ""
        if r.metrics:
            scores = "; " + ", ".join(f"{name} segm AP {100 * (m.get('segm_ap') or 0):.1f} bbox AP "
                                      f"{100 * (m.get('bbox_ap') or 0):.1f}" for name, m in r.metrics.items())
        judged = "" if r.quality is None else f"; label-free quality {r.quality:.4f}"
        print(f"afss distill: round {r.round}: kept {r.kept}/{r.images} images{scores}{judged}; {r.seconds:.0f} s"
              + (" (chosen)" if r.chosen and len(rounds) > 1 else ""), file=sys.stderr)
    print(f"afss distill: {len(rounds)} round{'' if len(rounds) == 1 else 's'}, {time.perf_counter() - start:.0f} s "
          f"-> {args.out}/student.pt",
          file=sys.stderr)
    if config.rescore is not None:
        print(f"afss distill: its students are scored with --rescore {config.rescore}; label as they were scored with "
              f"`afss predict --weights {args.out}/student.pt --rescore {config.rescore}`", file=sys.stderr)
    return 0
