"""Learning-curve and sample-grid figures: they show the numbers and images they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes
from vgg_tutorial.data.transforms import IMAGENET_MEAN
from vgg_tutorial.lessons.plotting import plot_history, plot_runs, show_samples, to_displayable

HISTORY = [
    {"epoch": e, "lr": lr, "train_loss": 2.5 - 0.2 * e, "val_loss": 2.4 - 0.1 * e}
    | {"train_top1": 10.0 * e, "val_top1": 9.0 * e, "train_top5": 50.0, "val_top5": 50.0, "seconds": 1.0}
    for e, lr in zip(range(1, 6), [0.01, 0.01, 0.001, 0.001, 0.0001])
]


def test_plot_history_draws_the_history_and_marks_learning_rate_drops():
    loss_ax, acc_ax = plot_history(HISTORY, title="test run")
    curves = [line for line in acc_ax.get_lines() if len(line.get_xdata()) == len(HISTORY)]
    assert [line.get_label() for line in curves] == ["train", "val"]
    assert list(curves[1].get_ydata()) == [row["val_top1"] for row in HISTORY]
    loss_val = [line for line in loss_ax.get_lines() if line.get_label() == "val"][0]
    assert list(loss_val.get_ydata()) == pytest.approx([row["val_loss"] for row in HISTORY])
    drops = [line.get_xdata()[0] for line in loss_ax.get_lines() if len(line.get_xdata()) == 2]
    assert drops == [2.5, 4.5]  # between epochs 2 and 3, and 4 and 5
    assert acc_ax.get_ylabel() == "top-1 accuracy (%)" and loss_ax.get_xlabel() == "epoch"
    assert loss_ax.figure.get_suptitle() == "test run"
    plt.close("all")


def test_plot_history_overlays_runs_on_the_same_axes():
    axes = plot_history(HISTORY, title="two runs", label="a")
    plot_history(HISTORY[:3], title="two runs", axes=axes, label="b")
    labels = [line.get_label() for line in axes[1].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["a: train", "a: val", "b: train", "b: val"]
    plt.close("all")


def test_to_displayable_undoes_the_mean_subtraction():
    image = torch.rand(3, 4, 5)
    shown = to_displayable(image - torch.tensor(IMAGENET_MEAN)[:, None, None])
    assert shown.shape == (4, 5, 3)
    assert torch.allclose(shown, image.permute(1, 2, 0), atol=1e-6)
    assert torch.equal(to_displayable(torch.full((3, 2, 2), 255, dtype=torch.uint8)), torch.ones(2, 2, 3))


def test_show_samples_puts_each_class_in_its_column():
    dataset = SyntheticShapes("val", image_size=32, per_class=3)
    fig = show_samples(dataset, SYNTHETIC_CLASSES, per_class=2, title="synthetic")
    axes = fig.get_axes()
    assert len(axes) == 2 * len(SYNTHETIC_CLASSES)
    assert [ax.get_title() for ax in axes[: len(SYNTHETIC_CLASSES)]] == list(SYNTHETIC_CLASSES)
    # Labels cycle 0..9, so the first image of class 3 is item 3 and the second is item 13.
    second_row_class3 = axes[len(SYNTHETIC_CLASSES) + 3].get_images()[0].get_array()
    assert torch.allclose(torch.tensor(second_row_class3.data), dataset.images[13].permute(1, 2, 0).float() / 255)
    plt.close("all")


def test_plot_runs_draws_one_line_per_run_and_the_chance_levels():
    runs = {
        "stuck": [{"epoch": e, "train_loss": 2.303, "val_top1": 10.0} for e in (1, 2, 3)],
        "learns": [{"epoch": e, "train_loss": 2.3 - 0.5 * e, "val_top1": 10.0 + 20 * e} for e in (1, 2, 3)],
    }
    loss_ax, acc_ax = plot_runs(runs, title="two runs", chance_loss=2.302585, chance_top1=10.0)
    labels = [line.get_label() for line in acc_ax.get_lines()]
    assert labels == ["stuck", "learns", "chance (10 %)"]
    assert [line.get_label() for line in loss_ax.get_lines()][-1] == "chance (ln 10 = 2.303)"
    assert list(acc_ax.get_lines()[1].get_ydata()) == [30.0, 50.0, 70.0]
    plt.close("all")


def test_plot_runs_draws_every_seed_of_a_run_in_one_colour_with_one_legend_entry():
    seeds = [[{"epoch": e, "train_loss": 2.3 - s * e, "val_top1": 10.0 + s * e} for e in (1, 2)] for s in (1, 2, 3)]
    loss_ax, acc_ax = plot_runs({"three seeds": seeds, "one": seeds[0]}, title="seeds")
    lines = acc_ax.get_lines()
    assert len(lines) == 4
    assert len({line.get_color() for line in lines[:3]}) == 1 and lines[3].get_color() != lines[0].get_color()
    assert [text.get_text() for text in acc_ax.get_legend().get_texts()] == ["three seeds", "one"]
    assert list(lines[2].get_ydata()) == [13.0, 16.0]
    plt.close("all")
