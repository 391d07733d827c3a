"""Rebuild the SPARK-2021 frames of a third-party Roboflow export as images + COCO ground truth.

Source: the public GitHub repository ``A-Arham/Advanced-Navigation-for-Space-Debris-Tracking``,
folder ``Space debris-dataset/`` (Roboflow project ``woah-noah/space-debris-mugw2`` v2, licence
CC BY 4.0): frames of the SPARK-2021 challenge (Unity renders of 11 spacecraft and debris classes
on star fields, with the Earth and the sun in some), stretched to 640 x 640 by Roboflow and annotated
with one box per image in YOLOv8 format (``labels/<stem>.txt``: ``class cx cy w h``, normalised).

Roboflow stored up to three randomly flipped copies of every training frame (``imgNNNNNN_jpg.rf.<hash>``),
and a few frames sit in two splits. This keeps **one image per ``imgNNNNNN`` frame**: the copy from
``valid``/``test`` where there is one (Roboflow augments only ``train``), else the train copy whose
hash sorts first. JPEG bytes are copied unchanged.

Each image also gets ``afss_meta.subset``: ``dev`` for about one frame in five (by a hash of the frame
name, fixed), ``report`` for the rest. ``dev`` frames are the ones to look at while developing; the
``report`` frames were never looked at, so a number on them is not tuned to them.

Usage (``SRC`` is a clone of the repository, its bare git directory, or the ``Space debris-dataset``
folder of a Roboflow YOLOv8 export)::

    git clone https://github.com/A-Arham/Advanced-Navigation-for-Space-Debris-Tracking spark-src
    python scripts/spark2021.py spark-src data/spark2021
    # -> data/spark2021/images/imgNNNNNN.jpg, data/spark2021/gt.json (boxes only)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afss.io.coco import write_coco
from afss.types import ImageLabels, Instance, LabelSet

FOLDER = "Space debris-dataset"
SPLITS = ("valid", "test", "train")  # preference order: Roboflow augments only train
NAME = re.compile(r"^(img\d{6})_jpg\.rf\.([0-9a-f]+)\.jpg$")
LICENCE = ("SPARK-2021 frames via Roboflow Universe woah-noah/space-debris-mugw2 v2 (CC BY 4.0), from "
           "github.com/A-Arham/Advanced-Navigation-for-Space-Debris-Tracking")


class Source:
    """Files of the export, from a folder or a (bare) git directory."""

    def __init__(self, path: Path) -> None:
        self.git = None
        if (path / FOLDER).is_dir():
            self.root = path / FOLDER
        elif (path / "data.yaml").is_file():
            self.root = path
        elif (path / "HEAD").is_file() and (path / "objects").is_dir():
            self.git, self.root = path, Path(FOLDER)
        else:
            raise SystemExit(f"{path}: expected a clone of the repository, its git directory, or a "
                             f"Roboflow YOLOv8 export (a folder with data.yaml)")

    def names(self) -> list[str]:
        if self.git is None:
            return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())
        out = subprocess.run(["git", "--git-dir", str(self.git), "ls-tree", "-r", "--name-only", "HEAD", FOLDER],
                             check=True, capture_output=True, text=True).stdout
        return sorted(line[len(FOLDER) + 1:] for line in out.splitlines())

    def read(self, name: str) -> bytes:
        if self.git is None:
            return (self.root / name).read_bytes()
        return subprocess.run(["git", "--git-dir", str(self.git), "show", f"HEAD:{FOLDER}/{name}"],
                              check=True, capture_output=True).stdout


def class_names(data_yaml: str) -> list[str]:
    """``names: [...]`` of a YOLO data.yaml (one line, as Roboflow writes it; no YAML library needed)."""
    m = re.search(r"^names:\s*\[(.*)\]\s*$", data_yaml, re.MULTILINE)
    if m is None:
        raise SystemExit("data.yaml: no one-line 'names: [...]'")
    return [n.strip().strip("'\"") for n in m.group(1).split(",")]


def label_of(image: str) -> str:
    return image.replace("/images/", "/labels/")[: -len(".jpg")] + ".txt"


def pick_frames(names: list[str]) -> Iterator[tuple[str, str, str]]:
    """``(frame, split, image path)`` for one labelled copy per frame (see the module docstring)."""
    have = set(names)
    best: dict[str, tuple[int, str, str]] = {}
    for name in names:
        split, kind, base = (name.split("/") + ["", ""])[:3]
        m = NAME.match(base)
        if kind != "images" or split not in SPLITS or m is None or label_of(name) not in have:
            continue  # a few test images have their label only under train
        key = (SPLITS.index(split), m.group(2), name)
        if m.group(1) not in best or key < best[m.group(1)]:
            best[m.group(1)] = key
    for frame in sorted(best):
        rank, _, name = best[frame]
        yield frame, SPLITS[rank], name


def subset(frame: str) -> str:
    return "dev" if zlib.crc32(frame.encode()) % 5 == 0 else "report"


def yolo_box(text: str, w: int, h: int, where: str) -> tuple[int, tuple[float, float, float, float]]:
    rows = [r.split() for r in text.strip().splitlines() if r.strip()]
    if len(rows) != 1 or len(rows[0]) != 5:
        raise SystemExit(f"{where}: expected one 'class cx cy w h' line, got {text!r}")
    c, cx, cy, bw, bh = int(rows[0][0]), *(float(v) for v in rows[0][1:])
    x0, y0 = max(0.0, (cx - bw / 2) * w), max(0.0, (cy - bh / 2) * h)
    return c, (x0, y0, min(float(w), (cx + bw / 2) * w), min(float(h), (cy + bh / 2) * h))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="clone / git directory of the repository, or the export folder")
    ap.add_argument("out", type=Path, help="folder to write images/ and gt.json into")
    args = ap.parse_args(argv)
    src = Source(args.source)
    names = class_names(src.read("data.yaml").decode())
    files = src.names()
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for frame, split, name in pick_frames(files):
        label = label_of(name)
        data = src.read(name)
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if rgb is None:
            raise SystemExit(f"{name}: not a readable JPEG (a Git LFS pointer? fetch the real files)")
        h, w = rgb.shape[:2]
        c, box = yolo_box(src.read(label).decode(), w, h, label)
        file_name = f"images/{frame}.jpg"
        (args.out / file_name).write_bytes(data)
        images.append(ImageLabels(
            file_name=file_name, height=h, width=w,
            instances=(Instance(box_xyxy=box, category_id=c + 1, source="gt"),),
            meta={"split": split, "source_file": name, "subset": subset(frame), "class": names[c]}))
    labels = LabelSet(images=tuple(images), categories={k + 1: n for k, n in enumerate(names)},
                      image_root=str(args.out), info={"dataset": "SPARK-2021 (Roboflow export)", "licence": LICENCE})
    path = write_coco(labels, args.out / "gt.json")
    dev = sum(im.meta["subset"] == "dev" for im in images)
    sizes = sorted({im.size_hw for im in images})
    print(f"spark2021: {len(images)} frames ({dev} dev, {len(images) - dev} report), sizes {sizes}, "
          f"{len(names)} classes -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
