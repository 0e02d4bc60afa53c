"""Checks that learners run on their own code, each saying precisely what is wrong, or that all is right.

Every check follows one design, chosen for notebooks:

- **Right**: it prints one short line that starts with ``✓`` and returns ``True``.
- **Wrong**: it raises :class:`ExerciseError`, a subclass of ``AssertionError``, whose message names the layer,
  configuration or number that differs, shows what was expected and what was received, and suggests the usual cause.
  Raising (rather than printing and returning ``False``) stops "Run all" at the first unfinished exercise, marks
  the cell red, and lets ``pytest`` and ``nbval`` treat a failing check like any failing ``assert``.
- **Not written yet**: a function that still raises ``NotImplementedError`` (the stub of the student edition) gives
  an :class:`ExerciseError` that says so, not a traceback.

The references come from the package's single sources of truth: models from :func:`vgg_tutorial.models.vgg`
(layer for layer ``torchvision.models.vgg16``), counts from :mod:`vgg_tutorial.accounting`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from vgg_tutorial.accounting import count_macs, count_parameters, receptive_field, training_flops
from vgg_tutorial.configs import (
    CONFIGS,
    FC_WIDTHS,
    INPUT_CHANNELS,
    INPUT_SIZE,
    POOLED_SIZE,
    Conv,
    MaxPool,
    feature_layers,
)
from vgg_tutorial.models import make_features, vgg

#: Channels of the last feature map in every configuration of Table 1 (its last convolution).
LAST_CHANNELS = feature_layers("D")[-2].channels

#: Table 1's VGG-16 (configuration D) has this many parameters: 138,357,544 (torchvision's ``vgg16``).
VGG16_PARAMETERS = count_parameters("D")

#: Layers whose hyper-parameters define VGG's structure; activations and dropout are checked by behaviour.
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


class ExerciseError(AssertionError):
    """Raised by a check when the learner's code differs from the reference; the message says where and how."""


def passed(message: str) -> bool:
    """Print the congratulation of a passed check and return ``True``."""
    print(f"✓ {message}")
    return True


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    """Turn an exception in the learner's code into an :class:`ExerciseError` that says what was being called."""
    __tracebackhide__ = True
    try:
        yield
    except ExerciseError:
        raise
    except NotImplementedError:
        raise ExerciseError(
            f"{what} is not written yet: it still raises NotImplementedError. Replace the stub with your code "
            "and run the check again."
        ) from None
    except Exception as error:  # the learner's code can fail in any way; say which call failed, keep the cause
        raise ExerciseError(f"{what} raised {type(error).__name__}: {error}") from error


def _reference_model(name: str = "D") -> nn.Module:
    """The reference network of configuration ``name`` on the meta device (shapes only, no memory, no init cost)."""
    with torch.device("meta"):
        return vgg(name)


def _reference_features(name: str, batch_norm: bool) -> nn.Sequential:
    """The reference ``features`` of configuration ``name`` (the builder's, in torchvision's layout)."""
    with torch.device("meta"):
        return make_features(name, batch_norm=batch_norm)


def _padding(module: nn.Conv2d) -> tuple[int, ...]:
    if module.padding == "same":
        return tuple(k // 2 for k in module.kernel_size)
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    return tuple(module.padding)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def signature(module: nn.Module) -> tuple:
    """What must match for two layers to be "the same layer": type and hyper-parameters, not weights."""
    if isinstance(module, nn.Conv2d):
        return (
            "Conv2d",
            module.in_channels,
            module.out_channels,
            tuple(module.kernel_size),
            tuple(module.stride),
            _padding(module),
            module.bias is not None,
        )
    if isinstance(module, nn.Linear):
        return ("Linear", module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, nn.BatchNorm2d):
        return ("BatchNorm2d", module.num_features, module.affine)
    if isinstance(module, nn.MaxPool2d):
        return (
            "MaxPool2d",
            _pair(module.kernel_size),
            _pair(module.stride or module.kernel_size),
            _pair(module.padding),
        )
    if isinstance(module, nn.LocalResponseNorm):
        return ("LocalResponseNorm", module.size, module.alpha, module.beta, module.k)
    if isinstance(module, nn.ReLU):
        return ("ReLU",)
    return (type(module).__name__,)


def _difference_hint(expected: nn.Module, got: nn.Module) -> str:
    """A likely cause for the first difference between two layers."""
    if isinstance(expected, nn.Conv2d) and isinstance(got, nn.Conv2d):
        if _padding(got) != _padding(expected):
            return (
                f" Use padding={_padding(expected)[0]}: a {expected.kernel_size[0]}×{expected.kernel_size[0]} "
                "convolution with padding 1 keeps the spatial size, only the max-pools halve it (§2.1)."
            )
        if got.in_channels != expected.in_channels:
            return " Each convolution's in_channels must equal the previous convolution's out_channels."
        if (got.bias is None) != (expected.bias is None):
            return " The paper's layers have biases (bias=True, PyTorch's default)."
        return " Compare with the configuration's column in Table 1 (vgg_tutorial.CONFIGS)."
    if isinstance(expected, nn.Linear) and isinstance(got, nn.Linear):
        if got.in_features != expected.in_features:
            return (
                f" The first FC layer reads the last feature map flattened: {LAST_CHANNELS}·{POOLED_SIZE}·{POOLED_SIZE}"
                f" = {expected.in_features:,} numbers per image."
                if expected.in_features == LAST_CHANNELS * POOLED_SIZE**2
                else " Each FC layer's in_features must equal the previous layer's out_features."
            )
        return f" Table 1's classifier is FC-4096, FC-4096, FC-1000; this layer should have {expected.out_features}."
    if isinstance(expected, nn.LocalResponseNorm) and isinstance(got, nn.LocalResponseNorm):
        return (
            " PyTorch's LocalResponseNorm divides alpha by size; AlexNet's α=1e-4 over n=5 channels is "
            "alpha=5e-4 here (see vgg_tutorial.models.alexnet_lrn)."
        )
    return ""


def _describe(module: nn.Module) -> str:
    """PyTorch's description of a layer, with a convolution's padding always spelled out (its repr omits 0)."""
    if isinstance(module, nn.Conv2d):
        bias = "" if module.bias is not None else ", bias=False"
        return (
            f"Conv2d({module.in_channels}, {module.out_channels}, kernel_size={tuple(module.kernel_size)}, "
            f"stride={tuple(module.stride)}, padding={_padding(module)}{bias})"
        )
    return repr(module).replace("\n", " ")


def _instantiate(model_or_class) -> nn.Module:
    """The learner's model: ``model_or_class`` itself if it is a module, else what calling it returns."""
    __tracebackhide__ = True
    model = model_or_class
    if not isinstance(model, nn.Module) and callable(model):
        with _calling(f"building your model ({getattr(model, '__name__', 'it')}())"):
            model = model()
    if not isinstance(model, nn.Module):
        raise ExerciseError(f"expected an nn.Module (or a class that builds one), got {type(model).__name__}")
    return model


@dataclass
class _Call:
    """One call of a weight layer during a forward pass, recorded before the layer runs."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    input_has_negatives: bool


def _trace(model: nn.Module, x: torch.Tensor) -> tuple[list[_Call], torch.Tensor | None, Exception | None]:
    """Run ``model`` on ``x`` and record, in execution order, every weight layer called and its input.

    Pre-hooks record a layer even when it is the one that fails, so a shape error can be traced to its layer.
    Returns the calls, the output (``None`` if the forward raised) and the exception, if any.
    """
    names = {module: name for name, module in model.named_modules()}
    calls: list[_Call] = []

    def record(module, inputs):
        tensor = inputs[0]
        negatives = bool((tensor < 0).any()) if tensor.device.type != "meta" else False
        calls.append(_Call(names[module], module, tuple(tensor.shape), negatives))

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    output, error = None, None
    try:
        with torch.no_grad():
            output = model(x)
    except NotImplementedError:
        raise ExerciseError(
            "your model's forward is not written yet: it still raises NotImplementedError. Replace the stub with "
            "your code and run the check again."
        ) from None
    except Exception as caught:  # report after comparing the layers that did run
        error = caught
    finally:
        for handle in handles:
            handle.remove()
    return calls, output, error


def _shape_hint(expected: tuple[int, ...], got: tuple[int, ...]) -> str:
    if len(expected) == 2 and len(got) == 2 and got[0] != expected[0] and got[0] * got[1] == expected[0] * expected[1]:
        return (
            f" The batch dimension was lost: {expected[0]} images came in but {got[0]} rows came out of the "
            "flattening. Flatten with torch.flatten(x, 1) (or x.view(x.size(0), -1)), never with a fixed batch size."
        )
    if len(expected) == 4 and len(got) == 4 and expected[1] == got[1] and got[2] != expected[2]:
        if got[2] > expected[2]:
            return " The map is too large: is a max-pooling missing at the end of the previous block?"
        return " The map is too small: an extra pooling, or a convolution without padding=1, shrank it."
    return ""


def check_vgg16(model_or_class, *, batch_size: int = 2) -> bool:
    """Check a hand-written VGG-16 (Table 1, configuration D) against the reference, layer by layer.

    ``model_or_class`` is a model, or a class (or function) that builds one with no arguments. The check runs one
    forward pass on ``batch_size`` random 224×224 images, then compares, in the order they run: the convolutions and
    FC layers (type, channels, kernel, padding, bias), the shape of each one's input (max-pooling, flattening), that
    a ReLU follows every hidden layer (its successor's input has no negative values), the output (logits of shape
    ``(batch_size, 1000)``, not probabilities) and the parameter count, 138,357,544.
    """
    __tracebackhide__ = True
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _instantiate(model_or_class)
        x = torch.randn(batch_size, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)
    reference = _reference_model("D")
    expected, _, _ = _trace(reference, x.to("meta"))
    was_training = model.training
    model.eval()  # dropout off, so that outputs are deterministic
    try:
        calls, output, error = _trace(model, x)
    finally:
        model.train(was_training)

    for index, want in enumerate(expected):
        position = f"weight layer {index + 1} of {len(expected)}"
        if index >= len(calls):
            stopped = f" Your forward raised {type(error).__name__}: {error}" if error else ""
            raise ExerciseError(
                f"{position} never ran: expected {_describe(want.module)}, but your forward called only "
                f"{len(calls)} convolution/FC layers.{stopped}"
            )
        got = calls[index]
        if signature(got.module) != signature(want.module):
            raise ExerciseError(
                f"{position} (your '{got.name}') differs: expected {_describe(want.module)}, got "
                f"{_describe(got.module)}.{_difference_hint(want.module, got.module)}"
            )
        if got.input_shape != want.input_shape:
            raise ExerciseError(
                f"the input of {position} (your '{got.name}', {_describe(got.module)}) has shape {got.input_shape}, "
                f"expected {want.input_shape}.{_shape_hint(want.input_shape, got.input_shape)}"
            )
        if index > 0 and got.input_has_negatives:
            previous = calls[index - 1]
            raise ExerciseError(
                f"the input of {position} (your '{got.name}') has negative values, so no ReLU follows the layer "
                f"before it ('{previous.name}', {_describe(previous.module)}). Every hidden layer is followed by a "
                "ReLU (§2.1)."
            )
    if len(calls) > len(expected):
        extra = calls[len(expected)]
        raise ExerciseError(
            f"your forward calls {len(calls)} convolution/FC layers, VGG-16 has {len(expected)}: the first extra one "
            f"is '{extra.name}', {_describe(extra.module)}."
        )
    if error is not None:
        raise ExerciseError(
            f"all 16 weight layers match, but your forward then raised {type(error).__name__}: {error}"
        ) from error

    shape = (batch_size, 1000)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != shape:
        got_shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ExerciseError(f"your forward returns {got_shape} for a batch of {batch_size} images, expected {shape}.")
    if bool((output >= 0).all()) and torch.allclose(output.sum(dim=1), torch.ones(batch_size), atol=1e-4):
        raise ExerciseError(
            "your forward returns probabilities, not logits: the rows sum to 1. Remove the softmax; "
            "nn.CrossEntropyLoss applies log-softmax itself, and at test time take softmax outside the model."
        )
    if bool((output >= 0).all()):
        raise ExerciseError(
            "your forward's outputs are all ≥ 0: a ReLU follows the last FC layer. Logits must be free to be "
            "negative; the last layer (FC-1000) has no ReLU."
        )

    params = sum(p.numel() for p in model.parameters())
    if params != VGG16_PARAMETERS:
        raise ExerciseError(
            f"your model has {params:,} parameters, VGG-16 has {VGG16_PARAMETERS:,} (a difference of "
            f"{params - VGG16_PARAMETERS:+,}): is a layer registered that the forward never uses?"
        )
    dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    if dropouts and dropouts != [0.5, 0.5]:
        raise ExerciseError(
            f"your model has dropout rates {dropouts}; the paper uses dropout 0.5 after each of the first two FC "
            "layers (§3.1)."
        )
    note = "" if dropouts else " (No nn.Dropout module: if you use F.dropout, pass training=self.training.)"
    return passed(
        f"Your VGG-16 matches Table 1's configuration D layer for layer: 13 convolutions and 3 FC layers, "
        f"{params:,} parameters, logits of shape {shape}.{note}"
    )


def _leaf_modules(built) -> list[nn.Module]:
    """The layers a builder returned, in order, whether it returned a Sequential, nested blocks or a list."""
    modules = list(built) if isinstance(built, (list, tuple)) else [built]
    leaves: list[nn.Module] = []
    for module in modules:
        if not isinstance(module, nn.Module):
            raise ExerciseError(f"your builder returned a {type(module).__name__} where a layer (nn.Module) belongs")
        children = list(module.children())
        leaves.extend(_leaf_modules(children) if children else [module])
    return leaves


def check_layer_builder(fn: Callable, *, names: Iterable[str] | None = None) -> bool:
    """Check ``fn(config, batch_norm)``, a learner's ``make_layers``, against the reference for every configuration.

    ``config`` is a column of Table 1 as the package holds it, ``vgg_tutorial.CONFIGS[name]`` (a tuple of blocks of
    ``"conv3-64"``-style strings); ``fn`` returns the convolutional part as an ``nn.Sequential`` (or a list of
    layers) in torchvision's order: convolution, optional ``BatchNorm2d``, ``ReLU``; ``MaxPool2d(2, 2)`` closing every
    block; A-LRN's LRN after the first ReLU. ``names`` restricts the configurations (default: all of Table 1).
    """
    __tracebackhide__ = True
    names = list(CONFIGS if names is None else names)
    for name in names:
        for batch_norm in (False, True):
            where = f"configuration {name} with batch_norm={batch_norm}"
            with torch.random.fork_rng(), _calling(f"your builder on {where}"):
                built = fn(CONFIGS[name], batch_norm)
            got = _leaf_modules(built)
            want = _leaf_modules(_reference_features(name, batch_norm))
            for index, (g, w) in enumerate(zip(got, want)):
                if signature(g) != signature(w):
                    raise ExerciseError(
                        f"{where}: layer {index} differs: expected {_describe(w)}, got {_describe(g)}."
                        f"{_difference_hint(w, g)}"
                    )
            if len(got) != len(want):
                first = (
                    f"the first missing one is {_describe(want[len(got)])}"
                    if len(got) < len(want)
                    else f"the first extra one is {_describe(got[len(want)])}"
                )
                raise ExerciseError(
                    f"{where}: your builder returned {len(got)} layers, the reference {len(want)}; {first}."
                )
    return passed(
        f"Your layer builder matches the reference for configurations {', '.join(names)}, with and without batch "
        "normalisation."
    )


def _receptive_field_variants(name: str) -> dict[int, str]:
    """Receptive fields that common slips produce, with the slip, to recognise them in a wrong answer."""
    convs = [layer for layer in feature_layers(name) if isinstance(layer, (Conv, MaxPool))][:-1]  # up to last conv
    no_jump = 1 + sum((layer.kernel - 1) for layer in convs)
    no_pool_growth, jump = 1, 1
    for layer in convs:
        if isinstance(layer, Conv):
            no_pool_growth += (layer.kernel - 1) * jump
        else:
            jump *= layer.stride
    right = receptive_field(name)
    return {
        right - 1: "off by one: a single pixel already sees 1 pixel, so start from 1, not 0",
        right + 1: "off by one: a k×k layer widens the field by k − 1 pixels, not k",
        no_jump: "each layer's growth must be multiplied by the product of the strides before it (the 'jump')",
        no_pool_growth: "a 2×2 max-pool widens the field too, by (2 − 1) × jump, before doubling the jump",
    }


def check_receptive_field(fn: Callable[[str], int]) -> bool:
    """Check ``fn(name)``, the receptive field of the last convolution of configuration ``name``, for all of Table 1.

    The reference is :func:`vgg_tutorial.accounting.receptive_field` (pixels per side of the input patch one unit
    of the last convolution sees; 196 for configuration D).
    """
    __tracebackhide__ = True
    for name in CONFIGS:
        with _calling(f"your function on configuration {name!r}"):
            got = fn(name)
        want = receptive_field(name)
        if got != want:
            hint = _receptive_field_variants(name).get(got, "")
            raise ExerciseError(
                f"configuration {name}: your receptive field is {got}, the reference is {want} pixels per side"
                + (f": {hint}." if hint else ".")
            )
    fields = ", ".join(f"{name} {receptive_field(name)}" for name in CONFIGS)
    return passed(f"Your receptive fields match for every configuration ({fields} pixels).")


def _count_hints(name: str, batch_norm: bool, got: int) -> str:
    """The usual reason for a wrong parameter count, recognised from the size of the difference."""
    convs = [layer for layer in feature_layers(name) if isinstance(layer, Conv)]
    biases = sum(layer.channels for layer in convs) + sum(FC_WIDTHS) + 1000  # 1000 ImageNet classes
    bn_params = 2 * sum(layer.channels for layer in convs)
    diff = got - count_parameters(name, batch_norm=batch_norm)
    if diff == -biases:
        return " That is exactly the number of biases: every convolution and FC layer has one bias per output."
    if batch_norm and diff == bn_params:
        return (
            " That is 2 per BN channel too many: the running mean and variance are buffers, not trainable "
            "parameters; count only the scale and shift."
        )
    if batch_norm and diff == -bn_params:
        return " That is exactly the batch-norm layers' scale and shift (2 per channel): count them too."
    if name == "C" and diff > 0 and diff % (8 * 256) == 0:
        return " Configuration C's conv1 layers are 1×1: 1·1·C_in·C_out weights, not 3·3·C_in·C_out."
    return ""


def check_param_count(fn: Callable) -> bool:
    """Check ``fn(name, batch_norm=...)``, a learner's parameter count, for every configuration with and without BN.

    The reference is :func:`vgg_tutorial.accounting.count_parameters` (1000 classes), which the test suite checks
    against torchvision's models and Table 2.
    """
    __tracebackhide__ = True
    for name in CONFIGS:
        for batch_norm in (False, True):
            with _calling(f"your function on configuration {name!r} with batch_norm={batch_norm}"):
                got = fn(name, batch_norm=batch_norm)
            want = count_parameters(name, batch_norm=batch_norm)
            if got != want:
                raise ExerciseError(
                    f"configuration {name} with batch_norm={batch_norm}: you count {got:,} parameters, the "
                    f"reference is {want:,} (a difference of {got - want:+,}).{_count_hints(name, batch_norm, got)}"
                )
    return passed(
        f"Your parameter counts match for all {len(CONFIGS)} configurations, with and without batch normalisation "
        f"(VGG-16: {VGG16_PARAMETERS:,})."
    )


def _small_vgg(num_classes: int = 5) -> nn.Module:
    """A narrow configuration-A network with the paper's 7×7 pooled map, for checks that need real numbers."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return vgg("A", width=1 / 16, fc_width=32, num_classes=num_classes).eval()


def _score_map(model: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
    """The class score map of a converted model: its ``score_map(x)`` if it has one, else its output."""
    __tracebackhide__ = True
    with torch.no_grad(), _calling(f"your converted model on a {size}×{size} image"):
        return model.score_map(x) if hasattr(model, "score_map") else model(x)


def check_dense_conversion(fn: Callable[[nn.Module], nn.Module]) -> bool:
    """Check ``fn(model)``, a learner's FC → convolution conversion for dense evaluation (§3.2).

    ``fn`` gets a small VGG (configuration A, 1/16 of the width, 5 classes, the paper's 7×7 pooled map) and returns
    a fully convolutional model. Its score map (``score_map(x)`` if it has that method, else its output) must be
    ``(1, 5, 1, 1)`` on a 224×224 image, equal to the original logits, and ``(1, 5, 6, 6)`` on a 384×384 image:
    384 / 32 = 12 positions per side, and a 7×7 window fits 12 − 7 + 1 = 6 times.
    """
    __tracebackhide__ = True
    model = _small_vgg()
    generator = torch.Generator().manual_seed(0)
    small = torch.randn(1, INPUT_CHANNELS, 224, 224, generator=generator)
    large = torch.randn(1, INPUT_CHANNELS, 384, 384, generator=generator)
    with torch.no_grad():
        logits = model(small)
    with torch.random.fork_rng(), _calling("your conversion"):
        dense = fn(model)
    if not isinstance(dense, nn.Module):
        raise ExerciseError(f"your conversion returned a {type(dense).__name__}, expected an nn.Module")
    dense.eval()
    linears = [name for name, m in dense.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        raise ExerciseError(
            f"your converted model still has Linear layers ({', '.join(linears)}): every FC layer becomes a "
            "convolution, the first a 7×7 one and the other two 1×1 (§3.2)."
        )
    pools = [name for name, m in dense.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if pools:
        raise ExerciseError(
            f"your converted model keeps an adaptive average pool ('{pools[0]}'): it would squeeze every image to "
            "7×7 and the score map to 1×1. Dense evaluation slides the classifier over the whole feature map."
        )
    scores = _score_map(dense, small, 224)
    if scores.dim() != 4:
        raise ExerciseError(
            f"your converted model returns shape {tuple(scores.shape)} on a 224×224 image; a class score map has "
            "shape (batch, classes, height, width), here (1, 5, 1, 1). Return the map from forward, or give the "
            "model a score_map(x) method."
        )
    if tuple(scores.shape) != (1, 5, 1, 1):
        raise ExerciseError(f"on a 224×224 image your score map has shape {tuple(scores.shape)}, expected (1, 5, 1, 1)")
    if not torch.allclose(scores.flatten(1), logits, rtol=1e-4, atol=1e-5):
        gap = (scores.flatten(1) - logits).abs().max().item()
        raise ExerciseError(
            f"on a 224×224 image your scores differ from the original model's logits by up to {gap:.3g}. Copy the "
            "weights unchanged: the first FC weight reshapes to (out, channels, 7, 7), the order in which "
            "torch.flatten laid out (channels, height, width); biases stay as they are."
        )
    scores = _score_map(dense, large, 384)
    if tuple(scores.shape) != (1, 5, 6, 6):
        raise ExerciseError(
            f"on a 384×384 image your score map has shape {tuple(scores.shape)}, expected (1, 5, 6, 6): the "
            "12×12 feature map holds 6×6 positions of the 7×7 window."
        )
    return passed(
        "Your conversion gives the original logits on a 224×224 image and a 6×6 class score map on a 384×384 one."
    )


def _training_setup() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """A tiny network with batch normalisation (so train and eval mode differ) and one batch for it."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 4, kernel_size=3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )
        images, labels = torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,))
        for param in model.parameters():  # what the previous step left behind, unless zero_grad clears it
            param.grad = torch.randn_like(param)
    return model, (images, labels)


def check_training_step(fn: Callable) -> bool:
    """Check ``fn(model, batch, optimizer)``, one step of mini-batch SGD on the cross-entropy loss (§3.1).

    ``batch`` is ``(images, labels)``. The step must put the model in training mode, clear the gradients the
    previous step left, compute ``nn.CrossEntropyLoss`` on the model's logits, back-propagate, update the parameters
    with ``optimizer.step()``, and return the loss as a Python ``float`` (``loss.item()``).
    """
    __tracebackhide__ = True
    lr = 0.1
    model, (images, labels) = _training_setup()
    model.eval()  # a step must switch to training mode itself
    before = [p.detach().clone() for p in model.parameters()]
    stale = [p.grad.clone() for p in model.parameters()]

    reference = copy.deepcopy(model).train()
    loss = nn.functional.cross_entropy(reference(images), labels)
    fresh = torch.autograd.grad(loss, list(reference.parameters()))
    right = [p - lr * g for p, g in zip(before, fresh)]
    no_zero_grad = [p - lr * (g + s) for p, g, s in zip(before, fresh, stale)]

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with torch.random.fork_rng(), _calling("your training step"):
        returned = fn(model, (images, labels), optimizer)
    after = [p.detach() for p in model.parameters()]

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(a, b))

    if not model.training:
        raise ExerciseError(
            "after your step the model is in evaluation mode: call model.train() at the start of the step, so that "
            "dropout and batch normalisation behave as in training."
        )
    if same(after, before):
        raise ExerciseError(
            "your step did not change the parameters: call loss.backward() and then optimizer.step(), and call "
            "optimizer.zero_grad() before backward, not between backward and step."
        )
    if same(after, no_zero_grad):
        raise ExerciseError(
            "your step added the new gradients to those of the previous step: PyTorch accumulates gradients, so "
            "call optimizer.zero_grad() before loss.backward()."
        )
    if not same(after, right):
        raise ExerciseError(
            "your step changed the parameters, but not as one SGD step on nn.CrossEntropyLoss of the model's "
            "logits would: compute the loss on the raw outputs (no softmax) against the labels, then backward "
            "and step once."
        )
    if isinstance(returned, torch.Tensor):
        raise ExerciseError(
            "your step returns a tensor; return loss.item(), a Python float, so that the graph can be freed and "
            "the number logged."
        )
    if not isinstance(returned, float):
        raise ExerciseError(f"your step returns {type(returned).__name__}; return the loss as a float (loss.item())")
    if abs(returned - loss.item()) > 1e-4 * max(1.0, abs(loss.item())):
        raise ExerciseError(
            f"your step returns {returned:.4f}, but the cross-entropy of this batch before the update is "
            f"{loss.item():.4f}: return the loss you back-propagated."
        )
    return passed(
        "Your training step switches to training mode, clears old gradients, back-propagates, updates the "
        "parameters and returns the loss as a float."
    )


def _as_number(value, what: str) -> float:
    """A learner's numeric answer as a float: a Python number, or a tensor holding one number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExerciseError(f"{what} returns a {type(value).__name__}; return a number (a float or an int)")
    return float(value)


def _chance_loss_slips(num_classes: int) -> dict[float, str]:
    """What typical slips return for ``num_classes`` classes, with the slip, to recognise them in a wrong answer."""
    k = num_classes
    return {
        math.log10(k): "you used log base 10; the cross-entropy uses the natural logarithm (math.log, torch.log)",
        math.log2(k): "you used log base 2 (bits); the cross-entropy uses the natural logarithm (math.log, torch.log)",
        1 / k: "that is the probability each class gets; the loss is −ln of that probability",
        1 - 1 / k: "that is the error rate of guessing, not a loss; the loss is −ln of the probability 1/K",
        -math.log(k): "the sign is wrong: ln(1/K) is negative, and the loss is −ln(1/K) = ln K",
        float(k): "that is the number of classes itself; the loss is −ln(1/K)",
    }


def check_chance_loss(fn: Callable[[int], float]) -> bool:
    """Check ``fn(num_classes)``: the cross-entropy loss of a classifier that predicts the uniform distribution.

    Every class gets probability 1/K, so the loss is −ln(1/K) = ln K for whichever class is right: 2.303 for 10
    classes, 6.908 for the 1,000 classes of ImageNet (§3.1 trains on this loss). A loss stuck at that value means
    the network's outputs do not depend on the image. Tried for K = 10, 2 and 1000.
    """
    __tracebackhide__ = True
    results = {}
    for k in (10, 2, 1000):
        with _calling(f"your function on num_classes={k}"):
            got = fn(k)
        got = _as_number(got, f"your function on num_classes={k}")
        want = math.log(k)
        if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            slip = next((text for value, text in _chance_loss_slips(k).items() if math.isclose(got, value)), "")
            if not slip and results and any(math.isclose(got, math.log(other)) for other in results):
                slip = "it equals the loss for another number of classes: does your function use num_classes?"
            raise ExerciseError(
                f"for {k} classes your chance loss is {got:.4g}, expected ln {k} = {want:.4f}"
                + (f": {slip}." if slip else ".")
            )
        results[k] = got
    return passed(
        f"Your chance loss is ln K: {results[2]:.3f} for 2 classes, {results[10]:.3f} for 10, {results[1000]:.3f} "
        "for 1000. A loss stuck at ln K means the model predicts the same uniform distribution for every image."
    )


def _flops_slips(name: str, image_size: int, num_classes: int, reference: Callable[..., int]) -> dict[int, str]:
    """Training FLOPs that common slips give, with the slip, to recognise them in a wrong answer."""
    right = reference(name, image_size, num_classes)
    macs = count_macs(name, image_size=image_size, num_classes=num_classes, weights_only=True)
    torchinfo_macs = count_macs(name, batch_norm=True, image_size=image_size, num_classes=num_classes)
    return {
        right // 2: "a multiply-accumulate (MAC) is two FLOPs, a multiplication and an addition: multiply by 2",
        right // 3: "that is the forward pass alone; the backward pass costs about twice the forward, so a training "
        "step is 3 × the forward FLOPs",
        macs: "that is the forward pass's MACs: multiply by 2 (FLOPs per MAC) and by 3 (forward plus backward)",
        6 * torchinfo_macs: "that is torchinfo's convention, which also counts biases and batch norm; count only the "
        "products of weights and inputs (count_macs(..., weights_only=True))",
        reference(name, INPUT_SIZE, num_classes): "that is the count at 224 px: the convolutions' cost grows with the "
        "number of positions, so use image_size",
        reference(name, image_size, 1000): "that is the count for 1000 classes: the last FC layer has num_classes "
        "outputs",
    }


def check_training_flops(fn: Callable[[str, int, int], int]) -> bool:
    """Check ``fn(name, image_size, num_classes)``: FLOPs of one training step per image, the benchmark's convention.

    Forward FLOPs are 2 × the multiply-accumulates of the weights alone (each weight times its input, at every output
    position; biases, batch norm, ReLU and pooling are left out, torchvision's "GFLOPS" convention), and a training
    step is 3 × the forward: the backward pass computes the gradients with respect to the inputs and to the weights,
    each as costly as the forward. The reference is :func:`vgg_tutorial.accounting.training_flops` (batch norm adds no
    weight products, so it does not change the count). Tried on D at 224 px with 1000 classes, and on other
    configurations and sizes with 10 classes, as in the benchmark.
    """
    __tracebackhide__ = True

    def reference(name: str, image_size: int, num_classes: int) -> int:
        return training_flops(name, batch_norm=True, image_size=image_size, num_classes=num_classes)

    cases = (("D", 224, 1000), ("D", 160, 10), ("A", 224, 10), ("C", 96, 10), ("E", 64, 10))
    for name, image_size, num_classes in cases:
        where = f"configuration {name} at {image_size} px with {num_classes} classes"
        with _calling(f"your function on {where}"):
            got = fn(name, image_size, num_classes)
        got = _as_number(got, f"your function on {where}")
        want = reference(name, image_size, num_classes)
        if not math.isclose(got, want, rel_tol=1e-9):
            slips = _flops_slips(name, image_size, num_classes, reference)
            slip = next((text for value, text in slips.items() if math.isclose(got, value, rel_tol=1e-9)), "")
            if not slip and math.isclose(got, want, rel_tol=0.01):
                slip = "close but not equal: are biases or batch norm counted, or is a layer's output size off?"
            raise ExerciseError(
                f"{where}: you count {got:,.0f} FLOPs per training image, the reference is {want:,} "
                f"({got / want:.3f} times it)" + (f": {slip}." if slip else ".")
            )
    d224 = reference("D", 224, 1000)
    return passed(
        f"Your training FLOPs match the benchmark's convention for {len(cases)} configurations and sizes "
        f"(VGG-16 at 224 px: {d224 / 1e9:.1f} GFLOPs per image)."
    )
