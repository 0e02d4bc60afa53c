"""Tables 6 and 7 in miniature: chapter 9's D nets combined (§4.4), on validation images and on held-out test images.

The paper's ILSVRC-2014 entry averaged the soft-max posteriors of seven nets (Table 6); after the deadline two
nets, D and E trained with scale jittering, did better. Its numbers come in two kinds (§4): *validation* errors,
measured by the authors on ILSVRC-2012's 50,000 validation images, where they made every choice; and *test* errors,
from the challenge's server on 100,000 images whose labels nobody outside holds, for a few chosen entries.

The miniature does both with the six nets :mod:`vgg_tutorial.studies.testing_study` trained (D at S = 37 and D with S ∈
[37, 74], three seeds each; their weights are committed beside chapter 9). Each net is tested with Table 6's three
methods (dense with flips, 50 crops, both) at its own scales (:mod:`vgg_tutorial.testing.ensembles`), then combined:

- one net alone (each of the six);
- two nets, D and jittered D of the same seed (three pairs: the post-submission D + E of Table 6, in miniature);
- three nets, one cell's three seeds; and all six (the 7-net submission, in miniature).

Every entry is scored on the study's validation images and on *test* images: the same kind of images, drawn from
another data seed (:data:`TEST_DATA_SEED`), used for nothing else. ``python -m vgg_tutorial.ensemble_study --out
FILE`` keeps every entry in one JSON file and continues where it stopped.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from vgg_tutorial.data.synthetic import render_split
from vgg_tutorial.paper.configs import PAPER_TABLE6, PAPER_TABLE7
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies import experiments, testing_study
from vgg_tutorial.studies.common import open_study, run_missing
from vgg_tutorial.studies.failures import spread
from vgg_tutorial.testing.ensembles import Member, combine, member_posteriors
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser
from vgg_tutorial.training.runs import machine

#: Table 6's test methods as :mod:`vgg_tutorial.testing.evaluate` names them; §3.2's dense evaluation includes the
#: flips.
METHODS = ("dense+flip", "multicrop", "dense+multicrop")
#: The data seed of the held-out test images (the study's own images are data seed 0).
TEST_DATA_SEED = 1
SPLITS = ("val", "test")
#: Every entry: its members as (cell, seed), for seeds 0, 1, 2; ``{seed}`` is filled in for the paired entries.
PAIR = "D + D, jittered"
GROUPS = {"D, 3 seeds": ("D",), "D, jittered, 3 seeds": ("D, jittered",), "all 6 nets": testing_study.CELLS}


def entries(seeds: int) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """``(name, seed, members)`` of every entry: each net alone, the pairs of one seed, the groups of all seeds
    (recorded under seed 0)."""
    todo = [(cell, seed, [(cell, seed)]) for seed in range(seeds) for cell in testing_study.CELLS]
    todo += [(PAIR, seed, [(cell, seed) for cell in testing_study.CELLS]) for seed in range(seeds)]
    todo += [(name, 0, [(cell, s) for cell in cells for s in range(seeds)]) for name, cells in GROUPS.items()]
    return todo


def test_images(setting: experiments.Setting) -> list[tuple[torch.Tensor, int]]:
    """Held-out images: the validation split of data seed :data:`TEST_DATA_SEED`, drawn like the study's own."""
    size, per_class, radius = experiments.S_MAX, setting.val_per_class, experiments.RADIUS
    images, labels = render_split("val", image_size=size, per_class=per_class, seed=TEST_DATA_SEED, radius=radius)
    return [(image, int(label)) for image, label in zip(images, labels)]


def run(
    path: str | Path,
    nets: str | Path,
    seeds: int = 3,
    setting: experiments.Setting = experiments.FULL,
    command: str | None = None,
) -> dict:
    """Test and combine the nets in the folder ``nets`` (chapter 9's, trained with ``setting``); every entry's errors
    on both splits go to the JSON file ``path``, rewritten after each entry; entries already there are skipped."""
    testing_study.require_nets(nets, testing_study.CELLS, seeds)
    settings = {"setting": asdict(setting), "methods": list(METHODS), "test_data_seed": TEST_DATA_SEED}
    results = open_study(path, settings, "ensemble_study")
    results |= {"command": command, "machine": machine("cpu"), "threads": torch.get_num_threads()}
    datasets = {"val": testing_study.validation_images(setting), "test": test_images(setting)}

    @functools.cache  # each net's posteriors, computed once per split
    def posteriors(cell: str, seed: int, split: str) -> dict:
        path = testing_study.weights_path(nets, cell, seed)
        net, _ = testing_study.load_net(path, {"cell": cell, "seed": seed, "setting": asdict(setting)})
        scale, multi = testing_study.test_scales(cell)
        member = Member(f"{cell} seed {seed}", testing_study.fold_std(net), experiments.CROP, scale, multi)
        return member_posteriors(member, datasets[split], METHODS)

    members = {(name, seed): parts for name, seed, parts in entries(seeds)}
    return run_missing(path, results, list(members), lambda name, seed: score_entry(members[name, seed], posteriors))


def score_entry(parts: list[tuple[str, int]], posteriors) -> dict:
    """One entry: the nets ``parts`` (cell, seed) combined on both splits; ``posteriors(cell, seed, split)`` gives a
    net's posteriors (what :func:`~vgg_tutorial.testing.ensembles.member_posteriors` returns)."""
    scored = {split: combine([posteriors(cell, s, split) for cell, s in parts]) for split in SPLITS}
    return {"members": [f"{cell} seed {s}" for cell, s in parts], **scored}


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------


def errors(results: dict, name: str, key: str, split: str = "val", metric: str = "top1") -> list[float]:
    """The error (%) of entry ``name`` under protocol ``key`` (``"dense+flip, several scales"``), one per seed."""
    return [run[split][key][f"{metric}_error"] for run in results["runs"][name].values()]


def protocol(method: str) -> str:
    """The protocol key of Table 6's ``method``: every Table 6 row tests at several scales."""
    return f"{method}, several scales"


def table(results: dict, split: str = "val", nets: str = "Chapter 9's D nets") -> Table:
    """Table 6 in miniature: one row per entry, top-1 error (%) of each method at several scales as
    ``mean [min–max]`` over the entry's seeds; ``nets`` says whose nets in the caption."""
    rows = []
    for name, runs in results["runs"].items():
        nets = len(next(iter(runs.values()))["members"])
        cells = [spread(errors(results, name, protocol(m), split)) for m in METHODS]
        rows.append([name, str(nets), str(len(runs)), *cells])
    header = ["entry", "nets", "seeds", *(f"{testing_study.TABLE5_METHODS[m]}, top-1 (%)" for m in METHODS)]
    where = "validation images" if split == "val" else "held-out test images"
    return Table(header, rows, caption=f"{nets} alone and combined, {where}, several scales")


def pair_gains(results: dict, method: str, split: str = "val") -> list[float]:
    """Per seed, how many points of top-1 error the pair (D + jittered D) saves over its better member."""
    best = [
        min(pair) for pair in zip(*(errors(results, cell, protocol(method), split) for cell in testing_study.CELLS))
    ]
    return [b - e for b, e in zip(best, errors(results, PAIR, protocol(method), split))]


def chosen_on_validation(results: dict) -> dict:
    """§4's protocol in miniature: the entry and method with the lowest validation top-1 error, its test error, and
    the mean test − validation gap of every entry (the chosen one's gap is the price of choosing on it)."""
    scored = [
        (run["val"][protocol(m)]["top1_error"], run["test"][protocol(m)]["top1_error"], name, seed, m)
        for name, runs in results["runs"].items()
        for seed, run in runs.items()
        for m in METHODS
    ]
    val, test, name, seed, method = min(scored)
    gaps = [t - v for v, t, *_ in scored]
    return {
        "entry": name,
        "seed": seed,
        "method": method,
        "val": val,
        "test": test,
        "mean_gap": sum(gaps) / len(gaps),
        "candidates": len(scored),
    }


def plot_entries(results: dict, method: str = "dense+multicrop"):
    """Top-1 error of every entry under ``method`` at several scales, one dot per seed: validation (filled) and
    held-out test images (open). Returns the axes."""
    import matplotlib.pyplot as plt

    names = list(results["runs"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    for offset, split, face in ((-0.12, "val", "C0"), (0.12, "test", "none")):
        for row, name in enumerate(names):
            values = errors(results, name, protocol(method), split)
            label = {"val": "validation images", "test": "held-out test images"}[split] if row == 0 else None
            ax.scatter(values, [row + offset] * len(values), facecolors=face, edgecolors="C0", label=label)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"top-1 error (%), {testing_study.TABLE5_METHODS[method]}, several scales (one dot per seed)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ax


def paper_table6() -> Table:
    """The paper's Table 6 (§4.4) as a table: the nets combined, the method, its errors (%)."""
    rows = [
        [", ".join(r.nets), r.method, f"{r.top1}", f"{r.top5}", "–" if r.top5_test is None else f"{r.top5_test}"]
        for r in PAPER_TABLE6
    ]
    header = ["nets (configuration/S)", "method", "top-1 val", "top-5 val", "top-5 test"]
    return Table(header, rows, caption="The paper's Table 6: nets combined (ILSVRC-2012 images, error in %)")


def paper_table7() -> Table:
    """The paper's Table 7 (§4.5), lowest top-5 test error first."""
    rows = [
        [r.entry, "several" if r.nets is None else str(r.nets), f"{r.top5_test}"]
        for r in sorted(PAPER_TABLE7, key=lambda r: r.top5_test)
    ]
    header = ["entry", "nets", "top-5 test error (%)"]
    return Table(header, rows, caption="The paper's Table 7: ILSVRC classification, the state of the art in 2014")


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.ensemble_study --out FILE``: Tables 6-7 in miniature, restartable."""
    parser = study_parser("ensemble_study", main.__doc__)
    parser.add_argument("--out", required=True, help="results JSON; the entries it holds are kept")
    testing_study.add_nets_option(parser)
    args, command = parse_study(parser, argv)
    setting = experiments.QUICK if args.quick else experiments.FULL

    def study() -> None:
        results = run(args.out, args.nets, args.seeds, setting, command)
        print(f"{table(results)!r}\n\n{table(results, 'test')!r}")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
