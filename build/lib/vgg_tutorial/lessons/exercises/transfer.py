"""Check for chapter 14's exercise on Appendix B's image descriptor: ``check_descriptor``.

``fn(maps)`` gets a list of dense feature maps of the same images, one per test scale Q, each a tensor N×C×h×w
(the penultimate layer's activations at every position; larger scales give larger maps). It must return Appendix
B's descriptor as a new N×C tensor: each map averaged over its positions (global average pooling), the scales
averaged, and every row L2-normalised ("The resulting image descriptor is L2-normalised"). The check compares with
that reference and names the slip it recognises: no normalisation, normalising before averaging the scales, max
instead of mean over positions, sums that weigh large maps more, the wrong dimension normalised, the scales stacked
instead of averaged, a list returned, the maps changed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.functional import normalize

from vgg_tutorial.lessons.exercises.common import ExerciseError, calling, passed


def _reference(maps: list[torch.Tensor]) -> torch.Tensor:
    return normalize(torch.stack([m.mean(dim=(2, 3)) for m in maps]).mean(0), dim=1)


def _cases() -> list[list[torch.Tensor]]:
    """Two sets of maps (3 and 4 images, 5 channels, 3 scales), non-negative as after a ReLU."""
    gen = torch.Generator().manual_seed(14)
    return [
        [torch.rand(n, 5, side, side, generator=gen) * (1 + side) for side in sides]
        for n, sides in ((3, (1, 2, 3)), (4, (2, 3, 5)))
    ]


def _pooled(maps):
    return [m.mean(dim=(2, 3)) for m in maps]


#: Typical wrong answers, each with what it gets wrong.
_SLIPS: tuple[tuple[Callable[[list[torch.Tensor]], torch.Tensor], str], ...] = (
    (
        lambda maps: torch.stack(_pooled(maps)).mean(0),
        "the rows are not L2-normalised: divide each descriptor by its length (torch.nn.functional.normalize(x, "
        "dim=1)), as Appendix B does before the SVM",
    ),
    (
        lambda maps: torch.stack([normalize(p, dim=1) for p in _pooled(maps)]).mean(0),
        "you normalised each scale before averaging the scales: the average of unit vectors is shorter than 1; "
        "average first, normalise last",
    ),
    (
        lambda maps: normalize(torch.stack([m.amax(dim=(2, 3)) for m in maps]).mean(0), dim=1),
        "you took the maximum over positions: Appendix B uses global *average* pooling (mean over h and w)",
    ),
    (
        lambda maps: normalize(sum(m.sum(dim=(2, 3)) for m in maps), dim=1),
        "you summed the positions: a larger scale's map has more positions, so it weighs more; take the mean over "
        "positions, then the mean over scales",
    ),
    (
        lambda maps: normalize(torch.stack(_pooled(maps)).mean(0), dim=0),
        "you normalised each column (dim=0): each image's descriptor, a row, must have length 1 (dim=1)",
    ),
)


def check_descriptor(fn: Callable[[list[torch.Tensor]], torch.Tensor]) -> bool:
    """Check ``fn(maps)`` → Appendix B's descriptor: mean over positions, mean over scales, rows L2-normalised."""
    __tracebackhide__ = True
    for maps in _cases():
        given = [m.clone() for m in maps]
        n, c = maps[0].shape[:2]
        with calling(f"my_descriptor(maps of shapes {[tuple(m.shape) for m in maps]})"):
            answer = fn(given)
        if any(not torch.equal(g, m) for g, m in zip(given, maps)):
            raise ExerciseError("my_descriptor changed the maps it was given; compute new tensors instead")
        if isinstance(answer, (list, tuple)):
            raise ExerciseError(
                f"my_descriptor returned a {type(answer).__name__}; return one tensor N×C (torch.stack the scales, "
                "then average them)"
            )
        if not isinstance(answer, torch.Tensor):
            raise ExerciseError(
                f"my_descriptor returned {type(answer).__name__}; expected a tensor of shape ({n}, {c})"
            )
        if answer.shape == (n, c * len(maps)):
            raise ExerciseError(
                f"my_descriptor returned shape {tuple(answer.shape)}: you stacked the {len(maps)} scales side by side "
                f"(what the paper did for Caltech); here average them, to shape ({n}, {c})"
            )
        if answer.shape != (n, c):
            raise ExerciseError(
                f"my_descriptor returned shape {tuple(answer.shape)}; expected ({n}, {c}): one row per image"
            )
        want = _reference(maps)
        if torch.allclose(answer.double(), want.double(), atol=1e-5):
            continue
        for slip, why in _SLIPS:
            if torch.allclose(answer.double(), slip(maps).double(), atol=1e-5):
                raise ExerciseError(f"my_descriptor's first row is {answer[0].tolist()}: {why}")
        raise ExerciseError(f"my_descriptor's first row is {answer[0].tolist()}; expected {want[0].tolist()}")
    return passed("my_descriptor averages positions, then scales, and gives every image a descriptor of length 1")
