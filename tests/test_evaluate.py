"""afss.evaluate: pinned AP values on hand-built rectangles, and equality with pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from afss.errors import AfssError
from afss.evaluate import EvalReport, evaluate
from afss.evaluate.paper_protocol import single_target_ap
from afss.io.coco import labelset_to_coco, write_coco
from afss.types import ImageLabels, Instance, LabelSet

H = W = 64


def rect(x0: int, y0: int, x1: int, y1: int, *, score: float = 1.0, cat: int = 1, crowd: bool = False,
         size: tuple[int, int] = (H, W)) -> Instance:
    """A filled rectangle covering columns x0..x1-1 and rows y0..y1-1: its box is exactly (x0, y0, x1, y1)."""
    m = np.zeros(size, bool)
    m[y0:y1, x0:x1] = True
    return Instance.from_mask(m, score=score, category_id=cat, iscrowd=crowd)


def image(name: str, *instances: Instance, error: str | None = None, **kw) -> ImageLabels:
    return ImageLabels(name, H, W, tuple(instances), error=error, **kw)


def gt_set(n: int = 4) -> LabelSet:
    """n images, one 40x40 square each at a different place."""
    return LabelSet(tuple(image(f"img/{k}.png", rect(2 + 3 * k, 5 + 2 * k, 42 + 3 * k, 45 + 2 * k)) for k in range(n)))


def shifted(gt: LabelSet, dx: int, *, ids_reversed: bool = True) -> LabelSet:
    """Every square moved right by dx (IoU (40-dx)/(40+dx)); image ids and order differ from gt."""
    ims = []
    for k, im in enumerate(gt.images):
        x0, y0, x1, y1 = (int(v) for v in im.instances[0].box_xyxy)
        ims.append(ImageLabels("./" + im.file_name, H, W, (rect(x0 + dx, y0, x1 + dx, y1, score=0.5 + 0.1 * k),),
                               image_id=100 + k))
    return LabelSet(tuple(reversed(ims)) if ids_reversed else tuple(ims))


ROWS = [(p, t) for p in ("coco", "paper") for t in ("segm", "bbox")]


@pytest.mark.parametrize(("protocol", "iou_type"), ROWS)
def test_ground_truth_against_itself_scores_one(protocol, iou_type):
    report = evaluate(gt_set(), gt_set())
    row = report.get(protocol, iou_type)
    assert (row.ap, row.ap50, row.ap75, row.ar) == (1.0, 1.0, 1.0, 1.0)
    assert (row.num_images, row.num_gt, row.num_pred) == (4, 4, 4)


@pytest.mark.parametrize(("protocol", "iou_type"), ROWS)
def test_iou_063_gives_ap50_one_and_ap75_zero(protocol, iou_type):
    dx = 9  # IoU = 31 / 49 = 0.633: passes t = 0.50, 0.55, 0.60, fails from 0.65
    pred = shifted(gt_set(), dx)
    report = evaluate(gt_set(), pred)
    row = report.get(protocol, iou_type)
    assert row.ap50 == 1.0
    assert row.ap75 == 0.0
    assert row.ap == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize(("protocol", "iou_type"), ROWS)
def test_empty_predictions_score_zero(protocol, iou_type):
    gt = gt_set()
    empty = LabelSet(tuple(image(im.file_name) for im in gt.images))
    row = evaluate(gt, empty).get(protocol, iou_type)
    assert (row.ap, row.ap50, row.ap75, row.num_pred) == (0.0, 0.0, 0.0, 0)


def test_paper_protocol_missing_prediction_lowers_recall():
    gt = gt_set(4)
    pred = LabelSet((
        image("img/0.png", rect(2, 5, 42, 45, score=0.9)),   # hit
        image("img/1.png", rect(60, 60, 64, 64, score=0.8)),  # miss: IoU 0, a false positive ranked second
        image("img/2.png", rect(8, 9, 48, 49, score=0.7)),   # hit
    ))                                                        # img/3: no prediction entry -> a miss
    report = evaluate(gt, pred, protocols=("paper",))
    row = report.get("paper", "segm")
    # recall after each prediction: .25, .25, .50; precision 1, .5, .667 -> envelope 1, .667, .667.
    # Recall points 0.00..0.25 (26) get 1, 0.26..0.50 (25) get 2/3, the rest 0.
    expected = (26 + 25 * 2 / 3) / 101
    assert row.ap == pytest.approx(expected, abs=1e-12)
    assert row.ap50 == pytest.approx(expected, abs=1e-12)
    assert row.ar == pytest.approx(0.5, abs=1e-12)
    assert (row.num_gt, row.num_pred) == (4, 3)
    assert report.num_unpredicted == 1


def test_single_target_ap_perfect_but_incomplete():
    ap, recall = single_target_ap(np.ones(3), np.array([0.3, 0.9, 0.5]), num_targets=4)
    np.testing.assert_allclose(ap, 76 / 101)  # recall points 0.00..0.75 at precision 1
    np.testing.assert_allclose(recall, 0.75)
    ap, _ = single_target_ap(np.ones(2), np.ones(2), num_targets=0)
    assert np.isnan(ap).all()


def test_paper_protocol_merges_several_ground_truth_instances_into_one_target():
    # Body and panel annotated apart; the prediction covers both: one target, IoU 1.
    gt = LabelSet((image("a.png", rect(10, 10, 30, 30), rect(30, 10, 50, 30)),))
    pred = LabelSet((image("a.png", rect(10, 10, 50, 30, score=0.9), rect(10, 10, 30, 30, score=0.1)),))
    report = evaluate(gt, pred, protocols=("paper",))
    for iou_type in ("segm", "bbox"):
        row = report.get("paper", iou_type)
        assert (row.ap, row.num_gt, row.num_pred) == (1.0, 1, 1)


def two_class_sets() -> tuple[LabelSet, LabelSet]:
    cats = {1: "probe", 2: "station"}
    gt = LabelSet((
        image("a.png", rect(0, 0, 40, 40, cat=1)),
        image("b.png", rect(10, 10, 50, 50, cat=1)),
        image("c.png", rect(5, 5, 45, 45, cat=2)),
        image("d.png", rect(15, 0, 55, 40, cat=2)),
    ), categories=cats)
    pred = LabelSet((
        image("d.png", rect(24, 0, 64, 40, cat=2, score=0.8)),  # IoU 31/49 = 0.633
        image("c.png", rect(5, 5, 45, 45, cat=2, score=0.9)),
        image("b.png", rect(10, 10, 50, 50, cat=1, score=0.6)),
        image("a.png", rect(0, 0, 40, 40, cat=1, score=0.7)),
    ), categories=cats)
    return gt, pred


@pytest.mark.parametrize(("protocol", "iou_type"), ROWS)
def test_per_class_with_two_classes(protocol, iou_type):
    gt, pred = two_class_sets()
    report = evaluate(gt, pred, per_class=True)
    probe = report.get(protocol, iou_type, "probe")
    station = report.get(protocol, iou_type, "station")
    every = report.get(protocol, iou_type)
    # station: t <= 0.60 both hits (AP 1); t >= 0.65 the 0.9 one hits first: recall .5 at precision 1.
    station_ap = (3 * 1.0 + 7 * 51 / 101) / 10
    assert probe.ap == 1.0
    assert station.ap == pytest.approx(station_ap, abs=1e-12)
    assert (station.ap50, station.ap75) == (1.0, pytest.approx(51 / 101, abs=1e-12))
    assert every.ap == pytest.approx((1.0 + station_ap) / 2, abs=1e-12)
    assert (probe.num_gt, station.num_gt, every.num_gt) == (2, 2, 4)


def test_collapsed_classes_and_category_selection():
    gt, pred = two_class_sets()
    report = evaluate(gt, pred, protocols=("coco",), iou_types=("bbox",))
    assert [r.category for r in report.rows] == ["all"]
    assert any("collapsed" in n for n in report.notes)
    only = evaluate(gt, pred, categories=["probe"], protocols=("coco",), iou_types=("bbox",))
    assert (only.get("coco", "bbox").ap, only.get("coco", "bbox").num_gt) == (1.0, 2)
    with pytest.raises(AfssError, match="did you mean 'probe'"):
        evaluate(gt, pred, categories=["prob"])
    # the predictions' file numbers its categories the other way round: chosen by name, as --per-class does
    # (by the ground truth's ids, the station predictions were scored as probes: AP 0 here)
    swapped = LabelSet(tuple(im.replace(instances=tuple(i.replace(category_id=3 - i.category_id) for i in im.instances))
                             for im in pred.images), categories={2: "probe", 1: "station"})
    again = evaluate(gt, swapped, categories=["probe"], protocols=("coco",), iou_types=("bbox",))
    assert (again.get("coco", "bbox").ap, again.get("coco", "bbox").num_pred) == (1.0, 2)


def test_per_class_rejects_unknown_prediction_category():
    gt, _ = two_class_sets()
    pred = LabelSet((image("a.png", rect(0, 0, 40, 40, cat=1)),), categories={1: "spacecraft"})
    with pytest.raises(AfssError, match="'spacecraft' .*not a ground-truth category"):
        evaluate(gt, pred, per_class=True)


def test_images_matched_by_file_name_and_errors():
    gt = gt_set(3)
    stray = LabelSet((*shifted(gt, 0).images, image("other/9.png")))
    with pytest.raises(AfssError, match=r"1 prediction image\(s\) are not in ground truth.*'other/9.png'"):
        evaluate(gt, stray)
    none = LabelSet((image("x.png"), image("y.png")))
    with pytest.raises(AfssError, match="no prediction image matches ground truth.*compare file names"):
        evaluate(gt, none)
    small = LabelSet((ImageLabels("img/0.png", 32, 32),))
    with pytest.raises(AfssError, match="is 32x32"):
        evaluate(gt, small)


def test_error_images_excluded_and_counted():
    gt = LabelSet((*gt_set(2).images, image("bad.png", error="unreadable image")))
    report = evaluate(gt, gt_set(2))
    assert (report.num_images, report.num_excluded) == (2, 1)
    assert report.get("paper", "segm").ap == 1.0
    assert any("1 ground-truth image(s) recorded with an error were excluded" in n for n in report.notes)


def test_boxes_only_input_skips_segm_with_a_note():
    gt = LabelSet((image("a.png", Instance(box_xyxy=(0, 0, 10, 10))),))
    report = evaluate(gt, gt)
    assert {r.iou_type for r in report.rows} == {"bbox"}
    assert any("segm skipped" in n for n in report.notes)


def test_table_and_json(tmp_path):
    report = evaluate(gt_set(), shifted(gt_set(), 9))
    lines = report.table().splitlines()
    assert lines[0].split()[:6] == ["protocol", "iou", "category", "AP", "AP50", "AP75"]
    assert lines[2].split()[:6] == ["coco", "segm", "all", "30.0", "100.0", "0.0"]
    path = report.write_json(tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data["rows"][0]["ap"] == pytest.approx(0.3)
    assert data["num_images"] == 4 and isinstance(report, EvalReport)


def test_paths_are_read(tmp_path):
    write_coco(gt_set(), tmp_path / "gt.json")
    write_coco(shifted(gt_set(), 9), tmp_path / "pred.json")
    report = evaluate(tmp_path / "gt.json", tmp_path / "pred.json", iou_types=("bbox",))
    assert report.get("coco", "bbox").ap50 == 1.0
    assert report.pred == str(tmp_path / "pred.json")


# ---- equality with pycocotools' own COCOeval on random data -------------------------------------


def random_sets(seed: int = 0, n: int = 120) -> tuple[LabelSet, LabelSet]:
    rng = np.random.default_rng(seed)
    cats = {1: "a", 2: "b"}
    gts, preds = [], []

    def blob(h, w, near=None, score=1.0, cat=1, crowd=False):
        if near is None:
            x0, y0 = rng.integers(0, w - 4), rng.integers(0, h - 4)
            x1, y1 = rng.integers(x0 + 2, w + 1), rng.integers(y0 + 2, h + 1)
        else:
            bw, bh = near[2] - near[0], near[3] - near[1]
            x0, y0, x1, y1 = (int(v + rng.normal(0, 0.08) * s) for v, s in zip(near, (bw, bh, bw, bh)))
            x0, y0 = min(max(x0, 0), w - 2), min(max(y0, 0), h - 2)
            x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = True
        if rng.random() < 0.3:  # carve a hole so masks and boxes disagree
            m[(y0 + y1) // 2:, (x0 + x1) // 2:] = False
        return Instance.from_mask(m, score=score, category_id=cat, iscrowd=crowd)

    for k in range(n):
        h, w = int(rng.integers(30, 200)), int(rng.integers(30, 200))
        n_gt = [0, 1, 1, 2][k % 4]
        g = [blob(h, w, cat=int(rng.integers(1, 3)), crowd=bool(k % 29 == 3 and j == 0)) for j in range(n_gt)]
        p = []
        for _ in range(int(rng.integers(0, 4))):
            target = g[int(rng.integers(0, len(g)))] if g and rng.random() < 0.8 else None
            if target is None:  # a stray detection, usually with a low score
                p.append(blob(h, w, score=float(rng.random()) * 0.6, cat=int(rng.integers(1, 3))))
            else:  # a jittered copy of a ground truth, mostly of its class
                cat = target.category_id if rng.random() < 0.85 else 3 - target.category_id
                p.append(blob(h, w, near=target.box_xyxy, score=0.3 + 0.7 * float(rng.random()), cat=cat))
        gts.append(ImageLabels(f"im{k}.png", h, w, tuple(g), image_id=k + 1))
        preds.append(ImageLabels(f"im{k}.png", h, w, tuple(p), image_id=n - k))
    return LabelSet(tuple(gts), categories=cats), LabelSet(tuple(preds), categories=cats)


def pycocotools_stats(gt: LabelSet, pred: LabelSet, iou_type: str, per_class: bool) -> np.ndarray:
    gt_json = labelset_to_coco(gt)
    by_name = {im.file_name: im.image_id for im in gt.images}
    results = []
    for im in pred.images:
        for inst in im.instances:
            x0, y0, x1, y1 = inst.box_xyxy
            r = {"image_id": by_name[im.file_name], "category_id": inst.category_id, "score": inst.score}
            if iou_type == "bbox":
                r["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            else:
                r["segmentation"] = {"size": list(inst.rle["size"]), "counts": inst.rle["counts"]}
            results.append(r)
    if not per_class:
        gt_json["categories"] = [{"id": 1, "name": "object"}]
        for a in gt_json["annotations"]:
            a["category_id"] = 1
        for r in results:
            r["category_id"] = 1
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_json)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("per_class", [False, True])
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_coco_protocol_equals_pycocotools(iou_type, per_class):
    gt, pred = random_sets()
    assert sum(len(im.instances) == 0 for im in gt.images) >= 20
    assert sum(len(im.instances) == 2 for im in gt.images) >= 20
    assert sum(i.iscrowd for im in gt.images for i in im.instances) >= 3
    stats = pycocotools_stats(gt, pred, iou_type, per_class)
    row = evaluate(gt, pred, iou_types=(iou_type,), protocols=("coco",), per_class=per_class).get("coco", iou_type)
    ours = [row.ap, row.ap50, row.ap75, row.aps, row.apm, row.apl, row.ar]
    theirs = [stats[i] for i in (0, 1, 2, 3, 4, 5, 8)]
    for mine, ref in zip(ours, theirs):
        assert (mine if mine is not None else -1.0) == pytest.approx(ref, abs=1e-6)
    assert 0.05 < row.ap < 0.9  # a non-trivial score, not a degenerate 0 or 1


def test_exact_score_ties_are_broken_by_image_id_as_cocoeval_does():
    """Every score 0.5, hits on the first half of the file: COCOeval takes detections in image-id order,
    and the ground truth lists its ids descending (afss numbered the images in file order: 0.38 vs 0.25)."""
    n = 8
    gts, preds = [], []
    for k in range(n):
        gts.append(image(f"im{k}.png", rect(10, 10, 40, 40), image_id=100 - k))
        hit = rect(10, 10, 40, 40, score=0.5) if k < n // 2 else rect(44, 44, 60, 60, score=0.5)
        preds.append(image(f"im{k}.png", hit))
    gt, pred = LabelSet(tuple(gts)), LabelSet(tuple(preds))
    stats = pycocotools_stats(gt, pred, "bbox", per_class=False)
    report = evaluate(gt, pred, iou_types=("bbox",), protocols=("coco", "paper"))
    row = report.get("coco", "bbox")
    assert row.ap == pytest.approx(stats[0], abs=1e-6) and row.ap50 == pytest.approx(stats[1], abs=1e-6)
    assert report.get("paper", "bbox").ap == pytest.approx(row.ap, abs=1e-6)  # the same order of ties


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_paper_equals_coco_with_one_prediction_and_one_target_per_image(iou_type):
    gt, pred = random_sets(seed=1)
    gt = LabelSet(tuple(im.replace(instances=im.instances[:1]) for im in gt.images if im.instances
                        and not im.instances[0].iscrowd))
    pred = LabelSet(tuple(im.top1() for im in pred.images if im.file_name in {g.file_name for g in gt.images}))
    report = evaluate(gt, pred, iou_types=(iou_type,))
    coco, paper = report.get("coco", iou_type), report.get("paper", iou_type)
    assert paper.num_gt == coco.num_gt and paper.num_pred == coco.num_pred
    for key in ("ap", "ap50", "ap75"):
        assert getattr(paper, key) == pytest.approx(getattr(coco, key), abs=1e-12)
    assert 0.05 < paper.ap < 0.95


def test_file_names_fall_back_to_absolute_paths(tmp_path):
    gt = LabelSet(tuple(im.replace(file_name=im.file_name.split("/")[1]) for im in gt_set(2).images),
                  image_root=str(tmp_path / "data" / "img"))
    pred = LabelSet(tuple(im.replace(file_name="img/" + im.file_name) for im in gt.images),
                    image_root=str(tmp_path / "data" / "run" / ".."))
    assert evaluate(gt, pred).get("coco", "segm").ap == 1.0


def test_coco_results_list_is_matched_by_ground_truth_image_id(tmp_path):
    gt, pred = random_sets(seed=2, n=40)
    write_coco(gt, tmp_path / "gt.json")
    by_name = {im.file_name: im.image_id for im in gt.images}
    results = [{"image_id": by_name[im.file_name], "category_id": i.category_id, "score": i.score,
                "bbox": [i.box_xyxy[0], i.box_xyxy[1], i.box_xyxy[2] - i.box_xyxy[0], i.box_xyxy[3] - i.box_xyxy[1]],
                "segmentation": dict(i.rle)}
               for im in pred.images for i in im.instances]
    (tmp_path / "results.json").write_text(json.dumps(results))
    from_list = evaluate(tmp_path / "gt.json", tmp_path / "results.json")
    direct = evaluate(gt, pred)
    assert [r.ap for r in from_list.rows] == pytest.approx([r.ap for r in direct.rows], abs=1e-12)
    (tmp_path / "bad.json").write_text(json.dumps([{**results[0], "image_id": 999}]))
    with pytest.raises(AfssError, match="1 result.*not in the ground truth, e.g. 999"):
        evaluate(tmp_path / "gt.json", tmp_path / "bad.json")
    # a detector's own class id: collapsed with the rest by default (it was refused as "not among the
    # file's categories"); kept apart, it is named as not the ground truth's
    (tmp_path / "own.json").write_text(json.dumps([{**r, "category_id": 5} for r in results]))
    own = evaluate(tmp_path / "gt.json", tmp_path / "own.json")
    assert own.get("coco", "segm").ap == pytest.approx(evaluate(gt, pred).get("coco", "segm").ap, abs=1e-12)
    with pytest.raises(AfssError, match=r"category '5' \(id 5\) is not a ground-truth category"):
        evaluate(tmp_path / "gt.json", tmp_path / "own.json", per_class=True)
    (tmp_path / "yolo.json").write_text(json.dumps([{**r, "category_id": 0} for r in results]))  # YOLO's first class
    assert evaluate(tmp_path / "gt.json", tmp_path / "yolo.json").get("coco", "segm").ap == pytest.approx(
        own.get("coco", "segm").ap, abs=1e-12)


def test_only_labelled_skips_images_without_prediction_instead_of_missing_them():
    def sq(x0):
        m = np.zeros((32, 32), bool)
        m[4:20, x0:x0 + 16] = True
        return Instance.from_mask(m)

    gt = LabelSet(tuple(ImageLabels(f"{k}.png", 32, 32, (sq(k),)) for k in range(4)))
    # two images predicted exactly, two dropped by a filter (kept as records with an error)
    pred = LabelSet(tuple(ImageLabels(f"{k}.png", 32, 32, (sq(k).replace(score=0.9),) if k < 2 else (),
                                      error=None if k < 2 else "filtered: score 0.3 < 0.6") for k in range(4)))
    misses = evaluate(gt, pred, protocols=("paper",), iou_types=("segm",)).get("paper", "segm")
    kept = evaluate(gt, pred, protocols=("paper",), iou_types=("segm",), only_labelled=True)
    assert misses.ap == pytest.approx(51 / 101)  # recall stops at 0.5: 51 of 101 recall points
    assert kept.get("paper", "segm").ap == 1.0 and kept.num_images == 2
    assert any("2 image(s) without a predicted instance were skipped" in n for n in kept.notes)


def test_review_findings_scoreless_predictions_empty_categories_only_labelled_nothing():
    """A predictions file without scores reads as 1.0 everywhere: AP then ranks by file order, so the
    report says so; no category at all, or --only-labelled on predictions that label nothing, name
    their cause (review: 20.5 AP printed silently; 0 ground truth scored; an 'errors' message)."""
    gt = gt_set()
    pred = shifted(gt, 4)
    unscored = pred.replace(images=tuple(im.replace(instances=tuple(i.replace(score=1.0) for i in im.instances))
                                         for im in pred.images))
    assert not any("every prediction has the score" in n for n in evaluate(gt, pred).notes)
    notes = evaluate(gt, unscored).notes
    assert any("every prediction has the score 1 (what a file without scores reads as)" in n for n in notes), notes
    with pytest.raises(AfssError, match="no category given"):
        evaluate(gt, pred, categories=[])
    empty = pred.replace(images=tuple(im.replace(instances=()) for im in pred.images))
    with pytest.raises(AfssError, match="only-labelled: .*labels none"):
        evaluate(gt, empty, only_labelled=True)
