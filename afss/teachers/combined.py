"""Two or more teachers as one: per image, the label of whichever member is most confident.

Each image is labelled by every member (default: ``photometric`` and ``salient``) and the rule
decides what to keep. The one rule, ``best_score``, keeps the instances of the member whose top-1
instance scores highest (ties go to the earlier member; a member that finds nothing loses to one
that finds something). It was chosen on 60 afss synth mixed scenes of seed 11 among three simple
combinations (``benchmarks/salient_teacher.py``) before the held-out seeds were looked at, and on
those it beat both members (docs/teachers_salient.md). It relies on the members' scores meaning
roughly the same thing: the photometric score is a logistic estimate of the mask IoU, the salient
score the mask's stability (SAM's stability score), both in [0, 1] and both ranking labels by IoU.

Each instance keeps its member's name in ``source`` and its member's cues in ``scores``, plus
``<member>_score``: every member's top-1 score on that image (0 where it found nothing), so a
refine filter or an analysis can see how close the call was.

`segment_boxes` (refinement re-prompts with the fused box) is the ``segmenter`` member's: by
default the first member (``photometric``: fast), ``segmenter=salient`` runs the network on each
box's crop, ``segmenter=none`` has none. Refinement's default follows that member's own choice
(`Teacher.refine_mask_fusion`): both ``photometric`` and ``salient`` vote the views' masks, so the
crops are run only with ``--mask-fusion segmenter``. `segment_boxes` sees only an image and boxes,
so it cannot follow the member that won that image's label.

Options (``-o key=value``, ``teacher.options`` in a run config, ``build_teacher("combined", ...)``):
``members`` (teacher names), ``rule``, ``segmenter``, ``top1`` (passed to every member: ``afss label
--top1 / --all``), and each member's own options either as a mapping under its name (``salient:
{model: isnet, threads: 1}``) or as dotted keys (``-o salient.threads=1``).

Example:
    >>> teacher = CombinedTeacher.build(salient={"model": "isnet", "threads": 2})  # doctest: +SKIP
    >>> [[inst]] = teacher.label([rgb])  # doctest: +SKIP
    >>> inst.source, inst.score, inst.scores["photometric_score"], inst.scores["salient_score"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from afss.errors import AfssError, AfssValueError, unknown_choice
from afss.teachers.base import Teacher, check_batch, teacher_provenance
from afss.types import Instance

__all__ = ["DEFAULT_MEMBERS", "RULES", "CombinedConfig", "CombinedTeacher"]

DEFAULT_MEMBERS = ("photometric", "salient")
RULES = ("best_score",)
_NO_SEGMENTER = "none"
_WHAT = "combined teacher"


@dataclass(frozen=True)
class CombinedConfig:
    """Options of the combined teacher.

    Attributes:
        members: the teachers labelled with, by name (two or more, distinct; not ``combined``).
        rule: how an image's labels are chosen: ``best_score`` (the member whose top-1 scores highest).
        segmenter: the member whose `segment_boxes` refinement uses, ``none`` (refinement votes the
            views' masks), or ``""``: the first member.
        member_options: each member's build options by member name (missing: its defaults).
    """

    members: tuple[str, ...] = DEFAULT_MEMBERS
    rule: str = "best_score"
    segmenter: str = ""
    member_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from afss.teachers import TEACHERS

        members = self.members
        if isinstance(members, str) or not isinstance(members, (list, tuple)) \
                or not all(isinstance(m, str) for m in members):
            raise AfssError(f"{_WHAT}: members must be a list of teacher names, like {list(DEFAULT_MEMBERS)}, "
                            f"got {members!r}")
        if len(members) < 2 or len(set(members)) != len(members):
            raise AfssError(f"{_WHAT}: members must be two or more different teachers, got {list(members)}")
        allowed = [t for t in TEACHERS if t != "combined"]
        for m in members:
            if m not in allowed:
                raise unknown_choice(f"{_WHAT} member", m, allowed)
        object.__setattr__(self, "members", tuple(members))
        if self.rule not in RULES:
            raise unknown_choice(f"{_WHAT} rule", self.rule, RULES)
        if self.segmenter not in ("", _NO_SEGMENTER, *members):
            raise unknown_choice(f"{_WHAT} segmenter", self.segmenter, (_NO_SEGMENTER, *members))
        object.__setattr__(self, "segmenter", self.segmenter or members[0])
        for m in self.member_options:
            if m not in members:
                raise AfssError(f"{_WHAT}: options for {m!r}, which is not a member ({', '.join(members)})")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CombinedConfig:
        """From flat build options: ``members``, ``rule``, ``segmenter``, ``<member>: {...}`` and
        ``<member>.<key>: value``; unknown keys get a close-match suggestion."""
        own = {k: options[k] for k in ("members", "rule", "segmenter") if k in options}
        shared = {k: options[k] for k in ("top1",) if k in options}  # afss label --top1 / --all
        for key in ("rule", "segmenter"):
            if key in own and not isinstance(own[key], str):
                like = {"rule": "best_score", "segmenter": "salient"}[key]
                raise AfssError(f"{_WHAT} option {key}={own[key]!r}: expected a string, like {like!r}")
        members = own.get("members", DEFAULT_MEMBERS)
        config = cls(**own)  # checks the members before their options are sorted out
        per: dict[str, dict[str, Any]] = {m: {} for m in config.members}
        for key, value in options.items():
            if key in own or key in shared:
                continue
            name, dot, sub = key.partition(".")
            if name not in per:
                raise unknown_choice(f"{_WHAT} option", key, ["members", "rule", "segmenter", "top1", *members])
            if dot:
                per[name][sub] = value
            elif isinstance(value, Mapping):
                per[name].update(value)
            else:
                raise AfssError(f"{_WHAT} option {key}={value!r}: expected the member's options as a mapping, "
                                f"like {key}: {{threads: 1}} (or -o {key}.threads=1)")
        per = {m: {**shared, **o} for m, o in per.items()}
        return dataclasses.replace(config, member_options={m: o for m, o in per.items() if o})


class CombinedTeacher(Teacher):
    """Several teachers as one (see the module docstring)."""

    name: ClassVar[str] = "combined"

    def __init__(self, config: CombinedConfig, members: Sequence[Teacher]) -> None:
        if [t.name for t in members] != list(config.members):
            raise AfssValueError(f"members {[t.name for t in members]} do not match the config's {list(config.members)}")
        self.config = config
        self.members = list(members)
        by_name = {t.name: t for t in self.members}
        self.segmenter = by_name.get(config.segmenter)

    @classmethod
    def build(cls, **options: Any) -> CombinedTeacher:
        """Build every member from its options (loading their models once)."""
        from afss.teachers import build_teacher

        config = CombinedConfig.from_options(options)
        members = []
        for m in config.members:
            try:
                members.append(build_teacher(m, **config.member_options.get(m, {})))
            except AfssError as e:
                raise AfssError(f"{_WHAT}: {e}") from e
        return cls(config, members)

    @classmethod
    def check(cls, **options: Any) -> None:
        """The options and every member's (each member's own `check`: no model is loaded)."""
        from afss.teachers import teacher_class

        config = CombinedConfig.from_options(options)
        for m in config.members:
            try:
                teacher_class(m).check(**config.member_options.get(m, {}))
            except AfssError as e:
                raise AfssError(f"{_WHAT}: {e}") from e

    @property
    def options(self) -> dict[str, Any]:
        """What `build` takes to rebuild this teacher (``afss refine`` reuses the recorded options)."""
        return {"members": list(self.config.members), "rule": self.config.rule, "segmenter": self.config.segmenter,
                **{t.name: teacher_provenance(t)["options"] for t in self.members}}

    @property
    def can_segment_boxes(self) -> bool:
        return self.segmenter is not None and self.segmenter.can_segment_boxes

    @property
    def refine_mask_fusion(self) -> str:
        return self.segmenter.refine_mask_fusion if self.can_segment_boxes else "vote"

    # -- the verbs ---------------------------------------------------------------------------------

    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft") -> list[list[Instance]]:
        images = check_batch(images, prompt, self.name)
        per_member = [t.label(images, prompt) for t in self.members]
        return [self._choose([labels[k] for labels in per_member]) for k in range(len(images))]

    def segment_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> list[Instance]:
        """The ``segmenter`` member's masks for the boxes (see the module docstring)."""
        if not self.can_segment_boxes:
            raise NotImplementedError(f"combined teacher: segmenter {self.config.segmenter!r} cannot segment boxes")
        return self.segmenter.segment_boxes(image, boxes_xyxy)

    # -- internals ---------------------------------------------------------------------------------

    def _choose(self, found: list[list[Instance]]) -> list[Instance]:
        """``best_score``: the instances of the member whose top-1 scores highest, each with every
        member's top-1 score added to ``scores``."""
        tops = [max((i.score for i in f), default=None) for f in found]
        if all(t is None for t in tops):
            return []
        winner = max((k for k, t in enumerate(tops) if t is not None), key=lambda k: tops[k])  # first on ties
        added = {f"{t.name}_score": round(float(s or 0.0), 6) for t, s in zip(self.members, tops)}
        return [dataclasses.replace(i, source=i.source or self.members[winner].name, scores={**i.scores, **added})
                for i in found[winner]]
