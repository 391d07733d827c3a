"""``afss config``: the ready run configs that ship with afss — list them, print one to copy and edit."""

from __future__ import annotations

import argparse
import difflib
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
    from afss.run.ready import ready_configs

    if args.action == "list" and args.name is not None:
        raise AfssError(f"config list takes no name (got {args.name!r}); afss config show NAME prints one")
    if args.action == "list":
        for name, path in ready_configs().items():
            first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
            print(f"{name:<20} {first}")
        return 0
    if args.name is None:
        raise AfssError("config show: give a NAME (afss config list shows them)")
    ready = ready_configs()
    if args.name not in ready:  # only afss's own: a file of the user's is theirs to read
        close = difflib.get_close_matches(args.name, list(ready), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise AfssError(f"{args.name}: not a ready config's name ({', '.join(ready)}){hint}")
    sys.stdout.write(ready[args.name].read_text(encoding="utf-8"))
    return 0
