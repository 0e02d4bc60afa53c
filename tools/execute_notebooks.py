"""Re-execute notebooks in place, the one way everybody refreshes stored outputs (`make notebooks`).

    python tools/execute_notebooks.py book/01_reading_the_paper.ipynb [more.ipynb ...]

Each notebook runs top to bottom in a fresh kernel from this environment, with its own folder as the working
directory (as nbval runs it). No per-cell timing metadata is stored, so a re-run changes only what the code prints.
The wall time of each notebook is reported on the terminal, never stored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from vgg_tutorial.training.runs import atomic_write_text


def execute(path: Path) -> float:
    """Execute the notebook at ``path`` in place and return its wall time in seconds."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=1800,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    text = nbformat.writes(notebook)
    atomic_write_text(text if text.endswith("\n") else text + "\n", path)  # never half a notebook
    return time.perf_counter() - start


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit("usage: python tools/execute_notebooks.py NOTEBOOK.ipynb [...]")
    for name in paths:
        seconds = execute(Path(name))
        print(f"{name}: executed in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
