"""What this install can do (`afss doctor`): versions, CPU, CUDA devices, optional extras, cached
teacher weights, Hugging Face offline mode, the browser of ``afss report --screenshot``, and the
one command that adds each missing piece.

It reads package metadata, environment variables and files only: nothing is imported that takes
seconds (torch is not: CUDA devices are asked of the NVIDIA driver directly) and nothing touches
the network.

Example:
    >>> report = diagnose()
    >>> print("\\n".join(report.lines()))  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXTRAS", "CudaDevice", "DoctorReport", "Extra", "TeacherWeights", "diagnose", "hf_hub_cache"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "vlm": ("torch", "torchvision", "transformers", "safetensors"),
    "student": ("ultralytics", "onnx", "onnxruntime", "onnxslim"),
    "salient": ("onnxruntime",),
    "ray": ("ray",),
    "report": ("playwright",),
}
"""afss's optional extras (pyproject.toml) and the distributions each brings."""

VERSIONS = ("torch", "torchvision", "transformers", "ultralytics", "onnxruntime", "ray", "playwright", "numpy",
            "opencv-python-headless", "pycocotools")
"""The packages whose versions the report names (beside afss and Python)."""

GATED = frozenset({"facebook/sam3"})
"""Hub models that need their terms accepted and a login before they download."""

CHROMIUM_FIX = "apt-get install --no-install-recommends chromium"
TORCH_CUDA_FIX = "pip install --force-reinstall torch torchvision  # PyPI's Linux build has CUDA"


@dataclass(frozen=True)
class Extra:
    """An optional extra: present when every distribution it brings is installed."""

    name: str
    missing: tuple[str, ...]

    @property
    def present(self) -> bool:
        return not self.missing

    @property
    def fix(self) -> str:
        return f"pip install 'afss[{self.name}]'"


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    memory_gib: float


@dataclass(frozen=True)
class TeacherWeights:
    """A hub model a teacher loads by default, and whether the local Hugging Face cache holds it."""

    teacher: str
    model_id: str
    cached: bool

    @property
    def fix(self) -> str:
        # `hf` is huggingface_hub's command (`huggingface-cli` is gone from the pinned release)
        gated = "  # gated: accept its terms on the hub, `hf auth login`, then this" if self.model_id in GATED else ""
        return f"hf download {self.model_id}{gated}"


@dataclass(frozen=True)
class DoctorReport:
    """What `diagnose` found. ``versions`` maps a distribution to its version (``None``: not installed)."""

    afss_version: str
    python_version: str
    platform: str
    versions: dict[str, str | None]
    cpu_count: int
    usable_cpus: int
    omp_num_threads: str | None
    memory_gib: float | None
    torch_cuda: str | None
    cuda_devices: tuple[CudaDevice, ...]
    cuda_note: str
    extras: tuple[Extra, ...]
    synth_start: Path | None
    hf_cache: Path
    hf_hub_offline: bool
    teachers: tuple[TeacherWeights, ...]
    chromium: str | None
    salient_models: dict[str, Path | None] = dataclasses.field(default_factory=dict)
    """The salient teacher's named models (``afss models fetch NAME``) -> the cached file, or ``None``."""

    def fixes(self) -> list[str]:
        """One command per missing piece, in the order of the report."""
        out = [e.fix for e in self.extras if not e.present]
        if self.cuda_devices and self.versions.get("torch") and not self.torch_cuda:
            out.append(TORCH_CUDA_FIX)
        seen = set()
        for t in self.teachers:
            if not t.cached and t.model_id not in seen:
                seen.add(t.model_id)
                out.append(t.fix)
        if self.salient_models and not any(self.salient_models.values()):
            out.append(f"afss models fetch {next(iter(self.salient_models))}")
        if self.chromium is None:
            out.append(CHROMIUM_FIX)
        return out

    def lines(self) -> list[str]:
        """The report as text, one screen."""
        v = self.versions
        named = ", ".join(f"{k} {v[k]}" for k in VERSIONS if v.get(k))
        threads = f"{self.cpu_count} CPU threads ({self.usable_cpus} usable by afss"
        threads += f", OMP_NUM_THREADS={self.omp_num_threads})" if self.omp_num_threads else ")"
        ram = f", {self.memory_gib:.1f} GiB RAM" if self.memory_gib else ""
        lines = [f"afss {self.afss_version} (Python {self.python_version}, {self.platform})",
                 f"  packages   {named}",
                 f"  CPU        {threads}{ram}"]
        build = f"torch built for CUDA {self.torch_cuda}" if self.torch_cuda else "torch without CUDA" \
            if v.get("torch") else "torch not installed"
        if self.cuda_devices:
            devices = "; ".join(f"{d.index}: {d.name}, {d.memory_gib:.0f} GiB" for d in self.cuda_devices)
            lines.append(f"  CUDA       {devices}; {build}")
        else:
            lines.append(f"  CUDA       no device, {self.cuda_note}; {build}: teachers and the student run on the CPU")
        present = [e.name for e in self.extras if e.present]
        if present:  # one line for what is there, one per missing extra with its fix
            lines.append(f"  extras     {', '.join(present)}: installed")
        for e in self.extras:
            if not e.present:
                lines.append(f"  extra      {e.name:<8} no (missing {', '.join(e.missing)}) -> {e.fix}")
        start = str(self.synth_start) if self.synth_start else "missing -> afss pretrain --out student_synth.pt"
        lines.append(f"  student    synth start (--init synth): {start}")
        offline = "set: only the cache is used" if self.hf_hub_offline else \
            "not set: models not cached are downloaded (export HF_HUB_OFFLINE=1 without internet)"
        lines.append(f"  HF cache   {self.hf_cache}; HF_HUB_OFFLINE {offline}")
        width = max((len(t.model_id) for t in self.teachers), default=0)
        for t in self.teachers:
            state = "cached" if t.cached else f"not cached -> {t.fix}"
            lines.append(f"  teacher    {t.teacher:<13} {t.model_id:<{width}}  {state}")
        if self.salient_models:
            cached = [f"{name} {path}" for name, path in self.salient_models.items() if path is not None]
            first = next(iter(self.salient_models))
            state = "; ".join(cached) if cached else f"not fetched -> afss models fetch {first}"
            lines.append(f"  teacher    {'salient':<13} {state}")
        lines.append("  teacher    photometric   no weights (CPU)")
        browser = self.chromium or f"missing -> {CHROMIUM_FIX}"
        lines.append(f"  report     chromium for afss report --screenshot: {browser}")
        missing = self.fixes()
        lines.append(f"  {len(missing)} missing piece{'s' * (len(missing) != 1)}" + (":" if missing else ""))
        lines += [f"    {fix}" for fix in missing]
        return lines


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub finds it from the environment."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def cached_model(cache: Path, model_id: str) -> bool:
    """Whether ``cache`` holds a snapshot of ``model_id`` with its config and weights."""
    snapshots = cache / f"models--{model_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return False
    for snap in snapshots.iterdir():
        files = [p for p in snap.iterdir() if p.is_file()] if snap.is_dir() else []
        names = {p.name for p in files}
        if "config.json" in names and any(p.suffix in (".safetensors", ".bin", ".pt") for p in files):
            return True
    return False


def default_teacher_models() -> tuple[tuple[str, str], ...]:
    """``(teacher, hub id)`` of every model the VLM teachers load by default."""
    from afss.teachers.grounded_sam2 import DEFAULT_DETECTOR
    from afss.teachers.owlv2_sam import DEFAULT_OWLV2
    from afss.teachers.sam3 import DEFAULT_SAM3
    from afss.teachers.segmenters import DEFAULT_SEGMENTER

    return (("grounded-sam2", DEFAULT_DETECTOR), ("grounded-sam2", DEFAULT_SEGMENTER),
            ("owlv2-sam", DEFAULT_OWLV2), ("owlv2-sam", DEFAULT_SEGMENTER), ("sam3", DEFAULT_SAM3))


def diagnose() -> DoctorReport:
    """Look at this install (see the module docstring); fast, offline, changes nothing."""
    import afss
    from afss.report.browser import CHROMIUM
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS
    from afss.teachers.salient_models import cached_models

    versions = {name: _version(name) for name in {*VERSIONS, *(d for ds in EXTRAS.values() for d in ds)}}
    extras = tuple(Extra(name, tuple(d for d in dists if versions[d] is None)) for name, dists in EXTRAS.items())
    devices, note = cuda_devices()
    cache = hf_hub_cache()
    chromium = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium") or shutil.which("chromium-browser")
    offline = any(os.environ.get(k, "").upper() in {"1", "ON", "YES", "TRUE"}
                  for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return DoctorReport(
        afss_version=afss.__version__, python_version=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}", versions=versions,
        cpu_count=os.cpu_count() or 1, usable_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count() or 1, omp_num_threads=os.environ.get("OMP_NUM_THREADS"), memory_gib=_memory_gib(),
        torch_cuda=_torch_cuda(), cuda_devices=devices, cuda_note=note, extras=extras,
        synth_start=SHIPPED_SYNTH_WEIGHTS if SHIPPED_SYNTH_WEIGHTS.is_file() else None,
        hf_cache=cache, hf_hub_offline=offline,
        teachers=tuple(TeacherWeights(t, m, cached_model(cache, m)) for t, m in default_teacher_models()),
        chromium=chromium, salient_models=cached_models())


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_cuda() -> str | None:
    """The CUDA version the installed torch was built for, read from ``torch/version.py`` (importing
    torch takes seconds)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    version = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        found = re.search(r"^cuda\b[^=\n]*=\s*['\"]([^'\"]+)['\"]", version.read_text(), re.MULTILINE)
    except OSError:
        return None
    return found.group(1) if found else None


def cuda_devices() -> tuple[tuple[CudaDevice, ...], str]:
    """The CUDA devices the NVIDIA driver reports (its own library, ``libcuda``), and why there are
    none when there are none."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1" if os.name != "nt" else "nvcuda.dll")
    except OSError:
        return (), "no NVIDIA driver (libcuda not found)"
    count, status = ctypes.c_int(0), cuda.cuInit(0)
    if status != 0:
        return (), f"the NVIDIA driver did not start (cuInit error {status})"
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return (), "the NVIDIA driver sees no device"
    devices = []
    for k in range(count.value):
        handle, name, memory = ctypes.c_int(0), ctypes.create_string_buffer(256), ctypes.c_size_t(0)
        if cuda.cuDeviceGet(ctypes.byref(handle), k) != 0:
            continue
        cuda.cuDeviceGetName(name, len(name), handle)
        cuda.cuDeviceTotalMem_v2(ctypes.byref(memory), handle)
        devices.append(CudaDevice(k, name.value.decode(errors="replace"), memory.value / 2**30))
    return tuple(devices), ""


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None
