"""Sphinx extension: the book's HTML shows solution code as code, without the student edition's markers.

The notebooks mark each solution region with ``# BEGIN SOLUTION [message]`` and ``# END SOLUTION`` lines, which
tools/student_edition.py turns into stubs. On the page those lines are noise, so every code block of the doctree
loses its ``# END SOLUTION`` lines, and a ``# BEGIN SOLUTION message`` line becomes the plain comment ``# message``
(dropped when there is no message). The notebooks themselves keep the markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docutils import nodes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from student_edition import BEGIN, END  # noqa: E402 (tools/ is not a package)


def without_markers(source: str) -> str:
    """``source`` with its solution markers removed (a BEGIN line's message kept as a comment)."""
    out = []
    for line in source.split("\n"):
        begin = BEGIN.match(line)
        if begin:
            if begin["message"]:
                out.append(f"{begin['indent']}# {begin['message']}")
        elif not END.match(line):
            out.append(line)
    return "\n".join(out)


def hide_markers(app, doctree: nodes.document) -> None:
    for block in doctree.findall(nodes.literal_block):
        text = block.astext()
        if "SOLUTION" not in text:
            continue
        shown = without_markers(text)
        if shown != text:
            block.children = [nodes.Text(shown)]
            block.rawsource = shown


def setup(app):
    app.connect("doctree-read", hide_markers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
