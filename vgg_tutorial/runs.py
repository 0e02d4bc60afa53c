"""Run files: checkpoints, random states, atomic writes, the history of a run and the machine that ran it.

A run stopped and resumed ends with the same weights and metrics as one that was never stopped (on a CPU, bit for
bit). That needs every random draw to be restored or re-derived: the checkpoint holds the model, optimiser,
scheduler and gradient scaler, the history, and the random states of torch, CUDA, Python and NumPy. (The order of
the training images is not a state at all: :func:`vgg_tutorial.loaders.epoch_seed` derives it from the epoch.)

Every file is written through :func:`atomic_write`, so a run killed while writing leaves the previous file whole.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import random
import re
import tempfile
from pathlib import Path

import torch
import torchvision

from vgg_tutorial.accounting import peak_tflops

CHECKPOINT, HISTORY_JSON, HISTORY_CSV = "checkpoint.pt", "history.json", "history.csv"
HISTORY_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "train_top5",
    "val_loss",
    "val_top1",
    "val_top5",
    "seconds",
)


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(temporary_path)`` for a new temporary file next to ``path``, then rename it over ``path``.

    A run killed while writing leaves the previous file intact instead of a truncated one, and a failed write leaves
    no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`: a checkpoint is either the old one or the new one, whole."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


# ---------------------------------------------------------------------------------------------------------------
# Random states
# ---------------------------------------------------------------------------------------------------------------


def _numpy():
    """NumPy's module, or None: torch does not need it, so it may not be installed."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy (if installed)."""
    torch.manual_seed(seed)
    random.seed(seed)
    if np := _numpy():
        np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global generator is what libraries draw from)


def rng_state() -> dict:
    """The random states of torch (CPU and every CUDA device), Python's ``random`` and NumPy (if installed)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if np := _numpy():
        state["numpy"] = np.random.get_state()  # noqa: NPY002
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (generators take CPU byte tensors, wherever the state was loaded)."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([generator.cpu() for generator in state["cuda"]])
    if "numpy" in state and (np := _numpy()):
        np.random.set_state(state["numpy"])  # noqa: NPY002


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, *, model, optimizer, scheduler, scaler, history: list[dict], meta: dict) -> None:
    """Write everything :func:`restore_checkpoint` needs to continue after the last epoch of ``history``."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "epoch": len(history),
        "history": history,
        "rng": rng_state(),
        "meta": meta,
    }
    atomic_save(state, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (it holds RNG states and the history, not only tensors)."""
    return torch.load(path, map_location=map_location, weights_only=False)


def restore_checkpoint(path: str | Path, *, model, optimizer, scheduler, scaler) -> list[dict]:
    """Load ``path`` into the given objects and the random generators; return the history so far.

    The checkpoint is loaded on the CPU: ``load_state_dict`` copies weights and optimiser state onto the model's
    device itself.
    """
    state = load_checkpoint(path, map_location="cpu")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["history"]


# ---------------------------------------------------------------------------------------------------------------
# History and machine
# ---------------------------------------------------------------------------------------------------------------


def write_history(history: list[dict], folder: str | Path, meta: dict | None = None) -> None:
    """Write ``history`` (one dict per epoch) as ``history.json`` (with ``meta``: config, command, machine) and as
    ``history.csv``."""
    folder = Path(folder)
    atomic_write_text(json.dumps({**(meta or {}), "history": history}, indent=2) + "\n", folder / HISTORY_JSON)
    lines = [",".join(HISTORY_FIELDS)]
    lines += [",".join(f"{row[key]}" for key in HISTORY_FIELDS) for row in history]
    atomic_write_text("\n".join(lines) + "\n", folder / HISTORY_CSV)


def read_history(path: str | Path) -> list[dict]:
    """Read the per-epoch rows of a ``history.json`` or ``history.csv`` (or of the folder holding them)."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_JSON
    if path.suffix == ".csv":
        with path.open(newline="") as file:
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(file)]
    return json.loads(path.read_text())["history"]


def machine(device: torch.device | str | None = None) -> dict:
    """What ran a training run or a benchmark: the device, its peak, the CPU, and the library versions."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    cpu = platform.processor() or platform.machine()
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    return {
        "device": device.type,
        "gpu": gpu,
        "gpu_peak_tflops": peak_tflops(gpu) if gpu else None,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
