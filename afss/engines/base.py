"""What every engine shares: how a batch job is described, and how one image file is read.

An engine runs a *job* over batches of images and yields the results batch by batch, in input
order; the caller (`afss.resumable.run_resumable`) journals each batch as it arrives. A job is a
callable ``job(batch, loaded) -> results`` (``loaded[i]`` the RGB pixels of ``batch[i]`` or why they
could not be read). To run on other processes or machines a job must also be picklable without its
model and rebuild it there: `TeacherJob` does that for every teacher afss can build by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from afss.errors import AfssError
from afss.io.images import ImageReadError, load_image
from afss.types import ImageLabels, LabelSet

__all__ = ["Engine", "TeacherJob", "load_rgb_file"]


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
        return (f"size mismatch: recorded as {image.height}x{image.width} (H x W), the file is "
                f"{rgb.shape[0]}x{rgb.shape[1]}")
    return rgb


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
        return self.process(batch, loaded, self.given if priors is None else priors)

    def process(self, batch: Sequence[ImageLabels], loaded: Sequence[np.ndarray | str],
                priors: Mapping[str, ImageLabels]) -> list[ImageLabels]:
        raise NotImplementedError
