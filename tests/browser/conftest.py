"""Fixtures for the browser tests: the built book served on 127.0.0.1, and a headless Chromium.

These tests read ``_build/html``, so they run after the book build (``make browser``), not with the unit tests:
``pytest tests`` leaves this folder out, ``pytest tests/browser`` runs it. Without Chromium they are skipped,
except under CI (``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
from headless import find_browser

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HTML = ROOT / "_build" / "html"


def pytest_ignore_collect(collection_path, config):
    """Collect this folder only when it (or a file in it) was asked for on the command line."""
    asked = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    if not any(HERE == path or HERE in path.parents for path in asked):
        return True
    return None


@pytest.fixture(scope="session")
def browser() -> str:
    path = find_browser()
    if path is None:
        message = "no Chromium found: install it with `apt-get install -y chromium` (make browser does)"
        if os.environ.get("CI"):
            pytest.fail(message + "; under CI the browser tests must run")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def site() -> str:
    """Serve ``_build/html`` over HTTP on a free port of 127.0.0.1 for the whole session; yield its base URL."""
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML} has no index.html: build the book first (make book-strict)")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the standard library's name)
        pass
