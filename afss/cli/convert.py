"""``afss convert``: read a dataset layout and write its ground truth as COCO instances JSON."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import given, progress_bar


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.datasets import open_dataset
    from afss.io.coco import write_coco

    t0 = time.perf_counter()
    reader = open_dataset(args.kind, args.root, **given(args, "split", "domain", "masks", "image_root", "missing_mask"))
    with progress_bar(args, total=len(reader), desc=f"convert {args.kind}") as advance:
        labels = reader.read(progress=advance)
    path = write_coco(labels.replace(info={**labels.info, "stage": "convert"}), args.out)
    n_err = sum(im.error is not None for im in labels.images)
    print(f"afss convert: {len(labels)} images, {labels.num_instances} instances, {n_err} images with errors, "
          f"{time.perf_counter() - t0:.1f} s -> {path}", file=sys.stderr)
    return 0
