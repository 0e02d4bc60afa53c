"""Chapter 14's checked exercise: Appendix B's image descriptor from dense feature maps."""

import pytest
import torch
from torch.nn.functional import normalize

from vgg_tutorial.lessons.exercises import ExerciseError, check_descriptor


def right(maps):
    return normalize(torch.stack([m.mean(dim=(2, 3)) for m in maps]).mean(0), dim=1)


def test_check_descriptor_accepts_the_descriptor(capsys):
    assert check_descriptor(right)
    assert check_descriptor(lambda maps: right(maps) / right(maps).norm(dim=1, keepdim=True))
    assert capsys.readouterr().out.startswith("✓ my_descriptor averages positions")


def mutating(maps):
    maps[0] /= 2
    return right(maps)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda maps: torch.stack([m.mean(dim=(2, 3)) for m in maps]).mean(0), "not L2-normalised"),
        (
            lambda maps: torch.stack([normalize(m.mean(dim=(2, 3)), dim=1) for m in maps]).mean(0),
            "normalised each scale before averaging",
        ),
        (
            lambda maps: normalize(torch.stack([m.amax(dim=(2, 3)) for m in maps]).mean(0), dim=1),
            "maximum over positions",
        ),
        (lambda maps: normalize(sum(m.sum(dim=(2, 3)) for m in maps), dim=1), "summed the positions"),
        (
            lambda maps: normalize(torch.stack([m.mean(dim=(2, 3)) for m in maps]).mean(0), dim=0),
            r"normalised each column \(dim=0\)",
        ),
        (lambda maps: normalize(torch.cat([m.mean(dim=(2, 3)) for m in maps], 1), dim=1), "stacked the 3 scales"),
        (lambda maps: [m.mean(dim=(2, 3)) for m in maps], "returned a list"),
        (lambda maps: None, "returned NoneType"),
        (lambda maps: right(maps)[0], r"returned shape \(5,\)"),
        (mutating, "changed the maps"),
        (lambda maps: right(maps).flip(0), "expected"),
    ],
)
def test_check_descriptor_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        check_descriptor(answer)


def test_check_descriptor_says_when_the_stub_is_not_written():
    def stub(maps):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        check_descriptor(stub)
