"""Chapter 13's checked exercise: where a box goes under a horizontal flip (Appendix A, §3.1)."""

import pytest
import torch

from vgg_tutorial.lessons.exercises import ExerciseError, check_flipped_box


def test_check_flipped_box_accepts_the_mirrored_box(capsys):
    assert check_flipped_box(lambda b, w: torch.stack([w - b[2], b[1], w - b[0], b[3]]))
    assert check_flipped_box(lambda b, w: torch.tensor([w - b[2].item(), b[1].item(), w - b[0].item(), b[3].item()]))
    assert capsys.readouterr().out.startswith("✓ my_flipped_box mirrors x")


def mutating(b, w):
    b[0], b[2] = w - b[2], w - b[0]
    return b


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda b, w: torch.stack([w - b[0], b[1], w - b[2], b[3]]), "did not swap them"),
        (lambda b, w: torch.stack([w - 1 - b[2], b[1], w - 1 - b[0], b[3]]), "you used width - 1"),
        (lambda b, w: torch.stack([b[0], w - b[3], b[2], w - b[1]]), "flipped the vertical axis"),
        (lambda b, w: torch.stack([w - b[2], w - b[3], w - b[0], w - b[1]]), "flipped both axes"),
        (lambda b, w: [w - b[2], b[1], w - b[0], b[3]], "returned a list"),
        (lambda b, w: None, "returned NoneType"),
        (lambda b, w: torch.stack([w - b[2], w - b[0]]), r"returned shape \(2,\)"),
        (mutating, "changed the box it was given"),
        (lambda b, w: b.clone(), "expected"),
    ],
)
def test_check_flipped_box_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        check_flipped_box(answer)


def test_check_flipped_box_says_when_the_stub_is_not_written():
    def stub(box, width):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        check_flipped_box(stub)
