"""Run files: checkpoints, random states, atomic writes, the output folder's lock, the history and the machine.

A run stopped and resumed ends with the same weights and metrics as one that was never stopped (on a CPU with the
same thread count, bit for bit). That needs every random draw to be restored or re-derived: the checkpoint holds the
model, optimiser, scheduler and gradient scaler, the history, and the random states of torch, CUDA, Python and
NumPy. (The order of the training images is not a state at all: :func:`vgg_tutorial.data.loaders.epoch_seed` derives it
from the epoch.)

Every file is written through :func:`atomic_write`, so a run killed while writing leaves the previous file whole.
Checkpoints hold tensors and plain Python values only, so :func:`load_checkpoint` reads them with
``torch.load(weights_only=True)``, which cannot run code hidden in a crafted file, after checking the CRC-32 that
``torch.save`` stores for every record of its zip archive, which finds damaged bytes, and refusing compressed records
and unknown formats (:data:`FORMAT`). :func:`lock_folder` keeps two runs from writing into the same folder, and
:func:`set_aside` keeps the run that ``--overwrite`` replaces until the new one has a checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import random
import re
import secrets
import zipfile
from pathlib import Path

import torch
import torchvision

from vgg_tutorial.paper.accounting import peak_tflops

CHECKPOINT, HISTORY_JSON, HISTORY_CSV = "checkpoint.pt", "history.json", "history.csv"
RUN_FILES = (CHECKPOINT, HISTORY_JSON, HISTORY_CSV)
#: The layout of the checkpoints this version writes and reads (files without the key have this same layout).
FORMAT = 1
#: The file :func:`lock_folder` locks; it holds the process id of the run that holds the lock.
LOCK = ".lock"
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


class RunError(Exception):
    """A run cannot start or go on (output folder in use or not empty, damaged checkpoint...); the message says why."""


class CheckpointError(RunError):
    """A checkpoint file is damaged, truncated, or holds more than tensors and plain values."""


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(temporary_path)`` for a new temporary file next to ``path``, then rename it over ``path``.

    A run killed while writing leaves the previous file intact instead of a truncated one, and a failed write leaves
    no temporary file behind. (A run killed outright leaves ``.NAME.*.tmp``: :func:`remove_temporaries` cleans up.)
    The file gets the usual permissions (0o666 less the umask, e.g. 0o644), not ``tempfile``'s private 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:  # a full disk: name the file it was writing
            error.filename = str(path)
        raise


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`: a checkpoint is either the old one or the new one, whole.

    A failed write (disk full, file too large) raises the ``OSError`` that says so, naming ``path``: torch's zip
    writer would report it as "unexpected pos 787648 vs 787536".
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            try:
                torch.save(obj, file)
            except RuntimeError as error:
                if isinstance(error.__context__, OSError):  # what the file's write() raised inside torch.save
                    error.__context__.filename = str(path)
                    raise error.__context__ from None
                raise

    atomic_write(path, write)


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
    """The random states of torch (CPU and every CUDA device), Python's ``random`` and NumPy (if installed).

    Only tensors and plain values (lists, ints, floats, strings), so that ``torch.load(weights_only=True)`` can read
    them back: NumPy's state holds an array, stored here as a list of ints.
    """
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if np := _numpy():
        name, keys, position, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        state["numpy"] = [name, keys.tolist(), int(position), int(has_gauss), float(cached)]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (generators take CPU byte tensors, wherever the state was loaded)."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([generator.cpu() for generator in state["cuda"]])
    if "numpy" in state and (np := _numpy()):
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))  # noqa: NPY002


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
        "format": FORMAT,
    }
    atomic_save(state, path)


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a whole zip archive whose every record matches its CRC-32.

    ``torch.save`` writes a zip archive with one record per tensor storage and stores a CRC-32 of each, but
    ``torch.load`` never checks them: a flipped byte in the weights would load silently.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            # torch.save stores records uncompressed: a compressed one could unpack to any size (a "zip bomb")
            packed = [info.filename for info in archive.infolist() if info.compress_type != zipfile.ZIP_STORED]
            if packed:
                raise CheckpointError(f"{path} is not a checkpoint: record {packed[0]} is compressed")
            damaged = archive.testzip()  # reads every record and compares its CRC-32
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({error})") from error
    if damaged is not None:
        raise CheckpointError(f"{path} is damaged: record {damaged} does not match its CRC-32 checksum")


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, checked first with :func:`verify_checkpoint`.

    ``weights_only=True`` unpickles tensors and plain values only: a crafted file cannot run code. Any failure
    raises :class:`CheckpointError` naming the file.
    """
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch.load raises UnpicklingError, RuntimeError, ... for files it refuses
        raise CheckpointError(f"{path} cannot be loaded as a checkpoint of vgg_tutorial: {error}") from error
    if not isinstance(state, dict) or state.get("format", FORMAT) != FORMAT:
        version = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path} has format {version!r}, which this version (format {FORMAT}) cannot read")
    return state


def restore_checkpoint(state: dict, *, model, optimizer, scheduler, scaler) -> list[dict]:
    """Load a checkpoint ``state`` (from :func:`load_checkpoint`) into the given objects and the random generators;
    return the history so far.

    Load the checkpoint on the CPU: ``load_state_dict`` copies weights and optimiser state onto the model's device.
    """
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["history"]


# ---------------------------------------------------------------------------------------------------------------
# The output folder
# ---------------------------------------------------------------------------------------------------------------


#: The lock files this process holds open: a forked child (a data loader worker) closes its copies at once.
_HELD: set = set()


def _close_held_locks() -> None:
    """In a forked child: close the inherited lock files, so that the lock dies with the process that took it, even
    if its loader workers outlive it (``kill -9``); an ``flock`` lasts as long as any copy of the file is open."""
    for file in list(_HELD):
        file.close()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_locks)


@contextlib.contextmanager
def lock_folder(folder: str | Path):
    """Create ``folder``, check that it is writable and hold an advisory lock on it (``fcntl.flock``) until exit.

    A second run on the same folder raises :class:`RunError` at once instead of both writing checkpoints into it.
    The lock is released when the process ends, however it ends, whatever its worker processes do: they do not
    keep it (:func:`_close_held_locks`). (On Windows, which has no ``fcntl``, nothing is locked.)
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{secrets.token_hex(4)}"  # fail now, not when the first epoch is saved
        probe.touch()
        probe.unlink()
        file = open(folder / LOCK, "a+")  # noqa: SIM115 (kept open while the lock is held)
    except OSError as error:
        raise RunError(f"cannot write to the output folder {folder}: {error}; choose another --output") from error
    with file:
        try:
            import fcntl
        except ImportError:  # Windows
            yield folder
            return
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "?"
            raise RunError(
                f"another run (process {holder}) is writing to {folder}: wait for it to end, or choose another --output"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        _HELD.add(file)
        try:
            yield folder
        finally:
            _HELD.discard(file)
            fcntl.flock(file, fcntl.LOCK_UN)


def check_writable(path: str | Path) -> Path:
    """Raise :class:`RunError` unless a file can be written at ``path``: not a folder, in a folder that exists (or is
    made now) and takes new files. Long programs call it first, so that their results are not lost at the end."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a folder; give the name of a file to write the results to")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".write-test.{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise RunError(f"cannot write to {path.parent}: {error.strerror or error}; choose another output") from error
    return path


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that runs killed in :func:`atomic_write` left in ``folder``; return them.

    A killed checkpoint write leaves a ``.checkpoint.pt.*.tmp`` as large as a checkpoint (about 1 GB for VGG-16).
    Call this only while holding :func:`lock_folder`: another run's temporary file may be in use.
    """
    stale = [path for name in RUN_FILES for path in Path(folder).glob(f".{name}.*.tmp")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def set_aside(folder: str | Path) -> list[str]:
    """Rename the run files in ``folder`` to hidden ``.NAME.replaced`` files (``--overwrite``); return their names.

    They stay until the new run has saved its first checkpoint (:func:`discard_set_aside`); a new run that fails
    before that gets them back (:func:`restore_set_aside`). Call this only while holding :func:`lock_folder`.
    """
    folder, moved = Path(folder), []
    for name in RUN_FILES:
        if (folder / name).exists():
            os.replace(folder / name, folder / f".{name}.replaced")
            moved.append(name)
    return moved


def discard_set_aside(folder: str | Path) -> None:
    """Delete what :func:`set_aside` kept: the new run has a checkpoint of its own."""
    for name in RUN_FILES:
        (Path(folder) / f".{name}.replaced").unlink(missing_ok=True)


def restore_set_aside(folder: str | Path) -> list[str]:
    """Put back what :func:`set_aside` kept, unless a new checkpoint has been saved since; return the names restored.

    Called when a new run fails, and at the start of every run (a run killed outright cannot restore them itself).
    """
    folder = Path(folder)
    kept = [name for name in RUN_FILES if (folder / f".{name}.replaced").exists()]
    if not kept or (folder / CHECKPOINT).exists():
        discard_set_aside(folder)
        return []
    for name in kept:
        os.replace(folder / f".{name}.replaced", folder / name)
    return kept


def folder_contents(folder: str | Path) -> list[str]:
    """The names in ``folder`` (sorted), except the lock file; ``[]`` if it does not exist."""
    folder = Path(folder)
    return sorted(path.name for path in folder.iterdir() if path.name != LOCK) if folder.is_dir() else []


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
        "torch": str(torch.__version__),  # a str subclass that weights_only loading refuses
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
