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
    engine_from_args,
    engine_label,
    existing_files,
    given,
    progress_bar,
    read_images,
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
    p.add_argument("--batch-size", type=int, default=None, help="images per teacher call (default 8)")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--top1", dest="top1", action="store_true", default=None,
                      help="keep the most confident instance per image (default)")
    keep.add_argument("--all", dest="top1", action="store_false", help="keep every instance the teacher returns")
    add_teacher_arguments(p)
    add_run_arguments(p)
    add_engine_arguments(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.io.outputs import check_output_path
    from afss.label import label_images
    from afss.resumable import check_limit
    from afss.teachers import build_teacher

    start = time.perf_counter()
    check_output_path(args.out, inputs=existing_files(args.coco, args.root), suffixes=(".json",))
    check_limit(args.limit)
    engine = engine_from_args(args)
    images = read_images(args)
    teacher = build_teacher(args.teacher, **teacher_options(args))
    total = len(images) if args.limit is None else min(args.limit, len(images))
    with progress_bar(args, total=total, desc=f"label ({args.teacher}{engine_label(args, engine)})") as advance:
        labels = label_images(teacher, images, out=args.out, progress=advance, engine=engine,
                              **given(args, "prompt", "batch_size", "top1", "resume", "overwrite", "limit"))
    c, info = labels.info["counts"], labels.info
    print(f"afss label: {c['images']} images, {c['labelled']} labelled, {c['empty']} empty, {c['failed']} failed, "
          f"{c['instances']} instances, {time.perf_counter() - start:.1f} s, "
          f"{info['images_per_second'] or 0:.1f} img/s -> {args.out}", file=sys.stderr)
    return 0


