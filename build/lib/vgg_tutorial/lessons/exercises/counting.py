"""Checks of numbers computed from Table 1: receptive fields, parameter counts and the FLOPs of a training step."""

from __future__ import annotations

import math
from collections.abc import Callable

from vgg_tutorial.lessons.exercises.common import (
    ExerciseError,
    as_number,
    calling,
    passed,
)
from vgg_tutorial.paper.accounting import count_macs, count_parameters, receptive_field, training_flops
from vgg_tutorial.paper.configs import CONFIGS, FC_WIDTHS, INPUT_SIZE, Conv, MaxPool, feature_layers

#: Table 1's VGG-16 (configuration D) has this many parameters: 138,357,544 (torchvision's ``vgg16``).
VGG16_PARAMETERS = count_parameters("D")


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

    The reference is :func:`vgg_tutorial.paper.accounting.receptive_field` (pixels per side of the input patch one unit
    of the last convolution sees; 196 for configuration D).
    """
    __tracebackhide__ = True
    for name in CONFIGS:
        with calling(f"your function on configuration {name!r}"):
            got = fn(name)
        got = as_number(got, f"your function on configuration {name!r}", integer=True)
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

    The reference is :func:`vgg_tutorial.paper.accounting.count_parameters` (1000 classes), which the test suite checks
    against torchvision's models and Table 2.
    """
    __tracebackhide__ = True
    for name in CONFIGS:
        for batch_norm in (False, True):
            with calling(f"your function on configuration {name!r} with batch_norm={batch_norm}"):
                got = fn(name, batch_norm=batch_norm)
            got = as_number(got, f"your function on configuration {name!r} with batch_norm={batch_norm}", integer=True)
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
    each as costly as the forward. The reference is :func:`vgg_tutorial.paper.accounting.training_flops` (batch norm
    adds no weight products, so it does not change the count). Tried on D at 224 px with 1000 classes, and on other
    configurations and sizes with 10 classes, as in the benchmark.
    """
    __tracebackhide__ = True

    def reference(name: str, image_size: int, num_classes: int) -> int:
        return training_flops(name, batch_norm=True, image_size=image_size, num_classes=num_classes)

    cases = (("D", 224, 1000), ("D", 160, 10), ("A", 224, 10), ("C", 96, 10), ("E", 64, 10))
    for name, image_size, num_classes in cases:
        where = f"configuration {name} at {image_size} px with {num_classes} classes"
        with calling(f"your function on {where}"):
            got = fn(name, image_size, num_classes)
        got = as_number(got, f"your function on {where}")
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
