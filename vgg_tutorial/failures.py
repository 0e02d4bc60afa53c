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

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vgg_tutorial.engine import Engine, make_optimizer
from vgg_tutorial.loaders import host_loader
from vgg_tutorial.models import vgg
from vgg_tutorial.synthetic import SYNTHETIC_CLASSES, render_split
from vgg_tutorial.train import fit
from vgg_tutorial.transforms import IMAGENET_MEAN, IMAGENET_STD

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
        verbose=False,
    )
    keys = ("epoch", "train_loss", "val_loss", "val_top1")
    finite = [math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in history]
    return [{key: row[key] for key in keys} | {"finite": ok} for row, ok in zip(history, finite)]


def summary_line(name: str, history: list[dict]) -> str:
    """One printable line: the run's name, its last losses and accuracy, rounded."""
    last = history[-1]
    loss = f"{last['train_loss']:.3f}" if last["finite"] else "nan"
    return f"{name:<38} train loss {loss:>6}   val top-1 {last['val_top1']:5.1f}%"


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
