"""§4.1's shallow control in miniature: is it depth, or only the receptive field? B against B-5x5, several seeds.

§4.1 asks whether B's gain over a shallower net comes from its depth or only from what its units see: "we also
compared the net B with a shallow net with five 5×5 conv. layers, which was derived from B by replacing each pair of
3×3 conv. layers with a single 5×5 conv. layer (which has the same receptive field as explained in Sect. 2.3). The
top-1 error of the shallow net was measured to be 7% higher than that of B (on a center crop)".

The control is data, :data:`~vgg_tutorial.paper.configs.CONTROLS` ``["B-5x5"]``, built by the same builder as Table 1's
columns. This module trains B and B-5x5 exactly as chapter 8 trains its cells (:mod:`vgg_tutorial.studies.experiments`:
the same synthetic images, fixed S = 37, 32 px crops, SGD, He et al.'s start, the same seeds) and keeps each run's
history in one JSON file, with the machine and the command. Validation is one centre crop at Q = S, as in §4.1.
Both nets are trained here, in the same process, rather than reusing chapter 8's B: the pair then differs in the
network alone. ``python -m vgg_tutorial.control_study --out FILE`` continues where it stopped.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from vgg_tutorial.paper.accounting import count_macs, count_parameters, layer_stats, receptive_field
from vgg_tutorial.paper.configs import weight_layers
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies import experiments
from vgg_tutorial.studies.common import open_study, run_missing
from vgg_tutorial.studies.failures import spread
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser, whole
from vgg_tutorial.training.runs import machine

#: The two nets compared: Table 1's B and its control (§4.1).
CELLS = ("B", "B-5x5")
#: §4.1: the shallow net's top-1 error, centre crop, was this many points above B's.
PAPER_GAP = 7.0


def train(config: str, images: dict, setting: experiments.Setting, seed: int) -> list[dict]:
    """Train ``config`` from ``seed`` as :func:`vgg_tutorial.studies.experiments.run_cell` trains a He-initialised cell
    at fixed S; return its history."""
    torch.manual_seed(seed)  # before building: the initial weights depend on the seed alone
    model = experiments.build(config, setting, "he")
    return experiments.train_cell(model, images, setting, seed, "fixed")[1]


def run(
    path: str | Path, seeds: int = 3, setting: experiments.Setting = experiments.FULL, command: str | None = None
) -> dict:
    """Train B and B-5x5 for seeds ``0 .. seeds-1`` (B of a seed first), keeping each history in the JSON file
    ``path``, rewritten after every run; runs already there are skipped."""
    results = open_study(path, experiments.study_settings(setting), "control_study")
    results |= {"command": command, "machine": machine("cpu"), "threads": torch.get_num_threads()}
    images = experiments.study_images(setting)
    todo = [(cell, seed) for seed in range(seeds) for cell in CELLS]
    return run_missing(path, results, todo, lambda cell, seed: train(cell, images, setting, seed))


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------


def errors(results: dict, cell: str) -> dict[str, float]:
    """Top-1 validation error (%, centre crop) of every seed of ``cell`` at its last epoch, by seed."""
    return {seed: 100 - history[-1]["val_top1"] for seed, history in results["runs"][cell].items()}


def gaps(results: dict) -> dict[str, float]:
    """Per seed: B-5x5's top-1 error minus B's (points; positive where depth wins, as in the paper's 7)."""
    shallow, deep = errors(results, "B-5x5"), errors(results, "B")
    return {seed: shallow[seed] - deep[seed] for seed in deep if seed in shallow}


def deeper_wins_every_seed(results: dict) -> bool:
    """Whether B has the lower error in every seed (paired by seed): the only way the miniature may claim it."""
    found = gaps(results)
    return bool(found) and all(gap > 0 for gap in found.values())


def table(results: dict) -> Table:
    """One row per seed (B, B-5x5, the gap) and one of min–max, beside the paper's 7 points."""
    deep, shallow, gap = errors(results, "B"), errors(results, "B-5x5"), gaps(results)
    rows = [[f"seed {s}", f"{deep[s]:.1f}", f"{shallow[s]:.1f}", f"{gap[s]:+.1f}"] for s in gap]
    rows.append(["mean [min–max]", *(spread(list(e.values())) for e in (deep, shallow, gap))])
    rows.append(["the paper (ImageNet, §4.1)", "", "", f"+{PAPER_GAP:.0f}"])
    header = ["", "B top-1 error (%)", "B-5x5 top-1 error (%)", "B-5x5 − B (points)"]
    return Table(header, rows, caption="B against its shallow control (centre crop; miniature: synthetic, CPU)")


def accounting_table(names: tuple[str, ...] = CELLS) -> Table:
    """What the nets of ``names`` are made of, computed from the data alone (§2.3's argument, in numbers): weight
    layers, convolutions by kernel, ReLUs between input and classifier, receptive field, parameters, MACs at 224 px."""
    columns = []
    for name in names:
        stats = layer_stats(name)
        convs = [row for row in stats if row.label.startswith("conv")]
        kernels = sorted({row.label.split("-")[0] for row in convs})
        columns.append(
            [
                str(weight_layers(name)),
                ", ".join(f"{sum(r.label.startswith(k) for r in convs)} × {k[4]}×{k[4]}" for k in kernels),
                str(len(convs)),
                f"{receptive_field(name)} px",
                f"{sum(row.params for row in convs):,}",
                f"{count_parameters(name):,}",
                f"{count_macs(name):,}",
            ]
        )
    what = [
        "weight layers",
        "convolutions",
        "ReLUs in the convolutional part",
        "receptive field",
        "parameters in convolutions",
        "parameters in all",
        "MACs per 224 px image",
    ]
    rows = [[label, *(column[i] for column in columns)] for i, label in enumerate(what)]
    return Table(["", *names], rows, caption="B and its shallow control, computed from CONFIGS and CONTROLS")


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.control_study --out FILE``: §4.1's shallow control in miniature, restartable."""
    parser = study_parser("control_study", main.__doc__)
    parser.add_argument("--out", required=True, help="results file (JSON); runs it already holds are skipped")
    parser.add_argument("--epochs", type=whole(1), help=f"epochs per net (default: {experiments.FULL.epochs})")
    args, command = parse_study(parser, argv)

    def study() -> None:
        setting = experiments.QUICK if args.quick else experiments.FULL
        setting = replace(setting, epochs=args.epochs) if args.epochs else setting
        results = run(args.out, args.seeds, setting, command)
        print(repr(table(results)))
        print(f"B beats B-5x5 in every seed: {deeper_wins_every_seed(results)}")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
