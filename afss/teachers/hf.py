"""What the transformers-based teachers share: device and dtype choice, weight loading that fails
fast and clearly when the hub cannot be reached, and option checking for ``build(**options)``.

Weights come from ``from_pretrained(id_or_dir)``: a Hugging Face hub id (downloaded once into the
hub cache, ``$HF_HOME/hub``) or a local folder written by ``save_pretrained`` (works offline).
An unguarded ``from_pretrained(hub_id)`` on a machine without internet retries for minutes; here
the cache is tried first, and a hub id that is not cached fails at once when ``HF_HUB_OFFLINE`` is
set or the hub cannot be reached, with one line saying what to do.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from afss.devices import cuda_count, mps_available, unavailable
from afss.errors import AfssError, unknown_choice

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("fp32", "bf16", "fp16")
DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_TRUE = {"1", "ON", "YES", "TRUE"}


def resolve_device(device: str = "auto"):
    """``"auto"`` -> cuda if available, else mps, else cpu; ``"cuda:1"`` style indices are kept.

    Returns:
        A ``torch.device``. Raises `AfssError` for an unknown name or an unavailable accelerator.
    """
    import torch

    base = device.split(":", 1)[0]
    if base not in DEVICES:
        raise unknown_choice("device", device, DEVICES)
    if base == "auto":
        chosen = torch.device("cuda" if cuda_count() else "mps" if mps_available() else "cpu")
        if chosen.type == "cpu":  # where a GPU user would otherwise see only slow seconds per image
            _say_cpu_fallback("torch was built without CUDA" if not torch.backends.cuda.is_built() else "torch sees no GPU")
        return chosen
    problem = unavailable(device)
    if problem:
        raise AfssError(f"device {device!r} requested, but {problem}; use device='cpu' or 'auto'")
    return torch.device(device)


@functools.cache
def _say_cpu_fallback(why: str) -> None:
    """Once per process: a teacher of two models resolves ``auto`` for each."""
    log.info("device auto: %s, so the model runs on the CPU (device='cuda' would say why)", why)


def resolve_dtype(dtype: str, device, what: str = "dtype") -> Any:
    """``"fp32" | "bf16" | "fp16"`` (or ``"float32"``...) -> ``torch.dtype``; fp16 needs a GPU.

    ``what`` names the option in errors (``"dtype"``, ``"detector_dtype"``)."""
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in table:
        raise unknown_choice(what, dtype, table)
    if dtype == "fp16" and device.type == "cpu":
        raise AfssError(f"{what} 'fp16' needs device cuda or mps; on cpu use 'fp32' or 'bf16'")
    return table[dtype]


def hub_offline() -> bool:
    """Whether Hugging Face offline mode is on (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    import huggingface_hub.constants as hc

    env = any(os.environ.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return env or bool(hc.HF_HUB_OFFLINE)


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint (``HF_ENDPOINT``); assumed reachable behind a proxy."""
    import huggingface_hub.constants as hc

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(hc.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def offline_message(model_id: str, why: str) -> str:
    # The last hint depends on the mode: telling a user who set HF_HUB_OFFLINE=1 to set it is no help.
    last = ("or unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE to let it download" if hub_offline()
            else "set HF_HUB_OFFLINE=1 to use only the cache and fail at once")
    return (
        f"cannot load model {model_id!r}: {why}. Download it once on a machine with internet "
        f"(`hf download {model_id}`, stored under $HF_HOME/hub, default ~/.cache/huggingface) "
        f"and copy the cache, or pass a local folder written by save_pretrained() instead of the hub id; "
        f"{last}"
    )


def load_pretrained(cls: Any, id_or_dir: str | os.PathLike, **kwargs: Any) -> Any:
    """``cls.from_pretrained(id_or_dir, **kwargs)`` that fails fast and clearly without internet.

    Args:
        cls: a transformers class with ``from_pretrained`` (model, processor, config).
        id_or_dir: a local folder (used as is) or a hub id such as ``"IDEA-Research/grounding-dino-tiny"``.
        kwargs: passed to ``from_pretrained``.

    Raises:
        AfssError: the folder is not a saved model, or the hub id is not cached and the hub cannot be
            used (offline mode or no network); the message names the id and how to pass a folder.
    """
    name = str(id_or_dir)
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            return cls.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError) as e:
            raise AfssError(f"{path}: not a saved {cls.__name__} folder (expected save_pretrained() output): "
                            f"{str(e).splitlines()[0]}") from e
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise AfssError(f"{name}: no such model folder (expected a folder written by save_pretrained() "
                        f"or a hub id like 'org/name')")
    try:  # the cache first: no network
        return cls.from_pretrained(name, local_files_only=True, **kwargs)
    except OSError as e:
        cached_error = e
    # "org/name" is a hub id's shape, but where "org" is a folder here the user likely meant a folder
    mistyped = f"no such folder here ({path.parent}/ has no {path.name}), and as a hub id it is " \
        if path.parent.is_dir() and str(path.parent) not in ("", ".") else ""
    if hub_offline():
        raise AfssError(offline_message(name, f"{mistyped}not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                                              "set")) from cached_error
    if not hub_reachable():
        raise AfssError(offline_message(name, f"{mistyped}not in the local Hugging Face cache and the hub is "
                                              "unreachable")) from cached_error
    log.info("downloading %s for %s from the Hugging Face hub", name, cls.__name__)
    try:
        return cls.from_pretrained(name, **kwargs)
    except OSError as e:
        # the hub's message in one line, whole: for a gated or private model its later lines say where to
        # ask for access, and to log in (`hf auth login`)
        why = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise AfssError(f"cannot load model {name!r} from the Hugging Face hub: {why}") from e


def build_from_options(cls: type, options: dict[str, Any]) -> Any:
    """``cls(**options)`` after rejecting unknown option names with a close-match suggestion."""
    from afss.teachers.base import check_options

    params = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}
    defaults = {k: (None if v is inspect.Parameter.empty else v) for k, v in params.items()}
    return cls(**check_options(options, defaults, f"{cls.name} teacher"))


def to_device(batch: dict[str, Any], device, dtype) -> dict[str, Any]:
    """Move a processor's tensors to ``device``; floating tensors also to ``dtype``."""
    import torch

    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, dtype) if value.is_floating_point() else value.to(device)
        out[key] = value
    return out


def normalize_gdino_prompt(prompt: str) -> str:
    """Grounding DINO's convention: lower case, phrases separated by ``.``, ending in ``.``.

    ``"Spacecraft"`` -> ``"spacecraft."``; ``"Satellite. solar panel"`` -> ``"satellite. solar panel."``.
    """
    phrases = [p.strip() for p in prompt.lower().split(".") if p.strip()]
    if not phrases:
        raise AfssError(f"empty text prompt {prompt!r}: say what to find, e.g. 'spacecraft'")
    return " . ".join(phrases).replace(" . ", ". ") + "."


def split_phrases(prompt: str) -> list[str]:
    """``"satellite. solar panel"`` -> ``["satellite", "solar panel"]`` (OWLv2 / SAM 3 queries)."""
    phrases = [p.strip() for p in prompt.lower().split(".") if p.strip()]
    if not phrases:
        raise AfssError(f"empty text prompt {prompt!r}: say what to find, e.g. 'spacecraft'")
    return phrases
