"""``afss synth``: render a synthetic dataset with exact masks, or a preview picture of the domains."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import given, progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="render synthetic spacecraft images with exact masks (COCO or a native layout)",
        description="Render procedural spacecraft scenes (CPU) with exact instance and part masks. "
                    "Example: afss synth --domain mixed --n 500 --size 512 --seed 0 --out data/synth",
    )
    p.add_argument("--out", help="output folder (images + gt.json, or the native layout of --format)")
    p.add_argument("--n", type=int, help="number of images (default 100; with --preview: columns, default 6)")
    p.add_argument("--size", type=int, help="image size in pixels (square; default 512, preview 256)")
    p.add_argument("--domain", help="clean, earth, harsh or mixed (default mixed)")
    p.add_argument("--seed", type=int, help="dataset seed (default 0); image k depends only on seed and k")
    p.add_argument("--format", dest="fmt", help="coco (default), spark, speedplus or tango")
    p.add_argument("--split", help="split name for native layouts (default train)")
    p.add_argument("--workers", type=int, help="processes (default: all CPU cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier afss synth dataset of other settings in --out (labels made from it "
                        "lose their images); the same settings re-render the same scenes without it")
    p.add_argument("--preview", metavar="PNG", help="write a grid of examples per domain (rows: clean, earth, "
                                                    "harsh, mixed; --domain a,b picks rows) with mask outlines, instead of a dataset")
    p.add_argument("--parts", action="store_true", help="preview: outline body (red) and panels (blue)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.errors import AfssError

    t0 = time.perf_counter()
    # options that belong to the other mode are refused, not dropped: the user expected them to do something
    if args.preview:
        extra = [flag for flag, value in (("--out", args.out), ("--format", args.fmt), ("--split", args.split),
                                          ("--workers", args.workers), ("--overwrite", args.overwrite or None))
                 if value is not None]
        if extra:
            raise AfssError(f"afss synth: --preview writes one picture, not a dataset: {', '.join(extra)} "
                            f"would do nothing (run it once with --preview, once with --out)")
    elif args.parts:
        raise AfssError("afss synth: --parts outlines the parts in a --preview picture; without --preview it "
                        "would do nothing")
    if args.preview:
        from afss.synth.preview import write_preview

        opts = given(args, "seed", "size")
        if args.n is not None:
            opts["per_domain"] = args.n
        if args.domain is not None:
            opts["domains"] = [d.strip() for d in args.domain.split(",")]
        path = write_preview(args.preview, parts=args.parts, **opts)
        print(f"afss synth: preview -> {path} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        return 0
    if not args.out:
        raise AfssError("afss synth: give --out DIR (or --preview PNG)")
    from afss.synth import render_dataset
    from afss.synth.dataset import check_synth_names, check_synth_numbers, check_synth_output, synth_settings

    n = args.n if args.n is not None else 100
    # before the bar is drawn
    check_synth_names(domain=args.domain, fmt=args.fmt)
    check_synth_numbers(n=n, size=args.size, seed=args.seed, workers=args.workers)
    check_synth_output(args.out, synth_settings(n=n, **given(args, "size", "domain", "seed", "fmt", "split")),
                       args.overwrite)
    with progress_bar(args, n, "synth") as advance:
        gt = render_dataset(args.out, n=n, progress=advance, overwrite=args.overwrite,
                            **given(args, "size", "domain", "seed", "fmt", "split", "workers"))
    dt = time.perf_counter() - t0
    print(f"afss synth: {len(gt)} images, {gt.num_instances} instances, {dt:.1f} s "
          f"({len(gt) / max(dt, 1e-9):.1f} img/s) -> {args.out}", file=sys.stderr)
    return 0
