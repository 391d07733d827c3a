"""Teachers: text-prompted labellers behind one contract (`Teacher.label`).

``build_teacher(name, **options)`` builds one by name; each teacher class implements the classmethod
``build(**options)`` with typed keyword options and defaults (VLM teachers load their weights there,
from a hub id or a local folder).
"""

from __future__ import annotations

import importlib
from typing import Any

from afss.errors import unknown_choice
from afss.teachers.base import Teacher

# name -> "module:Class"; imported lazily so that the photometric teacher never imports torch.
TEACHERS: dict[str, str] = {
    "grounded-sam2": "afss.teachers.grounded_sam2:GroundedSam2Teacher",
    "sam3": "afss.teachers.sam3:Sam3Teacher",
    "owlv2-sam": "afss.teachers.owlv2_sam:Owlv2SamTeacher",
    "photometric": "afss.teachers.photometric:PhotometricTeacher",
    "salient": "afss.teachers.salient:SalientTeacher",
    "combined": "afss.teachers.combined:CombinedTeacher",  # several teachers, the most confident per image
    "student": "afss.student.model:StudentTeacher",  # a trained student labels like any teacher
}
DEFAULT_TEACHER = "grounded-sam2"


def teacher_class(name: str) -> type[Teacher]:
    if name not in TEACHERS:
        raise unknown_choice("teacher", name, TEACHERS)
    module, cls = TEACHERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_teacher(name: str, **options: Any) -> Teacher:
    """Build a teacher by name, e.g. ``build_teacher("photometric")`` or
    ``build_teacher("grounded-sam2", detector="path/to/grounding-dino-tiny", device="cuda")``."""
    return teacher_class(name).build(**options)


__all__ = ["DEFAULT_TEACHER", "TEACHERS", "Teacher", "build_teacher", "teacher_class"]
