"""The book as a reader sees it: every page of _toc.yml loaded in headless Chromium, light and dark.

What each page must show is read from its source (the notebook or Markdown file): its title, at least as many
images and tables as its outputs hold, one block per exercise and per (folded) solution, and for notebooks the Colab
launch link that tools/colab.py derives from _config.yml. Every image must load, every internal link and #anchor
must exist. Screenshots of every page, light and dark, go to _build/screenshots/ for people to look at.
"""

from __future__ import annotations

import re
import sys
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

import headless
import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup
from PIL import Image, ImageStat

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
sys.path.insert(0, str(ROOT / "tools"))
import colab  # noqa: E402

DIRECTIVE = re.compile(r"^[ \t]*(?::{3,}|`{3,})\{(exercise|solution)\}", re.MULTILINE)
PIPE_TABLE = re.compile(r"^\|.*\|[ \t]*\n\|[ \t:|-]+\|[ \t]*$", re.MULTILINE)
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]+\)")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def toc_pages() -> list[str]:
    """Every page of _toc.yml, in reading order, as paths without suffix (``book/01_reading_the_paper``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return [re.sub(r"\.(ipynb|md)$", "", page) for page in pages]


@dataclass
class Expected:
    """What a page must show, read from its source."""

    title: str
    images: int
    tables: int
    exercises: int
    solutions: int
    notebook: str | None  # the notebook's path in the repository, for the Colab link


def expected(page: str) -> Expected:
    notebook = ROOT / f"{page}.ipynb"
    if notebook.exists():
        cells = [
            cell
            for cell in nbformat.read(notebook, as_version=4).cells
            if "remove-cell" not in cell.metadata.get("tags", [])
        ]
        markdown = "\n\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
        outputs = [output for cell in cells if cell.cell_type == "code" for output in cell.outputs]
        data = [output.get("data", {}) for output in outputs]
        images = sum(any(kind in d for kind in IMAGE_TYPES) for d in data)
        tables = sum("<table" in d.get("text/html", "") for d in data)
        source = f"{page}.ipynb"
    else:
        markdown = (ROOT / f"{page}.md").read_text()
        images = tables = 0
        source = None
    title = next(line[2:].strip() for line in markdown.splitlines() if line.startswith("# "))
    kinds = DIRECTIVE.findall(markdown)
    return Expected(
        title=title,
        images=images + len(MARKDOWN_IMAGE.findall(markdown)),
        tables=tables + len(PIPE_TABLE.findall(markdown)),
        exercises=kinds.count("exercise"),
        solutions=kinds.count("solution"),
        notebook=source,
    )


PAGES = toc_pages()


@pytest.fixture(scope="session")
def rendered(browser, site) -> dict[str, str]:
    """Every page's DOM after its scripts ran (light mode), and its light and dark screenshots, made in parallel."""

    def render(page: str) -> tuple[str, str]:
        url = urllib.parse.urljoin(site, f"{page}.html")
        name = page.replace("/", "_")
        headless.screenshot(browser, url, SCREENSHOTS / f"{name}-light.png")
        headless.screenshot(browser, url, SCREENSHOTS / f"{name}-dark.png", dark=True)
        return page, headless.dump_dom(browser, url)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(render, PAGES))


def article(dom: str) -> BeautifulSoup:
    content = BeautifulSoup(dom, "html.parser").select_one("article.bd-article")
    assert content is not None, "the page has no article: not a Jupyter Book page?"
    return content


@cache
def ids_of(path: Path) -> frozenset[str]:
    soup = BeautifulSoup(path.read_text(), "html.parser")
    return frozenset(tag["id"] for tag in soup.find_all(id=True))


@pytest.mark.parametrize("page", PAGES)
def test_title(rendered, page):
    soup = BeautifulSoup(rendered[page], "html.parser")
    want = expected(page).title
    heading = article(rendered[page]).find("h1")
    assert heading is not None
    number = heading.find("span", class_="section-number")  # chapters are numbered (_toc.yml): "2. VGG-16 by hand"
    prefix = number.get_text() if number else ""
    assert heading.get_text("", strip=False).strip().rstrip("#").strip() == f"{prefix}{want}".strip()
    assert re.match(rf"({re.escape(prefix)})?{re.escape(want)}", soup.title.get_text())


@pytest.mark.parametrize("page", PAGES)
def test_images_load(rendered, site, page):
    url = urllib.parse.urljoin(site, f"{page}.html")
    soup = BeautifulSoup(rendered[page], "html.parser")
    in_article = article(rendered[page]).find_all("img")
    assert len(in_article) >= expected(page).images, "fewer images on the page than outputs in the notebook"
    for img in soup.find_all("img"):
        src = urllib.parse.urljoin(url, img["src"])
        if not src.startswith(site):
            assert img not in in_article, f"an image in the text is fetched from elsewhere: {src}"
            continue
        with urllib.request.urlopen(src) as response:
            assert response.status == 200
            body = response.read()
        if src.endswith(".svg"):
            assert b"<svg" in body[:1000], f"{src} is not an SVG image"
        else:
            with Image.open(BytesIO(body)) as image:
                image.verify()
                assert image.width > 0 and image.height > 0, src


@pytest.mark.parametrize("page", PAGES)
def test_tables_exercises_and_solutions(rendered, page):
    content, want = article(rendered[page]), expected(page)
    assert len(content.find_all("table")) >= want.tables
    assert len(content.select("div.exercise")) == want.exercises
    solutions = content.select("div.solution")
    assert len(solutions) == want.solutions
    assert all("dropdown" in solution["class"] for solution in solutions), "a solution is not folded away"


@pytest.mark.parametrize("page", [page for page in PAGES if expected(page).notebook])
def test_colab_launch_link(rendered, page):
    link = colab.Repository.from_config(ROOT / "_config.yml").colab_url(expected(page).notebook)
    hrefs = {a.get("href") for a in BeautifulSoup(rendered[page], "html.parser").find_all("a")}
    assert link in hrefs, f"no launch link to {link}"


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_and_anchors_exist(rendered, site, page):
    url = urllib.parse.urljoin(site, f"{page}.html")
    broken = []
    for a in BeautifulSoup(rendered[page], "html.parser").find_all("a", href=True):
        target = urllib.parse.urljoin(url, a["href"])
        if not target.startswith(site):
            continue  # external: not checked offline
        parsed = urllib.parse.urlparse(target)
        path = HTML / urllib.parse.unquote(parsed.path).lstrip("/")
        path = path / "index.html" if path.is_dir() else path
        if not path.exists():
            broken.append(f"{a['href']} (no file)")
        elif parsed.fragment and path.suffix == ".html" and urllib.parse.unquote(parsed.fragment) not in ids_of(path):
            broken.append(f"{a['href']} (no #{parsed.fragment})")
    assert broken == []


def test_dark_mode(browser, site, rendered):
    """The theme follows the reader's dark preference, and every dark screenshot is darker than the light one."""
    dom = headless.dump_dom(browser, urllib.parse.urljoin(site, f"{PAGES[0]}.html"), dark=True)
    assert BeautifulSoup(dom, "html.parser").html["data-theme"] == "dark"
    assert BeautifulSoup(rendered[PAGES[0]], "html.parser").html["data-theme"] == "light"
    for page in PAGES:
        name = page.replace("/", "_")
        light, dark = (
            ImageStat.Stat(Image.open(SCREENSHOTS / f"{name}-{mode}.png").convert("L")).mean[0]
            for mode in ("light", "dark")
        )
        assert dark < light / 2, f"{page}: the dark screenshot is not dark (mean grey {dark:.0f} against {light:.0f})"


@pytest.mark.parametrize("page", PAGES)
def test_no_solution_markers_on_the_page(page):
    """Solution code reads as code: the student edition's "# BEGIN/END SOLUTION" lines are not shown in its code
    (_ext/solution_markers.py takes them out of the HTML; the notebooks keep them)."""
    soup = BeautifulSoup((HTML / f"{page}.html").read_text(), "html.parser")
    code = "\n".join(pre.get_text() for pre in soup.select("pre"))  # prose may name the markers (instructors)
    assert "BEGIN SOLUTION" not in code and "END SOLUTION" not in code
