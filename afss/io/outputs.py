"""Output paths checked before the long work starts, so that no run writes over the user's data.

Three rules every command follows:

* an output is never one of the command's own inputs (the same path, a hard link or a symlink to it);
* an output that exists is replaced only when this command made it before from the same inputs (a
  rerun); anything else — ground truth, labels of another image set, a file afss did not write —
  needs ``overwrite`` (``--overwrite``);
* the output's folder must be creatable and writable, found out before any image is processed.

Whether an existing output "came from the same inputs" is read from its ``info``: ``stage`` and
``inputs`` (see `input_identity`), which the stages record in everything they write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from afss.errors import AfssError

__all__ = ["check_output_path", "check_replaceable", "digest", "input_identity", "same_file", "writable_folder"]


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist: compare the paths they would have
        try:
            return Path(a).resolve() == Path(b).resolve()
        except RuntimeError:  # a symbolic-link loop (Python < 3.13 raises this, not OSError): not one file
            return False


def check_output_path(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                      flag: str = "--out", example: str = "labels.json",
                      suffixes: tuple[str, ...] | None = None) -> Path:
    """Fail before the long part: ``out`` names a file (not a folder), none of ``inputs``, with an
    allowed suffix, in a folder that can be created and written.

    Raises:
        AfssError: one line naming ``out`` and what is wrong.
    """
    out = Path(out)
    if out.is_dir():
        raise AfssError(f"{out}: is a folder; {flag} names the file to write, e.g. {out / example}")
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise AfssError(f"{out}: {flag} must end in {' or '.join(suffixes)}, found {out.suffix or 'no extension'!r}")
    for given in inputs:
        if given is not None and same_file(out, given):
            raise AfssError(f"{out}: is an input of this command ({given}); {flag} must name another file")
    writable_folder(out.parent, what=f"its folder, for {out}")
    return out


def writable_folder(folder: str | os.PathLike, *, what: str = "the folder") -> Path:
    """``folder``, created if missing and checked writable, or one `AfssError` line naming it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AfssError(f"{folder}: cannot create {what} ({e.strerror or e})") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AfssError(f"{folder}: folder is not writable")
    return folder


def digest(items: Iterable[Any]) -> str:
    """A short, stable fingerprint of JSON-able items (16 hex digits of SHA-256)."""
    h = hashlib.sha256()
    for item in items:
        h.update(json.dumps(item, sort_keys=True, separators=(",", ":"), default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def input_identity(images: Any, labels: Any = None) -> dict[str, Any]:
    """What identifies a run's inputs: the image root (absolute), how many images, a digest of their
    file names in order, and a digest of the input labels' instances where labels are given.

    Args:
        images: the `LabelSet` of images processed (all of them, before any ``--limit``).
        labels: the `LabelSet` of labels being refined, or ``None``.
    """
    identity: dict[str, Any] = {
        "image_root": os.path.abspath(images.image_root) if images.image_root is not None else os.getcwd(),
        "images": len(images.images),
        "file_names": digest(im.file_name for im in images.images),
    }
    if labels is not None:
        identity["labels"] = digest(
            (im.file_name, [(i.box_xyxy, i.score, i.category_id, (i.rle or {}).get("counts")) for i in im.instances])
            for im in labels.images)
    return identity


def check_replaceable(out: str | os.PathLike, *, stage: str, inputs: Mapping[str, Any],
                      overwrite: bool = False, keep: Iterable[str] | None = None) -> None:
    """Refuse to replace an existing ``out`` that this stage did not make from the same ``inputs``,
    or (``keep``: the file names a ``--limit`` run writes) whose finished images that run would drop.

    Raises:
        AfssError: ``out`` exists, ``overwrite`` is off, and it is not a JSON file whose ``info``
            records this ``stage`` and these ``inputs``, or it lists images outside ``keep``; the
            message says what it is instead.
    """
    out = Path(out)
    if overwrite or not out.is_file():
        return
    try:
        with out.open(encoding="utf-8") as f:
            data = json.load(f)
        info = data.get("info") or {}
        old_stage, old_inputs = info.get("stage"), info.get("inputs")
    except (OSError, ValueError, AttributeError, RecursionError):
        data, old_stage, old_inputs = None, None, None
    if old_stage == stage and old_inputs == json.loads(json.dumps(dict(inputs), default=str)):
        if keep is not None:  # a rerun, but a limited one must not drop what the earlier run finished
            kept = set(keep)
            lost = [n for n in (im.get("file_name") for im in data.get("images") or []) if n not in kept]
            if lost:
                raise AfssError(f"{out}: holds {len(lost)} finished image(s) beyond this --limit (e.g. {lost[0]}) "
                                "that the limited output would replace; rerun without --limit, choose another --out, "
                                "or --overwrite")
        return  # a rerun of the same command: replacing it is what the user asks for
    if old_stage is None:
        what = "is not an output of afss " + stage
    elif old_stage != stage:
        what = f"is an output of afss {old_stage}, not of afss {stage}"
    else:
        changed = [k for k in sorted(set(old_inputs or {}) | set(inputs))
                   if (old_inputs or {}).get(k) != inputs.get(k)]
        what = "was made from other inputs (" + "; ".join(
            f"{k} {(old_inputs or {}).get(k)!r}, now {inputs.get(k)!r}" for k in changed) + ")"
    raise AfssError(f"{out}: exists and {what}; pass --overwrite (overwrite=True from Python) to replace it, or choose another --out")


def read_finished(path: str | os.PathLike, stage: str):
    """The `LabelSet` at ``path`` when a run of ``stage`` finished it (its ``info.stage``, written at
    the very end, after the journal), else ``None``: what a resumed pipeline may skip."""
    from afss.io.coco import read_coco

    path = Path(path)
    if not path.is_file():
        return None
    labels = read_coco(path, allow_absolute_paths=True)
    return labels if labels.info.get("stage") == stage else None
