"""What a run folder holds: the layout `afss run` writes, read tolerantly.

Every file of the layout may be absent (a run stopped early, a run without ground truth); `RunFolder`
records each absent or unreadable one with what it would have shown, and the report says so instead
of failing. Only a folder that holds none of the layout is refused.

The layout (paths relative to the run folder)::

    config.yaml, run.json                 the resolved config; stages, order, timings, versions, models
    data/pool.json, data/val_gt.json      the unlabeled pool; the val ground truth (optional)
    teacher/val_labels.json               stage "teacher": zero-shot labels of the val images
    teacher/val_refined.json              stage "refined": refined + filtered labels of the val images
    distill/round-K/...                   an `afss distill` folder (labels, refined, train/results.csv)
    students/start.json                   stage "student-start": the student's start (e.g. synth-pretrained), no pseudo-labels
    students/round-K.json                 stage "student-round-K": the round-K student on the val images
    upper_bound/train/, upper_bound/val.json   stage "upper-bound": a student trained on ground truth
    metrics/<stage>.json                  `EvalReport.to_json()` of each stage against data/val_gt.json
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afss.errors import AfssError
from afss.io.coco import read_coco, read_json_file
from afss.types import LabelSet

__all__ = ["FILTERED_POOL_FILE", "POOL_SAMPLE_FILE", "STAGE_FILES", "TEACHER_POOL_FILE", "RunFolder", "Stage", "dumps", "stage_file"]

STAGE_FILES = {"teacher": "teacher/val_labels.json", "refined": "teacher/val_refined.json",
               "student-start": "students/start.json", "upper-bound": "upper_bound/val.json"}
"""Prediction file of each fixed stage; ``student-round-K`` reads ``students/round-K.json``."""

POOL_SAMPLE_FILE = "students/pool_sample.json"
"""A run without ground truth: the final student's labels on a sample of the pool (beside the teacher's)."""
TEACHER_POOL_FILE, FILTERED_POOL_FILE = "distill/round-1/labels.json", "distill/round-1/refined.json"
"""The teacher's labels of the pool, and round 1's filter decisions on them."""

_STUDENT = re.compile(r"student-round-(\d+)")
_LAYOUT = ("run.json", "config.yaml", "data/pool.json", "data/val_gt.json", "teacher/val_labels.json",
           "teacher/val_refined.json", "distill/distill.json", "upper_bound/val.json")


def stage_file(name: str) -> str | None:
    """The prediction file of stage ``name``, relative to the run folder; ``None`` for an unknown name."""
    if name in STAGE_FILES:
        return STAGE_FILES[name]
    match = _STUDENT.fullmatch(name)
    return f"students/round-{int(match.group(1))}.json" if match else None


def _title(name: str) -> str:
    if name == "teacher":
        return "teacher (zero-shot)"
    if name == "refined":
        return "refined + filtered"
    if name == "upper-bound":
        return "upper bound (supervised)"
    if name == "student-start":
        return "student start (no pseudo-labels)"
    match = _STUDENT.fullmatch(name)
    return f"student, round {int(match.group(1))}" if match else name


@dataclass(frozen=True)
class Stage:
    """One row of the report: a stage's predictions on the val images.

    Args:
        name: the stage name of ``run.json["order"]`` (``teacher``, ``student-round-2``, ...).
        title: how the page names it.
        predictions: its COCO predictions file.
        metrics: its ``metrics/<name>.json``.
        upper_bound: trained on ground truth (the supervised reference, not a result of the method).
    """

    name: str
    title: str
    predictions: Path
    metrics: Path
    upper_bound: bool = False

    @property
    def round(self) -> int | None:
        match = _STUDENT.fullmatch(self.name)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RunFolder:
    """A run folder, opened: the stages found and every file of the layout that is not there.

    Args:
        root: the run folder.
        record: ``run.json`` (``{}`` when absent or unreadable).
        stages: the stages in the run's order (``run.json["order"]``, else as found on disk).
        missing: ``(path relative to root, why it matters)`` for each absent or unreadable file.
        problems: files that are there but could not be read, one line each (filled as they are loaded).
    """

    root: Path
    record: Mapping[str, Any]
    stages: tuple[Stage, ...]
    missing: tuple[tuple[str, str], ...] = ()
    problems: list[str] = field(default_factory=list, compare=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, root: str | Path) -> RunFolder:
        """Read ``run.json`` and find the stages; nothing else is loaded yet.

        Raises:
            AfssError: ``root`` is missing, not a folder, or holds nothing of a run's layout.
        """
        root = Path(root)
        if not root.exists():
            raise AfssError(f"{root}: no such folder; give the folder of an `afss run --out`")
        if not root.is_dir():
            raise AfssError(f"{root}: is a file; give the folder of an `afss run --out` (with run.json, data/, ...)")
        if not any((root / name).is_file() for name in _LAYOUT) and not any((root / "students").glob("round-*.json")):
            raise AfssError(f"{root}: not an afss run folder (no run.json, config.yaml, data/pool.json, "
                            "teacher/val_labels.json, distill/distill.json, ...)")
        missing: list[tuple[str, str]] = []
        record: dict[str, Any] = {}
        if (root / "run.json").is_file():
            try:
                data = read_json_file(root / "run.json")
                record = data if isinstance(data, dict) else {}
                if not isinstance(data, dict):
                    missing.append(("run.json", f"holds a JSON {type(data).__name__}, expected an object"))
            except AfssError as e:
                missing.append(("run.json", str(e)))
        else:
            missing.append(("run.json", "the run's stages, order, timings, versions and models"))
        stages = [s for s in (_stage(root, n) for n in _order(root, record, missing)) if s is not None]
        scored = (root / "data" / "val_gt.json").is_file()  # without ground truth no stage predicts on val images
        for s in stages:
            if scored and not s.predictions.is_file():
                missing.append((_rel(root, s.predictions), f"the predictions of stage {s.name!r}"))
        return cls(root=root, record=record, stages=tuple(stages), missing=tuple(missing))

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def gt_path(self) -> Path:
        return self.root / "data" / "val_gt.json"

    @property
    def has_gt(self) -> bool:
        return self.gt_path.is_file()

    def rounds(self) -> list[int]:
        """The numbers K of the ``distill/round-K`` folders, ascending."""
        found = [int(m.group(1)) for p in (self.root / "distill").glob("round-*")
                 if p.is_dir() and (m := re.fullmatch(r"round-(\d+)", p.name))]
        return sorted(found)

    def labels(self, relative: str | Path) -> LabelSet | None:
        """The COCO file at ``relative`` (cached), or ``None`` when it is absent; an unreadable file
        is noted in `problems` and gives ``None`` too."""
        key = str(relative)
        if key not in self._cache:
            path = self.root / relative
            value: LabelSet | None = None
            if path.is_file():
                try:
                    value = read_coco(path)
                except AfssError as e:
                    self.problems.append(str(e))
            self._cache[key] = value
        return self._cache[key]

    def json(self, relative: str | Path) -> Any:
        """A JSON file at ``relative`` (cached), or ``None`` when absent or unreadable (noted)."""
        key = f"json:{relative}"
        if key not in self._cache:
            path = self.root / relative
            value = None
            if path.is_file():
                try:
                    value = read_json_file(path)
                except AfssError as e:
                    self.problems.append(str(e))
            self._cache[key] = value
        return self._cache[key]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def students(self) -> list[Stage]:
        return [s for s in self.stages if s.round is not None]


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _order(root: Path, record: Mapping[str, Any], missing: list[tuple[str, str]]) -> list[str]:
    order = record.get("order")
    if isinstance(order, list) and all(isinstance(n, str) for n in order):
        unknown = [n for n in order if stage_file(n) is None]
        for name in unknown:
            missing.append(("run.json", f"stage {name!r} in order has no known predictions file"))
        return list(dict.fromkeys(n for n in order if n not in unknown))
    if record:
        missing.append(("run.json", "no list of stage names under 'order'; stages taken from the files found"))
    found = [n for n in ("teacher", "refined", "student-start") if (root / STAGE_FILES[n]).is_file()]
    rounds = sorted(int(m.group(1)) for p in (root / "students").glob("round-*.json")
                    if (m := re.fullmatch(r"round-(\d+)\.json", p.name)))
    found += [f"student-round-{k}" for k in rounds]
    if (root / STAGE_FILES["upper-bound"]).is_file():
        found.append("upper-bound")
    return found


def _stage(root: Path, name: str) -> Stage | None:
    relative = stage_file(name)
    if relative is None:
        return None
    return Stage(name=name, title=_title(name), predictions=root / relative, metrics=root / "metrics" / f"{name}.json",
                 upper_bound=name == "upper-bound")


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """JSON for the page (paths and numpy values as text)."""
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False)
