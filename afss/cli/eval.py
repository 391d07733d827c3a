"""``afss eval``: score a predictions COCO JSON against ground truth; table on stdout, JSON on disk."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import add_overwrite_argument, add_path_policy_argument, csv_list, given

PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PREVIEW_N = 256


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="COCO AP and the paper's single-target AP of predictions against ground truth",
        description="Match images by file name, score masks (segm) and boxes (bbox) with COCO AP and the "
                    "paper's protocol (top-1 prediction, one target per image), print a table and write "
                    "JSON metrics.",
    )
    p.add_argument("--gt", required=True, help="ground-truth COCO instances JSON")
    p.add_argument("--image-root", metavar="DIR",
                   help="folder the --gt file names are relative to, where its images sit (default: recorded "
                        "in the file, else its folder)")
    p.add_argument("--pred", required=True, action="append", metavar="PRED",
                   help="predictions COCO JSON (score on every annotation); repeat to compare several "
                        "(e.g. teacher labels and refined labels) in one table")
    p.add_argument("--iou-type", dest="iou_types", type=csv_list, default=None, metavar="LIST",
                   help="comma list of segm, bbox (default: both)")
    p.add_argument("--protocol", dest="protocols", type=csv_list, default=None, metavar="LIST",
                   help="comma list of coco, paper, reference (default: coco,paper); reference is the paper's "
                        "protocol computed as its reference script does (mask files read as grey > 0, empty "
                        "masks kept as targets, first prediction per image), to reproduce published numbers")
    p.add_argument("--gt-masks", dest="gt_masks", default=None, metavar="DIR",
                   help="ground-truth mask images named like the images, read by --protocol reference (TANGO "
                        "and SPEED+ ground truth from afss convert find theirs without it)")
    p.add_argument("--categories", type=csv_list, default=None, metavar="LIST",
                   help="only these ground-truth category names or ids (default: all)")
    p.add_argument("--per-class", dest="per_class", action="store_true", default=None,
                   help="keep categories apart and report each (default: collapse into one class)")
    p.add_argument("--only-labelled", dest="only_labelled", action="store_true", default=None,
                   help="score only images where the predictions hold an instance (e.g. the survivors of "
                        "refine's filter) instead of counting the others as misses")
    p.add_argument("--preview", default=None, metavar="PNG",
                   help="also draw a grid of images: ground truth green, each --pred in its own colour, "
                        "top-1 mask IoU in the title")
    p.add_argument("--preview-n", type=int, default=16, metavar="N",
                   help=f"images in the preview (default 16, at most {MAX_PREVIEW_N})")
    p.add_argument("--score-plot", default=None, metavar="PNG",
                   help="also plot each image's top-1 score against its IoU with the ground truth, per --pred, "
                        "and print Spearman's rank correlation: does the confidence track label quality?")
    p.add_argument("--out", default=None, help="metrics JSON (default: <pred stem>.metrics.json next to each --pred, "
                        "<pred stem>.labelled.metrics.json with --only-labelled)")
    add_overwrite_argument(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # No progress bar: scoring is one vectorised pass (about a second for a thousand images), and a
    # bar drawn before a bad-input error would break the one-line error contract.
    import os
    from pathlib import Path

    from afss.errors import AfssError
    from afss.evaluate import comparison_table, default_metrics_path, evaluate
    from afss.evaluate.preview import MAX_PREDICTION_SETS

    resolved = [os.path.realpath(p) for p in args.pred]  # realpath: a link loop is the reader's to report
    if len(set(resolved)) < len(resolved):  # each would write, and overwrite, the same metrics file
        twice = next(p for p, r in zip(args.pred, resolved) if resolved.count(r) > 1)
        raise AfssError(f"--pred {twice} is given twice; name each predictions file once")
    if args.out is not None and len(args.pred) > 1:
        raise AfssError("--out names one metrics file; with several --pred each gets <pred stem>.metrics.json")
    for flag, value in (("--preview", args.preview), ("--score-plot", args.score_plot)):
        if value is not None and len(args.pred) > MAX_PREDICTION_SETS:
            raise AfssError(f"{flag} draws at most {MAX_PREDICTION_SETS} --pred files, got {len(args.pred)}")
    from afss.evaluate.inputs import load_labels, load_predictions
    from afss.evaluate.report import metrics_inputs
    from afss.io.outputs import check_output_path, check_replaceable

    if not 1 <= args.preview_n <= MAX_PREVIEW_N:
        raise AfssError(f"--preview-n must be in [1, {MAX_PREVIEW_N}], got {args.preview_n}")
    start = time.perf_counter()
    inputs = [args.gt, *args.pred]
    suffix = ".labelled.metrics.json" if args.only_labelled else ".metrics.json"
    metrics_paths = [Path(args.out) if args.out else default_metrics_path(pred).with_name(Path(pred).stem + suffix)
                     for pred in args.pred]
    for path in metrics_paths:  # a place that cannot be written, before anything is read
        check_output_path(path, inputs=inputs, example="metrics.json", suffixes=(".json",))
    allow = bool(args.allow_absolute_paths)
    gt_set, _ = load_labels(args.gt, "gt", args.image_root, allow)  # read once, for every use below
    names = _display_names(args.pred)
    # the inputs are checked before the outputs they would replace: a bad file is the error to see
    preds = {name: load_predictions(p, gt_set, allow)[0] for name, p in zip(names, args.pred)}
    for pred, path in zip(args.pred, metrics_paths):  # every output checked before any scoring
        check_replaceable(path, stage="eval", inputs=metrics_inputs(args.gt, pred), overwrite=bool(args.overwrite))
    if args.preview is not None or args.score_plot is not None:
        images = [gt_set.image_path(im) for im in gt_set.images]  # a picture must not replace one of them
        for flag, value in (("--preview", args.preview), ("--score-plot", args.score_plot)):
            if value is not None:
                check_output_path(value, inputs=[*inputs, *images], flag=flag, example="preview.png",
                                  suffixes=PREVIEW_SUFFIXES)
    options = given(args, "iou_types", "protocols", "categories", "per_class", "only_labelled", "gt_masks")
    reports = {name: evaluate(gt_set, preds[name], names=(args.gt, p), **options) for name, p in zip(names, args.pred)}
    outs = [rep.write_json(path) for path, rep in zip(metrics_paths, reports.values())]
    quality = []
    if args.preview is not None or args.score_plot is not None:
        from afss.evaluate.preview import write_preview
        from afss.evaluate.score_quality import score_quality, write_score_plot

        if args.preview is not None:
            outs.append(write_preview(args.preview, gt_set, preds, n=args.preview_n))
        if args.score_plot is not None:
            outs.append(write_score_plot(args.score_plot, gt_set, preds))
            quality = [f"score vs IoU, {name}: {score_quality(gt_set, pred).line()}" for name, pred in preds.items()]
    print(next(iter(reports.values())).table() if len(reports) == 1 else comparison_table(reports))
    for line in quality:
        print(line)
    scored = ", ".join(f"{r.num_images}" if len(reports) == 1 else f"{name} {r.num_images}" for name, r in reports.items())
    print(f"afss eval: {scored} images scored, {sum(r.num_pred for r in reports.values())} predicted instances, "
          f"{time.perf_counter() - start:.1f} s -> {', '.join(map(str, outs))}", file=sys.stderr)
    return 0


def _display_names(paths: list[str]) -> list[str]:
    """File stems, with parent folders added until they are unique (``run1/labels``, ``run2/labels``)."""
    from pathlib import Path

    parts = [Path(p).with_suffix("").parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [f"{k + 1}:{name}" for k, name in enumerate(names)]  # the same file given twice
