"""The COCO-pretrained YOLO-seg checkpoints Ultralytics publishes, by name: ``--init yolo11n-seg.pt``.

The paper's student starts from COCO-pretrained YOLO11-seg. A file of that name where ``--init``
points (the current folder for a bare name) is used as is; otherwise Ultralytics downloads it there
from its GitHub release, as ``YOLO("yolo11n-seg.pt")`` would. Offline, Ultralytics would try and
retry; afss first asks the release host whether it answers (a few seconds at most) and otherwise
fails in one line naming the file, the address it comes from and where to put it.

Example:
    >>> fetch_published("yolo11n-seg.pt")  # doctest: +SKIP
    PosixPath('yolo11n-seg.pt')
"""

from __future__ import annotations

import inspect
import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit

from afss.errors import AfssError

__all__ = ["PUBLISHED_SEG", "detection_name", "fetch_published", "published_seg", "published_url"]

log = logging.getLogger(__name__)

PUBLISHED_SEG: tuple[str, ...] = tuple(f"{family}{scale}-seg.pt" for family in ("yolo11", "yolov8") for scale in "nsmlx")
"""The published YOLO11 and YOLOv8 segmentation checkpoints (COCO-pretrained, 80 classes): the paper's
family, which the recipes were written for. `published_seg` adds the others this Ultralytics lists."""


def published_seg() -> tuple[str, ...]:
    """Every segmentation checkpoint the installed Ultralytics publishes (``*-seg.pt`` of its asset
    list: YOLO11, YOLOv8, YOLOv9, YOLO26, ...), less YOLOE's, which are prompted open-vocabulary models
    that train differently."""
    from afss.student.env import ultralytics

    ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    listed = {n for n in GITHUB_ASSETS_NAMES if n.endswith("-seg.pt") and not n.startswith("yoloe")}
    return tuple(sorted(listed | set(PUBLISHED_SEG)))


REACH_TIMEOUT_S = 5.0
"""How long the release host gets to answer before afss calls it unreachable."""


def published_url(name: str) -> str:
    """Where Ultralytics downloads the published checkpoint ``name`` from (its GitHub release)."""
    from afss.student.env import ultralytics

    ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_REPO, attempt_download_asset

    release = inspect.signature(attempt_download_asset).parameters["release"].default
    return f"https://github.com/{GITHUB_ASSETS_REPO}/releases/download/{release}/{name}"


def detection_name(name: str) -> str | None:
    """For a checkpoint Ultralytics publishes that is not a segmentation model (``yolo11n.pt``,
    ``yolov8s-pose.pt``), the segmentation checkpoint to use instead; else ``None``."""
    from afss.student.env import ultralytics

    ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    if name not in GITHUB_ASSETS_NAMES or "-seg" in name:
        return None
    stem = name.removesuffix(".pt").split("-")[0]
    return f"{stem}-seg.pt" if f"{stem}-seg.pt" in published_seg() else PUBLISHED_SEG[0]


def fetch_published(init: str, *, timeout_s: float = REACH_TIMEOUT_S) -> Path:
    """Download the published checkpoint ``init`` names (one of `PUBLISHED_SEG`, optionally with a
    folder) to that path, as Ultralytics does.

    Raises:
        AfssError: the release host does not answer within ``timeout_s`` or the download fails; one
            line with the file, its address and where to put it.
    """
    target = Path(init)
    url = published_url(target.name)
    hint = f"download {url} and put it at {target.resolve()} (or pass --init the path where it is)"
    host = urlsplit(url).hostname
    if not _reachable(url, timeout_s):
        raise AfssError(f"--init {init}: not here, and {host} does not answer (offline?): {hint}")
    log.info("--init %s: downloading %s", init, url)
    try:
        path = Path(_download(str(target)))
    except OSError as e:  # ConnectionError is one
        reason = (str(e).replace("\u274c", "").strip().splitlines() or [type(e).__name__])[0][:160]
        raise AfssError(f"--init {init}: the download failed ({reason}): {hint}") from e
    if not path.is_file():
        raise AfssError(f"--init {init}: the download left no file: {hint}")
    return path


def _download(file: str) -> str:
    """Ultralytics' own download of a published checkpoint to ``file``; afss sets ``YOLO_OFFLINE``,
    so a failed try is not retried for minutes."""
    from ultralytics.utils.downloads import attempt_download_asset

    return attempt_download_asset(file)


def _reachable(url: str, timeout_s: float) -> bool:
    """Whether ``url``'s host answers an HTTP HEAD within ``timeout_s`` (name lookup included, which
    ``requests`` does not time out by itself: it runs in a thread that is abandoned after the time)."""
    import requests

    answer: list[bool] = []

    def ask() -> None:
        try:
            requests.head(url, timeout=timeout_s, allow_redirects=False)
            answer.append(True)
        except requests.RequestException:
            answer.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answer and answer[0])
