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
    POOLED_SIZE,
    Conv,
    LRN,
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
                LayerStats(f"conv{layer.kernel}-{channels}", block, channels, size, params, params * size**2, rf, jump)
            )
            if batch_norm:
                rows.append(LayerStats("BN", block, channels, size, 2 * channels, 2 * channels, rf, jump))
        elif isinstance(layer, LRN):
            rows.append(LayerStats("LRN", block, channels, size, 0, 0, rf, jump))
        elif isinstance(layer, MaxPool):
            rf += (layer.kernel - 1) * jump
            jump *= layer.stride
            size //= layer.stride
            rows.append(LayerStats("maxpool", block, channels, size, 0, 0, rf, jump))
            block += 1
    rows.append(LayerStats("avgpool", block, channels, POOLED_SIZE, 0, 0, None, jump))
    features = channels * POOLED_SIZE**2
    for width in (*FC_WIDTHS, num_classes):
        params = features * width + width
        rows.append(LayerStats(f"FC-{width}", block, width, 1, params, params, None, jump))
        features = width
    return rows


def count_parameters(name: str, *, batch_norm: bool = False, num_classes: int = 1000) -> int:
    """Trainable parameters of configuration ``name`` (independent of the input size, thanks to the 7×7 pool)."""
    return sum(row.params for row in layer_stats(name, batch_norm=batch_norm, num_classes=num_classes))


def count_macs(
    name: str, *, batch_norm: bool = False, image_size: int = INPUT_SIZE, num_classes: int = 1000
) -> int:
    """Multiply-accumulates of one forward pass on one image (torchinfo's convention, see the module docstring)."""
    rows = layer_stats(name, batch_norm=batch_norm, image_size=image_size, num_classes=num_classes)
    return sum(row.macs for row in rows)


def receptive_field(name: str) -> int:
    """Receptive field, in input pixels per side, of one unit of the last convolution of configuration ``name``."""
    return [row for row in layer_stats(name) if row.label.startswith("conv")][-1].receptive_field
