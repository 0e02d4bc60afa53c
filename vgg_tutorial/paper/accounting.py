"""Parameters, multiply-accumulates, feature-map sizes and receptive fields, computed from :data:`CONFIGS` alone.

Nothing here builds a model: every figure follows from Table 1 and the layer arithmetic of §2.1 (3×3 convolutions
with padding 1 keep the spatial size, each 2×2 max-pool of stride 2 halves it). The tests check these counts
against the models that :mod:`torchvision` and this package build, and against ``torchinfo``.

Multiply-accumulates (MACs) follow torchinfo's convention, so the two can be compared number for number: a
convolution costs (weights + biases) × output positions, a fully connected layer costs its parameter count, and a
batch-norm layer its two parameters per channel. One MAC is two floating-point operations.

The cost of training follows from the same rows (chapter 7): FLOPs per training image (3 × 2 × the weight MACs: the
backward pass costs twice the forward), the model FLOPs utilisation (MFU) those FLOPs amount to on a GPU of known
peak, and the memory a training step holds. Two functions measure a model instead of reading the table, to check
the formulas: :func:`measured_receptive_field` and :func:`saved_activation_bytes`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from torch import nn

from vgg_tutorial.paper.configs import (
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
    listed as ``avgpool``; at 224 px it leaves the 7×7 map as it is, so its units see what the last max-pool's see
    (212 pixels per side for configuration D). The FC layers see the whole image (receptive field ``None``).
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
    # The adaptive pool's widest window: size / 7 positions when 7 divides the map (1 at 224 px, where it leaves the
    # map as it is), else the widest of its uneven windows. Its units see that many more positions of the map.
    window = max(-(-(i + 1) * size // POOLED_SIZE) - i * size // POOLED_SIZE for i in range(POOLED_SIZE))
    rf += (window - 1) * jump
    rows.append(LayerStats("avgpool", block, channels, POOLED_SIZE, 0, 0, 0, rf, jump))
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


# ---------------------------------------------------------------------------------------------------------------
# Training cost: FLOPs, model FLOPs utilisation (MFU) and memory, for chapter 7 and the benchmark
# ---------------------------------------------------------------------------------------------------------------

#: Dense (no 2:4 sparsity) tensor-core peaks in TFLOP/s, bf16 (fp16 on the T4, which has no bf16), from NVIDIA's
#: datasheets, whose headline figures are twice these "with sparsity". Matched against ``torch.cuda.get_device_name``
#: in this order, so the PCIe H100 is found before the SXM one. Names not listed (an H100 NVL, say) get no MFU.
GPU_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"H100.*PCIe", 756.0),
    (r"H100 80GB HBM3|H100 SXM", 989.0),
    (r"H200", 989.0),
    (r"A100", 312.0),
    (r"\bT4\b", 65.0),
)


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16/fp16 tensor-core peak of the GPU called ``device_name``, or None if it is not in the table."""
    for pattern, tflops in GPU_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops
    return None


def forward_flops(name: str, *, batch_norm: bool = True, image_size: int = 224, num_classes: int = 1000) -> int:
    """FLOPs of one forward pass on one image: 2 × ``count_macs(weights_only=True)``, the weight multiply-adds."""
    macs = count_macs(name, batch_norm=batch_norm, image_size=image_size, num_classes=num_classes, weights_only=True)
    return 2 * macs


def training_flops(name: str, **options) -> int:
    """FLOPs of one training step on one image: forward, plus a backward pass that costs twice the forward."""
    return 3 * forward_flops(name, **options)


def model_flops_utilisation(images_per_s: float, flops_per_image: float, peak: float | None) -> float | None:
    """Share of ``peak`` TFLOP/s that ``images_per_s`` training images at ``flops_per_image`` each amount to."""
    return None if peak is None else images_per_s * flops_per_image / (peak * 1e12)


def images_per_second_at(mfu: float, peak: float, flops_per_image: float) -> float:
    """Arithmetic, not measurement: the training images/s a GPU of ``peak`` TFLOP/s reaches at utilisation ``mfu``."""
    return mfu * peak * 1e12 / flops_per_image


def activation_bytes(name: str, *, batch_norm: bool = True, image_size: int = 224, element_bytes: int = 2) -> int:
    """An estimate of the bytes per image that autograd keeps for the backward pass, from the layer shapes.

    Counted from :func:`vgg_tutorial.paper.accounting.layer_stats`: the input image; each convolution's output (kept by
    the in-place ReLU after it; with batch norm, also the normalised output the ReLU then overwrites); each
    max-pool's output and its indices (int64, 8 bytes each); the 7×7 map the classifier reads. Feature maps take
    ``element_bytes`` each: 4 in fp32, 2 under bf16/fp16 autocast. The classifier's small vectors are left out.
    """
    elements = 3 * image_size**2
    indices = 0
    for row in layer_stats(name, batch_norm=batch_norm, image_size=image_size):
        if row.label.startswith("conv") or row.label in ("BN", "avgpool"):
            elements += row.channels * row.size**2
        elif row.label == "maxpool":
            elements += row.channels * row.size**2
            indices += row.channels * row.size**2
    return elements * element_bytes + indices * 8


def training_memory_estimate(
    name: str,
    *,
    batch_norm: bool = True,
    image_size: int = 224,
    batch_size: int = 64,
    element_bytes: int = 2,
    num_classes: int = 1000,
) -> dict[str, int]:
    """An estimate, in bytes, of what one training step holds: fp32 weights, gradients and SGD momentum (4 bytes
    each per parameter) and ``batch_size`` images' activations (:func:`activation_bytes`). Convolution workspace,
    temporary buffers and allocator slack come on top, so leave a margin."""
    params = count_parameters(name, batch_norm=batch_norm, num_classes=num_classes)
    state = 3 * 4 * params
    per_image = activation_bytes(name, batch_norm=batch_norm, image_size=image_size, element_bytes=element_bytes)
    activations = batch_size * per_image
    return {"parameters_state": state, "activations": activations, "total": state + activations}


def largest_batch(name: str, memory_bytes: float, *, batch_norm: bool = True, image_size: int = 224, **options) -> int:
    """The largest power-of-two batch whose :func:`training_memory_estimate` fits in ``memory_bytes`` (0 if none)."""
    batch = 0
    while True:
        candidate = 2 * batch or 1
        estimate = training_memory_estimate(
            name, batch_norm=batch_norm, image_size=image_size, batch_size=candidate, **options
        )
        if estimate["total"] > memory_bytes:
            return batch
        batch = candidate


def saved_activation_bytes(model: nn.Module, images: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``model(images)``, parameters excluded.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``; each storage is counted once.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(images)
    return sum(seen.values())
