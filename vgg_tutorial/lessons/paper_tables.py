"""The paper's tables and recipe, rendered from :data:`~vgg_tutorial.paper.configs.CONFIGS` for the book.

Each table is a :class:`~vgg_tutorial.paper.table.Table`, with an HTML form (what the book shows) and a plain-text
form (what a terminal shows), so a notebook cell that ends with one displays it properly everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgg_tutorial.paper.accounting import count_parameters, layer_stats
from vgg_tutorial.paper.configs import CONFIGS, FC_WIDTHS, INPUT_SIZE, PAPER_PARAMS_MILLIONS, RECIPE, weight_layers
from vgg_tutorial.paper.models import INIT_STDS
from vgg_tutorial.paper.table import Table


def table1() -> Table:
    """Table 1 of the paper: one column per configuration, layers aligned by their place in each block.

    As in the paper, a layer is set in bold where it is new with respect to the column on its left.
    """
    names = list(CONFIGS)
    rows: list[list[str]] = [
        [f"{weight_layers(name)} weight layers" for name in names],
        [f"input ({INPUT_SIZE} × {INPUT_SIZE} RGB image)"] + [""] * (len(names) - 1),
    ]
    span_rows, bold = {1}, set()
    for block in range(5):
        depth = max(len(CONFIGS[name][block]) for name in names)
        for position in range(depth):
            row = []
            for column, name in enumerate(names):
                layers = CONFIGS[name][block]
                text = layers[position] if position < len(layers) else ""
                if column > 0 and text:
                    left = CONFIGS[names[column - 1]][block]
                    if position >= len(left) or left[position] != text:
                        bold.add((len(rows), column))
                row.append(text)
            rows.append(row)
        span_rows.add(len(rows))
        rows.append(["maxpool"] + [""] * (len(names) - 1))
    for width in (*FC_WIDTHS, 1000):
        span_rows.add(len(rows))
        rows.append([f"FC-{width}"] + [""] * (len(names) - 1))
    span_rows.add(len(rows))
    rows.append(["soft-max"] + [""] * (len(names) - 1))
    return Table(names, rows, "Table 1: ConvNet configurations (built from vgg_tutorial.CONFIGS)", bold, span_rows)


def table2() -> Table:
    """Table 2 of the paper, computed: exact parameter counts beside the paper's rounded millions."""
    rows = []
    for name in CONFIGS:
        exact = count_parameters(name)
        rows.append(
            [
                name,
                f"{exact:,}",
                f"{exact / 1e6:.0f}",
                f"{PAPER_PARAMS_MILLIONS[name]}",
                "yes" if round(exact / 1e6) == PAPER_PARAMS_MILLIONS[name] else "NO",
            ]
        )
    header = ["configuration", "parameters (computed)", "millions (computed)", "millions (paper)", "agree"]
    return Table(header, rows, "Table 2: number of parameters, computed from CONFIGS and as printed in the paper")


@dataclass(frozen=True)
class CostSplit:
    """Where a configuration's parameters and multiply-accumulates live: each conv block and the classifier."""

    name: str
    params: dict[str, int]  #: "block 1" ... "block 5", "FC layers"
    macs: dict[str, int]


def cost_split(name: str, *, image_size: int = INPUT_SIZE) -> CostSplit:
    """Split parameters and MACs of configuration ``name`` (one image of ``image_size`` px) by block."""
    params: dict[str, int] = {}
    macs: dict[str, int] = {}
    for row in layer_stats(name, image_size=image_size):
        part = "FC layers" if row.block == 6 else f"block {row.block}"
        params[part] = params.get(part, 0) + row.params
        macs[part] = macs.get(part, 0) + row.macs
    return CostSplit(name, params, macs)


def cost_table(*, image_size: int = INPUT_SIZE) -> Table:
    """Share of parameters and of MACs in the convolutions and in the three FC layers, per configuration."""
    rows = []
    for name in CONFIGS:
        split = cost_split(name, image_size=image_size)
        params, macs = sum(split.params.values()), sum(split.macs.values())
        rows.append(
            [
                name,
                f"{params / 1e6:.1f} M",
                f"{split.params['FC layers'] / params:.1%}",
                f"{macs / 1e9:.2f} G",
                f"{1 - split.macs['FC layers'] / macs:.1%}",
            ]
        )
    header = ["configuration", "parameters", "in FC layers", "MACs per image", "in convolutions"]
    return Table(header, rows, f"Where the parameters and the compute live ({image_size} px input)")


def plot_cost_split(*, image_size: int = INPUT_SIZE):
    """Stacked bars: parameters (left) and MACs (right) of every configuration, split by block and classifier."""
    import matplotlib.pyplot as plt

    names = list(CONFIGS)
    splits = [cost_split(name, image_size=image_size) for name in names]
    parts = list(splits[0].params)
    colours = plt.get_cmap("viridis")([i / (len(parts) - 1) for i in range(len(parts))])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, field, scale, unit in (
        (axes[0], "params", 1e6, "millions of parameters"),
        (axes[1], "macs", 1e9, "GMACs per image"),
    ):
        left = [0.0] * len(names)
        for part, colour in zip(parts, colours):
            values = [getattr(split, field)[part] / scale for split in splits]
            ax.barh(names, values, left=left, color=colour, label=part)
            left = [a + b for a, b in zip(left, values)]
        ax.set_xlabel(unit)
        ax.invert_yaxis()
    axes[0].set_ylabel("configuration")
    axes[0].set_title("Parameters: mostly in the three FC layers")
    axes[1].set_title(f"Compute ({image_size}×{image_size} input): mostly in the convolutions")
    axes[1].legend(loc="lower right", fontsize="small")
    fig.suptitle("Computed from vgg_tutorial.CONFIGS (no model built)", fontsize="small", y=0.02)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def scientific(value: float) -> str:
    """``5e-4`` as ``5·10⁻⁴`` and ``1e-2`` as ``10⁻²``, as the paper prints its numbers."""
    mantissa, exponent = f"{value:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = "10" + str(int(exponent)).translate(_SUPERSCRIPTS)
    return power if mantissa == "1" else f"{mantissa}·{power}"


#: §3 of the paper as a reference card: (what, the paper's choice, section, note on ambiguity or practice).
RECIPE: list[tuple[str, str, str, str]] = [
    ("objective", "multinomial logistic regression (soft-max + cross-entropy)", "§3.1", ""),
    ("optimiser", f"mini-batch gradient descent with momentum {RECIPE.momentum}", "§3.1", ""),
    ("batch size", f"{RECIPE.batch_size}", "§3.1", "split over 4 GPUs (§3.3)"),
    (
        "weight decay",
        f"L2, multiplier {scientific(RECIPE.weight_decay)}",
        "§3.1",
        "torchvision's own recipe uses 1·10⁻⁴",
    ),
    ("dropout", f"{RECIPE.dropout} on the first two FC layers", "§3.1", ""),
    (
        "learning rate",
        f"{scientific(RECIPE.lr)}, divided by {round(1 / RECIPE.lr_factor)} when validation accuracy stopped improving",
        "§3.1",
        f"decreased {RECIPE.lr_drops} times; 'stopped improving' is not defined further",
    ),
    ("length", "370K iterations (74 epochs)", "§3.1", ""),
    (
        "initialisation",
        "A from random: weights N(0, 10⁻² variance), biases 0; deeper nets start from A's first four conv and "
        "last three FC layers",
        "§3.1",
        "read as std 0.01 (AlexNet's), A at full width starts at loss ln 1000 and stays finite over a few SGD "
        "steps; read literally as std 0.1, its logits are ~10⁵ and one SGD step makes the loss NaN (both measured, "
        "chapter 8); which deeper layers get A's four convs is not said: the book's reading is the layers of the "
        "same name (conv1_1, conv2_1, conv3_1, conv3_2); a note added after submission says Glorot's "
        "initialisation works without the warm start",
    ),
    ("training crop", "224×224, one random crop per image per SGD iteration", "§3.1", ""),
    (
        "augmentation",
        "random horizontal flip; random RGB colour shift as in AlexNet",
        "§3.1",
        "AlexNet's PCA lighting; VGG gives no std for its draws (the book uses AlexNet's 0.1)",
    ),
    (
        "training scale S",
        "smaller side rescaled to S: fixed (256 or 384) or jittered in [256, 512]",
        "§3.1",
        "the S = 384 net was fine-tuned from the S = 256 one with learning rate 10⁻³; the multi-scale nets were "
        "fine-tuned from the S = 384 one (no learning rate given)",
    ),
    (
        "preprocessing",
        "subtract the mean RGB value of the training set",
        "§2.1",
        "no division by a std; the book scales pixels to [0, 1] first",
    ),
    (
        "test scale Q",
        "Q = S for fixed S; Q = 0.5(S_min + S_max) for jittered S",
        "§4.1",
        "§3.2 only says the image is rescaled to Q, not necessarily equal to S; the rule is §4.1's single-scale "
        "evaluation",
    ),
    (
        "dense evaluation",
        "FC layers turned into convolutions (7×7, 1×1, 1×1), class score map averaged spatially",
        "§3.2",
        "",
    ),
    ("test augmentation", "average soft-max posteriors of the image and its horizontal flip", "§3.2", ""),
    (
        "implementation",
        "derived from C++ Caffe, with significant modifications; 4 NVIDIA Titan Black GPUs, 2–3 weeks per net",
        "§3.3",
        "",
    ),
]


def recipe_card() -> Table:
    """§3's training and testing recipe as a table, each line with its section and the ambiguity it hides."""
    return Table(["what", "the paper", "section", "note"], [list(row) for row in RECIPE], "The recipe of §3")


def layer_table(name: str, *, batch_norm: bool = False, image_size: int = INPUT_SIZE) -> Table:
    """Layer-by-layer accounting of configuration ``name``: output shape, parameters, MACs and receptive field."""
    rows = []
    for row in layer_stats(name, batch_norm=batch_norm, image_size=image_size):
        shape = f"{row.channels}@{row.size}×{row.size}" if row.size > 1 or row.label == "avgpool" else f"{row.channels}"
        rows.append(
            [
                row.label,
                "FC" if row.label.startswith("FC") else ("" if row.label == "avgpool" else str(row.block)),
                shape,
                f"{row.params:,}",
                f"{row.macs / 1e6:,.1f} M",
                "whole image" if row.receptive_field is None else f"{row.receptive_field}×{row.receptive_field}",
            ]
        )
    header = ["layer", "block", "output", "parameters", "MACs", "receptive field"]
    return Table(header, rows, f"Configuration {name}, one {image_size}×{image_size} image")


def init_scale_table(name: str, *, paper_std: float = INIT_STDS["paper"]) -> Table:
    """Why the paper's initialisation could not train deep nets from scratch (§3.1), computed per layer.

    ``paper_std`` is 0.01, the reading of "10⁻² variance" that trains A (:mod:`vgg_tutorial.studies.init_study`); pass
    ``INIT_STDS["paper-literal"]`` (0.1) for the literal one.

    For a ReLU network, a layer with fan-in ``n`` and weights of standard deviation ``σ`` multiplies the mean square
    of its input by ``n σ² / 2`` (He et al., 2015). Kaiming's ``σ = sqrt(2 / n)`` makes that gain 1. (The first
    layer sees the image rather than ReLU outputs, so its factor is only indicative.)
    """
    rows, total = [], 1.0
    for row in layer_stats(name):
        if row.label.startswith("conv"):
            fan_in = (row.params - row.channels) // row.channels
            gain = fan_in * paper_std**2 / 2
            total *= gain
            rows.append(
                [
                    row.label,
                    f"{fan_in:,}",
                    f"{(2 / fan_in) ** 0.5:.4f}",
                    f"{paper_std}",
                    f"{gain:.3g}×",
                    f"{total:.3g}×",
                ]
            )
    header = ["layer", "fan-in", "Kaiming std", "paper std", "signal gain", "gain so far"]
    return Table(header, rows, f"Configuration {name}: mean-square gain per convolution with std {paper_std}")
