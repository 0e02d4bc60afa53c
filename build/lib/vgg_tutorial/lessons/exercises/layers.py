"""``check_layer_builder``: a learner's ``make_layers`` against the package's builder, layer by layer."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from vgg_tutorial.lessons.exercises.common import (
    ExerciseError,
    calling,
    describe,
    difference_hint,
    passed,
    signature,
)
from vgg_tutorial.paper.configs import CONFIGS
from vgg_tutorial.paper.models import make_features


def _reference_features(name: str, batch_norm: bool) -> nn.Sequential:
    """The reference ``features`` of configuration ``name`` (the builder's, in torchvision's layout)."""
    with torch.device("meta"):
        return make_features(name, batch_norm=batch_norm)


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
            with torch.random.fork_rng(), calling(f"your builder on {where}"):
                built = fn(CONFIGS[name], batch_norm)
            got = _leaf_modules(built)
            want = _leaf_modules(_reference_features(name, batch_norm))
            for index, (g, w) in enumerate(zip(got, want)):
                if signature(g) != signature(w):
                    raise ExerciseError(
                        f"{where}: layer {index} differs: expected {describe(w)}, got {describe(g)}."
                        f"{difference_hint(w, g)}"
                    )
            if len(got) != len(want):
                first = (
                    f"the first missing one is {describe(want[len(got)])}"
                    if len(got) < len(want)
                    else f"the first extra one is {describe(got[len(want)])}"
                )
                raise ExerciseError(
                    f"{where}: your builder returned {len(got)} layers, the reference {len(want)}; {first}."
                )
    return passed(
        f"Your layer builder matches the reference for configurations {', '.join(names)}, with and without batch "
        "normalisation."
    )
