"""A tiny run folder, made by `afss run` itself (`afss.run.run_pipeline`), for the report's tests.

About 10 pool and 6 val images of 96 px, a student trained for one epoch at 64 px: the numbers mean
nothing, the files and the layout are the real ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

POOL_IMAGES = 10
VAL_IMAGES = 6
SIZE = 96
ROUNDS = 2

CONFIG_YAML = f"""\
# the tiny run of tests/report_fixture.py
data: {{source: synth, n: {POOL_IMAGES}, size: {SIZE}, domain: mixed, seed: 3}}
eval: {{source: synth, n: {VAL_IMAGES}, size: {SIZE}, domain: mixed, seed: 4, upper_bound: true}}
teacher: {{name: photometric}}
refine: {{tta: "identity,vflip", min_score: 0.6}}
student: {{init: yolo11n-seg.yaml, epochs: 1, imgsz: 64, batch: 4}}
distill: {{rounds: {ROUNDS}}}
report: false
"""


def build_run(run: Path) -> Path:
    """Run the tiny config above with `afss.run.run_pipeline` into ``run`` (ground truth, teacher,
    refined, student rounds, upper bound, metrics, run.json) and return it; the tests build the report."""
    from afss.run import load_config, run_pipeline

    run.mkdir(parents=True, exist_ok=True)
    config = run.parent / f"{run.name}.yaml"
    config.write_text(CONFIG_YAML)
    run_pipeline(load_config(config), run, progress=False)
    return run


NO_GT_YAML = f"""\
# a run as a user with no ground truth makes it: eval.source null; keep_top with no fixed cut
data: {{source: synth, n: {POOL_IMAGES}, size: {SIZE}, domain: mixed, seed: 3}}
eval: {{source: null}}
teacher: {{name: photometric}}
refine: {{tta: "identity,vflip", min_score: null, keep_top: 0.5}}
student: {{init: synth, epochs: 1, imgsz: 64, batch: 4}}
distill: {{rounds: 1}}
"""


def build_run_without_ground_truth(run: Path) -> Path:
    """A real run with ``eval.source: null`` (report included), as `afss run` writes it."""
    from afss.run import load_config, run_pipeline

    run.mkdir(parents=True, exist_ok=True)
    config = run.parent / f"{run.name}.yaml"
    config.write_text(NO_GT_YAML)
    run_pipeline(load_config(config), run, progress=False)
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
