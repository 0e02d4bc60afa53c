"""Chapter 12's checked exercise: combining nets by averaging their soft-max posteriors (§4.4)."""

import pytest
import torch

from vgg_tutorial.lessons.exercises import ExerciseError, check_ensemble


def test_check_ensemble_accepts_the_mean_of_the_posteriors(capsys):
    assert check_ensemble(lambda p: p.mean(dim=0))
    assert check_ensemble(lambda p: sum(p) / len(p))  # a loop over the nets
    assert check_ensemble(lambda p: torch.stack(list(p)).sum(0) / p.shape[0])
    assert capsys.readouterr().out.startswith("✓ my_ensemble averages")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda p: p.sum(dim=0), "you summed the posteriors"),
        (lambda p: p.clamp_min(1e-12).log().mean(0).softmax(-1), "averaged log-posteriors"),
        (lambda p: torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).float().mean(0), "majority vote"),
        (lambda p: p.mean(0).softmax(-1), "soft-max to the averaged posteriors"),
        (lambda p: p.mean(dim=1), r"wrong dimension: the nets are dimension 0"),
        (lambda p: p.mean(dim=-1), r"expected \(1, 3\), images × classes"),
        (lambda p: p[0], "the mean over the nets is"),
        (lambda p: p.mean(0).tolist(), "returned a list"),
        (lambda p: p.div_(len(p)).sum(0), "changed the posteriors it was given"),
    ],
)
def test_check_ensemble_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        check_ensemble(answer)


def test_check_ensemble_says_when_the_stub_is_not_written():
    def stub(posteriors):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        check_ensemble(stub)
