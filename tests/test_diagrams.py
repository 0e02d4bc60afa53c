"""The block diagram is Table 1's column, box for box; the windows figure shows the dense net's and the crops'."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from vgg_tutorial.lessons.diagrams import dense_windows, plot_blocks, plot_windows
from vgg_tutorial.paper.configs import CONFIGS
from vgg_tutorial.testing.views import crop_windows


def labels(ax, kind=None):
    return [p.get_label() for p in ax.patches if kind is None or p.get_label().startswith(kind)]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_block_diagram_is_the_configuration(name):
    ax = plot_blocks(name)
    expected = [layer for block in CONFIGS[name] for layer in (*block, "maxpool")]
    assert [label for label in labels(ax) if not label.startswith("FC")] == expected
    assert labels(ax, "FC") == ["FC-4096", "FC-4096", "FC-1000"]
    plt.close("all")


def test_the_block_diagram_draws_smaller_maps_lower():
    ax = plot_blocks("D", num_classes=10)
    convs = [p for p in ax.patches if p.get_label().startswith("conv")]
    heights = [p.get_height() for p in convs]
    assert heights == sorted(heights, reverse=True) and heights[0] > heights[-1]  # 224 px first, 14 px last
    assert labels(ax, "FC")[-1] == "FC-10"
    assert "13 convolutions" in ax.get_title() and "16 weight layers" in ax.get_title()
    plt.close("all")


def test_dense_windows_follow_the_score_map():
    assert len(dense_windows(256, 256)) == 2 * 2 and len(dense_windows(512, 512)) == 10 * 10  # §3.2's map sizes
    assert dense_windows(384, 384)[:2] == [(0, 0), (0, 32)] and dense_windows(384, 384)[-1] == (160, 160)
    assert len(dense_windows(512, 682)) == 10 * 15  # PyTorch's pooling rounds 682 / 32 down
    assert dense_windows(200, 200) == []


def test_the_windows_figure_shows_both_methods():
    dense_ax, crops_ax = plot_windows(384)  # Q = 384: 6 × 6 windows, 5 × 5 crops
    corners = lambda ax: [p.get_xy()[::-1] for p in ax.patches if p.get_label() == "window"]  # noqa: E731
    assert corners(dense_ax) == [tuple(map(float, w)) for w in dense_windows(384, 384)]
    assert corners(crops_ax) == [tuple(map(float, w)) for w in crop_windows(384, 384, 224)]
    assert dense_ax.get_title().startswith("dense: 6 × 6") and crops_ax.get_title().startswith("multi-crop: 5 × 5")
    plt.close("all")
