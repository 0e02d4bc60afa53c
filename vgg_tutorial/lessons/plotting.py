"""Figures for the training chapters: learning curves from a history, and a grid of sample images.

Histories are the lists of per-epoch dicts that :func:`vgg_tutorial.training.train.fit` returns and writes to
``history.json`` (read back with :func:`vgg_tutorial.training.runs.read_history`). matplotlib is imported inside the
functions, so the training path does not need it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.transforms.v2.functional import pil_to_tensor

from vgg_tutorial.data.transforms import IMAGENET_MEAN


def plot_history(history: Sequence[dict], title: str, axes=None, label: str | None = None):
    """Loss and top-1 accuracy per epoch, training and validation, side by side; returns the two axes.

    Epochs where the learning rate changed from the previous epoch (the paper's divide-by-10, §3.1) are marked
    with a dotted vertical line. Pass the ``axes`` of an earlier call and a ``label`` to overlay several runs.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    loss_ax, acc_ax = axes
    epochs = [row["epoch"] for row in history]
    prefix = f"{label}: " if label else ""
    for split, style in (("train", "--"), ("val", "-")):
        (line,) = loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=f"{prefix}{split}")
        acc_ax.plot(
            epochs, [row[f"{split}_top1"] for row in history], style, color=line.get_color(), label=f"{prefix}{split}"
        )
    for before, row in zip(history, history[1:]):
        if row["lr"] != before["lr"]:
            for ax in axes:
                ax.axvline(row["epoch"] - 0.5, color="grey", linestyle=":", linewidth=1)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="top-1 accuracy", ylim=(0, 100))
    for ax in axes:
        ax.legend(fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].figure.suptitle(title)
    return axes


def to_displayable(image: torch.Tensor, mean: Sequence[float] | None = IMAGENET_MEAN) -> torch.Tensor:
    """A 3×H×W image (uint8, or float with ``mean`` subtracted as the transforms do) as H×W×3 floats in [0, 1]."""
    if image.dtype == torch.uint8:
        image = image.float() / 255
    elif mean is not None:
        image = image + torch.tensor(mean, dtype=image.dtype, device=image.device)[:, None, None]
    return image.clamp(0, 1).permute(1, 2, 0)


def show_samples(dataset, class_names: Sequence[str], per_class: int = 4, title: str = "", mean=IMAGENET_MEAN):
    """A grid with one column per class and ``per_class`` images of it per column; returns the figure.

    ``dataset`` yields ``(image, label)`` pairs (image: a uint8 or normalised float tensor 3×H×W, or a PIL
    image); the first ``per_class`` images of each class are shown, in dataset order.
    """
    import matplotlib.pyplot as plt

    picked: dict[int, list[torch.Tensor]] = {label: [] for label in range(len(class_names))}
    for image, label in dataset:
        if len(picked[label]) < per_class:
            picked[label].append(image if isinstance(image, torch.Tensor) else pil_to_tensor(image))
        if all(len(images) == per_class for images in picked.values()):
            break
    columns = len(class_names)
    fig, grid = plt.subplots(
        per_class, columns, figsize=(1.3 * columns, 1.3 * per_class + 0.6), squeeze=False, layout="constrained"
    )
    for label, name in enumerate(class_names):
        for row in range(per_class):
            ax = grid[row][label]
            ax.set_axis_off()
            if row < len(picked[label]):
                ax.imshow(to_displayable(picked[label][row], mean).numpy())
        grid[0][label].set_title(name, fontsize="small")
    fig.suptitle(title)
    return fig


def plot_runs(runs: dict[str, Sequence], title: str, chance_loss: float | None = None, chance_top1=None):
    """Several short runs side by side: training loss and validation top-1 per epoch; returns the two axes.

    ``runs`` maps a label to a history with ``epoch``, ``train_loss`` and ``val_top1`` per row (as
    :func:`vgg_tutorial.studies.failures.run` returns), or to a list of such histories (one per seed), drawn as thin
    lines of one colour. ``chance_loss`` and ``chance_top1`` draw the guessing level.
    """
    import matplotlib.pyplot as plt

    _, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for index, (label, histories) in enumerate(runs.items()):
        several = not isinstance(histories[0], dict)
        style = {
            "color": f"C{index}",
            "marker": ".",
            "linewidth": 0.8 if several else 1.5,
            "alpha": 0.7 if several else 1,
        }
        for seed, history in enumerate(histories if several else [histories]):
            epochs = [row["epoch"] for row in history]
            named = {"label": label} if seed == 0 else {}
            loss_ax.plot(epochs, [row["train_loss"] for row in history], **style, **named)
            acc_ax.plot(epochs, [row["val_top1"] for row in history], **style, **named)
    if chance_loss is not None:
        label = f"chance (ln {math.exp(chance_loss):.0f} = {chance_loss:.3f})"
        loss_ax.axhline(chance_loss, color="grey", linestyle=":", label=label)
    if chance_top1 is not None:
        acc_ax.axhline(chance_top1, color="grey", linestyle=":", label=f"chance ({chance_top1:g} %)")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    acc_ax.set(xlabel="epoch", ylabel="validation top-1 (%)", title="validation top-1 accuracy", ylim=(0, 100))
    for ax in (loss_ax, acc_ax):
        ax.legend(fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.figure.suptitle(title)
    return loss_ax, acc_ax
