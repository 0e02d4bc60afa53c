"""What every check shares: the error it raises, the line it prints, and how it reads what a learner's code returns."""

from __future__ import annotations

import contextlib
import numbers
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

#: Folders whose frames are the checker's or a library's, never the learner's code.
_LIBRARY_PARTS = (str(Path(__file__).resolve().parents[1]), str(Path(torch.__file__).resolve().parent))


class ExerciseError(AssertionError):
    """Raised by a check when the learner's code differs from the reference; the message says where and how.

    In a notebook, IPython shows only the message (``_render_traceback_``): the check's own frames say nothing to a
    learner. Elsewhere (pytest, a script) the exception behaves like any ``AssertionError``.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mExerciseError\x1b[0m: {self}"]


def passed(message: str) -> bool:
    """Print the congratulation of a passed check and return ``True``."""
    print(f"✓ {message}")
    return True


def where_in_your_code(error: BaseException) -> str:
    """`` (your line N: code)`` for the deepest frame of ``error`` outside the checker and torch, or ``""``."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(_LIBRARY_PARTS)
    ]
    if not frames or not frames[-1].line:
        return ""
    return f" (at your line {frames[-1].lineno}: {frames[-1].line.strip()})"


@contextlib.contextmanager
def calling(what: str) -> Iterator[None]:
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
        raise ExerciseError(f"{what} raised {type(error).__name__}: {error}{where_in_your_code(error)}") from error


def describe_value(value) -> str:
    """A short description of a wrong kind of answer, with the usual cause."""
    if value is None:
        return "None: does your function end with a return statement?"
    if isinstance(value, tuple):
        return f"a tuple {value!r}: return one number (a trailing comma, or `return a, b`, makes a tuple)"
    if isinstance(value, str):
        return f"the string {value!r}: return the number itself, not text"
    if isinstance(value, (list, dict, set)):
        return f"a {type(value).__name__}: return one number"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}: return one number"
    return f"a {type(value).__name__}: return a number"


def as_number(value, what: str, *, integer: bool = False) -> float | int:
    """A learner's numeric answer as a Python number: an int or a float, a numpy scalar, or a one-element tensor."""
    if isinstance(value, (torch.Tensor,)) and value.numel() == 1:
        value = value.item()
    elif type(value).__module__ == "numpy" and getattr(value, "size", None) == 1 and hasattr(value, "item"):
        value = value.item()  # numpy scalars and 0-d arrays
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExerciseError(f"{what} returns {describe_value(value)}")
    if integer:
        if value != int(value):
            raise ExerciseError(f"{what} returns {value!r}, not a whole number: a count of pixels or weights is an int")
        return int(value)
    return float(value)


def padding_of(module: nn.Conv2d) -> tuple[int, ...]:
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
            padding_of(module),
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
    return (type(module).__name__,)


def describe(module: nn.Module) -> str:
    """PyTorch's description of a layer, with a convolution's padding always spelled out (its repr omits 0)."""
    if isinstance(module, nn.Conv2d):
        bias = "" if module.bias is not None else ", bias=False"
        return (
            f"Conv2d({module.in_channels}, {module.out_channels}, kernel_size={tuple(module.kernel_size)}, "
            f"stride={tuple(module.stride)}, padding={padding_of(module)}{bias})"
        )
    return repr(module).replace("\n", " ")


def difference_hint(expected: nn.Module, got: nn.Module) -> str:
    """A likely cause for the first difference between two layers, from the first hyper-parameter that differs."""
    from vgg_tutorial.paper.configs import POOLED_SIZE, feature_layers

    last_channels = feature_layers("D")[-2].channels
    if isinstance(expected, nn.Conv2d) and isinstance(got, nn.Conv2d):
        k = expected.kernel_size[0]
        if tuple(got.kernel_size) != tuple(expected.kernel_size):
            return (
                f" Use kernel_size={k}: Table 1's 'conv{k}-…' layers are {k}×{k} convolutions (configuration C's "
                "conv1 layers are the only 1×1 ones)."
            )
        if tuple(got.stride) != tuple(expected.stride):
            return " Every convolution has stride 1 (§2.1); only the max-pools reduce the map."
        if padding_of(got) != padding_of(expected):
            return (
                f" Use padding={padding_of(expected)[0]}: a {k}×{k} convolution with padding {k // 2} keeps the "
                "spatial size, only the max-pools halve it (§2.1)."
            )
        if got.in_channels != expected.in_channels:
            return " Each convolution's in_channels must equal the previous convolution's out_channels."
        if (got.bias is None) != (expected.bias is None):
            return " The paper's layers have biases (bias=True, PyTorch's default)."
        return " Compare with the configuration's column in Table 1 (vgg_tutorial.CONFIGS)."
    if isinstance(expected, nn.Linear) and isinstance(got, nn.Linear):
        if got.in_features != expected.in_features:
            return (
                f" The first FC layer reads the last feature map flattened: {last_channels}·{POOLED_SIZE}·{POOLED_SIZE}"
                f" = {expected.in_features:,} numbers per image."
                if expected.in_features == last_channels * POOLED_SIZE**2
                else " Each FC layer's in_features must equal the previous layer's out_features."
            )
        if (got.bias is None) != (expected.bias is None):
            return " The paper's layers have biases (bias=True, PyTorch's default)."
        return f" Table 1's classifier is FC-4096, FC-4096, FC-1000; this layer should have {expected.out_features}."
    if isinstance(expected, nn.LocalResponseNorm) and isinstance(got, nn.LocalResponseNorm):
        return (
            " PyTorch's LocalResponseNorm divides alpha by size; AlexNet's α=1e-4 over n=5 channels is "
            "alpha=5e-4 here (see vgg_tutorial.paper.models.alexnet_lrn)."
        )
    if isinstance(got, nn.BatchNorm2d) and not isinstance(expected, nn.BatchNorm2d):
        return " A BatchNorm2d is there only with batch_norm=True."
    return ""
