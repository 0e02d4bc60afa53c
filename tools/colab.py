"""Make every chapter Colab-ready: an "Open in Colab" badge, a Colab-only install cell, and a request for a GPU.

    python tools/colab.py book/            # update the notebooks in place (idempotent)
    python tools/colab.py book/ --check    # exit 1 if a notebook is not up to date (for CI)

The repository and branch come from ``_config.yml`` (``repository.url``, ``repository.branch``,
``repository.path_to_book``), the one place the URL is set; Jupyter Book's launch buttons read the same keys.
In each notebook:

- a first markdown cell (id and tag ``colab-badge``) holds the badge, linking to
  ``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>.ipynb``;
- a second, code cell (id and tag ``colab-install``) installs the ``vgg_tutorial`` package from the repository,
  only if it runs on Colab (``"google.colab" in sys.modules``): locally, and under nbval, it does nothing and
  prints nothing;
- the notebook metadata asks Colab for a GPU (``accelerator: GPU``, ``colab.gpuType: T4``).

Both cells are tagged ``remove-cell`` as well: the HTML book has its own launch buttons and needs no install step,
so Jupyter Book leaves them out of the pages.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BADGE_TAG, INSTALL_TAG, HIDDEN_TAG = "colab-badge", "colab-install", "remove-cell"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
GPU_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


@dataclass(frozen=True)
class Repository:
    """Where the book's sources live on GitHub, as ``_config.yml`` says."""

    owner: str
    name: str
    branch: str
    path_to_book: str = ""
    colab: str = "https://colab.research.google.com"

    @classmethod
    def from_config(cls, config: Path = ROOT / "_config.yml") -> Repository:
        settings = yaml.safe_load(config.read_text())
        repository = settings["repository"]
        url = repository["url"].rstrip("/").removesuffix(".git")
        prefix = "https://github.com/"
        if not url.startswith(prefix) or url[len(prefix) :].count("/") != 1:
            raise ValueError(f"{config}: repository.url must look like {prefix}<owner>/<repo>, got {url!r}")
        owner, name = url[len(prefix) :].split("/")
        colab = settings.get("launch_buttons", {}).get("colab_url") or cls.colab
        return cls(owner, name, repository.get("branch", "main"), repository.get("path_to_book") or "", colab)

    def colab_url(self, notebook: str) -> str:
        """The Colab link for ``notebook``, a path relative to the repository root (``book/01_x.ipynb``)."""
        path = "/".join(part.strip("/") for part in (self.path_to_book, notebook) if part.strip("/"))
        return f"{self.colab.rstrip('/')}/github/{self.owner}/{self.name}/blob/{self.branch}/{path}"

    @property
    def clone_url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"


def badge_source(repository: Repository, notebook: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({repository.colab_url(notebook)})"


def install_source(repository: Repository, notebook: str = "book/chapter.ipynb") -> str:
    """The install cell: on Colab, clones the repository (once), pip-installs its package and moves into the
    notebook's folder, so the chapter finds its committed results files; anywhere else it does nothing."""
    folder = PurePosixPath(repository.path_to_book.strip("/"), notebook).parent
    return (
        "# On Google Colab: fetch this book's repository once, install its package\n"
        "# and work in this chapter's folder (where its committed results files\n"
        "# are). Anywhere else this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import os\n"
        "    import subprocess\n"
        "\n"
        f'    checkout = "/content/{repository.name}"\n'
        "    if not os.path.isdir(checkout):\n"
        f'        url = "{repository.clone_url}"\n'
        '        clone = ["git", "clone", "--quiet", "--depth", "1"]\n'
        f'        branch = ["--branch", "{repository.branch}"]\n'
        "        subprocess.run([*clone, *branch, url, checkout], check=True)\n"
        '    pip = [sys.executable, "-m", "pip", "install", "--quiet"]\n'
        "    subprocess.run([*pip, checkout], check=True)\n"
        f'    os.chdir(os.path.join(checkout, "{folder}"))'
    )


def _find(cells: list, tag: str) -> int | None:
    return next((i for i, cell in enumerate(cells) if tag in cell.get("metadata", {}).get("tags", [])), None)


def _place(cells: list, index: int, cell_type: str, tag: str, source: str) -> None:
    """Put a cell tagged ``tag`` with ``source`` at ``index``: the existing one, updated and moved, or a new one."""
    found = _find(cells, tag)
    cell = cells.pop(found) if found is not None else None
    if cell is None or cell.cell_type != cell_type:
        make = nbformat.v4.new_markdown_cell if cell_type == "markdown" else nbformat.v4.new_code_cell
        cell = make(id=tag)
    cell.source = source
    cell.metadata["tags"] = [tag, HIDDEN_TAG] + [t for t in cell.metadata.get("tags", []) if t not in (tag, HIDDEN_TAG)]
    if cell_type == "code":
        cell.outputs = []  # what it prints off Colab: nothing
    cells.insert(index, cell)


def colab_ready(nb: nbformat.NotebookNode, repository: Repository, notebook: str) -> nbformat.NotebookNode:
    """``nb`` with its badge cell, install cell and GPU metadata up to date (changed in place and returned)."""
    _place(nb.cells, 0, "markdown", BADGE_TAG, badge_source(repository, notebook))
    _place(nb.cells, 1, "code", INSTALL_TAG, install_source(repository, notebook))
    nb.metadata["accelerator"] = GPU_METADATA["accelerator"]
    colab = nb.metadata.setdefault("colab", {})
    colab["gpuType"] = GPU_METADATA["colab"]["gpuType"]
    colab.setdefault("provenance", [])  # Colab's own bookkeeping: kept if Colab wrote one
    return nb


def update(path: Path, repository: Repository, root: Path = ROOT, check: bool = False) -> bool:
    """Make the notebook at ``path`` Colab-ready; return whether it changed (with ``check``, leave it as it was)."""
    before = path.read_text()
    nb = colab_ready(nbformat.reads(before, as_version=4), repository, path.resolve().relative_to(root).as_posix())
    after = nbformat.writes(nb)
    after += "" if after.endswith("\n") else "\n"  # as nbformat.write ends files
    if after == before:
        return False
    if not check:
        from vgg_tutorial.training.runs import atomic_write_text  # an interrupted write never leaves half a notebook

        atomic_write_text(after, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "book"], help="notebooks or folders")
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml", help="the book's _config.yml")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not ready")
    args = parser.parse_args(argv)
    repository = Repository.from_config(args.config)
    root = args.config.resolve().parent
    notebooks = [p for path in args.paths for p in (sorted(path.glob("*.ipynb")) if path.is_dir() else [path])]
    stale = [path for path in notebooks if update(path, repository, root=root, check=args.check)]
    for path in stale:
        print(f"{path}: {'not Colab-ready' if args.check else 'updated'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
