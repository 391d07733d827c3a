"""The ready run configs that ship inside the package (`afss/configs/*.yaml`), addressable by name.

``afss run demo`` and ``afss run path/to/my.yaml`` both work: a path to an existing file wins; a bare
name (no folder, no ``.yaml``) is looked up among the ready configs. ``afss config show NAME`` prints
one to copy and edit.

Example:
    >>> sorted(ready_configs())  # doctest: +SKIP
    ['demo', 'spark2021', 'spark2024', 'speedplus_lightbox', 'speedplus_sunlamp', 'tango']
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from afss.errors import AfssError

__all__ = ["ConfigFile", "find_config", "ready_configs"]


@dataclass(frozen=True)
class ConfigFile:
    """A config resolved to a file; ``packaged``: one of afss's own (then relative ``root`` paths are
    taken from the current folder, since the package's folder is not the user's)."""

    path: Path
    packaged: bool


def ready_configs() -> dict[str, Path]:
    """``{name: path}`` of every config shipped in ``afss/configs/``."""
    folder = resources.files("afss") / "configs"
    return {Path(entry.name).stem: Path(str(entry)) for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")}


def find_config(name_or_path: str | os.PathLike) -> ConfigFile:
    """The config file that ``afss run NAME_OR_PATH`` means.

    Raises:
        AfssError: neither an existing file nor a ready config's name; one line listing the ready ones.
    """
    text = os.fspath(name_or_path)
    ready = ready_configs()
    bare = os.sep not in text and "/" not in text and not text.endswith((".yaml", ".yml"))
    try:
        if stat.S_ISREG(os.stat(text).st_mode) or not (bare and text in ready):
            return ConfigFile(Path(text), packaged=False)  # a file of that name wins; load_config says what else is wrong
    except FileNotFoundError:
        pass
    except OSError as e:  # a name too long, a link loop, a file used as a folder
        raise AfssError(f"{text}: cannot open ({e.strerror or e})") from None
    if bare and text in ready:  # a ready config's name, even beside a dataset folder of that name
        return ConfigFile(ready[text], packaged=True)
    names = ", ".join(ready)
    close = difflib.get_close_matches(Path(text).stem, list(ready), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise AfssError(f"{text}: no such config file, and not a ready config ({names}){hint}")
