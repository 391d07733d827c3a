"""``afss report``: a run folder -> one self-contained HTML page, optionally a screenshot of it."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="one self-contained HTML page of a run folder (AP table, curves, galleries, timings)",
        description="Write one HTML page of an `afss run` folder: the AP table per stage, precision-recall curves, "
                    "the images where teacher and student disagree most, the images the filter dropped and why, "
                    "score against IoU, training curves, config and timings. Images are inlined; the page needs "
                    "no network. Files missing from the run folder are listed on the page.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (afss run --out)")
    p.add_argument("--out", default=None, metavar="FILE.html", help="the page to write (default: RUN_DIR/report.html)")
    p.add_argument("--screenshot", default=None, metavar="FILE.png|.jpg",
                   help="also render the page in headless Chromium and save a full-page PNG (JPEG for .jpg; needs Debian's "
                        "chromium and the playwright package: pip install 'afss[report]')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.io.outputs import check_output_path
    from afss.report import build_report

    t0 = time.perf_counter()
    if args.screenshot is not None:  # before the page is built: a missing browser fails in one line, at once
        from afss.report.browser import find_chromium, require_playwright

        check_output_path(args.screenshot, flag="--screenshot", example="report.png", suffixes=(".png", ".jpg", ".jpeg"))
        require_playwright()
        find_chromium()
    path = build_report(args.run_dir, args.out)
    outputs = [str(path)]
    if args.screenshot is not None:
        from afss.report.browser import check_page

        check = check_page(path, screenshot=args.screenshot)
        outputs.append(str(check.screenshot))
        print(f"afss report: in Chromium: {check.line()}", file=sys.stderr)
        for line in (*check.console, *(f"request: {url}" for url in check.requests)):
            print(f"afss report: warning: {line}", file=sys.stderr)
    size_kb = path.stat().st_size / 1024
    print(f"afss report: {size_kb:.0f} KB, {time.perf_counter() - t0:.1f} s -> {', '.join(outputs)}", file=sys.stderr)
    return 0
