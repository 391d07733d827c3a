"""A corpus of bad inputs and faults, generated (nothing committed), run through the `afss` CLI.

Every case is one command line over files this module writes: COCO files with one field broken
(wrong type, non-finite, huge, missing) fed to every command that reads COCO, output locations that
cannot or must not be written, images that cannot be read, and numbers out of range. A case passes
when the command ends the way a user should see it end:

* ``"error"``: exit 2 and exactly one line ``afss: error: ...`` naming the file and the field;
* ``"ok"``: exit 0, and a per-image record where an image was bad (checked by the case);

never a traceback, and every input byte-identical afterwards.

Run it alone (``python tests/bad_inputs.py``) for a count of cases and of those that escaped with a
traceback; the test suite (`tests/test_bad_input.py`) asserts there are none.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MISSING = object()  # a key removed instead of set


@dataclass
class Case:
    """One command line and how it must end.

    Attributes:
        name: unique, readable.
        argv: the CLI arguments (``-q`` is added); ``{out}`` becomes a fresh folder for this case.
        expect: ``"error"`` or ``"ok"``.
        needles: what the error line must contain (the file, the field) for ``"error"``.
        inputs: files and folders that must be byte-identical afterwards.
        check: called with the case's out folder after an ``"ok"`` run (asserts the records).
        fault: a context manager factory that injects a fault (disk full, no permission) during the run.
    """

    name: str
    argv: list[str]
    expect: str
    needles: tuple[str, ...] = ()
    inputs: tuple[Path, ...] = ()
    check: Callable[[Path], None] | None = None
    fault: Callable[[], contextlib.AbstractContextManager] | None = None


@dataclass
class Outcome:
    code: int | None
    stderr: str
    traceback: str | None = None
    problems: list[str] = field(default_factory=list)


def snapshot(paths: tuple[Path, ...]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.is_symlink():
                    files[str(f)] = f.read_bytes()
        elif p.is_file():
            files[str(p)] = p.read_bytes()
    return files


def run_cli(argv: list[str]) -> tuple[int | None, str, str | None]:
    """``afss -q ARGV`` in this process: (exit code, stderr, traceback if one escaped)."""
    from afss.cli import main

    err = io.StringIO()
    tb = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["-q", *argv])
        except SystemExit as e:  # argparse usage errors
            code = e.code if isinstance(e.code, int) else 2
        except BaseException:  # noqa: BLE001 - that is what the corpus looks for
            code, tb = None, traceback.format_exc()
    return code, err.getvalue(), tb


def run_case(case: Case, root: Path) -> Outcome:
    out = root / "out" / case.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    argv = [a.replace("{out}", str(out)) for a in case.argv]
    before = snapshot(case.inputs)
    with case.fault() if case.fault is not None else contextlib.nullcontext():
        code, err, tb = run_cli(argv)
    outcome = Outcome(code, err, tb)
    if tb is not None:
        outcome.problems.append("traceback: " + tb.strip().splitlines()[-1])
    elif case.expect == "error":
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or not lines[0].startswith("afss: error: "):
            outcome.problems.append(f"expected exit 2 and one error line, got exit {code}: {err.strip()[:300]!r}")
        else:
            missing = [n for n in case.needles if n.replace("{out}", str(out)) not in lines[0]]
            if missing:
                outcome.problems.append(f"error line does not name {missing}: {lines[0][:300]!r}")
    else:
        if code != 0:
            outcome.problems.append(f"expected exit 0, got {code}: {err.strip()[:300]!r}")
        elif case.check is not None:
            try:
                case.check(out)
            except AssertionError as e:
                outcome.problems.append(f"check failed: {e}")
    after = snapshot(case.inputs)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        outcome.problems.append(f"inputs changed: {changed[:3]}")
    return outcome


# --------------------------------------------------------------------------------------------------
# The world the cases run in: a tiny synthetic dataset, its labels, and broken copies.


@dataclass
class World:
    root: Path
    data: Path
    gt: Path
    labels: Path
    base: dict[str, Any]


def make_world(root: Path) -> World:
    from afss.io.coco import write_coco
    from afss.label import label_images
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    data = root / "data"
    gt = render_dataset(data, n=3, size=64, domain="clean", seed=0, workers=1)
    labels_path = root / "labels.json"
    label_images(build_teacher("photometric"), gt, out=labels_path)
    base = json.loads((data / "gt.json").read_text())
    base["info"]["image_root"] = str(data)  # broken copies live elsewhere but point at these images
    # one polygon annotation too, so polygon fields have something to break
    base["annotations"].append({"id": 99, "image_id": base["images"][0]["id"], "category_id": 1,
                                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]], "bbox": [10, 10, 20, 20],
                                "area": 400, "iscrowd": 0, "score": 1.0})  # scored, as afss writes every one
    write_coco(gt, root / "gt_copy.json")
    return World(root=root, data=data, gt=data / "gt.json", labels=labels_path, base=base)


def _set(doc: dict, path: tuple, value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value


WRONG_TYPES = {"str": "abc", "list": [1], "object": {"a": 1}, "null": None, "bool": True}
NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
HUGE = {"1e300": 1e300, "2**63": 2**63}

# (record path, field, values, fields the message must name); values a dict name -> value.
_IMAGE = ("images", 0)
_RLE_ANN = ("annotations", 0)
_POLY_ANN = ("annotations", -1)


def coco_mutations() -> Iterator[tuple[str, tuple, Any, str | None]]:
    """``(name, path, value, needle)``: set ``path`` to ``value``; ``needle`` is the field the error
    must name, or ``None`` when the value is fine (the command must succeed)."""
    yield "info-str", ("info",), "abc", "info"
    yield "info-list", ("info",), [1, 2], "info"
    yield "info-image_root-int", ("info", "image_root"), 5, "info.image_root"
    yield "categories-strings", ("categories",), ["spacecraft"], "category 0"
    yield "categories-str", ("categories",), "spacecraft", "categories"
    yield "categories-id-str", ("categories", 0, "id"), "1", "id"
    yield "categories-id-0", ("categories", 0, "id"), 0, "id"
    yield "categories-id-missing", ("categories", 0, "id"), MISSING, "id"
    yield "categories-name-list", ("categories", 0, "name"), [1], "name"
    yield "images-str", ("images",), "abc", "images"
    yield "images-entry-int", ("images", 0), 7, "image 0"
    yield "annotations-str", ("annotations",), "abc", "annotations"
    yield "annotations-entry-int", ("annotations", 0), 7, "annotation"
    for key in ("id", "file_name", "height", "width"):
        yield f"image-{key}-missing", (*_IMAGE, key), MISSING, key
        for tname, value in WRONG_TYPES.items():
            if key == "file_name" and tname == "str":
                continue
            yield f"image-{key}-{tname}", (*_IMAGE, key), value, key
        if key != "file_name":
            for vname, value in {**NON_FINITE, **HUGE, "-5": -5, "1.5": 1.5}.items():
                yield f"image-{key}-{vname}", (*_IMAGE, key), value, key
    yield "image-height-1e5", (*_IMAGE, "height"), 100_000, "height"
    yield "image-id-float-integral", (*_IMAGE, "id"), None, None  # replaced below: keeps its id as 1.0
    yield "image-file_name-escape", (*_IMAGE, "file_name"), "../../etc/passwd", "file_name"
    yield "image-file_name-absolute", (*_IMAGE, "file_name"), "/etc/passwd", "file_name"
    yield "image-file_name-empty", (*_IMAGE, "file_name"), "", "file_name"
    yield "image-afss_error-int", (*_IMAGE, "afss_error"), 5, "afss_error"
    yield "image-afss_meta-str", (*_IMAGE, "afss_meta"), "x", "afss_meta"
    yield "ann-image_id-missing", (*_RLE_ANN, "image_id"), MISSING, "image_id"
    yield "ann-image_id-str", (*_RLE_ANN, "image_id"), "1", "image_id"
    yield "ann-image_id-unknown", (*_RLE_ANN, "image_id"), 999, "image_id"
    for vname, value in {**WRONG_TYPES, **NON_FINITE, "0": 0, "-1": -1, "1.5": 1.5, "unlisted": 7}.items():
        if vname != "null":
            yield f"ann-category_id-{vname}", (*_RLE_ANN, "category_id"), value, "category_id"
    for vname, value in {**WRONG_TYPES, **NON_FINITE, **HUGE, "-1": -1, "2": 2}.items():
        yield f"ann-score-{vname}", (*_RLE_ANN, "score"), value, "score"
    for vname, value in {"str": "abc", "3": [1, 2, 3], "x-str": ["a", 0, 1, 1], "nan": [math.nan, 0, 1, 1],
                         "inf-w": [0, 0, math.inf, 1], "1e300": [1e300, 0, 1, 1], "neg-w": [0, 0, -1, 1],
                         "far": [5000, 0, 1, 1]}.items():
        yield f"ann-bbox-{vname}", (*_RLE_ANN, "bbox"), value, "bbox"
    yield "ann-iscrowd-2", (*_RLE_ANN, "iscrowd"), 2, "iscrowd"
    yield "ann-iscrowd-str", (*_RLE_ANN, "iscrowd"), "yes", "iscrowd"
    yield "ann-source-int", (*_RLE_ANN, "source"), 5, "source"
    yield "ann-scores-str", (*_RLE_ANN, "scores"), "x", "scores"
    yield "ann-scores-nan", (*_RLE_ANN, "scores"), {"box_score": math.nan}, "scores.box_score"
    yield "ann-parts-str", (*_RLE_ANN, "parts"), "x", "parts"
    yield "ann-parts-entry-str", (*_RLE_ANN, "parts"), {"body": "x"}, "part body"
    yield "ann-segmentation-str", (*_RLE_ANN, "segmentation"), "abc", "segmentation"
    yield "ann-segmentation-int", (*_RLE_ANN, "segmentation"), 5, "segmentation"
    yield "rle-counts-garbage", (*_RLE_ANN, "segmentation", "counts"), "!!!!~~~~", "RLE counts"
    yield "rle-counts-overlong", (*_RLE_ANN, "segmentation", "counts"), "0" + "X" * 10_000 + "0", "RLE counts"
    yield "rle-counts-cut", (*_RLE_ANN, "segmentation", "counts"), "0b", "RLE counts"
    yield "rle-counts-int", (*_RLE_ANN, "segmentation", "counts"), 5, "RLE counts"
    yield "rle-counts-list-negative", (*_RLE_ANN, "segmentation", "counts"), [10, -5, 4000], "RLE counts"
    yield "rle-counts-list-too-long", (*_RLE_ANN, "segmentation", "counts"), [10, 5, 40000], "RLE counts"
    yield "rle-counts-list-short", (*_RLE_ANN, "segmentation", "counts"), [100, 20], None
    yield "rle-size-mismatch", (*_RLE_ANN, "segmentation", "size"), [65, 64], "mask size"
    yield "rle-size-str", (*_RLE_ANN, "segmentation", "size"), "64x64", "mask size"
    yield "rle-size-missing", (*_RLE_ANN, "segmentation", "size"), MISSING, "size"
    for vname, value in {"nan": [[10, 10, math.nan, 10, 30, 30]], "inf": [[10, 10, math.inf, 10, 30, 30]],
                         "1e300": [[10, 10, 1e300, 10, 30, 30]], "1e6": [[10, 10, 1e6, 10, 30, 30]],
                         "two-points": [[1, 2, 3, 4]], "odd": [[1, 2, 3, 4, 5, 6, 7]],
                         "str-coord": [["a", 1, 2, 3, 4, 5]], "nested-str": ["abc"], "bool": [[True, 1, 2, 3, 4, 5]],
                         "huge-count": [[10.0, 10.0] * 600_000]}.items():
        yield f"poly-{vname}", (*_POLY_ANN, "segmentation"), value, "segmentation"
    yield "poly-flat", (*_POLY_ANN, "segmentation"), [10, 10, 30, 10, 30, 30, 10, 30], None


def coco_cases(world: World) -> list[Case]:
    """Every mutation written as a file and given to every command that reads COCO."""
    folder = world.root / "coco"
    folder.mkdir(exist_ok=True)
    cases = []
    for name, path, value, needle in coco_mutations():
        doc = copy.deepcopy(world.base)
        if name == "image-id-float-integral":
            old = doc["images"][0]["id"]
            doc["images"][0]["id"] = float(old)
        else:
            _set(doc, path, value)
        f = folder / f"{name}.json"
        f.write_text(json.dumps(doc))  # NaN and Infinity are written as JSON's common extension
        expect = "error" if needle is not None else "ok"
        needles = (str(f), needle) if needle is not None else ()
        inputs = (f, world.gt, world.labels, world.data)
        runs = {
            "convert": ["convert", "--from", "coco", "--root", str(f), "--out", "{out}/c.json"],
            "eval-gt": ["eval", "--gt", str(f), "--pred", str(world.labels), "--out", "{out}/m.json"],
            "eval-pred": ["eval", "--gt", str(world.gt), "--pred", str(f), "--out", "{out}/m.json"],
            "label": ["label", "--teacher", "photometric", "--coco", str(f), "--out", "{out}/l.json"],
            "refine": ["refine", "--teacher", "photometric", "--labels", str(f), "--out", "{out}/r.json"],
        }
        for command, argv in runs.items():
            cases.append(Case(f"{command}:{name}", argv, expect, needles, inputs))
    return cases


def output_cases(world: World) -> list[Case]:
    """Output locations that are folders, inputs, other data, unwritable, or on a full disk."""
    gt, labels, data = str(world.gt), str(world.labels), str(world.data)
    inputs = (world.gt, world.labels, world.data, world.root / "gt_copy.json")
    a_file = world.root / "a_file.txt"
    a_file.write_text("not a folder")
    blocked = f"{a_file}/sub/out.json"  # its parent is a file: the folder cannot be made
    proc = "/proc/afss-no-such-dir/out.json"  # not creatable even by root
    label = ["label", "--teacher", "photometric", "--coco", gt]
    refine = ["refine", "--teacher", "photometric", "--labels", labels]
    evaluate = ["eval", "--gt", gt, "--pred", labels]
    convert = ["convert", "--from", "coco", "--root", gt]
    cases = []
    for cmd, argv in {"label": label, "refine": refine, "eval": evaluate, "convert": convert}.items():
        cases += [
            Case(f"out-folder:{cmd}", [*argv, "--out", "{out}"], "error", ("is a folder",), inputs),
            Case(f"out-parent-is-file:{cmd}", [*argv, "--out", blocked], "error", ("cannot create its folder",), inputs),
            Case(f"out-unwritable:{cmd}", [*argv, "--out", proc], "error", ("/proc/afss-no-such-dir",), inputs),
            Case(f"out-is-gt:{cmd}", [*argv, "--out", gt], "error", (gt,), inputs),
            Case(f"out-is-labels:{cmd}", [*argv, "--out", labels], "error", (labels,), inputs),
            Case(f"out-other-data:{cmd}", [*argv, "--out", str(world.root / "gt_copy.json")], "error",
                 ("exists and", "--overwrite"), inputs),
            Case(f"out-not-json:{cmd}", [*argv, "--out", "{out}/x.png"], "error", (".json",), inputs),
            Case(f"disk-full:{cmd}", [*argv, "--out", "{out}/o.json"], "error", ("No space left on device",), inputs,
                 fault=disk_full),
        ]
    cases = [c for c in cases if c.name != "out-is-labels:label"]  # labels.json is label's own output: a rerun
    cases += [
        Case("preview-folder", [*evaluate, "--out", "{out}/m.json", "--preview", "{out}"], "error", ("is a folder",), inputs),
        Case("preview-ext", [*evaluate, "--out", "{out}/m.json", "--preview", "{out}/p.txt"], "error",
             ("--preview must end in",), inputs),
        Case("preview-is-image", [*evaluate, "--out", "{out}/m.json", "--preview", f"{data}/images/000000.png"], "error",
             ("000000.png",), inputs),
        Case("preview-n-0", [*evaluate, "--out", "{out}/m.json", "--preview", "{out}/p.png", "--preview-n", "0"], "error",
             ("--preview-n must be in [1, ",), inputs),
        Case("preview-n-huge", [*evaluate, "--out", "{out}/m.json", "--preview", "{out}/p.png", "--preview-n", "1000000"],
             "error", ("--preview-n",), inputs),
        Case("preview-unwritable", [*evaluate, "--out", "{out}/m.json", "--preview", proc.replace(".json", ".png")],
             "error", ("/proc/afss-no-such-dir",), inputs),
        Case("synth-out-is-file", ["synth", "--n", "1", "--size", "32", "--out", gt], "error", ("not a folder",), inputs),
        Case("synth-out-other-data", ["synth", "--n", "1", "--size", "32", "--out", str(world.root)], "error",
             ("not made by afss synth",), inputs),
        Case("synth-out-unwritable", ["synth", "--n", "1", "--size", "32", "--out", "/proc/afss-no-such-dir/d"], "error",
             ("/proc/afss-no-such-dir",), inputs),
        Case("synth-preview-folder", ["synth", "--preview", "{out}"], "error", ("is a folder",), inputs),
        Case("synth-preview-ext", ["synth", "--preview", "{out}/p.gif"], "error", ("--preview must end in",), inputs),
        Case("synth-preview-n-0", ["synth", "--preview", "{out}/p.png", "--n", "0"], "error", ("[1, 64]",), inputs),
    ]
    return cases


def number_cases(world: World) -> list[Case]:
    """User numbers that could blow up memory or time, or crash deep inside a library."""
    gt, labels = str(world.gt), str(world.labels)
    synth = ["synth", "--out", "{out}/d"]
    refine = ["refine", "--teacher", "photometric", "--labels", labels, "--out", "{out}/r.json"]
    inputs = (world.gt, world.labels, world.data)
    cases = [
        Case("synth-seed-neg", [*synth, "--seed", "-1"], "error", ("seed", "[0, 4294967295]"), inputs),
        Case("synth-seed-huge", [*synth, "--seed", str(2**40)], "error", ("seed",), inputs),
        Case("synth-n-neg", [*synth, "--n", "-1"], "error", ("n must be",), inputs),
        Case("synth-n-0", [*synth, "--n", "0"], "error", ("n must be a whole number in [1, ",), inputs),
        Case("synth-n-huge", [*synth, "--n", str(10**12)], "error", ("n must be",), inputs),
        Case("synth-size-0", [*synth, "--size", "0"], "error", ("size", "[32, 8192]"), inputs),
        Case("synth-size-huge", [*synth, "--size", "100000"], "error", ("size",), inputs),
        Case("synth-workers-0", [*synth, "--workers", "0"], "error", ("workers",), inputs),
        Case("synth-preview-seed", ["synth", "--preview", "{out}/p.png", "--seed", "-3"], "error", ("seed",), inputs),
        Case("label-limit-0", ["label", "--teacher", "photometric", "--coco", gt, "--out", "{out}/l.json", "--limit", "0"],
             "error", ("limit",), inputs),
        Case("label-batch-0", ["label", "--teacher", "photometric", "--coco", gt, "--out", "{out}/l.json",
                               "--batch-size", "0"], "error", ("batch_size",), inputs),
    ]
    for view in ("scale100", "scale0.01", "brightness0", "gamma1000", "contrast1e9"):
        cases.append(Case(f"tta-{view}", [*refine, "--tta", f"identity,{view}"], "error", (view, "must be in"), inputs))
    return cases


def image_cases(world: World) -> list[Case]:
    """Images that cannot be read: each is a record in the output, and the run goes on."""
    pool = world.root / "pool"
    shutil.rmtree(pool, ignore_errors=True)
    shutil.copytree(world.data / "images", pool)
    (pool / "corrupt.png").write_bytes(b"this is not an image")
    (pool / "empty.png").write_bytes(b"")
    png = (world.data / "images" / "000000.png").read_bytes()
    import cv2
    import numpy as np

    _, buf = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))
    (pool / "truncated.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    (pool / "dangling.png").symlink_to(pool / "no-such-target.png")
    (pool / "denied.png").write_bytes(png)  # readable bytes; the fault below denies reading them
    bad = {"corrupt.png": "cannot decode", "empty.png": "empty file", "truncated.jpg": "truncated JPEG",
           "dangling.png": "broken symbolic link", "denied.png": "Permission denied"}

    def records(name: str) -> Callable[[Path], None]:
        def check(out: Path) -> None:
            data = json.loads((out / name).read_text())
            errors = {im["file_name"]: im.get("afss_error") or "" for im in data["images"]}
            for file_name, reason in bad.items():
                assert reason in errors.get(file_name, "<missing>"), f"{file_name}: {errors.get(file_name)!r}"
            good = [n for n in errors if n.startswith("00000")]
            assert len(good) == 3 and all(not errors[n] or errors[n] == "no detection" or
                                          errors[n].startswith("filtered") for n in good), errors
        return check

    # a GT whose record says 64x64 for an image that is now 32x32
    resized = world.root / "resized"
    shutil.rmtree(resized, ignore_errors=True)
    shutil.copytree(world.data, resized)
    from afss.io.images import load_image, save_image

    small = load_image(resized / "images" / "000001.png").rgb[:32, :32]
    save_image(resized / "images" / "000001.png", small)

    def mismatch(name: str) -> Callable[[Path], None]:
        def check(out: Path) -> None:
            data = json.loads((out / name).read_text())
            errors = {im["file_name"]: im.get("afss_error") or "" for im in data["images"]}
            assert "size mismatch" in errors["images/000001.png"], errors
        return check

    inputs = (pool, world.gt, world.labels, resized)
    return [
        Case("images-label", ["label", "--teacher", "photometric", "--images", str(pool), "--out", "{out}/l.json"], "ok",
             inputs=inputs, check=records("l.json"), fault=deny(pool / "denied.png")),
        Case("images-refine", ["refine", "--teacher", "photometric", "--images", str(pool), "--out", "{out}/r.json"], "ok",
             inputs=inputs, check=records("r.json"), fault=deny(pool / "denied.png")),
        Case("images-convert", ["convert", "--from", "folder", "--root", str(pool), "--out", "{out}/c.json"], "ok",
             inputs=inputs, check=records("c.json"), fault=deny(pool / "denied.png")),
        Case("size-mismatch-label-record", ["label", "--teacher", "photometric", "--coco", str(resized / "gt.json"),
                                            "--out", "{out}/l.json"], "ok", inputs=inputs, check=mismatch("l.json")),
        Case("size-mismatch-refine", ["refine", "--teacher", "photometric", "--labels", str(world.labels),
                                      "--image-root", str(resized), "--out", "{out}/r.json"], "ok",
             inputs=inputs, check=mismatch("r.json")),
        Case("unreadable-folder", ["label", "--teacher", "photometric", "--images", str(pool), "--out", "{out}/l.json"],
             "error", (str(pool), "Permission denied"), inputs, fault=deny_listing(pool)),
    ]


@contextlib.contextmanager
def _patched(obj: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(obj, name)
    setattr(obj, name, replacement)
    try:
        yield
    finally:
        setattr(obj, name, original)


def disk_full() -> contextlib.AbstractContextManager:
    """Every atomic write fails as on a full disk (``os.replace`` raises ENOSPC)."""
    import errno

    from afss.io import atomic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return _patched(atomic.os, "replace", full)


def deny(path: Path) -> Callable[[], contextlib.AbstractContextManager]:
    """Reading ``path``'s bytes fails with EACCES, as for a file without read permission (the suite
    runs as root in CI, where chmod denies nothing; `test_bad_input` also tries it as a real user)."""
    import errno

    import numpy as np
    from PIL import Image

    original, original_open = np.fromfile, Image.open

    def fromfile(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return original(file, *args, **kwargs)

    def pil_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == path:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return original_open(file, *args, **kwargs)

    @contextlib.contextmanager
    def fault() -> Iterator[None]:
        with _patched(np, "fromfile", fromfile), _patched(Image, "open", pil_open):
            yield

    return fault


def deny_listing(folder: Path) -> Callable[[], contextlib.AbstractContextManager]:
    import errno

    original = os.scandir

    def scandir(path=".", *args):
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return original(path, *args)

    return lambda: _patched(os, "scandir", scandir)


def decoder_and_path_cases(world: World) -> list[Case]:
    """Files the JSON/YAML decoders refuse by their own limits, and paths the operating system refuses
    (a name longer than the file system allows, a symbolic-link loop, a file used as a folder)."""
    folder = world.root / "limits"
    folder.mkdir(exist_ok=True)
    gt, labels = str(world.gt), str(world.labels)
    deep = folder / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # Python's decoder recurses once per level
    deep_obj = folder / "deep_object.json"
    deep_obj.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    digits = folder / "digits.json"  # integers over Python's 4,300-digit conversion limit
    doc = copy.deepcopy(world.base)
    doc["images"][0]["height"] = "HUGE"
    digits.write_text(json.dumps(doc).replace('"HUGE"', "9" * 5000))
    deep_yaml = folder / "deep.yaml"
    deep_yaml.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    loop = folder / "loop.json"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    long_name = "n" * 300  # over the 255 bytes of a file name on common file systems
    long_doc = copy.deepcopy(world.base)  # one image whose file name the OS refuses; the others are fine
    long_doc["images"][0]["file_name"] = f"images/{long_name}.png"
    long_file = folder / "long_file_name.json"
    long_file.write_text(json.dumps(long_doc))
    a_file = world.root / "a_file.txt"
    a_file.write_text("not a folder")
    inputs = (world.gt, world.labels, world.data, deep, deep_obj, digits, deep_yaml, long_file)

    def long_name_recorded(out: Path) -> None:
        data = json.loads((out / "l.json").read_text())
        errors = {im["file_name"]: im.get("afss_error") or "" for im in data["images"]}
        assert len(errors) == 3, errors
        assert "File name too long" in errors[f"images/{long_name}.png"], errors
        assert sum(1 for e in errors.values() if not e or e == "no detection") == 2, errors

    cases = []
    for name, f, needle in (("deep-array", deep, "nested too deeply"), ("deep-object", deep_obj, "nested too deeply"),
                            ("int-digits", digits, "not valid JSON"), ("symlink-loop", loop, str(loop)),
                            ("long-name", folder / f"{long_name}.json", "too long"),
                            ("parent-is-file", a_file / "x.json", str(a_file))):
        cases += [
            Case(f"decode:{name}:eval-pred", ["eval", "--gt", gt, "--pred", str(f), "--out", "{out}/m.json"], "error",
                 (needle,), inputs),
            Case(f"decode:{name}:eval-gt", ["eval", "--gt", str(f), "--pred", labels, "--out", "{out}/m.json"], "error",
                 (needle,), inputs),
            Case(f"decode:{name}:label", ["label", "--teacher", "photometric", "--coco", str(f), "--out", "{out}/l.json"],
                 "error", (needle,), inputs),
            Case(f"decode:{name}:refine", ["refine", "--teacher", "photometric", "--labels", str(f),
                                           "--out", "{out}/r.json"], "error", (needle,), inputs),
            Case(f"decode:{name}:convert", ["convert", "--from", "coco", "--root", str(f), "--out", "{out}/c.json"],
                 "error", (needle,), inputs),
        ]
    cases += [
        Case("decode:deep-yaml:run", ["run", str(deep_yaml), "--out", "{out}/r"], "error", ("nested too deeply",), inputs),
        Case("path:long-file-name-in-coco:label", ["label", "--teacher", "photometric", "--coco", str(long_file),
                                                   "--out", "{out}/l.json"], "ok", inputs=inputs, check=long_name_recorded),
        Case("path:long-out:label", ["label", "--teacher", "photometric", "--coco", gt, "--out", f"{{out}}/{long_name}.json"],
             "error", ("too long",), inputs),
        Case("path:long-out:synth", ["synth", "--n", "1", "--size", "32", "--out", f"{{out}}/{long_name}"], "error",
             ("too long",), inputs),
        Case("path:long-images:label", ["label", "--teacher", "photometric", "--images", str(folder / long_name),
                                        "--out", "{out}/l.json"], "error", ("too long",), inputs),
        Case("path:long-preview:eval", ["eval", "--gt", gt, "--pred", labels, "--out", "{out}/m.json",
                                        "--preview", f"{{out}}/{long_name}.png"], "error", ("too long",), inputs),
        Case("path:long-run-config", ["run", str(folder / f"{long_name}.yaml"), "--out", "{out}/r"], "error",
             ("too long",), inputs),
        Case("path:long-train-out", ["train", "--labels", labels, "--out", f"{{out}}/{long_name}"], "error",
             ("too long",), inputs),
        Case("path:long-report", ["report", str(folder / long_name)], "error", ("too long",), inputs),
    ]
    return cases


def all_cases(world: World) -> list[Case]:
    return [*coco_cases(world), *output_cases(world), *number_cases(world), *image_cases(world),
            *decoder_and_path_cases(world)]


def _run_isolated(case: Case, root: Path, limit_bytes: int, timeout_s: float = 30.0) -> Outcome:
    """`run_case` in a forked child under an address-space limit, so that a case which makes the code
    under test allocate without bound or crash (as older versions did) is counted, not fatal."""
    import pickle
    import resource

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
            outcome = run_case(case, root)
            data = pickle.dumps((outcome.code, outcome.stderr[-2000:], outcome.traceback, outcome.problems))
        except BaseException as e:  # noqa: BLE001
            data = pickle.dumps((None, "", repr(e), [f"runner failed: {e!r}"]))
        with os.fdopen(write, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(write)
    import select
    import signal

    with os.fdopen(read, "rb") as f:
        ready, _, _ = select.select([f], [], [], timeout_s)
        if not ready:  # hung: a case must end in seconds
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return Outcome(None, "", f"hung for more than {timeout_s:g} s", [f"hung for more than {timeout_s:g} s"])
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        why = f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {status}"
        return Outcome(None, "", f"crashed ({why})", [f"crashed ({why})"])
    code, err, tb, problems = pickle.loads(data)
    return Outcome(code, err, tb, problems)


def main() -> None:
    """``python tests/bad_inputs.py [--isolated]``: run the corpus, print what went wrong and the counts.
    ``--isolated`` runs each case in a forked child limited to 4 GB of address space."""
    import sys
    import tempfile

    isolated = "--isolated" in sys.argv
    root = Path(tempfile.mkdtemp(prefix="afss-corpus-"))
    world = make_world(root)
    cases = all_cases(world)
    tracebacks, failures = 0, 0
    for case in cases:
        outcome = _run_isolated(case, root, 4_000_000 * 1024) if isolated else run_case(case, root)
        tracebacks += outcome.traceback is not None
        failures += bool(outcome.problems)
        for problem in outcome.problems:
            print(f"{case.name}: {problem}", file=sys.stderr)
    print(f"{len(cases)} cases, {tracebacks} ended in a traceback or crash, {failures} did not end as a user "
          "should see")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
