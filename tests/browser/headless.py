"""Headless Chromium from the command line: the DOM after scripts ran, and screenshots, light or dark.

No driver and no DevTools client: ``chromium --headless --dump-dom`` prints the page's DOM once its scripts have had
``--virtual-time-budget`` milliseconds, and ``--screenshot`` saves the viewport. ``--force-dark-mode`` makes the page
see ``prefers-color-scheme: dark``, which the book's theme (pydata-sphinx-theme, mode "auto") follows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Names under which Debian, Ubuntu and Google ship the browser; ``CHROMIUM`` overrides them.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Quiet, offline, reproducible: no sandbox (containers), no GPU, nothing fetched but the pages asked for.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or ``None``."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((path for path in map(shutil.which, BROWSER_NAMES) if path), None)


def run(browser: str, url: str, *extra: str, dark: bool = False, budget_ms: int = 3000) -> str:
    """Load ``url`` in a fresh headless profile with ``extra`` flags; return what the browser printed."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra]
        command += ["--force-dark-mode"] if dark else []
        result = subprocess.run([*command, url], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def dump_dom(browser: str, url: str, *, dark: bool = False) -> str:
    """The DOM of ``url`` after its scripts ran, as HTML."""
    return run(browser, url, "--dump-dom", dark=dark)


def screenshot(browser: str, url: str, path: Path, *, dark: bool = False, size: tuple[int, int] = (1280, 1600)) -> Path:
    """Save the top ``size`` pixels of ``url`` as a PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run(browser, url, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", dark=dark)
    return path
