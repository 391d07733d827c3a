"""``afss export-yolo``: pseudo-labels -> an Ultralytics YOLO-seg dataset, for training elsewhere."""

from __future__ import annotations

import argparse
import sys

from afss.cli.common import add_path_policy_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-yolo", help="COCO labels -> YOLO-seg dataset (dataset.yaml, images linked, polygons)",
        description="Write labels as an Ultralytics YOLO-seg dataset: images linked (not copied), one polygon per "
                    "instance (parts joined, specks dropped), a seeded validation split carved from the labels. "
                    "Images without an instance are left out.",
    )
    p.add_argument("labels", metavar="LABELS", nargs="?", help="COCO JSON with the labels (or --labels)")
    p.add_argument("--labels", dest="labels_flag", metavar="LABELS", help="the same, as an option (as train takes it)")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder")
    p.add_argument("--image-root", metavar="DIR", help="folder the label file names are relative to")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share held out for validation (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.errors import AfssError
    from afss.io.coco import read_coco
    from afss.student.dataset import export_yolo

    if (args.labels is None) == (args.labels_flag is None):
        raise AfssError("export-yolo: give the labels once, as LABELS or --labels LABELS")
    args.labels = args.labels or args.labels_flag
    labels = read_coco(args.labels, image_root=args.image_root, allow_absolute_paths=args.allow_absolute_paths)
    ds = export_yolo(labels, args.out, val_fraction=args.val_fraction, seed=args.seed)
    converted = f", {ds.converted} written as 8-bit PNGs of the pixels labelled" if ds.converted else ""
    print(f"afss export-yolo: {ds.train} train / {ds.val} val images, {ds.instances} polygons, {ds.skipped} images "
          f"without an instance left out{converted} -> {ds.yaml}", file=sys.stderr)
    return 0
