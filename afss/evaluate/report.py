"""What an evaluation returns: one row per (protocol, IoU type, category), printable and JSON-able."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from afss.io.atomic import write_json_atomic

__all__ = ["EvalReport", "EvalRow", "comparison_table"]

ALL = "all"
"""The category name of the row that summarises every category (COCO's mean over classes)."""


@dataclass(frozen=True)
class EvalRow:
    """Scores of one protocol and IoU type for one category (or ``"all"``).

    Metrics are fractions in [0, 1]; ``None`` where undefined (no ground truth for the category, an
    area range without objects, or the size-range metrics of the paper protocol, which has none).

    Args:
        protocol: ``"coco"`` (COCOeval, maxDets 100) or ``"paper"`` (top-1 per image, one target).
        iou_type: ``"segm"`` (mask IoU) or ``"bbox"``.
        category: category name, or ``"all"`` for the summary row.
        ap: mean AP over IoU 0.50:0.05:0.95.
        ap50, ap75: AP at IoU 0.50 and 0.75.
        aps, apm, apl: COCO AP for small (< 32²), medium and large (> 96²) objects.
        ar: COCO AR@100, or for the paper protocol the final recall averaged over the thresholds.
        num_images: images evaluated; num_gt: non-crowd ground-truth instances (paper protocol:
            targets, i.e. images with ground truth); num_pred: predictions scored.
    """

    protocol: str
    iou_type: str
    category: str
    ap: float | None
    ap50: float | None
    ap75: float | None
    aps: float | None = None
    apm: float | None = None
    apl: float | None = None
    ar: float | None = None
    num_images: int = 0
    num_gt: int = 0
    num_pred: int = 0


_COLUMNS = (("AP", "ap"), ("AP50", "ap50"), ("AP75", "ap75"), ("APs", "aps"), ("APm", "apm"),
            ("APl", "apl"), ("AR", "ar"))


@dataclass(frozen=True)
class EvalReport:
    """The result of `afss.evaluate.evaluate`.

    Args:
        rows: one `EvalRow` per protocol × IoU type × category (``"all"`` first).
        num_images: ground-truth images evaluated (images recorded with an ``error`` excluded).
        num_excluded: ground-truth images excluded because they carry an ``error``.
        num_unpredicted: evaluated images with no prediction entry at all (counted as misses).
        num_gt: non-crowd ground-truth instances in the evaluated images.
        num_pred: predicted instances on the evaluated images.
        notes: human-readable remarks (exclusions, skipped IoU types, collapsed classes).
        gt, pred: where the inputs came from (paths) when known.
    """

    rows: tuple[EvalRow, ...]
    num_images: int = 0
    num_excluded: int = 0
    num_unpredicted: int = 0
    num_gt: int = 0
    num_pred: int = 0
    notes: tuple[str, ...] = ()
    gt: str | None = None
    pred: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def get(self, protocol: str, iou_type: str, category: str = ALL) -> EvalRow:
        """The row for ``(protocol, iou_type, category)``; ``KeyError`` if it was not computed."""
        for row in self.rows:
            if (row.protocol, row.iou_type, row.category) == (protocol, iou_type, category):
                return row
        raise KeyError(f"no row for protocol={protocol!r} iou_type={iou_type!r} category={category!r}")

    def replace(self, **changes: Any) -> EvalReport:
        return replace(self, **changes)

    def table(self) -> str:
        """Aligned text table, AP in percent with one decimal (``-`` where undefined), then notes."""
        return _table([((), r) for r in self.rows], lead=(), notes=self.notes)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON dict: metrics as fractions (``null`` where undefined), counts, notes, inputs."""
        return {
            "gt": self.gt,
            "pred": self.pred,
            "num_images": self.num_images,
            "num_excluded": self.num_excluded,
            "num_unpredicted": self.num_unpredicted,
            "num_gt": self.num_gt,
            "num_pred": self.num_pred,
            "notes": list(self.notes),
            "meta": dict(self.meta),
            "rows": [asdict(r) for r in self.rows],
            "info": {"stage": "eval", "inputs": metrics_inputs(self.gt, self.pred)},
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write `to_json` atomically (indented); returns the path."""
        path = Path(path)
        write_json_atomic(path, self.to_json(), indent=2)
        return path


def metrics_inputs(gt: str | None, pred: str | None) -> dict[str, str | None]:
    """What a metrics file was computed from (absolute paths), recorded so that ``afss eval`` replaces
    its own earlier output but not a file made from something else."""
    return {"gt": None if gt is None else os.path.abspath(gt), "pred": None if pred is None else os.path.abspath(pred)}


def comparison_table(reports: Mapping[str, EvalReport]) -> str:
    """One table for several predictions scored against the same ground truth, e.g. the stages of a
    run (``{"labels": ..., "refined": ...}``): rows grouped by protocol and IoU type, a ``pred`` column
    naming each input."""
    order = {key: k for k, key in enumerate(dict.fromkeys(
        (r.protocol, r.iou_type, r.category) for rep in reports.values() for r in rep.rows))}
    named = [((name,), r) for name, rep in reports.items() for r in rep.rows]
    named.sort(key=lambda item: order[(item[1].protocol, item[1].iou_type, item[1].category)])  # stable
    notes = [f"{name}: {n}" for name, rep in reports.items() for n in rep.notes]
    return _table(named, lead=("pred",), notes=notes)


def _table(rows: list[tuple[tuple[str, ...], EvalRow]], lead: tuple[str, ...], notes: Any) -> str:
    show = [c for c in _COLUMNS if any(getattr(r, c[1]) is not None for _, r in rows)]
    head = [*lead, "protocol", "iou", "category", *(name for name, _ in show), "images", "gt", "pred"]
    body = [
        [*names, r.protocol, r.iou_type, r.category, *(percent(getattr(r, key)) for _, key in show),
         str(r.num_images), str(r.num_gt), str(r.num_pred)]
        for names, r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    n_text = len(lead) + 3  # left-aligned text columns, then right-aligned numbers

    def fmt(line: list[str]) -> str:
        cells = [c.ljust(w) if i < n_text else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    lines = [fmt(head), "  ".join("-" * w for w in widths), *(fmt(b) for b in body)]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal, ``-`` where undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * value:.1f}"
