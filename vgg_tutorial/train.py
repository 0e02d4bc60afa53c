"""The training engine and its command line: the paper's recipe (§3.1) on a modern GPU or a laptop CPU.

The paper trains with mini-batch SGD (batch 256, momentum 0.9, weight decay 5·10⁻⁴), starts at a learning rate of
10⁻² and divides it by 10 whenever the validation accuracy stops improving, three times in all (§3.1). This module
runs that recipe, ``schedule="plateau"``, and a modern alternative (one-cycle, or linear warm-up then cosine decay).
It measures top-1 and top-5 accuracy (the paper's metrics, §4), can use mixed precision, ``channels_last`` and
``torch.compile``, and writes after every epoch a checkpoint from which ``--resume`` continues *exactly*: a run
stopped and resumed ends with the same weights and metrics as one that was never stopped (on a CPU, bit for bit).

Exactness needs every random draw to be restored or re-derived. The checkpoint holds the model, optimizer,
scheduler and gradient scaler, the history, and the random states of torch, CUDA, Python and NumPy. The order in
which training images are visited is not a state at all: :class:`EpochSampler` derives it from ``(seed, epoch)``,
as are the seeds of the loader's worker processes.

Command line: ``python -m vgg_tutorial.train --help``. Only torch and torchvision are needed; tqdm is used for
progress bars when it is installed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vgg_tutorial.configs import CONFIGS, check_name

#: Learning-rate schedules: the paper's divide-by-10-on-plateau (§3.1) and two modern ones.
SCHEDULES = ("plateau", "onecycle", "cosine")
#: Numeric precisions: ``auto`` is bf16 on GPUs that have it (Ampere and later), fp16 on older ones (T4), fp32 on CPU.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOADERS = ("auto", "dataloader", "device")
#: The paper's optimiser settings (§3.1).
PAPER_LR, PAPER_MOMENTUM, PAPER_WEIGHT_DECAY, PAPER_BATCH_SIZE = 1e-2, 0.9, 5e-4, 256
#: The paper lowers the learning rate three times (§3.1): the plateau schedule stops at lr / 10³.
PAPER_LR_DROPS = 3

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


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; the command line's options map one to one onto these fields."""

    config: str = "A"
    batch_norm: bool = True  # a plain VGG this narrow needs a careful initialisation to learn at all (chapter 6)
    init: str = "torchvision"
    width: float = 0.25
    fc_width: int = 512
    pooled_size: int = 1
    dropout: float = 0.5
    dataset: str = "synthetic"
    data: str = "data"
    download: bool = False
    in_memory: bool = False
    train_per_class: int | None = None
    val_per_class: int | None = None
    image_size: int = 64
    augment: bool = True
    epochs: int = 10
    batch_size: int = 64
    lr: float = PAPER_LR
    momentum: float = PAPER_MOMENTUM
    weight_decay: float = PAPER_WEIGHT_DECAY
    schedule: str = "plateau"
    patience: int = 2
    warmup_epochs: int = 1
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    workers: int = 0
    loader: str = "auto"
    device: str = "auto"
    output: str = "runs/vgg"
    resume: bool = False
    seed: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Progress bars and accuracy
# ---------------------------------------------------------------------------------------------------------------


def progress(iterable: Iterable, **options) -> Iterable:
    """Wrap ``iterable`` in a ``tqdm.auto`` progress bar (a widget in notebooks, text in terminals).

    Returns ``iterable`` unchanged when tqdm is not installed or ``TQDM_DISABLE`` is set to a non-empty value other
    than ``0`` (the Makefile sets it so stored notebook outputs do not depend on timing).
    """
    if os.environ.get("TQDM_DISABLE", "") not in ("", "0"):
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, leave=False, dynamic_ncols=True, **options)


def topk_hits(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """How many of ``targets`` are among the ``k`` highest ``logits``, for each ``k`` in ``ks`` (the paper's §4),
    as a tensor on the logits' device (reading it on the CPU is left to the caller).

    ``k`` is capped at the number of classes (top-5 of a 3-class problem is top-3, i.e. always right).
    """
    largest = min(max(ks), logits.shape[1])
    top = logits.topk(largest, dim=1).indices  # (batch, largest), best first
    hits = top == targets[:, None]
    return torch.stack([hits[:, : min(k, largest)].any(dim=1).sum() for k in ks])


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """:func:`topk_hits` as Python integers."""
    return topk_hits(logits, targets, ks).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Devices, precision and the random state
# ---------------------------------------------------------------------------------------------------------------


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype autocast runs in for ``precision`` on ``device``, or ``None`` for plain fp32.

    ``auto``: bf16 on GPUs with native bf16 (compute capability 8.0 and later: A100, L4, H100), fp16 on older ones
    (Colab's T4), fp32 on a CPU. fp16 needs a :class:`torch.amp.GradScaler`; bf16 has fp32's range and does not.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast with a gradient scaler needs a CUDA GPU; use bf16 or fp32 on a CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def rng_state() -> dict:
    """The random states of torch (CPU and every CUDA device), Python's ``random`` and NumPy (if installed)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()  # noqa: NPY002 (the legacy global generator is the state to keep)
    except ImportError:
        pass
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (generators take CPU byte tensors, wherever the state was loaded)."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([generator.cpu() for generator in state["cuda"]])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])  # noqa: NPY002


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy (if installed)."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)  # noqa: NPY002
    except ImportError:
        pass


def epoch_seed(seed: int, epoch: int) -> int:
    """One seed per (run seed, epoch): the data order of an epoch depends on nothing else."""
    return seed * 100_003 + epoch


# ---------------------------------------------------------------------------------------------------------------
# Data order
# ---------------------------------------------------------------------------------------------------------------


class EpochSampler(Sampler[int]):
    """A random permutation of the dataset per epoch, drawn from ``epoch_seed(seed, epoch)``.

    Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``). Because the order is a function of
    ``(seed, epoch)`` rather than a generator that advances, a resumed run visits the images in the same order as
    an uninterrupted one.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.length, generator=generator).tolist())


def epoch_loader(
    dataset: Dataset, *, batch_size: int, seed: int = 0, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A training loader whose data order and worker seeds derive from ``(seed, epoch)`` (see :func:`set_epoch`).

    Worker processes are not kept across epochs (``persistent_workers=False``): each epoch's workers are seeded
    afresh from the loader's generator, which :func:`set_epoch` re-seeds, so random augmentations in workers are
    reproduced on resume too. With ``num_workers=0`` the augmentations draw from the global torch generator, whose
    state the checkpoint keeps.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), seed),
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )


def set_epoch(loader, epoch: int, seed: int) -> None:
    """Prepare ``loader`` for ``epoch``: its sampler's order and its workers' seeds then depend on (seed, epoch).

    A :class:`~vgg_tutorial.gpu_data.DeviceLoader` draws its order and augmentations from its own (seed, epoch).
    """
    if not isinstance(loader, DataLoader):
        loader.set_epoch(epoch)
        return
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed(seed, epoch))


# ---------------------------------------------------------------------------------------------------------------
# Optimiser and schedules
# ---------------------------------------------------------------------------------------------------------------


def make_optimizer(
    model: nn.Module,
    lr: float = PAPER_LR,
    momentum: float = PAPER_MOMENTUM,
    weight_decay: float = PAPER_WEIGHT_DECAY,
    fused: bool | None = None,
) -> torch.optim.SGD:
    """Mini-batch SGD with momentum and L2 weight decay, the paper's optimiser (§3.1).

    ``fused`` (default: when the parameters are on a GPU) updates all parameters in one kernel instead of a few
    per tensor; the arithmetic is the same.
    """
    params = list(model.parameters())
    if fused is None:
        fused = bool(params) and params[0].is_cuda
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)


def make_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    patience: int = 2,
    warmup_epochs: int = 1,
):
    """The learning-rate schedule ``name`` (one of :data:`SCHEDULES`), and ``"epoch"`` or ``"step"``: when it steps.

    - ``"plateau"`` (§3.1): divide the rate by 10 when validation top-1 has not improved for ``patience`` epochs,
      at most three times (``min_lr`` = lr / 10³). The paper does not say how long it waited.
    - ``"onecycle"``: :class:`~torch.optim.lr_scheduler.OneCycleLR`, up to the optimiser's rate and down again.
    - ``"cosine"``: linear warm-up over ``warmup_epochs`` from lr / 10, then cosine decay to 0.
    """
    from torch.optim import lr_scheduler

    lr = optimizer.param_groups[0]["lr"]
    total = epochs * steps_per_epoch
    if name == "plateau":
        minimum = lr / 10**PAPER_LR_DROPS
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=patience, min_lr=minimum), (
            "epoch"
        )
    if name == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total), "step"
    if name == "cosine":
        warmup = min(warmup_epochs * steps_per_epoch, total - 1)
        if warmup <= 0:
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), "step"
        ramp = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
        decay = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup)
        return lr_scheduler.SequentialLR(optimizer, [ramp, decay], milestones=[warmup]), "step"
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


# ---------------------------------------------------------------------------------------------------------------
# One epoch of training, one pass of evaluation
# ---------------------------------------------------------------------------------------------------------------


class Engine:
    """What a training step needs besides the model and the data: device, precision, memory format, loss."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        precision: str = "auto",
        channels_last: bool = False,
        loss_fn: nn.Module | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = autocast_dtype(precision, self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
        # A gradient scaler keeps small fp16 gradients from underflowing; it is a no-op when disabled.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (and to ``channels_last`` when asked)."""
        return model.to(self.device, memory_format=self.memory_format)

    def _batch(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return images, targets.to(self.device, non_blocking=True)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def train_one_epoch(
        self, model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, scheduler=None, desc: str = ""
    ) -> dict[str, float]:
        """One pass over ``loader`` with gradient steps; ``scheduler`` (if given) steps after every batch.

        Returns the mean loss and the top-1 / top-5 accuracy (in %) over the epoch, measured on the augmented
        training images while the weights change (so they lag the end-of-epoch weights).
        """
        model.train()
        totals = Totals()
        for images, targets in progress(loader, desc=desc or "train"):
            images, targets = self._batch(images, targets)
            with self._autocast():
                logits = model(images)
                loss = self.loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            if scheduler is not None:
                scheduler.step()
            totals.add(loss, logits, targets)
        return totals.means()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Iterable, desc: str = "") -> dict[str, float]:
        """Mean loss and top-1 / top-5 accuracy (in %) of ``model`` over ``loader``, in eval mode (no dropout)."""
        model.eval()
        totals = Totals()
        for images, targets in progress(loader, desc=desc or "eval"):
            images, targets = self._batch(images, targets)
            with self._autocast():
                logits = model(images)
                loss = self.loss_fn(logits, targets)
            totals.add(loss, logits, targets)
        return totals.means()


class Totals:
    """Running sums of loss and top-1 / top-5 hits, weighted by batch size.

    The sums stay tensors on the model's device and are read once, in :meth:`means`: reading a GPU number on the
    CPU after every step would make the CPU wait for the GPU, and the GPU then wait for the next batch.
    """

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # float64: loss · n, top-1 hits, top-5 hits
        self.count = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = len(targets)
        hits = topk_hits(logits.detach().float(), targets).double()
        batch = torch.cat([loss.detach().double().reshape(1) * n, hits])
        self.sums = batch if self.sums is None else self.sums + batch
        self.count += n

    def means(self) -> dict[str, float]:
        n = max(self.count, 1)
        loss, top1, top5 = self.sums.tolist() if self.sums is not None else (0.0, 0, 0)
        return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n}


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints and history files
# ---------------------------------------------------------------------------------------------------------------


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(temporary_path)`` for a new temporary file next to ``path``, then rename it over ``path``.

    A run killed while writing leaves the previous file intact instead of a truncated one, and a failed write leaves
    no temporary file behind.
    """
    import tempfile

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


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`fit` (it holds RNG states and the history, not only tensors)."""
    return torch.load(path, map_location=map_location, weights_only=False)


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------


def format_epoch(row: dict, epochs: int) -> str:
    """One line per epoch, without timings, so notebook outputs are reproducible."""
    return (
        f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  lr {row['lr']:.2e}  "
        f"train loss {row['train_loss']:.4f} top-1 {row['train_top1']:5.1f}%  "
        f"val loss {row['val_loss']:.4f} top-1 {row['val_top1']:5.1f}% top-5 {row['val_top5']:5.1f}%"
    )


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    interval: str = "epoch",
    engine: Engine | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    compile: bool = False,
    meta: dict | None = None,
    verbose: bool = True,
) -> list[dict]:
    """Train ``model`` for ``epochs`` epochs and return the history (one dict per epoch, :data:`HISTORY_FIELDS`).

    ``scheduler`` steps once per epoch (``interval="epoch"``; a ``ReduceLROnPlateau`` is given validation top-1) or
    once per batch (``interval="step"``). With ``output``, every epoch ends by writing ``checkpoint.pt`` (model,
    optimiser, scheduler, scaler, epoch, history, random states), ``history.json`` and ``history.csv``; with
    ``resume=True`` an existing checkpoint there is loaded first and training continues after its epoch.
    The model is expected on ``engine.device`` already (see :meth:`Engine.prepare`).
    """
    engine = engine or Engine()
    history: list[dict] = []
    start = 0
    checkpoint_path = Path(output) / CHECKPOINT if output is not None else None
    if resume and checkpoint_path is not None and checkpoint_path.is_file():
        # Loaded on the CPU: load_state_dict copies weights and optimiser state onto the model's device itself.
        state = load_checkpoint(checkpoint_path, map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        engine.scaler.load_state_dict(state["scaler"])
        history, start = state["history"], state["epoch"]
        set_rng_state(state["rng"])
        if verbose:
            print(f"resumed after epoch {start}/{epochs}")
    forward = torch.compile(model) if compile else model  # the state dict is always the uncompiled model's

    for epoch in range(start, epochs):
        began = time.perf_counter()
        set_epoch(train_loader, epoch, seed)
        lr = optimizer.param_groups[0]["lr"]
        train = engine.train_one_epoch(
            forward,
            train_loader,
            optimizer,
            scheduler if interval == "step" else None,
            desc=f"epoch {epoch + 1}/{epochs}",
        )
        val = engine.evaluate(forward, val_loader, desc="val")
        if scheduler is not None and interval == "epoch":
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val["top1"])
            else:
                scheduler.step()
        row = {"epoch": epoch + 1, "lr": lr}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        row["seconds"] = round(time.perf_counter() - began, 3)
        history.append(row)
        if verbose:
            print(format_epoch(row, epochs), flush=True)
        if checkpoint_path is not None:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": engine.scaler.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "rng": rng_state(),
                "meta": meta or {},
            }
            atomic_save(state, checkpoint_path)
            write_history(history, output, meta)
    return history


# ---------------------------------------------------------------------------------------------------------------
# A whole run from a TrainConfig, and the command line
# ---------------------------------------------------------------------------------------------------------------


def build_model(cfg: TrainConfig, num_classes: int = 10) -> nn.Module:
    """The VGG of ``cfg`` (configuration of Table 1, batch norm, init, width, FC width, pooled size)."""
    from vgg_tutorial.models import vgg

    return vgg(
        check_name(cfg.config),
        batch_norm=cfg.batch_norm,
        num_classes=num_classes,
        dropout=cfg.dropout,
        init=cfg.init,
        width=cfg.width,
        fc_width=cfg.fc_width,
        pooled_size=cfg.pooled_size,
    )


def build_data(cfg: TrainConfig, device: torch.device | str = "cpu", engine: Engine | None = None):
    """Training and validation loaders for ``cfg``.

    The training loader is an :func:`epoch_loader`, or with ``cfg.loader`` = ``"device"`` (or ``"auto"`` on a GPU)
    a :class:`~vgg_tutorial.gpu_data.DeviceLoader`: the training images decoded once, kept on the GPU when they fit,
    and cropped, flipped and colour-shifted there a whole batch at a time.
    """
    from vgg_tutorial.data import make_dataloaders

    device = torch.device(device)
    if cfg.loader not in LOADERS:
        raise ValueError(f"unknown loader {cfg.loader!r}; choose one of {', '.join(LOADERS)}")
    pin_memory = device.type == "cuda"

    default_train, val_loader = make_dataloaders(
        cfg.dataset,
        cfg.data,
        image_size=cfg.image_size,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
        augment=cfg.augment,
        download=cfg.download,
        in_memory=cfg.in_memory,
        train_per_class=cfg.train_per_class,
        val_per_class=cfg.val_per_class,
        seed=cfg.seed,
        pin_memory=pin_memory,
    )
    if cfg.loader == "device" or (cfg.loader == "auto" and device.type == "cuda"):
        return device_loader(cfg, default_train.dataset, device, engine or Engine(device)), val_loader
    # Same dataset and transforms, but a data order that derives from (seed, epoch), so that resuming reproduces it.
    train_loader = epoch_loader(
        default_train.dataset, batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.workers, pin_memory=pin_memory
    )
    return train_loader, val_loader


def device_loader(cfg: TrainConfig, dataset, device: torch.device, engine: Engine):
    """A :class:`~vgg_tutorial.gpu_data.DeviceLoader` over the training images of ``dataset``, decoded once at the
    training scale S; batches come in the engine's dtype and memory format."""
    from torchvision.transforms.v2.functional import center_crop

    from vgg_tutorial.data import decode_split
    from vgg_tutorial.gpu_data import DeviceLoader
    from vgg_tutorial.transforms import default_scale

    scale = default_scale(cfg.image_size)
    if hasattr(dataset, "images"):  # the synthetic images held in memory (drawn at S already, unless told otherwise)
        images, labels = dataset.images, dataset.labels
        if images.shape[-1] != scale:
            resized = torch.nn.functional.interpolate(images.float(), size=scale, mode="bilinear", antialias=True)
            images = resized.round().clamp(0, 255).to(torch.uint8)
    else:  # an image folder (ImageFolder, torchvision's Imagenette): decode its split folder once
        samples = getattr(dataset, "samples", None) or dataset._samples
        images, labels = decode_split(Path(samples[0][0]).parents[1], scale)
    if not cfg.augment:  # rescale and centre crop only, as the DataLoader path's eval_transform(S, crop)
        images = center_crop(images, [cfg.image_size])
    return DeviceLoader(
        images,
        labels,
        batch_size=cfg.batch_size,
        crop_size=cfg.image_size,
        device=device,
        flip=cfg.augment,
        color_shift=0.1 if cfg.augment else 0.0,
        dtype=engine.dtype or torch.float32,
        memory_format=engine.memory_format,
        seed=cfg.seed,
    )


def machine() -> dict:
    """What ran the training: device name, torch version, CPU threads."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return {"device": device, "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}


def train(cfg: TrainConfig, command: str | None = None, verbose: bool = True) -> list[dict]:
    """Run ``cfg``: build data and model, train with checkpoints in ``cfg.output``, return the history."""
    check_name(cfg.config)
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    device = pick_device(cfg.device)
    engine = Engine(device, cfg.precision, cfg.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN time its algorithms once and keep the best
    seed_everything(cfg.seed)
    train_loader, val_loader = build_data(cfg, device, engine)
    num_classes = len(getattr(val_loader.dataset, "classes", None) or range(10))
    model = engine.prepare(build_model(cfg, num_classes))
    optimizer = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    scheduler, interval = make_scheduler(
        cfg.schedule,
        optimizer,
        epochs=cfg.epochs,
        steps_per_epoch=len(train_loader),
        patience=cfg.patience,
        warmup_epochs=cfg.warmup_epochs,
    )
    meta = {"config": dataclasses.asdict(cfg), "command": command, "machine": machine()}
    if verbose:
        print(f"training VGG-{cfg.config}{' with batch norm' if cfg.batch_norm else ''} on {cfg.dataset}, {device}")
    return fit(
        model,
        train_loader,
        val_loader,
        epochs=cfg.epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        interval=interval,
        engine=engine,
        output=cfg.output,
        resume=cfg.resume,
        seed=cfg.seed,
        compile=cfg.compile,
        meta=meta,
        verbose=verbose,
    )


def _fraction(text: str) -> float:
    """``"0.25"`` or ``"1/4"`` as a float (for ``--width``)."""
    numerator, _, denominator = text.partition("/")
    return float(numerator) / float(denominator) if denominator else float(text)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m vgg_tutorial.train``; every option is a :class:`TrainConfig` field."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.train",
        description=(
            "Train a VGG (Simonyan & Zisserman 2015) with the paper's SGD recipe. The defaults train a small VGG-A "
            "on the synthetic dataset (generated on first use, no download) and fit a CPU; see the book's chapter "
            "'Training VGG on Imagenette' for the GPU recipe."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = p.add_argument_group("model")
    model.add_argument("--config", default=d.config, help=f"configuration of Table 1: {', '.join(CONFIGS)}")
    model.add_argument(
        "--batch-norm",
        action=argparse.BooleanOptionalAction,
        default=d.batch_norm,
        help="batch norm after every convolution (--no-batch-norm: the paper's plain nets)",
    )
    model.add_argument("--init", default=d.init, choices=("torchvision", "paper", "glorot"), help="weight init")
    model.add_argument("--width", type=_fraction, default=d.width, help="conv channel multiplier (1 = paper)")
    model.add_argument("--fc-width", type=int, default=d.fc_width, help="hidden FC width (4096 = paper)")
    model.add_argument("--pooled-size", type=int, default=d.pooled_size, help="side of the adaptive pool (7 = paper)")
    model.add_argument("--dropout", type=float, default=d.dropout, help="dropout of the two hidden FC layers")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=d.dataset, choices=("synthetic", "imagenette"))
    data.add_argument("--data", default=d.data, help="folder holding (or receiving) the dataset")
    data.add_argument("--download", action="store_true", help="download Imagenette if it is not there")
    data.add_argument("--in-memory", action="store_true", help="synthetic only: keep images in memory, no JPEGs")
    data.add_argument("--train-per-class", type=int, default=None, help="synthetic only (default: as Imagenette)")
    data.add_argument("--val-per-class", type=int, default=None, help="synthetic only (default: as Imagenette)")
    data.add_argument("--image-size", type=int, default=d.image_size, help="crop side (224 = paper)")
    data.add_argument("--no-augment", dest="augment", action="store_false", help="no random crop, flip, colour")
    data.add_argument("--workers", type=int, default=d.workers, help="data loader worker processes")
    data.add_argument(
        "--loader",
        default=d.loader,
        choices=LOADERS,
        help="dataloader: JPEGs decoded per batch by workers; device: decoded once, augmented on the device; "
        "auto: device on a GPU",
    )
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=d.epochs)
    optim.add_argument("--batch-size", type=int, default=d.batch_size, help="256 = paper")
    optim.add_argument("--lr", type=float, default=d.lr, help="initial (or peak) learning rate")
    optim.add_argument("--momentum", type=float, default=d.momentum)
    optim.add_argument("--weight-decay", type=float, default=d.weight_decay)
    optim.add_argument("--schedule", default=d.schedule, choices=SCHEDULES, help="plateau = paper")
    optim.add_argument("--patience", type=int, default=d.patience, help="plateau: epochs without improvement")
    optim.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="cosine: linear warm-up")
    speed = p.add_argument_group("speed")
    speed.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    speed.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on tensor cores)")
    speed.add_argument("--compile", action="store_true", help="torch.compile the model")
    speed.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ...")
    run = p.add_argument_group("run")
    run.add_argument("--output", default=d.output, help="folder for checkpoint.pt, history.json, history.csv")
    run.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt if it exists")
    run.add_argument("--seed", type=int, default=d.seed)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vgg_tutorial.train``; returns the exit status."""
    from vgg_tutorial.data import DatasetNotFoundError

    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    cfg = TrainConfig(**vars(p.parse_args(argv)))
    if cfg.config not in CONFIGS:
        p.error(f"unknown configuration {cfg.config!r}; valid ones: {', '.join(CONFIGS)}")
    command = " ".join(["python -m vgg_tutorial.train", *argv])
    try:
        history = train(cfg, command=command)
    except DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if history:
        best = max(row["val_top1"] for row in history)
        print(f"best val top-1 {best:.1f}%; history and checkpoint in {cfg.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
