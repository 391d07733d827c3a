"""Ultralytics, imported offline and tidy.

Ultralytics (AGPL-3.0, an optional extra: ``pip install afss[student]``) reaches for the network and
the user's home unless told otherwise: it writes settings to ``~/.config/Ultralytics``, syncs
analytics, downloads ``Arial.ttf`` for its plots on every dataset check, and pins PyTorch to one
thread. `ultralytics()` imports it once per process with all of that turned off:

* ``YOLO_CONFIG_DIR`` points at a private temporary folder (removed at exit) unless the user set it;
* ``YOLO_OFFLINE=1`` and the ``sync`` setting off: no request leaves the machine;
* the fonts it looks for are matplotlib's DejaVu Sans, copied into that folder;
* PyTorch uses every core (``OMP_NUM_THREADS`` and ``torch.set_num_threads``) unless the user chose;
* OpenCV keeps the threads it had (Ultralytics sets none on import).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

from afss.errors import AfssError

__all__ = ["INSTALL_HINT", "ultralytics"]

INSTALL_HINT = ("the student needs Ultralytics (AGPL-3.0), an optional extra: pip install 'afss[student]' "
                "(or pip install ultralytics onnx onnxruntime)")
_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
_module: ModuleType | None = None


def ultralytics() -> ModuleType:
    """The ``ultralytics`` module, imported offline with its files kept out of the user's home.

    Raises:
        AfssError: Ultralytics is not installed (the message says how to install it).
    """
    global _module
    if _module is not None:
        return _module
    if not os.environ.get("YOLO_CONFIG_DIR"):
        config = Path(tempfile.mkdtemp(prefix="afss-ultralytics-"))
        atexit.register(shutil.rmtree, config, True)
        os.environ["YOLO_CONFIG_DIR"] = str(config)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    threads = str(os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", threads)  # ultralytics sets 1 when it is unset
    _install_fonts(Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics")
    import cv2

    cv_threads = cv2.getNumThreads()
    try:
        import ultralytics as module
    except ImportError as e:
        raise AfssError(INSTALL_HINT) from e
    # Ultralytics turns OpenCV's threads off on import (for DataLoader workers; afss trains with
    # workers=0): give the rest of the process, e.g. a photometric teacher, its threads back
    cv2.setNumThreads(cv_threads)
    import torch
    from ultralytics.utils import SETTINGS

    # no analytics; and no Ray Tune callback (it warns on every run where Ray is installed)
    SETTINGS.update({"sync": False, "raytune": False})
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]) if os.environ["OMP_NUM_THREADS"].isdigit() else int(threads))
    _module = module
    return module


def _install_fonts(folder: Path) -> None:
    """Ultralytics downloads Arial for its plots when it is missing; DejaVu Sans (shipped with
    matplotlib) under those names keeps it from asking the network."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    folder.mkdir(parents=True, exist_ok=True)
    for name in _FONTS:
        target = folder / name
        if not target.exists() and source.exists():
            shutil.copyfile(source, target)
