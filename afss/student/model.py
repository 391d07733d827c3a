"""A trained student is a teacher: YOLO-seg weights (``.pt``, or ``.onnx`` from `afss export`) behind
the `Teacher` contract, so that ``afss label``, ``afss refine`` (TTA + WBF) and ``afss predict`` run it
unchanged.

``.pt`` files are Python pickles: loading one runs code from it. Only load weights you trust (your own
training runs, or files from a source you trust); ONNX files carry no code.

Example:
    >>> student = build_teacher("student", weights="runs/student/weights/best.pt")  # doctest: +SKIP
    >>> [[inst]] = student.label([rgb])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from afss.devices import unavailable
from afss.errors import AfssError
from afss.teachers.base import Teacher, check_options
from afss.types import Instance, mask_box_xyxy

__all__ = ["DEFAULT_IMGSZ", "StudentTeacher", "check_device", "check_rescorer", "load_yolo", "trained_imgsz"]

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pt", ".onnx")
DEFAULT_IMGSZ = 512
"""Inference size of a checkpoint that records no training size (`trained_imgsz`)."""
DEFAULTS: dict[str, Any] = {"weights": "", "imgsz": None, "conf": 0.05, "iou": 0.7, "device": "cpu",
                            "max_det": 10, "half": False, "box": "mask", "rescore": None}
BOX_SOURCES = ("mask", "head")
_DEVICE = re.compile(r"(cpu|mps|cuda|cuda:\d+|\d+(,\d+)*)")


def check_device(device: Any, what: str = "student", *, here: bool = True) -> None:
    """One line unless ``device`` is a device Ultralytics takes (``None``: its choice, ``cpu``,
    ``mps``, ``cuda``, ``cuda:N`` or GPU indices such as ``0`` or ``0,1``) and, with ``here``, one this
    machine has. Checked before any work: Ultralytics itself fails only at the first image (predict:
    once per image, and the run still "succeeds") or after the labels were read and judged (train)."""
    if device is None:
        return
    if not isinstance(device, str) or not _DEVICE.fullmatch(device.strip().lower()):
        raise AfssError(f"{what}: device must be cpu, mps, cuda, cuda:N or GPU indices such as 0 or 0,1, got {device!r}")
    if not here or importlib.util.find_spec("torch") is None:  # without torch no student runs: its error says how
        return
    problem = unavailable(device)
    if problem:
        raise AfssError(f"{what}: device {device!r} requested, but {problem}; use cpu")


def load_yolo(weights: str | os.PathLike, *, what: str = "weights") -> Any:
    """An Ultralytics ``YOLO`` model of a segmentation checkpoint, with one-line errors.

    Raises:
        AfssError: the file is missing, not a YOLO checkpoint, or not a segmentation model.
    """
    from afss.student.env import ultralytics

    path = Path(weights)
    if not path.is_file():
        raise AfssError(f"{path}: no such {what} file (expected a YOLO-seg .pt or an .onnx from afss export)")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise AfssError(f"{path}: {what} must be a .pt or .onnx file, found {path.suffix or 'no extension'!r}")
    if path.suffix.lower() == ".onnx":
        onnx_input_size(path)  # a garbage file fails here, once, not per image at predict time
    yolo = ultralytics().YOLO
    try:
        model = yolo(str(path), task="segment")
    except Exception as e:  # a corrupt or foreign file fails in many ways
        raise AfssError(f"{path}: not a YOLO model ({_first_line(e)})") from e
    task = getattr(model, "task", None)
    inner = getattr(model, "model", None)
    if path.suffix.lower() == ".pt":
        task = getattr(inner, "task", None) or task
        head = type(inner.model[-1]).__name__ if hasattr(inner, "model") else ""
        if task != "segment" or "Segment" not in head:
            raise AfssError(f"{path}: a YOLO {task or 'unknown'} model ({head or 'no head'}), expected a segmentation "
                            "model (YOLO-seg, e.g. yolo11n-seg)")
    return model


def trained_imgsz(model: Any) -> int:
    """The image size a loaded ``.pt`` student was trained at (Ultralytics keeps it in the checkpoint),
    else `DEFAULT_IMGSZ`: a student runs best at the size it learnt (the shipped synth start, trained
    at 320: 54.3 box AP on `make demo`'s scored scenes at 320, 38.0 at 512)."""
    imgsz = getattr(model, "overrides", {}).get("imgsz")
    if isinstance(imgsz, (list, tuple)) and imgsz:
        imgsz = max(imgsz)
    return int(imgsz) if isinstance(imgsz, int) and not isinstance(imgsz, bool) and 32 <= imgsz <= 4096 else DEFAULT_IMGSZ


def _first_line(error: Exception, limit: int = 160) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def onnx_input_size(path: str | os.PathLike) -> int | None:
    """The square input size an exported student was built for (``None`` if dynamic).

    Raises:
        AfssError: the file is not an ONNX model onnxruntime can load, or not a YOLO student (its
            outputs say so): checked here, once, rather than image by image at predict time.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise AfssError("ONNX students need onnxruntime: pip install 'afss[student]'") from e
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise AfssError(f"{path}: not an ONNX model onnxruntime can load ({_first_line(e)})") from e
    outputs = [o.shape for o in session.get_outputs()]
    # detections (1, 4+classes[+32], N), and a segmenting student's mask prototypes (1, 32, h, w)
    if not outputs or len(outputs) > 2 or len(outputs[0]) != 3 or (len(outputs) == 2 and len(outputs[1]) != 4):
        raise AfssError(f"{path}: not a YOLO student (outputs {outputs}; expected (1, 4+classes+32, N) "
                        "detections and (1, 32, h, w) mask prototypes): export one with afss export")
    shape = session.get_inputs()[0].shape
    return int(shape[-1]) if len(shape) == 4 and isinstance(shape[-1], int) else None


class StudentTeacher(Teacher):
    """YOLO-seg student as a teacher: the top instances per image, masks at the image's size.

    Options (``build_teacher("student", **options)``): ``weights`` (``.pt`` or ``.onnx``, required),
    ``imgsz`` (inference size; default: the size a ``.pt`` was trained at, `trained_imgsz`; ONNX files
    have their own), ``conf`` (minimum confidence), ``iou``
    (NMS IoU), ``device`` (``cpu``, ``cuda``, ``0``; ``None``: Ultralytics' choice), ``max_det``, ``half``, and ``box``:

    * ``"mask"`` (default): an instance's box is the tight box of its mask at the image's size, as
      the teachers' and the datasets' boxes are. Ultralytics crops each mask to the box its head
      regressed, so this only ever tightens that box. Measured on `make demo`'s scored scenes: box
      AP 41.1 -> 43.7 for the stage-1 synth-pretrained start and 41.0 -> 48.4 after distillation (a few
      hundred pseudo-labels teach the mask branch more than the box regression).
    * ``"head"``: the box head's own box (the only one of a student without masks).

    ``rescore`` (a teacher name, e.g. ``"photometric"``, built with its default options; it must be
    able to segment a given box): each instance's score becomes the geometric mean of the student's
    class confidence and that teacher's confidence in the instance's box (`Teacher.segment_boxes`'s
    ``mask_score``), and the instances are re-ranked by it. A student's class confidence ranks its
    boxes poorly on imagery unlike its training's (SPARK-2021: Spearman with the IoU 0.27-0.39); the
    teacher's calibrated confidence tracks the IoU there (docs/student.md). ``scores`` keep both
    (``student_score``, ``rescore_score``).

    Without ``rescore`` an instance's score is the student's class confidence. There is no promptable
    segmenter, so refinement fuses its views by mask voting, and the prompt is recorded but not read (a
    student knows one thing: what it was trained on).
    """

    name: ClassVar[str] = "student"

    @property
    def categories(self) -> dict[int, str] | None:
        """The classes it was trained on (Ultralytics' class k is category k + 1, as its labels are written)."""
        names = getattr(self.model, "names", None)
        return {int(k) + 1: str(v) for k, v in names.items()} if isinstance(names, dict) and names else None

    def __init__(self, model: Any, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options
        self.rescorer: Teacher | None = None
        if options.get("rescore") is not None:
            from afss.teachers import build_teacher

            self.rescorer = build_teacher(options["rescore"])
            if not self.rescorer.can_segment_boxes:
                raise AfssError(f"student: rescore={options['rescore']!r} cannot segment a given box, so it cannot "
                                "score the student's boxes (photometric can)")

    @classmethod
    def check(cls, **options: Any) -> None:
        cls._checked(options)

    @classmethod
    def _checked(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Every option with its default filled in, checked; nothing loaded."""
        # the device is checked by check_device below, which also takes None (Ultralytics' choice, as a
        # training's `device: null` is: the student that run trains relabels on that device, not on the CPU)
        opts = {**DEFAULTS, **check_options({k: v for k, v in options.items() if k != "device"}, DEFAULTS, "student")}
        opts["device"] = options.get("device", DEFAULTS["device"])
        if not opts["weights"]:
            raise AfssError("student: weights=PATH is required (a .pt from afss train, or an .onnx from afss export)")
        imgsz = opts["imgsz"]
        if isinstance(imgsz, float) and imgsz.is_integer():
            imgsz = opts["imgsz"] = int(imgsz)
        if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or not 32 <= imgsz <= 4096):
            raise AfssError(f"student: imgsz must be a whole number in [32, 4096], got {imgsz!r}")
        if opts["rescore"] is not None:
            check_rescorer(opts["rescore"])
        check_device(opts["device"])
        if opts["box"] not in BOX_SOURCES:
            raise AfssError(f"student: box must be one of {', '.join(BOX_SOURCES)}, got {opts['box']!r}")
        for key in ("conf", "iou"):
            if not 0.0 <= opts[key] <= 1.0:
                raise AfssError(f"student: {key} must be in [0, 1], got {opts[key]}")
        max_det = opts["max_det"]
        if isinstance(max_det, bool) or not isinstance(max_det, int) or max_det < 1:
            raise AfssError(f"student: max_det must be a whole number >= 1, got {max_det!r}")
        return opts

    @classmethod
    def build(cls, **options: Any) -> StudentTeacher:
        opts = cls._checked(options)
        if opts["half"] and str(opts["device"]).lower() == "cpu":  # Ultralytics drops it there without a word
            log.warning("student: half=true needs a GPU; on the CPU the student runs in full precision")
        opts["weights"] = str(Path(opts["weights"]).resolve()) if Path(opts["weights"]).exists() else opts["weights"]
        model = load_yolo(opts["weights"])
        if opts["weights"].lower().endswith(".onnx"):  # an exported model runs at the size it was built for
            built = onnx_input_size(opts["weights"])
            if built and opts["imgsz"] not in (None, built):
                log.warning("student: %s was exported at %d px, so it runs at %d, not imgsz %d (export the .pt "
                            "again with --imgsz %d for that size)", opts["weights"], built, built, opts["imgsz"],
                            opts["imgsz"])
            opts["imgsz"] = built or opts["imgsz"] or DEFAULT_IMGSZ
        elif opts["imgsz"] is None:  # a checkpoint: the size it was trained at
            opts["imgsz"] = trained_imgsz(model)
        return cls(model, opts)

    def label(self, images: Sequence[np.ndarray], prompt: str = "spacecraft") -> list[list[Instance]]:
        from afss.teachers.base import check_batch

        # a grey array was flipped left-right by the channel swap below, RGBA read as ABGR: refused instead
        images = check_batch(images, prompt, "student")
        if not images:
            return []
        o = self.options
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]  # Ultralytics takes arrays as BGR (OpenCV)
        # a large input size runs fewer images a call: 8 at 4096 px asked about 44 GB and were killed
        per_call = max(1, PIXELS_PER_CALL // (int(o["imgsz"] or DEFAULT_IMGSZ) ** 2))
        results = []
        for start in range(0, len(bgr), per_call):
            results += self.model.predict(bgr[start:start + per_call], imgsz=o["imgsz"], conf=o["conf"], iou=o["iou"],
                                          device=o["device"], max_det=o["max_det"], half=o["half"], retina_masks=True,
                                          verbose=False)
        found = [_instances(r, im.shape[:2], mask_boxes=o["box"] == "mask") for r, im in zip(results, images, strict=True)]
        if self.rescorer is not None:
            found = [_rescored(self.rescorer, im, insts) for im, insts in zip(images, found, strict=True)]
        return found


PIXELS_PER_CALL = 8 * 1280 * 1280  # input pixels one predict call takes at most (128 images at 320 px, 1 at 4096)


def check_rescorer(name: Any, what: str = "student: rescore must be") -> None:
    """One line, starting with ``what``, unless ``name`` names a teacher that can score a given box
    with its default options (what ``rescore`` takes), checked without loading it (`Teacher.check`)."""
    from afss.teachers import TEACHERS, teacher_class

    choices = sorted(t for t in TEACHERS if t not in ("student", "sam3"))
    if not isinstance(name, str) or name not in choices:
        raise AfssError(f"{what} a teacher name ({', '.join(choices)}; sam3 has no box segmenter by default), "
                        f"got {name!r}")
    teacher_class(name).check()


def _rescored(teacher: Teacher, image: np.ndarray, instances: list[Instance]) -> list[Instance]:
    """``instances`` scored by sqrt(student confidence x the teacher's confidence in each box), best first."""
    if not instances:
        return instances
    segmented = teacher.segment_boxes(image, np.array([i.box_xyxy for i in instances], dtype=float))
    out = []
    for inst, seg in zip(instances, segmented, strict=True):
        theirs = max(0.0, float(seg.scores.get("mask_score", seg.score)))
        score = round(float(np.sqrt(inst.score * theirs)), 6)
        # box_score too: refinement picks and fuses a student's boxes by it (afss.refine.image)
        out.append(dataclasses.replace(inst, score=score, scores={**inst.scores, "box_score": score,
                                                                  "student_score": inst.score,
                                                                  "rescore_score": round(theirs, 6)}))
    return sorted(out, key=lambda i: -i.score)


def _instances(result: Any, size_hw: tuple[int, int], *, mask_boxes: bool = True) -> list[Instance]:
    """One Ultralytics result -> instances, best first; masks at the image's size (``retina_masks``);
    boxes from the masks where ``mask_boxes`` and the mask is not empty, else the head's."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().numpy().astype(float)
    conf = boxes.conf.cpu().numpy().astype(float)
    cls = boxes.cls.cpu().numpy().astype(int)
    masks = result.masks.data.cpu().numpy() > 0.5 if result.masks is not None else None
    h, w = size_hw
    out = []
    for k in np.argsort(-conf):
        x0, y0, x1, y1 = np.clip(xyxy[k], 0, [w, h, w, h])
        mask = None
        if masks is not None:
            mask = masks[k]
            if mask.shape != (h, w):  # letterbox rounding: bring to the image's size
                import cv2

                mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        score = round(float(conf[k]), 6)
        kw = {"box_xyxy": (x0, y0, max(x0, x1), max(y0, y1)), "score": score, "category_id": int(cls[k]) + 1,
              "source": "student", "scores": {"box_score": score}}
        if mask is None:
            out.append(Instance(**kw))
            continue
        if mask_boxes and mask.any():
            kw["box_xyxy"] = mask_box_xyxy(mask)
        out.append(Instance.from_mask(mask, **kw))
    return out
