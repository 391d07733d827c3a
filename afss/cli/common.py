"""Helpers the subcommands share: progress bars, option parsing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(args: argparse.Namespace, total: int, desc: str, unit: str = "img") -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (none with ``--quiet``); yields ``advance(n)`` for the library's ``progress``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=getattr(args, "quiet", False),
               dynamic_ncols=True, smoothing=0.1)
    try:
        yield bar.update
    finally:
        bar.close()


def csv_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (argparse ``type=``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` that the user actually set (not ``None``), for ``**kwargs``."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
