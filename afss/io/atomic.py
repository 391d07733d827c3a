"""Atomic file writes: a crash never leaves a half-written output behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from afss.errors import AfssError


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically; see `write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    Raises:
        AfssError: the folder cannot be created or written, or the disk is full; ``path`` is then
            left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise AfssError(f"{path}: cannot write ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs should be as readable as open() makes them
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise AfssError(f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, default=_json_default))


def plain(obj: Any) -> Any:
    """JSON round trip, so that tuples and numpy values compare equal to what a file stores."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays and read-only mappings show up in provenance; make them plain JSON.
    if hasattr(obj, "tolist") and getattr(obj, "ndim", 0):  # an array: .item() takes only one value
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "items"):
        return dict(obj.items())
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
