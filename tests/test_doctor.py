"""`afss doctor`: the report's fields for this machine and for environments made by hand (a fake
Hugging Face cache, offline mode, a missing extra, no browser); fast and offline."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from afss import doctor
from afss.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _fake_model(cache: Path, model_id: str, files: tuple[str, ...] = ("config.json", "model.safetensors")) -> None:
    snapshot = cache / f"models--{model_id.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for name in files:
        (snapshot / name).write_text("{}")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("AFSS_CACHE", str(tmp_path / "afss-models"))
    return tmp_path


def test_the_report_of_this_machine(clean_env, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("afss doctor touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    report = doctor.diagnose()
    extras = {e.name: e for e in report.extras}
    assert set(extras) == {"vlm", "student", "salient", "ray", "report"}
    assert extras["student"].present == all(report.versions[d] for d in ("ultralytics", "onnx", "onnxruntime"))
    import afss

    assert report.afss_version == afss.__version__ and report.cpu_count >= 1 and 1 <= report.usable_cpus
    assert report.synth_start is not None and report.synth_start.is_file()
    assert report.hf_cache == clean_env / "hf" / "hub" and not report.hf_hub_offline
    assert {t.teacher for t in report.teachers} == {"grounded-sam2", "owlv2-sam", "sam3"}
    assert not any(t.cached for t in report.teachers)  # an empty cache
    if report.versions["torch"]:
        assert report.torch_cuda is None or report.torch_cuda[0].isdigit()
    text = "\n".join(report.lines())
    assert "hf download facebook/sam3" in text and "HF_HUB_OFFLINE not set" in text
    assert "hf download facebook/sam3  # gated: accept its terms on the hub, `hf auth login`, then this" in report.fixes()
    assert "salient       not fetched -> afss models fetch isnet" in text and "afss models fetch isnet" in report.fixes()


def test_a_fetched_salient_model_is_reported_with_its_path(clean_env):
    models = clean_env / "afss-models"
    models.mkdir()
    (models / "isnet.onnx").write_bytes(b"onnx")  # doctor looks, never loads
    report = doctor.diagnose()
    assert report.salient_models["isnet"] == models / "isnet.onnx"
    assert f"salient       isnet {models / 'isnet.onnx'}" in "\n".join(report.lines())
    assert not any("models fetch" in fix for fix in report.fixes())


def test_no_driver_no_device(monkeypatch):
    def missing(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(doctor.ctypes, "CDLL", missing)
    devices, note = doctor.cuda_devices()
    assert devices == () and note == "no NVIDIA driver (libcuda not found)"


def test_a_cached_teacher_offline_mode_a_missing_extra_and_no_browser(clean_env, monkeypatch):
    cache = clean_env / "hf" / "hub"
    _fake_model(cache, "facebook/sam3")
    _fake_model(cache, "google/owlv2-base-patch16-ensemble", files=("config.json",))  # weights not downloaded yet
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda dist: None if dist == "ray" else real(dist))
    import afss.report.browser

    monkeypatch.setattr(afss.report.browser, "CHROMIUM", str(clean_env / "no-chromium"))
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    report = doctor.diagnose()
    cached = {t.model_id: t.cached for t in report.teachers}
    assert cached["facebook/sam3"] and not cached["google/owlv2-base-patch16-ensemble"]
    assert report.hf_hub_offline and report.chromium is None
    assert not next(e for e in report.extras if e.name == "ray").present
    fixes = report.fixes()
    assert fixes[0] == "pip install 'afss[ray]'" and fixes[-1] == doctor.CHROMIUM_FIX
    assert not any("facebook/sam3" in fix for fix in fixes)
    assert fixes.count("hf download facebook/sam2.1-hiera-large") == 1  # two teachers, one command
    text = "\n".join(report.lines())
    assert "HF_HUB_OFFLINE set" in text and re.search(r"teacher +sam3 +facebook/sam3 +cached\n", text)
    assert re.search(r"extras +[a-z, ]+: installed\n", text) and "ray" not in text.split(": installed")[0]
    assert re.search(r"extra +ray +no \(missing ray\) -> pip install 'afss\[ray\]'\n", text)
    assert f"{len(fixes)} missing pieces:" in text
    monkeypatch.setenv("HF_HUB_CACHE", str(clean_env / "elsewhere"))
    assert doctor.hf_hub_cache() == clean_env / "elsewhere"


def test_the_command_is_one_screen_fast_and_imports_no_torch(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("afss ") and len(out.splitlines()) <= 30
    code = ("import sys, time; t = time.perf_counter(); from afss.doctor import diagnose; diagnose(); "
            "print(time.perf_counter() - t, 'torch' in sys.modules, 'ultralytics' in sys.modules)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          cwd=ROOT)
    seconds, torch, ultralytics = done.stdout.split()
    assert float(seconds) < 3 and torch == ultralytics == "False", done.stdout
    assert time.perf_counter() - t0 < 20
