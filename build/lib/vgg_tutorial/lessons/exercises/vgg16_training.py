"""The training-mode half of ``check_vgg16``: where dropout runs, and whether one backward pass gets through.

Dropout calls are counted by a :class:`~torch.overrides.TorchFunctionMode`, which sees every call of the functions
that apply dropout, whether ``nn.Dropout`` makes it (one module or one reused), ``F.dropout`` or ``torch.dropout``,
and where it falls between the FC layers' calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vgg_tutorial.lessons.exercises.common import ExerciseError, where_in_your_code

#: Every function that applies dropout, with the positional names of (input, p, training, inplace).
_DROPOUTS: dict[Callable, tuple[str, ...]] = {
    F.dropout: ("input", "p", "training", "inplace"),
    F.dropout1d: ("input", "p", "training", "inplace"),
    F.dropout2d: ("input", "p", "training", "inplace"),
    F.alpha_dropout: ("input", "p", "training", "inplace"),
    torch.dropout: ("input", "p", "train"),
    torch.dropout_: ("input", "p", "train"),
}


@dataclass
class _Event:
    kind: str  # "fc" or "dropout"
    shape: tuple[int, ...] = ()
    p: float = 0.0
    training: bool = True


class _Events(TorchFunctionMode):
    """Records every dropout call, whichever function or module makes it, between the FC layers' calls."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.events: list[_Event] = []
        self.handles = [
            m.register_forward_pre_hook(lambda *_: self.events.append(_Event("fc")))
            for m in model.modules()
            if isinstance(m, nn.Linear)
        ]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _DROPOUTS:
            try:
                bound = inspect.signature(func).bind(*args, **kwargs)
                bound.apply_defaults()
                values = dict(bound.arguments)
            except (TypeError, ValueError):  # a builtin without a Python signature: torch.dropout(input, p, train)
                values = dict(zip(_DROPOUTS[func], args)) | kwargs
            tensor = values.get("input")
            self.events.append(
                _Event(
                    "dropout",
                    tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else (),
                    float(values.get("p", 0.5)),
                    bool(values.get("training", values.get("train", True))),
                )
            )
        return func(*args, **kwargs)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _check_dropout(events: list[_Event]) -> None:
    """Dropout 0.5 exactly once after each of the first two FC layers, in training mode, and nowhere else."""
    __tracebackhide__ = True
    dropouts = [e for e in events if e.kind == "dropout"]
    if not dropouts:
        raise ExerciseError(
            "in training mode your forward applies no dropout: the paper uses dropout 0.5 after each of the first "
            "two FC layers (§3.1), nn.Dropout(0.5) or F.dropout(x, 0.5, training=self.training)."
        )
    off = [e for e in dropouts if not e.training or e.p == 0]
    if off:
        raise ExerciseError(
            "in training mode your dropout does nothing (training=False or p=0): pass training=self.training to "
            "F.dropout, or use nn.Dropout(0.5), which follows model.train() and model.eval() itself."
        )
    fcs = [i for i, e in enumerate(events) if e.kind == "fc"]
    before_first_fc = [e for e in events[: fcs[0]] if e.kind == "dropout"]
    after_last_fc = [e for e in events[fcs[-1] :] if e.kind == "dropout"]
    if before_first_fc:
        raise ExerciseError(
            f"your forward applies dropout before the first FC layer (to a tensor of shape {before_first_fc[0].shape}"
            "): the paper's dropout follows the first two FC layers only (§3.1)."
        )
    if after_last_fc:
        raise ExerciseError(
            f"your forward applies dropout to the logits (shape {after_last_fc[0].shape}), after the last FC layer: "
            "dropout follows only the first two FC layers (§3.1); the logits go to the loss as they are."
        )
    for number, (start, end) in enumerate(zip(fcs, fcs[1:]), start=1):
        count = sum(e.kind == "dropout" for e in events[start:end])
        if count != 1:
            raise ExerciseError(
                f"in training mode your forward applies dropout {count} times after FC layer {number}; the paper "
                f"applies it once after each of the first two FC layers (§3.1), {len(dropouts)} calls in all here."
            )
    rates = [e.p for e in dropouts]
    if rates != [0.5, 0.5]:
        raise ExerciseError(f"your dropout rates are {rates}; the paper uses p = 0.5 for both dropout layers (§3.1).")


def check_training_pass(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> None:
    """One forward in training mode (dropout counted) and one backward of the cross-entropy loss."""
    __tracebackhide__ = True
    model.train()
    events = _Events(model)
    try:
        with events:
            output = model(x)
    except Exception as error:
        raise ExerciseError(
            f"in training mode your forward raised {type(error).__name__}: {error}{where_in_your_code(error)}"
        ) from error
    finally:
        events.remove()
    _check_dropout(events.events)
    try:
        F.cross_entropy(output, labels).backward()
    except RuntimeError as error:
        cause = (
            " An in-place operation overwrote a tensor that backward needs: in-place dropout on a ReLU's output "
            "(F.dropout(..., inplace=True), nn.Dropout(inplace=True)) is the usual one; drop inplace=True there."
            if "inplace operation" in str(error)
            else ""
        )
        raise ExerciseError(f"the backward pass through your model failed: {error}.{cause}") from error
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        raise ExerciseError(
            f"after one backward pass '{missing[0]}' has no gradient: the loss does not depend on it. Is the layer "
            "called, and is its output used without .detach(), .data or torch.no_grad()?"
        )
