"""``afss label``: run a teacher over images and write COCO JSON with scores (crash-safe, resumable)."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import (
    add_engine_arguments,
    add_image_source_arguments,
    add_path_policy_argument,
    add_run_arguments,
    add_teacher_arguments,
    add_top1_arguments,
    engine_from_args,
    engine_label,
    existing_files,
    given,
    progress_bar,
    read_images,
    report_failures,
    teacher_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.teachers import DEFAULT_TEACHER, TEACHERS

    p = subparsers.add_parser(
        "label",
        help="label images with a text-prompted teacher -> COCO JSON with scores",
        description="Run a teacher over a folder, a COCO file's images or a dataset and write COCO instances "
                    "JSON with a score on every annotation. An interrupted run continues where it stopped "
                    "(rerun the same command); per-image failures are recorded with their reason.",
    )
    add_image_source_arguments(p)
    p.add_argument("--out", required=True, help="output COCO JSON")
    p.add_argument("--teacher", default=DEFAULT_TEACHER, choices=sorted(TEACHERS),
                   help=f"which teacher (default {DEFAULT_TEACHER}; 'photometric' needs no weights)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per teacher call and per journal flush (default 8); a model teacher "
                        "splits them into forward passes of its own batch_size (-o batch_size=N, default 4)")
    add_top1_arguments(p, all_help="keep every instance the teacher returns")
    add_teacher_arguments(p)
    add_run_arguments(p)
    add_engine_arguments(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.teachers import build_teacher

    start = time.perf_counter()
    engine = check_run(args, args.coco, args.root)
    images = read_images(args)
    from afss.label import check_label_output

    check_label_output(images, args.out, overwrite=bool(args.overwrite), limit=args.limit)  # before any weights load
    teacher = build_teacher(args.teacher, **teacher_options(args))
    labels = label_with_progress(args, teacher, images, engine, desc=f"label ({args.teacher}", options=("prompt",))
    c, info = labels.info["counts"], labels.info
    print(f"afss label: {c['images']} images, {c['labelled']} labelled, {c['empty']} empty, {c['failed']} failed, "
          f"{c['instances']} instances, {time.perf_counter() - start:.1f} s, "
          f"{info['images_per_second'] or 0:.1f} img/s -> {args.out}", file=sys.stderr)
    report_failures(labels, args.out)
    return 0


def check_run(args: argparse.Namespace, *inputs) -> object:
    """What label and predict check before reading any image: ``--out`` (never one of ``inputs``),
    ``--limit``, the engine flags. Returns the engine."""
    from afss.io.outputs import check_output_path
    from afss.resumable import check_limit

    check_output_path(args.out, inputs=existing_files(*inputs), suffixes=(".json",))
    check_limit(args.limit)
    return engine_from_args(args)


def label_with_progress(args: argparse.Namespace, teacher, images, engine, *, desc: str, options=()):
    """`afss.label.label_images` under a progress bar, with the run flags label and predict share."""
    from afss.label import label_images

    total = len(images) if args.limit is None else min(args.limit, len(images))
    with progress_bar(args, total=total, desc=f"{desc}{engine_label(args, engine)})") as advance:
        return label_images(teacher, images, out=args.out, progress=advance, engine=engine,
                            **given(args, *options, "batch_size", "top1", "resume", "overwrite", "limit"))
