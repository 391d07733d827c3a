"""benchmarks/gpu.py on a CPU at tiny sizes: every teacher at two batch sizes, batched labels equal to
one-by-one, the student's seconds per epoch, and the record it writes."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.project_scripts import load_script

if importlib.util.find_spec("ultralytics") is None or importlib.util.find_spec("transformers") is None:
    pytest.skip("needs the vlm and student extras", allow_module_level=True)


def test_the_gpu_benchmark_runs_on_a_cpu_at_tiny_sizes(tmp_path):
    bench = load_script("benchmarks/gpu.py", "bench_gpu")
    out = tmp_path / "gpu.json"
    record = bench.main(["--device", "cpu", "--tiny", "--image-size", "96", "--n", "3", "--batches", "1,2",
                         "--dtypes", "fp32", "--student-n", "6", "--student-imgsz", "64", "--student-epochs", "1",
                         "--student-batch", "4", "--student-recipes", "auto", "--work", str(tmp_path / "w"),
                         "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    assert set(record["teachers"]) == {"grounded-sam2", "owlv2-sam", "sam3"}
    for name, by_dtype in record["teachers"].items():
        r = by_dtype["fp32"]
        assert r["batch_1_images_per_s"] > 0 and r["best_batch"] in (1, 2), name
        # same-size images: a batch of two gives exactly what one image at a time gives
        assert r["batches"][2]["vs_batch_1"] == {"same_count": True, "max_box_diff_px": 0.0, "min_mask_iou": 1.0,
                                                 "equal": True}, name
        assert r["batched_equal_one_by_one"] and r["batches"][1]["peak_memory_gib"] is None  # no CUDA here
    student = record["student"]
    assert student["imgsz"] == 64 and student["auto"]["seconds_per_epoch"] > 0 and student["auto"]["epochs"] == 1


def test_compare_counts_a_moved_box_or_a_changed_mask_as_a_difference():
    import numpy as np

    from afss.types import Instance

    bench = load_script("benchmarks/gpu.py", "bench_gpu")
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    a = Instance.from_mask(mask, score=0.9)
    shifted = Instance.from_mask(np.roll(mask, 1, axis=1), score=0.9)
    assert bench.compare([[a]], [[a]], 1.0, 0.98)["equal"]
    moved = bench.compare([[a]], [[shifted]], 1.0, 0.98)
    assert moved["max_box_diff_px"] == 1.0 and moved["min_mask_iou"] == pytest.approx(12 / 20) and not moved["equal"]
    assert bench.compare([[a]], [[]], 1.0, 0.98) == {"same_count": False, "max_box_diff_px": 0.0, "min_mask_iou": 1.0,
                                                     "equal": False}
