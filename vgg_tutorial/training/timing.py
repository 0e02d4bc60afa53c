"""Timing a training step honestly: clocks that do not stall the GPU, warm-up until the step time has settled,
medians over steps, the forward/backward/update split, and peak memory.

:mod:`vgg_tutorial.training.bench` times four input pipelines with these tools; :mod:`vgg_tutorial.studies.gpu_results`
uses them through it. Nothing here knows about VGG: a step is :meth:`vgg_tutorial.training.engine.Engine.train_step`,
the step that
:func:`vgg_tutorial.training.train.fit` runs.

Warm-up matters more than it seems: the first steps pay for cuDNN's autotuner, ``torch.compile``'s code generation
and the caching allocator's first requests. On an H200 the compiled VGG-16-BN measured 3,059 images/s after 6
warm-up steps and 3,684 after 20; :func:`time_steps` therefore keeps warming up, window after window, until two
windows agree (:func:`settled`).
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import torch

from vgg_tutorial.data.loaders import set_epoch
from vgg_tutorial.training.engine import Engine

#: Warm-up is judged on windows of this many steps; two consecutive window medians within :data:`SETTLE_TOLERANCE`
#: of each other mean the step time has settled.
SETTLE_WINDOW, SETTLE_TOLERANCE = 5, 0.03


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


def forever(batches, seed: int = 0):
    """Batches epoch after epoch (a new ``iter()`` per epoch, each prepared with ``set_epoch``, as ``fit`` does)."""
    epoch = 0
    while True:
        set_epoch(batches, epoch, seed)
        yield from batches
        epoch += 1


def settled(window_medians: list[float], tolerance: float = SETTLE_TOLERANCE) -> bool:
    """Whether the last two warm-up windows' median step times agree within ``tolerance`` (relative)."""
    if len(window_medians) < 2:
        return False
    previous, last = window_medians[-2:]
    return abs(last - previous) <= tolerance * previous


def time_steps(
    engine: Engine, model, optimizer, batches, *, steps: int, warmup: int, batch_size: int, max_warmup: int = 0
) -> dict:
    """Warm up, then time ``steps`` training steps on ``batches`` (data loading included).

    Warm-up is at least ``warmup`` steps; with ``max_warmup`` > ``warmup`` it goes on, :data:`SETTLE_WINDOW` steps
    at a time, until the step time has :func:`settled` or ``max_warmup`` steps have run. Besides wall-clock time,
    the CPU time of this process per step (all its threads, not the loader's workers) is kept: on a shared CPU
    machine it is less sensitive to other programs than wall-clock time.
    """
    batches = forever(batches)

    def step() -> None:
        engine.train_step(model, *engine.batch(*next(batches)), optimizer)

    done, windows = 0, []
    while done < warmup or (done < max_warmup and not settled(windows)):
        clock = Clock(engine.device)
        clock.mark()
        for _ in range(SETTLE_WINDOW if done >= warmup else warmup):
            step()
            clock.mark()
            done += 1
        windows.append(statistics.median(clock.intervals_ms()))
    synchronize(engine.device)
    clock, waits, cpu = Clock(engine.device), [], []
    clock.mark()
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        images, labels = engine.batch(*next(batches))
        waits.append(1000 * (time.perf_counter() - start))
        engine.train_step(model, images, labels, optimizer)
        clock.mark()
        cpu.append(1000 * (time.process_time() - cpu_start))
    times = clock.intervals_ms()
    median = statistics.median(times)
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else [median] * 9
    return {
        "warmup_steps": done,
        "step_ms_median": median,
        "step_ms_p10": deciles[0],
        "step_ms_p90": deciles[-1],
        "images_per_s": batch_size / median * 1000,
        "images_per_s_mean": batch_size * len(times) / sum(times) * 1000,
        "data_wait_ms_median": statistics.median(waits),
        "process_cpu_ms_median": statistics.median(cpu),
    }


def time_phases(engine: Engine, model, optimizer, images, labels, *, steps: int, warmup: int) -> dict:
    """Median milliseconds of the engine's forward (with the loss), backward and update, synchronised between."""
    spent: dict[str, list[float]] = {"forward_ms": [], "backward_ms": [], "optimizer_ms": []}
    for index in range(warmup + steps):
        synchronize(engine.device)
        t0 = time.perf_counter()
        _, loss = engine.forward(model, images, labels)
        synchronize(engine.device)
        t1 = time.perf_counter()
        engine.backward(loss, optimizer)
        synchronize(engine.device)
        t2 = time.perf_counter()
        engine.update(optimizer)
        synchronize(engine.device)
        t3 = time.perf_counter()
        if index >= warmup:
            for key, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2)):
                spent[key].append(1000 * seconds)
    return {key: statistics.median(values) for key, values in spent.items()}
