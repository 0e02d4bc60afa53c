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
def test_nothing_is_scrolled_out_of_view(measured, page, device):
    """At 1280 and 1920 px no result table, printed line or message needs a scroll bar: tables fit, lines wrap."""
    hidden = measured[page, device]["hidden"]
    assert hidden == [], f"at {layout.WIDTHS[device]} px, scrolled out of view:\n" + "\n".join(hidden)


@pytest.mark.parametrize("device", ["laptop", "desktop"])
@pytest.mark.parametrize("page", PAGES)
def test_code_fits_the_page(measured, page, device):
    """Code is formatted to the width the theme shows (ruff's line length for notebooks), so it never scrolls."""
    assert measured[page, device]["wideCode"] == [], "\n".join(measured[page, device]["wideCode"])


#: A table far wider than any page.
WIDE = "<table><tr><td style='white-space:nowrap'>" + "wide " * 200 + "</td></tr></table>"


def measure_page(browser, tmp_path, body: str, width: int = 1280) -> dict:
    """What the layout check finds on a self-test page: ``body`` inside a 600 px article."""
    page = tmp_path / "page.html"
    page.write_text(f"<html><body><article class='bd-article' style='width:600px'>{body}</article></body></html>")
    with layout.open_browser(browser) as chromium:
        return layout.measure(chromium, page.as_uri(), width)


def test_the_check_sees_clipping(browser, tmp_path):
    """A page with a wide table in a clipping box, and one in a scrolling box: only the first is reported."""
    clipped = measure_page(
        browser,
        tmp_path,
        f"<div class='clipper' style='overflow:hidden'>{WIDE}</div>"
        f"<div class='scroller' style='overflow-x:auto'>{WIDE}</div><div class='spill'>{WIDE}</div>",
    )["clipped"]
    assert any("sticks out of div.clipper" in line for line in clipped)  # hidden overflow: clipped
    assert any(line.startswith("table") and "sticks out of article" in line for line in clipped)  # spills out
    assert not any("scroller" in line for line in clipped)  # a scrolling box is fine


def test_the_check_sees_content_scrolled_out_of_view(browser, tmp_path):
    """A self-test page: a wide table or printed line in a box with a scroll bar, or in one that clips, is hidden;
    a box whose content fits is not, and neither is a code cell's input (code as written, measured by wideCode)."""
    line = "<pre>" + "x" * 400 + "</pre>"
    hidden = measure_page(
        browser,
        tmp_path,
        f"<div class='table-scroller' style='overflow-x:auto'>{WIDE}</div>"
        f"<div class='cell_output'><div class='highlight'><pre style='overflow-x:auto'>{'y' * 400}</pre></div></div>"
        f"<div class='clipper' style='overflow:hidden'>{WIDE}</div>"
        f"<div class='fits' style='overflow-x:auto'><table><tr><td>narrow</td></tr></table></div>"
        f"<div class='cell_input'><div class='highlight'><pre style='overflow-x:auto'>{'z' * 400}</pre></div></div>"
        f"<div class='printed' style='overflow-x:scroll'>{line}</div>",
    )["hidden"]
    assert any(line.startswith("div.table-scroller") for line in hidden), hidden  # a scroll bar hides the rest
    assert any(line.startswith('pre "yyy') for line in hidden), hidden  # a printed line in an output
    assert any(line.startswith("div.clipper") for line in hidden), hidden  # no scroll bar, clipped
    assert any(line.startswith("div.printed") for line in hidden), hidden
    assert not any("fits" in line or "zzz" in line for line in hidden), hidden
    assert len(hidden) == 4, hidden
