"""Training VGG with the paper's recipe (§3.1), read top to bottom: config → data → model → optimiser → fit → CLI.

The paper trains with mini-batch SGD (batch 256, momentum 0.9, weight decay 5·10⁻⁴), starts at a learning rate of
10⁻² and divides it by 10 whenever the validation accuracy stops improving, three times in all (§3.1); these numbers
live once, in :data:`vgg_tutorial.paper.configs.RECIPE`. This module runs that recipe, ``schedule="plateau"``, and a
modern alternative (one-cycle, or linear warm-up then cosine decay). It measures top-1 and top-5 accuracy (the
paper's metrics, §4), can use mixed precision, ``channels_last`` and ``torch.compile``, and writes after every epoch
a checkpoint from which ``--resume`` continues *exactly*: a run stopped and resumed ends with the same weights and
metrics as one that was never stopped (on a CPU, bit for bit, when both use the same number of threads: two threads
split a sum differently from one, so ``torch.set_num_threads`` changes the last digits, and then the whole run).

The output folder belongs to one run (:func:`start_or_resume`): a folder with files in it is refused unless
``--resume`` (continue, refused if a setting that changes the result differs, see :data:`RESUMABLE`) or
``--overwrite`` (start again); a second run on a folder in use fails at once
(:func:`~vgg_tutorial.training.runs.lock_folder`). Every setting is checked before any work starts
(:meth:`TrainConfig.check`), and a training loss that is no longer finite stops the run, keeping the last good
checkpoint.

The pieces live next door: the settings and the command line's options in :mod:`vgg_tutorial.training.settings`, the
training step in :mod:`vgg_tutorial.training.engine`, the two ways to batch the data in
:mod:`vgg_tutorial.data.loaders`, the checkpoints and history files in :mod:`vgg_tutorial.training.runs`, and what
changes when ``torchrun`` starts one process per GPU (the paper's §3.3) in :mod:`vgg_tutorial.training.distributed`.

Command line: ``python -m vgg_tutorial.train --help``; on N GPUs, ``torchrun --nproc_per_node=N -m
vgg_tutorial.train``. Only torch and torchvision are needed; tqdm is used for progress bars when it is installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.optim import lr_scheduler

from vgg_tutorial.data.datasets import identify_data, make_dataloaders
from vgg_tutorial.data.loaders import set_epoch
from vgg_tutorial.paper.configs import RECIPE, check_name
from vgg_tutorial.paper.models import vgg
from vgg_tutorial.training import distributed
from vgg_tutorial.training.commands import report_errors
from vgg_tutorial.training.engine import Engine, make_optimizer, pick_device
from vgg_tutorial.training.runs import (
    CHECKPOINT,
    RunError,
    discard_set_aside,
    folder_contents,
    load_checkpoint,
    lock_folder,
    machine,
    remove_temporaries,
    restore_checkpoint,
    restore_set_aside,
    save_checkpoint,
    seed_everything,
    set_aside,
    write_history,
)
from vgg_tutorial.training.settings import (
    LOADERS,
    RESUMABLE,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    parser,
    training_scale,
)


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite: the run has diverged."""

    exit_status = 1  # the command line's exit status (a refused start is 2)


def build_data(cfg: TrainConfig, engine: Engine) -> tuple[Iterable, Iterable]:
    """Training and validation loaders for ``cfg`` (:func:`~vgg_tutorial.data.datasets.make_dataloaders`).

    The training split is batched on the host (``cfg.loader="host"``: JPEGs decoded per batch by worker processes)
    or on the device (``"device"``, or ``"auto"`` on a GPU: decoded once, kept next to the model, cropped, flipped
    and colour-shifted there a whole batch at a time, in the engine's dtype and memory format). Under ``torchrun``
    each process gets its share of every global batch of ``cfg.batch_size`` (:mod:`vgg_tutorial.training.distributed`).
    """
    if cfg.loader not in LOADERS:
        raise ValueError(f"unknown loader {cfg.loader!r}; choose one of {', '.join(LOADERS)}")
    on_gpu = engine.device.type == "cuda"
    return make_dataloaders(
        **_which_data(cfg),
        test_scale=cfg.test_scale,
        batch_size=distributed.local_batch_size(cfg.batch_size, distributed.world_size()),
        num_workers=cfg.workers,
        augment=cfg.augment,
        download=cfg.download,
        seed=cfg.seed,
        pin_memory=on_gpu,
        loader=("device" if on_gpu else "host") if cfg.loader == "auto" else cfg.loader,
        device=engine.device,
        dtype=engine.dtype or torch.float32,
        memory_format=engine.memory_format,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
    )


def _which_data(cfg: TrainConfig) -> dict:
    """The settings of ``cfg`` that choose the images (not how they are batched)."""
    names = ("dataset", "image_size", "in_memory", "train_per_class", "val_per_class")
    return {name: getattr(cfg, name) for name in names} | {"root": cfg.data, "scale": training_scale(cfg)}


def data_identity(cfg: TrainConfig) -> dict:
    """What ``cfg`` trains on (:func:`~vgg_tutorial.data.datasets.identify_data`), recorded in the checkpoint and
    checked on resume; call it after :func:`build_data`."""
    return identify_data(**_which_data(cfg))


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
    resume_from: dict | None = None,
    seed: int = 0,
    compile: bool = False,
    meta: dict | None = None,
    stop_if_diverged: bool = True,
    verbose: bool = True,
) -> list[dict]:
    """Train ``model`` for ``epochs`` epochs and return the history (one dict per epoch, ``runs.HISTORY_FIELDS``).

    ``scheduler`` steps once per epoch (``interval="epoch"``; a ``ReduceLROnPlateau`` is given validation top-1) or
    once per batch (``interval="step"``). With ``output``, every epoch ends by writing ``checkpoint.pt`` (model,
    optimiser, scheduler, scaler, history, random states), ``history.json`` and ``history.csv``; ``resume_from``, a
    checkpoint from :func:`~vgg_tutorial.training.runs.load_checkpoint`, is restored first and training continues after
    its epoch. (:func:`train` decides whether a folder may be written to or resumed from; ``fit`` does as it is told.)
    A training loss that is not finite raises :class:`NonFiniteLossError` before that epoch is saved, so the last
    checkpoint is the last good one (``stop_if_diverged=False`` goes on: chapter 6 studies such runs).
    The model is expected on ``engine.device`` already (see :meth:`Engine.prepare`). Under ``torchrun`` the model
    trains inside DDP, the training metrics are averaged over the processes, and only rank 0 prints and writes.
    """
    engine = engine or Engine()
    history: list[dict] = []
    verbose = verbose and distributed.is_main()
    checkpoint = Path(output) / CHECKPOINT if output is not None and distributed.is_main() else None
    state = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=engine.scaler)
    if resume_from is not None:
        history = restore_checkpoint(resume_from, **state)
        if checkpoint is not None:  # the history files of a run killed while writing them are whole again
            write_history(history, output, resume_from.get("meta"))
        if verbose:
            print(f"resumed after epoch {len(history)}/{epochs}")
    forward = distributed.wrap(model)  # DDP with several processes: gradients averaged in backward() (§3.3)
    forward = torch.compile(forward) if compile else forward  # the state dict is always the bare model's

    for epoch in range(len(history), epochs):
        began = time.perf_counter()
        set_epoch(train_loader, epoch, seed)  # the data order (and augmentation) of this epoch depend on it alone
        lr = optimizer.param_groups[0]["lr"]
        per_step = scheduler if interval == "step" else None
        train = engine.train_one_epoch(forward, train_loader, optimizer, per_step, desc=f"epoch {epoch + 1}/{epochs}")
        train = distributed.average(train)  # every process's share of the epoch, combined
        # One NaN in the epoch makes its mean loss NaN, and nothing later can recover from it.
        if stop_if_diverged and not math.isfinite(train["loss"]):
            kept = f"the checkpoint of epoch {epoch} is kept" if epoch and checkpoint else "nothing was saved"
            raise NonFiniteLossError(
                f"the training loss became {train['loss']} in epoch {epoch + 1} (learning rate {lr:.2e}): the run "
                f"diverged and stops here; {kept}. Try a lower --lr (or batch norm, or another --init)"
            )
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
            discard_set_aside(output)  # --overwrite: the run replaced is deleted once this one has a checkpoint
    return history


def resume_conflicts(saved: dict, cfg: TrainConfig, meta: dict) -> list[str]:
    """What differs between checkpoint ``saved`` and ``cfg`` (with ``meta``: this machine) that would change the run.

    Every field but those in :data:`RESUMABLE` must be equal, and so must the device type and the precision in use
    (``precision="auto"`` is bf16 on an A100 but fp16 on a T4). ``epochs`` may grow with the plateau schedule only.
    A field added to :class:`TrainConfig` after the checkpoint was written counts as its default there.
    """
    before = saved["meta"].get("config")
    if before is None:
        return ["the checkpoint holds no configuration (an older version of vgg_tutorial wrote it)"]
    now = dataclasses.asdict(cfg)
    unknown = sorted(set(before) - set(now))
    before = {field.name: field.default for field in dataclasses.fields(TrainConfig)} | before
    problems = [f"setting {name}={before[name]!r} is unknown to this version of vgg_tutorial" for name in unknown]
    problems += [
        f"{name}: {before.get(name)!r} in the checkpoint, {value!r} now"
        for name, value in now.items()
        if name not in RESUMABLE and before.get(name) != value
    ]
    for what, old, new in [
        ("device type", saved["meta"]["machine"]["device"], meta["machine"]["device"]),
        ("precision in use", saved["meta"].get("precision"), meta["precision"]),
    ]:
        if old != new:
            problems.append(f"{what}: {old} in the checkpoint, {new} now")
    done = saved["epoch"]
    if len(saved.get("history", [None] * done)) != done:
        problems.append(f"the checkpoint's history has {len(saved['history'])} epochs, but it says {done} are done")
    if cfg.epochs < done:
        problems.append(f"epochs: the checkpoint has trained {done} epochs already, {cfg.epochs} asked for")
    elif cfg.schedule != "plateau" and cfg.epochs != before["epochs"]:
        problems.append(
            f"epochs: {before['epochs']} in the checkpoint, {cfg.epochs} now, but the {cfg.schedule} schedule spreads "
            f"its rates over the planned epochs and cannot be extended (plateau can)"
        )
    return problems


def start_or_resume(cfg: TrainConfig, meta: dict, verbose: bool = True) -> dict | None:
    """Apply the output folder's rules and return the checkpoint to resume from, or None to start afresh.

    Call it while holding the folder's lock (:func:`~vgg_tutorial.training.runs.lock_folder`); it first deletes the
    temporary files of killed runs, and puts back the run files an ``overwrite`` run set aside if it was killed
    before its first checkpoint. Then:

    - ``overwrite``: set the run files there (checkpoint, history) aside and start afresh; they are deleted when the
      new run saves its first checkpoint, and put back if it fails before
      (:func:`~vgg_tutorial.training.runs.set_aside`); other files stay;
    - ``resume`` with a checkpoint: load it (checked, see :func:`~vgg_tutorial.training.runs.load_checkpoint`) and
      continue, unless :func:`resume_conflicts` finds a difference; without one: start afresh (and say so) if the folder
      is empty, refuse if it holds anything;
    - neither: start in an empty folder, refuse one with anything in it (saying what).
    """
    folder = Path(cfg.output)
    if (stale := remove_temporaries(folder)) and verbose:
        print(f"removed {len(stale)} temporary file(s) left by a killed run: {', '.join(p.name for p in stale)}")
    if (restored := restore_set_aside(folder)) and verbose:
        print(f"put back {', '.join(restored)}: the run that was to replace them stopped before its first checkpoint")
    there = folder_contents(folder)
    if cfg.overwrite:
        if set_aside(folder) and verbose:
            print(f"--overwrite: replacing the run in {folder} (kept until this one saves its first checkpoint)")
        return None
    if cfg.resume and CHECKPOINT in there:
        saved = load_checkpoint(folder / CHECKPOINT)
        if problems := resume_conflicts(saved, cfg, meta):
            raise RunError(
                f"cannot resume {folder / CHECKPOINT}, which was made with other settings; "
                + "; ".join(problems)
                + ". Resume with the checkpoint's settings, or start a new run (--overwrite or another --output)"
            )
        old, new = saved["meta"]["machine"], meta["machine"]
        keys = ("cpu", "cpu_threads", "gpu", "torch", "processes")
        if verbose and (changed := [key for key in keys if old.get(key, 1) != new.get(key, 1)]):
            print(
                f"note: {', '.join(changed)} differ from the checkpoint's machine: the result will be close to an "
                f"uninterrupted run's, not bit-identical"
            )
        return saved
    if not there:
        if cfg.resume and verbose:
            print(f"--resume: no checkpoint in {folder}, starting from scratch")
        return None
    if cfg.resume:
        raise RunError(
            f"--resume: there is no {CHECKPOINT} in {folder}, but it holds {', '.join(there)}; refusing to write over "
            f"them: use --overwrite to replace them, or choose another --output"
        )
    raise RunError(
        f"{folder} already holds {', '.join(there)}: use --resume to continue that run, --overwrite to replace it, "
        f"or choose another --output"
    )


def train(cfg: TrainConfig, command: str | None = None, verbose: bool = True) -> list[dict]:
    """Run ``cfg``: build data and model, train with checkpoints in ``cfg.output``, return the history.

    The output folder is checked and locked before any data or model work (:func:`start_or_resume` says which
    folders are refused); refusals raise :class:`~vgg_tutorial.training.runs.RunError`. Under ``torchrun`` rank 0 checks
    and locks the folder while the other processes wait, then all of them resume from the checkpoint it chose.
    """
    cfg.check()  # again: a field may have been changed since the config was made
    device = distributed.start(pick_device(cfg.device))  # joins the process group when torchrun started this
    engine = Engine(device, cfg.precision, cfg.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN time its algorithms once and keep the best
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[engine.dtype]
    processes = distributed.world_size()
    meta = {"config": dataclasses.asdict(cfg), "command": command, "precision": precision}
    meta["machine"] = {**machine(device), "processes": processes}
    with contextlib.ExitStack() as held:

        def claim_folder() -> dict | None:  # writable? used by another run? Both found before any data or model work
            held.enter_context(lock_folder(cfg.output))
            return start_or_resume(cfg, meta, verbose)

        saved = distributed.main_first(claim_folder)  # rank 0 alone; the others wait, and stop if it refuses
        if distributed.is_main():  # a failure before the first checkpoint gives back the run --overwrite set aside
            held.callback(restore_set_aside, cfg.output)
        if distributed.share(saved is not None) and saved is None:  # the other processes resume where rank 0 does
            saved = load_checkpoint(Path(cfg.output) / CHECKPOINT)
        seed_everything(cfg.seed)
        train_loader, val_loader = build_data(cfg, engine)
        meta["data"] = data_identity(cfg)
        if saved is not None and saved["meta"].get("data", meta["data"]) != meta["data"]:  # older ones record none
            raise RunError(
                f"cannot resume {Path(cfg.output) / CHECKPOINT}: the data in {cfg.data} differ from the data it "
                f"trained on ({saved['meta'].get('data')} then, {meta['data']} now); resume with the same data"
            )
        num_classes = len(getattr(val_loader.dataset, "classes", None) or range(10))
        model = build_model(cfg, num_classes)
        model = engine.prepare(distributed.convert_batch_norm(model) if cfg.sync_batch_norm else model)
        optimizer = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
        scheduler, interval = make_scheduler(
            cfg.schedule,
            optimizer,
            epochs=cfg.epochs,
            steps_per_epoch=len(train_loader),
            patience=cfg.patience,
            warmup_epochs=cfg.warmup_epochs,
        )
        if verbose and distributed.is_main():
            on = f"{device}" if processes == 1 else f"{processes} processes on {device.type}, batch split"
            print(f"training VGG-{cfg.config}{' with batch norm' if cfg.batch_norm else ''} on {cfg.dataset}, {on}")
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
            resume_from=saved,
            seed=cfg.seed,
            compile=cfg.compile,
            meta=meta,
            verbose=verbose,
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vgg_tutorial.train``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    try:
        cfg = TrainConfig(**vars(p.parse_args(argv)))
    except ConfigError as error:  # p.error prints the usage and exits with status 2
        p.error(f"argument --{error.field.replace('_', '-')}: {error}")
    except KeyError as error:  # an unknown --config
        p.error(error.args[0])
    launcher = "python" if distributed.world_size() == 1 else f"torchrun --nproc_per_node={distributed.world_size()}"
    command = " ".join([f"{launcher} -m vgg_tutorial.train", *argv])

    def run() -> None:
        history = train(cfg, command=command)
        if history and distributed.is_main():
            best = max(row["val_top1"] for row in history)
            print(f"best val top-1 {best:.1f}%; history and checkpoint in {cfg.output}")

    try:  # refusals exit with 2, a diverged run with 1, and disk full, out of memory or Ctrl-C with a message
        return report_errors(run)
    finally:
        distributed.stop()


if __name__ == "__main__":
    sys.exit(main())
