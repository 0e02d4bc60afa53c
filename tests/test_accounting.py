"""The analytical accounting against torchvision's models, torchinfo and the paper's Table 2."""

import pytest
import torch
import torchinfo
import torchvision
from torch import nn

from vgg_tutorial.paper.accounting import (
    MIN_INPUT_SIZE,
    activation_bytes,
    check_input_size,
    count_macs,
    count_parameters,
    forward_flops,
    images_per_second_at,
    largest_batch,
    layer_stats,
    measured_receptive_field,
    model_flops_utilisation,
    peak_tflops,
    receptive_field,
    saved_activation_bytes,
    stack_receptive_field,
    training_flops,
    training_memory_estimate,
)
from vgg_tutorial.paper.configs import CONFIGS, PAPER_PARAMS_MILLIONS, TORCHVISION_NAMES, Conv, MaxPool, feature_layers
from vgg_tutorial.paper.models import vgg

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


@pytest.mark.parametrize("size,field", [(224, 212), (448, 244)])
def test_avgpool_receptive_field_is_measured_not_the_whole_image(size, field):
    """At 224 px the adaptive pool leaves the 7×7 map alone: its units see the last max-pool's 212 pixels, not all 224.
    At 448 px it averages 2×2 windows of the 14×14 map, one more stride-32 step: 244."""
    probe = nn.Sequential(*geometry_probe("D"), nn.AvgPool2d(2, 2), nn.AdaptiveAvgPool2d(7))
    row = next(r for r in layer_stats("D", image_size=size) if r.label == "avgpool")
    assert row.receptive_field == measured_receptive_field(probe, image_size=size) == field
    assert all(r.receptive_field is None for r in layer_stats("D", image_size=size) if r.label.startswith("FC"))


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
    from vgg_tutorial.paper.models import vgg

    with torch.device("meta"):  # shapes only: torchinfo runs the forward pass on meta tensors
        model = vgg(name, batch_norm=batch_norm)
    stats = torchinfo.summary(model, input_size=(1, 3, size, size), device="meta", verbose=0)
    assert stats.total_mult_adds == count_macs(name, batch_norm=batch_norm, image_size=size)
    assert stats.total_params == count_parameters(name, batch_norm=batch_norm)


# Training cost (chapter 7): FLOPs, MFU and memory.


def test_peaks_are_looked_up_by_device_name():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989
    assert peak_tflops("NVIDIA H100 PCIe") == 756
    assert peak_tflops("NVIDIA H200") == 989
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312
    assert peak_tflops("Tesla T4") == 65
    assert peak_tflops("NVIDIA GeForce RTX 4090") is None
    assert peak_tflops("NVIDIA H100 NVL") is None  # not in the table: no MFU rather than a wrong one


def test_flops_follow_the_accounting():
    assert forward_flops("D", batch_norm=False, image_size=224, num_classes=1000) == 2 * count_macs(
        "D", image_size=224, weights_only=True
    )
    assert round(forward_flops("D", batch_norm=False, num_classes=1000) / 2e9, 2) == 15.47  # torchvision's GFLOPS
    assert training_flops("A", image_size=160) == 3 * forward_flops("A", image_size=160)


def test_figures_the_chapter_prints():
    """The chapter's table of training GFLOPs per image (BN, 10 classes) and its images/s arithmetic."""
    gflops = {
        (name, size): round(training_flops(name, batch_norm=True, image_size=size, num_classes=10) / 1e9, 1)
        for name in ("A", "D")
        for size in (160, 224)
    }
    assert gflops == {("A", 160): 23.6, ("A", 224): 45.6, ("D", 160): 47.7, ("D", 224): 92.8}
    d224 = training_flops("D", batch_norm=True, image_size=224, num_classes=10)
    assert round(images_per_second_at(0.4, 989, d224)) == 4263
    assert round(images_per_second_at(0.4, 65, d224)) == 280
    assert model_flops_utilisation(images_per_second_at(0.4, 989, d224), d224, 989) == pytest.approx(0.4)
    assert model_flops_utilisation(1000, d224, None) is None
    at_40 = {
        (name, size, peak): round(
            images_per_second_at(0.4, peak, training_flops(name, batch_norm=True, image_size=size, num_classes=10))
        )
        for name in ("A", "D")
        for size in (160, 224)
        for peak in (989, 65)
    }
    assert at_40 == {
        ("A", 160, 989): 16740,
        ("A", 160, 65): 1100,
        ("A", 224, 989): 8670,
        ("A", 224, 65): 570,
        ("D", 160, 989): 8294,
        ("D", 160, 65): 545,
        ("D", 224, 989): 4263,
        ("D", 224, 65): 280,
    }


def test_activation_estimate_matches_what_autograd_saves():
    """In fp32 the layer-shape estimate is within 1 % of the bytes autograd keeps (the rest: the classifier)."""
    for name, batch_norm in (("A", True), ("D", False)):
        model = vgg(name, batch_norm=batch_norm, num_classes=10, fc_width=64)
        saved = saved_activation_bytes(model, torch.randn(2, 3, 64, 64))
        estimate = 2 * activation_bytes(name, batch_norm=batch_norm, image_size=64, element_bytes=4)
        assert estimate <= saved < 1.01 * estimate
    # the two figures the chapter prints, in MiB, for VGG-A with batch norm, two 64 px images
    model = vgg("A", batch_norm=True, num_classes=10, fc_width=64)
    assert round(saved_activation_bytes(model, torch.randn(2, 3, 64, 64)) / 2**20, 2) == 12.44
    assert round(2 * activation_bytes("A", batch_norm=True, image_size=64, element_bytes=4) / 2**20, 2) == 12.39


def test_memory_estimate_and_t4_batch_sizes():
    """The chapter's T4 guidance: estimates from layer shapes, bf16/fp16 activations, 15 GiB usable."""
    estimate = training_memory_estimate("D", batch_norm=True, image_size=224, batch_size=64, num_classes=10)
    assert estimate["total"] == estimate["parameters_state"] + estimate["activations"]
    assert round(estimate["parameters_state"] / 2**30, 2) == 1.50
    assert round(estimate["activations"] / 2**30, 2) == 4.16
    totals = {
        (name, size, batch): round(
            training_memory_estimate(name, batch_norm=True, image_size=size, batch_size=batch, num_classes=10)["total"]
            / 2**30,
            2,
        )
        for name in ("A", "D")
        for size in (160, 224)
        for batch in (64, 128)
    }
    assert totals == {
        ("A", 160, 64): 2.82,
        ("A", 160, 128): 4.2,
        ("A", 224, 64): 4.14,
        ("A", 224, 128): 6.85,
        ("D", 160, 64): 3.63,
        ("D", 160, 128): 5.75,
        ("D", 224, 64): 5.66,
        ("D", 224, 128): 9.83,
    }
    t4 = 15 * 2**30
    assert largest_batch("D", t4, batch_norm=True, image_size=224, num_classes=10) == 128
    assert largest_batch("D", t4, batch_norm=True, image_size=160, num_classes=10) == 256
    assert largest_batch("A", t4, batch_norm=True, image_size=224, num_classes=10) == 256
    assert largest_batch("A", t4, batch_norm=True, image_size=160, num_classes=10) == 512
