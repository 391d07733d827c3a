"""Open a local HTML page in headless Chromium and say how it went: console errors, network requests,
images that did not load, whether the AP table is there; optionally a full-page screenshot.

It drives Debian's ``chromium`` (``apt-get install chromium``) through the Python ``playwright``
package (``pip install playwright``; its own browser download, ``playwright install``, is never
needed). Chromium runs with a fresh profile and its background networking off (update checks,
sync, field trials), so the only requests are the page's own; every one that is not the page file
or a ``data:`` URL is recorded and refused.

Example:
    >>> check = check_page("runs/demo/report.html", screenshot="report.png")  # doctest: +SKIP
    >>> check.ok, check.images, check.requests  # doctest: +SKIP
    (True, 61, ())
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from afss.errors import AfssError
from afss.io.atomic import write_bytes_atomic

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PageCheck", "check_page", "find_chromium", "require_playwright"]

CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium, the default browser."""

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""``--no-sandbox``: we may run as root (CI does), where Chromium's sandbox refuses to start. The
rest keep a headless Chromium from calling home."""


@dataclass(frozen=True)
class PageCheck:
    """What loading a page in Chromium showed.

    Attributes:
        url: the ``file://`` URL opened.
        console: console messages of type error or warning, and uncaught page errors, as
            ``"error: text"`` lines.
        requests: every request that was not the page itself nor a ``data:`` URL (all refused).
        images: ``<img>`` elements on the page.
        images_failed: of those, the ones that did not load (``naturalWidth == 0``).
        has_ap_table: the page holds ``table#ap-table`` with at least one body row.
        screenshot: the full-page PNG written, if one was asked for.
    """

    url: str
    console: tuple[str, ...]
    requests: tuple[str, ...]
    images: int
    images_failed: int
    has_ap_table: bool
    screenshot: Path | None = None

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(m for m in self.console if m.startswith("error"))

    @property
    def ok(self) -> bool:
        """No console error, no request, every image loaded."""
        return not self.errors and not self.requests and self.images_failed == 0

    def line(self) -> str:
        return (f"{self.images} images ({self.images_failed} failed), {len(self.errors)} console errors, "
                f"{len(self.requests)} network requests, AP table {'present' if self.has_ap_table else 'absent'}")


def find_chromium(executable: str | os.PathLike | None = None) -> str:
    """The Chromium binary to use: ``executable``, else `CHROMIUM`, else ``chromium`` on the PATH.

    Raises:
        AfssError: none found, naming what to install.
    """
    if executable is not None:
        if not Path(executable).is_file():
            raise AfssError(f"{executable}: no such browser executable")
        return os.fspath(executable)
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise AfssError(f"chromium is not installed ({CHROMIUM} not found); install Debian's package: "
                        "apt-get install --no-install-recommends chromium")
    return found


def require_playwright():
    """playwright's ``sync_playwright``, or an `AfssError` saying what to install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise AfssError("playwright is not installed; pip install playwright (the Python package only: "
                        "afss uses the system's chromium, no `playwright install`)") from e
    return sync_playwright


def check_page(path: str | os.PathLike, *, screenshot: str | os.PathLike | None = None,
               executable: str | os.PathLike | None = None, width_px: int = 1280, height_px: int = 900,
               timeout_s: float = 60.0) -> PageCheck:
    """Load the local HTML file ``path`` in headless Chromium and report on it (see `PageCheck`).

    Args:
        path: the HTML file.
        screenshot: write a full-page screenshot there (PNG, or JPEG for a ``.jpg`` name).
        executable: the Chromium binary (default `find_chromium`).
        width_px, height_px: the window size.
        timeout_s: give up loading after this long.

    Raises:
        AfssError: no such file, playwright or chromium missing, or Chromium failed to start or load.
    """
    page_path = Path(path).resolve()
    if not page_path.is_file():
        raise AfssError(f"{path}: no such file")
    sync_playwright = require_playwright()
    browser = find_chromium(executable)
    url = page_path.as_uri()
    console: list[str] = []
    requests: list[str] = []

    def on_route(route) -> None:
        request_url = route.request.url
        if request_url == url or request_url.startswith("data:"):
            route.continue_()
        else:
            requests.append(request_url)
            route.abort()

    from playwright.sync_api import Error as PlaywrightError

    with tempfile.TemporaryDirectory(prefix="afss-chromium-") as profile, sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=browser, headless=True, args=list(CHROMIUM_ARGS),
                viewport={"width": width_px, "height": height_px}, timeout=timeout_s * 1000)
        except PlaywrightError as e:
            raise AfssError(f"{browser}: Chromium did not start ({str(e).splitlines()[0][:200]})") from e
        try:
            context.route("**/*", on_route)
            page = context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: console.append(f"error: {e}"))
            page.on("request", lambda r: None if r.url == url or r.url.startswith("data:") or r.url in requests
                    else requests.append(r.url))
            try:
                page.goto(url, wait_until="load", timeout=timeout_s * 1000)
            except PlaywrightError as e:
                raise AfssError(f"{path}: Chromium could not load the page ({str(e).splitlines()[0][:200]})") from e
            images, failed = page.evaluate(
                "() => { const im = Array.from(document.images);"
                " return [im.length, im.filter(i => !i.complete || i.naturalWidth === 0).length]; }")
            has_table = page.locator("table#ap-table tbody tr").count() > 0
            shot = None
            if screenshot is not None:
                shot = Path(screenshot)
                jpeg = shot.suffix.lower() in (".jpg", ".jpeg")  # JPEG: a tenth of the PNG's size, for docs
                write_bytes_atomic(shot, page.screenshot(full_page=True, type="jpeg" if jpeg else "png",
                                                         **({"quality": 80} if jpeg else {})))
        finally:
            context.close()
    return PageCheck(url=url, console=tuple(console), requests=tuple(requests), images=int(images),
                     images_failed=int(failed), has_ap_table=bool(has_table), screenshot=shot)
