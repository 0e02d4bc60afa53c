"""Pictures of the architecture and of testing, drawn from the package's own data.

- :func:`plot_blocks`: a configuration of Table 1 as a row of boxes, one per layer, read from :data:`CONFIGS`
  (chapter 2);
- :func:`plot_windows`: the windows dense evaluation scores against the crops of multi-crop evaluation (§3.2, §4.3),
  on one image (chapter 4).

matplotlib is imported inside the functions, as in :mod:`vgg_tutorial.lessons.plotting`.
"""

from __future__ import annotations

import math

from vgg_tutorial.paper.configs import FC_WIDTHS, INPUT_SIZE, Conv, MaxPool, check_name, feature_layers
from vgg_tutorial.testing.views import crop_windows

#: The dense net's stride in pixels: five 2×2 max-pools.
STRIDE = 32
#: Colours: convolutions by kernel, pooling, fully connected.
_COLOURS = {3: "#4C72B0", 1: "#DD8452", "pool": "#C44E52", "fc": "#55A868", "lrn": "#8172B3"}


def dense_windows(height: int, width: int, crop: int = INPUT_SIZE, stride: int = STRIDE) -> list[tuple[int, int]]:
    """The (top, left) corners of the ``crop``-pixel windows that the positions of the dense net's score map see,
    row by row: one every ``stride`` pixels from the top-left corner, as many as fit (PyTorch's pooling rounds down)."""
    rows = (height // stride) - (crop // stride) + 1
    cols = (width // stride) - (crop // stride) + 1
    return [(r * stride, c * stride) for r in range(max(rows, 0)) for c in range(max(cols, 0))]


def plot_blocks(name: str = "D", num_classes: int = 1000, ax=None):
    """Configuration ``name`` as a row of boxes: each convolution a bar whose height follows the side of its feature
    map (224 → 7 px, drawn on a log scale) and whose label is Table 1's ("conv3-64"); each max-pool a thin red bar;
    then the three FC layers. Returns the axes; every box's label is its layer as Table 1 writes it."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    check_name(name)
    layers = feature_layers(name)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2), layout="constrained")
    side, x = INPUT_SIZE, 0.0
    height = lambda px: 0.6 + 0.4 * math.log2(px)  # noqa: E731 (a scale, read once per box)
    for layer in layers:
        if isinstance(layer, Conv):
            label, colour, w = f"conv{layer.kernel}-{layer.channels}", _COLOURS[layer.kernel], 1.0
        elif isinstance(layer, MaxPool):
            label, colour, w = "maxpool", _COLOURS["pool"], 0.35
        else:
            label, colour, w = "LRN", _COLOURS["lrn"], 0.5
        h = height(side)
        ax.add_patch(Rectangle((x, -h / 2), w, h, facecolor=colour, edgecolor="white", label=label))
        if isinstance(layer, Conv):
            ax.text(x + w / 2, 0, label, rotation=90, ha="center", va="center", color="white", fontsize=9)
        if isinstance(layer, MaxPool):
            ax.text(x + w / 2, -h / 2 - 0.25, f"{side}→{side // 2}", ha="center", va="top", fontsize=9)
            side //= 2
        x += w + 0.12
    for width in (*FC_WIDTHS, num_classes):
        label = f"FC-{width}"
        ax.add_patch(Rectangle((x, -1.2), 1.0, 2.4, facecolor=_COLOURS["fc"], edgecolor="white", label=label))
        ax.text(x + 0.5, 0, label, rotation=90, ha="center", va="center", color="white", fontsize=9)
        x += 1.12
    ax.text(x + 0.1, 0, "soft-max", rotation=90, ha="left", va="center", fontsize=8)
    ax.set(xlim=(-0.2, x + 0.8), ylim=(-height(INPUT_SIZE) / 2 - 0.9, height(INPUT_SIZE) / 2 + 0.2))
    ax.set_axis_off()
    convs = sum(isinstance(layer, Conv) for layer in layers)
    ax.set_title(
        f"Configuration {name}: {convs} convolutions in 5 blocks + {len(FC_WIDTHS) + 1} FC layers = "
        f"{convs + len(FC_WIDTHS) + 1} weight layers",
        fontsize=11,
    )
    return ax


def plot_windows(size: int = 256, crop: int = INPUT_SIZE, grid: int = 5):
    """Two panels over a ``size`` × ``size`` image: the windows that dense evaluation's score map sees (every
    :data:`STRIDE` px from the top-left corner) and multi-crop's ``grid`` × ``grid`` crops (the outer ones at the
    borders). Every window is drawn faintly, the first and last of each boldly. Returns the two axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), layout="constrained")
    panels = (
        ("dense", dense_windows(size, size, crop), f"{STRIDE} px apart, from the top-left corner"),
        ("multi-crop", crop_windows(size, size, crop, grid), "evenly spread, the outer ones at the borders"),
    )
    for ax, (method, windows, how) in zip(axes, panels):
        ax.add_patch(Rectangle((0, 0), size, size, facecolor="#EEEEEE", edgecolor="black", label="image"))
        for i, (top, left) in enumerate(windows):
            bold = i in (0, len(windows) - 1)
            ax.add_patch(
                Rectangle(
                    (left, top),
                    crop,
                    crop,
                    fill=False,
                    edgecolor="#C44E52" if bold else "#4C72B0",
                    linewidth=2.0 if bold else 0.6,
                    alpha=1.0 if bold else 0.6,
                    label="window",
                )
            )
            ax.plot(left + crop / 2, top + crop / 2, ".", color="#4C72B0", markersize=3)
        n = math.isqrt(len(windows))
        ax.set_title(f"{method}: {n} × {n} windows of {crop} px\n{how}", fontsize=10)
        ax.set(xlim=(-8, size + 8), ylim=(size + 8, -8), aspect="equal")
        ax.set_xlabel("pixels")
    fig.suptitle(f"One scale, Q = {size}: what each method scores", fontsize=11)
    return axes
