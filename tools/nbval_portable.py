"""nbval under several numeric environments, against the same stored outputs (`make nbval-portable`).

    python tools/nbval_portable.py book/*.ipynb

Float arithmetic gives slightly different results on different CPUs (AVX-512 or AVX2 kernels, Intel or AMD
libraries) and with different thread counts (reductions split differently). What nbval compares must not depend on
any of that, so this runs nbval once per environment below, each in fresh kernels, and fails if any run fails:

- ``default``: this machine as it is;
- ``avx2``: PyTorch's and oneDNN's kernels limited to AVX2, as on a CPU without AVX-512;
- ``no-simd``: PyTorch's own kernels without vector instructions, oneDNN's limited to SSE4.1. Some of PyTorch's
  random samplers have an AVX2 version only (the normal distribution's, for one), so here even the initial weights
  and the synthetic images differ in their last bits, as they may on a CPU without AVX2, such as an ARM machine;
- ``omp-1``: ``OMP_NUM_THREADS=1``, one thread for every library that reads it;
- ``threads-3``: ``torch.set_num_threads(3)`` in every kernel, and the notebooks' own calls to it ignored, so that
  cells written for one thread run their reductions split three ways.

One machine cannot stand in for every other, but a notebook that passes all five is not pinned to the quirks of the
one that executed it last.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The environments: a name and the variables it sets (``threads-3`` works through an IPython start-up file).
ENVIRONMENTS = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "no-simd": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "omp-1": {"OMP_NUM_THREADS": "1"},
    "threads-3": {},
}

#: Run by every kernel of the ``threads-3`` environment before the notebook's first cell.
FORCE_THREADS = """\
import torch

torch.set_num_threads(3)
torch.set_num_threads = lambda threads: None  # the notebooks ask for 1; keep 3
"""


def environment(name: str, folder: Path) -> dict[str, str]:
    """The process environment for the run called ``name``; ``folder`` is a scratch folder for IPython's profile."""
    # As the Makefile does for every target: no progress bars in stored outputs, and a fixed hash seed.
    env = {"TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"} | os.environ | ENVIRONMENTS[name]
    if name == "threads-3":
        startup = folder / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-threads.py").write_text(FORCE_THREADS)
        env["IPYTHONDIR"] = str(folder)
    return env


def main(notebooks: list[str]) -> int:
    if not notebooks:
        sys.exit("usage: python tools/nbval_portable.py NOTEBOOK.ipynb [...]")
    command = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-cell-timeout=900", "-q"]
    failed = []
    for name in ENVIRONMENTS:
        settings = " ".join(f"{k}={v}" for k, v in ENVIRONMENTS[name].items())
        print(f"== nbval, environment {name}: {settings or 'see tools/nbval_portable.py'}", flush=True)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            code = subprocess.call([*command, *notebooks], env=environment(name, Path(folder)))
        print(f"== {name}: {'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
    print("all environments passed" if not failed else f"failed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
