"""``check_vgg16``: a hand-written VGG-16 judged by what it computes, not by how its code is laid out.

The check runs the learner's model four times, each time looking for other mistakes:

1. **Structure** (evaluation mode, a batch of 3): the convolutions and FC layers it calls, in the order they run,
   against Table 1's configuration D (type, channels, kernel, stride, padding, bias), and the shape of each one's
   input (max-pooling, flattening that keeps the batch).
2. **Values** (evaluation mode, a batch of 1, so that no fixed batch size passes both): the reference network's
   weights are loaded into the learner's layers, in the order they run, and the input of every layer and the output
   are compared with the reference's. What runs between two layers (ReLU, 2×2 max-pooling, flattening) is judged
   by its numbers, so average pooling, overlapping pooling, a missing pool hidden by the adaptive pool or a ReLU
   or soft-max on the logits are named, not merely "different". A second pass must give the same numbers (no
   dropout in evaluation mode).
3. **Training mode** (one image): every dropout call is counted, wherever it comes from (``nn.Dropout``, one
   module reused, ``F.dropout``): one with p = 0.5 after each of the first two FC layers, none elsewhere.
4. **Backward**: one backward pass of the cross-entropy loss must run and reach every parameter.

The learner's weights, gradients, mode and the global random state are restored afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vgg_tutorial.lessons.exercises.common import (
    ExerciseError,
    calling,
    describe,
    difference_hint,
    passed,
    signature,
    where_in_your_code,
)
from vgg_tutorial.lessons.exercises.vgg16_training import check_training_pass
from vgg_tutorial.paper.accounting import count_parameters
from vgg_tutorial.paper.configs import FC_WIDTHS, INPUT_CHANNELS, INPUT_SIZE
from vgg_tutorial.paper.models import vgg

#: Table 1's VGG-16 (configuration D) has this many parameters: 138,357,544 (torchvision's ``vgg16``).
VGG16_PARAMETERS = count_parameters("D")

#: The layers whose order and hyper-parameters define VGG-16; the rest is judged by the numbers it produces.
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)

#: Layers Table 1's configuration D does not have, with the reason.
FOREIGN_LAYERS = {
    nn.modules.batchnorm._BatchNorm: "Table 1's VGG-16 has no batch normalisation (it came later; torchvision's "
    "vgg16_bn is a variant): remove it for this exercise",
    nn.LocalResponseNorm: "only configuration A-LRN has local response normalisation; VGG-16 (D) has none",
}

#: Batch sizes of the structure, value and training passes: no single fixed batch size passes all three.
STRUCTURE_BATCH, VALUE_BATCH, TRAIN_BATCH = 3, 1, 1


@dataclass
class _Call:
    """One call of a layer during a forward pass, recorded before the layer runs."""

    name: str
    module: nn.Module
    input: torch.Tensor | None
    output: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.input.shape) if self.input is not None else ()


@dataclass
class _Trace:
    calls: list[_Call] = field(default_factory=list)
    foreign: list[tuple[str, nn.Module]] = field(default_factory=list)
    output: object = None
    error: Exception | None = None


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The input of a layer, whether passed by position or by keyword (``self.fc1(input=x)``)."""
    return next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)


def _trace(model: nn.Module, x: torch.Tensor, *, keep: bool = False) -> _Trace:
    """Run ``model`` on ``x`` without gradients; record, in execution order, every weight layer and its input.

    Pre-hooks record a layer even when it is the one that fails, so a shape error can be traced to its layer. With
    ``keep``, each call's input and output are kept (on the CPU) for comparing values.
    """
    names = {module: name for name, module in model.named_modules()}
    trace = _Trace()

    def before(module, args, kwargs):
        tensor = _first_tensor(args, kwargs)
        if isinstance(module, WEIGHT_LAYERS):
            kept = tensor.detach().cpu().clone() if keep and tensor is not None else tensor
            trace.calls.append(_Call(names.get(module, "?"), module, kept))
        else:
            trace.foreign.append((names.get(module, "?"), module))

    def after(module, args, kwargs, output):
        if keep and isinstance(output, torch.Tensor):
            trace.calls[-1].output = output.detach().cpu().clone()

    handles = []
    for module in model.modules():
        if isinstance(module, (*WEIGHT_LAYERS, *FOREIGN_LAYERS)):
            handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        if keep and isinstance(module, WEIGHT_LAYERS):
            handles.append(module.register_forward_hook(after, with_kwargs=True))
    try:
        with torch.no_grad():
            trace.output = model(x)
    except NotImplementedError:
        raise ExerciseError(
            "your model's forward is not written yet: it still raises NotImplementedError. Replace the stub with "
            "your code and run the check again."
        ) from None
    except Exception as caught:  # report after comparing the layers that did run
        trace.error = caught
    finally:
        for handle in handles:
            handle.remove()
    return trace


def _raised(error: Exception | None) -> str:
    return f" Your forward raised {type(error).__name__}: {error}{where_in_your_code(error)}" if error else ""


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


def _check_structure(trace: _Trace, expected: list[_Call], batch: int) -> None:
    """The weight layers the learner's forward called, and their inputs' shapes, against the reference's."""
    __tracebackhide__ = True
    if batch != STRUCTURE_BATCH and trace.error is not None and "invalid for input of size" in str(trace.error):
        raise ExerciseError(
            f"your forward works for a batch of {STRUCTURE_BATCH} images but not for {batch}: it raised "
            f"{type(trace.error).__name__}: {trace.error}{where_in_your_code(trace.error)}. A fixed batch size is "
            "written into it: flatten with torch.flatten(x, 1) (or x.view(x.size(0), -1))."
        )
    if trace.foreign:
        name, module = trace.foreign[0]
        reason = next(text for kind, text in FOREIGN_LAYERS.items() if isinstance(module, kind))
        raise ExerciseError(f"your forward calls '{name}', {describe(module)}: {reason}.")
    seen: dict[nn.Module, str] = {}
    for index, want in enumerate(expected):
        position = f"weight layer {index + 1} of {len(expected)}"
        if index >= len(trace.calls):
            raise ExerciseError(
                f"{position} never ran: expected {describe(want.module)}, but your forward called only "
                f"{len(trace.calls)} convolution/FC layers.{_raised(trace.error)}"
            )
        got = trace.calls[index]
        if got.module in seen:
            raise ExerciseError(
                f"{position} is '{got.name}' again, the layer that already ran as '{seen[got.module]}': every layer "
                "of VGG-16 has its own weights, so create one module per layer (a loop that reuses one module shares "
                "its weights)."
            )
        seen[got.module] = got.name
        if signature(got.module) != signature(want.module):
            raise ExerciseError(
                f"{position} (your '{got.name}') differs: expected {describe(want.module)}, got "
                f"{describe(got.module)}.{difference_hint(want.module, got.module)}"
            )
        if got.shape != want.shape:
            raise ExerciseError(
                f"with a batch of {batch} images, the input of {position} (your '{got.name}', {describe(got.module)})"
                f" has shape {got.shape}, expected {want.shape}.{_shape_hint(want.shape, got.shape)}"
            )
    if len(trace.calls) > len(expected):
        extra = trace.calls[len(expected)]
        raise ExerciseError(
            f"your forward calls {len(trace.calls)} convolution/FC layers, VGG-16 has {len(expected)}: the first "
            f"extra one is '{extra.name}', {describe(extra.module)}."
        )
    if trace.error is not None:
        raise ExerciseError(
            f"all {len(expected)} weight layers match, but with a batch of {batch} images your forward then raised "
            f"{type(trace.error).__name__}: {trace.error}{where_in_your_code(trace.error)}"
        ) from trace.error
    shape = (batch, 1000)
    output = trace.output
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != shape:
        got_shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ExerciseError(f"your forward returns {got_shape} for a batch of {batch} images, expected {shape}.")


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal up to float rounding, relative to the tensor's largest value."""
    if got.shape != want.shape:
        return False
    return bool((got.float() - want.float()).abs().max() <= 1e-3 * want.abs().max() + 1e-6)


def _between(index: int, expected: list[_Call]) -> str:
    """What runs in VGG-16 between weight layer ``index`` and the one after it."""
    here, after = expected[index], expected[index + 1]
    if isinstance(after.module, nn.Linear) and isinstance(here.module, nn.Conv2d):
        return "a ReLU, a 2×2 max-pool with stride 2, and flattening with torch.flatten(x, 1)"
    if isinstance(here.module, nn.Linear):
        return "a ReLU, then dropout (which does nothing in evaluation mode)"
    if after.shape[-1] < here.shape[-1]:
        return "a ReLU, then a 2×2 max-pool with stride 2 (nn.MaxPool2d(2, 2))"
    return "a ReLU"


def _slips_between(y: torch.Tensor, pools: bool, flattens: bool) -> list[tuple[torch.Tensor, str]]:
    """What typical slips compute from ``y``, a layer's output, in place of what VGG-16 computes after it."""
    relu = F.relu(y)
    flat = (lambda t: torch.flatten(t, 1)) if flattens else (lambda t: t)
    slips: list[tuple[Callable[[], torch.Tensor], str]] = []
    no_relu = "no ReLU follows it: every hidden layer is followed by a ReLU (§2.1)"
    if pools:
        slips += [
            (lambda: flat(F.max_pool2d(y, 2)), no_relu),
            (
                lambda: flat(F.avg_pool2d(relu, 2)),
                "it is average-pooled: VGG max-pools, nn.MaxPool2d(kernel_size=2, stride=2) (§2.1)",
            ),
            (
                lambda: flat(F.max_pool2d(relu, 3, 2, 1)),
                "it is max-pooled over overlapping 3×3 windows (AlexNet's pooling); VGG's max-pools are 2×2 with "
                "stride 2, nn.MaxPool2d(2, 2) (§2.1)",
            ),
        ]
    else:
        slips.append((lambda: flat(y), no_relu))
    if flattens:
        slips = [
            (
                lambda: torch.flatten(F.adaptive_avg_pool2d(relu, 7), 1),
                "the map is averaged, not max-pooled: either the fifth max-pool is missing and the adaptive average "
                "pool hid it by averaging the 14×14 map down to 7×7, or the last pool is an AvgPool2d. Close the last "
                "block with nn.MaxPool2d(2, 2) too",
            ),
            *slips,
            (
                lambda: torch.flatten(F.max_pool2d(relu, 2).permute(0, 2, 3, 1), 1),
                "it is flattened in (height, width, channels) order: flatten the (batch, channels, height, width) "
                "map as it is, torch.flatten(x, 1), the order the first FC layer's weights follow",
            ),
        ]
    return [(make(), text) for make, text in slips]


def _check_values(trace: _Trace, reference: _Trace, expected: list[_Call], again: Callable[[], _Trace]) -> None:
    """The learner's layers' inputs and output against the reference's, with the same weights in every layer."""
    __tracebackhide__ = True
    for index, (got, want) in enumerate(zip(trace.calls, reference.calls)):
        if _close(got.input, want.input):
            continue
        position = f"weight layer {index + 1} of {len(expected)} (your '{got.name}')"
        if index == 0:
            raise ExerciseError(
                f"the input of {position} is not the image: your forward changes the images before the first "
                "convolution. Normalising the images is the data pipeline's job (vgg_tutorial.data.transforms)."
            )
        if not _close(again().calls[index].input, got.input):
            raise ExerciseError(
                f"two passes in evaluation mode give different inputs to {position}: dropout is active in evaluation "
                "mode. Use nn.Dropout(0.5), or pass training=self.training to F.dropout (its default is True)."
            )
        before = reference.calls[index - 1]
        y = before.output
        pools = isinstance(want.module, nn.Conv2d) and want.shape[-1] < before.shape[-1]
        flattens = isinstance(want.module, nn.Linear) and isinstance(before.module, nn.Conv2d)
        slip = next(
            (text for value, text in _slips_between(y, pools or flattens, flattens) if _close(got.input, value)), ""
        )
        if slip:
            raise ExerciseError(f"after weight layer {index} (your '{trace.calls[index - 1].name}') {slip}.")
        negatives = " It has negative values, so no ReLU ran." if bool((got.input < 0).any()) else ""
        raise ExerciseError(
            f"the input of {position} has the right shape but not the right values, with the reference's weights "
            f"in every layer.{negatives} Between weight layers {index} and {index + 1} VGG-16 runs "
            f"{_between(index - 1, expected)}."
        )
    got, want = trace.output.detach().cpu(), reference.output
    if _close(got, want):
        return
    if not _close(again().output.detach().cpu(), got):
        raise ExerciseError(
            "two passes in evaluation mode give different outputs: dropout is active in evaluation mode. Use "
            "nn.Dropout(0.5), or pass training=self.training to F.dropout (its default is True)."
        )
    last = "the last FC layer (FC-1000)"
    slips = [
        (
            F.softmax(want, dim=1),
            "your forward returns probabilities, not logits: the rows sum to 1. Remove the "
            "softmax; nn.CrossEntropyLoss applies log-softmax itself, and at test time take softmax outside the model.",
        ),
        (
            F.log_softmax(want, dim=1),
            "your forward returns log-probabilities (log_softmax), not logits: remove it; "
            "nn.CrossEntropyLoss applies log-softmax itself.",
        ),
        (F.relu(want), f"a ReLU follows {last}: logits must be free to be negative; {last} has no ReLU."),
    ]
    slip = next((text for value, text in slips if _close(got, value)), "")
    raise ExerciseError(
        slip
        or f"your forward's output is not {last}'s output: with the reference's weights its logits differ by up "
        f"to {(got - want).abs().max().item():.3g}. Return the last layer's output as it is."
    )


def _check_parameter_count(model: nn.Module) -> None:
    __tracebackhide__ = True
    params = sum(p.numel() for p in model.parameters())
    if params != VGG16_PARAMETERS:
        raise ExerciseError(
            f"your model has {params:,} parameters, VGG-16 has {VGG16_PARAMETERS:,} (a difference of "
            f"{params - VGG16_PARAMETERS:+,}): is a layer registered that the forward never uses?"
        )


@functools.cache
def _reference() -> tuple[nn.Module, torch.Tensor, torch.Tensor, _Trace]:
    """The reference VGG-16 (seeded), the check's images and labels, and the reference's trace on the value batch.

    Built once per process: building and initialising 138 million weights takes seconds.
    """
    with torch.random.fork_rng():
        torch.manual_seed(0)
        reference = vgg("D").eval()
        x = torch.randn(STRUCTURE_BATCH, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE)
        labels = torch.randint(0, 1000, (TRAIN_BATCH,))
    return reference, x, labels, _trace(reference, x[:VALUE_BATCH], keep=True)


def _instantiate(model_or_class) -> nn.Module:
    """The learner's model: ``model_or_class`` itself if it is a module, else what calling it returns."""
    __tracebackhide__ = True
    model = model_or_class
    if not isinstance(model, nn.Module) and callable(model):
        with calling(f"building your model ({getattr(model, '__name__', 'it')}())"):
            model = model()
    if not isinstance(model, nn.Module):
        raise ExerciseError(f"expected an nn.Module (or a class that builds one), got {type(model).__name__}")
    return model


def check_vgg16(model_or_class) -> bool:
    """Check a hand-written VGG-16 (Table 1, configuration D) against the reference by what it computes.

    ``model_or_class`` is a model, or a class (or function) that builds one with no arguments. See the module's
    description for the four passes; the last check is the parameter count, 138,357,544 (a layer registered but
    never called shows there).
    """
    __tracebackhide__ = True
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _instantiate(model_or_class)
    _, x, labels, reference_values = _reference()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    weights: list[tuple[torch.Tensor, torch.Tensor]] = []
    grads = [(p, p.grad) for p in model.parameters()]
    try:
        with torch.random.fork_rng():
            model.eval()
            with torch.device("meta"):
                shapes = vgg("D")
            expected = _trace(shapes, x.to("meta")).calls
            structure = _trace(model, x.to(device))
            _check_structure(structure, expected, STRUCTURE_BATCH)
            # The reference's weights in the learner's layers, in the order they run; then the same numbers must come.
            with torch.no_grad():
                for got, want in zip(structure.calls, reference_values.calls):
                    for mine, theirs in zip(got.module.parameters(), want.module.parameters()):
                        weights.append((mine, mine.detach().clone()))
                        mine.copy_(theirs)

            def again() -> _Trace:
                return _trace(model, x[:VALUE_BATCH].to(device), keep=True)

            values = again()
            _check_structure(values, reference_values.calls, VALUE_BATCH)
            _check_values(values, reference_values, expected, again)
            _check_parameter_count(model)
            for param, _ in grads:
                param.grad = None
            check_training_pass(model, x[:TRAIN_BATCH].to(device), labels.to(device))
    finally:
        with torch.no_grad():
            for param, value in weights:
                param.copy_(value)
        for param, grad in grads:
            param.grad = grad
        model.train(was_training)

    params = sum(p.numel() for p in model.parameters())
    return passed(
        f"Your VGG-16 computes what Table 1's configuration D computes: 13 convolutions and {len(FC_WIDTHS) + 1} FC "
        f"layers in order, ReLUs, 2×2 max-pools, dropout 0.5 after FC-4096 ×2 in training only, logits of shape "
        f"(batch, 1000), {params:,} parameters."
    )
