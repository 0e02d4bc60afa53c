"""The analytical accounting against torchvision's models, torchinfo and the paper's Table 2."""

import pytest
import torch
import torchinfo
import torchvision
from torch import nn

from vgg_tutorial.accounting import (
    MIN_INPUT_SIZE,
    check_input_size,
    count_macs,
    count_parameters,
    layer_stats,
    measured_receptive_field,
    receptive_field,
    stack_receptive_field,
)
from vgg_tutorial.configs import CONFIGS, PAPER_PARAMS_MILLIONS, TORCHVISION_NAMES, Conv, MaxPool, feature_layers

TORCHVISION_MODELS = [(name, bn) for name in TORCHVISION_NAMES for bn in (False, True)]


def torchvision_model(name: str, batch_norm: bool, device: str = "meta") -> nn.Module:
    builder = getattr(torchvision.models, TORCHVISION_NAMES[name] + ("_bn" if batch_norm else ""))
    with torch.device(device):  # meta: shapes only, no memory and no initialisation cost
        return builder(weights=None)


@pytest.mark.parametrize("name,batch_norm", TORCHVISION_MODELS)
def test_parameters_equal_torchvision(name, batch_norm):
    model = torchvision_model(name, batch_norm)
    assert count_parameters(name, batch_norm=batch_norm) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameters_round_to_table2(name):
    assert round(count_parameters(name) / 1e6) == PAPER_PARAMS_MILLIONS[name]
    assert round(count_parameters(name, batch_norm=True) / 1e6) == PAPER_PARAMS_MILLIONS[name]


def test_exact_counts():
    assert count_parameters("D") == 138_357_544
    assert count_parameters("E") == 143_667_240
    assert count_parameters("D", batch_norm=True) == 138_365_992
    assert count_parameters("A", num_classes=10) == 132_863_336 - 4096 * 990 - 990


@pytest.mark.parametrize("name,batch_norm,size", [("A", False, 224), ("D", True, 224), ("E", False, 96)])
def test_macs_equal_torchinfo(name, batch_norm, size):
    model = torchvision_model(name, batch_norm, device="cpu")
    stats = torchinfo.summary(model, input_size=(1, 3, size, size), verbose=0)
    assert count_macs(name, batch_norm=batch_norm, image_size=size) == stats.total_mult_adds


@pytest.mark.parametrize("name,batch_norm", TORCHVISION_MODELS)
def test_weight_macs_match_torchvision_metadata(name, batch_norm):
    """torchvision's weights metadata lists weight-only GMACs (under the name "GFLOPS") for 224 px inputs."""
    weights = torchvision.models.get_model_weights(TORCHVISION_NAMES[name] + ("_bn" if batch_norm else ""))
    listed = weights.IMAGENET1K_V1.meta["_ops"]
    assert round(count_macs(name, batch_norm=batch_norm, weights_only=True) / 1e9, 3) == listed
    assert count_macs(name) > count_macs(name, weights_only=True)


@pytest.mark.parametrize("size", [32, 64, 160, 224, 250])
def test_feature_map_sizes_equal_torchvision(size):
    model = torchvision_model("B", False)
    x = torch.empty(1, 3, size, size, device="meta")
    expected = []
    for module in model.features:
        x = module(x)
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            expected.append((x.shape[1], x.shape[2]))
    rows = [r for r in layer_stats("B", image_size=size) if r.label.startswith(("conv", "maxpool"))]
    assert [(r.channels, r.size) for r in rows] == expected


def test_too_small_input_is_refused():
    assert check_input_size(MIN_INPUT_SIZE) == 32
    with pytest.raises(ValueError, match="at least 32×32"):
        layer_stats("A", image_size=31)


def test_stacked_3x3_receptive_fields():
    assert [stack_receptive_field([3] * n) for n in (1, 2, 3)] == [3, 5, 7]
    for n in (1, 2, 3):
        stack = nn.Sequential(*[layer for _ in range(n) for layer in (nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())])
        assert measured_receptive_field(stack) == stack_receptive_field([3] * n)
    assert measured_receptive_field(nn.Conv2d(1, 1, 7, padding=3)) == 7


def geometry_probe(name: str) -> nn.Sequential:
    """A one-channel network with configuration ``name``'s geometry; average pooling has the same receptive field
    as max pooling but passes gradient to every pixel it covers."""
    layers = []
    for layer in feature_layers(name):
        if isinstance(layer, Conv):
            layers += [nn.Conv2d(1, 1, layer.kernel, padding=layer.padding), nn.ReLU()]
        elif isinstance(layer, MaxPool):
            layers.append(nn.AvgPool2d(layer.kernel, layer.stride))
    return nn.Sequential(*layers[:-1])  # up to the last convolution


@pytest.mark.parametrize("name", ["A", "C", "D"])
def test_receptive_field_formula_matches_backprop(name):
    assert measured_receptive_field(geometry_probe(name), image_size=400) == receptive_field(name)


def test_receptive_fields_of_every_configuration():
    assert {name: receptive_field(name) for name in CONFIGS} == {
        "A": 134,
        "A-LRN": 134,
        "B": 140,
        "C": 140,
        "D": 196,
        "E": 252,
    }


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("size", [224, 160])
def test_counts_equal_torchinfo_on_the_built_model(name, batch_norm, size):
    """The package's own builder, for every configuration (A-LRN and C have no torchvision twin)."""
    from vgg_tutorial.models import vgg

    with torch.device("meta"):  # shapes only: torchinfo runs the forward pass on meta tensors
        model = vgg(name, batch_norm=batch_norm)
    stats = torchinfo.summary(model, input_size=(1, 3, size, size), device="meta", verbose=0)
    assert stats.total_mult_adds == count_macs(name, batch_norm=batch_norm, image_size=size)
    assert stats.total_params == count_parameters(name, batch_norm=batch_norm)
