"""Training on several GPUs as the paper did (§3.3): synchronous data parallelism, one process per GPU.

The paper split every batch of 256 images across 4 GPUs, averaged the GPU batches' gradients, and so got "exactly
the same" result as on a single GPU, 3.75 times faster (§3.3). PyTorch does this with
:class:`~torch.nn.parallel.DistributedDataParallel` (DDP), one process per GPU, started by ``torchrun``::

    torchrun --nproc_per_node=4 -m vgg_tutorial.train --batch-size 256 ...

``torchrun`` starts the processes and tells each its place in environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`start` reads them and joins the process group. From there
the run differs from a single process in five places, all in :mod:`vgg_tutorial.training.train`:

1. ``--batch-size`` stays the *global* batch: each of the N processes takes ``batch_size / N`` images of it
   (:func:`local_batch_size`) from the same epoch order (:func:`vgg_tutorial.data.loaders.shard`);
2. :func:`wrap` puts DDP around the model: ``backward()`` then averages the gradients of all processes, so each
   takes the same SGD step (and :func:`convert_batch_norm` makes batch norm use the statistics of the global batch);
3. the training metrics of the processes are averaged (:func:`average`);
4. process 0 alone checks and locks the output folder while the others wait (:func:`main_first`), and it alone
   writes checkpoints, history and progress (:func:`is_main`);
5. a process that fails or hangs ends the run: collectives give up after ``timeout`` seconds, and ``torchrun`` stops
   the other processes when one exits with an error.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is a no-op, and training is what it always was.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vgg_tutorial.training.runs import RunError

#: Seconds a collective (all-reduce, broadcast, barrier) waits for the other processes before the run fails.
TIMEOUT = 600.0


def world_size() -> int:
    """How many processes train together: ``WORLD_SIZE`` as set by ``torchrun``, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's number, 0 to ``world_size() - 1`` (0 without ``torchrun``)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process is the one that writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def local_batch_size(batch_size: int, processes: int) -> int:
    """Each process's share of the global ``batch_size``; a ``ValueError`` if it does not divide evenly.

    Equal shares are what make the averaged gradient the gradient of the global batch (§3.3).
    """
    if batch_size % processes:
        raise ValueError(
            f"the batch of {batch_size} images cannot be split evenly across {processes} processes: choose a "
            f"multiple of {processes}"
        )
    return batch_size // processes


def start(device: torch.device, timeout: float = TIMEOUT) -> torch.device:
    """Join the process group ``torchrun`` describes, if any, and return the device this process trains on.

    On GPUs: NCCL, and GPU ``LOCAL_RANK`` of this machine; on a CPU: gloo. ``timeout`` bounds every collective, so
    that a process whose partner died fails instead of waiting forever. Progress bars are turned off on all
    processes but rank 0.
    """
    if world_size() == 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    bound = device if backend == "nccl" else None
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout), device_id=bound)
    if not is_main():
        os.environ["TQDM_DISABLE"] = "1"
    return device


def stop() -> None:
    """Leave the process group (a no-op without one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def main_first(decide):
    """Call ``decide()`` on rank 0 while the other processes wait; return its result on rank 0, None on the others.

    If ``decide`` raises, rank 0 raises it and every other process raises :class:`~vgg_tutorial.training.runs.RunError`
    with its message, so no process is left waiting for a partner that gave up.
    """
    if not dist.is_initialized():
        return decide()
    failure, result = [None], None
    if is_main():
        try:
            result = decide()
        except BaseException as error:
            dist.broadcast_object_list([f"{type(error).__name__}: {error}"], src=0)
            raise
    dist.broadcast_object_list(failure, src=0)
    if failure[0] is not None:
        raise RunError(f"rank 0 stopped the run: {failure[0]}")
    return result


def share(value):
    """Rank 0's ``value`` on every process (a small Python object, sent pickled)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def convert_batch_norm(model: nn.Module) -> nn.Module:
    """``model`` with every ``BatchNorm2d`` normalising over the global batch (``SyncBatchNorm``), when several
    processes train; without this each process normalises its own share. Call it before building the optimiser."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if dist.is_initialized() else model


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` when several processes train, else ``model`` itself.

    DDP copies rank 0's weights to every process once, then averages the gradients during ``backward()``. Keep
    the unwrapped ``model`` for checkpoints: its state dict has no ``module.`` prefix.
    """
    if not dist.is_initialized():
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def average(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each metric over the processes: with equal shares, the metric of the global batches."""
    if not dist.is_initialized():
        return metrics
    values = torch.tensor(list(metrics.values()), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    return dict(zip(metrics, (values / dist.get_world_size()).tolist()))
