"""Teacher-student distillation rounds: the paper's pipeline from an unlabeled pool to a student.

Round 1: the teacher labels the pool, TTA + WBF refine the labels, the confidence filter keeps the
good ones, the student trains on them. Round k > 1: the previous student relabels the pool through
the same refinement (a trained student is a `Teacher`), the filter runs again, and a student is
trained again (fine-tuned from the previous one, or from ``init``). It stops after ``rounds`` or when
the kept labels stop changing (the same images kept, mean mask IoU to the previous round's labels
at least ``stable_iou``).

Everything of a round lives in ``out/round-K/``: ``labels.json`` (round 1: the teacher's),
``refined.json`` (+ ``.summary.json``), ``train/`` (the student run) and, with ground truth,
``metrics.json``. ``out/student.pt`` is the chosen student (with several rounds, the one whose boxes
the teacher trusts most, `label_free_quality`; no ground truth), ``out/distill.json`` the record.
Every step is skipped when its output is already there, and label/refine resume from their
journals, so rerunning the same command after a crash continues where it stopped. A rerun may also
change what no finished step used: ``rounds``, ``stable_iou`` and ``choose`` (where it stops, which
round is the result) always, and the settings only rounds > 1 use (``student_min_score``,
``finetune``, ``rescore``) while no round 2 has started; so ``--rounds 2`` after a one-round
distillation trains one more round on top of the first. Ground truth (``gt``) is only used to score
each round; nothing trains on it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.io.atomic import write_json_atomic
from afss.io.coco import read_coco, read_json_file
from afss.io.outputs import input_identity, read_finished, writable_folder
from afss.label import label_images
from afss.refine import RefineConfig, refine_labels
from afss.refine.filtering import TRAIN_AUTO_KEEP, bound_for, check_auto_keep, is_auto_cut
from afss.refine.tta import parse_views
from afss.teachers.base import Teacher
from afss.types import LabelSet

__all__ = ["DistillConfig", "RoundResult", "distill", "label_agreement", "label_free_quality", "trained_as"]

log = logging.getLogger(__name__)


CHOICES = ("quality", "last")
"""How `distill` picks the round whose student becomes ``student.pt`` (`DistillConfig.choose`)."""


@dataclass(frozen=True)
class DistillConfig:
    """The distillation recipe.

    Attributes:
        rounds: at most this many rounds (default 1, the paper's single student: a second round, the
            student relabelling the pool, lowered AP in every measurement, on SPARK-2021 and on afss
            synth; docs/benchmarks.md).
        views: TTA views of every refinement (paper: identity,vflip).
        min_score: the confidence filter of every round: ``"auto"`` (the default: a cut chosen from the
            scores, `afss.refine.filtering.cut_score`), or a number (paper: 0.6). On `make demo`'s pool
            both keep about the same (169 and 162 of 300 images); on SPARK-2021, whose teacher scores sit
            lower, ``auto`` cut at 0.47 and kept 611 of 1,069 frames.
        keep_top: instead of ``min_score``, keep the best-scoring fraction of the pool every round.
        auto_keep: the least and most share of the images an ``"auto"`` cut keeps, in
            round 1 and, with ``student_min_score="auto"``, in later rounds
            (`afss.refine.filtering.TRAIN_AUTO_KEEP`, 30-80 %, wider than ``afss refine``'s 30-50 %:
            50 % trained slightly worse students on render settings no choice saw, docs/label.md).
        student_min_score: the cut of rounds > 1, where a student relabels the pool (``None``: the
            same as round 1). A student's score is its class confidence, not the teacher's calibrated
            one: on SPARK-2021 the teacher's 0.6 kept 2 of 400 images of the student's labels, so
            ``"auto"`` (a cut from the student's own scores) is the one to use there.
        prompt: the text prompt for the teacher.
        finetune: rounds > 1 start from the previous student (``True``) or from the train ``init``.
        stable_iou: stop early when the kept labels agree with the previous round's this well.
        choose: which round's student becomes ``student.pt`` when there are several: ``"quality"`` (the
            default: the round with the highest `label_free_quality`, judged by ``rescore``'s teacher or
            photometric) or ``"last"`` (the paper's). With two rounds it chose round 1, the better, on
            afss synth's distillation benchmark (three seeds) and on SPARK-2021 (docs/student.md).
        rescore: a teacher name whose confidence in each of the student's boxes rescores the student's
            instances wherever the student labels (rounds > 1, and the scoring of each round's
            student), see `afss.student.model.StudentTeacher`; ``None``: its class confidence. Default
            ``"photometric"``: it raised the student's AP on SPARK-2021 (+0.9 to +2.6 bbox AP, eight
            students), and on afss synth it costs little (`make demo`'s student on seeds 8-10: +0.6 mask,
            +0.2 box AP; the distillation benchmark, three seeds: +0.2 mask, -0.5 box AP);
            `afss predict --rescore photometric` scores the final student the same way.
    """

    rounds: int = 1
    views: str = "identity,vflip"
    min_score: float | str = "auto"
    keep_top: float | None = None
    auto_keep: tuple[float, float] = TRAIN_AUTO_KEEP
    student_min_score: float | str | None = None
    prompt: str = "spacecraft"
    finetune: bool = True
    stable_iou: float = 0.95
    rescore: str | None = "photometric"
    choose: str = "quality"

    def __post_init__(self) -> None:
        if self.choose not in CHOICES:
            raise AfssError(f"distill: choose must be one of {', '.join(CHOICES)}, got {self.choose!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or not 1 <= self.rounds <= 20:
            raise AfssError(f"distill: rounds must be a whole number in [1, 20], got {self.rounds!r}")
        RefineConfig(min_score=self.min_score, keep_top=self.keep_top)  # the same checks as refine's
        object.__setattr__(self, "auto_keep", check_auto_keep(
            self.auto_keep, "distill: auto_keep", needs="min_score or student_min_score 'auto'", default=TRAIN_AUTO_KEEP,
            auto_cut=is_auto_cut(self.min_score, self.keep_top) or self.student_min_score == "auto"))
        if self.student_min_score is not None:
            RefineConfig(min_score=self.student_min_score)
        parse_views(self.views)
        if self.rescore is not None:
            from afss.student.model import check_rescorer

            check_rescorer(self.rescore)


@dataclass(frozen=True)
class RoundResult:
    round: int
    kept: int
    images: int
    weights: Path
    agreement: float | None
    metrics: dict[str, Any] | None
    seconds: float
    recipe: str | None = None
    """The recipe its student trained with (``auto`` made concrete)."""
    quality: float | None = None
    """Its student's `label_free_quality` (computed when ``rounds > 1`` and ``choose="quality"``)."""
    chosen: bool = False
    """Its student is ``student.pt``."""


def label_agreement(a: LabelSet, b: LabelSet) -> tuple[float, bool]:
    """Mean top-1 mask IoU of two label sets over the images either keeps (0 where only one does), and
    whether they keep the same images."""
    by_name = {im.file_name: im for im in b.images}
    ious, same = [], True
    for im in a.images:
        other = by_name.get(im.file_name)
        x = im.instances[0] if im.instances else None
        y = other.instances[0] if other is not None and other.instances else None
        if (x is None) != (y is None):
            same = False
            ious.append(0.0)
        elif x is not None and y is not None:
            mx, my = x.mask, y.mask
            if mx is None or my is None:
                continue
            union = np.logical_or(mx, my).sum()
            ious.append(float(np.logical_and(mx, my).sum() / union) if union else 1.0)
    return (float(np.mean(ious)) if ious else 1.0), same


def distill(teacher: Teacher, pool: LabelSet, out: str | os.PathLike, *, config: DistillConfig | None = None,
            train: Any = None, gt: LabelSet | str | os.PathLike | None = None,
            progress: Callable[[str], None] | None = None,
            bar: Callable[[str, int], AbstractContextManager[Callable[[int], None]]] | None = None) -> list[RoundResult]:
    """Run the teacher-student rounds over ``pool`` (see the module docstring).

    Args:
        teacher: round 1's labeller (any `Teacher`). One that also has a ``release()`` method (``afss
            run``'s, built on first use) is released once round 1's labels are refined: it is not asked
            again, and a vision-language teacher would hold gigabytes of GPU memory through the training.
        pool: the unlabeled images (their instances, if any, are ignored).
        out: the distillation folder.
        config: `DistillConfig`.
        train: `afss.student.train.TrainConfig` for every round's training.
        gt: ground truth of the pool, only to score each round's labels and student.
        progress: called with a line per finished step and per training epoch.
        bar: ``bar(title, total)`` -> a context manager yielding ``advance(n)``, for a progress bar
            over the images of each labelling and refinement (e.g. tqdm's); none by default.

    Returns:
        One `RoundResult` per round run.
    """
    from afss.student.model import StudentTeacher, check_device
    from afss.student.recipe import RECIPE_EPOCHS, plan_line
    from afss.student.train import TrainConfig, check_extra, train_student

    config = config or DistillConfig()
    train = train or TrainConfig()
    # what would fail only after the labelling and a training, checked first
    check_device(train.device, "distill: the student's")
    check_extra(train.extra, "distill: the student's extra")
    if gt is not None and not isinstance(gt, LabelSet):
        gt = read_coco(gt)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AfssError(f"{out}: exists and is not a folder; --out names the distillation folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "distill.json").is_file():
        raise AfssError(f"{out}: folder is not empty and is not an afss distillation; choose a new or empty --out")
    writable_folder(out)
    pool = pool.replace(images=tuple(im.replace(instances=(), error=None) for im in pool.images))
    _check_same_pool(out, input_identity(pool), {"config": asdict(config), "train": asdict(train)})
    before = _chosen_round(out)  # until this run chooses, the record keeps saying which round student.pt is
    # a round an earlier invocation finished keeps the time it took then, not the reading back now
    spent = {r.get("round"): float(r.get("seconds") or 0.0) for r in _recorded_rounds(out)}
    say = progress or (lambda line: log.info("%s", line))
    bar = bar or (lambda title, total: nullcontext(lambda n: None))
    results: list[RoundResult] = []
    planned: tuple[str, int] | None = None  # round 1's recipe and epochs, `auto` made concrete
    previous: LabelSet | None = None
    weights: Path | None = None
    refine_config = RefineConfig(min_score=config.min_score, keep_top=config.keep_top, prompt=config.prompt,
                                 auto_keep=bound_for(config.auto_keep, config.min_score, config.keep_top))
    for k in range(1, config.rounds + 1):
        t0 = time.perf_counter()
        folder = out / f"round-{k}"
        folder.mkdir(exist_ok=True)
        if k == 1:
            labeller = teacher
            given = read_finished(folder / "labels.json", "label")
            if given is None:
                with bar(f"round {k}: teacher labels the pool", len(pool)) as advance:
                    given = label_images(teacher, pool, prompt=config.prompt, out=folder / "labels.json",
                                         progress=advance)
            say(f"round {k}: teacher labels -> {folder / 'labels.json'}")
        else:
            labeller = StudentTeacher.build(weights=str(weights), imgsz=train.imgsz, device=train.device,
                                            rescore=config.rescore)
            given = None
        refined = read_finished(folder / "refined.json", "refine")
        if refined is None:
            cut = refine_config
            if k > 1 and config.student_min_score is not None:
                cut = replace(refine_config, min_score=config.student_min_score, keep_top=None,
                              auto_keep=bound_for(config.auto_keep, config.student_min_score))
            with bar(f"round {k}: refine {config.views}", len(pool)) as advance:
                refined, summary = refine_labels(labeller, pool if given is None else given, views=config.views,
                                                 labels=given, config=cut, out=folder / "refined.json",
                                                 progress=advance)
            say(f"round {k}: refined, {summary.filter.line()}")
        if k == 1 and callable(getattr(teacher, "release", None)):
            teacher.release()
        kept = sum(1 for im in refined.images if im.instances)
        if kept == 0 and k > 1:  # nothing left to learn from: the previous student is the result
            say(f"round {k}: the student's refined labels keep no image; stopping with round {k - 1}'s student")
            break
        run = folder / "train"
        if (run / "train.json").is_file() and (run / "weights" / "best.pt").is_file():
            say(f"round {k}: student already trained -> {run / 'weights' / 'best.pt'}")
            best = run / "weights" / "best.pt"
            done = trained_as(run, train)
            round_recipe, planned = done[0], planned or done
        else:
            init = str(weights) if (k > 1 and config.finetune and weights is not None) else train.init
            # `auto` is decided once, by round 1's start and labels; later rounds train as round 1 did
            this = replace(train, init=init) if planned is None else replace(train, init=init, recipe=planned[0],
                                                                            epochs=planned[1])

            total: list[int] = []  # the epochs, once the training has made `auto` and None concrete

            def plan(recipe: str, epochs: int, agreement: float | None, k: int = k, total: list[int] = total) -> None:
                total.append(epochs)
                say(f"round {k}: {plan_line(recipe, epochs, agreement)}")

            def epoch_line(epoch: int, metrics: dict[str, float], k: int = k, total: list[int] = total) -> None:
                map_ = metrics.get("metrics/mAP50-95(M)")
                say(f"round {k}: epoch {epoch}" + (f"/{total[0]}" if total else "")
                    + (f", val mask mAP50-95 {map_:.3f} (pseudo-labels)" if map_ is not None else ""))

            # --mask-source start: every round takes round 1's start's outlines, never those of the
            # student that made this round's labels
            donor = train.init if this.init != train.init else None
            result = train_student(refined, run, this, progress=epoch_line, on_plan=plan, mask_start=donor)
            best, round_recipe = result.weights, result.recipe
            if result.mask_swap is not None:
                say(f"round {k}: {result.mask_swap.line()}")
            planned = planned or (result.recipe, this.epochs or RECIPE_EPOCHS[result.recipe])
            say(f"round {k}: student trained -> {best}")
        agreement = None
        if previous is not None:
            agreement, same = label_agreement(refined, previous)
        metrics = _score(gt, refined, best, pool, folder, train, config.rescore) if gt is not None else None
        quality = None
        if config.rounds > 1 and config.choose == "quality":
            quality = _judged(folder, best, pool, train, judge=config.rescore or "photometric")
            say(f"round {k}: label-free quality {quality:.4f} (the teacher's mean confidence in its top-1 boxes)")
        results.append(RoundResult(round=k, kept=kept, images=len(pool), weights=best, recipe=round_recipe,
                                   agreement=agreement, metrics=metrics, seconds=spent.get(k, time.perf_counter() - t0),
                                   quality=quality, chosen=k == before))
        weights, previous = best, refined
        _write_record(out, config, train, results)
        if agreement is not None and same and agreement >= config.stable_iou:
            say(f"round {k}: labels stopped changing (agreement {agreement:.3f}); stopping")
            break
    judged = [r for r in results if r.quality is not None]
    # the earliest of equals: a later round costs a training and has never been measured better
    pick = max(judged, key=lambda r: r.quality) if len(judged) == len(results) > 1 else results[-1]
    results = [replace(r, chosen=r is pick) for r in results]
    if len(results) > 1:
        say(f"chose round {pick.round}'s student" + (
            f" (label-free quality {pick.quality:.4f}; " + ", ".join(
                f"round {r.round} {r.quality:.4f}" for r in results if r.round != pick.round) + ")"
            if pick.quality is not None else " (the last)"))
    _write_record(out, config, train, results)
    final = out / "student.pt"
    tmp = out / ".student.pt.tmp"
    shutil.copyfile(pick.weights, tmp)
    os.replace(tmp, final)
    return results


JUDGE_SAMPLE = 100
"""Pool images `label_free_quality` looks at (a fixed sample, rng seed 0)."""


def label_free_quality(weights: str | os.PathLike, pool: LabelSet, *, imgsz: int | None = None,
                       device: str | None = "cpu", judge: str = "photometric", sample: int = JUDGE_SAMPLE) -> float:
    """How good a student's boxes look to ``judge`` (a teacher that can segment a given box), with no
    ground truth: over a fixed sample of up to ``sample`` pool images, the mean of the judge's
    confidence (its calibrated mask score) in the student's top-1 instance, ranked as the rescored
    student ranks them; 0 where the student finds nothing.

    Raises:
        AfssError: an empty pool, or a ``judge`` that cannot score a given box.
    """
    from afss.student.model import StudentTeacher

    if not len(pool):
        raise AfssError("label-free quality: the pool has no image to judge a student on")
    images = list(pool.images)
    if len(images) > sample:
        keep = np.random.default_rng(0).choice(len(images), size=sample, replace=False)
        images = [images[i] for i in sorted(keep)]
    subset = pool.replace(images=tuple(im.replace(instances=(), error=None) for im in images))
    student = StudentTeacher.build(weights=str(weights), imgsz=imgsz, device=device, rescore=judge)
    found = label_images(student, subset)
    return float(np.mean([max(im.instances, key=lambda i: i.score).scores["rescore_score"] if im.instances else 0.0
                          for im in found.images]))


def trained_as(run: str | os.PathLike, train) -> tuple[str, int]:
    """The recipe and epochs a finished training in ``run`` used (its ``train.json``; an older afss
    recorded ``auto`` made concrete without the agreement: as it did then), ``train``'s where it is
    silent. A comparison that must train as a distillation did (the supervised upper bound on the
    pool's true labels) takes them from its round 1: ``auto`` would decide again, on other labels."""
    run = Path(run)
    from afss.student.recipe import RECIPE_EPOCHS, resolve_recipe

    record = read_json_file(run / "train.json")
    config = record.get("config", {}) if isinstance(record, dict) else {}
    recipe = record.get("recipe") or resolve_recipe(config.get("recipe", train.recipe), config.get("init", train.init))
    return recipe, int(config.get("epochs") or train.epochs or RECIPE_EPOCHS[recipe])


def _score(gt: LabelSet, refined: LabelSet, weights: Path, pool: LabelSet, folder: Path, train,
           rescore: str | None = None) -> dict[str, Any]:
    """AP of the round's kept labels and of its student's predictions on the pool, against ``gt``."""
    from afss.evaluate import evaluate
    from afss.student.model import StudentTeacher

    cached = folder / "student_predictions.json"
    predicted = read_finished(cached, "label")
    # made with another rescoring (a rerun may change it before round 2): scored again
    if predicted is not None and (predicted.info.get("teacher_options") or {}).get("rescore") != rescore:
        predicted = None
        cached.unlink()
    _drop_stale_journal(cached, rescore)
    if predicted is None:  # the student is loaded only when its predictions are not there yet
        student = StudentTeacher.build(weights=str(weights), imgsz=train.imgsz, device=train.device,
                                       rescore=rescore)
        predicted = label_images(student, pool, out=folder / "student_predictions.json")
    scores = {}
    for name, pred in (("refined", refined), ("student", predicted)):
        report = evaluate(gt, pred, iou_types=("segm", "bbox"), protocols=("coco",))
        scores[name] = {f"{r.iou_type}_ap": r.ap for r in report.rows if r.category == "all"}
    write_json_atomic(folder / "metrics.json", scores, indent=2)
    return scores


_ANY_TIME = frozenset({"rounds", "stable_iou", "choose"})
"""Settings that say where the rounds stop and which is the result: a finished round is the same
whatever they are."""

_FROM_ROUND_2 = frozenset({"student_min_score", "finetune", "rescore"})
"""Settings round 1 does not use (``rescore``: only to score its student, which is done again)."""

_UNRECORDED: dict[str, dict[str, Any]] = {"config": {"rescore": None, "choose": "last"}}
"""Settings added after distill.json was first written whose default has changed since, with the
value a distillation had before they existed (``rescore``: the student's own confidence; its default
is ``photometric`` now; ``choose``: the last round). Every other key an older record lacks had today's default."""


def _check_same_pool(out: Path, inputs: dict[str, Any], settings: dict[str, Any]) -> None:
    """A rerun continues an earlier distillation only over the same pool and with the same settings
    (its finished rounds are reused, so other settings would be recorded over results they did not make)."""
    import json

    record = out / "distill.json"
    settings = json.loads(json.dumps(settings, default=str))
    if record.is_file():
        data = read_json_file(record)
        if not isinstance(data, dict):
            raise AfssError(f"{record}: not an afss distillation record; choose another --out")
        old = data.get("inputs")
        if old is not None and old != json.loads(json.dumps(inputs)):
            raise AfssError(f"{out}: holds a distillation of another pool ({old.get('image_root')}, "
                            f"{old.get('images')} images; now {inputs['image_root']}, {inputs['images']}); "
                            "choose another --out")
        # a key an older afss did not record had its default then: today's, unless it changed since (`_UNRECORDED`)
        from afss.student.train import TrainConfig

        then = json.loads(json.dumps({"config": {**asdict(DistillConfig()), **_UNRECORDED["config"]},
                                      "train": asdict(TrainConfig())}, default=str))
        before = {part: {**then.get(part, {}), **(data.get(part) or {})} for part in settings}
        if data.get("config") is None:
            return
        changed = [(part, k) for part in settings for k in sorted(set(settings[part]) | set(before[part] or {}))
                   if (before[part] or {}).get(k) != settings[part].get(k)]
        free = _ANY_TIME | (set() if (out / "round-2").exists() else _FROM_ROUND_2)
        refused = [f"{part}.{k} {before[part].get(k)!r}, now {settings[part].get(k)!r}" for part, k in changed
                   if not (part == "config" and k in free)]
        if refused:
            raise AfssError(f"{out}: holds a distillation made with other settings ({'; '.join(refused)}); rerun it "
                            "as it was to continue (only rounds, stable_iou and choose may change, and before round 2 "
                            "student_min_score, finetune and rescore: delete its round-2 and later folders to "
                            "change those), or choose another --out")
    else:
        write_json_atomic(record, {"stage": "distill", "inputs": inputs, **settings, "rounds": []}, indent=2)


def _judged(folder: Path, weights: Path, pool: LabelSet, train, *, judge: str) -> float:
    """`label_free_quality` of a round's student, kept in ``folder/quality.json`` for the same judge,
    sample and weights file (a rerun chooses as the first run did, without judging again)."""
    stat = Path(weights).stat()
    key = {"judge": judge, "sample": JUDGE_SAMPLE, "imgsz": train.imgsz, "weights": str(Path(weights).resolve()),
           "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cached = folder / "quality.json"
    if cached.is_file():
        data = read_json_file(cached)
        if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("quality"), float):
            return data["quality"]
    quality = label_free_quality(weights, pool, imgsz=train.imgsz, device=train.device, judge=judge)
    write_json_atomic(cached, {"key": key, "quality": quality}, indent=2)
    return quality


def _drop_stale_journal(out: Path, rescore: str | None) -> None:
    """Remove the progress journal of the student's scoring when it was begun with another rescoring
    (it would be refused, not continued); one with the same settings is kept and resumed."""
    import json

    from afss.resumable import journal_path

    journal = journal_path(out)
    try:
        header = json.loads(journal.read_text(encoding="utf-8").split("\n", 1)[0])
        options = header["teacher"]["options"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if isinstance(options, dict) and options.get("rescore") != rescore:
        journal.unlink(missing_ok=True)


def _recorded_rounds(out: Path) -> list[dict]:
    """The rounds ``out/distill.json`` records (finished by earlier invocations); [] before any."""
    record = out / "distill.json"
    data = read_json_file(record) if record.is_file() else None
    rounds = data.get("rounds") if isinstance(data, dict) and isinstance(data.get("rounds"), list) else []
    return [r for r in rounds if isinstance(r, dict)]


def _chosen_round(out: Path) -> int | None:
    """The round ``out/distill.json`` names as ``student.pt`` (the last recorded one for an older
    record that names none); ``None`` before any round."""
    rounds = _recorded_rounds(out)
    chosen = [r.get("round") for r in rounds if r.get("chosen")]
    return chosen[0] if chosen else (rounds[-1].get("round") if rounds else None)


def _write_record(out: Path, config: DistillConfig, train, results: Sequence[RoundResult]) -> None:
    import json

    inputs = json.loads((out / "distill.json").read_text()).get("inputs")
    write_json_atomic(out / "distill.json", {
        "stage": "distill", "inputs": inputs, "config": asdict(config), "train": asdict(train),
        "rounds": [{**asdict(r), "weights": str(r.weights), "seconds": round(r.seconds, 2)} for r in results]},
        indent=2)
