"""Many scenes: deterministic, parallel rendering of a dataset and its COCO ground truth.

Image ``k`` is rendered from ``SeedSequence([seed, k])``, so the output does not depend on the
number of workers. Files: see :mod:`afss.synth.export`; every format also writes ``gt.json``
(COCO, exact masks with ``body``/``panels`` parts) whose ``file_name`` entries are relative to the
output folder (``image_root`` = ``out_dir``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.io.coco import write_coco
from afss.io.outputs import writable_folder
from afss.synth.domains import DOMAINS, DomainPreset
from afss.synth.export import FORMATS, SPEEDPLUS_FOV_DEG, finish, write_image
from afss.synth.scene import check_scene_numbers, check_whole, render, scene_labels
from afss.types import ImageLabels, LabelSet

log = logging.getLogger(__name__)

SYNTH_TOOL = "afss synth"
MAX_IMAGES = 10_000_000
MAX_WORKERS = 256


def check_synth_numbers(*, n: int | None = None, size: int | tuple[int, int] | None = None,
                        seed: int | None = None, workers: int | None = None) -> None:
    """Bounds on the numbers that size a synth run, so a typo cannot take the machine's memory or
    time (``--size 100000``) or crash deep in numpy (``--seed -1``); each error names the range."""
    if n is not None:
        check_whole(n, "n", 1, MAX_IMAGES)  # an empty dataset is a typo, not a dataset
    check_scene_numbers(size=size, seed=seed)
    if workers is not None:
        check_whole(workers, "workers", 1, MAX_WORKERS)


def _synth_info(folder: Path) -> dict | None:
    """The ``info`` of ``folder``'s ``gt.json`` where afss synth wrote it, else ``None``."""
    try:
        with (folder / "gt.json").open(encoding="utf-8") as f:
            info = json.load(f).get("info") or {}
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return info if isinstance(info, dict) and info.get("tool") == SYNTH_TOOL else None


MANIFEST = ".afss-synth-files.json"
"""Every file a synth run wrote, relative to its folder: what a later run may replace."""


def foreign_files(folder: Path) -> list[str]:
    """Files under ``folder`` that afss synth did not write (per its manifest): labels, notes, a
    student someone saved there. A rerun must not delete them."""
    try:
        written = set(json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        written = None
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    if written is None:  # an older synth output: which files are its own is unknown
        return found
    return [f for f in found if f not in written and f != MANIFEST]


def _write_manifest(folder: Path) -> None:
    from afss.io.atomic import write_json_atomic

    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    write_json_atomic(folder / MANIFEST, [f for f in files if f != MANIFEST])


SETTINGS = ("n", "size", "domain", "seed", "format", "split")
"""What makes two afss synth datasets the same scenes (`gt.json`'s ``info``)."""


def check_synth_names(*, domain: str | DomainPreset | None = None, fmt: str | None = None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise unknown_choice("synth format", fmt, FORMATS)
    if domain is not None and not isinstance(domain, DomainPreset) and domain not in DOMAINS:
        raise unknown_choice("synth domain", domain, DOMAINS)


def synth_settings(*, n: int, size: int | tuple[int, int] = 512, domain: str | DomainPreset = "mixed", seed: int = 0,
                   fmt: str = "coco", split: str = "train") -> dict:
    """`SETTINGS` as `gt.json` records them."""
    return {"n": n, "size": size, "domain": domain.name if isinstance(domain, DomainPreset) else domain,
            "seed": seed, "format": fmt, "split": split}


def _same_scenes(settings: dict) -> dict:
    """Settings that give the same scenes compare equal: a size as ``[H, W]``; no split for the coco
    format, which writes none."""
    out = {k: settings.get(k) for k in SETTINGS}
    try:
        out["size"] = [int(out["size"])] * 2 if np.isscalar(out["size"]) else [int(v) for v in out["size"]]
    except (TypeError, ValueError):
        pass  # an odd record: it then differs, and says so
    if out["format"] in (None, "coco"):
        out["split"] = None
    return out


def _settings_changed(info: dict, settings: dict) -> list[str]:
    """What differs between the scenes ``info`` records and those ``settings`` give, one phrase each."""
    recorded, wanted = _same_scenes(info), _same_scenes(settings)
    return [f"{k} {recorded[k]!r}, now {wanted[k]!r}" for k in SETTINGS if recorded[k] != wanted[k]]


def check_synth_output(out: str | os.PathLike, settings: dict, overwrite: bool = False) -> bool:
    """Whether ``out`` may take a dataset of ``settings``; returns whether it is empty. An earlier afss
    synth dataset of other settings is replaced only with ``overwrite``: labels made from it would
    lose their images."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AfssError(f"{out}: exists and is not a folder")
    try:
        empty = not out.exists() or not any(out.iterdir())
    except OSError as e:
        raise AfssError(f"{out}: cannot read the folder ({e.strerror or e})") from e
    info = None if empty else _synth_info(out)
    if not empty and info is None:
        raise AfssError(f"{out}: folder is not empty and was not made by afss synth; choose a new or empty folder")
    if not empty:
        others = foreign_files(out)
        if not (out / MANIFEST).is_file():
            raise AfssError(f"{out}: was made by an older afss synth that kept no list of its files, so a new dataset "
                            "cannot tell them from yours; delete the folder or choose another")
        if others:
            raise AfssError(f"{out}: holds {len(others)} file(s) afss synth did not write (e.g. {others[0]}); a new "
                            "dataset would replace the folder whole: move them out or choose another folder")
        changed = _settings_changed(info, settings)
        if changed and not overwrite:
            raise AfssError(f"{out}: holds an afss synth dataset of other settings ({'; '.join(changed)}); pass "
                            "--overwrite (overwrite=True from Python) to replace it, or choose another folder "
                            "(labels made from it would lose their images)")
    return empty


def _prepare_output(out: Path, settings: dict, overwrite: bool) -> Path:
    """Where to render: ``out`` itself when it is new or empty, else (when afss synth made it) a fresh
    folder beside it that replaces it whole at the end, so no stale images of an earlier, larger run
    stay behind and a failed run leaves the old dataset as it was."""
    empty = check_synth_output(out, settings, overwrite)
    target = out if empty else out.with_name(f".{out.name}.synth-partial")
    if target != out and target.exists():
        shutil.rmtree(target, ignore_errors=True)  # left by a run that was killed
    return writable_folder(target)


def _replace_folder(out: Path, rendered: Path) -> None:
    old = out.with_name(f".{out.name}.synth-old")
    try:
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        rendered.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise AfssError(f"{out}: cannot replace the earlier dataset ({e.strerror or e}); the new one is in "
                        f"{rendered}") from e


def _work(job: tuple) -> ImageLabels:
    out, fmt, seed, index, size, domain, split, fov = job
    scene = render(seed, index, size=size, domain=domain, fov_deg=fov)
    rel = write_image(fmt, Path(out), scene, index, split)
    return scene_labels(scene, file_name=rel, image_id=index + 1)


@contextmanager
def _forkable_opencv() -> Iterator[None]:
    """Stop OpenCV's worker threads while the pool forks: a child forked while the parent's OpenCV
    thread pool is alive inherits that pool without its threads and hangs in its first cv2 call
    (seen in a process that had already blurred images). Forking keeps user scripts free of the
    ``if __name__ == "__main__"`` guard that spawn/forkserver would demand."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _init_worker() -> None:
    import signal

    import cv2

    cv2.setNumThreads(1)
    # a forked worker inherits its parent's SIGTERM handler (the CLI's, or Ray's driver's), and one that
    # does not end the process kept Pool.terminate() waiting forever (seen in the test suite)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def render_or_reuse(out_dir: str | os.PathLike, *, n: int, size: int = 512, domain: str | DomainPreset = "mixed",
                    seed: int = 0, workers: int | None = None) -> LabelSet:
    """`render_dataset`, unless ``out_dir`` already holds these very scenes (its ``gt.json`` records
    the same ``n``, ``size``, ``domain`` and ``seed``; a `DomainPreset` is known by its name): then
    they are read back, not rendered again."""
    from afss.io.coco import read_coco

    folder = Path(out_dir)
    info = _synth_info(folder)
    if info is not None and not _settings_changed(info, synth_settings(n=n, size=size, domain=domain, seed=seed)):
        return read_coco(folder / "gt.json")
    return render_dataset(folder, n=n, size=size, domain=domain, seed=seed, workers=workers, overwrite=True)


def render_dataset(out_dir: str | os.PathLike, *, n: int, size: int | tuple[int, int] = 512,
                   domain: str | DomainPreset = "mixed", seed: int = 0, fmt: str = "coco", split: str = "train",
                   workers: int | None = None, progress: Callable[[int], None] | None = None,
                   overwrite: bool = False) -> LabelSet:
    """Render ``n`` scenes into ``out_dir`` and write their ground truth.

    Args:
        out_dir: output folder (created); ``gt.json`` and the format's files go there. A folder that
            is not empty must be an earlier afss synth output, which is then replaced whole: with the
            same settings (the same scenes), or with ``overwrite``.
        n: number of images.
        size: image size, an int (square) or ``(H, W)``.
        domain: ``clean``, ``earth``, ``harsh`` or ``mixed`` (see `afss.synth.domains`), or a
            `DomainPreset` of your own (its ``name`` is recorded as the domain).
        seed: dataset seed; image ``k`` depends only on ``(seed, k, size, domain, fmt)``.
        fmt: ``coco`` (PNG + ``gt.json``) or a native layout: ``spark``, ``speedplus``, ``tango``.
            ``speedplus`` uses the SPEED+ camera's field of view for every image (one ``camera.json``).
        split: split name for native layouts (``train``/``val``; TANGO's ``val`` is its ``test``).
        workers: processes; default ``os.cpu_count()``; 1 renders in this process.
        progress: called with ``1`` after each finished image.
        overwrite: replace an earlier afss synth dataset of other settings in ``out_dir`` (refused
            by default: labels made from it would lose their images).

    Returns:
        The ground truth as a `LabelSet` (``image_root`` = ``out_dir``), also written to ``gt.json``.

    Raises:
        AfssError: an unknown format or domain, a number out of its range (`check_synth_numbers`), an
            ``out_dir`` that holds other files or cannot be written, or an afss synth dataset of other
            settings without ``overwrite``.

    Example:
        >>> gt = render_dataset("synth_demo", n=8, size=256, domain="harsh")  # doctest: +SKIP
        >>> len(gt), gt.images[0].file_name
        (8, 'images/000000.png')
    """
    check_synth_names(domain=domain, fmt=fmt)
    check_synth_numbers(n=n, size=size, seed=seed, workers=workers)
    final = Path(out_dir)
    out = _prepare_output(final, synth_settings(n=n, size=size, domain=domain, seed=seed, fmt=fmt, split=split),
                          overwrite)
    workers = max(1, int(workers or os.cpu_count() or 1))
    fov = SPEEDPLUS_FOV_DEG if fmt == "speedplus" else None
    jobs = [(str(out), fmt, int(seed), k, size, domain, split, fov) for k in range(n)]
    t0 = time.perf_counter()
    images: list[ImageLabels] = []
    if workers == 1 or n <= 1:
        for job in jobs:
            images.append(_work(job))
            if progress:
                progress(1)
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        chunk = max(1, min(8, n // (4 * workers)))
        with _forkable_opencv():
            pool = ctx.Pool(workers, initializer=_init_worker)
            try:
                for lab in pool.imap(_work, jobs, chunksize=chunk):
                    images.append(lab)
                    if progress:
                        progress(1)
                pool.close()  # the workers finish and exit; terminate() (the context manager's) signals them
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
    seconds = time.perf_counter() - t0
    finish(fmt, out, images, split)
    info = {"tool": SYNTH_TOOL, "domain": domain.name if isinstance(domain, DomainPreset) else domain, "seed": int(seed), "n": int(n), "size": size,
            "format": fmt, "split": split, "workers": workers, "seconds": round(seconds, 3)}
    labels = LabelSet(images=tuple(images), categories={1: "spacecraft"}, image_root=str(out), info=info)
    write_coco(labels, out / "gt.json")
    _write_manifest(out)
    if out != final:
        _replace_folder(final, out)
        labels = labels.replace(image_root=str(final))
    out = final
    log.debug("synth: %d images in %.1f s (%.1f img/s) -> %s", n, seconds, n / max(seconds, 1e-9), out)
    return labels
