"""``afss eval``: score a predictions COCO JSON against ground truth; table on stdout, JSON on disk."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import csv_list, given


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="COCO AP and the paper's single-target AP of predictions against ground truth",
        description="Match images by file name, score masks (segm) and boxes (bbox) with COCO AP and the "
                    "paper's protocol (top-1 prediction, one target per image), print a table and write "
                    "JSON metrics.",
    )
    p.add_argument("--gt", required=True, help="ground-truth COCO instances JSON")
    p.add_argument("--pred", required=True, help="predictions COCO JSON (score on every annotation)")
    p.add_argument("--iou-type", dest="iou_types", type=csv_list, default=None, metavar="LIST",
                   help="comma list of segm, bbox (default: both)")
    p.add_argument("--protocol", dest="protocols", type=csv_list, default=None, metavar="LIST",
                   help="comma list of coco, paper (default: both)")
    p.add_argument("--categories", type=csv_list, default=None, metavar="LIST",
                   help="only these ground-truth category names or ids (default: all)")
    p.add_argument("--per-class", dest="per_class", action="store_true", default=None,
                   help="keep categories apart and report each (default: collapse into one class)")
    p.add_argument("--out", default=None, help="metrics JSON (default: <pred stem>.metrics.json next to --pred)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # No progress bar: scoring is one vectorised pass (about a second for a thousand images), and a
    # bar drawn before a bad-input error would break the one-line error contract.
    from afss.evaluate import default_metrics_path, evaluate

    start = time.perf_counter()
    report = evaluate(args.gt, args.pred, **given(args, "iou_types", "protocols", "categories", "per_class"))
    out = report.write_json(args.out or default_metrics_path(args.pred))
    print(report.table())
    print(f"afss eval: {report.num_images} images, {report.num_gt} ground-truth and {report.num_pred} predicted "
          f"instances, {time.perf_counter() - start:.1f} s -> {out}", file=sys.stderr)
    return 0
