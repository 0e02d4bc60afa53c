"""Training VGG with the paper's recipe (§3.1), read top to bottom: config → data → model → optimiser → fit → CLI.

The paper trains with mini-batch SGD (batch 256, momentum 0.9, weight decay 5·10⁻⁴), starts at a learning rate of
10⁻² and divides it by 10 whenever the validation accuracy stops improving, three times in all (§3.1); these numbers
live once, in :data:`vgg_tutorial.configs.RECIPE`. This module runs that recipe, ``schedule="plateau"``, and a
modern alternative (one-cycle, or linear warm-up then cosine decay). It measures top-1 and top-5 accuracy (the
paper's metrics, §4), can use mixed precision, ``channels_last`` and ``torch.compile``, and writes after every epoch
a checkpoint from which ``--resume`` continues *exactly*: a run stopped and resumed ends with the same weights and
metrics as one that was never stopped (on a CPU, bit for bit).

The pieces live next door: the training step in :mod:`vgg_tutorial.engine`, the two ways to batch the data in
:mod:`vgg_tutorial.loaders`, the checkpoints and history files in :mod:`vgg_tutorial.runs`.

Command line: ``python -m vgg_tutorial.train --help``. Only torch and torchvision are needed; tqdm is used for
progress bars when it is installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.optim import lr_scheduler

from vgg_tutorial.configs import CONFIGS, RECIPE, check_name
from vgg_tutorial.data import DATASETS, DatasetNotFoundError, make_dataloaders
from vgg_tutorial.engine import PRECISIONS, Engine, make_optimizer, pick_device
from vgg_tutorial.loaders import set_epoch
from vgg_tutorial.models import INIT_SCHEMES, vgg
from vgg_tutorial.runs import CHECKPOINT, machine, restore_checkpoint, save_checkpoint, seed_everything, write_history
from vgg_tutorial.transforms import default_scale

#: Learning-rate schedules: the paper's divide-by-10-on-plateau (§3.1) and two modern ones.
SCHEDULES = ("plateau", "onecycle", "cosine")
#: How the training split is batched: ``auto`` is ``device`` on a GPU and ``host`` on a CPU.
LOADERS = ("auto", "host", "device")


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; the command line's options map one to one onto these fields."""

    config: str = "A"
    batch_norm: bool = True  # a plain VGG this narrow needs a careful initialisation to learn at all (chapter 6)
    init: str = "torchvision"
    width: float = 0.25
    fc_width: int = 512
    pooled_size: int = 1
    dropout: float = RECIPE.dropout
    dataset: str = "synthetic"
    data: str = "data"
    download: bool = False
    in_memory: bool = False
    train_per_class: int | None = None
    val_per_class: int | None = None
    image_size: int = 64
    scale: int | None = None  # training scale S (§3.1); None: image_size · 256 / 224
    scale_max: int | None = None  # with it, S is jittered in [scale, scale_max] per image (§3.1)
    test_scale: int | None = None  # Q; None: S, or (S_min + S_max) / 2 when jittered (§4.1)
    augment: bool = True
    epochs: int = 10
    batch_size: int = 64
    lr: float = RECIPE.lr
    momentum: float = RECIPE.momentum
    weight_decay: float = RECIPE.weight_decay
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


def build_data(cfg: TrainConfig, engine: Engine) -> tuple[Iterable, Iterable]:
    """Training and validation loaders for ``cfg`` (:func:`~vgg_tutorial.data.make_dataloaders`).

    The training split is batched on the host (``cfg.loader="host"``: JPEGs decoded per batch by worker processes)
    or on the device (``"device"``, or ``"auto"`` on a GPU: decoded once, kept next to the model, cropped, flipped
    and colour-shifted there a whole batch at a time, in the engine's dtype and memory format).
    """
    if cfg.loader not in LOADERS:
        raise ValueError(f"unknown loader {cfg.loader!r}; choose one of {', '.join(LOADERS)}")
    on_gpu = engine.device.type == "cuda"
    return make_dataloaders(
        cfg.dataset,
        cfg.data,
        image_size=cfg.image_size,
        scale=training_scale(cfg),
        test_scale=cfg.test_scale,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
        augment=cfg.augment,
        download=cfg.download,
        in_memory=cfg.in_memory,
        train_per_class=cfg.train_per_class,
        val_per_class=cfg.val_per_class,
        seed=cfg.seed,
        pin_memory=on_gpu,
        loader=("device" if on_gpu else "host") if cfg.loader == "auto" else cfg.loader,
        device=engine.device,
        dtype=engine.dtype or torch.float32,
        memory_format=engine.memory_format,
    )


def training_scale(cfg: TrainConfig) -> int | tuple[int, int] | None:
    """S of ``cfg``: an int, (S_min, S_max) when ``scale_max`` is set, or None for the default."""
    if cfg.scale_max is None:
        return cfg.scale
    low = cfg.scale if cfg.scale is not None else default_scale(cfg.image_size)
    return (low, cfg.scale_max)


def build_model(cfg: TrainConfig, num_classes: int = 10) -> nn.Module:
    """The VGG of ``cfg`` (configuration of Table 1, batch norm, init, width, FC width, pooled size)."""
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
    lr = optimizer.param_groups[0]["lr"]
    total = epochs * steps_per_epoch
    if name == "plateau":
        minimum = lr / round(1 / RECIPE.lr_factor) ** RECIPE.lr_drops  # lr / 10³
        plateau = lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=RECIPE.lr_factor, patience=patience, min_lr=minimum
        )
        return plateau, "epoch"
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


def format_epoch(row: dict, epochs: int) -> str:
    """One line per epoch, without timings, so notebook outputs are reproducible."""
    return (
        f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  lr {row['lr']:.2e}  "
        f"train loss {row['train_loss']:.4f} top-1 {row['train_top1']:5.1f}%  "
        f"val loss {row['val_loss']:.4f} top-1 {row['val_top1']:5.1f}% top-5 {row['val_top5']:5.1f}%"
    )


def fit(
    model: nn.Module,
    train_loader: Iterable,
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
    """Train ``model`` for ``epochs`` epochs and return the history (one dict per epoch, ``runs.HISTORY_FIELDS``).

    ``scheduler`` steps once per epoch (``interval="epoch"``; a ``ReduceLROnPlateau`` is given validation top-1) or
    once per batch (``interval="step"``). With ``output``, every epoch ends by writing ``checkpoint.pt`` (model,
    optimiser, scheduler, scaler, history, random states), ``history.json`` and ``history.csv``; with
    ``resume=True`` an existing checkpoint there is loaded first and training continues after its epoch.
    The model is expected on ``engine.device`` already (see :meth:`Engine.prepare`).
    """
    engine = engine or Engine()
    history: list[dict] = []
    checkpoint = Path(output) / CHECKPOINT if output is not None else None
    state = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=engine.scaler)
    if resume and checkpoint is not None and checkpoint.is_file():
        history = restore_checkpoint(checkpoint, **state)
        if verbose:
            print(f"resumed after epoch {len(history)}/{epochs}")
    forward = torch.compile(model) if compile else model  # the state dict is always the uncompiled model's

    for epoch in range(len(history), epochs):
        began = time.perf_counter()
        set_epoch(train_loader, epoch, seed)  # the data order (and augmentation) of this epoch depend on it alone
        lr = optimizer.param_groups[0]["lr"]
        per_step = scheduler if interval == "step" else None
        train = engine.train_one_epoch(forward, train_loader, optimizer, per_step, desc=f"epoch {epoch + 1}/{epochs}")
        val = engine.evaluate(forward, val_loader, desc="val")
        if scheduler is not None and interval == "epoch":
            if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
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
        if checkpoint is not None:
            save_checkpoint(checkpoint, **state, history=history, meta=meta or {})
            write_history(history, output, meta)
    return history


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
    train_loader, val_loader = build_data(cfg, engine)
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
    meta = {"config": dataclasses.asdict(cfg), "command": command, "machine": machine(device)}
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
    model.add_argument("--init", default=d.init, choices=INIT_SCHEMES, help="weight init")
    model.add_argument("--width", type=_fraction, default=d.width, help="conv channel multiplier (1 = paper)")
    model.add_argument("--fc-width", type=int, default=d.fc_width, help="hidden FC width (4096 = paper)")
    model.add_argument("--pooled-size", type=int, default=d.pooled_size, help="side of the adaptive pool (7 = paper)")
    model.add_argument("--dropout", type=float, default=d.dropout, help="dropout of the two hidden FC layers")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=d.dataset, choices=DATASETS)
    data.add_argument("--data", default=d.data, help="folder holding (or receiving) the dataset")
    data.add_argument("--download", action="store_true", help="download Imagenette if it is not there")
    data.add_argument("--in-memory", action="store_true", help="synthetic only: keep images in memory, no JPEGs")
    data.add_argument("--train-per-class", type=int, default=None, help="synthetic only (default: as Imagenette)")
    data.add_argument("--val-per-class", type=int, default=None, help="synthetic only (default: as Imagenette)")
    data.add_argument("--image-size", type=int, default=d.image_size, help="crop side (224 = paper)")
    data.add_argument("--scale", type=int, default=None, help="training scale S (default: image size · 256/224)")
    data.add_argument("--scale-max", type=int, default=None, help="jitter S in [--scale, --scale-max] (§3.1)")
    data.add_argument("--test-scale", type=int, default=None, help="test scale Q (default: S, or the jitter's middle)")
    data.add_argument("--no-augment", dest="augment", action="store_false", help="no random crop, flip, colour")
    data.add_argument("--workers", type=int, default=d.workers, help="data loader worker processes")
    data.add_argument(
        "--loader",
        default=d.loader,
        choices=LOADERS,
        help="host: JPEGs decoded per batch by workers; device: decoded once, augmented on the device; "
        "auto: device on a GPU",
    )
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=d.epochs)
    optim.add_argument("--batch-size", type=int, default=d.batch_size, help=f"{RECIPE.batch_size} = paper")
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
