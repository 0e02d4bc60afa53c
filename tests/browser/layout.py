"""Layout as a reader sees it, measured in a real browser: Playwright driving the system's Chromium.

Playwright's own browser download is never used (CI has no internet for it): :func:`open_browser` launches the
Chromium that ``headless.find_browser`` finds (Debian's ``chromium``, installed by ``make browser``).

:data:`OVERFLOW_SCRIPT` runs in the page. For every visible element of the article it finds the nearest ancestor
that clips or scrolls horizontally (computed ``overflow-x`` other than ``visible``), up to the article itself. An
element that sticks out of that container is *clipped* unless the container scrolls (``auto`` or ``scroll``, with
content wider than itself, so a scroll bar is there); an element that sticks out of the article with no such
container between is clipped by the page. A box that scrolls or clips sideways with content wider than itself
*hides* that content (a reader must scroll to see it) whether or not a scroll bar is drawn: the laptop and desktop
widths must have none, code as written excepted. Solutions and other ``<details>`` are opened first, as a reader
would.
"""

from __future__ import annotations

from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

#: The widths the book is read at: a laptop, a desktop monitor, a phone.
WIDTHS = {"laptop": 1280, "desktop": 1920, "phone": 390}

OVERFLOW_SCRIPT = """
() => {
  document.querySelectorAll("details").forEach((d) => (d.open = true));
  const article = document.querySelector("article.bd-article");
  if (!article) return {error: "no article"};
  const scrolls = (style) => style.overflowX === "auto" || style.overflowX === "scroll";
  const describe = (el) => {
    const names = typeof el.className === "string" ? el.className.trim() : "";
    const cls = names ? "." + names.split(/\\s+/).join(".") : "";
    const text = (el.innerText || el.textContent || "").trim().replace(/\\s+/g, " ");
    return `${el.tagName.toLowerCase()}${cls} "${text.slice(0, 80)}"`;
  };
  const clipped = [];
  const wideCode = [];
  for (const el of article.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden" || style.position === "fixed") continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    let container = el.parentElement;
    while (container !== article && getComputedStyle(container).overflowX === "visible") {
      container = container.parentElement;
    }
    const frame = container.getBoundingClientRect();
    const left = container === article ? frame.left : frame.left + container.clientLeft;
    const right = container === article ? frame.right : left + container.clientWidth;
    if (box.right <= right + 1 && box.left >= left - 1) continue;
    if (container !== article && scrolls(getComputedStyle(container))) continue;
    clipped.push(`${describe(el)} (${Math.round(box.width)} px wide) sticks out of ${describe(container)}`);
    if (clipped.length >= 20) break;
  }
  // A box that scrolls or clips sideways and holds more than it shows hides part of its content from a reader who
  // does not scroll: a result table, a printed line. Code as written (a code cell's input, a code block in the
  // text) is excepted: it is measured by wideCode.
  const hidden = [];
  const isCode = (el) => el.matches("div.highlight pre") && !el.closest("div.cell_output");
  for (const el of article.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    if (style.overflowX === "visible" || style.display === "none" || style.visibility === "hidden") continue;
    if (el.clientWidth === 0 || el.scrollWidth <= el.clientWidth + 1 || isCode(el)) continue;
    hidden.push(`${describe(el)} shows ${el.clientWidth} px of its ${el.scrollWidth} px`);
    if (hidden.length >= 20) break;
  }
  for (const pre of article.querySelectorAll("div.highlight pre")) {
    if (pre.closest("div.cell_output") || pre.scrollWidth <= pre.clientWidth + 1) continue;
    wideCode.push(`${describe(pre)} needs ${pre.scrollWidth} px of ${pre.clientWidth}`);
  }
  return {clipped, hidden, wideCode};
}
"""


@contextmanager
def open_browser(executable: str):
    """A headless Chromium from ``executable`` under Playwright, closed afterwards."""
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


def measure(browser: Browser, url: str, width: int, screenshot=None) -> dict:
    """Load ``url`` at ``width`` px and return what :data:`OVERFLOW_SCRIPT` found; save a full-page screenshot."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(url, wait_until="load")
        page.wait_for_timeout(300)  # the theme's scripts settle (dark mode, sidebars)
        result = page.evaluate(OVERFLOW_SCRIPT)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        return result
    finally:
        page.close()
