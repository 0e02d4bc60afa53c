"""Appendix B in miniature: chapter 9's D nets as feature extractors on a task with classes they never saw.

The paper evaluates its ILSVRC nets "as feature extractors on other, smaller, datasets, where training large models
from scratch is not feasible due to over-fitting" (Appendix B). The miniature does the same with the three D nets
:mod:`vgg_tutorial.studies.testing_study` trained on the ten synthetic shapes (S = 37; their weights are committed
beside chapter 9) and the six new shapes of :mod:`vgg_tutorial.data.novel_shapes`, at 10, 50 and 200 training images per
class. For each seed and size it scores three ways of classifying the new shapes, all tested on the same 300 new images:

- **trained D features + SVM**: Appendix B's descriptor of the seed's trained D (:func:`~vgg_tutorial.testing.transfer.
  descriptors`: penultimate layer, dense, averaged over positions, flips and the scales Q ∈ {32, 37, 42}, then
  L2-normalised) and a linear SVM (:func:`~vgg_tutorial.testing.transfer.fit_linear_svm`), the net's weights fixed;
- **untrained D features + SVM**: the same with a D freshly initialised from the seed (what the training added);
- **D from scratch**: D trained on the new task's images alone, by chapter 8's loop
  (:func:`vgg_tutorial.studies.experiments.train_cell`) for as many SGD steps as chapter 9's D took (10 epochs of 2,000
  images), so small sets get more epochs; tested by dense evaluation with flips at the same scales
  (:func:`~vgg_tutorial.testing.transfer.dense_scores`).

``python -m vgg_tutorial.transfer_study --out FILE`` keeps every run in one JSON file and continues where it stopped.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from vgg_tutorial.data.novel_shapes import NOVEL_CLASSES, render_novel
from vgg_tutorial.paper.configs import PAPER_TABLE11
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies import experiments, testing_study
from vgg_tutorial.studies.common import StudyError, open_study, run_missing
from vgg_tutorial.studies.failures import spread
from vgg_tutorial.testing.transfer import dense_scores, descriptors, fit_linear_svm
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser
from vgg_tutorial.training.runs import machine

METHODS = ("trained D features + SVM", "untrained D features + SVM", "D from scratch")
#: Training images per class of the new task: the committed study's, and the tests' tiny one.
SIZES, QUICK_SIZES = (10, 50, 200), (2, 4)
#: The SVM's cost (fixed, not tuned: the paper tuned its own on 20 % of the training images).
SVM_C = 10.0
#: chapter 9's folder of trained nets, as seen from the repository's root.
NETS = "book/results/09_testing_like_the_paper"


def scales() -> tuple[int, ...]:
    """The test scales Q of the descriptor: chapter 9's multi-scale set for D trained at S = 37 (§4.2)."""
    return testing_study.test_scales("D")[1]


def cell_name(method: str, size: int) -> str:
    """The results file's name of ``method`` at ``size`` training images per class."""
    return f"{method}, {size} per class"


def scratch_epochs(setting: experiments.Setting, size: int) -> int:
    """Epochs that give D from scratch on ``size`` images per class (6 classes) as many SGD steps as chapter 9's D
    took on ``setting.train_per_class`` images of 10 classes in ``setting.epochs`` epochs (at least that many)."""
    source = setting.epochs * math.ceil(setting.train_per_class * 10 / setting.batch_size)
    return max(setting.epochs, round(source / math.ceil(size * len(NOVEL_CLASSES) / setting.batch_size)))


def run(
    path: str | Path,
    nets: str | Path,
    seeds: int = 3,
    setting: experiments.Setting = experiments.FULL,
    sizes: tuple[int, ...] = SIZES,
    command: str | None = None,
) -> dict:
    """Score every method of :data:`METHODS` at every size of ``sizes`` for seeds ``0 .. seeds-1``, with the D nets
    of folder ``nets`` (trained with ``setting``); each run goes to the JSON file ``path``, rewritten after each;
    runs already there are skipped."""
    missing = [testing_study.weights_path(nets, "D", s) for s in range(seeds)]
    if missing := [str(name) for name in missing if not name.is_file()]:
        raise StudyError(f"no trained D net at {', '.join(missing)}: python -m vgg_tutorial.testing_study trains them")
    if not sizes or min(sizes) < 1:
        raise StudyError(f"sizes must be whole numbers of images per class of at least 1, got {sizes}")
    settings = {
        "setting": asdict(setting),
        "sizes": list(sizes),
        "classes": list(NOVEL_CLASSES),
        "scales": list(scales()),
        "svm_c": SVM_C,
    }
    results = open_study(path, settings, "transfer_study")
    results |= {"command": command, "machine": machine("cpu"), "threads": torch.get_num_threads()}
    draw = {"image_size": experiments.S_MAX, "radius": experiments.RADIUS}
    train = render_novel("train", per_class=max(sizes), **draw)
    test = render_novel("val", per_class=setting.val_per_class, **draw)

    @functools.cache  # each net's descriptors of every training and test image, computed once
    def features(kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "trained":
            expected = {"cell": "D", "seed": seed, "setting": asdict(setting)}
            net, _ = testing_study.load_net(testing_study.weights_path(nets, "D", seed), expected)
        else:
            torch.manual_seed(seed)
            net = experiments.build("D", setting).eval()
        net = testing_study.fold_std(net)
        return descriptors(net, train[0], scales()), descriptors(net, test[0], scales())

    def one_run(name: str, seed: int) -> dict:
        method, size = cells[name]
        count = size * len(NOVEL_CLASSES)  # the labels cycle: the first ``count`` images hold ``size`` per class
        began = time.perf_counter()
        if method == "D from scratch":
            epochs = scratch_epochs(setting, size)
            images = {"train": (train[0][:count], train[1][:count]), "val": test}
            scratch = replace(setting, train_per_class=size, epochs=epochs)
            model, history = experiments.train_cell("D", images, scratch, seed)
            predicted = dense_scores(testing_study.fold_std(model.eval()), test[0], scales()).argmax(1)
            accuracy = 100 * (predicted == test[1]).double().mean().item()
            extra = {"epochs": epochs, "training": history[-1]}
        else:
            train_features, test_features = features(method.split()[0], seed)
            svm = fit_linear_svm(train_features[:count], train[1][:count], len(NOVEL_CLASSES), SVM_C)
            accuracy, extra = svm.accuracy(test_features, test[1]), {"dimensions": train_features.shape[1]}
        seconds = round(time.perf_counter() - began, 1)
        return {"accuracy": accuracy, "train_images": count, "test_images": len(test[1]), "seconds": seconds, **extra}

    cells = {cell_name(m, n): (m, n) for n in sizes for m in METHODS}
    todo = [(name, seed) for seed in range(seeds) for name in cells]
    return run_missing(path, results, todo, one_run)


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------


def accuracies(results: dict, method: str, size: int) -> list[float]:
    """Test accuracy (%) of ``method`` at ``size`` images per class, one per seed."""
    return [run["accuracy"] for run in results["runs"][cell_name(method, size)].values()]


def beats_in_every_seed(results: dict, better: str, worse: str, size: int) -> bool:
    """Whether ``better`` is more accurate than ``worse`` in every seed at ``size`` (paired by seed)."""
    return all(b > w for b, w in zip(accuracies(results, better, size), accuracies(results, worse, size)))


def verdicts(results: dict) -> dict[str, str]:
    """Each comparison of the trained D's features with the other two methods, size by size."""
    found = {}
    for other in METHODS[1:]:
        for size in results["sizes"]:
            every = beats_in_every_seed(results, METHODS[0], other, size)
            found[f"trained features beat {other}, {size} per class"] = (
                "in every seed" if every else "not in every seed"
            )
    return found


def table(results: dict) -> Table:
    """One row per training-set size: each method's accuracy (%) as ``mean [min–max]`` over seeds."""
    rows = [[str(n), *(spread(accuracies(results, m, n)) for m in METHODS)] for n in results["sizes"]]
    seeds = len(next(iter(results["runs"].values())))
    caption = f"The new shapes (6 classes, chance 16.7 %): test accuracy (%), {seeds} seeds, synthetic data, CPU"
    return Table(["images per class", *METHODS], rows, caption=caption)


def plot(results: dict):
    """Accuracy against training images per class (log scale): each method's mean over seeds, and its min–max as a
    band. Returns the axes."""
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, marker in zip(METHODS, "osD"):
        values = [accuracies(results, method, n) for n in sizes]
        ax.plot(sizes, [sum(v) / len(v) for v in values], marker=marker, label=method)
        ax.fill_between(sizes, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
    ax.axhline(100 / len(NOVEL_CLASSES), color="grey", ls="--", label="chance")
    ax.set(xscale="log", xlabel="training images per class", ylabel="test accuracy (%)")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ax


def paper_table11() -> Table:
    """The paper's Table 11: VGG's features against the previous best (VOC: mean AP; Caltech: mean class recall)."""

    def text(value) -> str:
        if value is None:
            return "–"
        return f"{value[0]} ± {value[1]}" if isinstance(value, tuple) else f"{value}"

    rows = [[r.method, *(text(v) for v in (r.voc2007, r.voc2012, r.caltech101, r.caltech256))] for r in PAPER_TABLE11]
    header = ["method", "VOC-2007 (mAP)", "VOC-2012 (mAP)", "Caltech-101 (recall)", "Caltech-256 (recall)"]
    return Table(header, rows, caption="The paper's Table 11: transfer to other datasets (%)")


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.transfer_study --out FILE``: Appendix B in miniature, restartable."""
    parser = study_parser("transfer_study", main.__doc__)
    parser.add_argument("--out", required=True, help="results JSON; the runs it holds are kept")
    parser.add_argument(
        "--source", default=NETS, help="folder of chapter 9's trained D nets (testing_study trains them)"
    )
    args, command = parse_study(parser, argv)
    setting = experiments.QUICK if args.quick else experiments.FULL

    def study() -> None:
        results = run(args.out, args.source, args.seeds, setting, QUICK_SIZES if args.quick else SIZES, command)
        print(repr(table(results)))
        for claim, verdict in verdicts(results).items():
            print(f"{claim}: {verdict}")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
