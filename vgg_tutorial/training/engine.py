"""The training step, once: SGD on the cross-entropy (§3.1), top-k accuracy (§4), precision and progress.

:class:`Engine` holds what a step needs besides the model and the data (device, precision, memory format, loss,
gradient scaler). Its :meth:`~Engine.train_step` is what :func:`vgg_tutorial.training.train.fit` runs for every batch,
what the failure experiments of chapter 6 run, and what :mod:`vgg_tutorial.training.bench` times.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn

from vgg_tutorial.paper.configs import RECIPE

#: Numeric precisions: ``auto`` is bf16 on GPUs that have it (Ampere and later), fp16 on older ones (T4), fp32 on CPU.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def progress(iterable: Iterable, **options) -> Iterable:
    """Wrap ``iterable`` in a ``tqdm.auto`` progress bar (a widget in notebooks, text in terminals).

    Returns ``iterable`` unchanged when tqdm is not installed or ``TQDM_DISABLE`` is set to a non-empty value other
    than ``0`` (the Makefile sets it so stored notebook outputs do not depend on timing).
    """
    if os.environ.get("TQDM_DISABLE", "") not in ("", "0"):
        return iterable
    try:
        from tqdm.auto import tqdm  # optional: the package runs without it
    except ImportError:
        return iterable
    return tqdm(iterable, leave=False, dynamic_ncols=True, **options)


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; else ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises a ``ValueError`` naming the valid values for a device this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available on this machine; use auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has GPUs cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: MPS (Apple GPU) is not available on this machine; use auto or cpu")
    return device


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


def make_optimizer(
    model: nn.Module,
    lr: float = RECIPE.lr,
    momentum: float = RECIPE.momentum,
    weight_decay: float = RECIPE.weight_decay,
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
        self.precision = precision
        self.dtype = autocast_dtype(precision, self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
        # A gradient scaler keeps small fp16 gradients from underflowing; it is a no-op when disabled.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (and to ``channels_last`` when asked)."""
        return model.to(self.device, memory_format=self.memory_format)

    def batch(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch on the device, in the engine's memory format (a no-op for batches already there)."""
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return images, targets.to(self.device, non_blocking=True)

    def forward(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
        """Logits and loss of a batch, under autocast when the precision asks for it."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            logits = model(images)
            return logits, self.loss_fn(logits, targets)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Fresh gradients of ``loss`` (scaled for fp16)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def update(self, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser step (skipped by the scaler if fp16 gradients overflowed)."""
        self.scaler.step(optimizer)
        self.scaler.update()

    def train_step(self, model: nn.Module, images, targets, optimizer: torch.optim.Optimizer):
        """One SGD step on one batch; returns ``(logits, loss, targets)`` with the targets on the device."""
        images, targets = self.batch(images, targets)
        logits, loss = self.forward(model, images, targets)
        self.backward(loss, optimizer)
        self.update(optimizer)
        return logits, loss, targets

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
            logits, loss, targets = self.train_step(model, images, targets, optimizer)
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
            images, targets = self.batch(images, targets)
            logits, loss = self.forward(model, images, targets)
            totals.add(loss, logits, targets)
        return totals.means()
