"""Parameters, multiply-accumulates, feature-map sizes and receptive fields, computed from :data:`CONFIGS` alone.

Nothing here builds a model: every figure follows from Table 1 and the layer arithmetic of §2.1 (3×3 convolutions
with padding 1 keep the spatial size, each 2×2 max-pool of stride 2 halves it). The tests check these counts
against the models that :mod:`torchvision` and this package build, and against ``torchinfo``.

Multiply-accumulates (MACs) follow torchinfo's convention, so the two can be compared number for number: a
convolution costs (weights + biases) × output positions, a fully connected layer costs its parameter count, and a
batch-norm layer its two parameters per channel. One MAC is two floating-point operations.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgg_tutorial.configs import (
    FC_WIDTHS,
    INPUT_CHANNELS,
    INPUT_SIZE,
    LRN,
    POOLED_SIZE,
    Conv,
    MaxPool,
    feature_layers,
)

#: Five max-pools halve the input five times; anything smaller than this has no pixel left after the last one.
MIN_INPUT_SIZE = 2**5


@dataclass(frozen=True)
class LayerStats:
    """One row of the accounting: a layer, the shape it outputs, what it costs and what it sees."""

    label: str  #: Table 1's name for the layer (``conv3-64``, ``maxpool``, ``FC-4096``, ...)
    block: int  #: 1 to 5 for the convolution blocks, 6 for the classifier
    channels: int  #: output channels (or features, for FC layers)
    size: int  #: output height = width (1 for FC layers)
    params: int  #: trainable parameters
    macs: int  #: multiply-accumulates for one image (torchinfo's convention)
    weight_macs: int  #: multiply-accumulates of the weights alone (torchvision's "GFLOPS" convention)
    receptive_field: int | None  #: input pixels (per side) one output unit sees; None for FC layers
    stride: int  #: distance in input pixels between neighbouring outputs ("jump")


def check_input_size(image_size: int) -> int:
    """Return ``image_size`` if five 2×2 poolings leave at least one pixel, else raise a ``ValueError``."""
    if image_size < MIN_INPUT_SIZE:
        raise ValueError(
            f"input of {image_size}×{image_size} pixels is too small for VGG: its five 2×2 max-poolings need at "
            f"least {MIN_INPUT_SIZE}×{MIN_INPUT_SIZE} pixels (the paper uses {INPUT_SIZE}×{INPUT_SIZE})"
        )
    return image_size


def layer_stats(
    name: str, *, batch_norm: bool = False, image_size: int = INPUT_SIZE, num_classes: int = 1000
) -> list[LayerStats]:
    """Per-layer accounting of configuration ``name`` for one ``image_size``×``image_size`` RGB image.

    ReLUs are left out (no parameters, no MACs). With ``batch_norm`` a ``BN`` row follows every convolution, as in
    torchvision's ``vgg*_bn`` models. The adaptive average pool that brings the last feature map to 7×7 is
    listed as ``avgpool``; at 224 px it leaves the 7×7 map as it is.
    """
    size = check_input_size(image_size)
    channels, block, rf, jump = INPUT_CHANNELS, 1, 1, 1
    rows: list[LayerStats] = []
    for layer in feature_layers(name):
        if isinstance(layer, Conv):
            params = layer.kernel**2 * channels * layer.channels + layer.channels
            channels = layer.channels
            rf += (layer.kernel - 1) * jump
            rows.append(
                LayerStats(
                    f"conv{layer.kernel}-{channels}",
                    block,
                    channels,
                    size,
                    params,
                    params * size**2,
                    (params - channels) * size**2,
                    rf,
                    jump,
                )
            )
            if batch_norm:
                rows.append(LayerStats("BN", block, channels, size, 2 * channels, 2 * channels, 0, rf, jump))
        elif isinstance(layer, LRN):
            rows.append(LayerStats("LRN", block, channels, size, 0, 0, 0, rf, jump))
        elif isinstance(layer, MaxPool):
            rf += (layer.kernel - 1) * jump
            jump *= layer.stride
            size //= layer.stride
            rows.append(LayerStats("maxpool", block, channels, size, 0, 0, 0, rf, jump))
            block += 1
    rows.append(LayerStats("avgpool", block, channels, POOLED_SIZE, 0, 0, 0, None, jump))
    features = channels * POOLED_SIZE**2
    for width in (*FC_WIDTHS, num_classes):
        params = features * width + width
        rows.append(LayerStats(f"FC-{width}", block, width, 1, params, params, params - width, None, jump))
        features = width
    return rows


def count_parameters(name: str, *, batch_norm: bool = False, num_classes: int = 1000) -> int:
    """Trainable parameters of configuration ``name`` (independent of the input size, thanks to the 7×7 pool)."""
    return sum(row.params for row in layer_stats(name, batch_norm=batch_norm, num_classes=num_classes))


def count_macs(
    name: str,
    *,
    batch_norm: bool = False,
    image_size: int = INPUT_SIZE,
    num_classes: int = 1000,
    weights_only: bool = False,
) -> int:
    """Multiply-accumulates of one forward pass on one image.

    By default in torchinfo's convention (see the module docstring); with ``weights_only`` only the products of
    weights and inputs are counted, the convention of the "GFLOPS" figures in torchvision's weights metadata.
    """
    rows = layer_stats(name, batch_norm=batch_norm, image_size=image_size, num_classes=num_classes)
    return sum(row.weight_macs if weights_only else row.macs for row in rows)


def receptive_field(name: str) -> int:
    """Receptive field, in input pixels per side, of one unit of the last convolution of configuration ``name``."""
    return [row for row in layer_stats(name) if row.label.startswith("conv")][-1].receptive_field


def stack_receptive_field(kernels: list[int] | tuple[int, ...]) -> int:
    """Receptive field of a stack of stride-1 convolutions with the given kernel sizes (§2.3).

    Each k×k layer widens the field by k − 1 pixels: two 3×3 layers see 5×5, three see 7×7.
    """
    return 1 + sum(kernel - 1 for kernel in kernels)


def measured_receptive_field(module, image_size: int = 33) -> int:
    """Receptive field of ``module``'s central output unit, *measured* by back-propagation rather than a formula.

    The gradient of one output unit with respect to the input is non-zero exactly on the pixels that unit sees; the
    width of that patch is the receptive field. Weights are set to one so that no gradient cancels by chance.
    """
    import copy

    import torch

    probe = copy.deepcopy(module).double()
    with torch.no_grad():
        for param in probe.parameters():
            param.fill_(1.0)
    first_conv = next(m for m in probe.modules() if isinstance(m, torch.nn.Conv2d))
    image = torch.ones(1, first_conv.in_channels, image_size, image_size, dtype=torch.double, requires_grad=True)
    out = probe(image)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    seen_columns = image.grad[0, 0].abs().sum(dim=0).nonzero()
    return int(seen_columns.max() - seen_columns.min() + 1)
