"""A tiny run folder with the layout `afss run` writes (see `afss.report`), built with the library API.

`build_run` is the one place that makes it: when `afss run` exists, its body becomes
``run_pipeline(tiny config, out=run)``. About 10 pool and 6 val images of 96 px, a student trained for
one epoch at 64 px: the numbers mean nothing, the files are real.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

POOL_IMAGES = 10
VAL_IMAGES = 6
SIZE = 96
ROUNDS = 2

CONFIG_YAML = f"""\
# the tiny run of tests/report_fixture.py
data: {{synth: {{n: {POOL_IMAGES}, size: {SIZE}, domain: mixed, seed: 3}}}}
val: {{synth: {{n: {VAL_IMAGES}, size: {SIZE}, domain: mixed, seed: 4}}}}
teacher: {{name: photometric}}
refine: {{views: identity,vflip, min_score: 0.6}}
student: {{init: yolo11n-seg.yaml, epochs: 1, imgsz: 64, batch: 4}}
distill: {{rounds: {ROUNDS}}}
evaluation: {{protocols: [coco, paper]}}
"""


def build_run(run: Path) -> Path:
    """Write a complete run folder at ``run`` (ground truth, teacher, refined, student rounds, upper
    bound, metrics, run.json) and return it."""
    import afss
    from afss.distill import DistillConfig, distill
    from afss.evaluate import evaluate
    from afss.io.coco import write_coco
    from afss.label import label_images
    from afss.refine import RefineConfig, refine_labels
    from afss.student.model import StudentTeacher
    from afss.student.train import TrainConfig, train_student
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    stages: dict[str, dict] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        stages[name] = {"done": True, "seconds": round(time.perf_counter() - t0, 2)}
        return value

    data = run / "data"
    pool_gt = render_dataset(data / "pool_images", n=POOL_IMAGES, size=SIZE, domain="mixed", seed=3, workers=1)
    val_gt = render_dataset(data / "val_images", n=VAL_IMAGES, size=SIZE, domain="mixed", seed=4, workers=1)
    pool = pool_gt.replace(images=tuple(im.replace(instances=()) for im in pool_gt.images), info={"stage": "data"})
    write_coco(pool, data / "pool.json")
    write_coco(val_gt, data / "val_gt.json")
    val = val_gt.replace(images=tuple(im.replace(instances=()) for im in val_gt.images))

    teacher = build_teacher("photometric")
    labels = timed("teacher", lambda: label_images(teacher, val, out=run / "teacher" / "val_labels.json"))
    refined_out = run / "teacher" / "val_refined.json"
    timed("refined", lambda: refine_labels(teacher, val, labels=labels, views="identity,vflip",
                                           config=RefineConfig(min_score=0.6), out=refined_out))
    train = TrainConfig(init="yolo11n-seg.yaml", epochs=1, imgsz=64, batch=4)
    rounds = timed("distill", lambda: distill(teacher, pool, run / "distill", train=train,
                                              config=DistillConfig(rounds=ROUNDS, min_score=0.6)))
    order = ["teacher", "refined"]
    for r in rounds:
        # conf 0.001: a one-epoch student is unsure of everything; show what it finds at all
        student = StudentTeacher.build(weights=str(r.weights), imgsz=64, conf=0.001)
        name = f"student-round-{r.round}"
        out = run / "students" / f"round-{r.round}.json"
        timed(name, lambda student=student, out=out: label_images(student, val, out=out))
        order.append(name)
    best = timed("upper-bound-train", lambda: train_student(pool_gt, run / "upper_bound" / "train", train).weights)
    upper = StudentTeacher.build(weights=str(best), imgsz=64, conf=0.001)
    timed("upper-bound", lambda: label_images(upper, val, out=run / "upper_bound" / "val.json"))
    order.append("upper-bound")

    files = {"teacher": "teacher/val_labels.json", "refined": "teacher/val_refined.json",
             "upper-bound": "upper_bound/val.json"}
    for name in order:
        pred = run / (files[name] if name in files else f"students/round-{name.rsplit('-', 1)[1]}.json")
        evaluate(run / "data" / "val_gt.json", pred).write_json(run / "metrics" / f"{name}.json")
    (run / "config.yaml").write_text(CONFIG_YAML)
    record = {
        "stage": "run", "config": {"teacher": {"name": "photometric"}, "distill": {"rounds": ROUNDS}},
        "versions": {"afss": afss.__version__, "python": platform.python_version()},
        "models": {"teacher": {"name": "photometric", "options": dict(labels.info.get("teacher_options") or {})},
                   "student": str(run / "distill" / "student.pt")},
        "stages": stages, "order": order,
    }
    (run / "run.json").write_text(json.dumps(record, indent=2))
    return run


def without_ground_truth(run: Path, out: Path) -> Path:
    """A copy of ``run`` as a run without ground truth writes it: no val ground truth, no metrics, no
    upper bound (it trains on the pool's ground truth)."""
    shutil.copytree(run, out, symlinks=True)
    (out / "data" / "val_gt.json").unlink()
    shutil.rmtree(out / "metrics")
    shutil.rmtree(out / "upper_bound")
    record = json.loads((out / "run.json").read_text())
    record["order"] = [s for s in record["order"] if s != "upper-bound"]
    (out / "run.json").write_text(json.dumps(record, indent=2))
    return out
