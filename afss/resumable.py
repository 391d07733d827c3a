"""Crash-safe, resumable batch processing shared by the stages that run a teacher over images.

While a stage runs, every finished image is appended to a journal next to its output
(``labels.json`` -> ``labels.json.partial.jsonl``): a header line with everything that determines the
result (teacher and its options, prompt, views, ...), then one JSON line per image (its COCO image
entry and annotations), flushed and fsync'ed per batch. A rerun with the same output and header
skips the images already done (by ``file_name``), and tries again those the teacher failed on (after
the others: the cause, a device or memory, may be gone); a torn last line (a crash mid-write) is dropped and
that image is processed again; a journal written with a different header is refused rather than
mixed in. The header identifies the inputs too (image root, a digest of the image list and of the
labels being refined, `afss.io.outputs.input_identity`), so a rerun on other images never picks up
this run's results. The stage writes its output atomically at the end and then removes the journal,
unless the journal holds finished images the output leaves out (a ``limit`` run): they are kept
for the next run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from afss.engines.base import TEACHER_FAILED, TeacherJob
from afss.errors import AfssError
from afss.io.atomic import plain, write_text_atomic
from afss.io.coco import entry_json, labelset_from_coco
from afss.io.outputs import check_output_path
from afss.types import ImageLabels, LabelSet

__all__ = ["Journal", "check_images_exist", "check_limit", "journal_path", "plain", "run_resumable"]

log = logging.getLogger(__name__)

_FORMAT = 1

BatchWork = Callable[[Sequence[ImageLabels], list["np.ndarray | str"]], Sequence[ImageLabels]]
"""``work(batch, loaded) -> results``: ``loaded[i]`` is the RGB array of ``batch[i]`` or why it could
not be read (``"unreadable: ..."``); one result per image, same ``file_name``."""


def journal_path(out: str | os.PathLike) -> Path:
    """Where the progress journal of ``out`` lives: ``labels.json`` -> ``labels.json.partial.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


class Journal:
    """Open (or start) the journal of ``out``; ``done`` holds the images a previous run finished."""

    def __init__(self, out: str | os.PathLike, kind: str, header: Mapping[str, Any], *, resume: bool = True) -> None:
        self.path = journal_path(out)
        self.kind = kind
        self.header = plain({"afss_journal": kind, "format": _FORMAT, **header})
        self.appended = 0
        self.done: dict[str, ImageLabels] = self._read() if resume and self.path.exists() else {}
        if not self.done:
            write_text_atomic(self.path, json.dumps(self.header) + "\n")
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise AfssError(f"{self.path}: cannot write the progress journal ({e.strerror or e})") from e

    def append(self, images: Sequence[ImageLabels]) -> None:
        lines = [entry_json(image) + "\n" for image in images]
        try:
            self._file.write("".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:  # disk full, I/O error: what was journalled before stays usable
            raise AfssError(f"{self.path}: cannot write ({e.strerror or e}); the {len(self.done) + self.appended} "
                            "images finished before are kept: free the space and rerun the same command") from e
        self.appended += len(images)

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def finish(self, written: Sequence[str]) -> None:
        """The output holding ``written`` (file names) is safely on disk: remove the journal, unless it
        holds finished images that are not in it (a ``limit`` run), which are kept for the next run."""
        names = set(written)
        extra = [n for n in self.done if n not in names]
        if not extra:
            self.remove()
            return
        self.close()
        log.info("%s: kept, it holds %d finished images beyond this run's limit; a run without --limit "
                 "resumes from them", self.path, len(extra))

    def write_failed(self, error: AfssError) -> AfssError:
        """The error to raise when the final output could not be written: the work is in the journal."""
        return AfssError(f"{error}; the finished images are kept in {self.path}: fix that and rerun the same command")

    def _read(self) -> dict[str, ImageLabels]:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        try:
            old = json.loads(lines[0]) if lines else None
        except (ValueError, RecursionError):
            old = None
        if not isinstance(old, dict) or old.get("afss_journal") != self.kind or old.get("format") != _FORMAT:
            raise AfssError(f"{self.path}: not an afss {self.kind} journal (delete it, or use a new --out or --no-resume)")
        changed = _differences(old, self.header)
        if changed:
            diff = "; ".join(f"{k} {old_v!r}, now {new_v!r}" for k, old_v, new_v in changed)
            raise AfssError(f"{self.path}: an interrupted run with a different {diff}; "
                            "rerun it as it was to finish it, use a new --out, or --no-resume to start afresh")
        good, entries = [], {}
        for n, line in enumerate(lines[1:], start=2):
            try:
                if not line.endswith("\n"):
                    raise ValueError("torn line")
                entry = json.loads(line)
                entries[entry["image"]["file_name"]] = (entry["image"], list(entry["annotations"]))
            except (ValueError, KeyError, TypeError, RecursionError):
                log.warning("%s: line %d is incomplete (interrupted write); that image is processed again", self.path, n)
                continue
            good.append(line)
        write_text_atomic(self.path, lines[0] + "".join(good))  # drop the torn tail before appending
        data = {"images": [im for im, _ in entries.values()],
                "annotations": [{**a, "id": k} for k, a in enumerate((a for _, anns in entries.values() for a in anns), 1)]}
        return {im.file_name: im for im in
                labelset_from_coco(data, where=str(self.path), allow_absolute_paths=True).images}


def _differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf that differs, so that a refusal shows the
    one option that changed in full rather than two long, cut-off dicts that look the same."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                out.extend(_differences(old.get(k), new.get(k), f"{prefix}{k}."))
        return out
    return [(prefix.rstrip("."), old, new)] if old != new else []


def check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise AfssError(f"limit must be a whole number >= 1, got {limit!r}")
    return limit


def check_images_exist(images: LabelSet) -> None:
    """Refuse a run in which not one image file exists: that is a wrong image root, not bad images."""
    if images.images and not any(os.path.exists(images.image_path(im)) for im in images.images):
        first = images.image_path(images.images[0])
        raise AfssError(f"none of the {len(images)} images exists, e.g. {first}; the file names are relative "
                        f"to {images.image_root or 'the current folder'} (--image-root points elsewhere; from Python, the LabelSet's image_root)")


def run_resumable(
    images: LabelSet,
    work: BatchWork,
    *,
    out: str | os.PathLike | None,
    kind: str,
    header: Mapping[str, Any],
    resume: bool = True,
    batch_size: int = 8,
    limit: int | None = None,
    engine: Any = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, ImageLabels], Journal | None]:
    """Run ``work`` over the first ``limit`` of ``images`` in batches on ``engine`` (default: this
    process, loading the next batch in a thread meanwhile; see `afss.engines`).

    With ``out``, finished images are journalled and a rerun resumes; the caller writes ``out`` and
    then calls ``journal.finish(file names written)``. Returns the results by ``file_name`` (every
    resumed one included) and the journal (``None`` without ``out``). ``header`` should hold
    ``inputs`` (`afss.io.outputs.input_identity` of all ``images``, not only the first ``limit``), so
    that runs with and without a limit share one journal.

    Raises:
        AfssError: ``batch_size`` < 1, a bad ``limit``, duplicate file names, no image file found at all,
            an ``out`` that cannot be written, or a journal with a different header.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AfssError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    check_limit(limit)
    names = [im.file_name for im in images.images]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AfssError(f"input images: file_name {dup!r} appears more than once; file names must be unique")
    check_images_exist(images)
    journal = Journal(check_output_path(out), kind, header, resume=resume) if out is not None else None
    done = dict(journal.done) if journal is not None else {}
    wanted = images.images[:limit]
    # an image the teacher failed on is tried again: the cause (a device, memory) may be gone
    again = {n for n, im in done.items() if im.error is not None and im.error.startswith(TEACHER_FAILED)}
    retried = [im.file_name for im in wanted if im.file_name in again]
    # after the images not tried yet: those decide whether the teacher works (`TeacherJob.check_teacher_works`)
    todo = [im for im in wanted if im.file_name not in done] + [im for im in wanted if im.file_name in again]
    if isinstance(work, TeacherJob):
        work.failed_before = frozenset(retried)
    if journal is not None:
        for name in retried:  # done no more: the stages count what they resumed from journal.done
            del journal.done[name]
    if len(todo) < len(wanted) or retried:
        log.info("resuming %s: %d of %d images already done%s", out, len(wanted) - len(todo), len(wanted),
                 f"; {len(retried)} the teacher failed on are tried again" if retried else "")
        if progress is not None and len(todo) < len(wanted):
            progress(len(wanted) - len(todo))

    from afss.engines.local import LocalEngine  # engines import nothing of this module: no cycle

    engine = engine if engine is not None else LocalEngine()
    try:
        for results in engine.run(images, todo, work, batch_size=batch_size):
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
