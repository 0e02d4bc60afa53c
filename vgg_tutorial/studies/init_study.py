"""Which reading of §3.1's "zero mean and 10⁻² variance" lets configuration A train? Measured at full width.

§3.1: configuration A was "trained with random initialisation", weights "sampled from a normal distribution with the
zero mean and 10⁻² variance", biases zero; the deeper nets started from A's layers. Read literally, variance 10⁻² is
a standard deviation of 0.1. AlexNet (Krizhevsky et al. 2012, §5), whose training §3.1 follows, drew its weights
with standard deviation 0.01, i.e. variance 10⁻⁴. The two readings differ by a factor 10 per layer, and through
A's eleven weight layers by 10¹¹ in the scale of the logits, so running a few steps of the recipe tells them apart.

:func:`probe` builds a full-width VGG at 224×224 (the paper's size, 1,000 classes), draws every weight from
N(0, std²), and takes a few SGD steps with the paper's settings (lr 10⁻², momentum 0.9, weight decay 5·10⁻⁴,
dropout 0.5) on one batch of synthetic images preprocessed as the book's transforms do (pixels in [0, 1], ImageNet
mean subtracted). It records how the signal's mean square changes through the convolutions, the logits' scale and
the loss after every step. ``python -m vgg_tutorial.init_study --out FILE`` measures A and E under both readings.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch
from torch import nn

from vgg_tutorial.data.synthetic import render_split
from vgg_tutorial.data.transforms import IMAGENET_MEAN
from vgg_tutorial.paper.configs import INPUT_SIZE, RECIPE
from vgg_tutorial.paper.models import INIT_STDS, vgg
from vgg_tutorial.training.commands import config_name, report_errors, whole
from vgg_tutorial.training.engine import make_optimizer
from vgg_tutorial.training.runs import atomic_write_text, check_writable, machine

#: The two readings of "10⁻² variance": the init scheme's name in :func:`~vgg_tutorial.paper.models.init_weights`.
READINGS = ("paper", "paper-literal")


def batch(size: int = 4, image_size: int = INPUT_SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` synthetic images of ``image_size`` px, in [0, 1] minus ImageNet's mean (§2.1), and their labels."""
    images, labels = render_split("train", image_size=image_size, per_class=math.ceil(size / 10), seed=seed)
    index = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:size]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    return images[index].float() / 255 - mean, labels[index]


def probe(name: str, init: str, *, steps: int = 3, batch_size: int = 4, seed: int = 0) -> dict:
    """Build full-width configuration ``name`` with ``init`` and take ``steps`` SGD steps of §3.1 on one batch.

    Returns the weights' std, the mean-square gain of the convolutional part (mean square of ``features``' output
    over that of the input), the std of the initial logits, the loss before each step and after the last one
    (``losses``, ``steps + 1`` numbers; NaN once the weights have overflowed), and ``finite``.
    """
    torch.manual_seed(seed)
    model = vgg(name, init=init)  # 1,000 classes, 4,096-wide FC layers, 7×7 pooled: the paper's network
    x, y = batch(batch_size, seed=seed)
    with torch.no_grad():
        model.eval()
        features = model.features(x)
        logits = model.classifier(torch.flatten(model.avgpool(features), 1))
        gain = (features.pow(2).mean() / x.pow(2).mean()).item()
    model.train()  # dropout on, as in training
    optimizer = make_optimizer(model, RECIPE.lr, RECIPE.momentum, RECIPE.weight_decay)
    loss_fn, losses = nn.CrossEntropyLoss(), []
    for step in range(steps + 1):
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        if step == steps or not math.isfinite(losses[-1]):
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {
        "config": name,
        "init": init,
        "weight_std": INIT_STDS[init],
        "signal_gain": gain,
        "logit_std": logits.std().item(),
        "chance_loss": math.log(1000),
        "losses": losses,
        "finite": all(math.isfinite(v) for v in losses),
    }


def summary(rows: list[dict]) -> str:
    """One line per probe: configuration, reading, weight std, conv gain, logit std and the losses step by step."""
    lines = [f"{'net':<4} {'init':<14} {'std':>5} {'conv gain':>10} {'logit std':>10}  loss per step (ln 1000 = 6.91)"]
    for r in rows:
        losses = " → ".join(f"{v:.4g}" for v in r["losses"])
        lines.append(
            f"{r['config']:<4} {r['init']:<14} {r['weight_std']:>5} {r['signal_gain']:>10.2g} {r['logit_std']:>10.2g}"
            f"  {losses}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.init_study --out FILE``: A and E at full width under both readings (a few minutes)."""
    parser = argparse.ArgumentParser(prog="python -m vgg_tutorial.init_study", description=main.__doc__)
    parser.add_argument("--out", required=True, help="results file (JSON), rewritten after every probe")
    parser.add_argument("--configs", nargs="+", type=config_name, default=["A", "E"], help="configurations of Table 1")
    parser.add_argument("--steps", type=whole(1), default=3, help="SGD steps per probe")
    parser.add_argument("--batch-size", type=whole(1), default=4, help="images in the one batch")
    args = parser.parse_args(argv)
    command = "python -m vgg_tutorial.init_study " + " ".join(argv if argv is not None else sys.argv[1:])

    def study() -> None:
        out = check_writable(args.out)  # before minutes of work, not after
        results = {"command": command, "machine": machine("cpu"), "image_size": INPUT_SIZE, "probes": []}
        for name in args.configs:
            for init in READINGS:
                results["probes"].append(probe(name, init, steps=args.steps, batch_size=args.batch_size))
                atomic_write_text(json.dumps(results, indent=1) + "\n", out)  # an interrupted study keeps its probes
                print(summary(results["probes"][-1:]).splitlines()[-1], flush=True)
        print(summary(results["probes"]))

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
