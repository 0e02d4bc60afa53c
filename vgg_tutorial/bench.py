"""How fast does VGG train? Throughput, step time and peak memory of four input pipelines, and the hardware limit.

Run ``python -m vgg_tutorial.bench --help``. For each configuration (Table 1) and crop size it trains with SGD as in
§3.1 (momentum 0.9, weight decay 5·10⁻⁴, lr 10⁻²) and times the steps of four pipelines:

- ``seeds``: what most write-ups do: ``ImageFolder`` + PIL transforms (``torchvision.transforms`` v1), a
  ``DataLoader`` with its defaults (no workers, no pinned memory), fp32, default memory format;
- ``package``: :func:`vgg_tutorial.data.make_dataloaders` (the paper's augmentation, worker processes, pinned
  memory on a GPU) with mixed precision where the device has it and channels-last tensors;
- ``device``: :class:`vgg_tutorial.gpu_data.DeviceLoader`: the split decoded once into a uint8 tensor in device
  memory, augmented there a batch at a time; same step settings as ``package``;
- ``compute``: the same step on one fixed batch: no data loading at all, the bound the others approach.

The data are the synthetic images of :mod:`vgg_tutorial.synthetic`, written as JPEGs at Imagenette's size (about
9.5k training images): throughput does not depend on what the pictures show. Warm-up steps are left out, step times
come from CUDA events (GPU) or ``time.perf_counter`` (CPU), and the figures are medians over steps. The results go to
a JSON file together with the machine, the library versions and the exact command line.

Model FLOPs utilisation (MFU) is 3 × forward FLOPs per image × images/s ÷ the GPU's dense bf16 peak; forward FLOPs
are 2 × the multiply-accumulates of :func:`vgg_tutorial.accounting.count_macs` with ``weights_only=True`` (products
of weights and inputs only, torchvision's "GFLOPS" convention), and the backward pass counts twice the forward.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from vgg_tutorial.accounting import count_macs, count_parameters, layer_stats
from vgg_tutorial.configs import FC_WIDTHS
from vgg_tutorial.transforms import IMAGENET_MEAN, default_scale

SCHEMA = "vgg_tutorial.bench/1"
PIPELINES = ("seeds", "package", "device", "compute")

#: Dense (no 2:4 sparsity) tensor-core peaks in TFLOP/s, bf16 (fp16 on the T4, which has no bf16), from NVIDIA's
#: datasheets, whose headline figures are twice these "with sparsity". Matched against ``torch.cuda.get_device_name``
#: in this order, so the PCIe H100 is found before the SXM one. Names not listed (an H100 NVL, say) get no MFU.
GPU_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"H100.*PCIe", 756.0),
    (r"H100 80GB HBM3|H100 SXM", 989.0),
    (r"H200", 989.0),
    (r"A100", 312.0),
    (r"\bT4\b", 65.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16/fp16 tensor-core peak of the GPU called ``device_name``, or None if it is not in the table."""
    for pattern, tflops in GPU_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops
    return None


def forward_flops(name: str, *, batch_norm: bool = True, image_size: int = 224, num_classes: int = 1000) -> int:
    """FLOPs of one forward pass on one image: 2 × ``count_macs(weights_only=True)``, the weight multiply-adds."""
    macs = count_macs(name, batch_norm=batch_norm, image_size=image_size, num_classes=num_classes, weights_only=True)
    return 2 * macs


def training_flops(name: str, **options) -> int:
    """FLOPs of one training step on one image: forward, plus a backward pass that costs twice the forward."""
    return 3 * forward_flops(name, **options)


def model_flops_utilisation(images_per_s: float, flops_per_image: float, peak: float | None) -> float | None:
    """Share of ``peak`` TFLOP/s that ``images_per_s`` training images at ``flops_per_image`` each amount to."""
    return None if peak is None else images_per_s * flops_per_image / (peak * 1e12)


def images_per_second_at(mfu: float, peak: float, flops_per_image: float) -> float:
    """Arithmetic, not measurement: the training images/s a GPU of ``peak`` TFLOP/s reaches at utilisation ``mfu``."""
    return mfu * peak * 1e12 / flops_per_image


def activation_bytes(name: str, *, batch_norm: bool = True, image_size: int = 224, element_bytes: int = 2) -> int:
    """An estimate of the bytes per image that autograd keeps for the backward pass, from the layer shapes.

    Counted from :func:`vgg_tutorial.accounting.layer_stats`: the input image; each convolution's output (kept by
    the in-place ReLU after it; with batch norm, also the normalised output the ReLU then overwrites); each
    max-pool's output and its indices (int64, 8 bytes each); the 7×7 map the classifier reads. Feature maps take
    ``element_bytes`` each: 4 in fp32, 2 under bf16/fp16 autocast. The classifier's small vectors are left out.
    """
    elements = 3 * image_size**2
    indices = 0
    for row in layer_stats(name, batch_norm=batch_norm, image_size=image_size):
        if row.label.startswith("conv") or row.label in ("BN", "avgpool"):
            elements += row.channels * row.size**2
        elif row.label == "maxpool":
            elements += row.channels * row.size**2
            indices += row.channels * row.size**2
    return elements * element_bytes + indices * 8


def training_memory_estimate(
    name: str,
    *,
    batch_norm: bool = True,
    image_size: int = 224,
    batch_size: int = 64,
    element_bytes: int = 2,
    num_classes: int = 1000,
) -> dict[str, int]:
    """An estimate, in bytes, of what one training step holds: fp32 weights, gradients and SGD momentum (4 bytes
    each per parameter) and ``batch_size`` images' activations (:func:`activation_bytes`). Convolution workspace,
    temporary buffers and allocator slack come on top, so leave a margin."""
    params = count_parameters(name, batch_norm=batch_norm, num_classes=num_classes)
    state = 3 * 4 * params
    per_image = activation_bytes(name, batch_norm=batch_norm, image_size=image_size, element_bytes=element_bytes)
    activations = batch_size * per_image
    return {"parameters_state": state, "activations": activations, "total": state + activations}


def largest_batch(name: str, memory_bytes: float, *, batch_norm: bool = True, image_size: int = 224, **options) -> int:
    """The largest power-of-two batch whose :func:`training_memory_estimate` fits in ``memory_bytes`` (0 if none)."""
    batch = 0
    while True:
        candidate = 2 * batch or 1
        estimate = training_memory_estimate(
            name, batch_norm=batch_norm, image_size=image_size, batch_size=candidate, **options
        )
        if estimate["total"] > memory_bytes:
            return batch
        batch = candidate


def saved_activation_bytes(model: nn.Module, images: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``model(images)``, parameters excluded.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``; each storage is counted once.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(images)
    return sum(seen.values())


@dataclass(frozen=True)
class StepSettings:
    """How one training step runs: autocast dtype (None: fp32), memory format, fused SGD, ``torch.compile``."""

    amp: str = "off"  #: "off", "bf16" or "fp16"
    channels_last: bool = False
    fused: bool = False
    compile: bool = False

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def default_amp(device: torch.device) -> str:
    """Mixed precision where the hardware has it: bf16 on GPUs from Ampere on, fp16 before; on a CPU, bf16."""
    if device.type == "cuda":
        from vgg_tutorial.train import autocast_dtype

        return {torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype("auto", device)]
    return "bf16"


def make_step(model: nn.Module, settings: StepSettings, device: torch.device):
    """One SGD step of §3.1 (momentum 0.9, weight decay 5·10⁻⁴, lr 10⁻²) as ``step(images, labels)``, and its
    three phases ``forward(images, labels) -> loss``, ``backward(loss)``, ``update()`` for timing them apart."""
    from vgg_tutorial.train import make_optimizer

    optimizer = make_optimizer(model, fused=settings.fused)
    scaler = torch.amp.GradScaler(device.type, enabled=settings.amp == "fp16")
    network = torch.compile(model) if settings.compile else model
    loss_fn = nn.CrossEntropyLoss()

    def forward(images, labels):
        with torch.autocast(device.type, dtype=settings.amp_dtype, enabled=settings.amp != "off"):
            return loss_fn(network(images), labels)

    def backward(loss):
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()

    def update():
        scaler.step(optimizer)
        scaler.update()

    def step(images, labels):
        backward(forward(images, labels))
        update()

    return step, (forward, backward, update)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Time stamps that do not stall the GPU: CUDA events on a GPU (read after one final sync), else perf_counter."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        return [1000 * (b - a) for a, b in zip(self.marks, self.marks[1:])]


def forever(batches):
    """Batches epoch after epoch (a new ``iter()`` per epoch, as a training loop does)."""
    while True:
        yield from batches


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: writing 5 to clear_refs resets the process's peak resident set size (VmHWM)
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory(device: torch.device) -> tuple[float | None, str]:
    """Peak memory in MB since :func:`reset_peak_memory` and what it is: GPU memory allocated by tensors, or the
    peak resident set size of this process on a CPU (worker processes not included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    try:
        status = Path("/proc/self/status").read_text()
        kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        return kib / 1024, "peak RSS of the benchmark process (VmHWM)"
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak RSS since the process started"


def time_steps(step, batches, *, device, settings: StepSettings, steps: int, warmup: int, batch_size: int) -> dict:
    """Run ``warmup`` + ``steps`` training steps on ``batches``; time the last ``steps`` (data loading included).

    Besides wall-clock time, the CPU time of this process per step (all its threads, not the loader's workers) is
    kept: on a shared CPU machine it is less sensitive to other programs than wall-clock time.
    """
    clock, waits, cpu = Clock(device), [], []
    batches = forever(batches)
    for index in range(warmup + steps):
        if index == warmup:
            synchronize(device)
            clock.mark()
        start, cpu_start = time.perf_counter(), time.process_time()
        images, labels = next(batches)
        images = images.to(device, non_blocking=True, memory_format=settings.memory_format)
        labels = labels.to(device, non_blocking=True)
        if index >= warmup:
            waits.append(1000 * (time.perf_counter() - start))
        step(images, labels)
        if index >= warmup:
            clock.mark()
            cpu.append(1000 * (time.process_time() - cpu_start))
    times = clock.intervals_ms()
    median = statistics.median(times)
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else [median] * 9
    return {
        "step_ms_median": median,
        "step_ms_p10": deciles[0],
        "step_ms_p90": deciles[-1],
        "images_per_s": batch_size / median * 1000,
        "images_per_s_mean": batch_size * len(times) / sum(times) * 1000,
        "data_wait_ms_median": statistics.median(waits),
        "process_cpu_ms_median": statistics.median(cpu),
    }


def time_phases(parts, images, labels, *, device, steps: int, warmup: int) -> dict:
    """Median milliseconds of forward (with the loss), backward and the optimizer update, synchronised between."""
    forward, backward, update = parts
    spent: dict[str, list[float]] = {"forward_ms": [], "backward_ms": [], "optimizer_ms": []}
    for index in range(warmup + steps):
        synchronize(device)
        t0 = time.perf_counter()
        loss = forward(images, labels)
        synchronize(device)
        t1 = time.perf_counter()
        backward(loss)
        synchronize(device)
        t2 = time.perf_counter()
        update()
        synchronize(device)
        t3 = time.perf_counter()
        if index >= warmup:
            for key, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2)):
                spent[key].append(1000 * seconds)
    return {key: statistics.median(values) for key, values in spent.items()}


def seeds_loader(folder: Path, scale: int, crop_size: int, batch_size: int):
    """The pipeline of the typical write-up: ImageFolder, PIL transforms (v1), a DataLoader with its defaults."""
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    from vgg_tutorial.transforms import IMAGENET_STD

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


def fixed_batch(batch_size: int, crop_size: int, num_classes: int, *, device, dtype, memory_format):
    """One batch of random images and labels, yielded for ever: the compute-only bound, no data loading."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, crop_size, crop_size, generator=generator)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    images = images.to(device=device, dtype=dtype, memory_format=memory_format)
    return [(images, labels.to(device))]


@dataclass(frozen=True)
class Job:
    """One (configuration, crop size) cell of the benchmark and everything needed to build its model and data."""

    config: str
    crop_size: int
    scale: int
    folder: Path


def input_dtype(settings: StepSettings) -> torch.dtype:
    """The dtype the device pipeline hands the model: the autocast dtype (the first convolution casts to it anyway)."""
    return settings.amp_dtype or torch.float32


def build_batches(pipeline: str, job: Job, args, settings: StepSettings, device: torch.device):
    """The iterable of (images, labels) batches of ``pipeline`` for ``job``, and its one-off setup time in s."""
    start = time.perf_counter()
    if pipeline == "seeds":
        batches = seeds_loader(job.folder, job.scale, job.crop_size, args.batch_size)
    elif pipeline == "package":
        from vgg_tutorial.data import make_dataloaders

        batches, _ = make_dataloaders(
            "synthetic",
            args.data_root,
            image_size=job.crop_size,
            batch_size=args.batch_size,
            num_workers=args.workers,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
        )
    elif pipeline == "device":
        from vgg_tutorial.gpu_data import device_loader_from_folder

        batches = device_loader_from_folder(
            job.folder / "train",
            job.scale,
            job.crop_size,
            batch_size=args.batch_size,
            device=device,
            dtype=input_dtype(settings),
            memory_format=settings.memory_format,
        )
    else:
        batches = job_batch(job, args, settings, device)
    return batches, time.perf_counter() - start


def job_batch(job: Job, args, settings: StepSettings, device: torch.device):
    """The compute pipeline's one fixed batch for ``job``, in the dtype and memory format of ``settings``."""
    return fixed_batch(
        args.batch_size,
        job.crop_size,
        args.num_classes,
        device=device,
        dtype=input_dtype(settings),
        memory_format=settings.memory_format,
    )


def build_model(job: Job, args, settings: StepSettings, device: torch.device) -> nn.Module:
    from vgg_tutorial.models import vgg

    torch.manual_seed(0)
    model = vgg(
        job.config,
        batch_norm=args.batch_norm,
        num_classes=args.num_classes,
        width=args.width,
        fc_width=args.fc_width,
    )
    return model.to(device, memory_format=settings.memory_format)


def full_size(args) -> bool:
    """Whether the benchmarked models are the paper's (so that :func:`count_macs` describes them)."""
    return args.width == 1.0 and args.fc_width == FC_WIDTHS[0]


def run_pipeline(pipeline: str, job: Job, args, settings: StepSettings, device: torch.device) -> dict:
    """Time one pipeline on one job; returns one row of the results."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = pipeline != "seeds"  # the write-ups leave cuDNN's autotuner off
    model = build_model(job, args, settings, device)
    step, _ = make_step(model, settings, device)
    batches, setup_s = build_batches(pipeline, job, args, settings, device)
    reset_peak_memory(device)
    timing = time_steps(
        step,
        batches,
        device=device,
        settings=settings,
        steps=args.steps,
        warmup=args.warmup,
        batch_size=args.batch_size,
    )
    peak, peak_kind = peak_memory(device)
    flops = training_flops(job.config, **model_options(job, args)) if full_size(args) else None
    peak_gpu = peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    mfu = model_flops_utilisation(timing["images_per_s"], flops, peak_gpu) if flops else None
    return {
        "config": job.config,
        "batch_norm": args.batch_norm,
        "crop_size": job.crop_size,
        "scale": job.scale,
        "pipeline": pipeline,
        "settings": asdict(settings),
        "workers": args.workers if pipeline == "package" else 0,
        "setup_s": setup_s,
        **timing,
        "peak_memory_mb": peak,
        "peak_memory_kind": peak_kind,
        "training_flops_per_image": flops,
        "mfu": mfu,
    }


def model_options(job: Job, args) -> dict:
    return {"batch_norm": args.batch_norm, "image_size": job.crop_size, "num_classes": args.num_classes}


def run_phases(job: Job, args, label: str, settings: StepSettings, device: torch.device) -> dict:
    """Forward, backward and optimizer medians of one step on a fixed batch, under ``settings``."""
    model = build_model(job, args, settings, device)
    _, parts = make_step(model, settings, device)
    [(images, labels)] = job_batch(job, args, settings, device)
    phases = time_phases(parts, images, labels, device=device, steps=args.steps, warmup=args.warmup)
    return {"config": job.config, "crop_size": job.crop_size, "label": label, "settings": asdict(settings), **phases}


def machine(device: torch.device) -> dict:
    """What ran the benchmark: device, CPU model, core count and library versions."""
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    return {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "gpu_peak_tflops": peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def ratios(rows: list[dict]) -> list[dict]:
    """Per (configuration, crop size): device / compute, device / seeds and package / compute, in images/s."""
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
                "device_over_seeds": ratio("device", "seeds"),
                "package_over_compute": ratio("package", "compute"),
            }
        )
    return out


def fast_settings(args, device: torch.device) -> StepSettings:
    """The step settings of the package, device and compute pipelines, from the command line ("auto" resolved)."""
    amp = default_amp(device) if args.amp == "auto" else args.amp
    channels_last = args.channels_last != "off"
    fused = device.type == "cuda" if args.fused == "auto" else args.fused == "on"
    return StepSettings(amp=amp, channels_last=channels_last, fused=fused, compile=args.compile)


def run(args, argv: list[str]) -> dict:
    """Run every (configuration, crop size, pipeline) of ``args`` and return the results as a dict."""
    from vgg_tutorial.synthetic import make_synthetic

    device = torch.device(args.device)
    load_before = os.getloadavg()
    fast = fast_settings(args, device)
    seeds = StepSettings()
    rows, phases = [], []
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
                settings = seeds if pipeline == "seeds" else fast
                rows.append(run_pipeline(pipeline, job, args, settings, device))
                print(format_row(rows[-1]), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if args.phases:
                phases.append(run_phases(job, args, "seeds settings", seeds, device))
                phases.append(run_phases(job, args, "fast settings", fast, device))
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


HEADER = (
    f"{'config':<8}{'px':>5} {'pipeline':<9}{'amp':<5}{'CL':<4}{'step ms':>9}{'img/s':>9}{'wait ms':>9}"
    f"{'peak MB':>9}{'MFU':>7}"
)


def format_row(row: dict) -> str:
    """One line of the printed table."""
    settings = row["settings"]
    config = row["config"] + ("-BN" if row["batch_norm"] else "")
    mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a"
    return (
        f"{config:<8}{row['crop_size']:>5} {row['pipeline']:<9}{settings['amp']:<5}"
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
    "train_per_class": 32,
}
FULL = {
    "sizes": [224, 160],
    "width": 1.0,
    "fc_width": FC_WIDTHS[0],
    "batch_size": 256,
    "steps": 50,
    "warmup": 10,
    "train_per_class": 947,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.bench",
        description="Training throughput of VGG with four input pipelines (seeds, package, device, compute).",
        epilog="Example (GPU): python -m vgg_tutorial.bench --out book/results/bench/h100.json",
    )
    p.add_argument("--configs", nargs="+", default=["A", "D"], help="Table 1 configurations (default: A D)")
    p.add_argument("--sizes", nargs="+", type=int, help="crop sizes in px (default: 224 160; --quick: 64 32)")
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    p.add_argument("--no-batch-norm", dest="batch_norm", action="store_false", help="plain VGG instead of *_bn")
    p.add_argument("--num-classes", type=int, default=10, help="classes of the last layer (default: 10)")
    p.add_argument("--width", type=float, help="channel multiplier (default: 1; --quick: 1/8)")
    p.add_argument("--fc-width", type=int, help="hidden FC width (default: 4096; --quick: 256)")
    p.add_argument("--batch-size", type=int, help="default: 256 (§3.1); --quick: 32")
    p.add_argument("--steps", type=int, help="timed steps (default: 50; --quick: 10)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default: 10; --quick: 3)")
    p.add_argument("--train-per-class", type=int, help="synthetic training images per class (default: 947)")
    p.add_argument("--val-per-class", type=int, default=1, help="synthetic validation images per class (unused)")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where the synthetic JPEGs go")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="package pipeline's workers")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto", help="fast pipelines' autocast")
    p.add_argument("--channels-last", choices=("on", "off"), default="on", help="fast pipelines' memory format")
    p.add_argument("--fused", choices=("auto", "on", "off"), default="auto", help="fused SGD (auto: on a GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in the fast pipelines")
    p.add_argument("--no-phases", dest="phases", action="store_false", help="skip the forward/backward/update split")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny models and images, for a CPU: " + str(QUICK))
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    return p


def parse_args(argv: list[str]):
    args = parser().parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    print(HEADER)
    results = run(args, argv)
    for ratio in results["ratios"]:
        parts = [f"{k} {v:.2f}" for k, v in ratio.items() if isinstance(v, float)]
        if parts:
            print(f"{ratio['config']} {ratio['crop_size']} px: " + ", ".join(parts))
    for phase in results["phases"]:
        times = ", ".join(f"{k[:-3]} {phase[k]:.1f} ms" for k in ("forward_ms", "backward_ms", "optimizer_ms"))
        print(f"{phase['config']} {phase['crop_size']} px, {phase['label']}: {times}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from vgg_tutorial.train import atomic_write_text

        atomic_write_text(json.dumps(results, indent=1) + "\n", args.out)
        print(f"results written to {args.out}")
    return results


def load_results(path: str | Path) -> dict:
    """Read a results file written by ``python -m vgg_tutorial.bench --out`` and check its schema."""
    results = json.loads(Path(path).read_text())
    if results.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a benchmark results file of schema {SCHEMA!r}")
    return results


if __name__ == "__main__":
    main()
