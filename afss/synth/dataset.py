"""Many scenes: deterministic, parallel rendering of a dataset and its COCO ground truth.

Image ``k`` is rendered from ``SeedSequence([seed, k])``, so the output does not depend on the
number of workers. Files: see :mod:`afss.synth.export`; every format also writes ``gt.json``
(COCO, exact masks with ``body``/``panels`` parts) whose ``file_name`` entries are relative to the
output folder (``image_root`` = ``out_dir``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from afss.errors import AfssError, unknown_choice
from afss.io.coco import write_coco
from afss.synth.domains import DOMAINS
from afss.synth.export import FORMATS, SPEEDPLUS_FOV_DEG, finish, write_image
from afss.synth.scene import render, scene_labels
from afss.types import ImageLabels, Instance, LabelSet

log = logging.getLogger(__name__)


def _work(job: tuple) -> dict:
    out, fmt, seed, index, size, domain, split, fov = job
    scene = render(seed, index, size=size, domain=domain, fov_deg=fov)
    rel = write_image(fmt, Path(out), scene, index, split)
    lab = scene_labels(scene, file_name=rel, image_id=index + 1)
    # plain data: the carriers hold mappingproxy objects, which do not pickle
    return {"file_name": lab.file_name, "height": lab.height, "width": lab.width, "image_id": lab.image_id,
            "meta": scene.meta, "instances": [
                {"box_xyxy": i.box_xyxy, "rle": i.rle, "source": i.source, "parts": dict(i.parts)}
                for i in lab.instances]}


def _labels(d: dict) -> ImageLabels:
    return ImageLabels(file_name=d["file_name"], height=d["height"], width=d["width"], image_id=d["image_id"],
                       meta=d["meta"], instances=tuple(Instance(**i) for i in d["instances"]))


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
    import cv2

    cv2.setNumThreads(1)


def render_dataset(out_dir: str | os.PathLike, *, n: int, size: int | tuple[int, int] = 512,
                   domain: str = "mixed", seed: int = 0, fmt: str = "coco", split: str = "train",
                   workers: int | None = None, progress: Callable[[int], None] | None = None) -> LabelSet:
    """Render ``n`` scenes into ``out_dir`` and write their ground truth.

    Args:
        out_dir: output folder (created); ``gt.json`` and the format's files go there.
        n: number of images.
        size: image size, an int (square) or ``(H, W)``.
        domain: ``clean``, ``earth``, ``harsh`` or ``mixed`` (see `afss.synth.domains`).
        seed: dataset seed; image ``k`` depends only on ``(seed, k, size, domain, fmt)``.
        fmt: ``coco`` (PNG + ``gt.json``) or a native layout: ``spark``, ``speedplus``, ``tango``.
            ``speedplus`` uses the SPEED+ camera's field of view for every image (one ``camera.json``).
        split: split name for native layouts (``train``/``val``; TANGO's ``val`` is its ``test``).
        workers: processes; default ``os.cpu_count()``; 1 renders in this process.
        progress: called with ``1`` after each finished image.

    Returns:
        The ground truth as a `LabelSet` (``image_root`` = ``out_dir``), also written to ``gt.json``.

    Example:
        >>> gt = render_dataset("synth_demo", n=8, size=256, domain="harsh")  # doctest: +SKIP
        >>> len(gt), gt.images[0].file_name
        (8, 'images/000000.png')
    """
    if fmt not in FORMATS:
        raise unknown_choice("synth format", fmt, FORMATS)
    if domain not in DOMAINS:
        raise unknown_choice("synth domain", domain, DOMAINS)
    if n < 0:
        raise AfssError(f"--n must be >= 0, got {n}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AfssError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, int(workers or os.cpu_count() or 1))
    fov = SPEEDPLUS_FOV_DEG if fmt == "speedplus" else None
    jobs = [(str(out), fmt, int(seed), k, size, domain, split, fov) for k in range(n)]
    t0 = time.perf_counter()
    images: list[ImageLabels] = []
    if workers == 1 or n <= 1:
        for job in jobs:
            images.append(_labels(_work(job)))
            if progress:
                progress(1)
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        chunk = max(1, min(8, n // (4 * workers)))
        with _forkable_opencv(), ctx.Pool(workers, initializer=_init_worker) as pool:
            for lab in pool.imap(_work, jobs, chunksize=chunk):
                images.append(_labels(lab))
                if progress:
                    progress(1)
    seconds = time.perf_counter() - t0
    finish(fmt, out, images, split)
    info = {"tool": "afss synth", "domain": domain, "seed": int(seed), "n": int(n), "size": size,
            "format": fmt, "split": split, "workers": workers, "seconds": round(seconds, 3)}
    labels = LabelSet(images=tuple(images), categories={1: "spacecraft"}, image_root=str(out), info=info)
    write_coco(labels, out / "gt.json")
    log.debug("synth: %d images in %.1f s (%.1f img/s) -> %s", n, seconds, n / max(seconds, 1e-9), out)
    return labels
