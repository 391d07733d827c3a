"""The student's training recipes (`afss.student.train.TrainConfig.recipe`), with no heavy imports, so
the command line and the run config can name and check them without loading the trainer."""

from __future__ import annotations

from typing import Any

__all__ = ["FINETUNE", "RECIPES", "RECIPE_HELP", "recipe_args"]

FINETUNE: dict[str, Any] = {"freeze": 10, "optimizer": "SGD", "lr0": 0.002, "warmup_epochs": 0}
"""Ultralytics arguments of the fine-tuning recipe: the backbone up to its SPPF (layers 0-9 of YOLO11
and YOLOv8) frozen, plain SGD at a small learning rate, no warm-up. Ultralytics' defaults restart
AdamW with a warm-up to ~1e-3, far above where the pretraining ended, and in a few epochs on a few
hundred images that undoes much of the pretraining: on `make demo`'s pseudo-labels (5 epochs, 320 px)
the synth start went from 43.7 to 35.6 mask AP with the defaults, 38.9 with the backbone frozen, 39.1
with this recipe (box AP 49.5 against the teacher's 48.1); `benchmarks/finetune_recipe.py`."""

RECIPES = ("auto", "finetune", "ultralytics")

RECIPE_HELP = (f"finetune (freeze {FINETUNE['freeze']}, {FINETUNE['optimizer']} lr0 {FINETUNE['lr0']}, no warm-up) | "
               "ultralytics (its defaults) | auto (finetune from a .pt or synth, ultralytics from a .yaml)")


def recipe_args(recipe: str, init: str) -> dict[str, Any]:
    """The Ultralytics arguments ``recipe`` sets for a training that starts from ``init``: `FINETUNE`
    for ``finetune``, and for ``auto`` from a checkpoint (random weights have nothing to keep)."""
    finetune = recipe == "finetune" or (recipe == "auto" and not init.endswith((".yaml", ".yml")))
    return dict(FINETUNE) if finetune else {}
