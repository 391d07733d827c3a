"""Export a trained student for deployment: ONNX, and int8 ONNX for on-board use.

ONNX comes from Ultralytics' own exporter (fixed input size, simplified with onnxslim). The int8
model is onnxruntime's static quantisation (QDQ, per-channel weights) calibrated on images of the
kind the student will see: by default the training images recorded next to the weights
(``<run>/data/images/train``; for afss distill's ``student.pt``, its last round's), else a folder the
caller names. Both run in `afss predict` and as
the ``student`` teacher (``weights=model.onnx``).

Example:
    >>> export_student("runs/student/weights/best.pt", "model.onnx", int8=True)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from afss.errors import AfssError
from afss.io.outputs import check_output_path

log = logging.getLogger(__name__)

__all__ = ["export_student", "letterbox"]

MAX_CALIBRATION_IMAGES = 64


def letterbox(rgb: np.ndarray, size: int) -> np.ndarray:
    """``(1, 3, size, size)`` float32 in [0, 1]: the image scaled to fit, centred on grey 114, as
    Ultralytics prepares its inputs (so calibration sees what inference sees)."""
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else rgb
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = resized
    return (canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


def _calibration_images(weights: Path, calib: str | os.PathLike | None) -> list[Path]:
    from afss.datasets.common import find_images

    folder = Path(calib) if calib is not None else weights.parent.parent / "data" / "images" / "train"
    if calib is None and not folder.is_dir():  # afss distill's DIR/student.pt: its last round's training images
        rounds = {int(m.group(1)): p for p in weights.parent.glob("round-*/train/data/images/train")
                  if (m := re.fullmatch(r"round-(\d+)", p.parts[-5]))}
        folder = rounds[max(rounds)] if rounds else folder
    if not folder.is_dir():
        where = "" if calib is not None else (f" ({weights} is not in an afss train or distill run, whose training "
                                              "images it uses)")
        raise AfssError(f"int8 calibration needs images: {folder} is not a folder{where}; pass --calib DIR, images "
                        "like those the student will see")
    files = find_images(folder)
    if not files:
        raise AfssError(f"{folder}: no calibration images found")
    step = max(1, len(files) // MAX_CALIBRATION_IMAGES)
    return files[::step][:MAX_CALIBRATION_IMAGES]


def export_student(weights: str | os.PathLike, out: str | os.PathLike, *, imgsz: int | None = None, int8: bool = False,
                   calib: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Export ``weights`` (a YOLO-seg ``.pt``) to ONNX at ``out``; with ``int8``, quantised.

    Args:
        weights: the trained student.
        out: the ``.onnx`` file to write.
        imgsz: the model's fixed input size (square); default: the size ``weights`` was trained at
            (`afss.student.model.trained_imgsz`).
        int8: write an int8 model (static QDQ quantisation calibrated on ``calib`` images).
        calib: folder of calibration images (default: the run's training images).
        overwrite: replace an existing ``out`` (an ONNX file records nothing of where it came from,
            so an existing one is never replaced silently).

    Raises:
        AfssError: a bad weights file or ``out``, no calibration images, onnx/onnxruntime missing.
    """
    from afss.student.model import load_yolo, trained_imgsz

    weights = Path(weights)
    out = check_output_path(out, inputs=[weights], flag="--out", example="model.onnx", suffixes=(".onnx",))
    if out.exists() and not overwrite:
        raise AfssError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    if weights.suffix.lower() != ".pt":
        raise AfssError(f"{weights}: export takes a .pt checkpoint, found {weights.suffix!r}")
    imgsz = _export_size(imgsz)
    model = load_yolo(weights)
    imgsz = imgsz if imgsz is not None else trained_imgsz(model)
    calibration = _calibration_images(weights, calib) if int8 else []
    try:
        import onnx  # noqa: F401  - Ultralytics would try to pip-install it
        import onnxslim  # noqa: F401
    except ImportError as e:
        raise AfssError("export needs onnx and onnxslim: pip install 'afss[student]'") from e
    with tempfile.TemporaryDirectory(prefix="afss-export-") as tmp:
        local = Path(tmp) / "model.pt"
        shutil.copyfile(weights, local)  # Ultralytics writes its .onnx next to the .pt: keep that out of the run
        model = load_yolo(local)
        try:
            exported = Path(model.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, verbose=False))
        except Exception as e:
            raise AfssError(f"{weights}: ONNX export failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        if int8:
            exported = _quantise(exported, Path(tmp) / "model.int8.onnx", calibration, imgsz)
        tmp_out = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(exported, tmp_out)
        os.replace(tmp_out, out)
    return out


STRIDE = 32  # YOLO's largest stride: Ultralytics builds the model at the next multiple of it
FEW_CALIBRATION_IMAGES = 20  # under this, int8 scores were seen to tie and lose their ranking


def _export_size(imgsz: Any) -> int | None:
    """The input size to export at: a whole number in [32, 4096], rounded up to a multiple of `STRIDE`
    (Ultralytics does so itself, silently; int8 calibration at the size asked then failed)."""
    if imgsz is None:
        return None
    if isinstance(imgsz, bool) or not isinstance(imgsz, int) or not 32 <= imgsz <= 4096:
        raise AfssError(f"export: imgsz must be a whole number in [32, 4096], got {imgsz!r}")
    size = -(-imgsz // STRIDE) * STRIDE
    if size != imgsz:
        log.warning("export: imgsz %d is not a multiple of the model's stride %d: exported at %d", imgsz, STRIDE, size)
    return size


def _quantise(model: Path, out: Path, images: list[Path], imgsz: int) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from afss.io.images import ImageReadError, load_image

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.name, self.files, self.used, self.unreadable = name, iter(images), 0, []

        def get_next(self):
            for f in self.files:
                try:
                    batch = {self.name: letterbox(load_image(f).rgb, imgsz)}
                except ImageReadError as e:
                    self.unreadable.append(str(e))
                    continue
                self.used += 1
                return batch
            return None

    import onnx

    graph = onnx.load(str(model)).graph
    name = graph.input[0].name
    # The head's decoding (box distances in pixels, class probabilities in [0, 1] and mask coefficients,
    # concatenated into one output) must stay float: one int8 scale for all of them rounds every class
    # probability to 0 (measured: 0.0 AP with it quantised). Its convolutions are quantised like the rest.
    last = max((int(m.group(1)) for n in graph.node if (m := re.search(r"/model\.(\d+)/", n.name))), default=-1)
    keep_float = [n.name for n in graph.node if f"/model.{last}/" in n.name and n.op_type not in ("Conv",)]
    pre = out.with_name("pre.onnx")
    quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
    reader = Reader(name)
    try:
        quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, nodes_to_exclude=keep_float)
    except ValueError as e:
        if reader.used:
            raise
        raise AfssError(f"int8 calibration: none of the {len(images)} calibration images could be read "
                        f"(e.g. {reader.unreadable[0] if reader.unreadable else 'none given'})") from e
    if reader.unreadable:
        log.warning("int8 calibration used %d images; %d more could not be read (e.g. %s)", reader.used,
                    len(reader.unreadable), reader.unreadable[0])
    if reader.used < FEW_CALIBRATION_IMAGES:
        log.warning("int8 calibration on only %d image(s): the scores may tie and lose their ranking (seen with "
                    "one image); give --calib a folder of about 100 images like those the model will see", reader.used)
    return out
