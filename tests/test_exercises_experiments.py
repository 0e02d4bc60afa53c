"""The checks of chapters 8, 9 and 10 pass right answers and name the mistake in the typical wrong ones."""

import itertools
import statistics

import numpy as np
import pytest
import torch

from vgg_tutorial.data.loaders import shard
from vgg_tutorial.lessons import exercises
from vgg_tutorial.lessons.exercises import ExerciseError
from vgg_tutorial.testing.views import crop_windows


def stub(*args):
    raise NotImplementedError


# ------------------------------------------------------------------------------------------------- separated


def test_check_separated_accepts_the_rule(capsys):
    assert exercises.check_separated(lambda better, worse: max(better) < min(worse))
    assert capsys.readouterr().out.startswith("✓ ")
    assert exercises.check_separated(lambda better, worse: np.max(better) < np.min(worse))  # a numpy bool
    assert exercises.check_separated(lambda better, worse: all(b < w for b in better for w in worse))
    assert exercises.check_separated(lambda better, worse: sorted(better)[-1] < sorted(worse)[0])
    assert exercises.check_separated(lambda b, w: torch.tensor(b).max() < torch.tensor(w).min())  # a 0-d tensor
    assert exercises.check_separated(lambda b, w: not any(x >= y for x in b for y in w))


def worst_last_assumed(b, w):
    """Right whenever the worst seed of `better` is not its last one."""
    return max(b[:-1] or b) < min(w)


def worst_first_of_worse(b, w):
    """Right when the best seed of `worse` comes first or the spreads are far apart."""
    return max(b) < w[0] if max(b) + 3 < max(w) else max(b) < min(w)


def sorts_in_place(b, w):
    b.sort()
    w.sort()
    return b[-1] < w[0]


def empties_the_lists(b, w):
    answer = max(b) < min(w)
    b.clear()
    return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (worst_last_assumed, "the order of the seeds must not matter"),
        (worst_first_of_worse, "expected False"),
        (sorts_in_place, "changed its argument `better`"),
        (empties_the_lists, "changed its argument `better`"),
        (lambda b, w: float("nan"), "returns the number nan"),
        (lambda b, w: statistics.median(b) < statistics.median(w), "you compared the medians"),
    ],
)
def test_check_separated_rejects_rules_right_only_for_some_orders_or_spreads(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        exercises.check_separated(answer)


def test_check_separated_names_the_means_only_for_the_means():
    with pytest.raises(ExerciseError) as error:
        exercises.check_separated(lambda b, w: statistics.median(b) < statistics.median(w))
    assert "means" not in str(error.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda b, w: statistics.mean(b) < statistics.mean(w), "you compared the means"),
        (lambda b, w: max(b) <= min(w), "you used <="),
        (lambda b, w: min(b) < min(w), "min with min"),
        (lambda b, w: max(b) < max(w), "max with max"),
        (lambda b, w: min(b) < max(w), "the best of `better` with the worst of `worse`"),
        (lambda b, w: all(x < y for x, y in zip(b, w)), "seed i with seed i"),
        (lambda b, w: b[-1] < w[0], "as if the lists were sorted"),
        (lambda b, w: max(w) < min(b), "the wrong way round"),
        (lambda b, w: True, "whatever the errors"),
        (lambda b, w: None, "does your function end with a return statement"),
        (lambda b, w: (max(b) < min(w),), "returns a tuple"),
        (lambda b, w: "True", "returns the string 'True'"),
        (lambda b, w: min(w) - max(b), "not a difference"),
        (stub, "not written yet"),
    ],
)
def test_check_separated_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected.replace("(", r"\(").replace("[", r"\[")):
        exercises.check_separated(answer)


def test_separated_slips_are_told_apart():
    from vgg_tutorial.lessons.exercises import experiments

    cases = experiments._separated_cases()
    answers = [tuple(rule(b, w) for b, w, _ in cases) for rule, _ in experiments._SEPARATED_SLIPS]
    right = tuple(want for *_, want in cases)
    assert len(set(answers)) == len(answers) and right not in answers


# ------------------------------------------------------------------------------------------------- crop grid


def grid_from(offsets):
    def fn(size, crop, n=5):
        side = offsets(size, crop, n)
        return [(top, left) for top in side for left in side]

    return fn


def test_check_crop_grid_accepts_the_paper_grid(capsys):
    assert exercises.check_crop_grid(lambda size, crop, n=5: crop_windows(size, size, crop, n))
    assert "[0, 40, 80, 120, 160]" in capsys.readouterr().out
    assert exercises.check_crop_grid(grid_from(lambda s, c, n: [round(i * (s - c) / (n - 1)) for i in range(n)]))
    assert exercises.check_crop_grid(lambda s, c, n=5: np.array(crop_windows(s, s, c, n)))
    assert exercises.check_crop_grid(lambda s, c, n=5: torch.tensor(crop_windows(s, s, c, n)))
    # any order (the crops' scores are averaged), 0-d tensors, numpy numbers, whole floats
    assert exercises.check_crop_grid(lambda s, c, n=5: [(left, top) for top, left in crop_windows(s, s, c, n)])
    assert exercises.check_crop_grid(lambda s, c, n=5: crop_windows(s, s, c, n)[::-1])
    assert exercises.check_crop_grid(
        lambda s, c, n=5: [(torch.tensor(t), torch.tensor(x)) for t, x in crop_windows(s, s, c, n)]
    )
    assert exercises.check_crop_grid(grid_from(lambda s, c, n: list(np.round(np.linspace(0, s - c, n)).astype(int))))
    assert exercises.check_crop_grid(grid_from(lambda s, c, n: list(np.round(np.linspace(0, s - c, n)))))
    offsets = lambda s, c, n: [round(i * (s - c) / (n - 1)) for i in range(n)]  # noqa: E731
    assert exercises.check_crop_grid(lambda s, c, n=5: itertools.product(offsets(s, c, n), offsets(s, c, n)))
    assert exercises.check_crop_grid(lambda s, c, n=5: set(crop_windows(s, s, c, n)))
    assert exercises.check_crop_grid(grid_from(lambda s, c, n: [float(round(i * (s - c) / (n - 1))) for i in range(n)]))


def test_check_crop_grid_blames_the_default_only_when_it_is_wrong():
    with pytest.raises(ExerciseError) as error:
        exercises.check_crop_grid(lambda s, c, n=5: crop_windows(s, s, c, n - 1))
    assert "default" not in str(error.value) and "returns 16 crops, expected 25" in str(error.value)


def test_check_crop_grid_never_prints_the_same_list_as_got_and_expected():
    # right lefts, wrong tops (the last row one pixel short): the message names the axis that is wrong
    def answer(s, c, n=5):
        return [(t - (t == s - c), x) for t, x in crop_windows(s, s, c, n)]

    with pytest.raises(
        ExerciseError, match=r"the top offsets are \[0, 8, 16, 24, 31\], expected \[0, 8, 16, 24, 32\]"
    ) as error:
        exercises.check_crop_grid(answer)
    assert "left offsets" not in str(error.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (grid_from(lambda s, c, n: [round(i * (s - c) / n) for i in range(n)]), "not / \\(n - 1\\)"),
        (grid_from(lambda s, c, n: [round(i * s / n) for i in range(n)]), "does not fit"),
        (grid_from(lambda s, c, n: [i * (s - c) // (n - 1) for i in range(n)]), "truncated"),
        (grid_from(lambda s, c, n: [round(i * (s - c + 1) / (n - 1)) for i in range(n)]), "off by one"),
        (grid_from(lambda s, c, n: [round(i * (s - c - 1) / (n - 1)) for i in range(n)]), "off by one"),
        (lambda s, c, n=5: crop_windows(s, s, c, n)[:-1] + crop_windows(s, s, c, n)[:1], "more than once"),
        (
            lambda s, c, n=5: [(t, x // 2 * 2) for t, x in crop_windows(s, s, c, n)],
            r"the left offsets are \[0, 6, 12, 16, 22\], expected \[0, 6, 12, 17, 23\]\.$",
        ),
        (lambda s, c, n=5: [(float("nan"), 0)] * (n * n), "pairs of whole pixels"),
        (lambda s, c, n=5: [(float("inf"), 0)] * (n * n), "pairs of whole pixels"),
        (lambda s, c, n=5: [round(i * (s - c) / (n - 1)) for i in range(n)], "not only the offsets"),
        (lambda s, c, n=5: (0, 0), "a single pair is one crop"),
        (lambda s, c, n=3: crop_windows(s, s, c, n), "paper's 5 × 5: your default is n=3"),
        (lambda s, c, n=5: crop_windows(s, s, c, 5), "returns 25 crops, expected 9"),
        (lambda s, c, n=5: None, "does your function end with a return statement"),
        (lambda s, c, n=5: "grid", "the string 'grid'"),
        (stub, "not written yet"),
    ],
)
def test_check_crop_grid_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        exercises.check_crop_grid(answer)


# ----------------------------------------------------------------------------------------------------- shard


def good_shard(order, batch_size, rank, world_size):
    if world_size == 1:
        return order
    step = batch_size * world_size
    whole = len(order) // step * step
    return [i for k in range(0, whole, step) for i in order[k + rank * batch_size : k + (rank + 1) * batch_size]]


def test_check_shard_accepts_slices_of_each_global_batch(capsys):
    assert exercises.check_shard(good_shard)
    assert capsys.readouterr().out.startswith("✓ ")
    assert exercises.check_shard(lambda *args: torch.tensor(good_shard(*args)))
    assert exercises.check_shard(lambda *args: tuple(good_shard(*args)))
    assert exercises.check_shard(lambda *args: [torch.tensor(i) for i in good_shard(*args)])  # 0-d tensors
    assert exercises.check_shard(lambda *args: [np.int64(i) for i in good_shard(*args)])
    assert exercises.check_shard(lambda o, *rest: list(np.asarray(o)[good_shard(list(range(len(o))), *rest)]))
    assert exercises.check_shard(lambda o, b, r, w: shard(torch.tensor(o), b, r, w))
    assert exercises.check_shard(lambda *args: (i for i in good_shard(*args)))  # a generator


def pops_the_order(o, b, r, w):
    answer = good_shard(list(o), b, r, w)
    del o[len(o) // (b * w) * b * w :]
    return answer


def contiguous(order, b, rank, world):
    per = len(order) // (b * world) * b
    return order[rank * per : (rank + 1) * per]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (contiguous, "contiguous block of the epoch"),
        (lambda o, b, r, w: o[r::w], "every world_size-th image"),
        (
            lambda o, b, r, w: [i for k in range(0, len(o), b * w) for i in o[k + r * b : k + (r + 1) * b]],
            "you kept the incomplete last global batch",
        ),
        (
            lambda o, b, r, w: [
                i for k in range(0, len(o) // (b * w) * b * w, b * w) for i in range(k + r * b, k + (r + 1) * b)
            ],
            "positions in the epoch, not the images",
        ),
        (
            lambda o, b, r, w: [
                i for k in range(0, len(o) // (b * w) * b * w, b * w) for i in o[k + r * b : k + (r + 1) * b]
            ],
            "with one process nothing is left out",
        ),
        (
            lambda o, b, r, w: [o[k + r * b : k + (r + 1) * b] for k in range(0, len(o) // (b * w) * b * w, b * w)],
            "a list of lists",
        ),
        (lambda o, b, r, w: None, "does your function end with a return statement"),
        (lambda o, b, r, w: "0 1 2", "the string '0 1 2'"),
        (pops_the_order, "changed its argument `order`"),
        (lambda o, b, r, w: [float("nan")] * len(good_shard(o, b, r, w)), "found nan"),
        (lambda o, b, r, w: good_shard(o, b, r, w) if len(o) >= b * w else o[:b], r"order=\[\d+, \d+, \d+, \d+, \d+\]"),
        (stub, "not written yet"),
    ],
)
def test_check_shard_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        exercises.check_shard(answer)
