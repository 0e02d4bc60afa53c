"""The Colab edition (tools/colab_edition.py): no MyST left, exercises numbered as in the book, solutions folded in
<details> (or removed for learners), citations as text with a reference list, code and checks untouched."""

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab_edition  # noqa: E402
import student_edition  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("[0-9]*.ipynb"))
EXERCISE = re.compile(r"^[ \t]*:{3,}\{exercise\}", re.MULTILINE)
SOLUTION = re.compile(r"^[ \t]*:{3,}\{solution\}", re.MULTILINE)


@pytest.fixture(scope="module")
def bibliography():
    return colab_edition.Bibliography()


def markdown(nb) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def test_directives_citations_and_admonitions_become_markdown(bibliography):
    source = "\n".join(
        [
            "As {cite:t}`simonyan2015vgg` show {cite:p}`simonyan2015vgg,he2015delving`:",
            ":::{exercise}",
            ":label: ex-a",
            "Count the layers.",
            ":::",
            "",
            "::::{solution} ex-a",
            ":class: dropdown",
            "Sixteen.",
            "```python",
            "print(16)",
            "```",
            "::::",
            "```{admonition} Careful",
            "Biases count too.",
            "```",
        ]
    )
    numbers, cited = {}, []
    text = colab_edition.convert_markdown(source, 2, numbers, bibliography, cited)
    assert "Simonyan and Zisserman (2015) show (Simonyan and Zisserman, 2015; He et al., 2015):" in text
    assert "> **Exercise 2.1**\n>\n> Count the layers." in text
    assert "<details>\n<summary>Solution to Exercise 2.1</summary>\n\nSixteen.\n```python\nprint(16)\n```" in text
    assert "> **Careful**\n>\n> Biases count too." in text
    assert colab_edition.MYST_LEFT.search(text) is None and ":class:" not in text and ":label:" not in text
    assert numbers == {"ex-a": "2.1"} and cited == ["simonyan2015vgg", "he2015delving"]


def unfolded(source: str) -> str:
    """A code cell's source without the ``# @title`` line that folds it in Colab."""
    return source.split("\n", 1)[1] if source.startswith("# @title ") else source


def test_the_check_finds_myst():
    assert colab_edition.MYST_LEFT.search("text\n:::{exercise}\n") and colab_edition.MYST_LEFT.search("{cite:p}`x`")
    assert colab_edition.MYST_LEFT.search("plain *markdown*, $x_{in}$ and ```python") is None


@pytest.mark.parametrize("student", [False, True], ids=["solutions", "student"])
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_converts(path, student, bibliography):
    nb = nbformat.read(path, as_version=4)
    converted = colab_edition.colab_notebook(
        nb, colab_edition.chapter_of(path), student=student, bibliography=bibliography
    )
    text, source = markdown(converted), markdown(nb)
    assert colab_edition.MYST_LEFT.search(text) is None
    chapter = colab_edition.chapter_of(path)
    exercises = len(EXERCISE.findall(source))
    assert [f"**Exercise {chapter}.{k}**" in text for k in range(1, exercises + 1)] == [True] * exercises
    assert text.count("<details>") == (0 if student else len(SOLUTION.findall(source)))
    assert ("{cite:" in source) == ("## References" in text)
    # Code cells and check cells are the book's (the student variant: the student edition's), in the same order.
    reference = student_edition.student_notebook(nb)[0] if student else nb
    code = [cell.source for cell in reference.cells if cell.cell_type == "code"]
    assert [unfolded(cell.source) for cell in converted.cells if cell.cell_type == "code"] == code
    # Colab ignores hide-input: solutions (in the solutions variant) and hidden cells are folded as form cells
    for before, after in zip(
        [c for c in reference.cells if c.cell_type == "code"], [c for c in converted.cells if c.cell_type == "code"]
    ):
        fold = "hide-input" in before.metadata.get("tags", []) or (not student and "# BEGIN SOLUTION" in before.source)
        assert (after.metadata.get("cellView") == "form") == fold, after.source[:80]
        assert after.source.startswith("# @title ") == fold
        if fold and "# BEGIN SOLUTION" in before.source:
            assert after.source.startswith(f"# @title Solution to Exercise {chapter}.")
    assert any("from vgg_tutorial.lessons.exercises import check_" in source for source in code)
    assert all("colab-badge" not in cell.metadata.get("tags", []) for cell in converted.cells)
    if student:
        assert "# BEGIN SOLUTION" not in "\n".join(code) and "Solution to" not in text
    else:
        outputs = [cell.outputs for cell in nb.cells if cell.cell_type == "code"]
        assert [cell.outputs for cell in converted.cells if cell.cell_type == "code"] == outputs
    assert nb == nbformat.read(path, as_version=4), "the book's notebook was changed"


def test_each_edition_opens_the_other(bibliography):
    nb = nbformat.read(CHAPTERS[1], as_version=4)
    name = CHAPTERS[1].name
    for student, mine, other in (
        (True, "learners'", f"book/solutions/{name}"),
        (False, "with solutions", f"book/{name}"),
    ):
        converted = colab_edition.colab_notebook(nb, 2, student=student, bibliography=bibliography, name=name)
        first = converted.cells[0]
        assert first.metadata["tags"] == ["colab-editions"] and mine in first.source
        assert first.source.endswith(f"/blob/colab/{other})"), first.source


def test_command_writes_both_variants(tmp_path):
    assert colab_edition.main([str(CHAPTERS[1]), "-o", str(tmp_path / "full")]) == 0
    assert colab_edition.main([str(CHAPTERS[1]), "-o", str(tmp_path / "student"), "--student"]) == 0
    for variant in ("full", "student"):
        nbformat.validate(nbformat.read(tmp_path / variant / CHAPTERS[1].name, as_version=4))
