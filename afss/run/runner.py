"""`run_pipeline`: every stage of a run in order, through the library's own API, resumable.

Stages and what each leaves in the run folder (``afss report`` reads the same layout):

    data        data/pool.json (the unlabeled pool), data/pool_gt.json (its ground truth, if any: only
                the upper bound trains on it), data/val_gt.json (held-out ground truth); synth scenes
                are rendered into data/pool/ and data/val/
    teacher     teacher/val_labels.json: the teacher's zero-shot labels of the val images
    refined     teacher/val_refined.json: the same refined (TTA + WBF) and filtered
    distill     distill/: an `afss.distill` folder (round-K/ labels, refined labels, student training)
    students    students/start.json (the student's pretrained start, no pseudo-labels) and round-K.json:
                each round's student on the val images
    upper-bound upper_bound/: the student trained on the pool's ground truth (``eval.upper_bound``)
    eval        metrics/<stage>.json per scored stage; metrics.json and the AP table in table.txt at the top
    report      report.html

``run.json`` records the resolved config, package versions, models, every stage's timing, and the
metrics; ``config.yaml`` the resolved config. A rerun of the same config skips the finished stages
and continues an interrupted one from its journal (label, refine) or last epoch (training); once a
stage has finished, a rerun with another config is refused, naming the keys that changed, so no result
is recorded over work it did not make (a run that finished no stage starts over).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.evaluate.report import percent
from afss.io.atomic import write_bytes_atomic, write_json_atomic
from afss.io.coco import read_coco, write_coco
from afss.io.outputs import read_finished, writable_folder
from afss.run.config import DataConfig, EvalConfig, RunConfig, config_diff, config_from_dict, config_to_dict
from afss.types import LabelSet

__all__ = ["RunResult", "check_run_folder", "check_run_inputs", "run_pipeline", "stage_order"]

log = logging.getLogger(__name__)

Bar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class RunResult:
    """What `run_pipeline` produced: the folder, the AP table (``None`` without ground truth), the
    report path (``None`` when ``report: false``) and seconds per stage run this time."""

    out: Path
    table: str | None
    report: Path | None
    seconds: dict[str, float]
    metrics: dict[str, Any]


def stage_order(rounds: int, upper_bound: bool, start: bool = False) -> list[str]:
    """The scored stages, in the order of the AP table: ``student-start`` is the student's pretrained
    start before any pseudo-label (so the table shows what distillation adds to it)."""
    return ["teacher", "refined", *(["student-start"] if start else []),
            *(f"student-round-{k}" for k in range(1, rounds + 1)), *(["upper-bound"] if upper_bound else [])]


def _tqdm_bar(desc: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    from tqdm import tqdm

    @contextmanager
    def bar() -> Iterator[Callable[[int], None]]:
        with tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, smoothing=0.1) as t:
            yield t.update

    return bar()


def _no_bar(desc: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda n: None)


# -- inputs -------------------------------------------------------------------------------------------

def _read_source(section: DataConfig | EvalConfig, folder: Path) -> LabelSet:
    """The images (and ground truth, if the source has it) of a data or eval section."""
    if section.source == "synth":
        from afss.synth.dataset import render_or_reuse

        return render_or_reuse(folder, n=section.n, size=section.size, domain=section.domain or "mixed",
                               seed=section.seed)
    if section.source == "images":
        from afss.label import images_from_folder

        return images_from_folder(section.root)
    from afss.datasets import read_dataset

    return read_dataset(section.source, section.root, **_reader_options(section))


def _reader_options(section: DataConfig | EvalConfig) -> dict[str, Any]:
    return {k: getattr(section, k) for k in ("split", "domain", "masks") if getattr(section, k) is not None}


def _same_source(a: DataConfig | EvalConfig, b: DataConfig | EvalConfig) -> bool:
    key = lambda s: (s.source, s.root, s.split, s.domain, s.masks)
    return key(a) == key(b) and a.source != "synth"


def _sample(labels: LabelSet, n: int | None, seed: int, exclude: set[str] = frozenset()) -> LabelSet:
    """A seeded sample of ``n`` images (all with ``n=None``), in dataset order, leaving out ``exclude``."""
    images = [im for im in labels.images if im.file_name not in exclude]
    if n is not None and n < len(images):
        keep = sorted(np.random.default_rng(seed).choice(len(images), size=n, replace=False).tolist())
        images = [images[k] for k in keep]
    return labels.replace(images=tuple(images))


def _in_pool(pool: LabelSet, source: LabelSet) -> set[str]:
    """``source``'s file names whose file is one of the pool's: the same file (symbolic links and relative
    roots resolved) or a copy of one, byte for byte (a student scored on copies of what it trained on
    would be called held out)."""
    files = {os.path.realpath(pool.image_path(im)) for im in pool.images}
    same = {im.file_name for im in source.images if os.path.realpath(source.image_path(im)) in files}
    sizes: dict[int, list[str]] = {}
    for path in files:
        with suppress(OSError):
            sizes.setdefault(os.path.getsize(path), []).append(path)
    digests: dict[tuple[str, bool], str] = {}

    def digest(path: str, whole: bool) -> str:  # read only where the sizes meet; the whole file only where
        if (path, whole) not in digests:       # the first 64 KiB do too (files of one size: raw frames)
            with open(path, "rb") as f:
                digests[(path, whole)] = hashlib.sha1(f.read() if whole else f.read(1 << 16)).hexdigest()
        return digests[(path, whole)]

    for im in source.images:
        if im.file_name in same:
            continue
        path = source.image_path(im)
        with suppress(OSError):
            twins = [t for t in sizes.get(os.path.getsize(path), ()) if digest(t, False) == digest(path, False)]
            if twins and digest(path, True) in {digest(t, True) for t in twins}:
                same.add(im.file_name)
    return same


def _strip(labels: LabelSet) -> LabelSet:
    return labels.replace(images=tuple(im.replace(instances=(), error=None) for im in labels.images))


def _has_gt(labels: LabelSet) -> bool:
    return any(im.instances for im in labels.images)


def check_run_inputs(config: RunConfig, *, download: bool = True) -> str:
    """Everything that can be checked before any long work: dataset roots, the teacher, the
    student's start and Ultralytics. One line naming the key or path. Returns the student's start
    as `afss.student.train.resolve_init` resolves it; with ``download`` off (``afss run --check``) a
    published checkpoint that is not here yet is returned by name, not fetched."""
    from afss.student.train import resolve_init
    from afss.teachers import teacher_class

    for name, section in (("data", config.data), ("eval", config.eval)):
        if section.source in (None, "synth"):
            continue
        root = Path(section.root)
        if not root.exists():
            raise AfssError(f"{name}.root: {root}: no such {'file' if section.source == 'coco' else 'folder'}")
        if section.masks is not None and not Path(section.masks).is_dir():
            raise AfssError(f"{name}.masks: {section.masks}: no such folder")
        if section.source == "images":
            if not root.is_dir():
                raise AfssError(f"{name}.root: {root}: source images needs a folder of images")
            continue
        from afss.datasets import open_dataset

        try:  # checks the layout and the options the reader takes; reads no pixels
            open_dataset(section.source, root, **_reader_options(section))
        except AfssError as e:
            raise AfssError(f"{name}: {e}") from None
        if section.source == "coco" and root.is_file():
            _check_coco_images(root, name)
    try:
        teacher_class(config.teacher.name).check(**config.teacher.options)
    except AfssError as e:
        raise AfssError(f"teacher.options: {e}") from None
    from afss.refine.tta import parse_views
    from afss.student.train import check_extra

    try:  # mistakes a stage would only meet after the data and the teacher's labels were made
        parse_views(config.refine.tta)
    except AfssError as e:
        raise AfssError(f"refine.tta: {e}") from None
    check_extra(config.student.extra, "student.extra")
    return resolve_init(config.student.init, download=download)


def _check_coco_images(root: Path, name: str) -> None:
    """A COCO file whose images are not where it says (e.g. copied away from them): one line now,
    not once the data stage has run."""
    from afss.io.coco import read_coco

    try:
        labels = read_coco(root, allow_absolute_paths=True)
    except AfssError as e:
        raise AfssError(f"{name}.root: {e}") from None
    sample = labels.images[:20]
    if sample and not any(os.path.exists(labels.image_path(im)) for im in sample):
        raise AfssError(f"{name}.root: {root}: its images are not where it says, e.g. "
                        f"{labels.image_path(sample[0])}: a COCO file's file_name values are relative to its own "
                        "folder (or to its info.image_root)")


# -- the run folder ---------------------------------------------------------------------------------

def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for name in ("afss", "numpy", "opencv-python-headless", "pycocotools", "faster-coco-eval", "ensemble-boxes",
                 "torch", "torchvision", "transformers", "ultralytics", "onnxruntime", "ray"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _earlier_run(out: Path, config: RunConfig) -> dict[str, Any]:
    """``out/run.json``'s record if a run of ``config`` may continue from it; ``{}`` where there is none,
    or where the config changed before any stage finished (e.g. it failed at once: it starts over). A
    changed config after a stage finished is refused, naming the keys: work in progress (a distillation's
    rounds, a journal) is never thrown away for it."""
    path = out / "run.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise AfssError(f"{path}: unreadable run record ({type(e).__name__}); choose another --out") from None
    if not isinstance(data, dict) or data.get("stage") != "run":
        raise AfssError(f"{path}: not an afss run record; choose another --out")
    before = data.get("config") or {}
    old = before.get("distill") if isinstance(before, dict) else None
    if isinstance(old, dict) and "choose" not in old and isinstance(old.get("rounds"), int) and old["rounds"] > 1:
        before = {**before, "distill": {**old, "choose": "last"}}  # an afss before `choose` kept the last
    try:  # a record from an earlier afss lacks keys added since: they had their defaults
        before = config_to_dict(config_from_dict(before, where=str(path)))
    except AfssError:
        pass
    changed = config_diff(before, config_to_dict(config))
    if not changed:
        return data
    if not any(isinstance(v, dict) and v.get("done") for v in (data.get("stages") or {}).values()):
        return {}
    raise AfssError(f"{out}: holds a run made with another config ({'; '.join(changed[:4])}"
                    f"{'; ...' if len(changed) > 4 else ''}); rerun it as it was to continue, "
                    "or choose another --out")


class _Record:
    """``run.json``: written after every stage, so a killed run shows how far it got."""

    def __init__(self, out: Path, config: RunConfig) -> None:
        self.path = out / "run.json"
        self.config = config_to_dict(config)
        data = _earlier_run(out, config)
        self.data = {"stage": "run", "config": self.config, "versions": _versions(), "models": {},
                     "stages": {}, "order": [], **{k: v for k, v in data.items() if k not in ("versions",)}}

    def done(self, stage: str) -> bool:
        return bool(self.data["stages"].get(stage, {}).get("done"))

    def finish(self, stage: str, seconds: float, **extra: Any) -> None:
        self.data["stages"][stage] = {"done": True, "seconds": round(seconds, 2), **extra}
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data, indent=2)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def check_run_folder(config: RunConfig, out: str | os.PathLike) -> Path:
    """``--out`` as a run folder for ``config``, checked without creating anything: not inside an
    image folder the run reads, not a file, not a folder of something else. One line naming it."""
    out = Path(out)
    for key, section in (("data", config.data), ("eval", config.eval)):
        # a run writes images (plots, scenes, masks): under an image folder, they would be read as its images
        if section.source in ("images", "folder") and section.root and _inside(out, Path(section.root)):
            raise AfssError(f"{out}: --out is inside {key}.root {section.root}, whose every image is read: "
                            "the run's own pictures would join it; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise AfssError(f"{out}: exists and is not a folder; --out names the run folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "run.json").is_file():
        raise AfssError(f"{out}: folder is not empty and is not an afss run; choose a new or empty --out")
    if out.is_dir():
        _earlier_run(out, config)  # another config over finished work: refused here, as the run would
    existing = next(p for p in (out.absolute(), *out.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AfssError(f"{out}: cannot be written ({existing} is {'not a folder' if not existing.is_dir() else 'not writable'})")
    return out


# -- the pipeline -----------------------------------------------------------------------------------

def run_pipeline(config: RunConfig, out: str | os.PathLike, *, progress: bool = True,
                 say: Callable[[str], None] | None = None, where: str | None = None) -> RunResult:
    """Run every stage of ``config`` into ``out`` (see the module docstring), skipping finished ones.

    Args:
        config: the resolved `RunConfig` (`afss.run.load_config`).
        out: the run folder: new, empty, or an earlier run of the same config (it continues).
        progress: progress bars on stderr for the long stages.
        say: called with one line per finished stage (default: logged).
        where: the config file, named in the errors of the input checks.

    Returns:
        `RunResult`: the AP table per stage, the report, timings.

    Raises:
        AfssError: a bad config or input (before any long work), or a stage's own one-line error.
    """
    import yaml

    out = check_run_folder(config, out)
    try:
        start_weights = check_run_inputs(config)
    except AfssError as e:
        raise AfssError(f"{where}: {e}" if where else str(e)) from None
    writable_folder(out)  # created only now: a run refused above leaves no empty folder behind
    start_weights = start_weights if start_weights.endswith(".pt") else None  # a .yaml starts from random weights
    record = _Record(out, config)
    record.data["order"] = stage_order(config.distill.rounds, config.eval.upper_bound and config.eval.source is not None,
                                       start_weights is not None)
    record.save()
    write_bytes_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False).encode())
    say = say or (lambda line: log.info("%s", line))
    bar: Bar = _tqdm_bar if progress else _no_bar
    seconds: dict[str, float] = {}

    def stage(name: str) -> AbstractContextManager[None]:
        @contextmanager
        def timed() -> Iterator[None]:
            t0 = time.perf_counter()
            yield
            seconds[name] = time.perf_counter() - t0
            record.finish(name, seconds[name])
            say(f"{name}: done in {seconds[name]:.1f} s")
        return timed()

    # data: the pool and the held-out ground truth
    pool_file, pool_gt_file, val_file = out / "data" / "pool.json", out / "data" / "pool_gt.json", out / "data" / "val_gt.json"
    has_eval = config.eval.source is not None
    if not (record.done("data") and pool_file.is_file() and (val_file.is_file() or not has_eval)):
        with stage("data"):
            (out / "data").mkdir(parents=True, exist_ok=True)
            pool_source = _read_source(config.data, out / "data" / "pool")
            pool = _sample(pool_source, config.data.n if config.data.source != "synth" else None, config.data.seed)
            val = None
            if has_eval:
                # the scored images are drawn from those not in the pool, compared by the file each
                # names: the two sections may reach the same images another way (a folder and its COCO file)
                same = _same_source(config.data, config.eval)
                source = pool_source if same else _read_source(config.eval, out / "data" / "val")
                exclude = {im.file_name for im in pool.images} if same else _in_pool(pool, source)
                if exclude and not same:
                    say(f"eval: {len(exclude)} of its {len(source)} images are pool images (or copies of them), left out of the "
                        "scoring")
                val = _sample(source, config.eval.n if config.eval.source != "synth" else None, config.eval.seed,
                              exclude)
                if not val.images:
                    raise AfssError(f"eval: {config.eval.source} {config.eval.root or ''}: no image left to score "
                                    "(every image is in the pool; lower data.n)")
                if not _has_gt(val):
                    raise AfssError(f"eval: {config.eval.source} {config.eval.root or ''}: the evaluation images "
                                    "have no ground truth; set eval.source: null to run without evaluation")
                write_coco(val, val_file)
            if not pool.images:
                raise AfssError(f"data: {config.data.source} {config.data.root or ''}: no image in the pool")
            if _has_gt(pool):
                write_coco(pool, pool_gt_file)
            write_coco(_strip(pool), pool_file)
    pool = read_coco(pool_file, allow_absolute_paths=True)
    val_gt = read_coco(val_file, allow_absolute_paths=True) if has_eval else None

    teacher_cache: list[Any] = []

    def teacher() -> Any:  # built only when a stage needs it (a VLM teacher takes a while to load)
        if not teacher_cache:
            from afss.teachers import build_teacher
            from afss.teachers.base import teacher_provenance

            teacher_cache.append(build_teacher(config.teacher.name, **config.teacher.options))
            record.data["models"]["teacher"] = teacher_provenance(teacher_cache[0])
        return teacher_cache[0]

    def release_teacher() -> None:  # no stage after distillation's round 1 asks the teacher again
        from afss.engines.base import release_accelerator_memory

        teacher_cache.clear()
        release_accelerator_memory()

    from afss.label import label_images
    from afss.refine import RefineConfig, refine_labels
    from afss.refine.filtering import bound_for

    val_images = _strip(val_gt) if val_gt is not None else None
    labels_file, refined_file = out / "teacher" / "val_labels.json", out / "teacher" / "val_refined.json"
    if val_images is not None and not (record.done("teacher") and labels_file.is_file()):
        with stage("teacher"):
            labels_file.parent.mkdir(parents=True, exist_ok=True)
            with bar(f"teacher {config.teacher.name} (val)", len(val_images)) as advance:
                label_images(teacher(), val_images, prompt=config.teacher.prompt, out=labels_file, progress=advance)
    # the val labels are cut as the training pool is (refine.auto_keep bounds both), so the report's
    # refined row shows what the student learns from
    refine = RefineConfig(min_score=config.refine.score_cut, keep_top=config.refine.keep_top,
                          auto_keep=bound_for(config.refine.auto_keep, config.refine.score_cut,
                                              config.refine.keep_top), prompt=config.teacher.prompt)
    if val_images is not None and not (record.done("refined") and refined_file.is_file()):
        with stage("refined"), bar(f"refine {config.refine.tta} (val)", len(val_images)) as advance:
            refine_labels(teacher(), val_images, views=config.refine.tta, labels=read_coco(labels_file),
                          config=refine, out=refined_file, progress=advance)

    from afss.distill import DistillConfig, distill
    from afss.student.train import TrainConfig

    train = TrainConfig(init=config.student.init, epochs=config.student.epochs, imgsz=config.student.imgsz,
                        batch=config.student.batch, device=config.student.device,
                        val_fraction=config.student.val_fraction, seed=0, recipe=config.student.recipe,
                        replay=config.student.replay, mask_source=config.student.mask_source,
                        extra=dict(config.student.extra))
    dconfig = DistillConfig(rounds=config.distill.rounds, views=config.refine.tta, min_score=config.refine.score_cut,
                            keep_top=config.refine.keep_top, auto_keep=tuple(config.refine.auto_keep),
                            prompt=config.teacher.prompt,
                            finetune=config.distill.finetune, stable_iou=config.distill.stable_iou,
                            student_min_score=config.distill.student_min_score, rescore=config.distill.rescore,
                            choose=config.distill.choose)
    distill_dir = out / "distill"
    if not (record.done("distill") and (distill_dir / "student.pt").is_file()):
        with stage("distill"):
            distill(_LazyTeacher(teacher, release_teacher), pool, distill_dir, config=dconfig, train=train,
                    progress=say, bar=bar)
    rounds = json.loads((distill_dir / "distill.json").read_text())["rounds"]
    record.data["models"]["student"] = str(distill_dir / "student.pt")
    record.data["order"] = (stage_order(len(rounds), False, start_weights is not None)
                            + (["upper-bound"] if "upper-bound" in record.data["order"] else []))
    record.save()

    from afss.student.model import StudentTeacher

    def predict(weights: str | Path, path: Path, desc: str, images: LabelSet | None = None) -> None:
        """A student's labels of ``images`` (default: the val images) into ``path``."""
        images = val_images if images is None else images
        student = StudentTeacher.build(weights=str(weights), imgsz=train.imgsz, device=train.device,
                                       rescore=config.distill.rescore)
        path.parent.mkdir(parents=True, exist_ok=True)
        with bar(desc, len(images)) as advance:
            label_images(student, images, out=path, progress=advance)

    wanted = {f"round {r['round']}": (r["weights"], out / "students" / f"round-{r['round']}.json") for r in rounds}
    if start_weights is not None:
        wanted = {"start": (start_weights, out / "students" / "start.json"), **wanted}
    missing = {what: wp for what, wp in wanted.items() if read_finished(wp[1], "label") is None}
    if val_images is not None and missing:
        with stage("students"):
            for what, (weights, path) in missing.items():
                predict(weights, path, f"student {what} (val)")
    # the report reads this file; imported here since importing afss.report loads matplotlib
    from afss.report.run_folder import POOL_SAMPLE_FILE

    sample_file = out / POOL_SAMPLE_FILE
    if val_images is None and rounds and read_finished(sample_file, "label") is None:
        # No ground truth: the final student labels a sample of the pool, so that the report can set it
        # beside its teacher's labels and the filter's decisions on the same images.
        with stage("pool-sample"):
            predict(distill_dir / "student.pt", sample_file, "student (pool sample)", pool_sample(pool, POOL_SAMPLE))
    upper = config.eval.upper_bound and val_images is not None
    if upper and not record.done("upper-bound"):
        with stage("upper-bound"):
            if not pool_gt_file.is_file():
                raise AfssError("eval.upper_bound: the pool has no ground truth to train the upper bound on")
            from afss.distill import trained_as
            from afss.student.train import train_student

            # the supervised upper bound: the same recipe on the pool's true labels, clearly apart
            # (round 1's recipe and epochs: `auto` would decide again, on the true labels)
            recipe, epochs = trained_as(distill_dir / "round-1" / "train", train)
            result = train_student(read_coco(pool_gt_file, allow_absolute_paths=True), out / "upper_bound" / "train",
                                   dataclasses.replace(train, recipe=recipe, epochs=epochs))
            predict(result.weights, out / "upper_bound" / "val.json", "upper bound (val)")

    table, metrics = None, {}
    if val_gt is not None:
        with stage("eval"):
            table, metrics = _evaluate(out, config, val_gt, [r["round"] for r in rounds], upper,
                                       start_weights is not None)
    record.data["metrics"] = metrics
    record.save()
    report = None
    if config.report:
        with stage("report"):
            from afss.report import build_report

            report = build_report(out)
    return RunResult(out=out, table=table, report=report, seconds=seconds, metrics=metrics)


POOL_SAMPLE = 48
"""Pool images the final student labels in a run without ground truth (the report's comparison)."""


def pool_sample(pool: LabelSet, n: int) -> LabelSet:
    """``n`` images spread evenly through the pool's order (all of them in a smaller pool): no random
    state, and every part of a pool that is ordered by sequence or by object is represented."""
    images = pool.images
    if len(images) > n:
        images = tuple(images[round(k * (len(images) - 1) / (n - 1))] for k in range(n)) if n > 1 else images[:1]
    return pool.replace(images=images)


class _LazyTeacher:
    """A teacher built on first use: a resumed distillation whose round 1 is finished needs none.
    ``release()`` (`afss.distill.distill` calls it after round 1) drops it and its GPU memory."""

    def __init__(self, build: Callable[[], Any], release: Callable[[], None]) -> None:
        self._build, self.release = build, release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._build(), name)


def prediction_files(out: Path, rounds: list[int], upper: bool, start: bool = False) -> dict[str, Path]:
    """Stage name -> its predictions on the val images, in table order."""
    files = {"teacher": out / "teacher" / "val_labels.json", "refined": out / "teacher" / "val_refined.json"}
    if start:
        files["student-start"] = out / "students" / "start.json"
    files.update({f"student-round-{k}": out / "students" / f"round-{k}.json" for k in rounds})
    if upper:
        files["upper-bound"] = out / "upper_bound" / "val.json"
    return files


def _evaluate(out: Path, config: RunConfig, val_gt: LabelSet, rounds: list[int], upper: bool,
              start: bool) -> tuple[str, dict]:
    from afss.evaluate import evaluate
    from afss.evaluate.report import comparison_table

    iou_types = list(config.eval.iou_types)
    if "segm" in iou_types and not all(i.rle is not None for im in val_gt.images for i in im.instances):
        iou_types.remove("segm")  # boxes-only ground truth (e.g. SPARK-2021): bbox AP only
    reports, metrics, labelled = {}, {}, {}
    (out / "metrics").mkdir(exist_ok=True)
    for name, path in prediction_files(out, rounds, upper, start).items():
        pred = read_coco(path, allow_absolute_paths=True)
        labelled[name] = sum(1 for im in pred.images if im.instances)
        report = evaluate(val_gt, pred, iou_types=iou_types or ["bbox"],
                          protocols=config.eval.protocols)
        report = dataclasses.replace(report, pred=str(path))
        report.write_json(out / "metrics" / f"{name}.json")
        reports[name] = report
        metrics[name] = {"labelled": labelled[name], "images": report.num_images,
                         **{f"{r.protocol}_{r.iou_type}_{k}": getattr(r, k) for r in report.rows
                            if r.category == "all" for k in ("ap", "ap50", "ap75")}}
    table = stage_table(reports, labelled)
    write_json_atomic(out / "metrics.json", metrics, indent=2)
    write_bytes_atomic(out / "table.txt", (table + "\n\n" + comparison_table(reports) + "\n").encode())
    return table, metrics


def stage_table(reports: dict[str, Any], labelled: dict[str, int]) -> str:
    """One row per stage: AP, AP50, AP75 of every (protocol, IoU type) scored, in percent, and how
    many val images the stage labelled (the filter leaves some without a label: they count as misses)."""
    groups = list(dict.fromkeys((r.protocol, r.iou_type) for rep in reports.values() for r in rep.rows
                                if r.category == "all"))
    name_w = max(len("stage"), *(len(n) for n in reports))
    left = f"{'':<{name_w}}  {'':>8}"
    top = left + "".join(f"  {f'{p} {t}':^18}" for p, t in groups)
    head = f"{'stage':<{name_w}}  {'labelled':>8}" + "".join(f"  {'AP':>6}{'AP50':>6}{'AP75':>6}" for _ in groups)
    lines = [top.rstrip(), head, "-" * len(head)]
    for name, rep in reports.items():
        row = f"{name:<{name_w}}  {f'{labelled.get(name, 0)}/{rep.num_images}':>8}"
        for p, t in groups:
            try:
                r = rep.get(p, t)
                row += f"  {percent(r.ap):>6}{percent(r.ap50):>6}{percent(r.ap75):>6}"
            except KeyError:
                row += f"  {'-':>6}{'-':>6}{'-':>6}"
        lines.append(row)
    return "\n".join(lines)



