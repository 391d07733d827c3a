"""benchmarks/distill.py: its SPARK-2021 split (validation frames from the ``report`` subset, a pool that
never holds them, every spacecraft in both: the frames are numbered class by class) and its row scores."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import pytest

from afss.io.coco import write_coco
from afss.types import ImageLabels, Instance, LabelSet
from tests.project_scripts import load_script

CLASSES = ("cheops", "debris", "proba_2", "smart_1", "soho")


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/distill.py", "distill_benchmark")


@pytest.fixture()
def spark(tmp_path):
    """A SPARK-2021-like gt.json: 5 classes in blocks of 60 frames, one frame in five ``dev``."""
    images = []
    for k in range(300):
        cls = CLASSES[k // 60]
        images.append(ImageLabels(
            file_name=f"images/img{k:06d}.jpg", height=64, width=64,
            instances=(Instance(box_xyxy=(8.0, 8.0, 40.0, 40.0), category_id=k // 60 + 1, source="gt"),),
            meta={"subset": "dev" if k % 5 == 0 else "report", "class": cls}))
    write_coco(LabelSet(images=tuple(images), categories={i + 1: c for i, c in enumerate(CLASSES)},
                        image_root=str(tmp_path)), tmp_path / "gt.json")
    return tmp_path


def _split(bench, spark, how, val=40, pool=100):
    args = argparse.Namespace(source="spark", spark=str(spark), val=val, pool=pool, split=how, out=str(spark / "o"))
    pool_set, val_set, iou_types = bench._sources(args)
    return pool_set, val_set, iou_types


def test_spread_split_covers_every_class_and_never_overlaps(bench, spark, capsys):
    pool, val, iou_types = _split(bench, spark, "spread")
    said = capsys.readouterr().err  # what each set holds, as the benchmark prints it
    assert "validation 40 frames, 5 spacecraft" in said and "pool 100 frames, 5 spacecraft" in said
    assert "median box side 32 px" in said
    assert iou_types == ("bbox",)
    assert len(val) == 40 and len(pool) == 100
    assert all(im.meta["subset"] == "report" for im in val.images)
    assert not {im.file_name for im in val.images} & {im.file_name for im in pool.images}
    for labels, n in ((val, 40), (pool, 100)):
        counts = Counter(im.meta["class"] for im in labels.images)
        assert set(counts) == set(CLASSES)
        assert max(counts.values()) - min(counts.values()) <= 2, counts  # in proportion: 60 frames a class
    pool_again, val_again, _ = _split(bench, spark, "spread")
    assert [im.file_name for im in val_again.images] == [im.file_name for im in val.images]  # no random state
    assert [im.file_name for im in pool_again.images] == [im.file_name for im in pool.images]


def test_first_split_is_the_old_one(bench, spark):
    """The tables before the spread split: the first report frames, then the first others."""
    pool, val, _ = _split(bench, spark, "first")
    report = [f"images/img{k:06d}.jpg" for k in range(300) if k % 5]
    assert [im.file_name for im in val.images] == report[:40]
    assert {im.meta["class"] for im in val.images} == {"cheops"}  # why it was replaced
    others = [f"images/img{k:06d}.jpg" for k in range(300) if f"images/img{k:06d}.jpg" not in report[:40]]
    assert [im.file_name for im in pool.images] == others[:100]


def test_spread_takes_everything_when_asked_for_more(bench):
    assert bench._spread(list(range(7)), 0) == list(range(7))
    assert bench._spread(list(range(7)), 10) == list(range(7))
    picked = bench._spread(list(range(100)), 10)
    assert picked == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]


def test_rows_record_top1_hits_and_ranking(bench):
    """hit50 counts images whose top-1 box reaches IoU 0.5 (a missing prediction is a miss), and the
    Spearman of score and IoU says whether the score ranks those boxes: here perfectly, then inverted."""
    def labels(boxes):
        return LabelSet(images=tuple(
            ImageLabels(file_name=f"im{k}.jpg", height=100, width=100,
                        instances=() if box is None else (Instance(box_xyxy=box, score=score, source="t"),))
            for k, (box, score) in enumerate(boxes)), categories={1: "spacecraft"})

    gt = labels([((0.0, 0.0, 50.0, 50.0), 1.0)] * 4)
    exact, iou_05, iou_03 = (0.0, 0.0, 50.0, 50.0), (0.0, 0.0, 50.0, 25.0), (0.0, 0.0, 50.0, 15.0)
    good = bench._score(gt, labels([(exact, 0.9), (iou_05, 0.8), (iou_03, 0.7), (None, 0.0)]), ("bbox",))
    assert good["top1/hit50"] == pytest.approx(0.5)  # IoU 1.0 and exactly 0.5 hit; 0.3 and nothing miss
    assert good["top1/spearman"] == pytest.approx(1.0)
    assert good["top1/pairs"] == 3
    inverted = bench._score(gt, labels([(exact, 0.1), (iou_05, 0.5), (iou_03, 0.9), (None, 0.0)]), ("bbox",))
    assert inverted["top1/spearman"] == pytest.approx(-1.0)
    assert inverted["coco/bbox/ap"] < good["coco/bbox/ap"]  # the same boxes, ranked worse
    too_few = bench._score(gt, labels([(exact, 0.9), (None, 0.0), (None, 0.0), (None, 0.0)]), ("bbox",))
    assert too_few["top1/spearman"] is None and too_few["top1/hit50"] == pytest.approx(0.25)  # JSON has no NaN


def test_a_finished_training_is_reused_only_for_its_own_labels_and_recipe(bench, tmp_path):
    """--score-again and reruns reuse a finished scratch or supervised training, never one of another
    pool or recipe (that one is trained again, or refused by train_student)."""
    from afss.student.train import TrainConfig, training_identity

    def pool(n):
        return LabelSet(images=tuple(ImageLabels(file_name=f"im{k}.jpg", height=8, width=8) for k in range(n)),
                        image_root=str(tmp_path))

    config = TrainConfig(epochs=5, imgsz=320)
    folder = tmp_path / "scratch"
    (folder / "weights").mkdir(parents=True)
    weights = folder / "weights" / "best.pt"
    assert bench._finished_training(folder, pool(3), config) is None  # nothing trained yet
    record = {"identity": training_identity(pool(3), config),
              "weights": str(weights), "seconds_per_epoch": 12.5}
    (folder / "train.json").write_text(json.dumps(record))
    assert bench._finished_training(folder, pool(3), config) is None  # its weights are gone
    weights.write_bytes(b"weights")
    assert bench._finished_training(folder, pool(3), config) == (weights, 12.5)
    assert bench._finished_training(folder, pool(4), config) is None  # another pool
    assert bench._finished_training(folder, pool(3), TrainConfig(epochs=20, imgsz=320)) is None  # another recipe


def test_each_row_names_the_invocation_that_made_it(bench):
    """A record grown by several invocations keeps each one's arguments and commit; a repeated invocation
    (a rerun that resumes) is not added again."""
    record = {"rows": {}}
    first = bench._note_invocation(record, {"rounds": 1, "seed": 1}, "abc")
    assert bench._note_invocation(record, {"rounds": 1, "seed": 1}, "abc") == first == 0
    second = bench._note_invocation(record, {"rounds": 2, "seed": 1}, "def-dirty")
    assert second == 1
    assert record["runs"] == [{"args": {"rounds": 1, "seed": 1}, "commit": "abc"},
                              {"args": {"rounds": 2, "seed": 1}, "commit": "def-dirty"}]
    assert record["args"] == {"rounds": 2, "seed": 1} and record["commit"] == "def-dirty"  # the latest
    old = {"rows": {"teacher": {}}, "args": {"rounds": 1}, "commit": "0ld"}  # a record from before "runs"
    assert bench._note_invocation(old, {"rounds": 2}, "new") == 1
    assert old["runs"] == [{"args": {"rounds": 1}, "commit": "0ld"}, {"args": {"rounds": 2}, "commit": "new"}]


def test_rows_are_never_added_to_a_record_of_other_images(bench):
    record = {"args": {"source": "synth", "pool": 400, "val": 200, "size": 512, "rounds": 1}}  # before --domain
    bench._check_same_sources(record, {**record["args"], "domain": "mixed", "rounds": 2})  # other settings: fine
    with pytest.raises(SystemExit, match="--domain mixed, now dim"):
        bench._check_same_sources(record, {**record["args"], "domain": "dim"})
    with pytest.raises(SystemExit, match="--pool 400, now 100"):
        bench._check_same_sources(record, {**record["args"], "domain": "mixed", "pool": 100})
    bench._check_same_sources({"rows": {}}, {"source": "synth", "domain": "dim"})  # a new record
