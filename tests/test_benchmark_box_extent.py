"""benchmarks/box_extent.py: how a label's box parts from the true box."""

from __future__ import annotations

import pytest

from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def extent():
    return load_script("benchmarks/box_extent.py", "box_extent_benchmark")


@pytest.mark.parametrize("label, kind", [
    ((10, 10, 50, 50), "close"),
    ((12, 12, 48, 48), "close"),  # IoU 0.81
    ((20, 20, 40, 40), "inside"),  # the truth is padded around it: IoU 0.25
    ((0, 0, 80, 80), "encloses"),  # panels the truth leaves out: IoU 0.25
    ((18, 10, 58, 50), "offset"),  # shifted: IoU 0.67
    ((40, 40, 90, 90), "elsewhere"),
    (None, "missed"),
])
def test_extent_kinds(extent, label, kind):
    assert extent.extent_kind(label, (10, 10, 50, 50)) == kind
