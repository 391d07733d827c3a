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
    add_top1_arguments,
    given,
    read_images,
    report_failures,
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
    p.add_argument("--imgsz", type=int, default=None, help="inference size (default: the size a .pt was trained at, else 512; ONNX models have "
                        "their own)")
    p.add_argument("--conf", type=float, default=None, help="minimum class confidence of the student's own, applied before --rescore (default 0.05)")
    p.add_argument("--device", default=None, help="cpu (default), 0 / cuda:0, mps")
    p.add_argument("--box", choices=("mask", "head"), default=None,
                   help="each box: the tight box of its mask (default) or the box head's own")
    p.add_argument("--rescore", default=None, metavar="TEACHER",
                   help="score each instance by sqrt(student confidence x this teacher's confidence in its box), "
                        "e.g. photometric: ranks the student's boxes better on imagery unlike its training's")
    p.add_argument("--batch-size", type=int, default=None, help="images per model call (default 8)")
    add_top1_arguments(p, all_help="keep every instance")
    add_run_arguments(p)
    add_engine_arguments(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.cli.label import check_run, label_with_progress
    from afss.teachers import build_teacher

    start = time.perf_counter()
    engine = check_run(args, args.coco, args.root, args.weights)
    student = build_teacher("student", weights=args.weights, **given(args, "imgsz", "conf", "device", "box", "rescore"))
    images = read_images(args)
    labels = label_with_progress(args, student, images, engine, desc="predict (student")
    c, info = labels.info["counts"], labels.info
    print(f"afss predict: {c['images']} images, {c['labelled']} with a detection, {c['empty']} empty, "
          f"{c['failed']} failed, {time.perf_counter() - start:.1f} s, {info['images_per_second'] or 0:.1f} img/s "
          f"-> {args.out}", file=sys.stderr)
    report_failures(labels, args.out)
    return 0
