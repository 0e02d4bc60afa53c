"""tools/colab.py: badge and install cell derived from _config.yml, a Colab-only install, GPU metadata, idempotence."""

import os
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import colab  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def chapter(title: str = "# A chapter") -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell(title, id="title"), nbformat.v4.new_code_cell("print(1)", id="code")]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel})


@pytest.fixture
def book(tmp_path):
    """A copy of the project's _config.yml next to a book/ folder with two small chapters."""
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    (tmp_path / "book").mkdir()
    for name in ("01_first.ipynb", "02_second.ipynb"):
        nbformat.write(chapter(), tmp_path / "book" / name)
    return tmp_path


def test_links_come_from_the_config():
    repository = colab.Repository.from_config(ROOT / "_config.yml")
    owner, name = CONFIG["repository"]["url"].removeprefix("https://github.com/").split("/")
    branch = CONFIG["repository"]["branch"]
    assert (repository.owner, repository.name, repository.branch) == (owner, name, branch)
    assert repository.colab_url("book/05_training.ipynb") == (
        f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/book/05_training.ipynb"
    )
    assert repository.clone_url == f"https://github.com/{owner}/{name}"


def test_another_config_gives_other_links(tmp_path):
    config = tmp_path / "_config.yml"
    settings = {
        "repository": {"url": "https://github.com/someone/vgg-course.git/", "branch": "spring", "path_to_book": "site"}
    }
    config.write_text(yaml.safe_dump(settings))
    repository = colab.Repository.from_config(config)
    assert repository.colab_url("book/x.ipynb") == (
        "https://colab.research.google.com/github/someone/vgg-course/blob/spring/site/book/x.ipynb"
    )
    config.write_text(yaml.safe_dump({"repository": {"url": "https://gitlab.com/a/b"}}))
    with pytest.raises(ValueError, match="repository.url must look like https://github.com/<owner>/<repo>"):
        colab.Repository.from_config(config)


def test_cells_and_metadata(book):
    assert colab.main([str(book / "book"), "--config", str(book / "_config.yml")]) == 0
    nb = nbformat.read(book / "book" / "02_second.ipynb", as_version=4)
    nbformat.validate(nb)
    badge, install, title, code = nb.cells
    repository = colab.Repository.from_config(book / "_config.yml")
    assert badge.cell_type == "markdown" and repository.colab_url("book/02_second.ipynb") in badge.source
    assert badge.source.startswith("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](")
    assert install.cell_type == "code" and install.outputs == []
    assert badge.metadata.tags == ["colab-badge", "remove-cell"]
    assert install.metadata.tags == ["colab-install", "remove-cell"]
    assert (title.source, code.source) == ("# A chapter", "print(1)")
    assert nb.metadata.accelerator == "GPU" and nb.metadata.colab == {"gpuType": "T4", "provenance": []}
    assert nb.metadata.kernelspec.name == "python3"


def test_idempotent_and_check_mode(book, capsys):
    args = [str(book / "book"), "--config", str(book / "_config.yml")]
    assert colab.main([*args, "--check"]) == 1
    assert "01_first.ipynb: not Colab-ready" in capsys.readouterr().out
    assert (book / "book" / "01_first.ipynb").read_text() == nbformat.writes(chapter()) + "\n"  # --check wrote nothing
    colab.main(args)
    first = {path.name: path.read_text() for path in (book / "book").glob("*.ipynb")}
    capsys.readouterr()
    assert colab.main(args) == 0 and capsys.readouterr().out == ""  # nothing left to update
    assert {path.name: path.read_text() for path in (book / "book").glob("*.ipynb")} == first
    assert colab.main([*args, "--check"]) == 0


def test_update_moves_and_refreshes_existing_cells(book):
    path = book / "book" / "01_first.ipynb"
    repository = colab.Repository.from_config(book / "_config.yml")
    colab.update(path, repository, root=book)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "[stale badge](https://example.org)"
    nb.cells.append(nb.cells.pop(1))  # the install cell moved to the end by hand
    nb.metadata.colab = {"provenance": [{"kept": True}], "gpuType": "A100"}
    nbformat.write(nb, path)
    assert colab.update(path, repository, root=book)
    nb = nbformat.read(path, as_version=4)
    assert [cell.metadata.get("tags", [""])[0] for cell in nb.cells] == ["colab-badge", "colab-install", "", ""]
    assert nb.cells[0].source == colab.badge_source(repository, "book/01_first.ipynb")
    assert nb.metadata.colab == {"provenance": [{"kept": True}], "gpuType": "T4"}


def run_install_cell(monkeypatch, on_colab: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append((("chdir", path), {})))
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(colab.install_source(colab.Repository.from_config(), "book/01_reading_the_paper.ipynb"), {})
    return calls


def test_install_cell_does_nothing_off_colab(monkeypatch, capsys):
    assert run_install_cell(monkeypatch, on_colab=False) == []
    assert capsys.readouterr() == ("", "")


def test_install_cell_clones_installs_and_enters_the_chapter_folder_on_colab(monkeypatch):
    (clone, clone_kw), (pip, pip_kw), (chdir, _) = run_install_cell(monkeypatch, on_colab=True)
    url = CONFIG["repository"]["url"]
    checkout = "/content/" + url.rstrip("/").split("/")[-1]
    assert clone_kw == pip_kw == {"check": True}
    assert clone[0] == [
        "git",
        "clone",
        "--quiet",
        "--depth",
        "1",
        "--branch",
        CONFIG["repository"]["branch"],
        url,
        checkout,
    ]
    assert pip[0] == [sys.executable, "-m", "pip", "install", "--quiet", checkout]
    assert chdir == ("chdir", f"{checkout}/book")


def test_install_cell_is_ruff_clean(tmp_path):
    nb = colab.colab_ready(chapter(), colab.Repository.from_config(), "book/x.ipynb")
    nbformat.write(nb, tmp_path / "x.ipynb")
    ruff = [sys.executable, "-m", "ruff", "format", "--check", "--config", str(ROOT / "pyproject.toml")]
    result = subprocess.run([*ruff, str(tmp_path / "x.ipynb")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
