"""The GPU results as the book shows them: tables and curves read from the files that
:mod:`vgg_tutorial.studies.gpu_results` and :mod:`vgg_tutorial.training.bench` wrote on a GPU, each labelled with the
GPU, the data and the command.

Nothing here measures anything: the chapters run on CPUs (nbval), so every GPU figure they print comes from a
committed results file. Where a part has not been measured yet, :func:`not_measured` says so, with the command.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from vgg_tutorial.paper.configs import PAPER_TABLE3, PAPER_WEIGHT_LAYERS
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies.experiments import PAPER_CELLS
from vgg_tutorial.studies.failures import spread
from vgg_tutorial.studies.testing_study import COMPARISONS, comparison_verdict

#: The command that makes every GPU result, from the repository's root.
COMMAND = "python -m vgg_tutorial.gpu_results --out book/results/gpu --minutes 9"


def not_measured(part: str) -> str:
    """The one line a chapter prints where a part of the GPU results has no file yet."""
    return f"{part}: not measured yet. On a GPU: {COMMAND} --parts {part}"


def results_of(part: dict) -> dict:
    """A part's runs as a CPU study's results file holds them, ``{"runs": {cell: {seed: result}}}``, for the study's
    own tables."""
    runs = part["runs"].items()
    return {"runs": {name: {seed: record["result"] for seed, record in seeds.items()} for name, seeds in runs}}


def describe(results: dict) -> str:
    """Where a results file was measured: GPU, PyTorch, and the command of its last run."""
    machine = results["machine"]
    return f"measured on one {machine['gpu']}, torch {machine['torch']}; command: {results['command']}"


# ---------------------------------------------------------------------------------------------------------------
# Speed (chapter 7)
# ---------------------------------------------------------------------------------------------------------------


def speed_rows(speed: dict) -> list[dict]:
    """Every timed row of the speed part (:mod:`vgg_tutorial.training.bench` rows), with the name of the run it came
    from."""
    return [
        {"run": name, **row}
        for name, seeds in speed["runs"].items()
        for record in seeds.values()
        for row in record["result"]["runs"]
    ]


def model_name(row: dict) -> str:
    """``VGG-16-BN``, ``VGG-16``, or torchvision's ``vgg16_bn`` / ``vgg16`` for a peer row."""
    if row.get("source") == "torchvision":
        return "torchvision vgg16" + ("_bn" if row["batch_norm"] else "")
    return "VGG-16" + ("-BN" if row["batch_norm"] else "")


def step_label(row: dict) -> str:
    """How the step ran: eager or compiled (with its mode), and the batch when it is not 256."""
    settings = row["settings"]
    label = "compiled" if settings["compile"] else "eager"
    if settings.get("compile_mode", "default") != "default":
        label += f" ({settings['compile_mode']})"
    if row.get("batch_size", 256) != 256:
        label += f", batch {row['batch_size']}"
    return label


def speed_table(rows: list[dict], matmul_tflops: float, crop_size: int = 224) -> Table:
    """Images/s of every pipeline at ``crop_size``, with MFU against the datasheet's peak and against the measured
    rate of a large bf16 matrix product (``matmul_tflops``), and the peak memory."""
    body = []
    for row in rows:
        if row["crop_size"] != crop_size:
            continue
        flops = row["training_flops_per_image"]
        measured = row["images_per_s"] * flops / (matmul_tflops * 1e12) if flops else None
        body.append(
            [
                model_name(row),
                step_label(row),
                row["pipeline"],
                f"{row['images_per_s']:,.0f}",
                f"{100 * row['mfu']:.0f} %" if row["mfu"] else "—",
                f"{100 * measured:.0f} %" if measured else "—",
                f"{row['peak_memory_mb'] / 1024:.1f}",
            ]
        )
    header = ["model", "step", "pipeline", "images/s", "MFU, datasheet", "MFU, measured peak", "peak GiB"]
    return Table(header, body, caption=f"Training throughput at {crop_size} px, batch 256 unless said")


def speed_of(rows: list[dict], model: str, step: str, pipeline: str, crop_size: int = 224) -> float | None:
    """Images/s of one row of :func:`speed_table` (None if it was not measured)."""
    for row in rows:
        if (model_name(row), step_label(row), row["pipeline"], row["crop_size"]) == (model, step, pipeline, crop_size):
            return row["images_per_s"]
    return None


# ---------------------------------------------------------------------------------------------------------------
# VGG-16 trained at full size (chapter 5)
# ---------------------------------------------------------------------------------------------------------------

EPOCH_LINE = re.compile(
    r"epoch\s+(\d+)/(\d+)\s+lr (\S+)\s+train loss (\S+) top-1\s+(\S+)%\s+val loss (\S+) top-1\s+(\S+)% top-5\s+(\S+)%"
)


def read_epoch_log(path: str | Path) -> list[dict]:
    """The epochs that ``python -m vgg_tutorial.train`` printed into a log (its ``format_epoch`` lines), in order."""
    keys = ("epoch", "epochs", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5")
    rows = []
    for match in EPOCH_LINE.finditer(Path(path).read_text()):
        values = match.groups()
        rows.append({key: (int(v) if key.startswith("epoch") else float(v)) for key, v in zip(keys, values)})
    return rows


def plot_curves(histories: dict[str, list[dict]], title: str):
    """Training loss and validation top-1 error per epoch of each named history; returns the two axes."""
    import matplotlib.pyplot as plt

    fig, (loss, error) = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, history in histories.items():
        epochs = [row["epoch"] for row in history]
        loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label=label)
        error.plot(epochs, [100 - row["val_top1"] for row in history], marker="o", label=label)
    loss.set(xlabel="epoch", ylabel="training loss", yscale="log")
    error.set(xlabel="epoch", ylabel="validation top-1 error (%)", yscale="log")
    for ax in (loss, error):
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return loss, error


# ---------------------------------------------------------------------------------------------------------------
# Table 3 at a real size (chapter 8)
# ---------------------------------------------------------------------------------------------------------------


def final_errors(table3: dict, cell: str) -> list[float]:
    """Validation top-1 error (%) of every seed of ``cell`` after its last epoch."""
    return [100 - record["result"]["history"][-1]["val_top1"] for record in table3["runs"][cell].values()]


def table3_table(table3: dict) -> Table:
    """The paper's Table 3 (top-1 error) beside the GPU study's, per cell: seeds, mean [min–max], seconds per run."""
    body = []
    for cell, seeds in table3["runs"].items():
        paper = next(
            (r.top1 for r in PAPER_TABLE3 if (r.config, r.train_scale) == PAPER_CELLS.get(cell, (None, None))), None
        )
        config = cell.split(",")[0].split(" ")[0]
        seconds = statistics.mean(record["seconds"] for record in seeds.values())
        body.append(
            [
                cell,
                str(PAPER_WEIGHT_LAYERS.get(config, 1)),
                f"{paper}" if paper is not None else "—",
                str(len(seeds)),
                spread(final_errors(table3, cell)),
                f"{seconds:.0f}",
            ]
        )
    header = ["cell", "layers", "paper top-1 err. (%)", "seeds", "top-1 error (%)", "s per run"]
    return Table(header, body, caption="Table 3: the paper (ImageNet) beside full-width nets on the cluttered task")


def separated(table3: dict, better: str, worse: str) -> bool | None:
    """Whether every seed of ``better`` has a lower error than every seed of ``worse`` (None if either is missing)."""
    if better not in table3["runs"] or worse not in table3["runs"]:
        return None
    return max(final_errors(table3, better)) < min(final_errors(table3, worse))


#: Table 3's comparisons (§4.1), each as (what the paper found better, what it found worse, what it is about).
TABLE3_CLAIMS = (
    ("B", "A", "depth, 13 against 11 layers"),
    ("D", "A", "depth, 16 against 11 layers"),
    ("E", "D", "depth, 19 against 16 layers"),
    ("D", "C", "3×3 against 1×1 convolutions at the same depth"),
    ("D, jittered", "D", "scale jittering, D"),
    ("E, jittered", "E", "scale jittering, E"),
    ("A", "linear", "a VGG against a linear classifier on the pixels"),
)


#: Fewer seeds than this on either side of a comparison, and it is not judged.
MIN_SEEDS = 3


def table3_verdicts(table3: dict, min_seeds: int = MIN_SEEDS) -> list[str]:
    """One line per comparison of :data:`TABLE3_CLAIMS` that the study holds: separated (every seed of the better
    cell below every seed of the worse), the other way round, or not separated; not judged on fewer seeds."""
    lines = []
    for better, worse, about in TABLE3_CLAIMS:
        if separated(table3, better, worse) is None:
            continue
        seeds = min(len(table3["runs"][better]), len(table3["runs"][worse]))
        if seeds < min_seeds:
            verdict = f"not judged ({seeds} seed{'s' if seeds > 1 else ''}; {min_seeds} needed)"
        elif separated(table3, better, worse):
            verdict = f"{better} better in every seed"
        elif separated(table3, worse, better):
            verdict = f"{worse} better in every seed (the paper found {better} better)"
        else:
            verdict = "not separated (the seeds overlap)"
        lines.append(f"{about}: {verdict}")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Tables 4 and 5 at a real size (chapter 9)
# ---------------------------------------------------------------------------------------------------------------


def tables45_table(tables45: dict, cell: str) -> Table:
    """Every test method on ``cell``'s nets: top-1 and top-5 error as mean [min–max] over seeds."""
    records = [record["result"] for record in tables45["runs"][cell].values()]
    body = []
    for label in records[0]["results"]:
        top1 = [r["results"][label]["top1_error"] for r in records]
        top5 = [r["results"][label]["top5_error"] for r in records]
        body.append([label, str(len(records)), spread(top1), spread(top5)])
    caption = f"{cell}: test methods on {records[0]['images']} validation images of the cluttered task"
    return Table(["method", "seeds", "top-1 error (%)", "top-5 error (%)"], body, caption=caption)


def tables45_verdicts(tables45: dict, cell: str, min_seeds: int = MIN_SEEDS) -> list[str]:
    """One line per comparison of chapter 9 (:data:`~vgg_tutorial.studies.testing_study.COMPARISONS`): whether the first
    method has the lower top-1 error in every seed (paired by seed, one net tested both ways)."""
    records = [record["result"] for record in tables45["runs"][cell].values()]
    if len(records) < min_seeds:
        return [f"{cell}: not judged ({len(records)} of the {min_seeds} seeds needed)"]
    q, m = records[0]["test_scale"], ",".join(map(str, records[0]["multi_scales"]))
    lines = []
    for what, better, worse in COMPARISONS:
        better, worse = better.format(q=q, m=m), worse.format(q=q, m=m)
        gains = [r["results"][worse]["top1_error"] - r["results"][better]["top1_error"] for r in records]
        lines.append(f"{what}: {comparison_verdict(gains)}")
    return lines
