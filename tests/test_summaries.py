"""torchinfo summaries against the analytical accounting (Table 2 parameters, MACs) and the chapter's claims."""

import pytest
import torch
from torch import nn

from vgg_tutorial.lessons.summaries import summary
from vgg_tutorial.paper.accounting import count_macs, count_parameters
from vgg_tutorial.paper.configs import CONFIGS, PAPER_PARAMS_MILLIONS
from vgg_tutorial.paper.models import vgg


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_totals_match_the_accounting(name, batch_norm):
    stats = summary(name, batch_norm=batch_norm)
    assert stats.total_params == stats.trainable_params == count_parameters(name, batch_norm=batch_norm)
    assert stats.total_mult_adds == count_macs(name, batch_norm=batch_norm)
    assert round(stats.total_params / 1e6) == PAPER_PARAMS_MILLIONS[name]


def test_vgg16_table_as_printed():
    text = str(summary("D"))
    assert "Total params: 138,357,544" in text
    assert "Total mult-adds: 15,483,821,032" in text
    assert "│    └─Conv2d: 2-3             [1, 64, 224, 224]   36,928              1,852,899,328" in text
    assert max(len(line) for line in text.splitlines()) <= 90


def test_batch_size_changes_macs_and_activations_not_parameters():
    one, two = summary("D", depth=0), summary("D", depth=0, batch_size=2)
    assert one.total_params == two.total_params == 138_357_544
    assert two.total_mult_adds == 2 * one.total_mult_adds
    assert two.total_output_bytes == 2 * one.total_output_bytes
    assert "[2, 1000]" in str(two)


def test_other_image_sizes_and_small_models():
    assert summary("D", image_size=160).total_mult_adds == count_macs("D", image_size=160)
    small = vgg("A", width=1 / 8, fc_width=256, pooled_size=1, num_classes=10)
    stats = summary(small, image_size=32, depth=1)
    assert stats.total_params == sum(p.numel() for p in small.parameters()) == 229_562
    assert next(small.parameters()).device.type == "cpu"


def test_options_only_with_a_name():
    with pytest.raises(TypeError, match="configuration name"):
        summary(nn.Linear(2, 2), batch_norm=True)
    with pytest.raises(KeyError, match="valid names"):
        summary("vgg16")


def test_meta_model_keeps_no_weights():
    with torch.device("meta"):
        model = vgg("E")
    assert summary(model, depth=0).total_params == 143_667_240


# The numbers chapter 4 ("Reading a model summary") prints.


def test_chapter4_totals_and_torchvision_macs():
    import torchvision

    from vgg_tutorial.paper.configs import TORCHVISION_NAMES

    macs = {name: summary(name, depth=0).total_mult_adds for name in CONFIGS}
    assert macs == {
        "A": 7_616_525_288,
        "A-LRN": 7_616_525_288,
        "B": 11_320_718_312,
        "C": 11_784_444_904,
        "D": 15_483_821_032,
        "E": 19_646_923_752,
    }
    for name in CONFIGS:
        weights_only = count_macs(name, weights_only=True)
        assert weights_only < macs[name] < 1.002 * weights_only
        if name in TORCHVISION_NAMES:
            meta = torchvision.models.get_model_weights(TORCHVISION_NAMES[name]).DEFAULT.meta
            assert round(weights_only / 1e9, 3) == round(meta["_ops"], 3)
    assert round(macs["E"] / macs["A"] - 1, 2) == 1.58


def test_chapter4_summary_rows():
    text = str(summary("D"))
    for row in ("1,852,899,328", "1,851,293,696", "102,764,544         102,764,544"):
        assert row in text
    bn_rows = [row for row in str(summary("D", batch_norm=True)).splitlines() if "BatchNorm2d" in row]
    assert bn_rows[0].split()[-2:] == ["128", "128"]


def test_chapter4_batch_table():
    expected = {1: (15_483_821_032, 108.45), 2: (30_967_642_064, 216.91), 8: (123_870_568_256, 867.63)}
    for batch_size, (macs, megabytes) in expected.items():
        stats = summary("D", batch_size=batch_size, depth=0)
        assert list(stats.summary_list[0].output_size) == [batch_size, 1000]
        assert stats.total_mult_adds == macs
        assert round(stats.total_output_bytes / 1e6, 2) == megabytes
