"""``afss predict``: run a trained student (``.pt`` or ``.onnx``) over images -> COCO with masks and scores.

The student is a teacher (`afss.student.model.StudentTeacher`), so this is the label stage with it:
resumable, every image recorded once, unreadable images recorded with their reason.
"""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import (
    add_engine_arguments,
    add_image_source_arguments,
    add_path_policy_argument,
    add_run_arguments,
    engine_from_args,
    engine_label,
    existing_files,
    given,
    progress_bar,
    read_images,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="run the student (.pt or .onnx) over images -> COCO JSON with masks and scores",
        description="Run a trained student over a folder, a COCO file's images or a dataset; masks at the original "
                    "resolution. Resumable like afss label. .pt files are pickles: load only weights you trust.",
    )
    p.add_argument("--weights", required=True, help="the student: a .pt from afss train or an .onnx from afss export")
    add_image_source_arguments(p)
    p.add_argument("--out", required=True, help="output COCO JSON")
    p.add_argument("--imgsz", type=int, default=None, help="inference size (default 512; ONNX models have their own)")
    p.add_argument("--conf", type=float, default=None, help="minimum confidence (default 0.05)")
    p.add_argument("--device", default=None, help="cpu (default), 0 / cuda:0, mps")
    p.add_argument("--batch-size", type=int, default=None, help="images per model call (default 8)")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--top1", dest="top1", action="store_true", default=None,
                      help="keep the most confident instance per image (default)")
    keep.add_argument("--all", dest="top1", action="store_false", help="keep every instance")
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
    check_output_path(args.out, inputs=existing_files(args.coco, args.root, args.weights), suffixes=(".json",))
    check_limit(args.limit)
    engine = engine_from_args(args)
    student = build_teacher("student", weights=args.weights, **given(args, "imgsz", "conf", "device"))
    images = read_images(args)
    total = len(images) if args.limit is None else min(args.limit, len(images))
    with progress_bar(args, total=total, desc=f"predict (student{engine_label(args, engine)})") as advance:
        labels = label_images(student, images, out=args.out, progress=advance, engine=engine,
                              **given(args, "batch_size", "top1", "resume", "overwrite", "limit"))
    c, info = labels.info["counts"], labels.info
    print(f"afss predict: {c['images']} images, {c['labelled']} with a detection, {c['empty']} empty, "
          f"{c['failed']} failed, {time.perf_counter() - start:.1f} s, {info['images_per_second'] or 0:.1f} img/s "
          f"-> {args.out}", file=sys.stderr)
    return 0
