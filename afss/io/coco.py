"""COCO instances JSON <-> `LabelSet`, losslessly.

What afss writes is plain COCO that pycocotools, CVAT and FiftyOne read, plus a few extra keys they
ignore: ``score`` on every annotation (1.0 for ground truth), ``source``, optional ``scores`` and
``parts`` (RLE) on annotations; ``afss_error`` and ``afss_meta`` on images; run provenance and the
image root (relative to the JSON file) in ``info``. Masks are RLE with ``counts`` as ``str``.
Reading also accepts polygon and uncompressed-RLE segmentations and files without ``score``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from afss.errors import AfssError, AfssValueError
from afss.io.atomic import _json_default, write_text_atomic
from afss.io.validate import (
    ABSOLUTE_HINT,
    MAX_PIXELS,
    MAX_SIDE,
    check_counts,
    check_file_name,
    check_int,
    check_mapping,
    check_number,
    check_polygons,
    check_text,
)
from afss.types import ImageLabels, Instance, LabelSet, Rle, rle_box_xyxy

__all__ = ["entries_to_images", "entry_json", "labelset_from_coco", "labelset_to_coco", "read_coco", "read_json_file",
           "write_coco"]


def read_coco(path: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
              allow_absolute_paths: bool = False, predictions: bool = False) -> LabelSet:
    """Read a COCO instances JSON file.

    Args:
        path: the JSON file.
        image_root: folder the ``file_name`` entries are relative to. Default: the root recorded by
            afss in ``info["image_root"]`` (relative to the JSON file), else the JSON file's folder.
        allow_absolute_paths: accept ``file_name`` entries that are absolute or lead out of the image
            root with ``..`` (refused by default: a labels file should not open files elsewhere).
        predictions: the file holds predictions: an annotation without a ``score`` beside others with
            one is refused (read alone it would rank first, as 1.0; pycocotools refuses it too).

    Raises:
        AfssError: the file is missing, unreadable, not JSON, or not valid COCO instances; the message
            names the file, the record and the field (see `afss.io.validate`).
    """
    data = read_json_file(path)
    path = Path(path)
    if image_root is None:
        info = data.get("info") if isinstance(data, dict) else None
        recorded = info.get("image_root") if isinstance(info, dict) else None
        if recorded is not None:
            recorded = check_text(recorded, str(path), "info.image_root")
        image_root = (path.parent / recorded) if recorded is not None else path.parent
    return labelset_from_coco(data, image_root=os.path.normpath(image_root), where=str(path),
                              allow_absolute_paths=allow_absolute_paths, predictions=predictions)


def as_labelset(labels: Any, what: str = "labels") -> LabelSet:
    """``labels`` itself, or the COCO JSON file a path names (`read_coco`): what the stages' Python
    functions take where the CLI takes a file. Anything else is one line saying what to pass."""
    if isinstance(labels, LabelSet):
        return labels
    if isinstance(labels, (str, os.PathLike)):
        if Path(labels).is_dir():
            raise AfssError(f"{what}: {os.fspath(labels)} is a folder, expected a COCO JSON file or a LabelSet")
        try:
            return read_coco(labels)
        except AfssError as e:  # its hint names a keyword this caller does not take
            if ABSOLUTE_HINT not in str(e):
                raise
            raise AfssError(str(e).replace(ABSOLUTE_HINT, "to accept it, pass read_coco(path, allow_absolute_paths=True) "
                                                          "instead of the path")) from None
    hint = ""
    if isinstance(labels, (list, tuple)):
        hint = (" (image files: afss.label.images_from_folder(folder), or LabelSet([ImageLabels(path, 0, 0), ...]))"
                if labels and all(isinstance(v, (str, os.PathLike)) for v in labels)
                else " (a list of ImageLabels: LabelSet(images=[...]))")
    raise AfssValueError(f"{what}: expected a LabelSet or the path of a COCO JSON file, got "
                         f"{type(labels).__name__}{hint}")


def read_json_file(path: str | os.PathLike) -> Any:
    """Parse a JSON file; every way that can fail is one `AfssError` line naming the file."""
    path = Path(path)
    try:  # os.stat, not is_file(): a link loop or a name too long is not "no such file"
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise AfssError(f"{path}: no such file") from None
    except OSError as e:
        raise AfssError(f"{path}: cannot open ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise AfssError(f"{path}: is a folder, expected a COCO JSON file")
    try:
        with path.open(encoding="utf-8-sig") as f:  # -sig: a file saved with a BOM (Windows editors)
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # ValueError: JSONDecodeError, and integers over Python's digit limit
        raise AfssError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise AfssError(f"{path}: JSON nested too deeply for the decoder") from None
    except MemoryError:
        raise AfssError(f"{path}: JSON too large to load into memory") from None
    except OSError as e:
        raise AfssError(f"{path}: cannot read ({e.strerror or e})") from e


def write_coco(labels: LabelSet, path: str | os.PathLike, *, indent: int | None = None) -> Path:
    """Write atomically as COCO instances JSON; returns the path. The image root (the current folder
    where ``labels.image_root`` is ``None``) is stored relative to the JSON file so the folder can be
    moved as a whole.

    Raises:
        AfssError: a value `read_coco` would refuse (a score outside [0, 1] or NaN from a teacher of
            one's own, a category the file does not list, ...), named as reading would, before anything
            is written: no stage writes a file the next one cannot read.
    """
    if not isinstance(labels, LabelSet):  # write_coco(path, labels), or a list of images
        raise AfssValueError(f"write_coco(labels, path): expected a LabelSet first, got {type(labels).__name__}")
    path = Path(path)
    data = labelset_to_coco(labels)
    # no image root means the current folder: recorded as such, or reading back would look beside the file
    root = Path(labels.image_root if labels.image_root is not None else ".").resolve()
    try:
        data["info"]["image_root"] = os.path.relpath(root, path.parent.resolve())
    except ValueError:  # different drive on Windows
        data["info"]["image_root"] = str(root)
    text = json.dumps(data, indent=indent, default=_json_default)
    # the reader's own checks (absolute file names allowed: reading them is a flag away)
    labelset_from_coco(json.loads(text), where=f"{path} (not written)", allow_absolute_paths=True)
    write_text_atomic(path, text)
    return path


def labelset_to_coco(labels: LabelSet) -> dict[str, Any]:
    images, annotations = [], []
    for im in labels.images:
        entry: dict[str, Any] = {
            "id": im.image_id, "file_name": im.file_name, "height": im.height, "width": im.width,
        }
        if im.error is not None:
            entry["afss_error"] = im.error
        if im.meta:
            entry["afss_meta"] = dict(im.meta)
        images.append(entry)
        for inst in im.instances:
            annotations.append(_annotation(inst, im.image_id, len(annotations) + 1))
    info = dict(labels.info)
    info.pop("image_root", None)
    return {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v, "supercategory": "object"} for k, v in labels.categories.items()],
    }


def _annotation(inst: Instance, image_id: int, ann_id: int) -> dict[str, Any]:
    x0, y0, x1, y1 = inst.box_xyxy
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": inst.category_id,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": inst.area,
        "iscrowd": int(inst.iscrowd),
        "score": inst.score,
    }
    if inst.rle is not None:
        ann["segmentation"] = {"size": list(inst.rle["size"]), "counts": inst.rle["counts"]}
    if inst.source:
        ann["source"] = inst.source
    if inst.scores:
        ann["scores"] = dict(inst.scores)
    if inst.parts:
        ann["parts"] = {k: {"size": list(r["size"]), "counts": r["counts"]} for k, r in inst.parts.items()}
    return ann


def labelset_from_coco(data: Any, *, image_root: str | None = None, where: str = "<coco>",
                       allow_absolute_paths: bool = False, predictions: bool = False) -> LabelSet:
    """Build a `LabelSet` from parsed COCO JSON; ``where`` names the source in error messages.

    Every value is checked by `afss.io.validate` first (types, finite numbers, ranges, RLE that adds
    up to the image size, file names under the image root unless ``allow_absolute_paths``).

    Raises:
        AfssError: one line naming the file, the record and the field.
    """
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        if not isinstance(data, dict):
            found = f"a {type(data).__name__}"
        elif "images" in data:
            found = f"'images' holding a {type(data['images']).__name__}"
        else:
            found = f"keys {sorted(data)[:6]}"
        raise AfssError(f"{where}: not a COCO instances file (expected an object with an 'images' list, found {found})")
    info = dict(check_mapping(data.get("info"), where, "info"))
    if "image_root" in info and info["image_root"] is not None:
        check_text(info["image_root"], where, "info.image_root")
    categories = _categories(data.get("categories"), where)

    images: dict[int, dict[str, Any]] = {}
    for k, im in enumerate(data["images"]):
        at = f"{where}: image {k}"
        if not isinstance(im, Mapping):
            raise AfssError(f"{at}: expected an object, found a {type(im).__name__}")
        for key in ("id", "file_name", "height", "width"):
            if key not in im:
                raise AfssError(f"{at}: {key} is missing (an image needs id, file_name, height and width)")
        iid = check_int(im["id"], at, "id", minimum=0, maximum=2**63 - 1)
        at = f"{where}: image {k} (id {iid})"
        name = check_file_name(im["file_name"], at, allow_absolute=allow_absolute_paths)
        h = check_int(im["height"], at, "height", minimum=0, maximum=MAX_SIDE)
        w = check_int(im["width"], at, "width", minimum=0, maximum=MAX_SIDE)
        if h * w > MAX_PIXELS:
            raise AfssError(f"{at}: {w}x{h} (W x H) is more than {MAX_PIXELS} pixels")
        if iid in images:
            raise AfssError(f"{where}: image id {iid} appears twice")
        error = im.get("afss_error")
        if error is not None:
            check_text(error, at, "afss_error")
        meta = check_mapping(im.get("afss_meta"), at, "afss_meta")
        images[iid] = {"file_name": name, "height": h, "width": w, "image_id": iid,
                       "error": error, "meta": meta, "instances": []}

    annotations = data.get("annotations")
    if annotations is not None and not isinstance(annotations, list):
        raise AfssError(f"{where}: annotations: expected a list, found a {type(annotations).__name__}")
    for k, ann in enumerate(annotations or []):
        if not isinstance(ann, Mapping):
            raise AfssError(f"{where}: annotation {k} is not an object")
        iid = ann.get("image_id")
        if isinstance(iid, bool) or not isinstance(iid, int) or iid not in images:
            raise AfssError(f"{where}: annotation {_ann_label(ann, k)} refers to unknown image_id {iid!r}")
        im = images[iid]
        at = f"{where}: annotation {_ann_label(ann, k)}"
        try:
            im["instances"].append(_instance(ann, im["height"], im["width"], at, categories))
        except (TypeError, ValueError) as e:  # a rule of the carriers, e.g. x1 < x0
            raise AfssError(f"{at}: {e}") from e
    if predictions:  # checked after every annotation's own fields, which name the field
        unscored = [k for k, a in enumerate(annotations or []) if "score" not in a]
        if unscored and len(unscored) < len(annotations):
            raise AfssError(f"{where}: {len(unscored)} of {len(annotations)} predictions have no score, e.g. "
                            f"annotation {_ann_label(annotations[unscored[0]], unscored[0])}; each needs one to be ranked")

    return LabelSet(
        images=tuple(ImageLabels(**im) for im in images.values()),
        categories=categories,
        image_root=image_root,
        info={k: v for k, v in info.items() if k != "image_root"},
    )


def _ann_label(ann: Mapping[str, Any], k: int) -> str:
    """Its ``id`` where it has a usable one (what COCO tools show), else ``#k``, its place in the list."""
    ann_id = ann.get("id")
    return str(ann_id) if isinstance(ann_id, int) and not isinstance(ann_id, bool) else f"#{k}"


def _categories(value: Any, where: str) -> dict[int, str]:
    if value is None or value == []:
        return {1: "spacecraft"}
    if not isinstance(value, list):
        raise AfssError(f"{where}: categories: expected a list of objects, found a {type(value).__name__}")
    categories: dict[int, str] = {}
    for k, c in enumerate(value):
        at = f"{where}: category {k}"
        if not isinstance(c, Mapping):
            raise AfssError(f"{at}: expected an object with id and name, found {type(c).__name__} {c!r:.40}")
        if "id" not in c:
            raise AfssError(f"{at}: id is missing")
        cid = check_int(c["id"], at, "id", minimum=0, maximum=2**31 - 1)
        if cid == 0:  # Roboflow's exports list the project as category 0, used by no annotation (one using
            continue  # 0, "no category" to COCO tools, is refused below with its own line)
        name = c.get("name", cid)
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            raise AfssError(f"{at} (id {cid}): name: expected a string, found {name!r:.40}")
        if cid in categories:
            raise AfssError(f"{where}: category id {cid} appears twice")
        categories[cid] = str(name)
    return categories


def _instance(ann: Mapping[str, Any], h: int, w: int, where: str, categories: Mapping[int, str]) -> Instance:
    rle = _segmentation_rle(ann.get("segmentation"), h, w, where)
    if ann.get("bbox") is not None:
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            n = f"has {len(bbox)} numbers" if isinstance(bbox, (list, tuple)) else f"is a {type(bbox).__name__}"
            raise AfssError(f"{where}: bbox {n}, expected 4 [x, y, w, h]")
        x, y = (check_number(v, where, "bbox", minimum=-MAX_SIDE, maximum=2 * MAX_SIDE) for v in bbox[:2])
        bw, bh = (check_number(v, where, "bbox", minimum=0, maximum=2 * MAX_SIDE) for v in bbox[2:])
        if x < -max(w, 1) or y < -max(h, 1) or x + bw > 2 * max(w, 1) or y + bh > 2 * max(h, 1):
            raise AfssError(f"{where}: bbox {list(bbox)} lies far outside its {w}x{h} (W x H) image")
        box = (x, y, x + bw, y + bh)
    elif rle is not None:
        box = rle_box_xyxy(rle)
    else:
        raise AfssError(f"{where}: has neither bbox nor segmentation")
    parts = {}
    for name, seg in check_mapping(ann.get("parts"), where, "parts").items():
        parts[str(name)] = _segmentation_rle(seg, h, w, f"{where}: part {name}")
        if parts[str(name)] is None:
            raise AfssError(f"{where}: part {name}: empty segmentation")
    category_id = check_int(ann.get("category_id", 1), where, "category_id", minimum=1, maximum=2**31 - 1)
    if category_id not in categories:
        raise AfssError(f"{where}: category_id {category_id} is not among the file's categories "
                        f"({', '.join(map(str, sorted(categories)))})")
    score = ann.get("score", 1.0)
    if score is None:
        raise AfssError(f"{where}: score is null, expected a number in [0, 1]")
    scores = {str(k): check_number(v, where, f"scores.{k}", minimum=-1e9, maximum=1e9)
              for k, v in check_mapping(ann.get("scores"), where, "scores").items()}
    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1):  # True and False compare equal to 1 and 0
        raise AfssError(f"{where}: iscrowd: expected 0 or 1, found {iscrowd!r:.40}")
    return Instance(
        box_xyxy=box,
        rle=rle,
        score=check_number(score, where, "score", minimum=0.0, maximum=1.0),
        category_id=category_id,
        source=check_text(ann.get("source", ""), where, "source"),
        iscrowd=bool(iscrowd),
        scores=scores,
        parts=parts,
    )


def _segmentation_rle(seg: Any, h: int, w: int, where: str) -> Rle | None:
    """Any COCO segmentation (polygons, uncompressed or compressed RLE) -> compressed RLE, str counts,
    after `afss.io.validate` has bounded what pycocotools will be asked to allocate."""
    if seg is None or (isinstance(seg, list) and len(seg) == 0):
        return None
    if isinstance(seg, Mapping):
        if "counts" not in seg or "size" not in seg:
            raise AfssError(f"{where}: segmentation: RLE needs 'size' and 'counts'")
        size = seg["size"]
        if not isinstance(size, (list, tuple)) or len(size) != 2 or list(size) != [h, w]:
            raise AfssError(f"{where}: segmentation: mask size {size!r:.40} differs from its image size [{h}, {w}]")
        counts = check_counts(seg["counts"], h, w, where)
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        else:
            return {"size": [h, w], "counts": counts}
    elif isinstance(seg, list):
        if h == 0 or w == 0:
            raise AfssError(f"{where}: segmentation: polygons on an image of size {w}x{h}")
        polys = check_polygons(seg, h, w, where)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    else:
        raise AfssError(f"{where}: segmentation is a {type(seg).__name__}, expected polygons or RLE")
    counts = rle["counts"]
    return {"size": [h, w], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def entry_json(image: ImageLabels) -> str:
    """One image and its instances as one line of JSON (its COCO image entry and annotations): how the
    journal stores finished images, and how engines send them between processes."""
    coco = labelset_to_coco(LabelSet(images=(image,)))
    return json.dumps({"image": coco["images"][0], "annotations": coco["annotations"]}, default=_json_default)


def entries_to_images(lines: Sequence[str], where: str = "<entries>") -> list[ImageLabels]:
    """`entry_json` lines back to images (in order; ids renumbered, annotation ids too)."""
    entries = [json.loads(line) for line in lines]
    images = [{**e["image"], "id": k} for k, e in enumerate(entries, 1)]
    anns = [{**a, "image_id": k, "id": 0} for k, e in enumerate(entries, 1) for a in e["annotations"]]
    data = {"images": images, "annotations": [{**a, "id": j} for j, a in enumerate(anns, 1)]}
    ids = [e["image"]["id"] for e in entries]
    out = labelset_from_coco(data, where=where, allow_absolute_paths=True).images
    return [im.replace(image_id=iid) for im, iid in zip(out, ids, strict=True)]
