"""Writers for the native layouts of SPARK-2024, SPEED+ and TANGO (see DATASETS.md), and plain COCO.

Each format has a per-image writer (runs in the worker that rendered the image, returns the image's
path relative to the output folder) and a finisher (runs once at the end: CSV, label lists, camera).

* ``coco``       ``images/<index:06d>.png`` (lossless; grayscale scenes as 1-channel PNG).
* ``spark``      ``images/<Class>/<split>/image_<index+1:05d>_img.jpg``, RGB JPEG colour masks at
  ``mask/<Class>/<split>/image_<index+1:05d>_layer.jpg`` (red body, blue panels), ``<split>.csv``.
  The class is the spacecraft family in CamelCase (``WingedBox``, ``Cylinder``, ``Tango``, ``CubeSat``).
* ``speedplus``  ``camera.json``, ``synthetic/images/img<index+1:06d>.jpg`` (gray JPEG),
  ``synthetic/masks/img<index+1:06d>.png`` (0/255), ``synthetic/{train,validation}.json`` with poses.
* ``tango``      ``Tango_RoI_and_SS/<split>_SS_img/img<index+1:06d>.png`` and ``..._mask.png``
  (R = 255 spacecraft, G = 255 visible Earth, B = 255 deep space).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from afss.errors import AfssError
from afss.io.atomic import write_json_atomic, write_text_atomic
from afss.io.images import save_image
from afss.synth.scene import Scene
from afss.types import ImageLabels

FORMATS = ("coco", "spark", "speedplus", "tango")
SPARK_CLASSES = {"winged_box": "WingedBox", "cylinder": "Cylinder", "tango": "Tango", "cubesat": "CubeSat"}
SPEEDPLUS_FOV_DEG = 2 * math.degrees(math.atan(960 / 2988.5795163815555))  # SPEED+ camera, horizontal
SPEEDPLUS_SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
TANGO_SPLITS = {"train": "train", "val": "test", "test": "test"}
JPEG_QUALITY = 95


def _gray(scene: Scene) -> np.ndarray:
    return scene.image[..., 0] if scene.gray else (scene.image.astype(np.float32) @ [0.299, 0.587, 0.114]
                                                   + 0.5).astype(np.uint8)


def _save_mask_jpeg(path: Path, rgb: np.ndarray) -> None:
    """A colour mask as JPEG without chroma subsampling at quality 100, so that thin parts survive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [
        cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise AfssError(f"{path}: cannot encode JPEG")
    buf.tofile(path)


def write_image(fmt: str, out: Path, scene: Scene, index: int, split: str) -> str:
    """Write one scene's files in ``fmt`` under ``out``; returns the image path relative to ``out``."""
    if fmt == "coco":
        rel = f"images/{index:06d}.png"
        save_image(out / rel, scene.image[..., 0] if scene.gray else scene.image)
    elif fmt == "spark":
        cls = SPARK_CLASSES[scene.meta["family"]]
        rel = f"images/{cls}/{split}/image_{index + 1:05d}_img.jpg"
        save_image(out / rel, scene.image, quality=JPEG_QUALITY)
        colour = np.zeros(scene.image.shape, np.uint8)
        colour[scene.parts["body"], 0] = 255
        colour[scene.parts["panels"], 2] = 255
        _save_mask_jpeg(out / f"mask/{cls}/{split}/image_{index + 1:05d}_layer.jpg", colour)
    elif fmt == "speedplus":
        rel = f"synthetic/images/img{index + 1:06d}.jpg"
        save_image(out / rel, _gray(scene), quality=JPEG_QUALITY)
        save_image(out / f"synthetic/masks/img{index + 1:06d}.png", scene.mask.astype(np.uint8) * 255)
    elif fmt == "tango":
        base = f"Tango_RoI_and_SS/{TANGO_SPLITS.get(split, split)}_SS_img/img{index + 1:06d}"
        rel = base + ".png"
        save_image(out / rel, scene.image)
        m = np.zeros(scene.image.shape, np.uint8)
        m[..., 0] = scene.mask * 255
        m[..., 1] = scene.earth * 255
        m[..., 2] = ~(scene.mask | scene.earth) * 255
        save_image(out / (base + "_mask.png"), m)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return rel


def finish(fmt: str, out: Path, labels: Sequence[ImageLabels], split: str) -> None:
    """Write the per-dataset files of ``fmt`` (CSV, label JSON, camera) after all images."""
    if fmt == "spark":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["Image name", "Mask name", "Class", "Bounding box"])
        for im in labels:
            name = Path(im.file_name).name
            box = im.instances[0].box_xyxy if im.instances else (0, 0, 0, 0)
            w.writerow([name, name.replace("_img.", "_layer."), SPARK_CLASSES[im.meta["family"]],
                        "({}, {}, {}, {})".format(*(round(v) for v in box))])
        write_text_atomic(out / f"{split}.csv", buf.getvalue())
    elif fmt == "speedplus":
        rows = [{"filename": Path(im.file_name).name, "q_vbs2tango_true": im.meta["pose"]["quaternion_wxyz"],
                 "r_Vo2To_vbs_true": im.meta["pose"]["translation_m"]} for im in labels]
        name = SPEEDPLUS_SPLITS.get(split, split)
        write_json_atomic(out / "synthetic" / f"{name}.json", rows, indent=1)
        for other in ("train", "validation"):
            if not (out / "synthetic" / f"{other}.json").exists():
                write_json_atomic(out / "synthetic" / f"{other}.json", [])
        if labels:
            k = labels[0].meta["intrinsics"]
            pitch = 5.86e-6
            write_json_atomic(out / "camera.json", {
                "Nu": k["width"], "Nv": k["height"], "ppx": pitch, "ppy": pitch,
                "fx": k["fx"] * pitch, "fy": k["fy"] * pitch, "ccx": k["cx"], "ccy": k["cy"],
                "cameraMatrix": k["K"], "distCoeffs": [0.0, 0.0, 0.0, 0.0, 0.0],
            }, indent=1)
