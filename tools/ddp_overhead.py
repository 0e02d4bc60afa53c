"""Measure what data parallelism costs on a CPU: the same run in 1 process and in N processes (gloo), same global batch.

Each process gets one thread (``OMP_NUM_THREADS=1``), so N processes use N cores where the single process uses one:
the ideal is N times fewer seconds per epoch; what is missing is the price of averaging gradients (and of every
process evaluating the whole validation split). Writes a JSON for chapter 9 with the machine and the command::

    python tools/ddp_overhead.py --out book/results/10_several_gpus/ddp_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vgg_tutorial.training.runs import machine, read_history

RUN = [
    "--width", "1/4", "--fc-width", "256", "--image-size", "64", "--in-memory", "--train-per-class", "64",
    "--val-per-class", "4", "--batch-size", "64", "--no-batch-norm", "--lr", "0.01",
    "--device", "cpu",
]  # fmt: skip


def timed_run(folder: Path, processes: int, epochs: int) -> dict:
    """Train RUN in ``processes`` processes; the epochs' seconds (the first, which warms up, left out)."""
    launcher = [sys.executable, "-m", "vgg_tutorial.train"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
        launcher += ["--master_addr=127.0.0.1", "--master_port=29613", "-m", "vgg_tutorial.train"]
    output = folder / f"p{processes}"
    command = launcher + RUN + ["--epochs", str(epochs), "--data", str(folder / "data"), "--output", str(output)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    subprocess.run(command, check=True, env=environment, timeout=1800, capture_output=True)
    seconds = [row["seconds"] for row in read_history(output)][1:]
    return {"processes": processes, "epoch_seconds": seconds, "median_epoch_seconds": statistics.median(seconds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = [timed_run(Path(folder), n, args.epochs) for n in (1, args.processes)]
    one, many = rows[0]["median_epoch_seconds"], rows[1]["median_epoch_seconds"]
    result = {
        "what": "seconds per epoch (training and validation) of the same run, 1 process vs N, global batch 64",
        "run": RUN,
        "command": " ".join(["python tools/ddp_overhead.py", *sys.argv[1:]]),
        "machine": machine("cpu"),
        "threads_per_process": 1,
        "load_average": os.getloadavg(),
        "rows": rows,
        "speedup": one / many,
        "efficiency": one / many / args.processes,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"1 process {one:.2f} s/epoch, {args.processes} processes {many:.2f} s/epoch: speedup {one / many:.2f}")


if __name__ == "__main__":
    main()
