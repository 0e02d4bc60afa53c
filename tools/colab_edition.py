"""The Colab edition: the chapters as notebooks that Colab renders, with no MyST markup left.

    python tools/colab_edition.py book/ -o _build/colab/              # solutions folded in <details> blocks
    python tools/colab_edition.py book/ -o _build/colab/ --student    # the learners' variant: solutions out

Colab's Markdown knows nothing of MyST, so the Jupyter Book markup would show as raw text. In each markdown cell:

- an ``{exercise}`` block becomes a block quote headed **Exercise c.k** (c the chapter, k its place in the chapter,
  as the HTML book numbers it, see _toc.yml);
- a ``{solution}`` block becomes ``<details><summary>Solution to Exercise c.k</summary> … </details>``, folded as in
  the HTML book; with ``--student`` it is removed, and solution code is stubbed, by tools/student_edition.py;
- any other directive (``{admonition}``, ``{note}``) becomes a block quote with its title in bold;
- ``{cite:t}`key``` becomes "Author (year)", ``{cite:p}`key``` "(Author, year)", from references.bib, and a last
  cell lists the works cited, formatted by pybtex (the library sphinxcontrib-bibtex formats the HTML book's with).

Code cells, their outputs (cleared in the student variant) and the check cells stay as they are, except that in the
solutions variant a solution's code cell (solution markers, or the tag ``solution``) is folded as Colab folds code,
a form cell titled "Solution to Exercise c.k", and so is, in both variants, a cell the HTML book hides (tag
``hide-input``, which Colab ignores). The badge cell
is dropped (the notebook is the one it would open); the Colab install cell stays. A first cell says which edition
this is and opens the other in Colab: the learners' edition (what the badges and launch buttons open) links to the
one with solutions, and back.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from pybtex.database import parse_file
from pybtex.plugin import find_plugin

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import colab  # noqa: E402
import student_edition  # noqa: E402

OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<argument>.*?)[ \t]*$")
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*?)[ \t]*$")
CITE = re.compile(r"\{cite:(?P<kind>[tp])\}`(?P<keys>[^`]+)`")
#: What no cell of the Colab edition may contain: a MyST directive fence or role.
MYST_LEFT = re.compile(r"^[ \t]*(?::{3,}|`{3,})\{[\w:-]+\}|\{(?:cite|ref|numref|doc|eq|term)(?::\w+)?\}`", re.MULTILINE)


class Bibliography:
    """references.bib, for citations in the text and the list of works cited."""

    def __init__(self, path: Path = ROOT / "references.bib"):
        self.data = parse_file(str(path))

    def authors(self, key: str) -> str:
        people = self.data.entries[key].persons.get("author", [])
        names = [" ".join(person.last_names) for person in people]
        if len(names) > 2:
            return f"{names[0]} et al."
        return " and ".join(names)

    def year(self, key: str) -> str:
        return self.data.entries[key].fields.get("year", "n.d.")

    def cite(self, kind: str, keys: list[str]) -> str:
        if kind == "t":
            return "; ".join(f"{self.authors(key)} ({self.year(key)})" for key in keys)
        return "(" + "; ".join(f"{self.authors(key)}, {self.year(key)}" for key in keys) + ")"

    def references(self, keys: list[str]) -> str:
        """The works ``keys`` as a Markdown list, formatted by pybtex's plain style."""
        style = find_plugin("pybtex.style.formatting", "plain")()
        backend = find_plugin("pybtex.backends", "markdown")()
        entries = {key: self.data.entries[key] for key in keys}
        formatted = style.format_entries(entries.values())
        return "\n".join(f"- {entry.text.render(backend)}" for entry in formatted)


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.strip("\n").split("\n"))


def convert_markdown(source: str, chapter: int, numbers: dict[str, str], bibliography: Bibliography, cited: list):
    """``source`` without MyST: directives as Markdown and HTML, citations as text. ``numbers`` maps exercise labels
    to their numbers and grows as exercises are met; ``cited`` collects the keys cited, in order."""
    lines, out, index = source.split("\n"), [], 0
    while index < len(lines):
        opened = OPEN.match(lines[index])
        if not opened:
            out.append(lines[index])
            index += 1
            continue
        fence, name, argument = opened["fence"], opened["name"], opened["argument"]
        end = next(
            (i for i in range(index + 1, len(lines)) if student_edition.is_fence_close(lines[i], fence)), len(lines)
        )
        body_lines, options = lines[index + 1 : end], {}
        while body_lines and OPTION.match(body_lines[0]):
            option = OPTION.match(body_lines[0])
            options[option["key"]] = option["value"]
            body_lines = body_lines[1:]
        body = convert_markdown("\n".join(body_lines), chapter, numbers, bibliography, cited).strip("\n")
        if name == "exercise":
            number = f"{chapter}.{len(numbers) + 1}"
            numbers[options.get("label", f"exercise-{number}")] = number
            title = f"**Exercise {number}**" + (f" ({argument})" if argument else "")
            out.append(_quote(f"{title}\n\n{body}"))
        elif name == "solution":
            number = numbers.get(argument, "")
            summary = f"Solution to Exercise {number}" if number else "Solution"
            out.append(f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>")
        else:
            title = argument or name.capitalize()
            out.append(_quote(f"**{title}**\n\n{body}"))
        index = end + 1

    def cite(match: re.Match) -> str:
        keys = [key.strip() for key in match["keys"].split(",")]
        cited.extend(key for key in keys if key not in cited)
        return bibliography.cite(match["kind"], keys)

    return CITE.sub(cite, "\n".join(out))


def chapter_of(path: Path) -> int:
    """The chapter number of ``01_reading_the_paper.ipynb``: its leading digits."""
    match = re.match(r"(\d+)", path.name)
    return int(match.group(1)) if match else 0


def is_solution_code(cell) -> bool:
    """A code cell that holds a solution: solution markers, or the tag ``solution``."""
    marked = any(student_edition.BEGIN.match(line) for line in cell.source.split("\n"))
    return marked or "solution" in cell.metadata.get("tags", [])


def fold_code(cell, title: str) -> None:
    """Fold a code cell as Colab folds code: a form cell (``cellView: form``) that shows only its ``# @title`` line
    until the reader opens it. Colab ignores the HTML book's ``hide-input``."""
    cell.source = f"# @title {title} (folded: click to show the code)\n" + cell.source
    cell.metadata["cellView"] = "form"


def editions_source(name: str, *, student: bool, repository: colab.Repository | None = None) -> str:
    """The first cell of either edition of chapter ``name``: which edition this is, and a link to the other one
    (the learners' at ``book/<name>`` on the Colab branch, the one with solutions at ``book/solutions/<name>``)."""
    repository = repository or colab.Repository.from_config()
    if student:
        other = repository.colab_url(f"book/solutions/{name}")
        return (
            "**The learners' edition**: each exercise with a stub to fill in and a check to run. The same chapter "
            f"with every exercise answered, folded under it: [![Open In Colab]({colab.BADGE_IMAGE})]({other})"
        )
    other = repository.colab_url(f"book/{name}")
    return (
        "**The edition with solutions**: each exercise's answer is folded under it (click to open it). The "
        f"learners' edition, with stubs to fill in: [![Open In Colab]({colab.BADGE_IMAGE})]({other})"
    )


def colab_notebook(nb, chapter: int, *, student: bool = False, bibliography: Bibliography | None = None, name=""):
    """The Colab edition of ``nb`` (a new notebook; ``nb`` is left as it is)."""
    bibliography = bibliography or Bibliography()
    if student:
        nb, _ = student_edition.student_notebook(nb, name)
    else:
        nb = nbformat.from_dict(nb)
        nb.cells = [cell for cell in nb.cells if "colab-badge" not in cell.metadata.get("tags", [])]
    numbers: dict[str, str] = {}
    cited: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = convert_markdown(cell.source, chapter, numbers, bibliography, cited)
        elif not student and is_solution_code(cell):
            number = list(numbers.values())[-1] if numbers else ""
            fold_code(cell, f"Solution to Exercise {number}" if number else "Solution")
        elif "hide-input" in cell.metadata.get("tags", []):
            fold_code(cell, "Code the book hides")
    if name:
        editions = nbformat.v4.new_markdown_cell(editions_source(name, student=student))
        editions.metadata["tags"] = ["colab-editions"]
        nb.cells.insert(0, editions)
    if cited:
        references = nbformat.v4.new_markdown_cell("## References\n\n" + bibliography.references(cited))
        references.metadata["tags"] = ["colab-references"]
        nb.cells.append(references)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks or folders of notebooks")
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder for the Colab edition")
    parser.add_argument("--student", action="store_true", help="the learners' variant: solutions out")
    args = parser.parse_args(argv)
    bibliography = Bibliography()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in student_edition.notebooks_in(args.paths):
        nb = nbformat.read(path, as_version=4)
        converted = colab_notebook(
            nb, chapter_of(path), student=args.student, bibliography=bibliography, name=path.name
        )
        nbformat.write(converted, args.out / path.name)
        print(f"{args.out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
