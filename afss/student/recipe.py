"""The student's training recipes (`afss.student.train.TrainConfig.recipe`), with no heavy imports, so
the command line and the run config can name and check them without loading the trainer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from afss.errors import AfssError

__all__ = ["ADAPT_BELOW", "BOX", "FINETUNE", "HEADS", "RECIPES", "RECIPE_EPOCHS", "RECIPE_HELP", "SHIPPED_SYNTH_WEIGHTS",
           "heads_freeze", "is_shipped_start", "plan_line", "recipe_args", "recipe_epochs", "resolve_recipe",
           "weighs_agreement"]

FINETUNE: dict[str, Any] = {"freeze": 10, "optimizer": "SGD", "lr0": 0.002, "warmup_epochs": 0}
"""Ultralytics arguments of the fine-tuning recipe: the backbone up to its SPPF (layers 0-9 of YOLO11
and YOLOv8) frozen, plain SGD at a small learning rate, no warm-up. Ultralytics' defaults restart
AdamW with a warm-up to ~1e-3, far above where the pretraining ended, and in a few epochs on a few
hundred images that undoes much of the pretraining: on `make demo`'s pseudo-labels (5 epochs, 320 px)
the stage-1 synth start went from 43.7 to 35.6 mask AP with the defaults, 38.9 with the backbone frozen, 39.1
with this recipe (box AP 49.5 against the teacher's 48.1); `benchmarks/finetune_recipe.py`."""

HEADS: dict[str, Any] = {"freeze": "heads", "optimizer": "SGD", "lr0": 0.01, "warmup_epochs": 0}
"""The ``heads`` recipe: only the box and class branches of the segmentation head learn; the backbone,
the neck and the mask branch (prototypes and mask coefficients) keep their pretrained weights
(``freeze: "heads"`` is resolved against the model by `heads_freeze`). For a start pretrained on
exact masks, fine-tuning the mask branch on pseudo-labels teaches it the teacher's outline errors:
on `make demo`'s pseudo-labels the stage-1 synth start went from 43.7 to 39.1 mask AP with ``finetune`` and
to 45.4 with this recipe (box AP 48.9; the teacher's 40.3 / 48.1), in two thirds of the time
(`benchmarks/finetune_recipe.py`). It cannot adapt the features to imagery unlike the start's:
prefer ``finetune`` there."""

BOX: dict[str, Any] = {**HEADS, "freeze": "box"}
"""The ``box`` recipe: only the box branch of the segmentation head learns; the class branch keeps the
start's confidence along with its features and masks (``freeze: "box"``, resolved by `heads_freeze`
with ``classes=True``). Trained on pseudo-labels, the class branch learns to score like the filter's
survivors and ranks the student's own predictions worse; the box branch takes what the labels teach
about where the target is. On `make demo`'s 165 pseudo-labels (10 epochs at 320 px), scored on 300
held-out afss synth scenes of seeds 2-4 that chose nothing: the start 48.3 mask / 55.0 box AP,
``heads`` 47.5 / 56.4, ``box`` 49.3 / 58.7 (above the start on both, on each of the four seeds
measured; `benchmarks/results/train_defaults_seeds.json`)."""

RECIPES = ("auto", "finetune", "heads", "box", "ultralytics")

RECIPE_EPOCHS: dict[str, int] = {"finetune": 10, "heads": 10, "box": 10, "ultralytics": 25}
"""Each recipe's schedule, the epochs a training takes when none are given (`TrainConfig.epochs` ``None``).
``box`` 10: on `make demo`'s pseudo-labels 10 epochs gained more than 5
(`benchmarks/results/train_defaults_seeds.json`). ``ultralytics`` 25: every layer learns, with
Ultralytics' warm-up, mosaic (closed for the last 10 epochs) and annealed learning rate; on SPARK-2021
frames a schedule of <= 20 epochs never reached the teacher, 25 epochs did with the rescored score and
45 gained a little more in 1.8 times the time (docs/student.md, `benchmarks/distill.py`)."""

ADAPT_BELOW = 0.7
"""``auto`` from the shipped synth start: when the start's boxes agree with the training labels less than
this (mean top-1 box IoU over a sample of the labelled images, `afss.student.train.start_agreement`),
the imagery is unlike the start's and every layer learns (``ultralytics``); otherwise only the box
branch does (``box``). Measured agreement: 0.78 on `make demo`'s afss synth pseudo-labels (where
``box`` beats the start and ``finetune`` loses 11 mask AP) and 0.56 on SPARK-2021's (where ``box``
stays at a quarter of the teacher's AP and ``ultralytics`` passes it). The bound lies between the
only two sources measured; no third source has judged it."""

SHIPPED_SYNTH_WEIGHTS = Path(__file__).parent / "weights" / "student_synth.pt"
"""The synth-pretrained start afss ships (``--init synth``); here, not in `afss.student.train`, so that
`resolve_recipe` can recognise it without loading the trainer."""

RECIPE_HELP = (f"finetune (freeze {FINETUNE['freeze']}, {FINETUNE['optimizer']} lr0 {FINETUNE['lr0']}, no warm-up) | "
               f"heads (only the head's box and class branches learn, {HEADS['optimizer']} lr0 {HEADS['lr0']}, no warm-up; "
               "needs a pretrained start) | box (only the box branch learns; the start's scores and masks stay) | "
               "ultralytics (its defaults) | auto (from synth: box, or ultralytics where the start's boxes agree with the "
               f"labels < {ADAPT_BELOW}; finetune from another .pt, ultralytics from a .yaml)")


def resolve_recipe(recipe: str, init: str, agreement: float | None = None) -> str:
    """``auto`` made concrete for a training that starts from ``init``: from the shipped synth start
    ``box``, or ``ultralytics`` where its boxes agree with the training labels less than `ADAPT_BELOW`
    (``agreement``, `weighs_agreement`; ``None``: not measured, ``box``), ``finetune`` from another
    checkpoint, ``ultralytics`` from a model ``.yaml``; any other recipe as it is.

    Why ``box`` from synth: it keeps the start's mask branch, learnt from the renderer's exact masks,
    where ``finetune`` teaches it the teacher's outlines, and the start's class confidence, which
    ranks its predictions better than one learnt from the filter's survivors (`BOX`). On 165
    pseudo-labels of `make demo`'s pool, 10 epochs at 320 px, scored on its 100 held-out scenes: the
    start 53.1 mask / 54.3 box AP, ``box`` 54.0 / 58.5, ``heads`` 52.9 / 57.5, ``finetune``
    42.1 / 57.3; on a renderer afss never saw, ``finetune`` took the start's masks from 35.0 to 22.0
    AP. Where the boxes matter more than the masks on imagery unlike the start's, ``finetune`` adapts
    the features: on SPARK-2021 frames (boxes only, round 1, 5 epochs, three seeds) it reached 5.6-8.8
    bbox AP against ``box``'s 4.8-5.3, and every layer on Ultralytics' full schedule passed the
    teacher (``ultralytics``, which ``auto`` takes there: the start's boxes agree 0.56 with the labels)."""
    if recipe != "auto":
        return recipe
    if init.endswith((".yaml", ".yml")):
        return "ultralytics"
    if not is_shipped_start(init):
        return "finetune"
    return "ultralytics" if agreement is not None and agreement < ADAPT_BELOW else "box"


def plan_line(recipe: str, epochs: int, agreement: float | None) -> str:
    """``"recipe ultralytics, 25 epochs (the start's boxes agree 0.56 with the labels, < 0.7: ...)"``."""
    why = ""
    if agreement is not None:
        verdict = (f"< {ADAPT_BELOW}: imagery unlike the start's, every layer learns" if agreement < ADAPT_BELOW
                   else f">= {ADAPT_BELOW}: the start's masks and scores stay")
        why = f" (the start's boxes agree {agreement:.2f} with the labels, {verdict})"
    return f"recipe {recipe}, {epochs} epoch{'s' if epochs != 1 else ''}{why}"


def weighs_agreement(recipe: str, init: str) -> bool:
    """Whether ``recipe`` from ``init`` is decided by the start's agreement with the labels (``auto``
    from the shipped synth start)."""
    return recipe == "auto" and not init.endswith((".yaml", ".yml")) and is_shipped_start(init)


def recipe_epochs(recipe: str, init: str, agreement: float | None = None) -> int:
    """The epochs of ``recipe``'s schedule (`RECIPE_EPOCHS`), ``auto`` resolved as `resolve_recipe` does."""
    return RECIPE_EPOCHS[resolve_recipe(recipe, init, agreement)]


def is_shipped_start(init: str) -> bool:
    """Whether ``init`` is the synth start afss ships, by name (``synth``) or by its file's path."""
    if init == "synth":
        return True
    try:
        return os.path.samefile(init, SHIPPED_SYNTH_WEIGHTS)
    except OSError:  # not a file (yet): a published name, a typo
        return False


def recipe_args(recipe: str, init: str) -> dict[str, Any]:
    """The Ultralytics arguments ``recipe`` sets for a training that starts from ``init``
    (``auto`` as `resolve_recipe` makes it): `FINETUNE` for ``finetune``, `HEADS` for ``heads`` (its
    ``freeze`` still to be resolved by `heads_freeze`), none for ``ultralytics``.

    Raises:
        AfssError: ``heads`` from a model ``.yaml``: random features and masks, with nothing to keep.
    """
    recipe = resolve_recipe(recipe, init)
    if recipe in ("heads", "box"):
        if init.endswith((".yaml", ".yml")):
            trains = "the box and class branches" if recipe == "heads" else "the box branch"
            raise AfssError(f"recipe {recipe} keeps the start's features and masks and trains only {trains}: "
                            f"it needs a pretrained --init (synth or a .pt), not {init}")
        return dict(HEADS if recipe == "heads" else BOX)
    return dict(FINETUNE) if recipe == "finetune" else {}


def heads_freeze(layers: int, *, classes: bool = False) -> list[int | str]:
    """Ultralytics ``freeze`` entries for a model of ``layers`` layers whose last is the segmentation
    head: every layer before it, and the head's mask branch (Ultralytics freezes each parameter whose
    name holds ``model.<entry>.``, so ``"23.proto"`` names the prototypes of layer 23); with
    ``classes``, its class branch too (``cv3``: the ``box`` recipe)."""
    head = layers - 1
    frozen: list[int | str] = [*range(head), f"{head}.proto", f"{head}.cv4", f"{head}.one2one_cv4"]
    return frozen + ([f"{head}.cv3", f"{head}.one2one_cv3"] if classes else [])
