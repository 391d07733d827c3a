"""``afss config``: the ready run configs that ship with afss — list them, print one to copy and edit."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "config", help="the ready run configs: list them, or print one to copy and edit",
        description="afss ships ready configs for `afss run`: the paper's four settings (spark2024, "
                    "speedplus_lightbox, speedplus_sunlamp, tango), SPARK-2021 on a CPU and the demo. "
                    "`afss run NAME` runs one as it is (relative paths from the current folder); "
                    "`afss config show NAME > my.yaml` copies one to edit.",
    )
    p.add_argument("action", choices=("list", "show"), help="list: the ready configs; show: print one")
    p.add_argument("name", nargs="?", metavar="NAME", help="a ready config's name (show)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.errors import AfssError
    from afss.run.ready import find_config, ready_configs

    if args.action == "list":
        for name, path in ready_configs().items():
            first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
            print(f"{name:<20} {first}")
        return 0
    if args.name is None:
        raise AfssError("config show: give a NAME (afss config list shows them)")
    found = find_config(args.name)
    if not found.packaged:  # a file of the user's would be shown as is; say what `show` is for instead
        raise AfssError(f"{args.name}: not a ready config's name (afss config list shows them)")
    sys.stdout.write(found.path.read_text(encoding="utf-8"))
    return 0
