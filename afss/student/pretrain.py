"""Pretrain the student on afss synth scenes: exact masks, no annotation, no download.

A YOLO-seg student trained from random initialisation on a few hundred noisy pseudo-labels learns
almost nothing (DESIGN.md: 0.0 segm AP from scratch against 8.5 from a synth-pretrained start on the
same labels), so the student starts from a model that has seen many rendered spacecraft: every synth
domain (clean, Earth backgrounds, glare and harsh exposure), all four spacecraft families, tiny and
frame-cut targets, with Ultralytics' augmentation on top. Its ground truth is the renderer's own
z-buffer, so pretraining uses no labels of any real dataset.

Example:
    >>> pretrain_student("student_synth.pt", n=2000, epochs=30, imgsz=512)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from afss.errors import AfssError
from afss.io.outputs import check_output_path
from afss.student.train import TrainConfig, TrainResult, train_student

__all__ = ["PRETRAIN_CONFIG", "PRETRAIN_SEED", "pretrain_student"]

PRETRAIN_SEED = 900_000
"""Synth seed of pretraining scenes: far from the seeds benchmarks and tests score on (0..10_000)."""

PRETRAIN_CONFIG = TrainConfig(init="yolo11n-seg.yaml", epochs=20, imgsz=512, recipe="ultralytics")
"""The defaults of a pretraining (`afss pretrain`): from random weights, every layer with Ultralytics'
own recipe, 20 epochs at 512 px. `TrainConfig`'s own defaults fine-tune the start this builds."""


def pretrain_student(out: str | os.PathLike, *, n: int = 1000, size: int = 512, domain: str = "mixed",
                     seed: int = PRETRAIN_SEED, work_dir: str | os.PathLike | None = None,
                     config: TrainConfig | None = None, workers: int | None = None,
                     overwrite: bool = False) -> tuple[Path, TrainResult]:
    """Render ``n`` synth scenes and train the student on their exact masks; copy the best weights to ``out``.

    Args:
        out: the ``.pt`` file to write (e.g. ``student_synth.pt``).
        n, size, domain, seed: the scenes (see `afss.synth.render_dataset`).
        work_dir: where scenes and the training run go (default: ``<out stem>.pretrain/`` beside ``out``);
            a rerun with the same scenes reuses them.
        overwrite: replace an existing ``out``.
        config: the training recipe (default `PRETRAIN_CONFIG`: ``yolo11n-seg.yaml``, random initialisation).
            Its ``recipe`` ``"auto"`` means ``"ultralytics"`` here, from a ``.pt`` too: every layer
            learns from the exact masks (``auto`` would fine-tune a checkpoint with its backbone
            frozen, which suits a few hundred pseudo-labels, not continuing a pretraining).

    Returns:
        ``(out, training result)``.
    """
    from afss.synth.dataset import render_or_reuse

    out = check_output_path(out, flag="--out", example="student_synth.pt", suffixes=(".pt",))
    if out.exists() and not overwrite:
        raise AfssError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    work = Path(work_dir) if work_dir is not None else out.with_name(f"{out.stem}.pretrain")
    config = config or PRETRAIN_CONFIG
    if config.recipe == "auto":
        config = replace(config, recipe="ultralytics")
    if config.init == "synth":
        raise AfssError("pretrain: --init synth would start from the very weights this builds; use a model "
                        "config such as yolo11n-seg.yaml or a .pt")
    gt = render_or_reuse(work / "scenes", n=n, size=size, domain=domain, seed=seed, workers=workers)
    result = train_student(gt, work / "train", replace(config, seed=config.seed))
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.copyfile(result.weights, tmp)
    os.replace(tmp, out)
    return out, result
