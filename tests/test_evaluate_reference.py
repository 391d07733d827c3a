"""The ``reference`` protocol: the paper's protocol as its reference script computes it.

`derived_reference` is that script's algorithm re-derived from its description (docs/evaluation.md,
"The reference protocol") and written plainly, loop by loop, independently of
`afss.evaluate.reference_protocol`: masks read with Pillow as grey ``> 0``, one target per image
(empty ones too), the first prediction of each image, a stable sort by score, float32 counters,
``np.arange`` thresholds, the 101-point grid, and the dictionary lookups of AP50/AP75.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from afss.cli import main
from afss.errors import AfssError
from afss.evaluate import evaluate
from afss.evaluate.reference_masks import ReferenceMasks, read_reference_mask
from afss.evaluate.reference_protocol import reference_ap
from afss.io.coco import write_coco
from afss.types import ImageLabels, Instance, LabelSet

H, W = 48, 64


# -- the reference's algorithm, re-derived ------------------------------------------------------------
def derived_reference(names, first_predictions, mask_files, thresholds=None):
    """``{"AP", "AP50", "AP75", "per_threshold"}`` as the reference script would print them.

    Args:
        names: the evaluated images, in the order the script lists them.
        first_predictions: ``{name: (rle, score)}`` for images with a prediction (the first one stored).
        mask_files: ``{name: path}`` of each image's ground-truth mask.
    """
    targets = {}
    for name in names:
        grey = np.array(Image.open(mask_files[name]).convert("L"))
        targets[name] = mask_utils.encode(np.asfortranarray((grey > 0).astype(np.uint8)))
    ranked = sorted(((name, *first_predictions[name]) for name in names if name in first_predictions),
                    key=lambda item: item[2], reverse=True)
    if thresholds is None:
        thresholds = np.arange(0.50, 0.96, 0.05)
    per_threshold = {}
    for t in thresholds:
        taken = set()
        hits = np.zeros(len(ranked), np.float32)
        misses = np.zeros(len(ranked), np.float32)
        for i, (name, rle, _score) in enumerate(ranked):
            iou = mask_utils.iou([rle], [targets[name]], [0])[0][0]
            if iou >= t and name not in taken:
                hits[i] = 1
                taken.add(name)
            else:
                misses[i] = 1
        hits_so_far, misses_so_far = np.cumsum(hits), np.cumsum(misses)
        recall = hits_so_far / (len(targets) + 1e-12)
        precision = hits_so_far / np.maximum(hits_so_far + misses_so_far, 1e-12)
        grid = np.linspace(0, 1, 101)
        interpolated = np.zeros(len(grid))
        for k, r in enumerate(grid):
            later = recall >= r
            interpolated[k] = precision[later].max() if later.any() else 0.0
        per_threshold[t] = float(interpolated.mean())
    return {"AP": float(np.mean(list(per_threshold.values()))),
            "AP50": per_threshold.get(0.50, float("nan")), "AP75": per_threshold.get(0.75, float("nan")),
            "per_threshold": per_threshold}


# -- generated data -----------------------------------------------------------------------------------
def blob(rng, size_px):
    """A filled rotated ellipse of about ``size_px`` pixels, somewhere in the frame."""
    yy, xx = np.mgrid[:H, :W]
    a = np.sqrt(size_px / np.pi) * rng.uniform(0.7, 1.4)
    b = size_px / (np.pi * a)
    cy, cx, th = rng.uniform(12, H - 12), rng.uniform(12, W - 12), rng.uniform(0, np.pi)
    u, v = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th), -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def save_mask(path, mask, quality=75):
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, **({"quality": quality} if path.suffix == ".jpg" else {}))


def afss_reading(path):
    """What afss's dataset readers take from a mask file: any channel >= 128."""
    return np.array(Image.open(path).convert("L")) >= 128


def generated(tmp_path, *, n=60, ext=".jpg", empty=(), seed=0):
    """Masks on disk (JPEG by default), the COCO ground truth afss's readers make of them, and predictions.

    Predictions: a shifted or grown copy of the target, a random score (with ties), sometimes a
    second, better-scoring instance after the first, and no prediction for every 7th image.
    """
    rng = np.random.default_rng(seed)
    masks_dir = tmp_path / "masks"
    masks_dir.mkdir()
    gt_images, pred_images, firsts, files = [], [], {}, {}
    for k in range(n):
        name = f"img_{k:03d}.jpg"
        mask = np.zeros((H, W), bool) if k in empty else blob(rng, rng.uniform(80, 600))
        path = masks_dir / (name[:-4] + ext)
        save_mask(path, mask)
        files[name] = path
        read = afss_reading(path)
        gt_images.append(ImageLabels(name, H, W, (Instance.from_mask(read, category_id=1),) if read.any() else ()))
        if k % 7 == 3:
            continue
        shifted = np.roll(read if read.any() else blob(rng, 200), (rng.integers(-3, 4), rng.integers(-3, 4)), (0, 1))
        if rng.random() < 0.3:
            shifted |= np.roll(shifted, 1, axis=1)
        score = round(float(rng.uniform(0.2, 1.0)), 1)  # one decimal: many ties
        insts = [Instance.from_mask(shifted, score=score)]
        if rng.random() < 0.25:
            insts.append(Instance.from_mask(read if read.any() else shifted, score=min(1.0, score + 0.05)))
        pred_images.append(ImageLabels(name, H, W, tuple(insts)))
        firsts[name] = (_bytes(insts[0].rle), score)
    gt = LabelSet(tuple(gt_images), image_root=str(tmp_path))
    pred = LabelSet(tuple(pred_images), image_root=str(tmp_path))
    return gt, pred, [im.file_name for im in gt_images], firsts, files, masks_dir


def _bytes(rle):
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}


# -- afss equals the re-derived reference ------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_protocol_equals_the_rederived_reference(tmp_path, seed):
    gt, pred, names, firsts, files, masks_dir = generated(tmp_path, empty=(5, 17), seed=seed)
    expected = derived_reference(names, firsts, files)
    row = evaluate(gt, pred, protocols=("reference",), iou_types=("segm",), gt_masks=masks_dir).get("reference", "segm")
    assert row.ap == pytest.approx(expected["AP"], abs=1e-9)
    assert row.ap50 == pytest.approx(expected["AP50"], abs=1e-9)
    assert np.isnan(expected["AP75"])  # the script's lookup of 0.75 finds no key
    at_075 = derived_reference(names, firsts, files, thresholds=[0.75])["per_threshold"][0.75]
    assert row.ap75 == pytest.approx(at_075, abs=1e-9)
    assert row.num_gt == len(names) and row.num_pred == len(firsts)
    assert 0.05 < row.ap < 0.95  # a non-trivial case


def test_cli_reference_equals_the_rederived_reference(tmp_path, capsys):
    gt, pred, names, firsts, files, masks_dir = generated(tmp_path, empty=(9,))
    write_coco(gt, tmp_path / "gt.json")
    write_coco(pred, tmp_path / "pred.json")
    code = main(["eval", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                 "--protocol", "reference", "--gt-masks", str(masks_dir)])
    out, _ = capsys.readouterr()
    assert code == 0
    expected = derived_reference(names, firsts, files)
    row = json.loads((tmp_path / "pred.metrics.json").read_text())["rows"][0]
    assert row["protocol"] == "reference" and row["iou_type"] == "segm"
    assert row["ap"] == pytest.approx(expected["AP"], abs=1e-9)
    assert row["ap50"] == pytest.approx(expected["AP50"], abs=1e-9)
    assert out.splitlines()[2].split()[:5] == ["reference", "segm", "all", f"{100 * expected['AP']:.1f}",
                                               f"{100 * expected['AP50']:.1f}"]
    assert "AP75 is at IoU exactly 0.75" in out and "1 image(s) have an empty ground-truth mask" in out
    assert "masks only" in out  # bbox asked by default, and the reference has no box protocol


def test_reference_ap_keeps_float32_counters():
    # 10 targets, 9 found first: recall 0.9 is float32 0.89999998 < 0.9, so grid point 0.90 is lost.
    ap, recall = reference_ap(np.ones(9), np.linspace(1, 0.5, 9), 10, np.array([0.5]))
    assert ap[0] == pytest.approx(90 / 101, abs=1e-12) and recall[0] == pytest.approx(0.9, abs=1e-7)


# -- where paper and reference differ, and where they must not ----------------------------------------
def one_pred_per_image(gt, drop=()):
    return LabelSet(tuple(ImageLabels(im.file_name, H, W, im.instances) for k, im in enumerate(gt.images)
                          if k not in drop and im.instances), image_root=gt.image_root)


def scores_of(gt, pred, masks_dir):
    report = evaluate(gt, pred, protocols=("paper", "reference"), iou_types=("segm",), gt_masks=masks_dir)
    return report.get("paper", "segm"), report.get("reference", "segm")


def test_paper_and_reference_agree_on_exact_png_masks(tmp_path):
    gt, _, *_, masks_dir = generated(tmp_path, n=20, ext=".png")
    paper, ref = scores_of(gt, one_pred_per_image(gt), masks_dir)
    assert paper.ap == ref.ap == 1.0


def test_float32_recall_loses_a_grid_point(tmp_path):
    gt, _, *_, masks_dir = generated(tmp_path, n=10, ext=".png")
    paper, ref = scores_of(gt, one_pred_per_image(gt, drop=(4,)), masks_dir)  # 9 of 10 found
    assert paper.ap == pytest.approx(91 / 101, abs=1e-12)
    assert ref.ap == pytest.approx(90 / 101, abs=1e-12)


def test_jpeg_ringing_is_foreground_for_the_reference(tmp_path):
    gt, _, names, _, files, masks_dir = generated(tmp_path, n=20, ext=".jpg")
    grey = read_reference_mask(files[names[0]])
    assert grey.sum() > afss_reading(files[names[0]]).sum()  # the ringing around the mask
    paper, ref = scores_of(gt, one_pred_per_image(gt), masks_dir)  # predictions = afss's reading
    assert paper.ap == 1.0 and ref.ap < 0.9


def test_an_empty_mask_is_an_unreachable_target_for_the_reference(tmp_path):
    gt, _, *_, masks_dir = generated(tmp_path, n=20, ext=".png", empty=(3, 8, 11, 15))
    paper, ref = scores_of(gt, one_pred_per_image(gt), masks_dir)
    assert (paper.num_gt, ref.num_gt) == (16, 20)
    assert paper.ap == 1.0 and ref.ap == pytest.approx(81 / 101, abs=1e-12)  # recall stops at 0.8


def test_the_reference_scores_the_first_prediction_not_the_best(tmp_path):
    gt, _, *_, masks_dir = generated(tmp_path, n=4, ext=".png")
    wrong = Instance.from_mask(np.roll(gt.images[0].instances[0].mask, 20, axis=1), score=0.5)
    pred = LabelSet(tuple(im.replace(instances=(wrong, im.instances[0].replace(score=0.9)))
                          for im in gt.images))
    paper, ref = scores_of(gt, pred, masks_dir)
    assert paper.ap == 1.0 and ref.ap < 0.5


# -- finding and reading masks ------------------------------------------------------------------------
def test_tango_masks_are_found_beside_images_and_read_by_their_red_channel(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 2] = 200  # deep space
    rgb[10:20, 10:30] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "a_mask.png")
    gt = LabelSet((ImageLabels("a.png", H, W),), image_root=str(tmp_path), info={"dataset": "tango"})
    mask = ReferenceMasks(gt).read(gt.images[0])
    assert mask.sum() == 200 and mask[10:20, 10:30].all()


def test_mask_lookup_order(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("sub/x.jpg", "y.png", "z_mask.jpg"):
        save_mask(tmp_path / name, np.ones((H, W), bool))
    gt = LabelSet(tuple(ImageLabels(n, H, W) for n in ("sub/x.jpg", "other/y.jpg", "z.jpg")))
    masks = ReferenceMasks(gt, tmp_path)
    assert [masks.path(im).relative_to(tmp_path).as_posix() for im in gt.images] == ["sub/x.jpg", "y.png", "z_mask.jpg"]


@pytest.mark.parametrize("case, needle", [
    ("no-folder", "give the masks folder (--gt-masks DIR"),
    ("folder-missing", "no such masks folder"),
    ("masks-without-reference", "read only by the reference protocol"),
    ("per-class", "scores one class"),
    ("mask-missing", "no mask file for image 'img_001.jpg'"),
    ("mask-size", "mask is 10x10 (HxW)"),
])
def test_bad_input_is_one_line(tmp_path, case, needle):
    gt, pred, names, _, files, masks_dir = generated(tmp_path, n=3, ext=".png")
    kwargs = {"protocols": ("reference",), "gt_masks": masks_dir}
    if case == "no-folder":
        kwargs.pop("gt_masks")
    elif case == "folder-missing":
        kwargs["gt_masks"] = tmp_path / "nope"
    elif case == "masks-without-reference":
        kwargs["protocols"] = ("paper",)
    elif case == "per-class":
        kwargs["per_class"] = True
    elif case == "mask-missing":
        files[names[1]].unlink()
    elif case == "mask-size":
        save_mask(files[names[2]], np.ones((10, 10), bool))
    with pytest.raises(AfssError) as err:
        evaluate(gt, pred, **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    gt, pred, *_ = generated(tmp_path, n=3, ext=".png")
    write_coco(gt, tmp_path / "gt.json")
    write_coco(pred, tmp_path / "pred.json")
    code = main(["eval", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"),
                 "--protocol", "reference"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("afss: error: ") and "--gt-masks" in err
