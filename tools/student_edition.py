"""Make the student edition of the book's notebooks: solutions out, stubs in, outputs cleared, checks kept.

    python tools/student_edition.py book/ -o _build/student/

What changes, in each notebook (the conventions chapter authors follow are in book/instructors.md):

- in code cells, the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` become one line,
  ``raise NotImplementedError("Exercise: ...")``, indented like the ``# BEGIN SOLUTION`` line; text after the
  marker (``# BEGIN SOLUTION write the forward pass``) becomes the stub's message;
- cells tagged ``solution`` are dropped, and so is the Colab badge (tag ``colab-badge``, see tools/colab.py), which
  links to the book's own notebook, solutions included; the Colab install cell stays;
- in markdown cells, sphinx-exercise ``{solution}`` blocks (colon or backtick fences, and ``{solution-start}`` ...
  ``{solution-end}``) are removed; a cell left empty is dropped;
- every output and execution count is cleared.

Everything else, the check cells that call :mod:`vgg_tutorial.lessons.exercises` included, stays as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION\b[ \t:]*(?P<message>.*?)[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION\b")
#: Cells with one of these tags are left out of the student edition.
DROPPED_TAGS = frozenset({"solution", "colab-badge"})
DEFAULT_MESSAGE = "replace this line with your code"
# A directive opening: ``:::{solution} label`` or ```` ```{solution} label ````; group "fence" is what closes it.
DIRECTIVE_OPEN = re.compile(r"^[ \t]*(?P<fence>:{3,}|`{3,})\{(?P<name>[\w-]+)\}")


class SolutionMarkerError(ValueError):
    """A ``# BEGIN SOLUTION`` without its ``# END SOLUTION`` (or the reverse)."""


def stub_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region of ``source`` by a stub.

    Returns the new source and the number of regions replaced.
    """
    lines, out, count, opened = source.split("\n"), [], 0, None
    for number, line in enumerate(lines, start=1):
        begin = BEGIN.match(line)
        if begin:
            if opened is not None:
                raise SolutionMarkerError(f"{where}, line {number}: '# BEGIN SOLUTION' inside another one")
            opened = number
            message = begin["message"] or DEFAULT_MESSAGE
            literal = json.dumps(f"Exercise: {message}", ensure_ascii=False)  # a valid Python string literal
            out.append(f"{begin['indent']}raise NotImplementedError({literal})")
            count += 1
        elif END.match(line):
            if opened is None:
                raise SolutionMarkerError(f"{where}, line {number}: '# END SOLUTION' without '# BEGIN SOLUTION'")
            opened = None
        elif opened is None:
            out.append(line)
    if opened is not None:
        raise SolutionMarkerError(f"{where}, line {opened}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'")
    return "\n".join(out), count


def is_fence_close(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened with ``fence``: the same character, at least as many times, alone."""
    text = line.strip()
    return len(text) >= len(fence) and set(text) == {fence[0]}


def remove_solution_blocks(markdown: str) -> str:
    """Remove sphinx-exercise solution blocks from ``markdown``, nested fences inside them included."""
    lines, out, closing, gated = markdown.split("\n"), [], None, False
    for line in lines:
        if closing is not None:  # inside a fenced {solution}: skip up to the line that is exactly its fence
            if is_fence_close(line, closing):
                closing = None
            continue
        if gated:  # inside {solution-start} ... {solution-end}: skip both directives and all between
            opened = DIRECTIVE_OPEN.match(line)
            if opened and opened["name"] == "solution-end":
                gated = False
                closing = opened["fence"]  # the -end directive's own fence closes it
            continue
        opened = DIRECTIVE_OPEN.match(line)
        if opened and opened["name"] == "solution":
            closing = opened["fence"]
            continue
        if opened and opened["name"] == "solution-start":
            gated = True
            continue
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, int]:
    """The student edition of ``nb`` (a new notebook) and the number of stubs it contains."""
    student = nbformat.from_dict(nb)  # a deep copy
    cells, stubs = [], 0
    for index, cell in enumerate(student.cells):
        if DROPPED_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if cell.cell_type == "code":
            cell.source, count = stub_solutions(cell.source, where=f"{name}, cell {index}")
            stubs += count
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = remove_solution_blocks(cell.source)
            if not cell.source.strip():
                continue
        cells.append(cell)
    student.cells = cells
    return student, stubs


def notebooks_in(paths: list[Path]) -> list[Path]:
    """The notebooks named in ``paths``, directories expanded to the notebooks they contain, sorted."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.ipynb")) if path.is_dir() else [path])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders of notebooks (e.g. book/)")
    parser.add_argument("-o", "--output", type=Path, default=Path("_build/student"), help="output folder")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for path in notebooks_in(args.paths):
        student, stubs = student_notebook(nbformat.read(path, as_version=4), name=str(path))
        nbformat.write(student, args.output / path.name)
        print(f"{args.output / path.name}: {stubs} exercise stub(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
