"""afss works after `pip install` from its wheel, outside the clone: the ready configs run by name
and ``--init synth`` finds the student shipped inside the installed package."""

from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if importlib.util.find_spec("ultralytics") is None:  # not importorskip: afss imports it offline, see student/env.py
    pytest.skip("the student extra is not installed: pip install 'afss[student]'", allow_module_level=True)


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment holding only the wheel built from this tree; its dependencies are
    this environment's (a path file, no network), so the test runs offline in seconds."""
    work = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"),
          str(ROOT)], cwd=work, env=env)
    wheels = list((work / "dist").glob("afss-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work, env=env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=work, env=env).stdout.strip())
    # Only plain folders on the path: the editable install's own .pth hook in this environment is not run
    # from a folder added this way, so `import afss` cannot reach the clone.
    deps = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (purelib / "afss_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheels[0])], cwd=work, env=env)
    return venv, env


def test_wheel_ships_the_ready_configs_and_the_synth_student(installed, tmp_path):
    venv, env = installed
    probe = ("import afss, afss.run.ready as r; from afss.student.train import resolve_init; "
             "print(afss.__file__); print(resolve_init('synth')); print(','.join(r.ready_configs()))")
    lines = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env).stdout.split()
    package, synth, names = lines
    assert str(venv) in package and str(ROOT) not in package
    assert synth.startswith(str(Path(package).parent)) and Path(synth).is_file()
    assert set(names.split(",")) >= {"demo", "spark2021", "spark2024", "speedplus_lightbox", "speedplus_sunlamp", "tango"}
    shown = _run([str(venv / "bin" / "afss"), "config", "show", "spark2024"], cwd=tmp_path, env=env).stdout
    assert shown == (ROOT / "afss" / "configs" / "spark2024.yaml").read_text()


def test_installed_afss_runs_a_ready_config_by_name_from_an_empty_folder(installed, tmp_path):
    venv, env = installed
    tiny = ["data.n=8", "data.size=96", "eval.n=4", "eval.size=96", "student.epochs=1", "student.imgsz=64",
            "student.batch=4", "distill.rounds=1", "report=false"]
    argv = [str(venv / "bin" / "afss"), "-q", "run", "demo", "--out", "run"]
    for kv in tiny:
        argv += ["--set", kv]
    proc = _run(argv, cwd=tmp_path, env={**env, "OMP_NUM_THREADS": "2"})
    assert "student-round-1" in proc.stdout and "teacher" in proc.stdout, proc.stdout
    assert (tmp_path / "run" / "distill" / "round-1").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written outside --out
