"""Table 1 as data: the configurations, their parsing, and the errors for bad names."""

import pytest

from vgg_tutorial.paper.configs import (
    CONFIGS,
    LRN,
    PAPER_WEIGHT_LAYERS,
    Conv,
    MaxPool,
    check_name,
    feature_layers,
    parse_layer,
    weight_layers,
)


def test_six_configurations_of_five_blocks():
    assert list(CONFIGS) == ["A", "A-LRN", "B", "C", "D", "E"]
    assert all(len(blocks) == 5 for blocks in CONFIGS.values())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_weight_layers_match_table1_heading(name):
    assert weight_layers(name) == PAPER_WEIGHT_LAYERS[name]


def test_block_widths_follow_the_paper():
    """Every configuration widens 64 → 128 → 256 → 512 → 512, doubling after each pool but the last (§2.2)."""
    for name in CONFIGS:
        widths = [{parse_layer(t).channels for t in block if t != "LRN"} for block in CONFIGS[name]]
        assert widths == [{64}, {128}, {256}, {512}, {512}], name


def test_differences_between_columns():
    assert CONFIGS["A-LRN"][0] == ("conv3-64", "LRN")
    assert [parse_layer(t).kernel for t in CONFIGS["C"][2]] == [3, 3, 1]
    assert [parse_layer(t).kernel for t in CONFIGS["D"][2]] == [3, 3, 3]
    assert len(CONFIGS["E"][4]) == 4


def test_parse_layer():
    assert parse_layer("conv3-64") == Conv(kernel=3, channels=64)
    assert parse_layer("conv1-512") == Conv(kernel=1, channels=512)
    assert parse_layer("conv1-512").padding == 0 and parse_layer("conv3-64").padding == 1
    assert parse_layer("LRN") == LRN()
    assert parse_layer("conv5-64") == Conv(kernel=5, channels=64) and parse_layer("conv5-64").padding == 2
    with pytest.raises(ValueError, match="conv7-64"):
        parse_layer("conv7-64")


def test_feature_layers_end_every_block_with_a_pool():
    layers = feature_layers("A")
    assert sum(isinstance(layer, MaxPool) for layer in layers) == 5
    assert isinstance(layers[-1], MaxPool)
    assert len(layers) == 8 + 5


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid names are: A, A-LRN, B, C, D, E"):
        check_name("F")
    with pytest.raises(KeyError, match="case-sensitive"):
        feature_layers("d")
    assert check_name("D") == "D"
