"""One availability check for every model afss runs: the student's device (Ultralytics' names) and
the VLM teachers' (torch's), on a machine whose GPUs are pretended by monkeypatching."""

from __future__ import annotations

import pytest

from afss import devices
from afss.errors import AfssError


@pytest.mark.parametrize("gpus, mps, device, problem", [
    (0, False, "cpu", None), (0, False, "auto", None),
    (0, False, "cuda", "torch sees no CUDA GPU here"), (0, False, "0,1", "torch sees no CUDA GPU here"),
    (0, False, "mps", "MPS is not available here"), (0, False, "mps:0", "MPS is not available here"),
    (0, True, "mps", None),
    (1, False, "cuda", None), (1, False, "0", None), (1, False, "cuda:0", None),
    (1, False, "cuda:1", "torch sees 1 CUDA GPU(s) (0..0)"), (1, False, "0,1", "torch sees 1 CUDA GPU(s) (0..0)"),
    (2, False, "0,1", None), (2, False, " CUDA:1 ", None),
])
def test_unavailable_names_what_is_missing(monkeypatch, gpus, mps, device, problem):
    monkeypatch.setattr(devices, "cuda_count", lambda: gpus)
    monkeypatch.setattr(devices, "mps_available", lambda: mps)
    assert devices.unavailable(device) == problem


def test_the_student_and_the_teachers_word_the_same_answer(monkeypatch):
    pytest.importorskip("torch")
    from afss.student.model import check_device
    from afss.teachers.hf import resolve_device

    monkeypatch.setattr(devices, "cuda_count", lambda: 1)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(AfssError, match=r"^student: device 'cuda:1' requested, but torch sees 1 CUDA GPU\(s\) "
                                        r"\(0\.\.0\); use cpu$"):
        check_device("cuda:1")
    check_device("cuda:1", here=False)  # a config names a GPU of the machine it will train on
    with pytest.raises(AfssError, match=r"^device 'cuda:1' requested, but torch sees 1 CUDA GPU\(s\) \(0\.\.0\); "
                                        r"use device='cpu' or 'auto'$"):
        resolve_device("cuda:1")
    with pytest.raises(AfssError, match="MPS is not available here"):
        resolve_device("mps")
