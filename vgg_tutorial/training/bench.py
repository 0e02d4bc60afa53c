"""How fast does VGG train? Throughput, step time and peak memory of four input pipelines, and the hardware limit.

Run ``python -m vgg_tutorial.bench --help``. For each configuration (Table 1) and crop size it trains with SGD as in
§3.1 and times the steps of four pipelines. Every step is :meth:`vgg_tutorial.training.engine.Engine.train_step`, the
step that :func:`vgg_tutorial.training.train.fit` runs:

- ``typical``: what most write-ups do: ``ImageFolder`` + PIL transforms (``torchvision.transforms`` v1), a
  ``DataLoader`` with its defaults (no workers, no pinned memory), fp32, default memory format;
- ``host``: training's loader with ``--loader host`` (:func:`vgg_tutorial.data.datasets.make_dataloaders`: the paper's
  augmentation, an order drawn per epoch, worker processes started afresh every epoch, pinned memory on a GPU),
  with mixed precision where the device has it and channels-last tensors;
- ``device``: training's loader with ``--loader device`` (:class:`vgg_tutorial.data.loaders.DeviceLoader`: the split
  decoded once into a uint8 tensor in device memory, augmented there a batch at a time); same step settings;
- ``compute``: the same step on one fixed batch: no data loading at all, the bound the others approach.

``--source torchvision`` times torchvision's own ``vgg11``/``vgg13``/``vgg16``/``vgg19`` (``_bn``) in the same step,
a peer row that shows whether the book's builder is as fast as the library's model.

The data are the synthetic images of :mod:`vgg_tutorial.data.synthetic`, written as JPEGs at Imagenette's size (about
9.5k training images): throughput does not depend on what the pictures show. Warm-up steps are left out, step times
come from CUDA events (GPU) or ``time.perf_counter`` (CPU), and the figures are medians over steps. The results go to
a JSON file together with the machine, the library versions and the exact command line. The FLOP, MFU and memory
arithmetic is in :mod:`vgg_tutorial.paper.accounting`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import models, transforms
from torchvision.datasets import ImageFolder

from vgg_tutorial.data.datasets import make_dataloaders
from vgg_tutorial.data.synthetic import make_synthetic
from vgg_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD, default_scale
from vgg_tutorial.paper.accounting import MIN_INPUT_SIZE, model_flops_utilisation, peak_tflops, training_flops
from vgg_tutorial.paper.configs import FC_WIDTHS, RECIPE, TORCHVISION_NAMES
from vgg_tutorial.paper.models import vgg
from vgg_tutorial.paper.table import Table
from vgg_tutorial.training.commands import config_name, device_name, fraction, report_errors, whole
from vgg_tutorial.training.engine import PRECISIONS, Engine, make_optimizer
from vgg_tutorial.training.runs import atomic_write_text, check_writable, machine
from vgg_tutorial.training.timing import peak_memory, reset_peak_memory, time_phases, time_steps

SCHEMA = "vgg_tutorial.bench/2"
PIPELINES = ("typical", "host", "device", "compute")
#: Whose model is timed: the book's builder, or torchvision's (configurations A, B, D and E only).
SOURCES = ("vgg_tutorial", "torchvision")
#: ``torch.compile``'s modes: ``reduce-overhead`` replays CUDA graphs, ``max-autotune`` also searches kernels.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class StepSettings:
    """How the engine runs a step: precision (:data:`~vgg_tutorial.training.engine.PRECISIONS`), memory format, fused
    SGD, ``torch.compile``."""

    precision: str = "fp32"
    channels_last: bool = False
    fused: bool = False
    compile: bool = False
    compile_mode: str = "default"


#: The typical write-up's step: fp32, contiguous tensors, SGD one tensor at a time.
TYPICAL = StepSettings()


@dataclass(frozen=True)
class Job:
    """One (configuration, crop size) cell of the benchmark and everything needed to build its model and data."""

    config: str
    crop_size: int
    scale: int
    folder: Path


def typical_loader(folder: Path, scale: int, crop_size: int, batch_size: int) -> DataLoader:
    """The pipeline of the typical write-up: ImageFolder, PIL transforms (v1), a DataLoader with its defaults."""
    transform = transforms.Compose(
        [
            transforms.Resize(scale),
            transforms.RandomCrop(crop_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return DataLoader(ImageFolder(folder / "train", transform=transform), batch_size=batch_size, shuffle=True)


def fixed_batch(job: Job, args, engine: Engine) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of random images and labels, in the engine's dtype and memory format: no data loading at all."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, job.crop_size, job.crop_size, generator=generator)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator)
    images = images.to(engine.device, dtype=engine.dtype or torch.float32, memory_format=engine.memory_format)
    return images, labels.to(engine.device)


def build_batches(pipeline: str, job: Job, args, engine: Engine):
    """The iterable of (images, labels) batches of ``pipeline`` for ``job``, and its one-off setup time in s."""
    start = time.perf_counter()
    if pipeline == "typical":
        batches = typical_loader(job.folder, job.scale, job.crop_size, args.batch_size)
    elif pipeline in ("host", "device"):  # training's loader (what train.build_data builds for --loader host/device)
        batches, _ = make_dataloaders(
            "synthetic",
            args.data_root,
            image_size=job.crop_size,
            batch_size=args.batch_size,
            num_workers=args.workers if pipeline == "host" else 0,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            pin_memory=engine.device.type == "cuda",
            loader=pipeline,
            device=engine.device,
            dtype=engine.dtype or torch.float32,
            memory_format=engine.memory_format,
        )
    else:
        batches = [fixed_batch(job, args, engine)]
    return batches, time.perf_counter() - start


def build_model(config: str, args) -> nn.Module:
    """The timed model: :func:`~vgg_tutorial.paper.models.vgg`, or torchvision's VGG (``--source torchvision``)."""
    if args.source == "torchvision":
        name = TORCHVISION_NAMES[config] + ("_bn" if args.batch_norm else "")
        return getattr(models, name)(num_classes=args.num_classes)
    return vgg(
        config, batch_norm=args.batch_norm, num_classes=args.num_classes, width=args.width, fc_width=args.fc_width
    )


def build_step(job: Job, args, settings: StepSettings, device: torch.device):
    """The engine, model (seeded, on the device, compiled if asked) and optimiser of one timed run."""
    engine = Engine(device, settings.precision, settings.channels_last)
    torch.manual_seed(0)
    model = engine.prepare(build_model(job.config, args)).train()
    optimizer = make_optimizer(model, fused=settings.fused)
    mode = None if settings.compile_mode == "default" else settings.compile_mode
    network: nn.Module = torch.compile(model, mode=mode) if settings.compile else model
    return engine, network, optimizer


def full_size(args) -> bool:
    """Whether the benchmarked models are the paper's (so that :func:`count_macs` describes them)."""
    return args.width == 1.0 and args.fc_width == FC_WIDTHS[0]


def run_pipeline(pipeline: str, job: Job, args, settings: StepSettings, device: torch.device) -> dict:
    """Time one pipeline on one job; returns one row of the results."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = pipeline != "typical"  # the write-ups leave cuDNN's autotuner off
    engine, model, optimizer = build_step(job, args, settings, device)
    batches, setup_s = build_batches(pipeline, job, args, engine)
    reset_peak_memory(device)
    typical = pipeline == "typical"  # data-bound and slow: a few warm-up steps and only the steps its median needs
    timing = time_steps(
        engine,
        model,
        optimizer,
        batches,
        steps=args.typical_steps or args.steps if typical else args.steps,
        warmup=min(args.warmup, 3) if typical else args.warmup,
        batch_size=args.batch_size,
        max_warmup=0 if typical else args.max_warmup,
    )
    peak, peak_kind = peak_memory(device)
    options = {"batch_norm": args.batch_norm, "image_size": job.crop_size, "num_classes": args.num_classes}
    flops = training_flops(job.config, **options) if full_size(args) else None
    peak_gpu = peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    mfu = model_flops_utilisation(timing["images_per_s"], flops, peak_gpu) if flops else None
    return {
        "config": job.config,
        "batch_norm": args.batch_norm,
        "source": args.source,
        "batch_size": args.batch_size,
        "crop_size": job.crop_size,
        "scale": job.scale,
        "pipeline": pipeline,
        "settings": asdict(settings),
        "workers": args.workers if pipeline == "host" else 0,
        "setup_s": setup_s,
        **timing,
        "peak_memory_mb": peak,
        "peak_memory_kind": peak_kind,
        "training_flops_per_image": flops,
        "mfu": mfu,
    }


def run_phases(job: Job, args, label: str, settings: StepSettings, device: torch.device) -> dict:
    """Forward, backward and optimizer medians of one step on a fixed batch, under ``settings``."""
    engine, model, optimizer = build_step(job, args, settings, device)
    images, labels = fixed_batch(job, args, engine)
    phases = time_phases(engine, model, optimizer, images, labels, steps=args.steps, warmup=args.warmup)
    return {"config": job.config, "crop_size": job.crop_size, "label": label, "settings": asdict(settings), **phases}


def ratios(rows: list[dict]) -> list[dict]:
    """Per (configuration, crop size): device / compute, device / typical and host / compute, in images/s."""
    table: dict[tuple, dict[str, float]] = {}
    for row in rows:
        table.setdefault((row["config"], row["crop_size"]), {})[row["pipeline"]] = row["images_per_s"]
    out = []
    for (config, crop_size), speed in table.items():

        def ratio(a, b, speed=speed):
            return speed[a] / speed[b] if a in speed and b in speed else None

        out.append(
            {
                "config": config,
                "crop_size": crop_size,
                "device_over_compute": ratio("device", "compute"),
                "device_over_typical": ratio("device", "typical"),
                "host_over_compute": ratio("host", "compute"),
            }
        )
    return out


def fast_settings(args, device: torch.device) -> StepSettings:
    """The step settings of the host, device and compute pipelines, from the command line ("auto" resolved).

    ``--precision auto`` is the engine's choice on a GPU (bf16, or fp16 before Ampere); on a CPU the benchmark
    takes bf16, which recent CPUs run natively, where training's ``auto`` stays in fp32.
    """
    precision = "bf16" if args.precision == "auto" and device.type != "cuda" else args.precision
    channels_last = args.channels_last != "off"
    fused = device.type == "cuda" if args.fused == "auto" else args.fused == "on"
    return StepSettings(precision, channels_last, fused, args.compile, args.compile_mode)


def run(args, argv: list[str], save=None) -> dict:
    """Run every (configuration, crop size, pipeline) of ``args`` and return the results as a dict; ``save(results)``
    is called with what is done so far after every row, so that an interrupted benchmark keeps the rows it timed."""
    device = torch.device(args.device)
    load_before = os.getloadavg()
    fast = fast_settings(args, device)
    rows, phases = [], []

    def results() -> dict:  # what is done so far
        return {
            "schema": SCHEMA,
            "command": "python -m vgg_tutorial.bench " + shlex.join(argv),
            "machine": machine(device),
            "load_average_before": load_before[0],
            "load_average_after": os.getloadavg()[0],
            "arguments": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
            "flops_convention": "training FLOPs = 3 x 2 x count_macs(weights_only=True)",
            "runs": rows,
            "phases": phases,
            "ratios": ratios(rows),
        }

    for crop_size in args.sizes:
        scale = default_scale(crop_size)
        folder = make_synthetic(
            args.data_root,
            image_size=scale,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
        )
        for config in args.configs:
            job = Job(config, crop_size, scale, folder)
            for pipeline in args.pipelines:
                rows.append(run_pipeline(pipeline, job, args, TYPICAL if pipeline == "typical" else fast, device))
                print(format_row(rows[-1]), flush=True)
                if save is not None:
                    save(results())
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if args.phases:
                phases.append(run_phases(job, args, "typical settings", TYPICAL, device))
                phases.append(run_phases(job, args, "fast settings", fast, device))
    return results()


HEADER = (
    f"{'config':<8}{'px':>5} {'pipeline':<9}{'prec':<5}{'CL':<4}{'step ms':>9}{'img/s':>9}{'wait ms':>9}"
    f"{'peak MB':>9}{'MFU':>7}"
)


def results_table(rows: list[dict], caption: str = "") -> Table:
    """The timed rows as a table for the book: settings, median step (10th–90th percentile), speed, waits, CPU."""
    body = []
    for row in rows:
        settings = row["settings"]
        step = settings["precision"] + (", channels-last" if settings["channels_last"] else "")
        body.append(
            [
                row["config"] + ("-BN" if row["batch_norm"] else "") + f" {row['crop_size']} px",
                row["pipeline"],
                step + (", compiled" if settings["compile"] else ""),
                f"{row['step_ms_median']:.1f} ({row['step_ms_p10']:.1f}–{row['step_ms_p90']:.1f})",
                f"{row['images_per_s']:,.0f}",
                f"{row['data_wait_ms_median']:.1f}",
                f"{row['process_cpu_ms_median']:.1f}",
            ]
        )
    return Table(["model", "pipeline", "step", "step ms (p10–p90)", "images/s", "wait ms", "CPU ms"], body, caption)


def format_row(row: dict) -> str:
    """One line of the printed table."""
    settings = row["settings"]
    config = row["config"] + ("-BN" if row["batch_norm"] else "")
    mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a"
    return (
        f"{config:<8}{row['crop_size']:>5} {row['pipeline']:<9}{settings['precision']:<5}"
        f"{'yes' if settings['channels_last'] else 'no':<4}{row['step_ms_median']:>9.1f}{row['images_per_s']:>9.1f}"
        f"{row['data_wait_ms_median']:>9.1f}{row['peak_memory_mb']:>9.0f}{mfu:>7}"
    )


QUICK = {
    "sizes": [64, 32],
    "width": 1 / 8,
    "fc_width": 256,
    "batch_size": 32,
    "steps": 10,
    "warmup": 3,
    "max_warmup": 0,
    "train_per_class": 32,
}
FULL = {
    "sizes": [224, 160],
    "width": 1.0,
    "fc_width": FC_WIDTHS[0],
    "batch_size": RECIPE.batch_size,
    "steps": 50,
    "warmup": 10,
    "max_warmup": 60,
    "train_per_class": 947,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.bench",
        description="Training throughput of VGG with four input pipelines (typical, host, device, compute).",
        epilog="Example (GPU): python -m vgg_tutorial.bench --out book/results/bench/h100.json",
    )
    p.add_argument(
        "--configs", nargs="+", type=config_name, default=["A", "D"], help="Table 1 configurations (default: A D)"
    )
    p.add_argument(
        "--sizes", nargs="+", type=whole(MIN_INPUT_SIZE), help="crop sizes in px (default: 224 160; --quick: 64 32)"
    )
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    p.add_argument("--no-batch-norm", dest="batch_norm", action="store_false", help="plain VGG instead of *_bn")
    p.add_argument("--num-classes", type=whole(1), default=10, help="classes of the last layer (default: 10)")
    p.add_argument("--width", type=fraction, help="channel multiplier (default: 1; --quick: 1/8)")
    p.add_argument("--fc-width", type=whole(1), help="hidden FC width (default: 4096; --quick: 256)")
    p.add_argument("--batch-size", type=whole(1), help=f"default: {RECIPE.batch_size} (§3.1); --quick: 32")
    p.add_argument("--steps", type=whole(1), help="timed steps (default: 50; --quick: 10)")
    p.add_argument("--warmup", type=whole(0), help="untimed steps first (default: 10; --quick: 3)")
    p.add_argument(
        "--max-warmup",
        type=whole(0),
        help="keep warming up, 5 steps at a time, until the step time settles or this many steps ran "
        "(default: 60; --quick: 0, off)",
    )
    p.add_argument(
        "--typical-steps", type=whole(1), help="timed steps of the (slow) typical pipeline (default: --steps)"
    )
    p.add_argument("--source", choices=SOURCES, default="vgg_tutorial", help="whose model: the book's or torchvision's")
    p.add_argument("--train-per-class", type=whole(1), help="synthetic training images per class (default: 947)")
    p.add_argument("--val-per-class", type=whole(1), default=1, help="synthetic validation images per class (unused)")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where the synthetic JPEGs go")
    p.add_argument("--workers", type=whole(0), default=min(8, os.cpu_count() or 1), help="host pipeline's workers")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="fast pipelines' precision")
    p.add_argument("--channels-last", choices=("on", "off"), default="on", help="fast pipelines' memory format")
    p.add_argument("--fused", choices=("auto", "on", "off"), default="auto", help="fused SGD (auto: on a GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in the fast pipelines")
    p.add_argument("--compile-mode", choices=COMPILE_MODES, default="default", help="torch.compile's mode")
    p.add_argument("--no-phases", dest="phases", action="store_false", help="skip the forward/backward/update split")
    p.add_argument("--device", type=device_name, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny models and images, for a CPU: " + str(QUICK))
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    return p


def parse_args(argv: list[str]):
    p = parser()
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.source == "torchvision":
        others = sorted(set(args.configs) - set(TORCHVISION_NAMES))
        if others:
            p.error(f"--source torchvision has configurations {sorted(TORCHVISION_NAMES)} only, not {others}")
        if not full_size(args):
            p.error(f"--source torchvision times the paper's widths only: --width 1 --fc-width {FC_WIDTHS[0]}")
    images = 10 * args.train_per_class  # ten classes
    if args.batch_size > images:
        p.error(f"argument --batch-size: at most the {images} training images (10 × --train-per-class)")
    if args.precision == "fp16" and torch.device(args.device).type != "cuda":
        p.error("argument --precision: fp16 needs a CUDA GPU; use auto, fp32 or bf16 here")
    return args


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.out:
        check_writable(args.out)  # before the timing, not after it
    print(HEADER)
    save = (lambda done: atomic_write_text(json.dumps(done, indent=1) + "\n", args.out)) if args.out else None
    results = run(args, argv, save)
    for ratio in results["ratios"]:
        parts = [f"{k} {v:.2f}" for k, v in ratio.items() if isinstance(v, float)]
        if parts:
            print(f"{ratio['config']} {ratio['crop_size']} px: " + ", ".join(parts))
    for phase in results["phases"]:
        times = ", ".join(f"{k[:-3]} {phase[k]:.1f} ms" for k in ("forward_ms", "backward_ms", "optimizer_ms"))
        print(f"{phase['config']} {phase['crop_size']} px, {phase['label']}: {times}")
    if args.out:
        atomic_write_text(json.dumps(results, indent=1) + "\n", args.out)
        print(f"results written to {args.out}")
    return results


def load_results(path: str | Path) -> dict:
    """Read a results file written by ``python -m vgg_tutorial.bench --out`` and check its schema."""
    results = json.loads(Path(path).read_text())
    if results.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a benchmark results file of schema {SCHEMA!r}")
    return results


if __name__ == "__main__":  # the command line: known failures as one line (commands.report_errors)
    sys.exit(report_errors(lambda: main() and None))
