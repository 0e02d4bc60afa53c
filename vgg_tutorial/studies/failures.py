"""Small, seeded experiments behind the chapter "Why does my VGG stay at 10 %?".

A ten-class classifier that guesses is right 10 % of the time, and its cross-entropy loss is ln 10 ≈ 2.303 when it
spreads its belief evenly. Learners who write VGG from scratch often see exactly these two numbers and nothing else.
Each function here reproduces one cause on the synthetic dataset, on a CPU, in seconds: a soft-max in ``forward``
before ``nn.CrossEntropyLoss``, a deep plain VGG with too small an initialisation (the paper's own problem, §3.1),
and a learning rate too high for a network without batch normalisation. Their fixes use the same code with one
change.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vgg_tutorial.data.loaders import host_loader
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, render_split
from vgg_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vgg_tutorial.paper.models import vgg
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies.common import open_study, run_missing
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser, whole
from vgg_tutorial.training.engine import Engine, make_optimizer
from vgg_tutorial.training.runs import machine
from vgg_tutorial.training.train import fit

#: The loss of a ten-class model that gives every class probability 1/10: ln 10.
CHANCE_LOSS = math.log(len(SYNTHETIC_CLASSES))
#: Its accuracy, in %.
CHANCE_TOP1 = 100 / len(SYNTHETIC_CLASSES)


def demo_data(
    image_size: int = 32, train_per_class: int = 50, val_per_class: int = 20, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """The synthetic dataset as float tensors in memory, standardised with ImageNet's mean and standard deviation.

    The paper subtracts the mean RGB value of pixels in [0, 255] (§2.1), which leaves values of standard deviation
    about 60; dividing by the standard deviation instead gives values of order 1, which the initialisations of
    He et al. and Glorot & Bengio assume. No augmentation: these experiments are about optimisation.
    """
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]

    def split(name: str, per_class: int) -> TensorDataset:
        images, labels = render_split(name, image_size=image_size, per_class=per_class, seed=seed)
        return TensorDataset((images.float() / 255 - mean) / std, labels)

    return split("train", train_per_class), split("val", val_per_class)


class SoftmaxOutput(nn.Module):
    """The mistake: a model whose ``forward`` ends with a soft-max, trained with ``nn.CrossEntropyLoss``.

    ``CrossEntropyLoss`` applies ``log_softmax`` itself, so the loss becomes ``-log softmax(softmax(z))[y]``. The
    probabilities fed to the second soft-max lie in [0, 1], so it can never be confident: the loss cannot go below
    ``ln(9 + e) - 1 ≈ 1.46`` and its gradients are squashed.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


#: The smallest loss a model with a soft-max in ``forward`` can reach on ten classes (see :class:`SoftmaxOutput`).
SOFTMAX_LOSS_FLOOR = math.log(len(SYNTHETIC_CLASSES) - 1 + math.e) - 1


def normal_init(model: nn.Module, std: float) -> nn.Module:
    """Every convolution and linear weight from N(0, ``std``²), biases 0: one fixed scale for every layer.

    With ``std=0.01`` (the value torchvision uses for VGG's linear layers) every convolution shrinks the signal, and
    across the 16 convolutions of configuration E the activations, and the gradients, all but vanish.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
    return model


def small_vgg(
    name: str = "A", *, batch_norm: bool = False, init: str = "torchvision", width: float = 1 / 8, fc_width: int = 128
) -> nn.Module:
    """A narrow VGG for 32-px images and ten classes (one pooled pixel into the classifier, no dropout)."""
    return vgg(
        name,
        batch_norm=batch_norm,
        num_classes=len(SYNTHETIC_CLASSES),
        init=init,
        width=width,
        fc_width=fc_width,
        pooled_size=1,
        dropout=0.0,
    )


def run(
    model: nn.Module,
    data: tuple[TensorDataset, TensorDataset],
    *,
    lr: float,
    epochs: int = 6,
    batch_size: int = 32,
    seed: int = 0,
) -> list[dict]:
    """Train ``model`` with the paper's SGD (momentum 0.9, weight decay 5·10⁻⁴) at a constant ``lr``, on a CPU.

    Returns one dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_top1`` (%), and ``finite`` (False once
    the loss has become NaN or infinite). Seeded: the same arguments give the same numbers.
    """
    torch.manual_seed(seed)
    train_set, val_set = data
    history = fit(
        model,
        host_loader(train_set, batch_size=batch_size, seed=seed),
        DataLoader(val_set, batch_size=256),
        epochs=epochs,
        optimizer=make_optimizer(model, lr=lr),
        engine=Engine("cpu", precision="fp32"),
        seed=seed,
        stop_if_diverged=False,  # a diverged run is one of the outcomes studied here
        verbose=False,
    )
    keys = ("epoch", "train_loss", "val_loss", "val_top1")
    finite = [math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in history]
    return [{key: row[key] for key in keys} | {"finite": ok} for row, ok in zip(history, finite)]


def he_init(model: nn.Module) -> nn.Module:
    """He et al. (2015) initialisation for every layer: weights from N(0, 2 / fan_in), biases 0.

    It keeps the variance of the activations the same from layer to layer through ReLUs, however deep the network
    and however narrow its layers, which is what a deep plain VGG needs. (torchvision's VGG uses it for the
    convolutions, with fan_out, but N(0, 0.01²) for the linear layers: right for 4,096-wide layers, far too small
    for narrow ones.)
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model


# ---------------------------------------------------------------------------------------------------------------
# The chapter's study: every experiment above, for several seeds, in one results file
# ---------------------------------------------------------------------------------------------------------------

#: The experiments of the chapter: a name, the model to build (after ``torch.manual_seed(seed)``) and the rate.
EXPERIMENTS = {
    "A+BN, logits, lr 0.03": (lambda: he_init(small_vgg("A", batch_norm=True)), 0.03),
    "A+BN, soft-max in forward, lr 0.03": (lambda: SoftmaxOutput(he_init(small_vgg("A", batch_norm=True))), 0.03),
    "E, N(0, 0.01²) everywhere, lr 0.005": (lambda: normal_init(small_vgg("E"), std=0.01), 0.005),
    "E, torchvision's init, lr 0.005": (lambda: small_vgg("E", init="torchvision"), 0.005),
    "E, Glorot (uniform), lr 0.005": (lambda: small_vgg("E", init="glorot"), 0.005),
    "E, He et al. everywhere, lr 0.005": (lambda: he_init(small_vgg("E")), 0.005),
    "E, He et al. everywhere, lr 0.01": (lambda: he_init(small_vgg("E")), 0.01),
    "A plain, He, lr 0.03": (lambda: he_init(small_vgg("A")), 0.03),
    "A plain, He, lr 0.01": (lambda: he_init(small_vgg("A")), 0.01),
}
#: The chapter's data and run length: 1,000 training and 200 validation images of 32 px, ten epochs of batch 32.
STUDY_DATA = {"image_size": 32, "train_per_class": 100, "val_per_class": 20}
STUDY_EPOCHS, STUDY_BATCH_SIZE = 10, 32

#: What a run did, judged from its training loss with wide margins (see :func:`verdict`).
VERDICTS = ("diverged", "learning", "at chance", "unclear")


def verdict(history: list[dict], margin: float = 0.3, tolerance: float = 0.02) -> str:
    """Name what a run had done by its last epoch: one of :data:`VERDICTS`.

    *learning*: its last training loss is at least ``margin`` below ln 10; *at chance*: its last training loss is
    within ``tolerance`` of ln 10 and its last validation top-1 within 5 points of chance. The training loss averages
    1,000 images, so float rounding, which differs between CPUs and thread counts, moves it far less than these
    gaps; the validation accuracy of 200 images moves by several points, so it only confirms.
    """
    last = history[-1]
    if not all(math.isfinite(row["train_loss"]) for row in history):
        return "diverged"
    if last["train_loss"] <= CHANCE_LOSS - margin:
        return "learning"
    if abs(last["train_loss"] - CHANCE_LOSS) < tolerance and last["val_top1"] <= CHANCE_TOP1 + 5:
        return "at chance"
    return "unclear"


def run_experiment(name: str, data: tuple[TensorDataset, TensorDataset], seed: int = 0, epochs: int = STUDY_EPOCHS):
    """Train the experiment ``name`` of :data:`EXPERIMENTS` from seed ``seed`` (weights and batch order)."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}")
    build, lr = EXPERIMENTS[name]
    torch.manual_seed(seed)  # before building, so the initial weights depend on the seed alone
    return run(build(), data, lr=lr, epochs=epochs, batch_size=STUDY_BATCH_SIZE, seed=seed)


def spread(values: list[float], digits: int = 1) -> str:
    """``mean [min–max]`` of a few runs' numbers, for the chapter's tables."""
    mean = sum(values) / len(values)
    return f"{mean:.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def summary_table(runs: dict[str, list[list[dict]]]) -> Table:
    """One row per experiment over its seeds: last training loss and validation top-1 as ``mean [min–max]``, and
    how many seeds ended with each :func:`verdict`. An HTML table in a notebook, aligned text in a terminal."""
    rows = []
    for name, histories in runs.items():
        verdicts = [verdict(history) for history in histories]
        rows.append(
            [
                name,
                str(len(histories)),
                spread([history[-1]["train_loss"] for history in histories], digits=2),
                spread([history[-1]["val_top1"] for history in histories]),
                ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts),
            ]
        )
    return Table(["experiment", "seeds", "last train loss", "last val top-1 (%)", "verdicts"], rows)


def seed_runs(results: dict, names: list[str]) -> dict[str, list[list[dict]]]:
    """The histories of every seed of the experiments ``names`` in a study's ``results``."""
    return {name: list(results["runs"][name].values()) for name in names}


def study(
    path: str | Path,
    seeds: int = 5,
    epochs: int = STUDY_EPOCHS,
    names: list[str] | None = None,
    command: str | None = None,
) -> dict:
    """Run the experiments ``names`` (all of :data:`EXPERIMENTS` by default) for seeds ``0 .. seeds-1`` and keep each
    history in the JSON file ``path``.

    The file is rewritten (atomically) after every run, and runs it already holds are skipped, so an interrupted
    study continues where it stopped; experiments no longer in :data:`EXPERIMENTS` are dropped from it. It also
    records the machine, the versions and the command.
    """
    results = open_study(path, {"epochs": epochs, "data": STUDY_DATA}, "failures")
    results["runs"] = {name: results["runs"].get(name, {}) for name in EXPERIMENTS}  # drop retired experiments
    for name in names or []:
        if name not in EXPERIMENTS:
            raise KeyError(f"unknown experiment {name!r}; choose from: {', '.join(EXPERIMENTS)}")
    results |= {"command": command, "machine": machine("cpu")}
    data = demo_data(**STUDY_DATA)
    todo = [(name, seed) for name in names or EXPERIMENTS for seed in range(seeds)]
    return run_missing(path, results, todo, lambda name, seed: run_experiment(name, data, seed=seed, epochs=epochs))


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.failures --out FILE``: the chapter's study, restartable."""
    parser = study_parser("failures", main.__doc__, seeds=5, quick=False)
    parser.add_argument("--out", required=True, help="results file (JSON); runs it already holds are skipped")
    parser.add_argument("--epochs", type=whole(1), default=STUDY_EPOCHS, help="epochs per run (default: %(default)s)")
    args, command = parse_study(parser, argv)

    def run() -> None:
        results = study(args.out, seeds=args.seeds, epochs=args.epochs, command=command)
        print(summary_table(seed_runs(results, list(EXPERIMENTS))))

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
