"""The YAML config of a whole run (`afss run cfg.yaml`): typed sections, documented defaults.

Precedence: the defaults below < the file < ``--set section.key=value`` overrides. Every key is
checked before any long work starts: an unknown key is refused with the closest known one, a wrong
type names the key and what it expected. ``afss run --defaults`` prints this schema as YAML with a
comment per key (`default_yaml`).

Example:
    >>> cfg = load_config("demo", overrides=["student.epochs=5"])  # doctest: +SKIP
    >>> cfg.student.epochs  # doctest: +SKIP
    5
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from afss.distill import CHOICES, DistillConfig
from afss.errors import AfssError
from afss.refine.filtering import TRAIN_AUTO_KEEP, check_auto_keep, is_auto_cut
from afss.run.ready import find_config
from afss.student.recipe import RECIPE_HELP, RECIPES, recipe_args
from afss.student.start_masks import MASK_SOURCES
from afss.student.train import TrainConfig

__all__ = ["DataConfig", "DistillSection", "EvalConfig", "RefineSection", "RunConfig", "StudentSection",
           "TeacherSection", "config_diff", "config_from_dict", "config_to_dict", "default_yaml", "load_config"]

SOURCES = ("synth", "images", "coco", "folder", "spark", "speedplus", "tango")
"""Where images come from: afss synth scenes, an image folder, a COCO file, or a dataset reader."""


def _doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its documentation attached (printed by `default_yaml`)."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class DataConfig:
    """The unlabeled pool the student learns from (its ground truth, if any, is never trained on)."""

    source: str = _doc("synth | images | coco | folder | spark | speedplus | tango", "synth")
    root: str | None = _doc("image folder, COCO file (coco) or dataset folder; relative to the config file", None)
    split: str | None = _doc("dataset split (spark: train/val; speedplus: test, train, validation; tango: train/test)",
                             None)
    domain: str | None = _doc("synth: mixed | clean | earth | harsh; speedplus: synthetic | lightbox | sunlamp", None)
    masks: str | None = _doc("coco, folder, speedplus: a folder of binary masks named like the images", None)
    n: int | None = _doc("synth: scenes to render; otherwise a seeded sample of n images (null: all)", 200)
    size: int = _doc("synth: scene side in pixels", 512)
    seed: int = _doc("synth: scene seed; otherwise the sampling seed", 0)


@dataclass(frozen=True)
class TeacherSection:
    """The zero-shot labeller of round 1 (see `afss.teachers`)."""

    name: str = _doc("photometric (CPU, no weights) | salient (ONNX, afss models fetch isnet) | "
                     "combined (photometric + salient) | grounded-sam2 | sam3 | owlv2-sam", "photometric")
    prompt: str = _doc("text prompt", "spacecraft")
    options: dict[str, Any] = _doc("teacher build options, e.g. {device: cuda, box_threshold: 0.3, "
                                   "detector: IDEA-Research/grounding-dino-base, dtype: bf16 (the segmenter's), "
                                   "detector_dtype: fp32 (the detector's, default)}", factory=dict)


@dataclass(frozen=True)
class RefineSection:
    """Test-time augmentation + Weighted Boxes Fusion, then the confidence filter (paper: 0.6)."""

    tta: str = _doc("TTA views, comma-separated (identity, hflip, vflip, rot90, ...)", "identity,vflip")
    min_score: float | str | None = _doc("keep labels scoring at least this (paper: 0.6), or auto (a cut chosen from "
                                         "the scores, as afss distill's default), or null (no fixed cut: keep_top "
                                         "alone, or every label)", "auto")
    keep_top: float | None = _doc("instead of min_score: keep the best-scoring fraction of images", None)
    auto_keep: list[float] = _doc("the least and most share of the images the auto cut keeps, of the "
                                  "training pool and the val labels alike (a training pool's bound, as afss "
                                  "distill's: wider than afss refine's 0.3,0.5)",
                                  factory=lambda: list(TRAIN_AUTO_KEEP))

    @property
    def score_cut(self) -> float | str:
        """``min_score`` as the refine stage takes it: null means no fixed cut, i.e. 0."""
        return 0.0 if self.min_score is None else self.min_score


@dataclass(frozen=True)
class StudentSection:
    """The YOLO-seg student (Ultralytics, AGPL-3.0: pip install 'afss[student]')."""

    # the defaults are `TrainConfig`'s, the same as `afss train`'s and `afss distill`'s
    init: str = _doc("synth (afss's synth-pretrained student) | yolo11n-seg.pt (COCO-pretrained; Ultralytics "
                     "downloads it) | yolo11n-seg.yaml (random weights: 0.0 AP at a CPU budget) | PATH.pt",
                     TrainConfig.init)
    epochs: int | None = _doc("epochs per round; null: the recipe's schedule (10, ultralytics 25)", TrainConfig.epochs)
    imgsz: int = _doc("training and inference size", TrainConfig.imgsz)
    batch: int = _doc("batch size", TrainConfig.batch)
    device: str | int | None = _doc("cpu | 0 | cuda:0 | mps", TrainConfig.device)
    val_fraction: float = _doc("validation split carved from the pseudo-labels (no ground truth)",
                               TrainConfig.val_fraction)
    recipe: str = _doc(RECIPE_HELP, TrainConfig.recipe)
    replay: int = _doc("afss synth scenes (exact masks) mixed into every training, so the fine-tuned "
                       "synth start does not forget; 0: pseudo-labels only", TrainConfig.replay)
    mask_source: str = _doc("labels (the labels' masks) | start (the pretrained start's mask wherever its box agrees "
                            "with a label's; only where the mask branch learns)", TrainConfig.mask_source)
    extra: dict[str, Any] = _doc("further Ultralytics train arguments, e.g. {close_mosaic: 2, lr0: 0.005}",
                                 factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.device, int):  # YAML reads `device: 0` as a number: the GPU index Ultralytics takes
            object.__setattr__(self, "device", str(self.device))


@dataclass(frozen=True)
class DistillSection:
    """Teacher-student rounds: round k > 1 relabels the pool with the previous student."""

    rounds: int = _doc("at most this many rounds (a second one lowered AP in every measurement so far)", 1)
    finetune: bool = _doc("rounds > 1 start from the previous student (else from student.init)", True)
    stable_iou: float = _doc("stop early when the kept labels agree with the previous round's this well", 0.95)
    student_min_score: float | str | None = _doc("the cut of rounds > 1, where the student relabels: a number, "
                                                 "auto (from the student's own scores), or null (refine's cut)", None)
    choose: str = _doc("with several rounds, which student is the result: quality (the one whose top-1 boxes "
                       "the rescore teacher, or photometric, is most confident in; no ground truth) or last", DistillConfig.choose)
    rescore: str | None = _doc("a teacher whose confidence in each of the student's boxes rescores the student's "
                               "instances wherever it labels; null: its class confidence (the paper's)",
                               DistillConfig.rescore)


@dataclass(frozen=True)
class EvalConfig:
    """Held-out images with ground truth: every stage is scored on them, nothing trains on them.

    The pool's images are left out of them: drawn from the others where both name one source, and
    matched by the file they name where they reach the same images another way."""

    source: str | None = _doc("as data.source, but with ground truth; null: no evaluation", "synth")
    root: str | None = _doc("as data.root", None)
    split: str | None = _doc("as data.split", None)
    domain: str | None = _doc("as data.domain", None)
    masks: str | None = _doc("as data.masks", None)
    n: int | None = _doc("as data.n", 100)
    size: int = _doc("as data.size", 512)
    seed: int = _doc("as data.seed; synth needs a seed other than data.seed", 1)
    iou_types: list[str] = _doc("segm and/or bbox (boxes-only ground truth: bbox)", factory=lambda: ["segm", "bbox"])
    protocols: list[str] = _doc("coco and/or paper (top-1 per image, one target)", factory=lambda: ["coco", "paper"])
    upper_bound: bool = _doc("also train the student on the pool's ground truth: the supervised upper bound", False)


@dataclass(frozen=True)
class RunConfig:
    """A whole run: data -> teacher -> refine -> distill (student rounds) -> evaluation -> report."""

    data: DataConfig = _doc("the unlabeled pool", factory=DataConfig)
    teacher: TeacherSection = _doc("round 1's labeller", factory=TeacherSection)
    refine: RefineSection = _doc("TTA + WBF + confidence filter", factory=RefineSection)
    student: StudentSection = _doc("the student and its training", factory=StudentSection)
    distill: DistillSection = _doc("the teacher-student rounds", factory=DistillSection)
    eval: EvalConfig = _doc("held-out ground truth", factory=EvalConfig)
    report: bool = _doc("write report.html at the end", True)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_value(value: Any, tp: Any, key: str, where: str) -> Any:
    """``value`` checked against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, key, where)
            except AfssError as e:
                errors.append(e)
        raise AfssError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):  # "segm,bbox" (or "0.3,0.8", as --set gives it) is accepted for a list
            value = [_number(v.strip()) if item in (int, float) else v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise AfssError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r}")
        return [_check_value(v, item, f"{key}[{k}]", where) for k, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise AfssError(f"{where}: {key}: expected a mapping of names to values, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise AfssError(f"{where}: {key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AfssError(f"{where}: {key}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AfssError(f"{where}: {key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise AfssError(f"{where}: {key}: expected text, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r}")  # a schema bug, not user input


def _number(text: str) -> Any:
    """``"0.3"`` -> 0.3, ``"2"`` -> 2; other text as it is (the item check then names it)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(t) for t in typing.get_args(tp) if t is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in typing.get_args(tp) else "")
    if origin is list:
        item = typing.get_args(tp)[0]
        return "a list of " + {bool: "true or false values", int: "whole numbers", float: "numbers",
                               str: "names"}.get(item, _type_name(item))
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            dict: "a mapping"}.get(origin or tp, str(tp))


def _build(cls: type, data: Any, prefix: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise AfssError(f"{where}: {prefix.rstrip('.') or 'the config'}: expected a mapping of keys, got {data!r}")
    hints = _hints(cls)
    known = [f.name for f in fields(cls)]
    values = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(known)})"
            raise AfssError(f"{where}: unknown key '{name}'{hint}")
        tp = hints[key]
        values[key] = _build(tp, value, f"{name}.", where) if _is_section(tp) else _check_value(value, tp, name, where)
    return cls(**values)


def config_from_dict(data: dict[str, Any] | None, *, where: str = "config") -> RunConfig:
    """A `RunConfig` from plain data (a parsed YAML file), checked key by key."""
    config = _build(RunConfig, data or {}, "", where)
    _check_semantics(config, where)
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _check_semantics(config: RunConfig, where: str) -> None:
    """Checks of meaning (not type) that need no disk access: choices, ranges, honest evaluation."""
    from afss.evaluate.api import IOU_TYPES, PROTOCOLS
    from afss.student.pretrain import PRETRAIN_SEED
    from afss.student.train import REPLAY_SEED
    from afss.synth.dataset import check_synth_numbers
    from afss.synth.domains import DOMAINS
    from afss.teachers import TEACHERS

    def choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
        if value not in valid:
            close = difflib.get_close_matches(str(value), valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise AfssError(f"{where}: {key}: unknown value {value!r}{hint}; expected one of {', '.join(valid)}")

    choice("data.source", config.data.source, SOURCES)
    if config.eval.source is not None:
        choice("eval.source", config.eval.source, tuple(s for s in SOURCES if s != "images"))
    choice("teacher.name", config.teacher.name, tuple(t for t in TEACHERS if t != "student"))
    for k, v in enumerate(config.eval.iou_types):
        choice(f"eval.iou_types[{k}]", v, IOU_TYPES)
    for k, v in enumerate(config.eval.protocols):
        choice(f"eval.protocols[{k}]", v, PROTOCOLS)
    for name, section in (("data", config.data), ("eval", config.eval)):
        if section.source is None:
            continue
        if section.source == "synth":
            if section.n is None or section.n < 1:
                raise AfssError(f"{where}: {name}.n: synth needs the number of scenes to render, >= 1")
            try:  # synth's own bounds, here so that --check catches them before a run record is made
                check_synth_numbers(n=section.n, size=section.size, seed=section.seed)
            except AfssError as e:
                raise AfssError(f"{where}: {name}.{str(e).removeprefix('synth: ')}") from None
            if section.domain is not None:
                choice(f"{name}.domain", section.domain, DOMAINS)
            if section.seed in (PRETRAIN_SEED, REPLAY_SEED):
                raise AfssError(f"{where}: {name}.seed: {section.seed} renders the scenes the student trains on "
                                "(pretraining or replay); choose another seed")
        elif section.root is None:
            raise AfssError(f"{where}: {name}.root: source {section.source} needs a root (folder or file)")
        if section.n is not None and section.n < 1:
            raise AfssError(f"{where}: {name}.n: must be >= 1 or null (all images), got {section.n}")
    if (config.data.source == "synth" and config.eval.source == "synth" and config.data.seed == config.eval.seed):
        raise AfssError(f"{where}: eval.seed: {config.eval.seed} is data.seed too; the pool's scenes would be "
                        "scored, so choose another eval.seed")
    same = ("source", "root", "split", "domain", "masks")
    if (config.eval.source not in (None, "synth") and config.data.n is None
            and all(getattr(config.data, k) == getattr(config.eval, k) for k in same)):
        raise AfssError(f"{where}: data.n: eval scores images of the same source, drawn from those not in the "
                        "pool, so the pool needs a size (data.n), not every image")
    cut = config.refine.min_score
    if cut is not None and cut != "auto" and (isinstance(cut, str) or not 0.0 <= cut <= 1.0):
        raise AfssError(f"{where}: refine.min_score: expected a number in [0, 1], auto or null, got {cut!r}")
    if config.refine.keep_top is not None and not 0.0 < config.refine.keep_top <= 1.0:
        raise AfssError(f"{where}: refine.keep_top: expected a fraction in (0, 1], got {config.refine.keep_top}")
    check_auto_keep(config.refine.auto_keep, f"{where}: refine.auto_keep",
                    needs="refine.min_score or distill.student_min_score auto", default=TRAIN_AUTO_KEEP,
                    auto_cut=is_auto_cut(config.refine.min_score, config.refine.keep_top)
                    or config.distill.student_min_score == "auto")
    cut = config.distill.student_min_score
    if cut is not None and cut != "auto" and (isinstance(cut, str) or not 0.0 <= cut <= 1.0):
        raise AfssError(f"{where}: distill.student_min_score: expected a number in [0, 1], auto or null, got {cut!r}")
    if not 1 <= config.distill.rounds <= 20:
        raise AfssError(f"{where}: distill.rounds: expected 1 to 20, got {config.distill.rounds}")
    if config.distill.choose not in CHOICES:
        raise AfssError(f"{where}: distill.choose: expected one of {', '.join(CHOICES)}, got {config.distill.choose!r}")
    if config.distill.rescore is not None:
        from afss.student.model import check_rescorer

        check_rescorer(config.distill.rescore, what=f"{where}: distill.rescore: expected null (its own confidence) or")
    for key in ("epochs", "imgsz", "batch"):
        if key == "epochs" and config.student.epochs is None:
            continue
        if getattr(config.student, key) < 1:
            raise AfssError(f"{where}: student.{key}: must be >= 1, got {getattr(config.student, key)}")
    if not 0.0 <= config.student.val_fraction < 1.0:
        raise AfssError(f"{where}: student.val_fraction: expected a fraction in [0, 1), got {config.student.val_fraction}")
    if config.student.recipe not in RECIPES:
        raise AfssError(f"{where}: student.recipe: expected {', '.join(RECIPES[:-1])} or {RECIPES[-1]}, got {config.student.recipe!r}")
    try:
        recipe_args(config.student.recipe, config.student.init)
    except AfssError as e:
        raise AfssError(f"{where}: student.recipe: {e}") from None
    if config.student.mask_source not in MASK_SOURCES:
        raise AfssError(f"{where}: student.mask_source: expected {' or '.join(MASK_SOURCES)}, "
                        f"got {config.student.mask_source!r}")
    from afss.student.model import check_device

    # the form only (whether this machine has it is checked where it trains): a misspelt device fails here,
    # before a run labels its pool, not at training
    check_device(config.student.device, f"{where}: student", here=False)


def _parse_override(item: str) -> tuple[list[str], Any]:
    import yaml

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise AfssError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. student.epochs=5")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.strip().split("."), value


def _apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise AfssError(f"--set {'.'.join(path)}: '{part}' is not a section")
        node = child
    node[path[-1]] = value


def load_config(path: str | os.PathLike | None, *, overrides: str | list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a run config: defaults < the YAML file < ``overrides`` (``["student.epochs=5", ...]``, values
    read as YAML). ``path`` is a YAML file or the name of a ready config (``"demo"``, ``"spark2024"``:
    see `afss.run.ready`). Relative ``root`` paths are taken relative to the config file's folder, or to
    the current folder for a ready config.

    Raises:
        AfssError: an unreadable or malformed file, an unknown key (with the closest known one), a
            wrong type or value; one line naming the file and the key.
    """
    import yaml

    if isinstance(overrides, str):  # one override given as text: taken as one, not as its characters
        overrides = [overrides]
    where = str(path) if path is not None else "config"
    data: Any = {}
    ready = None
    if path is not None:
        ready = find_config(path)
        path = ready.path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AfssError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise AfssError(f"{path}: cannot read the config: {e}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise AfssError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
        except RecursionError:
            raise AfssError(f"{path}: YAML nested too deeply for the parser") from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise AfssError(f"{path}: expected a mapping of sections (data, teacher, ...), got {type(data).__name__}")
    for item in overrides:
        keys, value = _parse_override(item)
        _apply_override(data, keys, value)
    config = config_from_dict(data, where=where)
    if path is not None:
        base = Path.cwd() if ready is not None and ready.packaged else Path(path).resolve().parent
        config = dataclasses.replace(
            config, data=_rooted(config.data, base), eval=_rooted(config.eval, base))
    return config


def _rooted(section: Any, base: Path) -> Any:
    """``root`` and ``masks`` relative to the config file's folder (``~`` expanded)."""
    changes = {}
    for key in ("root", "masks"):
        value = getattr(section, key)
        if value is not None:
            value = os.path.expanduser(value)
            changes[key] = os.path.normpath(value if os.path.isabs(value) else base / value)
    return dataclasses.replace(section, **changes)


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``["student.epochs 5, now 10", ...]``: the keys whose values differ between two config dicts."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key not in ("options", "extra"):
            changed += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key} {a!r}, now {b!r}")
    return changed


def default_yaml() -> str:
    """Every key with its default and a comment: the reference for writing a config."""
    import yaml

    lines = ["# afss run config: every key with its default (afss run --defaults)."]
    defaults = RunConfig()
    for f in fields(RunConfig):
        value = getattr(defaults, f.name)
        if not dataclasses.is_dataclass(value):
            lines.append(f"{f.name}: {_yaml_scalar(value, yaml)}  # {f.metadata['doc']}")
            continue
        lines.append(f"{f.name}:  # {(type(value).__doc__ or '').splitlines()[0]}")
        for sub in fields(value):
            lines.append(f"  {sub.name}: {_yaml_scalar(getattr(value, sub.name), yaml)}  # {sub.metadata['doc']}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any, yaml: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()
