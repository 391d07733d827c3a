"""Engines: where the images of a label, refine or predict run are processed, behind one interface.

* ``local`` (default): this process, batch by batch (`afss.engines.local.LocalEngine`);
* ``ray``: Ray Data actors across the cores of this machine or the GPUs of a cluster
  (`afss.engines.ray_engine.RayEngine`, optional extra ``afss[ray]``).

Both yield results in input order to the same journal and COCO writer, so the output does not depend
on the engine, and a killed run of either is continued by rerunning it.

Example:
    >>> labels = label_images(teacher, images, out="labels.json",
    ...                       engine=build_engine("ray", num_workers=8, gpus_per_worker=1))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from afss.engines.base import Engine, TeacherJob
from afss.errors import AfssError, unknown_choice

__all__ = ["ENGINES", "Engine", "TeacherJob", "build_engine"]

ENGINES = ("local", "ray")


def build_engine(name: str = "local", **options: Any) -> Engine:
    """``build_engine("local")`` or ``build_engine("ray", address=..., num_workers=..., gpus_per_worker=...)``;
    ``None`` options are ignored."""
    options = {k: v for k, v in options.items() if v is not None}
    if name == "local":
        from afss.engines.local import LocalEngine

        if options:  # Ray's options would do nothing here: say so rather than run differently than asked
            raise AfssError(f"the local engine takes no options, got {', '.join(sorted(options))} "
                            "(Ray's: build_engine('ray', ...))")
        return LocalEngine()
    if name == "ray":
        from afss.engines.ray_engine import RayEngine

        return RayEngine(**options)
    raise unknown_choice("engine", name, ENGINES)
