"""Check for chapter 13's exercise on boxes under the training transforms (Appendix A, §3.1): ``check_flipped_box``.

``fn(box, width)`` gets a box ``tensor([x0, y0, x1, y1])`` in the book's pixel-edge coordinates
(:mod:`vgg_tutorial.data.boxes`: an image ``width`` px wide spans ``[0, width]``) and must return the box of the same
object after a horizontal flip of the image, as a new tensor: ``x`` becomes ``width - x``, so the left and right
edges swap and ``y`` stays. The check compares with :func:`vgg_tutorial.data.boxes.flip` and names the slip it
recognises: the edges not swapped, ``width - 1`` (pixel *indices* flip that way, pixel edges do not), the
vertical axis flipped, a list returned, the input changed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vgg_tutorial.data.boxes import flip
from vgg_tutorial.lessons.exercises.common import ExerciseError, calling, passed

#: Boxes (x0, y0, x1, y1) and image widths on which every slip below gives another answer.
_CASES = (
    (torch.tensor([2.0, 1.0, 5.0, 7.0]), 10),
    (torch.tensor([0.0, 3.5, 4.25, 6.0]), 8),
    (torch.tensor([10.5, 20.0, 31.0, 22.0]), 32),
)

#: Typical wrong answers, each with what it gets wrong.
_SLIPS: tuple[tuple[Callable[[torch.Tensor, int], torch.Tensor], str], ...] = (
    (
        lambda b, w: torch.stack([w - b[0], b[1], w - b[2], b[3]]),
        "you flipped x0 and x1 but did not swap them: the old right edge is the new left edge, so the new x0 is "
        "width - x1 (your box has x0 > x1)",
    ),
    (
        lambda b, w: torch.stack([w - 1 - b[2], b[1], w - 1 - b[0], b[3]]),
        "you used width - 1: pixel *indices* flip as i -> width - 1 - i, but box corners are pixel edges, and the "
        "edges 0 and width swap, so x -> width - x",
    ),
    (
        lambda b, w: torch.stack([b[0], w - b[3], b[2], w - b[1]]),
        "you flipped the vertical axis: a horizontal flip mirrors left and right, y0 and y1 stay",
    ),
    (
        lambda b, w: torch.stack([w - b[2], w - b[3], w - b[0], w - b[1]]),
        "you flipped both axes: a horizontal flip mirrors left and right only, y0 and y1 stay",
    ),
)


def check_flipped_box(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """Check ``fn(box, width)`` → the box after a horizontal flip of an image ``width`` px wide."""
    __tracebackhide__ = True
    for box, width in _CASES:
        given = box.clone()
        with calling(f"my_flipped_box({box.tolist()}, {width})"):
            answer = fn(given, width)
        if not torch.equal(given, box):
            raise ExerciseError("my_flipped_box changed the box it was given; return a new tensor instead")
        if isinstance(answer, (list, tuple)):
            raise ExerciseError(
                f"my_flipped_box returned a {type(answer).__name__}; return a tensor of 4 numbers "
                "(torch.tensor([...]) or torch.stack([...]))"
            )
        if not isinstance(answer, torch.Tensor) or answer.shape != (4,):
            what = f"shape {tuple(answer.shape)}" if isinstance(answer, torch.Tensor) else type(answer).__name__
            raise ExerciseError(f"my_flipped_box returned {what}; expected a tensor of 4 numbers (x0, y0, x1, y1)")
        want = flip(box, width)
        if torch.allclose(answer.double(), want.double()):
            continue
        for slip, why in _SLIPS:
            if torch.allclose(answer.double(), slip(box, width).double()):
                raise ExerciseError(
                    f"for the box {box.tolist()} in an image {width} px wide you gave {answer.tolist()}: {why}"
                )
        raise ExerciseError(
            f"for the box {box.tolist()} in an image {width} px wide my_flipped_box gave {answer.tolist()}; "
            f"expected {want.tolist()}"
        )
    return passed("my_flipped_box mirrors x (x -> width - x) and swaps the left and right edges; y stays")
