"""The label stage: run a teacher over a set of images and write COCO JSON with scores.

Crash-safe and resumable (`afss.resumable`): finished images go to a journal next to the output
(``<out>.partial.jsonl``, headed by the teacher, its options, the prompt and top1); a rerun with the
same ``out`` skips them. At the end the COCO file is written atomically and the journal deleted.

Every input image comes out exactly once, in input order. ``ImageLabels.error`` says why an image
has no instances: ``"no detection"`` (the teacher found nothing), ``"unreadable: ..."`` (the file
could not be decoded) or ``"teacher failed: ..."`` (the teacher raised on this image); it is ``None``
for an image with at least one instance.

Example:
    >>> from afss.teachers import build_teacher
    >>> images = images_from_folder("scenes/")  # doctest: +SKIP
    >>> labels = label_images(build_teacher("photometric"), images, out="labels.json")  # doctest: +SKIP
    >>> labels.info["counts"]  # doctest: +SKIP
    {'images': 200, 'labelled': 197, 'empty': 3, 'failed': 0, 'instances': 197}
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from afss.engines.base import TeacherJob, release_accelerator_memory, teacher_failure
from afss.errors import AfssError
from afss.io.coco import as_labelset, write_coco
from afss.io.outputs import check_replaceable, input_identity
from afss.resumable import check_limit, journal_path, run_resumable
from afss.teachers.base import Teacher, teacher_provenance
from afss.types import ImageLabels, Instance, LabelSet

__all__ = ["NO_DETECTION", "images_from_folder", "journal_path", "label_categories", "label_counts", "label_images",
           "teacher_provenance"]

log = logging.getLogger(__name__)

NO_DETECTION = "no detection"


def images_from_folder(root: str | os.PathLike) -> LabelSet:
    """All image files under ``root`` (recursive, sorted, `afss.datasets.common.find_images`: hidden
    files left out, broken links kept so that they are recorded), ``file_name`` relative to ``root``.

    Sizes are left at 0 here (nothing is decoded); the label stage fills them in from the pixels.

    Raises:
        AfssError: ``root`` is not a folder or holds no image files.
    """
    from afss.datasets.common import find_images, require_dir

    root = require_dir(root, "folder of images")
    files = [p.relative_to(root).as_posix() for p in find_images(root)]
    if not files:
        raise AfssError(f"{root}: no image files found (expected .png, .jpg, .tif, ...)")
    return LabelSet(images=tuple(ImageLabels(file_name=f, height=0, width=0) for f in files), image_root=str(root))


def as_images(images: Any, what: str = "images") -> LabelSet:
    """``images`` as a `LabelSet`: itself, a folder's image files (`images_from_folder`) or a COCO JSON
    file (`afss.io.coco.read_coco`)."""
    if isinstance(images, (str, os.PathLike)) and os.path.isdir(images):
        return images_from_folder(images)
    return as_labelset(images, what)


def check_label_output(images: LabelSet, out: str | os.PathLike, *, overwrite: bool = False,
                       limit: int | None = None) -> None:
    """Whether ``out`` may take the labels of ``images``: refused when it holds another stage's output or
    labels of other images (`afss.io.outputs.check_replaceable`). Cheap: the CLI asks before it loads a
    teacher's weights."""
    keep = None if limit is None else [im.file_name for im in images.images[:limit]]
    check_replaceable(out, stage="label", inputs=input_identity(images), overwrite=overwrite, keep=keep)


def label_counts(labels: LabelSet) -> dict[str, int]:
    """Images, labelled (>= 1 instance), empty (no detection), failed (unreadable or teacher error)."""
    labelled = sum(1 for im in labels.images if im.instances)
    empty = sum(1 for im in labels.images if not im.instances and im.error in (None, NO_DETECTION))
    return {"images": len(labels), "labelled": labelled, "empty": empty,
            "failed": len(labels) - labelled - empty, "instances": labels.num_instances}


def label_categories(given: Mapping[int, str], images: Sequence[ImageLabels],
                     declared: Mapping[int, str] | None = None) -> dict[int, str]:
    """The categories of a teacher's labels: the classes the teacher names (``Teacher.categories``: a
    student's, the classes it was trained on), else one class, id 1. The input's names are kept only
    where the input is that one class with that id: a ground truth numbered otherwise (``{7: ...}``) or
    of several classes (SPARK's 11 spacecraft) would otherwise leave the labels' ids out of their own
    file, or name them after a class they do not mean."""
    found = {i.category_id for im in images for i in im.instances}
    if declared:
        return {c: declared.get(c, f"class {c}") for c in sorted(found | set(declared))}
    found = found or {1}
    if set(given) == {1} and found == {1}:
        return dict(given)
    return {c: "spacecraft" if c == 1 else f"class {c}" for c in sorted(found)}


def label_images(
    teacher: Teacher,
    images: LabelSet,
    *,
    prompt: str = "spacecraft",
    batch_size: int = 8,
    top1: bool = True,
    out: str | os.PathLike | None = None,
    resume: bool = True,
    overwrite: bool = False,
    limit: int | None = None,
    engine: Any = None,
    progress: Callable[[int], None] | None = None,
) -> LabelSet:
    """Label every image of ``images`` (or the first ``limit``) with ``teacher``.

    Args:
        teacher: any `Teacher`.
        images: the images to label (``file_name`` relative to ``images.image_root``); their ids,
            file names and ``meta`` are kept so the output matches the ground truth they came from. A
            folder's path or a COCO JSON file's is read first (`as_images`).
        prompt: the text prompt passed to the teacher.
        batch_size: images per ``teacher.label`` call (and per journal flush).
        top1: keep only the most confident instance per image (the paper's one-target setting), by
            the detector's score (`Instance.detector_score`), whatever ``score`` the teacher reports.
        out: the COCO JSON to write; also enables the journal. ``None``: nothing is written.
        resume: continue from ``out``'s journal if there is one; ``False`` starts afresh.
        overwrite: replace an existing ``out`` even when it is not this stage's output of the same
            images (by default that is refused, see `afss.io.outputs.check_replaceable`).
        limit: label only the first ``limit`` images. The journal is shared with unlimited runs of
            the same images: a limited run reuses, and never deletes, the images finished before.
        engine: where to run (`afss.engines.build_engine`: ``local``, the default, or ``ray``); the
            output is the same.
        progress: called with the number of images just finished, after they are safely journalled
            (once at the start with the number a resumed run already had).

    Returns:
        The labels, in input order, with provenance in ``info`` (teacher, options, prompt, inputs,
        version, time, images/s, counts).

    Raises:
        AfssError: bad arguments, duplicate file names, an ``out`` that holds other data, or a journal
            from a different teacher, prompt or image set.
    """
    if not callable(getattr(teacher, "label", None)):  # a Teacher, or what stands for one (a lazy one)
        hint = f" (build_teacher({teacher!r}) builds one)" if isinstance(teacher, str) else ""
        raise AfssError(f"label_images needs a Teacher (afss.teachers.base.Teacher), got {type(teacher).__name__}{hint}")
    if not isinstance(prompt, str):  # else every image would fail in the teacher, one warning each
        raise AfssError(f"label: the prompt is one string, e.g. 'spacecraft', got {type(prompt).__name__}")
    images = as_images(images)
    inputs = input_identity(images)
    header = {"teacher": teacher_provenance(teacher), "prompt": prompt, "top1": top1, "inputs": inputs}
    check_limit(limit)
    if out is not None:
        check_label_output(images, out, overwrite=overwrite, limit=limit)
    t0 = time.perf_counter()
    done, journal = run_resumable(
        images, LabelJob(teacher, prompt, top1), out=out, kind="label", header=header, resume=resume,
        batch_size=batch_size, limit=limit, engine=engine, progress=progress)
    wanted = images.images[:limit]
    resumed = sum(1 for im in wanted if journal is not None and im.file_name in journal.done)
    todo = len(wanted) - resumed
    seconds = time.perf_counter() - t0

    from afss import __version__

    labelled = tuple(done[im.file_name] for im in wanted)
    result = LabelSet(images=labelled, categories=label_categories(images.categories, labelled, teacher.categories),
                      image_root=images.image_root)
    info = {
        "stage": "label",
        "teacher": header["teacher"]["name"],
        "teacher_options": header["teacher"]["options"],
        "prompt": prompt,
        "top1": top1,
        "inputs": inputs,
        "limit": limit,
        "afss_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "images_per_second": round(todo / seconds, 2) if todo and seconds > 0 else None,
        "resumed_images": resumed,
        "counts": label_counts(result),
    }
    result = result.replace(info=info)
    if out is not None:
        try:
            write_coco(result, out)
        except AfssError as e:
            raise journal.write_failed(e) from e
        journal.finish([im.file_name for im in result.images])
    return result


class LabelJob(TeacherJob):
    """The label stage's batch job: run the teacher, keep the top instance (or all), record why an
    image has none. Portable to other workers (`afss.engines`)."""

    def __init__(self, teacher: Teacher, prompt: str, top1: bool) -> None:
        super().__init__(teacher)
        self.prompt, self.top1 = prompt, top1

    def process(self, batch, loaded, priors) -> list[ImageLabels]:
        return _label_batch(self.teacher, batch, loaded, self.prompt, self.top1)


def _label_batch(
    teacher: Teacher, batch: Sequence[ImageLabels], loaded: Sequence[np.ndarray | str], prompt: str, top1: bool
) -> list[ImageLabels]:
    ok = [i for i, x in enumerate(loaded) if not isinstance(x, str)]
    per_image: dict[int, list | str] = {}
    if ok:
        arrays = [loaded[i] for i in ok]
        retry = False
        try:
            for i, inst in zip(ok, teacher.label(arrays, prompt), strict=True):
                per_image[i] = inst
        except Exception as batch_error:  # noqa: BLE001 - one bad image must not sink the batch
            if len(ok) == 1:
                per_image[ok[0]] = teacher_failure(batch[ok[0]], batch_error)
            retry = len(ok) > 1
        if retry:  # out of the except block: its traceback no longer holds the failed batch's tensors
            release_accelerator_memory()
            for i in ok:  # find the culprit(s) image by image
                try:
                    per_image[i] = teacher.label([loaded[i]], prompt)[0]
                except Exception as e:  # noqa: BLE001
                    per_image[i] = teacher_failure(batch[i], e)
    results = []
    for i, (im, pixels) in enumerate(zip(batch, loaded, strict=True)):
        if isinstance(pixels, str):
            results.append(im.replace(instances=(), error=pixels))
            continue
        h, w = pixels.shape[:2]
        found = per_image[i]
        if isinstance(found, str):
            results.append(im.replace(height=h, width=w, instances=(), error=found))
            continue
        try:  # a teacher of one's own that breaks the contract fails its images, not the run's code
            if not isinstance(found, (list, tuple)) or not all(isinstance(x, Instance) for x in found):
                raise TypeError(f"{type(teacher).__name__}.label returned {type(found).__name__} for an image, "
                                "expected a list of Instance")
            found = sorted(found, key=lambda x: -x.score)
            if top1 and found:  # by the detector's score, as the teacher's own top-1 and the reference code
                found = [max(found, key=lambda x: x.detector_score)]
            results.append(im.replace(height=h, width=w, instances=tuple(found),
                                      error=None if found else NO_DETECTION))
        except (TypeError, ValueError) as e:  # ValueError: a mask of another size than the image
            results.append(im.replace(height=h, width=w, instances=(), error=teacher_failure(im, e)))
    return results


