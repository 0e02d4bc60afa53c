"""The builder: torchvision equality, exact parameter counts, LRN, initialisation schemes and bad input."""

import math

import pytest
import torch
import torchvision
from torch import nn

from vgg_tutorial.paper.accounting import count_parameters
from vgg_tutorial.paper.configs import CONFIGS, PAPER_WEIGHT_LAYERS, TORCHVISION_NAMES
from vgg_tutorial.paper.models import FROM_A_CONVS, VGG, alexnet_lrn, conv_names, init_from_a, init_weights, vgg

TORCHVISION_CASES = [(name, bn) for name in TORCHVISION_NAMES for bn in (False, True)]


def on_meta(name, **kwargs):
    """Build a full-size model without allocating or initialising its weights (shapes and counts only)."""
    with torch.device("meta"):
        return vgg(name, **kwargs)


def torchvision_twin(name, batch_norm):
    factory = getattr(torchvision.models, TORCHVISION_NAMES[name] + ("_bn" if batch_norm else ""))
    return factory()


@pytest.mark.parametrize("name,batch_norm", TORCHVISION_CASES)
def test_same_layout_keys_shapes_and_outputs_as_torchvision(name, batch_norm):
    torch.manual_seed(0)
    reference = torchvision_twin(name, batch_norm).eval()
    ours = on_meta(name, batch_norm=batch_norm)
    assert repr(ours) == repr(reference)  # same modules, same order, same hyper-parameters
    ours_sd, ref_sd = ours.state_dict(), reference.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in ref_sd.items()}
    # torchvision's random weights load with a plain load_state_dict (assign: our model was built on "meta").
    ours.load_state_dict(ref_sd, assign=True)
    ours.eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameter_counts_match_the_accounting(name, batch_norm):
    model = on_meta(name, batch_norm=batch_norm)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(name, batch_norm=batch_norm)


def test_exact_parameter_counts():
    """The figures the chapters print; torchvision lists 138,357,544 for vgg16 and 143,667,240 for vgg19."""
    counts = {name: sum(p.numel() for p in on_meta(name).parameters()) for name in CONFIGS}
    assert counts == {
        "A": 132_863_336,
        "A-LRN": 132_863_336,
        "B": 133_047_848,
        "C": 133_638_952,
        "D": 138_357_544,
        "E": 143_667_240,
    }
    assert sum(p.numel() for p in on_meta("D", batch_norm=True).parameters()) == 138_365_992


def test_one_by_one_convolutions_in_c():
    convs = [m for m in on_meta("C").features if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs].count((1, 1)) == 3
    assert all(c.padding == (0, 0) for c in convs if c.kernel_size == (1, 1))
    assert all(c.padding == (1, 1) for c in convs if c.kernel_size == (3, 3))


def test_lrn_sits_after_the_first_relu_in_a_lrn():
    for batch_norm, position in ((False, 2), (True, 3)):
        layers = list(on_meta("A-LRN", batch_norm=batch_norm).features)
        assert isinstance(layers[position], nn.LocalResponseNorm)
        assert isinstance(layers[position - 1], nn.ReLU) and isinstance(layers[position + 1], nn.MaxPool2d)


def test_lrn_equals_alexnets_formula():
    """b = a / (k + α Σ_{j in window} a_j²)^β with k=2, n=5, α=1e-4, β=0.75 (Krizhevsky et al. 2012, §3.3)."""
    torch.manual_seed(0)
    a = torch.randn(2, 11, 4, 4, dtype=torch.double) * 30  # large activations, so the normalisation matters
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = torch.empty_like(a)
    channels = a.shape[1]
    for i in range(channels):
        window = range(max(0, i - n // 2), min(channels - 1, i + n // 2) + 1)
        squares = sum(a[:, j] ** 2 for j in window)
        expected[:, i] = a[:, i] / (k + alpha * squares) ** beta
    got = alexnet_lrn()(a)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # The pitfall: passing AlexNet's alpha straight to PyTorch normalises n times too weakly.
    naive = nn.LocalResponseNorm(size=n, alpha=alpha, beta=beta, k=k)(a)
    assert not torch.allclose(naive, expected, rtol=1e-3)


def test_small_model_for_cpu_training():
    model = vgg("A", width=1 / 8, fc_width=256, pooled_size=1, num_classes=10)
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [8, 16, 32, 32, 64, 64, 64, 64]
    assert model.avgpool.output_size == (1, 1)
    assert model.classifier[0].in_features == 64 and model.classifier[-1].out_features == 10
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert [m.out_channels for m in vgg("A", width=1e-3).features if isinstance(m, nn.Conv2d)][0] == 1


def test_dropout_probability():
    model = vgg("A", width=1 / 16, fc_width=32, dropout=0.3)
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.3, 0.3]


def _weights(model, kind):
    return [m.weight for m in model.modules() if isinstance(m, kind)]


def test_init_schemes_draw_what_they_document():
    torch.manual_seed(0)
    model = vgg("A", batch_norm=True, width=1 / 2, fc_width=1024, init="paper")
    for w in _weights(model, nn.Conv2d)[2:] + _weights(model, nn.Linear):
        assert abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001
    init_weights(model, "paper-literal")  # "10⁻² variance" read literally: std 0.1
    for w in _weights(model, nn.Conv2d)[2:] + _weights(model, nn.Linear):
        assert abs(w.std().item() - 0.1) < 0.01 and abs(w.mean().item()) < 0.01
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))

    init_weights(model, "glorot")
    for w in _weights(model, nn.Conv2d) + _weights(model, nn.Linear):
        fan_out, fan_in = w.shape[0] * w[0, 0].numel(), w.shape[1] * w[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert w.abs().max().item() <= bound * (1 + 1e-6)
        assert w.abs().max().item() > 0.9 * bound  # uniform up to the bound, not a normal

    init_weights(model, "torchvision")
    for w in _weights(model, nn.Conv2d)[2:]:
        expected = math.sqrt(2 / (w.shape[0] * w.shape[2] * w.shape[3]))  # kaiming normal, fan_out, relu
        assert abs(w.std().item() / expected - 1) < 0.1
    for w in _weights(model, nn.Linear):
        assert abs(w.std().item() - 0.01) < 0.001
    assert all(torch.all(w == 1) for w in _weights(model, nn.BatchNorm2d))


def test_bad_names_and_schemes():
    with pytest.raises(KeyError, match="valid names are: A, A-LRN, B, C, D, E"):
        vgg("VGG16")
    with pytest.raises(ValueError, match="unknown init scheme"):
        vgg("A", init="he")


@pytest.mark.parametrize(
    "shape,message",
    [
        ((3, 64, 64), "4-D batch"),
        ((1, 1, 64, 64), "3 input channels"),
        ((1, 64, 64, 3), "3 input channels"),
        ((1, 3, 31, 64), "too small"),
        ((1, 3, 16, 16), "too small"),
    ],
)
def test_bad_input_raises_a_clear_error(shape, message):
    model = vgg("A", width=1 / 16, fc_width=16)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


def test_returns_logits_not_probabilities():
    torch.manual_seed(0)
    model = vgg("A", width=1 / 8, fc_width=64, num_classes=10).eval()
    assert isinstance(model, VGG)
    logits = model(torch.randn(4, 3, 32, 32))
    assert not torch.allclose(logits.sum(dim=1), torch.ones(4))
    assert (logits < 0).any()


# The numbers chapter 3 ("From a table to a model") prints.


def test_chapter3_parameter_table():
    with_bn = {name: sum(p.numel() for p in on_meta(name, batch_norm=True).parameters()) for name in CONFIGS}
    assert with_bn == {
        "A": 132_868_840,
        "A-LRN": 132_868_840,
        "B": 133_053_736,
        "C": 133_647_400,
        "D": 138_365_992,
        "E": 143_678_248,
    }
    for name in CONFIGS:
        layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in on_meta(name).modules())
        assert layers == PAPER_WEIGHT_LAYERS[name]
    assert with_bn["D"] - 138_357_544 == 8_448


def test_error_messages_name_the_valid_values():
    with pytest.raises(KeyError) as error:
        vgg("VGG16")
    assert str(error.value) == (
        "\"unknown VGG configuration 'VGG16'; valid names are: A, A-LRN, B, C, D, E and the control B-5x5\""
    )
    small = vgg("A", width=1 / 8, fc_width=64, num_classes=10)
    with pytest.raises(ValueError, match=r"got 224 \(shape \(1, 224, 224, 3\)\); channels-last"):
        small(torch.zeros(1, 224, 224, 3))
    with pytest.raises(ValueError, match="for a single image use x.unsqueeze"):
        small(torch.zeros(3, 224, 224))


def test_init_from_a_copies_the_named_layers_and_nothing_else():
    torch.manual_seed(0)
    options = dict(width=1 / 16, fc_width=32, pooled_size=1, num_classes=10)
    a, e = vgg("A", **options), vgg("E", init="paper", **options)
    before = {name: conv.weight.clone() for name, conv in conv_names(e).items()}
    init_from_a(e, a)
    source, target = conv_names(a), conv_names(e)
    for name in FROM_A_CONVS:  # conv1_1, conv2_1, conv3_1, conv3_2: same names, same shapes in A and E
        assert torch.equal(target[name].weight, source[name].weight) and torch.equal(
            target[name].bias, source[name].bias
        )
    for name in set(target) - set(FROM_A_CONVS):  # conv1_2, conv2_2, conv3_3, ... keep their own start
        assert torch.equal(target[name].weight, before[name])
    linears = [(s, t) for s, t in zip(a.classifier, e.classifier) if isinstance(s, nn.Linear)]
    assert len(linears) == 3 and all(torch.equal(s.weight, t.weight) for s, t in linears)
    x, a, e = torch.randn(2, 3, 32, 32), a.eval(), e.eval()  # no dropout
    assert torch.equal(a.classifier(torch.ones(2, 32)), e.classifier(torch.ones(2, 32)))  # the same classifier
    assert e(x).shape == (2, 10)


def test_init_from_a_refuses_mismatched_shapes():
    a = vgg("A", width=1 / 16, fc_width=32, pooled_size=1, num_classes=10)
    with pytest.raises(ValueError, match="conv1_1"):
        init_from_a(vgg("D", width=1 / 8, fc_width=32, pooled_size=1, num_classes=10), a)
    with pytest.raises(ValueError, match="FC-1"):
        init_from_a(vgg("D", width=1 / 16, fc_width=64, pooled_size=1, num_classes=10), a)
