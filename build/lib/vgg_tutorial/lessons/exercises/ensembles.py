"""Check for chapter 12's exercise on combining nets (§4.4): ``check_ensemble(fn)``.

``fn(posteriors)`` gets the soft-max posteriors of several nets as one tensor, nets × images × classes, and must
return the ensemble's posterior, images × classes: the mean over the nets
(:func:`vgg_tutorial.testing.ensembles.combine` averages them the same way). The check tries cases where the usual slips
give another answer, and names the slip it recognises: averaging over the wrong dimension, summing, averaging
log-posteriors (a geometric mean), a majority vote, a soft-max applied again.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vgg_tutorial.lessons.exercises.common import ExerciseError, calling, passed


def _cases() -> list[torch.Tensor]:
    """Posteriors (nets × images × classes) on which the slips below differ from the mean."""
    # Two nets, each wrong alone, right together (chapter 12's worked example), and a confident net outvoted.
    worked = torch.tensor([[[0.6, 0.4, 0.0]], [[0.0, 0.45, 0.55]]])
    outvoted = torch.tensor([[[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]], [[0.3, 0.4, 0.3], [0.1, 0.8, 0.1]]])
    outvoted = torch.cat([outvoted, torch.tensor([[[0.3, 0.4, 0.3], [0.6, 0.2, 0.2]]])])
    drawn = torch.Generator().manual_seed(0)
    random = (3 * torch.randn(5, 7, 4, generator=drawn)).softmax(dim=-1)
    return [worked, outvoted, random]


#: Typical wrong ways of combining, each with what it gets wrong.
_SLIPS: tuple[tuple[Callable[[torch.Tensor], torch.Tensor], str], ...] = (
    (lambda p: p.sum(dim=0), "you summed the posteriors; divide by the number of nets (a posterior sums to 1)"),
    (
        lambda p: p.clamp_min(1e-12).log().mean(dim=0).softmax(dim=-1),
        "you averaged log-posteriors (a geometric mean): one net's near-zero probability then vetoes a class the "
        "others favour; the paper averages the posteriors themselves",
    ),
    (
        lambda p: torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).float().mean(dim=0),
        "you took a majority vote of the nets' top classes; the paper averages their posteriors, so a confident net "
        "counts for more than a hesitant one",
    ),
    (
        lambda p: p.mean(dim=0).softmax(dim=-1),
        "you applied a soft-max to the averaged posteriors; they are probabilities already",
    ),
)


def check_ensemble(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Check ``fn(posteriors)`` (nets × images × classes) → the ensemble's posterior (images × classes), §4.4."""
    __tracebackhide__ = True
    for posteriors in _cases():
        given = posteriors.clone()
        with calling("my_ensemble(posteriors)"):
            answer = fn(given)
        if not torch.equal(given, posteriors):
            raise ExerciseError("my_ensemble changed the posteriors it was given; compute a new tensor instead")
        if not isinstance(answer, torch.Tensor):
            raise ExerciseError(f"my_ensemble returned a {type(answer).__name__}; return a tensor, images × classes")
        want = posteriors.mean(dim=0)
        if answer.shape != want.shape:
            hint = " (you averaged over the wrong dimension: the nets are dimension 0)" if answer.ndim == 2 else ""
            raise ExerciseError(
                f"for posteriors of shape {tuple(posteriors.shape)} (nets × images × classes) my_ensemble returned "
                f"shape {tuple(answer.shape)}; expected {tuple(want.shape)}, images × classes{hint}"
            )
        if torch.allclose(answer.double(), want.double(), atol=1e-6):
            continue
        for slip, why in _SLIPS:
            if torch.allclose(answer.double(), slip(posteriors).double(), atol=1e-6):
                raise ExerciseError(f"my_ensemble gave {answer.tolist()} for {posteriors.tolist()}: {why}")
        raise ExerciseError(
            f"my_ensemble gave {answer.tolist()} for the posteriors {posteriors.tolist()}; the mean over the nets "
            f"is {want.tolist()}"
        )
    return passed("my_ensemble averages the nets' soft-max posteriors, as §4.4 combines the paper's nets")
