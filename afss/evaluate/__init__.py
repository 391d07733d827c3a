"""Evaluation: COCO AP / AP50 / AP75 for masks and boxes, plus the paper's single-target protocol.

>>> from afss.evaluate import evaluate
>>> report = evaluate("gt.json", "pred.json")  # doctest: +SKIP
>>> report.get("paper", "segm").ap  # doctest: +SKIP

See ``docs/evaluation.md``. Modules: `pairing` (match images by file name, map categories),
`coco_protocol` (faster-coco-eval), `paper_protocol` (written here), `reference_protocol` and
`reference_masks` (the paper's protocol as its reference script computes it), `report` (rows, table, JSON).
"""

from afss.evaluate.api import ALL_PROTOCOLS, IOU_TYPES, PROTOCOLS, default_metrics_path, evaluate
from afss.evaluate.report import EvalReport, EvalRow, comparison_table

__all__ = ["ALL_PROTOCOLS", "IOU_TYPES", "PROTOCOLS", "EvalReport", "EvalRow", "comparison_table", "default_metrics_path", "evaluate"]
