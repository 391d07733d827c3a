"""Whether an accelerator torch can name is present here: one answer for the teachers
(`afss.teachers.hf.resolve_device`) and the student (`afss.student.model.check_device`), each of
which words its own error around it."""

from __future__ import annotations

__all__ = ["cuda_count", "mps_available", "unavailable"]


def cuda_count() -> int:
    """CUDA GPUs torch sees (0 without torch or without CUDA)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def mps_available() -> bool:
    """Whether torch can use Apple's MPS here."""
    try:
        import torch
    except ImportError:
        return False
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def unavailable(device: str) -> str | None:
    """Why ``device`` cannot run here (``"torch sees no CUDA GPU here"``), or ``None`` where it can
    or is not an accelerator (``cpu``, ``auto``). Takes torch's names (``mps``, ``cuda``, ``cuda:N``)
    and Ultralytics' GPU indices (``0``, ``0,1``); checks that each index exists."""
    name = device.strip().lower()
    if name == "mps" or name.startswith("mps:"):
        return None if mps_available() else "MPS is not available here"
    if name == "cuda" or name.startswith("cuda:") or name[:1].isdigit():
        count = cuda_count()
        if not count:
            return "torch sees no CUDA GPU here"
        wanted = [0] if name == "cuda" else [int(i) for i in name.removeprefix("cuda:").split(",") if i.isdigit()]
        if wanted and max(wanted) >= count:
            return f"torch sees {count} CUDA GPU(s) (0..{count - 1})"
    return None
