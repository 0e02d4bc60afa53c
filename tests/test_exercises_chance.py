"""check_chance_level (chapter 6): the loss and the top-1 / top-5 accuracy of a uniform guess, and its slips."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vgg_tutorial.lessons import exercises
from vgg_tutorial.lessons.exercises import ExerciseError


def right(k):
    return math.log(k), 100 / k, 100 * min(5, k) / k


def test_check_chance_level_accepts_the_chance_level(capsys):
    assert exercises.check_chance_level(right)
    out = capsys.readouterr().out
    assert out.startswith("✓ ") and "2.303 loss, 10 % top-1, 50 % top-5 for 10" in out and "0.1 % and 0.5 %" in out
    # tensors, numpy numbers and a list are answers too
    assert exercises.check_chance_level(
        lambda k: [
            F.cross_entropy(torch.zeros(1, k), torch.tensor([0])),
            np.float64(100 / k),
            torch.tensor(100.0 * min(5, k) / k),
        ]
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda k: (math.log(k), 100 / k, 500 / k), "with 2 classes, the 5 best guesses cover every class"),
        (lambda k: (math.log(k), 1 / k, min(5, k) / k), "that is a fraction; give the accuracy in percent"),
        (lambda k: (math.log(k), 100 / k, 100 / k), "that is the top-1 accuracy"),
        (lambda k: (math.log10(k), 100 / k, 100 * min(5, k) / k), "log base 10"),
        (lambda k: math.log(k), "return three numbers, \\(loss, top1, top5\\)"),
        (lambda k: (math.log(k), 100 / k), "return three numbers"),
        (lambda k: (math.log(k), 100 / k, float("nan")), "top-5 accuracy is nan %, expected 50 %"),
    ],
)
def test_check_chance_level_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        exercises.check_chance_level(answer)


def test_check_chance_level_stub():
    def stub(num_classes):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_chance_level(stub)
