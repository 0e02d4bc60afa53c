"""Every GPU result the book shows, in one restartable command: ``python -m vgg_tutorial.gpu_results --out DIR``.

GPU time is short and rare here: a lease of about ten minutes on one H200, the machine bare each time. So the work
is cut into *runs*, each small enough to finish inside a lease, grouped in six *parts* (one JSON file each in
``DIR``), most valuable first:

1. ``speed.json``: :mod:`vgg_tutorial.training.bench` for VGG-16 plain and with batch norm, its four input pipelines,
   eager and compiled, torchvision's ``vgg16``/``vgg16_bn`` in the same step (a peer row), then what might lift the step
   further (CUDA graphs, a larger batch);
2. ``vgg16.json``: VGG-16 trained at full size by ``python -m vgg_tutorial.train`` (224 px, batch 256, the paper's
   SGD) on the synthetic dataset at Imagenette's size, with batch norm and plain (Glorot's start, the paper's note
   to §3.1), then tested with :mod:`vgg_tutorial.testing.evaluate`;
3. ``table3.json``: Table 3 at a real size (:mod:`vgg_tutorial.studies.gpu_study`), every cell, three seeds;
4. ``tables45.json``: Tables 4 and 5: every test method on the D nets of part 3, in the lease that trained them;
5. ``localisation.json``: Table 8: those D nets fine-tuned to predict the class object's box (Appendix A);
6. ``ensembles.json``: Tables 6 and 7: those D nets alone and combined, on validation and held-out test images.

Each finished run is written at once (atomically) with the machine, the versions, the command and its wall-clock
time; runs already in ``DIR`` are skipped, so the next lease continues where the last one stopped. ``--minutes N``
starts no run whose estimate would not finish within N minutes; ``--plan`` prints every run and its estimate
without running anything. Estimates come from what this package measured on an H200 (:data:`H200`,
:data:`~vgg_tutorial.studies.gpu_study.H200_TABLE3`, the seconds in :data:`SPEED`).
``--quick`` runs every part end to end on a CPU in tiny sizes, for the tests.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vgg_tutorial.data import cluttered
from vgg_tutorial.studies import gpu_study
from vgg_tutorial.studies.experiments import CELLS
from vgg_tutorial.studies.localisation_study import CELLS as LOCALISATION_CELLS
from vgg_tutorial.testing.evaluate import evaluate_checkpoint
from vgg_tutorial.training import bench
from vgg_tutorial.training.commands import device_name, report_errors
from vgg_tutorial.training.engine import pick_device, progress
from vgg_tutorial.training.runs import atomic_write_text, check_writable, machine
from vgg_tutorial.training.settings import TrainConfig
from vgg_tutorial.training.train import train

SCHEMA = "vgg_tutorial.gpu_results/1"
PARTS = ("speed", "vgg16", "table3", "tables45", "localisation", "ensembles")
SEEDS = 3

#: Training images/s of VGG-16 with and without batch norm at 224 px, batch 256, bf16, eager, on a fixed batch, as
#: this package measured them on one H200 (torch 2.11; book/results/bench/h200-d-bn-224.json, h200-d-224-compute.json).
H200 = {"bn": 2486, "plain": 3655}


@dataclass
class Run:
    """One unit of work: ``name`` of ``part`` (with ``seed``), its estimated seconds, and what runs it."""

    part: str
    name: str
    seed: int
    estimate_s: float
    action: Callable[[], dict]
    extra_s: Callable[[], float] = lambda: 0.0  # more seconds, known only when the run starts (a net to retrain)

    def estimate(self) -> float:
        return self.estimate_s + self.extra_s()


# ---------------------------------------------------------------------------------------------------------------
# Part 1: speed
# ---------------------------------------------------------------------------------------------------------------

#: The bench runs: name, bench arguments, and their estimate on an H200 in seconds.
SPEED = (
    ("VGG-16-BN 224 eager", "--configs D --sizes 224 --typical-steps 10", 75),
    ("VGG-16-BN 224 compiled", "--configs D --sizes 224 --pipelines device compute --compile", 80),
    ("VGG-16 224 eager", "--configs D --sizes 224 --no-batch-norm --pipelines host device compute", 40),
    ("VGG-16 224 compiled", "--configs D --sizes 224 --no-batch-norm --pipelines device compute --compile", 70),
    ("torchvision vgg16_bn 224", "--configs D --sizes 224 --pipelines compute --source torchvision", 15),
    (
        "torchvision vgg16_bn 224 compiled",
        "--configs D --sizes 224 --pipelines compute --source torchvision --compile",
        50,
    ),
    ("torchvision vgg16 224", "--configs D --sizes 224 --pipelines compute --source torchvision --no-batch-norm", 12),
    (
        "torchvision vgg16 224 compiled",
        "--configs D --sizes 224 --pipelines compute --source torchvision --no-batch-norm --compile",
        50,
    ),
    ("VGG-16-BN 160 eager", "--configs D --sizes 160 --typical-steps 10", 50),
    ("VGG-16 160 eager", "--configs D --sizes 160 --no-batch-norm --pipelines device compute", 25),
    (
        "VGG-16 224 CUDA graphs",
        "--configs D --sizes 224 --no-batch-norm --pipelines compute --compile --compile-mode reduce-overhead",
        90,
    ),
    (
        "VGG-16 224 batch 512 compiled",
        "--configs D --sizes 224 --no-batch-norm --pipelines compute --compile --batch-size 512",
        60,
    ),
)
#: How many of :data:`SPEED` come first (VGG-16 at 224 px, eager and compiled); the peers and the rest come later.
SPEED_FIRST = 4
#: The same runs in tiny sizes on a CPU (``--quick``): every option is exercised, nothing is measured.
SPEED_QUICK = "--quick --sizes 32 --width 0.0625 --fc-width 32 --batch-size 4 --steps 2 --warmup 1 --workers 0"
SPEED_QUICK += " --train-per-class 2"


def quick_options(options: str) -> list[str]:
    """A run's bench options for ``--quick``: no compilation (a CPU compiles for minutes) and tiny sizes."""
    words, kept = shlex.split(options), []
    for index, word in enumerate(words):
        valued = index and words[index - 1] in ("--sizes", "--batch-size", "--compile-mode")
        if word not in ("--compile", "--sizes", "--batch-size", "--compile-mode") and not valued:
            kept.append(word)
    return kept + shlex.split(SPEED_QUICK)


def speed_runs(args, work: Path) -> list[Run]:
    runs = []
    for name, options, estimate in SPEED:
        argv = shlex.split(options) + ["--no-phases", "--data-root", str(work / "data"), "--train-per-class", "200"]
        if args.quick:
            if "torchvision" in options:  # torchvision's nets have the paper's widths only: too big for a quick run
                continue
            argv, estimate = quick_options(options) + ["--no-phases", "--data-root", str(work / "data")], 3
        runs.append(Run("speed", name, 0, estimate, lambda argv=argv: bench.main(argv)))
    return runs


# ---------------------------------------------------------------------------------------------------------------
# Part 2: VGG-16 trained at full size
# ---------------------------------------------------------------------------------------------------------------

#: Training of VGG-16 at full size: with batch norm, and plain from Glorot's initialisation (the note to §3.1).
VGG16 = {
    "VGG-16-BN": {"batch_norm": True, "init": "torchvision"},
    "VGG-16, Glorot": {"batch_norm": False, "init": "glorot"},
}
VGG16_EPOCHS = 12
#: Images per class of the 50-crop methods' subset (their 200 passes per image would not fit the lease on all).
MULTICROP_IMAGES = 50


def vgg16_config(name: str, work: Path, args) -> TrainConfig:
    """The run's :class:`~vgg_tutorial.training.settings.TrainConfig`: the paper's D, §3.1's SGD, Imagenette's size."""
    full = {"width": 1.0, "fc_width": 4096, "pooled_size": 7, "image_size": 224, "batch_size": 256, "workers": 8}
    quick = {"width": 1 / 16, "fc_width": 32, "pooled_size": 1, "image_size": 32, "batch_size": 8, "workers": 0}
    quick |= {"train_per_class": 4, "val_per_class": 2}
    size = quick if args.quick else full
    output = work / name.replace(", ", "-").replace(" ", "-").lower()
    options = {"epochs": 1 if args.quick else VGG16_EPOCHS, "in_memory": True, "resume": True, "device": args.device}
    return TrainConfig(config="D", **VGG16[name], **size, **options, lr=0.01, loader="device", output=str(output))


def train_vgg16(name: str, work: Path, args, command: str) -> dict:
    """Train one net of :data:`VGG16` (its checkpoint stays in ``work`` for :func:`test_vgg16`); its history, speed
    and peak memory."""
    cfg = vgg16_config(name, work, args)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    history = train(cfg, command=command, verbose=True)
    train_images = 10 * (cfg.train_per_class or 947)
    return {
        "config": asdict(cfg),
        "history": history,
        "train_images": train_images,
        "images_per_s": [train_images / row["seconds"] for row in history],
        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def evaluate_vgg16(name: str, work: Path, args, command: str) -> dict:
    """Test the net :func:`train_vgg16` trained (trained first if this session has not) with
    :mod:`vgg_tutorial.testing.evaluate`: single, dense and dense+flip on the whole validation split, the 50-crop
    methods on :data:`MULTICROP_IMAGES` per class; one test scale and three."""
    cfg = vgg16_config(name, work, args)
    train(cfg, command=command, verbose=False)  # a finished run resumes to its end at once
    checkpoint = Path(cfg.output) / "checkpoint.pt"
    options = {"batch_size": 64 if cfg.device != "cpu" else 8, "device": args.device, "workers": cfg.workers}
    tested = evaluate_checkpoint(checkpoint, methods=("center", "dense", "dense+flip"), **options)
    limit = 20 if args.quick else MULTICROP_IMAGES * 10
    crops = evaluate_checkpoint(checkpoint, methods=("multicrop", "dense+multicrop"), limit=limit, **options)
    return {
        "evaluation": tested["results"],
        "multicrop_images": limit,
        "multicrop": crops["results"],
        "test_scale": tested["test_scale"],
        "multi_scales": tested["multi_scales"],
    }


def vgg16_runs(args, work: Path, command: str) -> list[Run]:
    """Each net trained, then tested: two runs, so that a session that ends while testing keeps the training."""
    per_epoch = {True: 9469 / H200["bn"] + 1.5, False: 9469 / H200["plain"] + 1.2}  # training + validation, s
    runs = []
    for name, options in VGG16.items():
        training = 30 + VGG16_EPOCHS * per_epoch[options["batch_norm"]]  # rendering, then the epochs
        # testing: 7 views of 3,925 images and 200 crops of each of 500 (a guess; the first session ran out of time
        # testing with 2,500 images for the crops)
        checkpoint = Path(vgg16_config(name, work, args).output) / "checkpoint.pt"
        retrain = lambda c=checkpoint, t=training: 0.0 if c.exists() else t  # noqa: E731
        runs += [
            Run("vgg16", name, 0, 5 if args.quick else training, lambda n=name: train_vgg16(n, work, args, command)),
            Run(
                "vgg16",
                f"{name}, tested",
                0,
                5 if args.quick else 90,
                lambda n=name: evaluate_vgg16(n, work, args, command),
                extra_s=(lambda: 0.0) if args.quick else retrain,
            ),
        ]
    return runs


# ---------------------------------------------------------------------------------------------------------------
# Parts 3 to 5: Tables 3 to 7 at a real size
# ---------------------------------------------------------------------------------------------------------------


def study_runs(args, work: Path) -> list[Run]:
    """Parts 3 to 5, seed by seed: all cells of a seed, then the tests of its D nets (kept only for this lease); then
    the D nets of all seeds combined."""
    study = gpu_study.Study(args.quick, args.device, work)
    runs = []
    for seed in range(1 if args.quick else SEEDS):
        for cell, _, _, start in CELLS:
            action = lambda c=cell, s=seed: study.table3(c, s)  # noqa: E731
            retrain = lambda s=seed: study.retraining("A", s, args.quick)  # noqa: E731
            extra = {"extra_s": retrain} if start == "from-A" else {}  # A of this seed, if no earlier run kept it
            runs.append(Run("table3", cell, seed, study.estimate(cell, args.quick), action, **extra))
        for cell in gpu_study.TESTED:
            evaluation = 2 if args.quick else gpu_study.TESTED_S
            action = lambda c=cell, s=seed: study.tables45(c, s)  # noqa: E731
            retrain = lambda c=cell, s=seed: study.retraining(c, s, args.quick)  # noqa: E731
            runs.append(Run("tables45", cell, seed, evaluation, action, retrain))
        for cell, _, tuning in LOCALISATION_CELLS:
            action = lambda c=cell, s=seed: study.localisation(c, s)  # noqa: E731
            retrain = lambda s=seed: study.retraining("D", s, args.quick)  # noqa: E731
            runs.append(Run("localisation", cell, seed, study.localisation_estimate(tuning), action, retrain))
    seeds = 1 if args.quick else SEEDS
    nets = [(cell, seed) for cell in gpu_study.TESTED for seed in range(seeds)]
    testing = 2 if args.quick else 2 * len(nets) * gpu_study.ENSEMBLE_S  # each net on two splits
    retrain = lambda: sum(study.retraining(c, s, args.quick) for c, s in nets)  # noqa: E731
    runs.append(Run("ensembles", "Tables 6-7", 0, testing, lambda: study.ensembles(seeds), retrain))
    runs[0].estimate_s += 0 if args.quick else 10  # rendering the images
    return runs


# ---------------------------------------------------------------------------------------------------------------
# The results files, the plan and the command line
# ---------------------------------------------------------------------------------------------------------------

DESCRIPTIONS = {
    "speed": "python -m vgg_tutorial.bench: VGG-16 plain and BN, four pipelines, eager and compiled, torchvision peers",
    "vgg16": "python -m vgg_tutorial.train and evaluate: VGG-16 at 224 px on the synthetic set at Imagenette's size",
    "table3": "vgg_tutorial.studies.gpu_study: Table 3's cells at full width, 112 px crops, the cluttered task",
    "tables45": "vgg_tutorial.studies.gpu_study.test_net: every test method on part 3's D nets (Tables 4 and 5)",
    "localisation": "vgg_tutorial.studies.gpu_study.Study.localisation: part 3's D nets fine-tuned for boxes (Table 8)",
    "ensembles": "vgg_tutorial.studies.gpu_study.Study.ensembles: part 3's D nets alone and combined (Tables 6 and 7)",
}


def part_settings(part: str, args) -> dict:
    """What a part's results depend on besides the seed: a file made with other settings is not continued."""
    quick = bool(args.quick)
    if part in ("table3", "tables45", "localisation", "ensembles"):
        setting = asdict(gpu_study.QUICK if quick else gpu_study.FULL)
        tested = {"tested_images": None if quick else gpu_study.TESTED_IMAGES} if part != "table3" else {}
        return {"quick": quick, "setting": setting, "task": cluttered.task(), **tested}
    if part == "vgg16":
        return {"quick": quick, "epochs": 1 if quick else VGG16_EPOCHS, "multicrop_images_per_class": MULTICROP_IMAGES}
    return {"quick": quick}


def open_part(folder: Path, part: str, args) -> dict:
    """The results of ``part`` already in ``folder`` (none if its file does not exist); a file of another schema or
    made with other settings raises a ``ValueError`` naming it, rather than mixing runs."""
    path = folder / f"{part}.json"
    settings = json.loads(json.dumps(part_settings(part, args)))
    if not path.exists():
        return {"schema": SCHEMA, "part": part, "description": DESCRIPTIONS[part], "settings": settings, "runs": {}}
    try:
        results = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(
            f"{path} is not a readable results file ({error}); move it away to start the part again"
        ) from None
    if results.get("schema") != SCHEMA or results.get("part") != part:
        raise ValueError(
            f"{path} is not a {part!r} results file of schema {SCHEMA}; move it away or choose another --out"
        )
    if results.get("settings") != settings:
        raise ValueError(f"{path} was made with other settings ({results.get('settings')}); use another --out")
    return results


def load_part(folder: str | Path, part: str, name: str | None = None) -> dict | None:
    """The results file of ``part`` in ``folder`` (``name``: another file of that part, e.g. a pilot's) for the book,
    or None if that part was not measured yet."""
    path = Path(folder) / (name or f"{part}.json")
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    if results.get("schema") != SCHEMA or results.get("part") != part:
        raise ValueError(f"{path} is not a {part!r} results file of schema {SCHEMA}")
    return results


def plan(args, work: Path, command: str) -> list[Run]:
    """Every run of the parts asked for, most valuable first."""
    runs = {"speed": speed_runs(args, work), "vgg16": vgg16_runs(args, work, command)}
    for run in study_runs(args, work):
        runs.setdefault(run.part, []).append(run)
    first = sum(1 for name, *_ in SPEED[:SPEED_FIRST] if any(run.name == name for run in runs["speed"]))
    ordered = runs["speed"][:first] + runs["vgg16"] + runs["speed"][first:]  # VGG-16's speed, then VGG-16 trained
    tested = runs["table3"] + runs["tables45"] + runs["localisation"]
    ordered += sorted(tested, key=lambda run: run.seed)  # each seed's D nets tested and fine-tuned at once
    ordered += runs["ensembles"]  # the D nets of all seeds
    return [run for run in ordered if run.part in args.parts]


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def print_plan(runs: list[Run], done: set, device: torch.device) -> None:
    where = "this GPU" if device.type == "cuda" else "an H200 (measured rates; this machine has no GPU)"
    print(f"estimated minutes on {where}:")
    for part in PARTS:
        todo = [run for run in runs if run.part == part]
        if todo:
            left = sum(run.estimate() for run in todo if (run.part, run.name, run.seed) not in done)
            total = sum(run.estimate_s for run in todo)
            print(
                f"  {part + '.json':<15} {len(todo):>3} runs  {minutes(total):>9} in all, {minutes(left)} still to run"
            )
            for run in todo:
                mark = "done" if (run.part, run.name, run.seed) in done else minutes(run.estimate_s)
                print(f"      {run.name:<36} seed {run.seed}  {mark}")
    print(f"  total {minutes(sum(run.estimate_s for run in runs))}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.gpu_results",
        description="Every GPU result of the book, in runs that fit a short GPU lease; restartable.",
        epilog="Example: python -m vgg_tutorial.gpu_results --out book/results/gpu --minutes 9",
    )
    p.add_argument("--out", type=Path, required=True, help="folder of the results files (one per part)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default: all)")
    p.add_argument("--minutes", type=float, help="start no run that would not finish within this many minutes")
    p.add_argument("--plan", action="store_true", help="print every run with its estimate; run nothing")
    p.add_argument("--work", type=Path, default=Path("data/gpu-work"), help="data and nets of this lease (not kept)")
    p.add_argument("--device", type=device_name, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="every part in tiny sizes on a CPU (tests)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    args = p.parse_args(argv)
    if args.minutes is not None and not args.minutes > 0:
        p.error(f"--minutes must be a positive number, got {args.minutes}")
    device = pick_device(args.device)  # "auto" made concrete, for every run
    args.device = str(device)
    command = "python -m vgg_tutorial.gpu_results " + shlex.join(argv)
    runs = plan(args, args.work, command)
    try:
        results = {part: open_part(args.out, part, args) for part in args.parts}
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = {
        (part, name, int(seed)) for part, r in results.items() for name, seeds in r["runs"].items() for seed in seeds
    }
    if args.plan:
        print_plan(runs, done, device)
        return 0
    if device.type != "cuda" and not args.quick:
        print(
            "error: no CUDA GPU here; these results need one (--plan shows the work, --quick tests it on a CPU)",
            file=sys.stderr,
        )
        return 2
    for part in args.parts:  # before any work, not after it
        check_writable(args.out / f"{part}.json")
    began, budget = time.perf_counter(), (args.minutes or float("inf")) * 60
    todo = [run for run in runs if (run.part, run.name, run.seed) not in done]
    finished, skipped, failed = 0, [], []
    for run in progress(todo, desc="GPU results", unit="run"):
        estimate, left = run.estimate(), budget - (time.perf_counter() - began)
        if estimate > left:
            skipped.append(run)
            continue
        print(f"[{run.part}] {run.name}, seed {run.seed} (estimated {minutes(estimate)})", flush=True)
        start = time.perf_counter()
        try:
            result = run.action()
        except (Exception, SystemExit):  # one broken run (or refused option) must not cost the rest of the lease
            traceback.print_exc()
            failed.append(run)
            continue
        record = {"seconds": round(time.perf_counter() - start, 1), "estimated_seconds": round(estimate, 1)}
        record |= {"command": command, "machine": machine(device), "result": result}
        part = results[run.part]
        part["runs"].setdefault(run.name, {})[str(run.seed)] = record
        part |= {"machine": record["machine"], "command": command}
        atomic_write_text(json.dumps(part, indent=1, default=str) + "\n", args.out / f"{run.part}.json")
        finished += 1
        print(f"[{run.part}] {run.name}, seed {run.seed}: {record['seconds']:.0f} s", flush=True)
    print(f"{finished} runs done in {minutes(time.perf_counter() - began)}; {len(skipped)} left for another lease")
    for run in skipped:
        print(f"  not started (needs {minutes(run.estimate())}): [{run.part}] {run.name}, seed {run.seed}")
    for run in failed:
        print(f"  failed (traceback above): [{run.part}] {run.name}, seed {run.seed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":  # known failures as one line (commands.report_errors)
    sys.exit(report_errors(main))
