"""§3.1's fine-tuning chain in miniature: a larger single scale, then scale jittering, each started from the last net.

The paper trained its nets at S = 256 from scratch, and the others from them: "To speed-up training of the S = 384
network, it was initialised with the weights pre-trained with S = 256, and we used a smaller initial learning rate
of 10⁻³"; the multi-scale models were trained "by fine-tuning all layers of a single-scale model with the same
configuration, pre-trained with fixed S = 384" (§3.1). The paper reports no net trained at S = 384 or with jittering
from scratch, so it does not say what the chain saves.

The miniature starts from chapter 9's D nets (:mod:`vgg_tutorial.studies.testing_study`: S = 37, ten epochs, seeds 0-2,
weights committed beside chapter 9), on the same images and setting (:mod:`vgg_tutorial.studies.experiments`):

- the larger scale is S = 55, the jittered nets' test scale, as the paper's 384 is (``experiments.scales("large")``);
- ``"D, S=55, from S=37"``: chapter 9's net fine-tuned at S = 55 for half the epochs, at a tenth of the learning
  rate; ``"D, S=55"``: the same scale from scratch, as chapter 8 trains its cells;
- ``"D, jittered, from S=55"``: that fine-tuned net fine-tuned again with S ∈ [37, 74], half the epochs, a tenth of
  the rate; chapter 9's ``"D, jittered"``, trained from scratch, is read from its weights file, as is the start;
- a chain trains for more epochs in all (15 and 20) than a net from scratch (10), so each scale is also trained from
  scratch for as many epochs as its chain: ``"D, S=55, 15 epochs"``, ``"D, jittered, 20 epochs"``.

Every net is tested on one centre crop at Q = S (Q = 55 for the jittered ones). ``python -m vgg_tutorial.chain_study
--out FILE`` keeps each history in one JSON file, with the machine and the command, and continues where it stopped.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies import experiments, testing_study
from vgg_tutorial.studies.common import open_study, run_missing
from vgg_tutorial.studies.failures import spread
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser
from vgg_tutorial.training.runs import machine

#: §3.1: 10⁻³ where training from scratch used 10⁻², a tenth; the miniature divides its own rate by ten.
FINE_LR = experiments.LR / 10
#: Every net of the study: (start, training scale, learning rate, share of the setting's epochs). The start is a
#: net of chapter 9 (read, not trained), ``"he"`` (from scratch), or the cell it is fine-tuned from.
CELLS: dict[str, tuple[str, str, float, float]] = {
    "D, S=37 (chapter 9)": ("chapter 9", "fixed", experiments.LR, 1.0),
    "D, S=55": ("he", "large", experiments.LR, 1.0),
    "D, S=55, from S=37": ("D, S=37 (chapter 9)", "large", FINE_LR, 0.5),
    "D, jittered (chapter 9)": ("chapter 9", "jittered", experiments.LR, 1.0),
    "D, jittered, from S=55": ("D, S=55, from S=37", "jittered", FINE_LR, 0.5),
    "D, S=55, 15 epochs": ("he", "large", experiments.LR, 1.5),
    "D, jittered, 20 epochs": ("he", "jittered", experiments.LR, 2.0),
}
#: Chapter 9's cell of each net read from its weights.
CHAPTER9 = {"D, S=37 (chapter 9)": "D", "D, jittered (chapter 9)": "D, jittered"}
#: The comparisons the chapter draws: (fine-tuned, from scratch), the second of each scale with as many epochs in all.
PAIRS = (
    ("D, S=55, from S=37", "D, S=55"),
    ("D, S=55, from S=37", "D, S=55, 15 epochs"),
    ("D, jittered, from S=55", "D, jittered (chapter 9)"),
    ("D, jittered, from S=55", "D, jittered, 20 epochs"),
)


def epochs(cell: str, setting: experiments.Setting) -> int:
    """Epochs ``cell`` trains for (its own stage): the setting's, or half of them for a fine-tuning (at least 1)."""
    return max(1, round(CELLS[cell][3] * setting.epochs))


def epochs_in_all(cell: str, setting: experiments.Setting) -> int:
    """Epochs behind ``cell``: its own and those of every net it was fine-tuned from."""
    start = CELLS[cell][0]
    return epochs(cell, setting) + (epochs_in_all(start, setting) if start in CELLS else 0)


def chain(nets: str | Path, setting: experiments.Setting):
    """``net(cell, seed)``: the trained net of ``cell`` and its history; chapter 9's read from the folder ``nets``,
    the others trained here and kept, so that a fine-tuning finds the net it starts from (trained again, the same
    way, when a restarted study needs it, as :func:`vgg_tutorial.studies.experiments.run_cell` does for "E from A")."""
    images = experiments.study_images(setting)

    @functools.cache
    def net(cell: str, seed: int) -> tuple[torch.nn.Module, list[dict]]:
        start, kind, lr, _ = CELLS[cell]
        if start == "chapter 9":
            path = testing_study.weights_path(nets, CHAPTER9[cell], seed)
            expected = {"cell": CHAPTER9[cell], "seed": seed, "setting": asdict(setting)}
            model, record = testing_study.load_net(path, expected)
            return model, record["history"]
        torch.manual_seed(seed)  # before building: the initial weights depend on the seed alone
        model = experiments.build("D", setting)
        if start != "he":  # fine-tune a copy: the net it starts from stays as it was trained
            model.load_state_dict(net(start, seed)[0].state_dict())
        own = replace(setting, epochs=epochs(cell, setting))
        return experiments.train_cell(model, images, own, seed, kind, lr)

    return net


def run(path: str | Path, nets: str | Path, *, seeds: int = 3, setting=experiments.FULL, command=None) -> dict:
    """Every cell of :data:`CELLS` for seeds ``0 .. seeds-1``, chapter 9's nets read from the folder ``nets``; each
    history goes to the JSON file ``path``, rewritten after each; runs already there are skipped."""
    testing_study.require_nets(nets, tuple(CHAPTER9.values()), seeds)
    settings = experiments.study_settings(setting) | {"fine_lr": FINE_LR, "large_scale": experiments.scales("large")[0]}
    results = open_study(path, settings, "chain_study")
    results |= {"command": command, "machine": machine("cpu"), "threads": torch.get_num_threads()}
    net = chain(nets, setting)
    todo = [(cell, seed) for seed in range(seeds) for cell in CELLS]
    return run_missing(path, results, todo, lambda cell, seed: net(cell, seed)[1])


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------


def errors(results: dict, cell: str) -> dict[str, float]:
    """Top-1 validation error (%, centre crop at Q) of every seed of ``cell`` after its last epoch, by seed."""
    return {seed: 100 - history[-1]["val_top1"] for seed, history in results["runs"][cell].items()}


def gains(results: dict, tuned: str, scratch: str) -> dict[str, float]:
    """Per seed, how many points of top-1 error the fine-tuned ``tuned`` saves over ``scratch`` (positive: lower)."""
    a, b = errors(results, tuned), errors(results, scratch)
    return {seed: b[seed] - a[seed] for seed in a if seed in b}


def better_in_every_seed(results: dict, tuned: str, scratch: str) -> bool:
    """Whether ``tuned`` has the lower error in every seed (paired by seed)."""
    found = gains(results, tuned, scratch)
    return bool(found) and all(gain > 0 for gain in found.values())


def table(results: dict) -> Table:
    """One row per cell: its start, learning rate, epochs (its own / in all), S and Q, and the top-1 error of every
    seed with ``mean [min–max]``."""
    setting = experiments.Setting(**results["setting"])
    rows = []
    for cell in results["runs"]:
        start, kind, lr, _ = CELLS[cell]
        s, q = experiments.scales(kind)
        found = errors(results, cell)
        rows.append(
            [
                cell,
                "scratch" if start in ("he", "chapter 9") else start,
                f"{lr:g}",
                f"{epochs(cell, setting)} / {epochs_in_all(cell, setting)}",
                f"{s if isinstance(s, int) else f'[{s[0]};{s[1]}]'}, {q}",
                "  ".join(f"{value:.1f}" for value in found.values()),
                spread(list(found.values())),
            ]
        )
    header = ["net", "started from", "lr", "epochs (own / all)", "S, Q", "top-1 error by seed (%)", "mean [min–max]"]
    return Table(header, rows, caption="The fine-tuning chain of §3.1 in miniature (synthetic, CPU, centre crop)")


def plot_histories(results: dict):
    """Validation top-1 error after every epoch, one panel per seed: the chain (chapter 9's net at S = 37, then its
    two fine-tunings, each drawn after the epochs behind it) against the nets trained from scratch for as many epochs.
    Returns the axes."""
    import matplotlib.pyplot as plt

    setting = experiments.Setting(**results["setting"])
    seeds = list(results["runs"]["D, S=37 (chapter 9)"])
    fig, axes = plt.subplots(1, len(seeds), figsize=(4 * len(seeds), 3.4), sharey=True, squeeze=False)
    styles = {
        "D, S=37 (chapter 9)": ("grey", "-"),
        "D, S=55, from S=37": ("C0", "-"),
        "D, jittered, from S=55": ("C1", "-"),
        "D, S=55, 15 epochs": ("C0", ":"),
        "D, jittered, 20 epochs": ("C1", ":"),
    }
    for ax, seed in zip(axes[0], seeds):
        for cell, (colour, line) in styles.items():
            history = results["runs"].get(cell, {}).get(seed)
            if history is None:
                continue
            before = epochs_in_all(cell, setting) - len(history)
            x = [before + row["epoch"] for row in history]
            ax.plot(x, [100 - row["val_top1"] for row in history], color=colour, ls=line, marker=".", label=cell)
        ax.set(title=f"seed {seed}", xlabel="epochs in all")
    axes[0][0].set_ylabel("top-1 error (%), centre crop at Q")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return axes[0]


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.chain_study --out FILE``: §3.1's fine-tuning chain in miniature, restartable."""
    parser = study_parser("chain_study", main.__doc__)
    parser.add_argument("--out", required=True, help="results file (JSON); runs it already holds are skipped")
    testing_study.add_nets_option(parser)
    args, command = parse_study(parser, argv)

    def study() -> None:
        setting = experiments.QUICK if args.quick else experiments.FULL
        results = run(args.out, args.nets, seeds=args.seeds, setting=setting, command=command)
        print(repr(table(results)))
        for tuned, scratch in PAIRS:
            print(f"{tuned} better than {scratch} in every seed: {better_in_every_seed(results, tuned, scratch)}")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
