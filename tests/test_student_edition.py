"""The student edition: solutions become stubs, solution blocks and outputs go, checks stay and fail on the stubs.

Executing the student edition of the real chapters costs as long as the chapters themselves, so that part runs only
with ``VGG_EXECUTE_STUDENT_EDITION=1`` (``make student-check``); everything else here is fast and always runs.
"""

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from vgg_tutorial.lessons import exercises

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import student_edition  # noqa: E402

CHECK_NAMES = sorted(name for name in vars(exercises) if name.startswith("check_"))
CHECK_CALL = re.compile(r"\b(" + "|".join(CHECK_NAMES) + r")\(")
STUB = 'raise NotImplementedError("Exercise:'
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))

EXERCISE_MD = """## Exercises

:::{exercise}
:label: ex-fixture-rf
Write `receptive_field_of(name)`.
:::

::::{solution} ex-fixture-rf
:class: dropdown
Start from one pixel:
```python
rf = 1
```
::::

Some text after the solution stays."""

SOLUTION_CODE = """from vgg_tutorial.paper.configs import Conv, MaxPool, feature_layers


def receptive_field_of(name):
    \"\"\"Receptive field of the last convolution of configuration `name`.\"\"\"
    # BEGIN SOLUTION follow the recurrence of Section 2.3
    rf, jump = 1, 1
    for layer in feature_layers(name)[:-1]:
        if not isinstance(layer, (Conv, MaxPool)):
            continue
        rf += (layer.kernel - 1) * jump
        if isinstance(layer, MaxPool):
            jump *= layer.stride
    return rf
    # END SOLUTION"""


def fixture_notebook() -> nbformat.NotebookNode:
    """A small chapter with one code exercise, its check, a solution-only cell and stored outputs."""
    ready = nbformat.v4.new_code_cell("print('ready')", execution_count=1)
    ready.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ready\n")]
    solution_only = nbformat.v4.new_code_cell("print(receptive_field_of('D'))", metadata={"tags": ["solution"]})
    return nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Fixture chapter"),
            ready,
            nbformat.v4.new_markdown_cell(EXERCISE_MD),
            nbformat.v4.new_code_cell(SOLUTION_CODE),
            nbformat.v4.new_code_cell(
                "from vgg_tutorial.lessons.exercises import check_receptive_field\n\n"
                "check_receptive_field(receptive_field_of)"
            ),
            solution_only,
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


def execute(nb: nbformat.NotebookNode, folder: Path | None = None) -> nbformat.NotebookNode:
    """Run every cell in ``folder`` (a chapter's own, where its results files are), carrying on after errors, so
    that each cell's outcome can be inspected."""
    resources = {"metadata": {"path": str(folder)} if folder is not None else {}}
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True, resources=resources).execute()
    return nb


def errors(cell) -> list[str]:
    return [output.ename for output in cell.get("outputs", []) if output.output_type == "error"]


def test_stub_keeps_the_indentation_and_the_message():
    source, count = student_edition.stub_solutions(SOLUTION_CODE)
    assert count == 1
    assert '    raise NotImplementedError("Exercise: follow the recurrence of Section 2.3")' in source.split("\n")
    assert "rf, jump" not in source and "SOLUTION" not in source
    assert source.startswith("from vgg_tutorial.paper.configs") and '"""Receptive field' in source


def test_stub_default_message_and_several_regions():
    source, count = student_edition.stub_solutions(
        "a = 1\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION\nif a:\n\t# BEGIN SOLUTION:\n\tc = 3\n\t# END SOLUTION"
    )
    assert count == 2
    assert source == (
        'a = 1\nraise NotImplementedError("Exercise: replace this line with your code")\n'
        'if a:\n\traise NotImplementedError("Exercise: replace this line with your code")'
    )
    compile(source, "stub", "exec")  # the stub is valid Python


@pytest.mark.parametrize(
    "source,message",
    [
        ("# BEGIN SOLUTION\nx = 1", "line 1: '# BEGIN SOLUTION' is never closed"),
        ("x = 1\n# END SOLUTION", "line 2: '# END SOLUTION' without"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "line 2: '# BEGIN SOLUTION' inside another one"),
    ],
)
def test_unbalanced_markers_are_errors(source, message):
    with pytest.raises(student_edition.SolutionMarkerError, match=message):
        student_edition.stub_solutions(source, where="ch.ipynb, cell 3")


def test_solution_blocks_go_exercise_blocks_stay():
    text = student_edition.remove_solution_blocks(EXERCISE_MD)
    assert ":::{exercise}" in text and ":label: ex-fixture-rf" in text and "Write `receptive_field_of(name)`." in text
    assert "{solution}" not in text and "rf = 1" not in text and "Start from one pixel" not in text
    assert text.endswith("Some text after the solution stays.")


def test_backtick_and_gated_solutions_go():
    backticks = "Before.\n\n````{solution} ex-a\n:class: dropdown\n```python\nx = 1\n```\n````\n\nAfter."
    assert student_edition.remove_solution_blocks(backticks) == "Before.\n\nAfter."
    gated = (
        "Before.\n\n:::{solution-start} ex-a\n:class: dropdown\n:::\n\nThe answer:\n\n```python\nx = 1\n```\n"
        "\n:::{solution-end}\n:::\n\nAfter."
    )
    assert student_edition.remove_solution_blocks(gated) == "Before.\n\nAfter."


def test_student_notebook_drops_solutions_and_outputs():
    student, stubs = student_edition.student_notebook(fixture_notebook())
    assert stubs == 1
    assert [cell.cell_type for cell in student.cells] == ["markdown", "code", "markdown", "code", "code"]
    assert all(
        cell.outputs == [] and cell.execution_count is None for cell in student.cells if cell.cell_type == "code"
    )
    assert not any("receptive_field_of('D')" in cell.source for cell in student.cells)  # the tagged cell is gone
    assert fixture_notebook().cells[1].outputs  # the original is left untouched


def test_colab_badge_goes_install_cell_stays():
    sys.path.insert(0, str(ROOT / "tools"))
    import colab

    nb = colab.colab_ready(fixture_notebook(), colab.Repository.from_config(), "book/09_fixture.ipynb")
    student, _ = student_edition.student_notebook(nb)
    tags = [cell.metadata.get("tags", []) for cell in student.cells]
    assert ["colab-install", "remove-cell"] in tags and not any("colab-badge" in t for t in tags)
    assert not any("colab.research.google.com" in cell.source for cell in student.cells)


def test_command_line_writes_each_notebook(tmp_path, capsys):
    book = tmp_path / "book"
    book.mkdir()
    nbformat.write(fixture_notebook(), book / "09_fixture.ipynb")
    assert student_edition.main([str(book), "-o", str(tmp_path / "student")]) == 0
    assert "09_fixture.ipynb: 1 exercise stub(s)" in capsys.readouterr().out
    written = nbformat.read(tmp_path / "student" / "09_fixture.ipynb", as_version=4)
    nbformat.validate(written)
    assert "NotImplementedError" in written.cells[3].source


def test_fixture_runs_up_to_the_exercise_and_the_check_fails_on_the_stub():
    instructor = execute(fixture_notebook())
    assert all(not errors(cell) for cell in instructor.cells if cell.cell_type == "code")
    assert instructor.cells[4].outputs[0].text.startswith("✓ Your receptive fields match")

    student = execute(student_edition.student_notebook(fixture_notebook())[0])
    ready, stub, check = (cell for cell in student.cells if cell.cell_type == "code")
    assert ready.outputs[0].text == "ready\n" and not errors(stub)  # defining the stubbed function is fine
    assert errors(check) == ["ExerciseError"]
    assert "not written yet: it still raises NotImplementedError" in check.outputs[0].evalue


def exercise_chapters() -> list[Path]:
    """Chapters with code exercises: solution markers or cells tagged 'solution'."""
    found = []
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        if any("# BEGIN SOLUTION" in cell.source or "solution" in cell.metadata.get("tags", []) for cell in nb.cells):
            found.append(path)
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.name)
def test_every_chapter_converts_cleanly(path):
    nb = nbformat.read(path, as_version=4)
    student, stubs = student_edition.student_notebook(nb, name=path.name)
    nbformat.validate(student)
    for cell in student.cells:
        assert "# BEGIN SOLUTION" not in cell.source and "# END SOLUTION" not in cell.source
        assert not re.search(r"\{solution(-start|-end)?\}", cell.source), f"a solution block is left in {path.name}"
    if stubs:  # each exercise is checked after its stub, and the check passes on the book's own solution
        last_stub = max(i for i, cell in enumerate(student.cells) if STUB in cell.source)
        assert any(CHECK_CALL.search(cell.source) for cell in student.cells[last_stub:]), "no check after the stub"
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            text = "".join(output.get("text", "") for output in cell.outputs)
            assert "✓" in text and not errors(cell), f"a check in {path.name} does not pass on the stored solution"


@pytest.mark.skipif(
    os.environ.get("VGG_EXECUTE_STUDENT_EDITION") != "1",
    reason="executing the chapters' student editions is slow: set VGG_EXECUTE_STUDENT_EDITION=1 (make student-check)",
)
@pytest.mark.parametrize("path", exercise_chapters(), ids=lambda path: path.name)
def test_chapter_student_edition_runs_up_to_each_exercise(path):
    """Before the first stub every cell runs; after it, only the stub's NotImplementedError and failed checks."""
    student, _ = student_edition.student_notebook(nbformat.read(path, as_version=4), name=path.name)
    student = execute(student, path.parent)
    reached_exercise = False
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        reached_exercise = reached_exercise or STUB in cell.source
        if CHECK_CALL.search(cell.source):
            assert errors(cell) == ["ExerciseError"], f"cell {index}: the check does not fail on the stub"
        elif not reached_exercise:
            assert not errors(cell), f"cell {index} fails before any exercise: {errors(cell)}"
        else:
            assert set(errors(cell)) <= {"NotImplementedError", "ExerciseError"}, f"cell {index}: {errors(cell)}"


# ------------------------------------------------------------------ the HTML: solution code without its markers


def _solution_markers():
    sys.path.insert(0, str(ROOT / "_ext"))
    import solution_markers

    return solution_markers


def test_the_html_shows_solution_code_without_markers():
    from docutils import nodes
    from docutils.utils import new_document

    source = (
        "def f(x):\n    # BEGIN SOLUTION square it\n    y = x * x\n    return y\n    # END SOLUTION\n"
        "# BEGIN SOLUTION\nz = 1\n# END SOLUTION"
    )
    document = new_document("page")
    document += nodes.literal_block(source, source)
    _solution_markers().hide_markers(None, document)
    shown = document.children[0].astext()
    assert shown == "def f(x):\n    # square it\n    y = x * x\n    return y\nz = 1"
    assert student_edition.stub_solutions(source)[1] == 2  # the notebook's markers still make the stubs
