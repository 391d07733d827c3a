"""What every engine shares: how a batch job is described, and how one image file is read.

An engine runs a *job* over batches of images and yields the results batch by batch, in input
order; the caller (`afss.resumable.run_resumable`) journals each batch as it arrives. A job is a
callable ``job(batch, loaded) -> results`` (``loaded[i]`` the RGB pixels of ``batch[i]`` or why they
could not be read). To run on other processes or machines a job must also be picklable without its
model and rebuild it there: `TeacherJob` does that for every teacher afss can build by name.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from afss.errors import AfssError
from afss.io.images import ImageReadError, load_image, size_mismatch
from afss.types import ImageLabels, LabelSet

log = logging.getLogger(__name__)

__all__ = ["TEACHER_FAILED", "Engine", "TeacherJob", "load_rgb_file", "release_accelerator_memory", "teacher_failure"]

TEACHER_FAILED = "teacher failed"
"""How an image's ``error`` starts where the teacher raised on it (`teacher_failure`)."""

FAILURES_BEFORE_STOP = 4
"""Images in a row a job's teacher may fail on, answering none, before the job stops the run: a
device, memory or model that fails every image would otherwise mark a whole dataset as failed."""


class Engine(Protocol):
    """Where the images are processed."""

    name: str

    def run(self, images: LabelSet, todo: Sequence[ImageLabels], job: Any, *,
            batch_size: int) -> Iterator[list[ImageLabels]]:
        """Yield the results of ``job`` over ``todo`` (records of ``images``), batch by batch, in order."""


def load_rgb_file(path: str | os.PathLike, image: ImageLabels) -> np.ndarray | str:
    """The RGB pixels at ``path`` for the record ``image``, or why they cannot be used:
    ``"unreadable: ..."`` (missing, no permission, corrupt) or ``"size mismatch: ..."`` (the file is
    not the size its record says, so masks made on it would not fit the record's ground truth)."""
    try:
        rgb = load_image(path).rgb
    except ImageReadError as e:
        return f"unreadable: {e}"
    if image.height and image.width and tuple(rgb.shape[:2]) != image.size_hw:
        return size_mismatch(path, image.size_hw, rgb.shape[:2])
    return rgb


def teacher_failure(im: ImageLabels, error: BaseException) -> str:
    """The ``error`` recorded for an image the teacher raised on (and a warning naming it)."""
    log.warning("%s: %s: %s: %s", im.file_name, TEACHER_FAILED, type(error).__name__, error,
                exc_info=log.isEnabledFor(logging.DEBUG))
    return f"{TEACHER_FAILED}: {type(error).__name__}: {' '.join(str(error).split())}"  # one line: CUDA's run several


def release_accelerator_memory() -> None:
    """Hand cached GPU memory back after a failed batch, before its images are retried one by one
    (an out-of-memory batch would otherwise leave its retries less room). Only where torch is already
    imported and has used CUDA: a weights-free teacher imports nothing for it."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class TeacherJob:
    """A job that runs a teacher, and can be rebuilt elsewhere from the teacher's name and options.

    Pickling drops the teacher (its weights may be gigabytes) and the given labels; `setup` rebuilds
    the teacher by `afss.teachers.build_teacher` where the job lands, once per worker. Subclasses
    implement `process`.

    Args:
        teacher: the teacher, used as is in this process.
        given: labels by ``file_name`` that go with the images (refine's identity view); engines
            that ship the job elsewhere send each image's own with it (`prior`).
    """

    def __init__(self, teacher: Any, given: Mapping[str, ImageLabels] | None = None) -> None:
        from afss.teachers.base import teacher_provenance

        self.teacher = teacher
        self.spec = teacher_provenance(teacher)
        self.given = dict(given or {})
        self.answered, self.failed_in_a_row = 0, 0  # of this worker's images: see `check_teacher_works`
        self.failed_before: frozenset[str] = frozenset()  # images a resumed run tries again (`run_resumable`)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "teacher": None, "given": {}}

    def check_portable(self) -> None:
        """Refuse, in one line, a teacher that cannot be rebuilt by name on another worker."""
        from afss.teachers import TEACHERS

        if self.spec["name"] not in TEACHERS:
            raise AfssError(f"teacher {self.spec['name']!r} is not one afss can build by name "
                            f"({', '.join(sorted(TEACHERS))}): it can only run with the local engine")

    def setup(self) -> None:
        if self.teacher is None:
            from afss.teachers import build_teacher

            self.teacher = build_teacher(self.spec["name"], **self.spec["options"])

    def prior(self, file_name: str) -> ImageLabels | None:
        return self.given.get(file_name)

    def __call__(self, batch: Sequence[ImageLabels], loaded: Sequence[np.ndarray | str],
                 priors: Mapping[str, ImageLabels] | None = None) -> list[ImageLabels]:
        self.setup()
        results = self.process(batch, loaded, self.given if priors is None else priors)
        self.check_teacher_works(results)
        return results

    def check_teacher_works(self, results: Sequence[ImageLabels]) -> None:
        """Stop, in one line, a run whose teacher has failed on each of the first
        `FAILURES_BEFORE_STOP` images it was given and answered none: a device, memory or model
        problem, not bad images. Once it has answered one image, a failure is that image's; an image it
        failed on before (a resumed run tries it again) counts for neither, so a run whose bad images
        fail again still finishes."""
        for im in results:
            if im.file_name in self.failed_before:
                continue
            if im.error is not None and im.error.startswith(TEACHER_FAILED):
                self.failed_in_a_row += 1
            elif im.error is None or not im.error.startswith(("unreadable", "size mismatch")):
                self.answered += 1
        if not self.answered and self.failed_in_a_row >= FAILURES_BEFORE_STOP:
            reason = next(im.error for im in reversed(results) if im.error and im.error.startswith(TEACHER_FAILED))
            raise AfssError(f"the {self.spec['name']} teacher failed on each of the first {self.failed_in_a_row} images "
                            f"and answered none ({reason.removeprefix(TEACHER_FAILED + ': ')}): a device, memory or "
                            f"model problem rather than bad images; a rerun of the same command tries them again")

    def process(self, batch: Sequence[ImageLabels], loaded: Sequence[np.ndarray | str],
                priors: Mapping[str, ImageLabels]) -> list[ImageLabels]:
        raise NotImplementedError
