"""``check_dense_conversion``: FC layers turned into convolutions (§3.2), judged by the scores they give."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vgg_tutorial.lessons.exercises.common import (
    ExerciseError,
    calling,
    passed,
)
from vgg_tutorial.paper.configs import INPUT_CHANNELS
from vgg_tutorial.paper.models import vgg


def _small_vgg(num_classes: int = 5) -> nn.Module:
    """A narrow configuration-A network with the paper's 7×7 pooled map, for checks that need real numbers."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return vgg("A", width=1 / 16, fc_width=32, num_classes=num_classes).eval()


class _called_modules:  # noqa: N801 (used like a function)
    """Records, while installed, which submodules of ``model`` are called, in order."""

    def __init__(self, model: nn.Module):
        names = {module: name for name, module in model.named_modules()}
        self.modules: list[tuple[str, nn.Module]] = []
        self.handles = [
            m.register_forward_pre_hook(lambda m, _: self.modules.append((names[m], m)))
            for m in names
            if m is not model
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _score_map(model: nn.Module, x: torch.Tensor, size: int, called: _called_modules) -> torch.Tensor:
    """The class score map of a converted model: its ``score_map(x)`` if it has one, else its output."""
    __tracebackhide__ = True
    try:
        with torch.no_grad(), calling(f"your converted model on a {size}×{size} image"):
            return model.score_map(x) if hasattr(model, "score_map") else model(x)
    except ExerciseError as error:
        raise ExerciseError(f"{error}{_hint(called)}") from error.__cause__


def _hint(called: _called_modules) -> str:
    """The usual cause of a wrong score map, from the layers the converted model called (not those it merely has)."""
    linears = [name for name, m in called.modules if isinstance(m, nn.Linear)]
    pools = [name for name, m in called.modules if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d)]
    if linears:
        return (
            f" Your converted model still calls a Linear layer ('{linears[0]}'): every FC layer becomes a "
            "convolution, the first a 7×7 one and the other two 1×1 (§3.2)."
        )
    if pools:
        return (
            f" Your converted model calls an adaptive pool ('{pools[0]}'), which squeezes every image's map to 7×7 "
            "and the score map to 1×1: dense evaluation slides the classifier over the whole feature map, so leave "
            "the pool out."
        )
    return ""


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
    with torch.random.fork_rng(), calling("your conversion"):
        dense = fn(model)
    if not isinstance(dense, nn.Module):
        raise ExerciseError(f"your conversion returned a {type(dense).__name__}, expected an nn.Module")
    dense.eval()
    called = _called_modules(dense)
    try:
        scores = _score_map(dense, small, 224, called)
        if scores.dim() != 4:
            raise ExerciseError(
                f"your converted model returns shape {tuple(scores.shape)} on a 224×224 image; a class score map has "
                "shape (batch, classes, height, width), here (1, 5, 1, 1). Return the map from forward, or give the "
                f"model a score_map(x) method.{_hint(called)}"
            )
        if tuple(scores.shape) != (1, 5, 1, 1):
            raise ExerciseError(
                f"on a 224×224 image your score map has shape {tuple(scores.shape)}, expected (1, 5, 1, 1)."
                f"{_hint(called)}"
            )
        if not torch.allclose(scores.flatten(1), logits, rtol=1e-4, atol=1e-5):
            gap = (scores.flatten(1) - logits).abs().max().item()
            raise ExerciseError(
                f"on a 224×224 image your scores differ from the original model's logits by up to {gap:.3g}. Copy "
                "the weights unchanged: the first FC weight reshapes to (out, channels, 7, 7), the order in which "
                "torch.flatten laid out (channels, height, width); biases stay as they are."
            )
        called.modules.clear()
        scores = _score_map(dense, large, 384, called)
        if tuple(scores.shape) != (1, 5, 6, 6):
            raise ExerciseError(
                f"on a 384×384 image your score map has shape {tuple(scores.shape)}, expected (1, 5, 6, 6): the "
                f"12×12 feature map holds 6×6 positions of the 7×7 window.{_hint(called)}"
            )
    finally:
        called.remove()
    return passed(
        "Your conversion gives the original logits on a 224×224 image and a 6×6 class score map on a 384×384 one."
    )
