"""The one exception type users see.

A user error (bad path, malformed file, missing weights) raises `AfssError` with a single line that
names the file, what was expected and what was found. The CLI prints it as `afss: error: ...` and
exits 2. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AfssError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""


class AfssValueError(AfssError, ValueError):
    """A bad value handed to afss from Python (a carrier's field, an image array): an `AfssError`,
    and the `ValueError` such checks raise in Python, so either ``except`` catches it."""


def unknown_choice(kind: str, got: str, choices: Iterable[str]) -> AfssError:
    """An `AfssError` for an unknown name, suggesting the closest valid one."""
    choices = sorted(choices)
    close = difflib.get_close_matches(got, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return AfssError(f"unknown {kind} {got!r}, expected one of {', '.join(choices)}{hint}")
