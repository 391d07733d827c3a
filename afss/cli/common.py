"""Helpers the subcommands share: progress bars, option parsing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from afss.errors import AfssError
from afss.teachers.base import MODEL_OPTIONS

# Flags that are teacher build options (the model teachers'), passed on only when the user gave them.
TEACHER_FLAGS = MODEL_OPTIONS


@contextmanager
def progress_bar(args: argparse.Namespace, total: int, desc: str, unit: str = "img") -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (none with ``--quiet``, nor where stderr is a file or a pipe: a log would
    hold every redraw); yields ``advance(n)`` for the library's ``progress``."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not show_progress(args),
               dynamic_ncols=True, smoothing=0.1)
    try:
        with logging_redirect_tqdm():  # log lines print above the bar instead of onto it
            yield bar.update
    finally:
        bar.close()


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars for a person at a terminal: not with ``--quiet``, nor into a file or a pipe."""
    try:
        return not getattr(args, "quiet", False) and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def csv_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (argparse ``type=``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` that the user actually set (not ``None``), for ``**kwargs``."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def add_teacher_arguments(p: argparse.ArgumentParser) -> None:
    """The teacher options ``label`` and ``refine`` share (see `teacher_options`)."""
    p.add_argument("--prompt", default=None, help="text prompt (default: spacecraft)")
    p.add_argument("--box-threshold", type=float, default=None, help="detector box threshold (VLM teachers)")
    p.add_argument("--text-threshold", type=float, default=None, help="detector text threshold (VLM teachers)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (VLM teachers)")
    p.add_argument("--dtype", default=None,
                   help="float32, float16, bfloat16: the segmenter's precision (VLM teachers; sam3: the model's)")
    p.add_argument("--detector-dtype", default=None,
                   help="float32 (default), float16, bfloat16: the detector's precision, apart from --dtype "
                        "(grounded-sam2, owlv2-sam)")
    p.add_argument("--detector", default=None,
                   help="detector model id or local folder (VLM teachers; sam3: the SAM 3 model)")
    p.add_argument("--segmenter", default=None, help="segmenter model id or local folder (VLM teachers)")
    p.add_argument("-o", "--teacher-option", dest="teacher_options", action="append", default=None,
                   metavar="KEY=VALUE", help="any other teacher option, value as JSON (repeatable), "
                                             "e.g. -o k_grow=2.5 -o earth=false")


def teacher_options(args: argparse.Namespace) -> dict:
    """The teacher build options the user gave: the flags of `add_teacher_arguments`, ``--top1/--all``
    and every ``-o KEY=VALUE`` (value parsed as JSON, else kept as a string)."""
    options = given(args, *TEACHER_FLAGS, "top1")
    for item in args.teacher_options or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AfssError(f"--teacher-option {item!r}: expected KEY=VALUE, e.g. k_grow=2.5")
        try:
            options[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip().replace("-", "_")] = value
    return options


SHOWN_FAILURES = 3  # failed images named one line each after a command's summary; the file holds every reason


def report_failures(labels, out: str) -> None:
    """After ``out`` is written: the first failed images (unreadable, of another size than their record,
    the teacher raised), one line each on stderr; and one line with exit status 2 where every image
    failed, so a script or a run does not go on with nothing. An image with no detection, or cut by
    the filter, has not failed."""
    from afss.label import NO_DETECTION
    from afss.refine.filtering import FILTERED_PREFIX

    def failed(im) -> bool:
        return not im.instances and im.error is not None and not im.error.startswith((NO_DETECTION, FILTERED_PREFIX))

    bad = [im for im in labels.images if failed(im)]
    if labels.images and len(bad) == len(labels.images):
        first = labels.images[0]
        raise AfssError(f"every one of the {len(labels)} images failed, e.g. {first.file_name}: {first.error} "
                        f"({out} records each image's reason)")
    for im in bad[:SHOWN_FAILURES]:
        print(f"  failed: {im.file_name}: {im.error}", file=sys.stderr)
    if len(bad) > SHOWN_FAILURES:
        print(f"  ... and {len(bad) - SHOWN_FAILURES} more ({out} records each image's reason)", file=sys.stderr)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``--no-resume``, ``--limit`` and ``--overwrite``, for the stages that run a teacher over images."""
    p.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                   help="ignore the journal of an interrupted run and start afresh")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N images (finished images beyond N stay in the journal for a later run)")
    add_overwrite_argument(p)


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace an existing --out even if it was not made by this command from the same inputs")


def add_path_policy_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-absolute-paths", dest="allow_absolute_paths", action="store_true", default=False,
                   help="accept COCO file_name entries that are absolute or lead out of the image root with '..' "
                        "(refused by default)")


def existing_files(*paths) -> list[str]:
    """The given paths that name existing files (inputs an output must not replace)."""
    import os

    return [str(p) for p in paths if p is not None and os.path.isfile(p)]


def add_image_source_arguments(p: argparse.ArgumentParser, *, gt_alias: bool = True) -> None:
    """Where the images come from, for the stages that run a model over them (label, predict,
    distill); ``--gt`` names the ``--coco`` list too, except where it means ground truth to score."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="folder of images (recursive)")
    src.add_argument("--coco", *(("--gt",) if gt_alias else ()), dest="coco", metavar="FILE",
                     help="COCO JSON listing the images (e.g. from afss synth/convert); same file names out")
    src.add_argument("--dataset", metavar="KIND", help="dataset reader: folder, coco, spark, speedplus, tango")
    p.add_argument("--image-root", metavar="DIR",
                   help="folder the --coco file names are relative to (default: recorded in the file, else its folder)")
    p.add_argument("--root", help="dataset folder (with --dataset)")
    p.add_argument("--split", help="dataset split (with --dataset)")
    p.add_argument("--domain", help="dataset domain, e.g. SPEED+ lightbox (with --dataset)")


def read_images(args: argparse.Namespace):
    """The `LabelSet` of images that `add_image_source_arguments` names; a flag of another source
    is refused, not dropped (``--images X --root Y`` read X alone)."""
    images = _read_images(args)
    if not images.images:  # a folder with no image is refused where it is read; a list of none is too
        named = args.coco if args.coco is not None else f"--dataset {args.dataset} {args.root}"
        raise AfssError(f"{named}: lists no images")
    return images


def _read_images(args: argparse.Namespace):
    source = "--images" if args.images is not None else "--coco" if args.coco is not None else "--dataset"
    for flag, value, used_by in (("--root", args.root, "--dataset"), ("--split", args.split, "--dataset"),
                                 ("--domain", args.domain, "--dataset"), ("--image-root", args.image_root, "--coco")):
        if value is not None and source != used_by:
            raise AfssError(f"{flag} goes with {used_by}; with {source} it would do nothing")
    if args.images is not None:
        from afss.label import images_from_folder

        return images_from_folder(args.images)
    if args.coco is not None:
        from afss.io.coco import read_coco

        return read_coco(args.coco, image_root=args.image_root, allow_absolute_paths=args.allow_absolute_paths)
    if args.root is None:
        raise AfssError(f"--dataset {args.dataset} needs --root DIR (the dataset folder)")
    from afss.datasets import read_dataset

    return read_dataset(args.dataset, args.root, **given(args, "split", "domain"))


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Where the images are processed: the same flags for label, refine and predict."""
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local (this process, default) or ray (Ray Data actors; pip install 'afss[ray]')")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); default: start a local Ray")
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="Ray actors (default: one per GPU with --gpus-per-worker, else one per core)")
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs each Ray actor holds (default 0; 1 for a VLM teacher or a student on GPU)")


def engine_from_args(args: argparse.Namespace):
    from afss.engines import build_engine

    if args.engine != "ray" and any(getattr(args, k) is not None for k in ("ray_address", "num_workers", "gpus_per_worker")):
        raise AfssError("--ray-address, --num-workers and --gpus-per-worker need --engine ray")
    if args.engine == "local":
        return build_engine("local")
    return build_engine("ray", address=args.ray_address, num_workers=args.num_workers,
                        gpus_per_worker=args.gpus_per_worker)


def engine_label(args: argparse.Namespace, engine) -> str:
    """``""`` for the local engine, else ``", ray x N"`` for progress bar titles."""
    if getattr(engine, "name", "local") == "local":
        return ""
    engine.start()
    return f", ray x {engine.workers}"


def add_top1_arguments(p: argparse.ArgumentParser, *, top1_help: str = "keep the most confident instance per "
                       "image (default)", all_help: str = "keep every instance") -> None:
    """``--top1`` / ``--all`` (``args.top1``: ``None`` when neither is given)."""
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--top1", dest="top1", action="store_true", default=None, help=top1_help)
    keep.add_argument("--all", dest="top1", action="store_false", help=all_help)


def add_cut_arguments(p: argparse.ArgumentParser, *, default: str = "0.6, the paper's",
                      auto_keep: tuple[float, float] | None = None) -> None:
    """``--min-score X|auto`` or ``--keep-top FRACTION``: the confidence filter (refine, distill);
    ``auto_keep``: the ``--auto-keep`` default the help names (the command's config's; refine's
    `afss.refine.filtering.AUTO_KEEP` when ``None``)."""
    from afss.refine.filtering import AUTO_KEEP

    auto_keep = auto_keep or AUTO_KEEP
    lo, hi = (round(100 * v) for v in auto_keep)
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--min-score", default=None, metavar="X|auto",
                     help=f"keep labels scoring at least X (default {default}), or 'auto': a cut chosen from the "
                          f"scores (Otsu's split, keeping {lo}-{hi}%% of the images); the summary names it")
    cut.add_argument("--keep-top", default=None, metavar="FRACTION",
                     help="instead of --min-score, keep the best-scoring FRACTION of the images (e.g. 0.5): "
                          "needs no ground truth and no calibrated score; the summary names the cut")
    p.add_argument("--auto-keep", default=None, metavar="LEAST,MOST",
                   help="with --min-score auto: the least and most share of the images it keeps "
                        f"(default {auto_keep[0]:g},{auto_keep[1]:g}; or {lo}%%,{hi}%%)")


def cut_options(args: argparse.Namespace) -> dict:
    """``--min-score X|auto`` / ``--keep-top F`` (or ``50%``) / ``--auto-keep LO,HI`` as RefineConfig
    fields (it checks ranges)."""
    out: dict = {}
    if args.min_score is not None:
        out["min_score"] = min_score_arg(args.min_score, "--min-score")
    if args.keep_top is not None:
        out["keep_top"] = share_arg(args.keep_top, "--keep-top", "0.5")
    if args.auto_keep is not None:
        from afss.refine.filtering import check_auto_keep

        parts = args.auto_keep.split(",")
        if len(parts) != 2:
            raise AfssError(f"--auto-keep {args.auto_keep!r}: expected two shares, the least and the most kept, "
                            "like 0.3,0.8 or 30%,80%")
        shares = [share_arg(v, "--auto-keep", "0.3,0.8") for v in parts]
        out["auto_keep"] = check_auto_keep(shares, f"--auto-keep {args.auto_keep!r}")
    return out


def share_arg(text: str, flag: str, example: str) -> float:
    """``"0.5"`` or ``"50%"`` -> 0.5 (the config checks its range)."""
    value = text.strip()
    return number_arg(value[:-1], flag, example) / 100 if value.endswith("%") else number_arg(value, flag, example)


def min_score_arg(text: str, flag: str) -> float | str:
    """``"auto"`` or a number (the filter checks its range)."""
    return "auto" if text.strip().lower() == "auto" else number_arg(text, flag, "0.6 or auto")


def number_arg(text: str, flag: str, example: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AfssError(f"{flag} {text!r}: expected a number, e.g. {example}") from None


def _schedules() -> str:
    """``"10; ultralytics 25"``: the epochs of each recipe's schedule, for help texts."""
    from afss.student.recipe import RECIPE_EPOCHS

    common = RECIPE_EPOCHS["box"]
    return "; ".join([str(common)] + [f"{r} {n}" for r, n in RECIPE_EPOCHS.items() if n != common])


def add_student_arguments(p: argparse.ArgumentParser, *, epochs: str = "epochs") -> None:
    """``--init``, ``--epochs``, ``--imgsz``, ``--batch`` of the student's training, with the defaults
    of `afss.student.train.TrainConfig` (the run config's too) in their help."""
    from afss.student.train import TrainConfig

    p.add_argument("--init", default=None, metavar="START",
                   help=f"the student's start (default {TrainConfig.init}): synth (the synth-pretrained YOLO11n-seg afss "
                        "ships); an Ultralytics name such as yolo11n-seg.pt or yolov8s-seg.pt (COCO-pretrained: a file of "
                        "that name here is used, else Ultralytics downloads it); a YOLO-seg .pt of yours; or a model "
                        "config such as yolo11n-seg.yaml: random weights, which learn nothing from a few hundred "
                        "pseudo-labels at a CPU budget (0.0 AP) and need far more epochs and images")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"{epochs} (default: the recipe's schedule, {_schedules()})")
    p.add_argument("--imgsz", type=int, default=None, help=f"training image size (default {TrainConfig.imgsz})")
    p.add_argument("--batch", type=int, default=None, help=f"batch size (default {TrainConfig.batch})")


def add_recipe_argument(p: argparse.ArgumentParser) -> None:
    """``--recipe`` of the student's training (`afss.student.train.TrainConfig.recipe`)."""
    from afss.student.recipe import RECIPE_HELP, RECIPES
    from afss.student.start_masks import MASK_AGREE, MASK_SOURCES
    from afss.student.train import TrainConfig

    p.add_argument("--recipe", choices=RECIPES, default=None, help=f"training recipe (default {TrainConfig.recipe}): {RECIPE_HELP}")
    p.add_argument("--mask-source", choices=MASK_SOURCES, default=None,
                   help=f"the masks the student learns (default {TrainConfig.mask_source}): labels (the labels' own), or "
                        f"start (where a mask of the start's outlines a labelled object, its box agreeing >= {MASK_AGREE} "
                        "with the label's, that mask: the teacher says where, the pretrained start how it is outlined; only "
                        "where the mask branch learns: ultralytics, finetune)")
