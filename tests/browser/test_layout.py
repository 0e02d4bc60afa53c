"""Nothing in the book is clipped at a laptop's, a desktop's or a phone's width, and code fits without scrolling.

Every page of _toc.yml is loaded with Playwright in the system's Chromium at 1280, 1920 and 390 px; see
:mod:`layout` for what "clipped" means. Full-page screenshots go to _build/screenshots/layout/ for people to look at.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import layout
import pytest
from test_book_in_browser import PAGES

SCREENSHOTS = Path(__file__).resolve().parents[2] / "_build" / "screenshots" / "layout"


@pytest.fixture(scope="module")
def measured(browser, site) -> dict[tuple[str, str], dict]:
    results = {}
    with layout.open_browser(browser) as chromium:
        for page in PAGES:
            url = urllib.parse.urljoin(site, f"{page}.html")
            for device, width in layout.WIDTHS.items():
                shot = SCREENSHOTS / f"{page.replace('/', '_')}-{width}.png"
                results[page, device] = layout.measure(chromium, url, width, screenshot=shot)
    return results


@pytest.mark.parametrize("device", list(layout.WIDTHS))
@pytest.mark.parametrize("page", PAGES)
def test_nothing_is_clipped(measured, page, device):
    result = measured[page, device]
    assert "error" not in result, result
    assert result["clipped"] == [], f"at {layout.WIDTHS[device]} px:\n" + "\n".join(result["clipped"])


@pytest.mark.parametrize("device", ["laptop", "desktop"])
@pytest.mark.parametrize("page", PAGES)
def test_code_fits_the_page(measured, page, device):
    """Code is formatted to the width the theme shows (ruff's line length for notebooks), so it never scrolls."""
    assert measured[page, device]["wideCode"] == [], "\n".join(measured[page, device]["wideCode"])


def test_the_check_sees_clipping(browser, tmp_path):
    """A page with a wide table in a clipping box, and one in a scrolling box: only the first is reported."""
    page = tmp_path / "page.html"
    wide = "<table><tr><td style='white-space:nowrap'>" + "wide " * 200 + "</td></tr></table>"
    page.write_text(
        "<html><body><article class='bd-article' style='width:600px'>"
        f"<div class='clipper' style='overflow:hidden'>{wide}</div>"
        f"<div class='scroller' style='overflow-x:auto'>{wide}</div><div class='spill'>{wide}</div>"
        "</article></body></html>"
    )
    with layout.open_browser(browser) as chromium:
        result = layout.measure(chromium, page.as_uri(), 1280)
    clipped = result["clipped"]
    assert any("sticks out of div.clipper" in line for line in clipped)  # hidden overflow: clipped
    assert any(line.startswith("table") and "sticks out of article" in line for line in clipped)  # spills out
    assert not any("scroller" in line for line in clipped)  # a scrolling box is fine
