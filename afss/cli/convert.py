"""``afss convert``: read a dataset layout and write its ground truth as COCO instances JSON."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import (
    add_overwrite_argument,
    add_path_policy_argument,
    existing_files,
    given,
    progress_bar,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.datasets import READERS

    p = subparsers.add_parser(
        "convert",
        help="dataset layout (SPARK, SPEED+, TANGO, COCO, folder) -> COCO ground-truth JSON",
        description="Read a dataset in its own layout and write its ground truth as COCO instances JSON "
                    "(RLE masks, paths relative to the dataset root). Unreadable images are recorded, "
                    "not fatal.",
    )
    p.add_argument("--from", dest="kind", required=True, choices=sorted(READERS), help="dataset layout")
    p.add_argument("--root", required=True, help="dataset folder (coco: the JSON file or its folder)")
    p.add_argument("--split", default=None, help="split to read (default: every split present)")
    p.add_argument("--domain", default=None, help="speedplus domain: synthetic (default), lightbox, sunlamp")
    p.add_argument("--masks", default=None, help="folder of binary masks named like the images (coco, folder, "
                                                  "speedplus)")
    p.add_argument("--images", dest="image_root", default=None,
                   help="coco: folder the JSON's file_name entries are relative to")
    p.add_argument("--missing-mask", default=None, choices=("empty", "error"),
                   help="an image without a mask file: keep it with no instances (empty, default) or record "
                        "it as an error, which leaves it out of scoring")
    p.add_argument("--out", required=True, help="output COCO JSON file")
    add_overwrite_argument(p)
    add_path_policy_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from afss.datasets import open_dataset
    from afss.io.coco import write_coco
    from afss.io.outputs import check_output_path, check_replaceable

    t0 = time.perf_counter()
    check_output_path(args.out, inputs=existing_files(args.root), example="gt.json", suffixes=(".json",))
    options = given(args, "split", "domain", "masks", "image_root", "missing_mask")
    if args.kind == "coco" and args.allow_absolute_paths:
        options["allow_absolute_paths"] = True
    reader = open_dataset(args.kind, args.root, **options)
    # where the data comes from (not how it is read): a rerun with other reading options may replace it
    inputs = {"dataset": args.kind, "root": os.path.abspath(args.root),
              **{k: (os.path.abspath(v) if k in ("masks", "image_root") else v) for k, v in options.items()
                 if k in ("split", "domain", "masks", "image_root")}}
    check_replaceable(args.out, stage="convert", inputs=inputs, overwrite=bool(args.overwrite))
    with progress_bar(args, total=len(reader), desc=f"convert {args.kind}") as advance:
        labels = reader.read(progress=advance)
    path = write_coco(labels.replace(info={**labels.info, "stage": "convert", "inputs": inputs}), args.out)
    n_err = sum(im.error is not None for im in labels.images)
    print(f"afss convert: {len(labels)} images, {labels.num_instances} instances, {n_err} images with errors, "
          f"{time.perf_counter() - t0:.1f} s -> {path}", file=sys.stderr)
    return 0
