"""``afss refine``: TTA + Weighted Boxes Fusion + re-segmentation + confidence filter -> COCO JSON."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from afss.cli.common import (
    add_cut_arguments,
    add_engine_arguments,
    add_path_policy_argument,
    add_run_arguments,
    add_teacher_arguments,
    add_top1_arguments,
    cut_options,
    engine_from_args,
    engine_label,
    existing_files,
    given,
    progress_bar,
    report_failures,
    teacher_options,
)
from afss.errors import AfssError

# CLI flag -> RefineConfig field; passed on only when the user gave it.
_CONFIG_FLAGS = ("iou_thr", "skip_box_thr", "conf_type", "count_empty_views", "mask_fusion", "vote_threshold",
                 "score_source", "top1", "min_area_px", "score_field", "prompt")


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.refine.fusion import CONF_TYPES
    from afss.teachers import TEACHERS

    p = subparsers.add_parser(
        "refine",
        help="refine teacher labels by TTA + Weighted Boxes Fusion, then keep confident ones",
        description="Run the teacher on test-time-augmented views of each image, map every view's boxes back "
                    "to the original frame, fuse them with Weighted Boxes Fusion, re-segment the fused box "
                    "with the teacher's segmenter (or vote the views' masks), and keep labels scoring >= "
                    "--min-score. Filtered images stay in the output with zero instances and the reason. "
                    "Writes OUT and OUT's stem + .summary.json.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", metavar="FILE", help="teacher labels (COCO JSON from afss label): their images "
                                                      "are refined and their detections are the identity view")
    src.add_argument("--images", metavar="DIR", help="folder of images (recursive); the teacher runs every view")
    p.add_argument("--image-root", metavar="DIR",
                   help="folder the --labels file names are relative to (default: recorded in the file, else its folder)")
    p.add_argument("--out", required=True, help="output COCO JSON")
    p.add_argument("--teacher", default=None, choices=sorted(TEACHERS),
                   help="which teacher (default: the one recorded in --labels, with its recorded options "
                        "such as model folders and thresholds; else grounded-sam2)")
    p.add_argument("--tta", default=None, metavar="VIEWS",
                   help="comma-separated views (default identity,vflip): identity, hflip, vflip, rot90, rot180, "
                        "rot270, scale<f>, brightness<f>, contrast<f>, gamma<f>, e.g. identity,vflip,scale0.75")
    add_cut_arguments(p)
    add_top1_arguments(p, top1_help="one label per image (default)",
                       all_help="several objects per image: every box of every view is fused, every fused box that "
                                "passes the filter is kept (the teacher is asked for all its boxes too)")
    p.add_argument("--min-area", dest="min_area_px", type=float, default=None, help="smallest mask area, px (default 0)")
    p.add_argument("--score-field", default=None,
                   help="score the filter reads: score (default), box_score (the fused box's), mask_score (the "
                        "segmenter's quality; with --mask-fusion segmenter)")
    p.add_argument("--iou-thr", type=float, default=None, help="WBF IoU threshold (default 0.55)")
    p.add_argument("--skip-box-thr", type=float, default=None, help="WBF minimum box score (default 0.05); an image "
                   "no view of which reaches it keeps its own label, for the filter to cut")
    p.add_argument("--conf-type", default=None, choices=CONF_TYPES, help="WBF confidence rule (default avg)")
    p.add_argument("--count-empty-views", action="store_true", default=None,
                   help="views that found nothing lower the fused score (the reference code ignores them)")
    p.add_argument("--mask-fusion", default=None, choices=("segmenter", "vote"),
                   help="re-segment the fused box or vote the views' masks (default: the teacher's choice: "
                        "segmenter for SAM-based teachers, vote for photometric and salient)")
    p.add_argument("--vote-threshold", type=float, default=None, help="share of the vote a pixel needs (0.5)")
    p.add_argument("--score-source", default=None, choices=("mask", "box", "mean"),
                   help="a label's score: the segmenter's quality (mask, default), the fused detector score "
                        "(box) or their geometric mean")
    add_teacher_arguments(p)
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per teacher call and per journal flush (default 4); a model teacher "
                        "splits their views into forward passes of its own batch_size (-o batch_size=N, default 4)")
    add_run_arguments(p)
    add_engine_arguments(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.io.coco import read_coco
    from afss.io.outputs import check_output_path
    from afss.label import images_from_folder
    from afss.refine import DEFAULT_VIEWS, RefineConfig, parse_views, refine_labels
    from afss.refine.refiner import summary_path
    from afss.resumable import check_limit
    from afss.teachers import DEFAULT_TEACHER, build_teacher

    start = time.perf_counter()
    views = parse_views(DEFAULT_VIEWS if args.tta is None else args.tta)  # fail before loading anything; "" too
    config = RefineConfig(**given(args, *_CONFIG_FLAGS), **cut_options(args),
                          **({"per_view_top_k": None} if args.top1 is False else {}))
    inputs = existing_files(args.labels)
    check_output_path(args.out, inputs=inputs, suffixes=(".json",))
    check_output_path(summary_path(args.out), inputs=inputs, flag="--out (its .summary.json)")
    check_limit(args.limit)
    engine = engine_from_args(args)
    labels = None
    if args.labels is not None:
        labels = read_coco(args.labels, image_root=args.image_root, allow_absolute_paths=args.allow_absolute_paths)
    images = labels if labels is not None else images_from_folder(args.images)
    recorded = labels.info.get("teacher") if labels is not None else None
    name = args.teacher or recorded or DEFAULT_TEACHER
    options = {**(_recorded_options(labels, args) if name == recorded else {}),
               **teacher_options(args)}
    try:
        teacher = build_teacher(name, **options)
    except AfssError as e:
        if args.teacher or recorded:
            raise
        where = f"{args.labels} records no teacher" if args.labels else "images alone name no teacher"
        raise AfssError(f"{where}, so refine tried the default, {name}; pass --teacher (e.g. photometric, weights-free): "
                        f"{e}") from e
    total = len(images) if args.limit is None else min(args.limit, len(images))
    desc = f"refine ({name}, {','.join(v.name for v in views)}{engine_label(args, engine)})"
    with progress_bar(args, total=total, desc=desc) as advance:
        refined, summary = refine_labels(teacher, images, views=views, labels=labels, config=config, out=args.out,
                                         progress=advance, engine=engine, **given(args, "resume", "batch_size", "overwrite", "limit"))
    print(f"afss refine: {summary.line()}; {refined.num_instances} instances, "
          f"{time.perf_counter() - start:.1f} s -> {args.out}", file=sys.stderr)
    report_failures(refined, args.out)
    return 0


def _recorded_options(labels, args: argparse.Namespace) -> dict:
    """The teacher options ``afss label`` recorded (model folders, thresholds), so that refining
    uses the same teacher; flags given on this command line override them."""
    options = {k: v for k, v in dict(labels.info.get("teacher_options") or {}).items() if k != "teacher"}
    if options:
        log = logging.getLogger(__name__)
        log.info("teacher %s with the options recorded in %s", labels.info.get("teacher"), args.labels)
        log.debug("recorded options: %s", ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
    return options
