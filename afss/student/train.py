"""Train the student (Ultralytics YOLO-seg) on pseudo-labels: the paper's third stage.

`train_student` exports the labels as a YOLO-seg dataset (`afss.student.dataset`), builds the model
from ``init`` and calls Ultralytics' own trainer; nothing here is a training loop of afss's. Output,
all under ``out``:

    data/                  the exported dataset (images linked, not copied)
    weights/best.pt        the best epoch by the validation split's mask mAP (also last.pt)
    results.csv, *.png     Ultralytics' per-epoch metrics and training curves
    recipe.json            the recipe and epochs it trains with (``auto`` made concrete) and why
    train.json             what was trained: init, recipe, dataset counts, final metrics, timings

``init`` is ``"synth"`` (the default): the student pretrained on afss synth scenes that afss ships
(see `afss.student.pretrain`); the name of a COCO-pretrained checkpoint Ultralytics publishes
(``yolo11n-seg.pt``: the paper's start, downloaded where it is not; `afss.student.published`); a
checkpoint of yours (``PATH.pt``); or a model config Ultralytics ships (``yolo11n-seg.yaml``: random
initialisation, which learns nothing from a few hundred pseudo-labels in a CPU budget).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from afss.errors import AfssError
from afss.io.atomic import write_json_atomic
from afss.student.dataset import YoloDataset, check_trainable, export_yolo
from afss.student.model import check_device
from afss.student.recipe import (
    BOX,
    FINETUNE,
    HEADS,
    RECIPE_EPOCHS,
    RECIPES,
    SHIPPED_SYNTH_WEIGHTS,
    heads_freeze,
    recipe_args,
    resolve_recipe,
    weighs_agreement,
)
from afss.student.start_masks import MASK_SOURCES, MaskSwap, swap_in_start_masks
from afss.types import LabelSet

__all__ = ["BOX", "FINETUNE", "HEADS", "RECIPES", "REPLAY_SEED", "SHIPPED_SYNTH_WEIGHTS", "TrainConfig", "TrainResult", "resolve_init",
           "start_agreement", "train_student", "training_identity"]

log = logging.getLogger(__name__)

REPLAY_SEED = 950_000
"""Synth seed of the replay scenes (`TrainConfig.replay`): new scenes, far from every scored seed."""


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe.

    Attributes:
        init: ``"synth"``, a published name (``yolo11n-seg.pt``), a ``.pt`` of yours, or a model ``.yaml``
            Ultralytics ships (``yolo11n-seg.yaml``: random weights).
        epochs: as in Ultralytics; ``None`` (the default): the recipe's schedule (`RECIPE_EPOCHS`: 10,
            ``ultralytics`` 25).
        imgsz, batch: as in Ultralytics.
        device: ``"cpu"``, ``"0"`` / ``"cuda:0"``, ``"mps"``; ``None`` lets Ultralytics choose.
        val_fraction, seed: the validation split carved from the pseudo-labels, and the seed of the
            split and of training.
        patience: epochs without improvement before stopping early.
        recipe: ``"finetune"`` (`FINETUNE`: frozen backbone, gentle SGD), ``"heads"`` (`HEADS`:
            only the head's box and class branches learn, the mask branch keeps its pretraining), ``"box"``
            (`BOX`: only the box branch learns), ``"ultralytics"`` (Ultralytics' own defaults), or
            ``"auto"`` (`afss.student.recipe.resolve_recipe`): from ``synth``, ``box`` (keep its masks,
            learnt from exact ones, and its confidence) where the start's boxes agree with the labels
            (`start_agreement` >= `afss.student.recipe.ADAPT_BELOW`), else ``ultralytics`` (imagery
            unlike the start's: every layer learns, 25 epochs); ``finetune`` from another ``.pt``,
            ``ultralytics`` from a model ``.yaml`` (random weights have nothing to keep). ``extra``
            overrides any of them.
        replay: afss synth scenes (exact masks from the renderer, every domain; seed `REPLAY_SEED`)
            mixed into the train split. Fine-tuning the synth-pretrained student on a few hundred
            pseudo-labels alone makes it forget what pretraining taught it and copy its teacher's
            mistakes (on afss synth: 43.7 segm AP from the stage-1 synth start, 35.6 after 5 epochs on the
            demo's kept pseudo-labels); replaying pretraining-like scenes beside them is the usual
            remedy in self-training. No ground truth of the user's data is involved. 0: none.
        mask_source: ``"labels"`` (the default): train on the labels' masks; ``"start"``: where a mask
            of the start's outlines a labelled object (its box has IoU >= `afss.student.start_masks.MASK_AGREE`
            with the label's), it replaces the label's (`afss.student.start_masks.swap_in_start_masks`):
            the teacher says which images and where, the start, pretrained on exact masks, how the
            object is outlined. The start is ``init``, or the ``mask_start`` given to `train_student`
            (`afss.distill` gives every round the first round's start). Only where the mask branch
            learns (``ultralytics``, ``finetune``); elsewhere nothing changes.
        extra: further Ultralytics ``train`` arguments (augmentation, optimiser, ...), passed as is.
    """

    # The defaults are the run configs' (`afss run --defaults` reads them from here, as do the CLI's
    # help texts): the shipped synth start, ``auto`` (``box`` from it where its boxes agree with the
    # labels, else ``ultralytics``), the recipe's schedule at 320 px (the start's own training size),
    # what the project's CPU benchmarks support. From random weights (``yolo11n-seg.yaml``) a few
    # hundred pseudo-labels give 0.0 AP at this budget. ``box`` keeps the start's masks and scores
    # where ``finetune`` loses 11 mask AP on afss synth (`resolve_recipe` has the numbers); on imagery
    # unlike the start's, where boxes count, a full ``ultralytics`` schedule adapts every layer.
    init: str = "synth"
    epochs: int | None = None
    imgsz: int = 320
    batch: int = 16
    device: str | None = "cpu"
    val_fraction: float = 0.1
    seed: int = 0
    patience: int = 100
    recipe: str = "auto"
    replay: int = 0
    mask_source: str = "labels"
    extra: dict[str, Any] = field(default_factory=dict)

    def recipe_args(self) -> dict[str, Any]:
        """The Ultralytics arguments the recipe sets (before ``extra``). For ``auto`` from the shipped
        start this is ``box``'s, provisionally: `train_student` decides by the labels (`start_agreement`)."""
        return recipe_args(self.recipe, self.init)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise AfssError(f"train: recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        recipe_args(self.recipe, self.init)  # a recipe that cannot start from init fails here, before any work
        check_device(self.device, "train", here=False)  # whether this machine has it: when training starts
        if self.mask_source not in MASK_SOURCES:
            raise AfssError(f"train: mask_source must be one of {', '.join(MASK_SOURCES)}, got {self.mask_source!r}")
        v = self.val_fraction
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
            raise AfssError(f"train: val_fraction must be a fraction in [0, 1), got {v!r}")
        for name, lo, hi in (("epochs", 1, 10_000), ("imgsz", 32, 4096), ("batch", 1, 4096), ("patience", 1, 10_000),
                             ("replay", 0, 100_000)):
            value = getattr(self, name)
            if name == "epochs" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise AfssError(f"train: {name} must be a whole number in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True)
class TrainResult:
    """What `train_student` produced (paths under its ``out``)."""

    out: Path
    weights: Path
    last: Path
    dataset: YoloDataset
    metrics: dict[str, float]
    seconds: float
    seconds_per_epoch: float
    epochs: int
    reused: bool = False
    """The run was finished before with the same identity (`training_identity`); nothing was trained."""
    recipe: str = ""
    """The recipe that trained (``auto`` made concrete)."""
    agreement: float | None = None
    """`start_agreement` where it decided ``auto``'s recipe, else ``None``."""
    mask_swap: MaskSwap | None = None
    """Where ``mask_source="start"`` changed the labels' masks, how many (`swap_in_start_masks`), else ``None``."""


def resolve_init(init: str, *, download: bool = True) -> str:
    """``init`` as Ultralytics takes it, checked: ``synth`` -> the shipped file; a ``.pt`` that exists
    and is a YOLO-seg checkpoint; the name of a COCO-pretrained one Ultralytics publishes
    (`afss.student.published.published_seg`, e.g. ``yolo11n-seg.pt``), downloaded there if missing
    (unless ``download`` is off: then the name is returned as it is, for a check that fetches nothing);
    or a ``*-seg.yaml`` model config.

    Raises:
        AfssError: one line naming the file or the name, and what was expected.
    """
    if init == "synth":
        if not SHIPPED_SYNTH_WEIGHTS.is_file():
            raise AfssError(f"--init synth: the synth-pretrained student is not in this install "
                            f"({SHIPPED_SYNTH_WEIGHTS}); build it with `afss pretrain --out student_synth.pt` "
                            "and pass --init student_synth.pt, or use --init yolo11n-seg.yaml")
        return str(SHIPPED_SYNTH_WEIGHTS)
    if init.endswith((".yaml", ".yml")):
        if Path(init).is_file():
            return init
        from afss.student.env import ultralytics

        cfg = Path(ultralytics().__file__).parent / "cfg" / "models"
        if not "-seg" in Path(init).stem or not any(cfg.rglob(_family_yaml(init))):
            raise AfssError(f"--init {init}: not a segmentation model config Ultralytics ships "
                            "(e.g. yolo11n-seg.yaml, yolo11s-seg.yaml, yolov8n-seg.yaml), nor a file")
        return init
    from afss.student.model import load_yolo
    from afss.student.published import detection_name, fetch_published, published_seg

    if Path(init).suffix.lower() == ".onnx":
        raise AfssError(f"--init {init}: an ONNX file cannot be trained; start from the .pt it was exported from")
    name = Path(init).name
    if not Path(init).is_file():
        if name in published_seg():  # COCO-pretrained, by name: Ultralytics downloads it where --init points
            if not download:
                return init
            fetch_published(init)
        elif (instead := detection_name(name)) is not None:
            raise AfssError(f"--init {init}: Ultralytics' {Path(name).stem} is not a segmentation model; the student "
                            f"needs one: use {instead}")
    if not Path(init).is_file():
        raise AfssError(f"--init {init}: no such file; expected synth, a YOLO-seg .pt file, the name of one Ultralytics "
                        "publishes (e.g. yolo11n-seg.pt, yolov8s-seg.pt), or a model .yaml for "
                        "random weights (yolo11n-seg.yaml)")
    load_yolo(init, what="--init")  # a foreign or detection-only file fails here, in one line
    return str(Path(init).resolve())


def _family_yaml(name: str) -> str:
    """``yolo11n-seg.yaml`` -> ``yolo11-seg.yaml``: Ultralytics keeps one file per family, scales n/s/m/l/x."""
    stem = Path(name).stem
    base = stem.replace("-seg", "")
    if base[-1:] in "nsmlx" and base[:-1][-1:].isdigit():
        base = base[:-1]
    return f"{base}-seg.yaml"


def train_student(labels: LabelSet, out: str | os.PathLike, config: TrainConfig | None = None, *,
                  progress: Callable[[int, dict[str, float]], None] | None = None,
                  on_plan: Callable[[str, int, float | None], None] | None = None,
                  overwrite: bool = False, mask_start: str | os.PathLike | None = None) -> TrainResult:
    """Train a YOLO-seg student on ``labels`` (pseudo-labels: no ground truth belongs here).

    A run that was killed (``out/weights/last.pt`` there, ``out/train.json`` not yet) continues from
    its last finished epoch, with Ultralytics' own resume (optimiser and schedule included). A run
    that finished with the same labels and recipe (`training_identity`) is not trained again: its
    recorded result comes back (``reused``); ``overwrite`` trains it again from ``init``.

    Args:
        labels: the images and their (refined, filtered) labels; images without an instance are
            left out of training.
        out: the run folder (see the module docstring for what goes in it).
        config: the recipe, `TrainConfig`.
        progress: called after every epoch with its number (1-based) and validation metrics.
        on_plan: called once before training with the recipe, the epochs (``auto`` and ``None`` made
            concrete) and the start's agreement with the labels where it decided them, else ``None``.
        mask_start: with ``mask_source="start"``, the model whose outlines replace the labels' (a ``.pt``
            or ``synth``; default: ``init``). `afss.distill` passes round 1's start to every round, so a
            round that fine-tunes the previous student still takes the pretrained start's outlines,
            not those of the student that made its labels.
        overwrite: train from ``init`` into ``out`` whatever it holds: a run on other labels or with
            another recipe (refused by default: its weights would be replaced), an interrupted run
            (not continued) or this very training finished (trained again). Its ``train.json`` and
            ``weights/`` are removed first.

    Returns:
        `TrainResult`: best and last weights, the final validation metrics, timings.

    Raises:
        AfssError: labels with no kept instance, a bad ``init``, Ultralytics missing, a bad recipe.
    """
    config = config or TrainConfig()
    out = Path(out).resolve()
    init = resolve_init(config.init)
    # the start whose outlines mask_source "start" takes; resolved (and loaded to check it) only then
    given = mask_start is not None and config.mask_source == "start"
    donor = resolve_init(str(mask_start)) if given else init
    identity = training_identity(labels, config, mask_start=donor if given else None)
    _check_run_folder(out, identity, overwrite)
    if overwrite:
        _clear_run(out)
    elif (done := _finished(out, identity)) is not None:
        log.info("%s: trained before on the same labels with the same recipe; returning that result "
                 "(overwrite=True trains again)", out)
        return done
    check_device(config.device, "train")  # before the start judges the labels on it
    check_trainable(labels)
    last_pt = out / "weights" / "last.pt"
    resume = last_pt.is_file() and not (out / "train.json").is_file()
    if resume and not _whole_checkpoint(last_pt):
        # killed while Ultralytics wrote it (not atomically): every rerun would crash on it
        log.warning("%s: cut short (the training was stopped while it was being written); training again from "
                    "the start", last_pt)
        last_pt.unlink()
        resume = False
    recipe, epochs, agreement = _decide(labels, config, init, out / "recipe.json", resume, identity)
    config = replace(config, recipe=recipe, epochs=epochs)
    if on_plan is not None:
        on_plan(recipe, epochs, agreement)
    if config.replay:
        from afss.synth.dataset import render_or_reuse

        replay = render_or_reuse(out / "replay", n=config.replay, size=512, domain="mixed", seed=REPLAY_SEED)
    else:
        replay = None
    swap = None
    if config.mask_source == "start" and recipe in MASK_LEARNING and not donor.endswith((".yaml", ".yml")):
        from afss.student.model import StudentTeacher

        start = StudentTeacher.build(weights=donor, imgsz=config.imgsz, device=config.device)
        labels, swap = swap_in_start_masks(labels, start)
        log.info("%s", swap.line())
    elif config.mask_source == "start":
        log.info("mask_source start: recipe %s %s; the labels' masks are trained on as they are", recipe,
                 "keeps the start's mask branch" if recipe not in MASK_LEARNING else "starts from random weights")
    data = export_yolo(labels, out / "data", val_fraction=config.val_fraction, seed=config.seed, replay=replay)
    from afss.student.env import ultralytics

    model = ultralytics().YOLO(str(last_pt) if resume else init, task="segment")
    if progress is not None:
        def epoch_end(trainer: Any) -> None:
            if trainer.epoch + 1 <= trainer.epochs:  # the final validation reports itself as epoch N + 1
                progress(int(trainer.epoch) + 1, dict(trainer.metrics or {}))

        model.add_callback("on_fit_epoch_end", epoch_end)
    ultralytics_args = {**config.recipe_args(), **config.extra}
    if ultralytics_args.get("freeze") in ("heads", "box"):
        ultralytics_args["freeze"] = _heads_freeze(model, classes=ultralytics_args["freeze"] == "box")
    args = {"data": str(data.yaml), "epochs": config.epochs, "imgsz": config.imgsz, "batch": config.batch,
            "device": config.device, "project": str(out.parent), "name": out.name, "exist_ok": True,
            "workers": 0, "seed": config.seed, "deterministic": True, "patience": config.patience,
            "plots": True, "verbose": False, "amp": False, **ultralytics_args}
    if resume:
        log.info("%s: continuing the interrupted training from %s", out, last_pt)
        args = {"resume": str(last_pt), "data": str(data.yaml), "workers": 0, "device": config.device}
    t0 = time.perf_counter()
    try:
        model.train(**{k: v for k, v in args.items() if v is not None})
    except AssertionError as e:  # Ultralytics: "training to N epochs is finished, nothing to resume"
        if not (resume and "nothing to resume" in str(e)):
            raise
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        raise AfssError(f"train: Ultralytics stopped: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    seconds = time.perf_counter() - t0
    weights = out / "weights" / "best.pt"
    last = out / "weights" / "last.pt"
    metrics = read_results_csv(out / "results.csv")
    epochs = int(metrics.get("epoch", config.epochs))
    result = TrainResult(out=out, weights=weights if weights.is_file() else last, last=last, dataset=data,
                         metrics=metrics, seconds=seconds, seconds_per_epoch=seconds / max(epochs, 1), epochs=epochs,
                         recipe=recipe, agreement=agreement, mask_swap=swap)
    write_json_atomic(out / "train.json", {
        "stage": "train", "identity": identity, "init": config.init, "init_resolved": init, "config": asdict(config),
        "recipe": recipe, "start_agreement": agreement, "recipe_args": ultralytics_args,
        "mask_start": None if swap is None else donor, "mask_swap": None if swap is None else asdict(swap),
        "dataset": {"train": data.train, "val": data.val, "instances": data.instances, "names": list(data.names),
                    "skipped": data.skipped, "replay": data.replay, "converted": data.converted,
                    "train_and_val_share": data.train_and_val_share},
        "labels_info": dict(labels.info), "metrics": metrics, "seconds": round(seconds, 2),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2), "weights": str(result.weights)}, indent=2)
    return result


def _finished(out: Path, identity: dict[str, Any]) -> TrainResult | None:
    """The result recorded in ``out/train.json`` of a finished training of this ``identity`` whose
    weights are still there, else ``None``."""
    try:
        record = json.loads((out / "train.json").read_text())
        if record.get("identity") != identity:
            return None
        weights, data = Path(record["weights"]), record["dataset"]
        dataset = YoloDataset(root=out / "data", yaml=out / "data" / "dataset.yaml", train=data["train"],
                              val=data["val"], instances=data["instances"], names=tuple(data["names"]),
                              skipped=data["skipped"], replay=data.get("replay", 0), converted=data.get("converted", 0),
                              train_and_val_share=data.get("train_and_val_share", False))
        metrics = {k: float(v) for k, v in record.get("metrics", {}).items()}
        result = TrainResult(out=out, weights=weights, last=out / "weights" / "last.pt", dataset=dataset,
                             metrics=metrics, seconds=float(record["seconds"]),
                             seconds_per_epoch=float(record["seconds_per_epoch"]),
                             epochs=int(metrics.get("epoch", record["config"]["epochs"])), reused=True,
                             recipe=record.get("recipe", record["config"]["recipe"]),
                             agreement=record.get("start_agreement"),
                             mask_swap=None if not record.get("mask_swap") else MaskSwap(**record["mask_swap"]))
    except (OSError, ValueError, RecursionError, AttributeError, KeyError, TypeError):
        return None  # no record, or one this version cannot read: train
    return result if weights.is_file() else None


def _decide(labels: LabelSet, config: TrainConfig, init: str, record: Path, resume: bool,
            identity: dict[str, Any]) -> tuple[str, int, float | None]:
    """The recipe, epochs and agreement of this training: ``auto`` and ``epochs=None`` made concrete
    (`start_agreement` where it decides), kept in ``record`` with the training's ``identity`` so that a
    training continued after an interruption reports what it trains with, not a new measurement, and
    continues only under the labels and settings it started with (`_check_run_folder`)."""
    if resume and record.is_file():
        try:
            done = json.loads(record.read_text())
            return str(done["recipe"]), int(done["epochs"]), done.get("agreement")
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: decide again (Ultralytics continues with what last.pt holds anyway)
    agreement = None
    labelled = sum(1 for im in labels.images if im.instances)
    if weighs_agreement(config.recipe, config.init) and labelled:
        log.info("recipe auto: how well the start's boxes agree with the labels (%d images)",
                 min(AGREEMENT_SAMPLE, labelled))
        agreement = start_agreement(init, labels, imgsz=config.imgsz, device=config.device)
    recipe = resolve_recipe(config.recipe, config.init, agreement)
    epochs = config.epochs or RECIPE_EPOCHS[recipe]
    record.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record, {"recipe": recipe, "epochs": epochs, "agreement": agreement, "identity": identity})
    return recipe, epochs, agreement


MASK_LEARNING = ("ultralytics", "finetune")
"""Recipes whose mask branch learns from the labels (``heads`` and ``box`` keep the start's)."""

AGREEMENT_SAMPLE = 100
"""Labelled images `start_agreement` looks at (a fixed sample: every training seed decides alike)."""


def _whole_checkpoint(path: Path) -> bool:
    """Whether a torch checkpoint file is whole: it is a zip archive, whose directory comes last."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return bool(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def check_extra(extra: Any, where: str = "extra") -> dict[str, Any]:
    """``extra`` Ultralytics ``train`` arguments, each a key Ultralytics knows (checked where it is
    installed: it refuses an unknown one only when the training starts); one line naming the key."""
    if not isinstance(extra, dict):
        raise AfssError(f"{where}: expected a mapping of Ultralytics train arguments, got {type(extra).__name__}")
    try:
        from afss.student.env import ultralytics

        ultralytics()
        from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg
    except (ImportError, AfssError):  # no Ultralytics here: the training says so itself
        return extra
    try:  # Ultralytics' own check, as its training makes it (deprecated keys and its extra ones pass)
        get_cfg(DEFAULT_CFG_DICT, dict(extra))
    except (SyntaxError, TypeError, ValueError) as e:  # an unknown key; a value of the wrong type
        import re

        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(e).splitlines()]
        raise AfssError(f"{where}: " + " ".join(line for line in lines if line)) from None
    return extra


def start_agreement(weights: str | os.PathLike, labels: LabelSet, *, imgsz: int = 320, device: str | None = "cpu",
                    sample: int = AGREEMENT_SAMPLE) -> float:
    """How well a start already finds what ``labels`` mark: the mean IoU of its top-1 box with each
    labelled image's best-scoring box (0 where it finds nothing), over a fixed sample of ``sample``
    labelled images. No ground truth is involved: ``labels`` are the training labels.

    Raises:
        AfssError: ``labels`` with no labelled image.
    """
    import numpy as np

    from afss.evaluate.preview import box_iou
    from afss.label import label_images
    from afss.student.model import StudentTeacher

    labelled = [im for im in labels.images if im.instances]
    if not labelled:
        raise AfssError("start agreement: the labels keep no instance to compare the start's boxes with")
    if len(labelled) > sample:
        keep = np.random.default_rng(0).choice(len(labelled), size=sample, replace=False)
        labelled = [labelled[i] for i in sorted(keep)]
    subset = labels.replace(images=tuple(im.replace(instances=()) for im in labelled))
    start = StudentTeacher.build(weights=str(weights), imgsz=imgsz, device=device)
    found = label_images(start, subset)
    ious = []
    for want, got in zip(labelled, found.images, strict=True):
        best = max(want.instances, key=lambda i: i.score)
        ious.append(box_iou(best.box_xyxy, got.instances[0].box_xyxy) if got.instances else 0.0)
    return float(np.mean(ious))


def _clear_run(out: Path) -> None:
    """Remove what makes ``out`` a finished or interrupted training (its record and weights), so
    that the next training starts from ``init``; the exported dataset is rewritten anyway."""
    import shutil

    (out / "train.json").unlink(missing_ok=True)
    (out / "recipe.json").unlink(missing_ok=True)
    if (out / "weights").is_dir():
        shutil.rmtree(out / "weights")


def training_identity(labels: LabelSet, config: TrainConfig, *, mask_start: str | None = None) -> dict[str, Any]:
    """What makes two trainings the same (the labels' files and contents, the recipe, and the start
    whose outlines ``mask_source="start"`` takes where it is not ``init``), as JSON values:
    `train_student` records it in ``train.json`` and continues only a run of the same identity."""
    from afss.io.outputs import input_identity

    config_json = json.loads(json.dumps(asdict(config)))
    for key, default in _ADDED_LATER.items():  # so that a training finished before the key existed is still found
        if config_json.get(key) == default:
            config_json.pop(key)
    if config.mask_source == "start" and mask_start is not None:
        config_json["mask_start"] = str(mask_start)
    return {"labels": input_identity(labels, labels), "config": config_json}


_ADDED_LATER = {"mask_source": "labels"}
"""`TrainConfig` fields added after trainings were recorded, left out of `training_identity` at these
values (which every older training had)."""


def _heads_freeze(model: Any, *, classes: bool = False) -> list[int | str]:
    """`heads_freeze` for this model, whose last layer must be a segmentation head with a mask branch."""
    layers = model.model.model
    head = layers[-1]
    if not (hasattr(head, "proto") and hasattr(head, "cv4")):
        raise AfssError(f"train: recipe heads needs a YOLO-seg model (its last layer with proto and cv4), "
                        f"got {type(head).__name__}")
    return heads_freeze(len(layers), classes=classes)


def _check_run_folder(out: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """``out`` must be new, empty, or this very training (to continue it, or return it finished); a
    run on other labels or with another recipe is kept unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise AfssError(f"{out}: exists and is not a folder; --out names the run folder")
    if overwrite or not out.is_dir() or not any(out.iterdir()):
        return
    record = out / "train.json"
    if record.is_file():
        old = _recorded_identity(record)
        if old == identity:
            return
        what = _other_training("a training", old, identity)
    elif any((out / f).is_file() for f in ("recipe.json", "args.yaml", "data/manifest.json")):
        # an interrupted run of afss train continues: only with the labels and settings it started with
        # (recorded in recipe.json when it started; an older afss recorded none)
        started = _recorded_identity(out / "recipe.json")
        if started is None or started == identity or not (out / "weights" / "last.pt").is_file():
            return  # the same training, or one that finished no epoch: it starts again
        what = _other_training("an interrupted training", started, identity)
        raise AfssError(f"{out}: folder is {what}; rerun the command it started with to continue it, pass "
                        "--overwrite to train there anew, or choose another --out")
    else:
        what = "not an afss training run"
    raise AfssError(f"{out}: folder is {what}; pass --overwrite to train there anyway, or choose another --out")


def _recorded_identity(record: Path) -> dict[str, Any] | None:
    try:
        old = json.loads(record.read_text()).get("identity")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return old if isinstance(old, dict) else None


def _other_training(kind: str, old: dict[str, Any] | None, identity: dict[str, Any]) -> str:
    """What the folder holds, in words: ``kind`` on other labels, or which settings differ."""
    if old is None or old.get("labels") != identity["labels"]:
        return f"{kind} on other labels or with another recipe"
    # a key left out of the identity (`_ADDED_LATER`) had its default value
    was, now = {**_ADDED_LATER, **(old.get("config") or {})}, {**_ADDED_LATER, **identity["config"]}
    changed = [f"{k} {was.get(k)!r}, now {now.get(k)!r}" for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
    return f"{kind} on the same labels with other settings ({'; '.join(changed)})"


def read_results_columns(path: Path) -> dict[str, list[float]]:
    """Every column of an Ultralytics ``results.csv`` (names stripped, one value per epoch; NaN where a
    cell is not a number), or ``{}`` when the file is unreadable or has no row. An epoch written twice
    (a resumed training writes the epoch it resumed from again) keeps its last row."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return {}
    if len(lines) < 2:
        return {}
    keys = [k.strip() for k in lines[0].split(",")]
    rows = [dict(zip(keys, map(_number, line.split(",")))) for line in lines[1:]]
    if "epoch" in keys:
        rows = list({row.get("epoch"): row for row in rows}.values())  # later rows replace earlier ones
    return {k: [row.get(k, float("nan")) for row in rows] for k in keys}


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return float("nan")


def read_results_csv(path: Path) -> dict[str, float]:
    """The last row of Ultralytics' ``results.csv`` (column names stripped), or ``{}``."""
    return {k: v[-1] for k, v in read_results_columns(path).items()}
