"""Crash-safe, resumable batch processing shared by the stages that run a teacher over images.

While a stage runs, every finished image is appended to a journal next to its output
(``labels.json`` -> ``labels.json.partial.jsonl``): a header line with everything that determines the
result (teacher and its options, prompt, views, ...), then one JSON line per image (its COCO image
entry and annotations), flushed and fsync'ed per batch. A rerun with the same output and header
skips the images already done (by ``file_name``); a torn last line (a crash mid-write) is dropped and
that image is processed again; a journal written with a different header is refused rather than
mixed in. The stage writes its output atomically at the end and then removes the journal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.io.atomic import _json_default, write_text_atomic
from afss.io.coco import labelset_from_coco, labelset_to_coco
from afss.io.images import ImageReadError, load_image
from afss.types import ImageLabels, LabelSet

__all__ = ["Journal", "journal_path", "plain", "run_resumable"]

log = logging.getLogger(__name__)

_FORMAT = 1

BatchWork = Callable[[Sequence[ImageLabels], list["np.ndarray | str"]], Sequence[ImageLabels]]
"""``work(batch, loaded) -> results``: ``loaded[i]`` is the RGB array of ``batch[i]`` or why it could
not be read (``"unreadable: ..."``); one result per image, same ``file_name``."""


def journal_path(out: str | os.PathLike) -> Path:
    """Where the progress journal of ``out`` lives: ``labels.json`` -> ``labels.json.partial.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


def plain(obj: Any) -> Any:
    """JSON round trip, so that tuples and numpy values compare equal to what a journal stores."""
    return json.loads(json.dumps(obj, default=_json_default))


class Journal:
    """Open (or start) the journal of ``out``; ``done`` holds the images a previous run finished."""

    def __init__(self, out: str | os.PathLike, kind: str, header: Mapping[str, Any], *, resume: bool = True) -> None:
        self.path = journal_path(out)
        self.kind = kind
        self.header = plain({"afss_journal": kind, "format": _FORMAT, **header})
        self.done: dict[str, ImageLabels] = self._read() if resume and self.path.exists() else {}
        if not self.done:
            write_text_atomic(self.path, json.dumps(self.header) + "\n")
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, images: Sequence[ImageLabels]) -> None:
        lines = []
        for image in images:
            coco = labelset_to_coco(LabelSet(images=(image,)))
            entry = {"image": coco["images"][0], "annotations": coco["annotations"]}
            lines.append(json.dumps(entry, default=_json_default) + "\n")
        self._file.write("".join(lines))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, ImageLabels]:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        try:
            old = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            old = None
        if not isinstance(old, dict) or old.get("afss_journal") != self.kind or old.get("format") != _FORMAT:
            raise AfssError(f"{self.path}: not an afss {self.kind} journal (delete it, or use a new --out or --no-resume)")
        changed = sorted(k for k in set(old) | set(self.header) if old.get(k) != self.header.get(k))
        if changed:
            diff = "; ".join(f"{k} {_short(old.get(k))}, now {_short(self.header.get(k))}" for k in changed)
            raise AfssError(f"{self.path}: an interrupted run with a different {diff}; "
                            "use a new --out, or --no-resume to start afresh")
        good, entries = [], {}
        for n, line in enumerate(lines[1:], start=2):
            try:
                if not line.endswith("\n"):
                    raise ValueError("torn line")
                entry = json.loads(line)
                entries[entry["image"]["file_name"]] = (entry["image"], list(entry["annotations"]))
            except (ValueError, KeyError, TypeError):
                log.warning("%s: line %d is incomplete (interrupted write); that image is processed again", self.path, n)
                continue
            good.append(line)
        write_text_atomic(self.path, lines[0] + "".join(good))  # drop the torn tail before appending
        data = {"images": [im for im, _ in entries.values()],
                "annotations": [{**a, "id": k} for k, a in enumerate((a for _, anns in entries.values() for a in anns), 1)]}
        return {im.file_name: im for im in labelset_from_coco(data, where=str(self.path)).images}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_output(out: str | os.PathLike) -> Path:
    """Fail before the long part: ``out`` must be a file path whose folder can be created."""
    out = Path(out)
    if out.is_dir():
        raise AfssError(f"{out}: is a folder; --out names the JSON file to write, e.g. {out / 'labels.json'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AfssError(f"{out}: cannot create its folder ({e.strerror})") from e
    if not os.access(out.parent, os.W_OK):
        raise AfssError(f"{out.parent}: folder is not writable")
    return out


def check_images_exist(images: LabelSet) -> None:
    """Refuse a run in which not one image file exists: that is a wrong image root, not bad images."""
    if images.images and not any(os.path.exists(images.image_path(im)) for im in images.images):
        first = images.image_path(images.images[0])
        raise AfssError(f"none of the {len(images)} images exists, e.g. {first}; the file names are relative "
                        f"to {images.image_root or 'the current folder'} (pass --image-root to point elsewhere)")


def load_rgb(images: LabelSet, image: ImageLabels) -> np.ndarray | str:
    """The RGB pixels of ``image``, or why it could not be read (``"unreadable: ..."``)."""
    try:
        return load_image(images.image_path(image)).rgb
    except ImageReadError as e:
        return f"unreadable: {e}"


def run_resumable(
    images: LabelSet,
    work: BatchWork,
    *,
    out: str | os.PathLike | None,
    kind: str,
    header: Mapping[str, Any],
    resume: bool = True,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, ImageLabels], Journal | None]:
    """Run ``work`` over ``images`` in batches, loading the next batch in a thread meanwhile.

    With ``out``, finished images are journalled and a rerun resumes; the caller writes ``out`` and
    then calls ``journal.remove()``. Returns the results by ``file_name`` (resumed ones included)
    and the journal (``None`` without ``out``).

    Raises:
        AfssError: ``batch_size`` < 1, duplicate file names, no image file found at all, an ``out``
            that cannot be written, or a journal with a different header.
    """
    if batch_size < 1:
        raise AfssError(f"batch_size must be >= 1, got {batch_size}")
    names = [im.file_name for im in images.images]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AfssError(f"input images: file_name {dup!r} appears more than once; file names must be unique")
    check_images_exist(images)
    journal = Journal(check_output(out), kind, header, resume=resume) if out is not None else None
    done = dict(journal.done) if journal is not None else {}
    todo = [im for im in images.images if im.file_name not in done]
    if len(todo) < len(names):
        log.info("resuming %s: %d of %d images already done", out, len(names) - len(todo), len(names))
        if progress is not None:
            progress(len(names) - len(todo))

    def load(batch: Sequence[ImageLabels]) -> list[np.ndarray | str]:
        return [load_rgb(images, im) for im in batch]

    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="afss-load") as loader:
            pending = loader.submit(load, batches[0]) if batches else None
            for k, batch in enumerate(batches):
                loaded = pending.result()
                pending = loader.submit(load, batches[k + 1]) if k + 1 < len(batches) else None
                results = list(work(batch, loaded))
                for im in results:
                    done[im.file_name] = im
                if journal is not None:
                    journal.append(results)
                if progress is not None:
                    progress(len(results))
    finally:
        if journal is not None:
            journal.close()
    return done, journal
