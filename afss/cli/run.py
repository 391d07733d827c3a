"""``afss run``: every stage of a YAML config in order, resumable, ending with the AP table per stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="the whole pipeline from a YAML config: data -> teacher -> refine -> distill -> eval -> report",
        description="Runs every stage of CONFIG into --out through the library's API: the teacher labels and "
                    "refines, the student is distilled in rounds, every stage is scored on the held-out ground "
                    "truth, and report.html shows it. Rerun the same command to continue after a crash; finished "
                    "stages are skipped. `afss run --defaults` prints every key with its default.",
    )
    from afss.run.ready import ready_configs

    p.add_argument("config", nargs="?", metavar="CONFIG", help="a YAML config file, or a ready config's name: "
                   f"{', '.join(ready_configs())} (afss config list)")
    p.add_argument("--out", metavar="DIR", help="run folder (new, empty, or an earlier run of the same config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, value read as YAML (repeatable), e.g. --set student.epochs=5")
    p.add_argument("--defaults", action="store_true", help="print every config key with its default and exit")
    p.add_argument("--check", action="store_true", help="check the config, its inputs and --out if given; print the config resolved, and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from afss.cli.common import show_progress
    from afss.errors import AfssError
    from afss.run import default_yaml, load_config, run_pipeline
    from afss.run.config import config_to_dict
    from afss.run.runner import check_run_folder, check_run_inputs

    if args.defaults:
        sys.stdout.write(default_yaml())
        return 0
    if args.config is None:
        raise AfssError("run: give a CONFIG file or a ready config's name (e.g. demo; afss config list), "
                        "or --defaults to see every key")
    config = load_config(args.config, overrides=args.overrides)
    if args.check:  # dataset roots, the teacher, the student's start, --out if given; then the config as it will run
        if args.out is not None:
            check_run_folder(config, args.out)
        try:
            start = check_run_inputs(config, download=False)
        except AfssError as e:
            raise AfssError(f"{args.config}: {e}") from None
        if not Path(start).is_file() and start.endswith(".pt"):  # a published name, not here yet: say so, fetch nothing
            from afss.student.published import published_url

            print(f"note: student.init {start} is not here yet; the run downloads it from "
                  f"{published_url(Path(start).name)}", file=sys.stderr)
        sys.stdout.write(yaml.safe_dump(config_to_dict(config), sort_keys=False))
        return 0
    if args.out is None:
        raise AfssError("run: --out DIR is required (the run folder)")
    result = run_pipeline(config, args.out, progress=show_progress(args), say=lambda line: print(line, file=sys.stderr),
                          where=args.config)
    if result.table is not None:
        print(f"== AP (%) per stage on the held-out ground truth ({config.eval.source}); "
              "images without a label count as misses")
        print(result.table)
    else:
        print("no ground truth (eval.source: null): no AP table")
    if result.report is not None:
        print(f"report: {result.report}")
    return 0
