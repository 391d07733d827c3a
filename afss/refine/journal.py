"""Crash-safe progress journal of the refine stage, so that an interrupted run resumes.

Next to the output (``refined.json`` -> ``refined.json.partial.jsonl``): a header line with
everything that determines the result (teacher and its options, views, config), then one JSON line
per finished image (its COCO image entry and annotations, *before* filtering), flushed and
fsync'ed after every image. A rerun with the same header skips the images already done (by
``file_name``); a torn last line is dropped and that image is refined again. A journal written with
a different header is refused rather than mixed in.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afss.errors import AfssError
from afss.io.atomic import _json_default, write_text_atomic
from afss.io.coco import labelset_from_coco, labelset_to_coco
from afss.types import ImageLabels, LabelSet

__all__ = ["RefineJournal", "journal_path"]

log = logging.getLogger(__name__)

_FORMAT = 1


def journal_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


class RefineJournal:
    """Open (or start) the journal of ``out``; ``done`` holds the images a previous run finished."""

    def __init__(self, out: str | os.PathLike, header: Mapping[str, Any], *, resume: bool = True) -> None:
        self.path = journal_path(out)
        self.header = _plain({"afss_refine_journal": _FORMAT, **header})
        self.done: dict[str, ImageLabels] = self._read() if resume and self.path.exists() else {}
        if not self.done:
            write_text_atomic(self.path, json.dumps(self.header) + "\n")
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, image: ImageLabels) -> None:
        coco = labelset_to_coco(LabelSet(images=(image,)))
        self._file.write(json.dumps({"image": coco["images"][0], "annotations": coco["annotations"]},
                                    default=_json_default) + "\n")
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
        if not isinstance(old, dict) or old.get("afss_refine_journal") != _FORMAT:
            raise AfssError(f"{self.path}: not an afss refine journal (delete it, or use a new --out or --no-resume)")
        changed = sorted(k for k in set(old) | set(self.header) if old.get(k) != self.header.get(k))
        if changed:
            raise AfssError(f"{self.path}: an interrupted run with different {', '.join(changed)}; "
                            "use a new --out, or --no-resume to start afresh")
        good, entries = [], {}
        for n, line in enumerate(lines[1:], start=2):
            try:
                if not line.endswith("\n"):
                    raise ValueError("torn line")
                entry = json.loads(line)
                entries[entry["image"]["file_name"]] = (entry["image"], list(entry["annotations"]))
            except (ValueError, KeyError, TypeError):
                log.warning("%s: line %d is incomplete (interrupted write); that image is refined again", self.path, n)
                continue
            good.append(line)
        write_text_atomic(self.path, lines[0] + "".join(good))
        data = {"images": [im for im, _ in entries.values()],
                "annotations": [{**a, "id": k} for k, a in enumerate((a for _, anns in entries.values() for a in anns), 1)]}
        return {im.file_name: im for im in labelset_from_coco(data, where=str(self.path)).images}


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))
