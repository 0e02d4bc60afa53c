"""Checks for the exercises on running and reading experiments: chapters 8 (separated), 9 (grid) and 10 (shard).

- ``check_separated(fn)``: ``fn(better, worse)``, two lists of per-seed errors, is True only when every seed of
  ``better`` beats every seed of ``worse`` (chapter 8's rule, :func:`vgg_tutorial.studies.experiments.separated`);
- ``check_crop_grid(fn)``: ``fn(image_size, crop, n=5)``, the (top, left) corners of the n × n grid of crops over a
  square image, row by row (§4.3; :func:`vgg_tutorial.testing.views.crop_windows`);
- ``check_shard(fn)``: ``fn(order, batch_size, rank, world_size)``, one process's images of an epoch: its slice of
  every complete global batch (:func:`vgg_tutorial.data.loaders.shard`).
"""

from __future__ import annotations

import inspect
import itertools
import math
import numbers
import random
import statistics
from collections.abc import Callable, Iterator

import torch

from vgg_tutorial.data.loaders import shard
from vgg_tutorial.lessons.exercises.common import ExerciseError, calling, describe_value, passed
from vgg_tutorial.testing.views import crop_windows

# --------------------------------------------------------------------------------------------------- separated

#: (better, worse, answer): top-1 errors in %, one number per seed. Each case tells a slip from the rule; the check
#: also tries every order of each case's seeds and draws more cases (:func:`_separated_cases`).
SEPARATED_CASES: tuple[tuple[list[float], list[float], bool], ...] = (
    ([20.0, 21.0, 22.0], [23.0, 24.0, 25.0], True),  # clearly apart
    ([20.0, 21.0, 25.0], [22.0, 23.0, 24.0], False),  # better on average, but one seed of better is worse
    ([20.0, 24.0], [22.0, 26.0], False),  # seed by seed better, yet the ranges overlap
    ([20.0, 21.0, 22.0], [22.0, 23.0, 24.0], False),  # a tie: the worst of better equals the best of worse
    ([30.5, 31.0], [31.5, 32.0, 33.0], True),  # different numbers of seeds
    ([25.0, 26.0, 27.0], [20.0, 21.0, 22.0], False),  # the other way round
    ([22.0, 20.0, 21.0], [25.0, 23.0, 24.0], True),  # not sorted
    ([24.0, 20.0, 21.0], [25.0, 23.0, 26.0], False),  # not sorted: the last of better is not its worst
    ([18.0, 30.0], [20.0, 21.0], False),  # the best seed is better, the mean is not
    ([24.0, 25.0, 26.0], [20.0, 21.0, 30.0], False),  # one bad seed of worse reaches past better
    ([25.0, 20.0], [22.0, 26.0], False),  # not better seed by seed, but the worst seed is
    ([20.0, 20.5, 29.0], [21.0, 22.0, 23.0], False),  # the medians are apart, the means are not, nor the seeds
    ([21.0], [22.0], True),  # one seed each
)


def _separated(better: list[float], worse: list[float]) -> bool:
    return max(better) < min(worse)


def _separated_cases() -> list[tuple[list[float], list[float], bool]]:
    """The fixed cases, then every order of their seeds, then drawn ones (fixed seed) whose spreads overlap or not."""
    cases = list(SEPARATED_CASES)
    for better, worse, want in SEPARATED_CASES:
        for b in dict.fromkeys(itertools.permutations(better)):
            for w in dict.fromkeys(itertools.permutations(worse)):
                if (list(b), list(w)) != (better, worse):
                    cases.append((list(b), list(w), want))
    draw = random.Random(0)
    for _ in range(300):
        centre, gap = draw.uniform(20, 30), draw.choice([-2.0, -0.5, 0.0, 0.5, 2.0, 4.0])
        better = [round(centre + draw.uniform(-2, 2), 1) for _ in range(draw.randint(1, 5))]
        worse = [round(centre + gap + draw.uniform(-2, 2), 1) for _ in range(draw.randint(1, 5))]
        cases.append((better, worse, _separated(better, worse)))
    return cases


#: Typical wrong rules, each with what it gets wrong; a learner's answers matching one on every case name it.
_SEPARATED_SLIPS: tuple[tuple[Callable[[list[float], list[float]], bool], str], ...] = (
    (
        lambda b, w: statistics.mean(b) < statistics.mean(w),
        "you compared the means; a better mean can hide a seed of `better` that is worse than a seed of `worse`",
    ),
    (
        lambda b, w: statistics.median(b) < statistics.median(w),
        "you compared the medians; a better median can hide a seed of `better` that is worse than a seed of `worse`",
    ),
    (
        lambda b, w: max(b) <= min(w),
        "you used <=; when the worst seed of `better` equals the best seed of `worse`, the two are not separated",
    ),
    (
        lambda b, w: min(b) < min(w),
        "you compared the best seed with the best seed (min with min); compare the worst of `better` (its max) "
        "with the best of `worse` (its min)",
    ),
    (
        lambda b, w: max(b) < max(w),
        "you compared the worst seed with the worst seed (max with max); compare the worst of `better` (its max) "
        "with the best of `worse` (its min)",
    ),
    (
        lambda b, w: min(b) < max(w),
        "you compared the best of `better` with the worst of `worse`; that holds whenever the ranges overlap at all",
    ),
    (
        lambda b, w: all(x < y for x, y in zip(b, w)),
        "you compared seed i with seed i; seeds are not paired, every seed of `better` must beat every seed of `worse`",
    ),
    (
        lambda b, w: b[-1] < w[0],
        "you compared the last seed of `better` with the first of `worse`, as if the lists were sorted; they are "
        "not, use max(better) and min(worse)",
    ),
    (
        lambda b, w: max(w) < min(b),
        "the arguments are the wrong way round: errors are lower for the better network",
    ),
)


def _as_bool(value, what: str) -> bool:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif type(value).__module__ == "numpy" and getattr(value, "size", None) == 1 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return value
    if value is None:
        raise ExerciseError(f"{what} returns {describe_value(value)}")
    if isinstance(value, tuple):
        raise ExerciseError(
            f"{what} returns a tuple {value!r}: return True or False (a trailing comma, or `return a, b`, makes a "
            "tuple)"
        )
    if isinstance(value, str):
        raise ExerciseError(f"{what} returns the string {value!r}: return the bool True or False, not text")
    if isinstance(value, numbers.Real):
        raise ExerciseError(
            f"{what} returns the number {value!r}: return the comparison itself (True or False), not a difference"
        )
    raise ExerciseError(f"{what} returns a {type(value).__name__}: return True or False")


def _unchanged(what: str, **given: tuple[list, list]) -> None:
    """Refuse an answer that changed the lists it was handed (sorting or popping in place changes the caller's)."""
    for name, (before, after) in given.items():
        if after != before:
            raise ExerciseError(
                f"{what} changed its argument `{name}` from {before} to {after}: the caller's list is changed too "
                "(list.sort(), pop(), remove() work in place). Read the lists without changing them: sorted(), "
                "max(), min() or a copy."
            )


def check_separated(fn: Callable[[list[float], list[float]], bool]) -> bool:
    """Check ``fn(better, worse)``: True only when every seed of ``better`` has a lower error than every seed of
    ``worse``, that is when the worst of ``better`` (its max) is below the best of ``worse`` (its min), whatever the
    order of the seeds, and without changing the two lists."""
    __tracebackhide__ = True
    cases = _separated_cases()
    answers = []
    for better, worse, _ in cases:
        what = f"your function on better={better}, worse={worse}"
        b, w = list(better), list(worse)
        with calling(what):
            got = fn(b, w)
        _unchanged(what, better=(better, b), worse=(worse, w))
        answers.append(_as_bool(got, what))
    expected = [want for *_, want in cases]
    if answers == expected:
        return passed(
            "Your rule separates two cells only when the worst seed of the better one beats the best seed of the "
            "worse one: a mean or a best seed can hide an overlap."
        )
    wrong = next(i for i, (got, want) in enumerate(zip(answers, expected)) if got != want)
    better, worse, want = cases[wrong]
    slip = next((text for rule, text in _SEPARATED_SLIPS if [rule(b, w) for b, w, _ in cases] == answers), "")
    if not slip and len(set(answers)) == 1:
        slip = f"it returns {answers[0]} whatever the errors: does your function compare its two arguments?"
    elif not slip:
        same_seeds = [
            i
            for i, (b, w, _) in enumerate(cases)
            if i != wrong and sorted(b) == sorted(better) and sorted(w) == sorted(worse)
        ]
        if any(answers[i] == want for i in same_seeds):
            slip = (
                "with the same seeds in another order it answers " + f"{want}: the order of the seeds must not matter"
            )
    raise ExerciseError(
        f"for better={better} and worse={worse} your function returns {answers[wrong]}, expected {want} (the worst "
        f"of better is {max(better):g}, the best of worse {min(worse):g})"
        + (f": {slip}" if slip else "")
        + ("" if slip.endswith("?") else ".")
    )


# --------------------------------------------------------------------------------------------------- crop grid

#: (image_size, crop, n): the paper's scales with 224-pixel crops, a miniature one that needs rounding, a 3 × 3 grid.
GRID_CASES: tuple[tuple[int, int, int | None], ...] = (
    (256, 224, None),
    (384, 224, None),
    (55, 32, None),
    (300, 224, 3),
)


def _offsets_slips(size: int, crop: int, n: int) -> dict[str, list[int]]:
    return {
        "the spacing is (image_size - crop) / n, not / (n - 1): the last crop must end at the far border": [
            round(i * (size - crop) / n) for i in range(n)
        ],
        "the spacing is image_size / n: the crops must stay inside the image, the last one ending at the far border": [
            round(i * size / n) for i in range(n)
        ],
        "the offsets are truncated (int or //) instead of rounded to the nearest pixel": [
            int(i * (size - crop) / (n - 1)) for i in range(n)
        ],
        "the spacing is off by one pixel: the last crop must end exactly at the far border": [
            round(i * (size - crop + 1) / (n - 1)) for i in range(n)
        ],
        "the spacing is off by one pixel: the last crop must end exactly at the far border, not one pixel before": [
            round(i * (size - crop - 1) / (n - 1)) for i in range(n)
        ],
    }


def _whole(x) -> int | None:
    """``x`` as an int if it is a whole number (an int, a numpy number, a 0-d tensor, a float like 40.0), else None."""
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        x = x.item()
    elif type(x).__module__ == "numpy" and getattr(x, "size", None) == 1 and hasattr(x, "item"):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x) or x != int(x):
        return None
    return int(x)


def _listed(value):
    """``value`` as a list when it is a tensor, an array, or an iterator such as a generator or itertools.product."""
    if isinstance(value, torch.Tensor) or type(value).__module__ == "numpy":
        return value.tolist()
    if isinstance(value, Iterator):
        return list(value)
    return value


def _as_pairs(value, what: str) -> list[tuple[int, int]]:
    value = _listed(value)
    if isinstance(value, (set, frozenset)):  # the crops' order does not matter, so a set of pairs is an answer
        value = list(value)
    if value is None:
        raise ExerciseError(f"{what} returns {describe_value(value)}")
    if isinstance(value, str):
        raise ExerciseError(f"{what} returns the string {value!r}: return the list of (top, left) pairs, not text")
    if not isinstance(value, (list, tuple)):
        raise ExerciseError(f"{what} returns a {type(value).__name__}: return a list of (top, left) pairs")
    if value and all(_whole(x) is not None or isinstance(x, numbers.Real) for x in value):
        raise ExerciseError(
            f"{what} returns {value!r:.200}, plain numbers: return one (top, left) pair per crop, n × n of them"
            + (
                " (a single pair is one crop, not the grid)"
                if len(value) == 2
                else " (not only the offsets along a side)"
            )
        )
    pairs = []
    for item in value:
        if isinstance(item, torch.Tensor) or type(item).__module__ == "numpy":
            item = item.tolist()
        whole = [_whole(x) for x in item] if isinstance(item, (list, tuple)) and len(item) == 2 else None
        if whole is None or None in whole:
            raise ExerciseError(
                f"{what} returns {value!r:.200}: return a list of (top, left) pairs of whole pixels, one per crop "
                f"(found {item!r})"
            )
        pairs.append((whole[0], whole[1]))
    return pairs


def _default_n(fn) -> object:
    """The default of ``fn``'s third parameter, or ``inspect.Parameter.empty`` (none, or no signature to read)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return inspect.Parameter.empty
    return parameters[2].default if len(parameters) > 2 else inspect.Parameter.empty


def _axis_message(name: str, got: list[int], want: list[int], size: int, crop: int, grid: int) -> str:
    slip = next((text for text, offs in _offsets_slips(size, crop, grid).items() if offs == got), "")
    return f"the {name} offsets are {got}, expected {want}" + (f" ({slip})" if slip else "")


def check_crop_grid(fn: Callable[..., list[tuple[int, int]]]) -> bool:
    """Check ``fn(image_size, crop, n=5)``: the (top, left) corners of the n × n regular grid of ``crop``-pixel
    crops over a square image of side ``image_size`` (§4.3), in any order; along a side the offsets are
    ``round(i · (image_size − crop) / (n − 1))`` for i = 0 … n − 1, so that the outer crops touch the borders (the
    book's choice, as in :func:`vgg_tutorial.testing.views.crop_windows`; the paper says only "a regular grid")."""
    __tracebackhide__ = True
    for size, crop, n in GRID_CASES:
        grid = 5 if n is None else n
        args = f"image_size={size}, crop={crop}" + ("" if n is None else f", n={n}")
        what = f"your function on {args}"
        with calling(what):
            got = fn(size, crop) if n is None else fn(size, crop, n)
        got = _as_pairs(got, what)
        want = crop_windows(size, size, crop, grid)
        if sorted(got) == sorted(want):
            continue  # any order: the scores of the crops are averaged
        if len(got) != len(want):
            hint = (
                f" Return one (top, left) pair per crop: {grid} × {grid} = {grid * grid}, not just the {grid} offsets "
                "along one side."
                if len(got) == grid
                else ""
            )
            default = _default_n(fn)
            if n is None and default not in (5, inspect.Parameter.empty):
                hint = f" With no n given, the grid is the paper's 5 × 5: your default is n={default!r}." + hint
            raise ExerciseError(f"{what} returns {len(got)} crops, expected {len(want)}.{hint}")
        if len(set(got)) < len(got):
            twice = next(p for p in got if got.count(p) > 1)
            raise ExerciseError(f"{what} returns the crop {twice} more than once: every crop of the grid once.")
        outside = [(t, x) for t, x in got if t < 0 or x < 0 or t + crop > size or x + crop > size]
        cause = f" The crop at {outside[0]} does not fit in the {size} × {size} image." if outside else ""
        want_side = sorted({left for _, left in want})
        tops, lefts = sorted({t for t, _ in got}), sorted({x for _, x in got})
        wrong_axes = [
            _axis_message(name, side, want_side, size, crop, grid)
            for name, side in (("top", tops), ("left", lefts))
            if side != want_side
        ]
        # distinct n × n pairs whose tops and lefts are the right n offsets are the grid: some axis is wrong here
        raise ExerciseError(f"{what}: " + "; ".join(wrong_axes) + "." + cause)
    return passed(
        f"Your grid matches vgg_tutorial.testing.views.crop_windows: at Q=384 the 224-pixel crops start at "
        f"{sorted({t for t, _ in crop_windows(384, 384, 224)})} along each side, the outer ones touching the borders."
    )


# --------------------------------------------------------------------------------------------------------- shard

#: (length of the epoch, batch_size, world_size): exact, with a left-over, one process with a smaller last batch,
#: four processes, and an epoch shorter than one global batch (nothing to take).
SHARD_CASES: tuple[tuple[int, int, int], ...] = ((24, 3, 2), (20, 3, 2), (23, 2, 3), (10, 4, 1), (26, 2, 4), (5, 3, 2))


def _as_indices(value, what: str) -> list[int]:
    value = _listed(value)
    if value is None:
        raise ExerciseError(f"{what} returns {describe_value(value)}")
    if isinstance(value, str):
        raise ExerciseError(f"{what} returns the string {value!r}: return the list of image indices, not text")
    if isinstance(value, (range, tuple)):
        value = list(value)
    if not isinstance(value, list):
        raise ExerciseError(f"{what} returns a {type(value).__name__}: return a list of image indices")
    if any(isinstance(x, (list, tuple)) or (isinstance(x, torch.Tensor) and x.dim() > 0) for x in value):
        raise ExerciseError(
            f"{what} returns a list of lists ({value!r:.120}): return one flat list of this process's images, "
            "its batches one after the other"
        )
    indices = [_whole(x) for x in value]
    if None in indices:
        bad = value[indices.index(None)]
        raise ExerciseError(
            f"{what} returns {value!r:.120}: return a list of image indices (whole numbers), found {bad!r}"
        )
    return indices


def _shard_slips(order: list[int], b: int, rank: int, world: int) -> dict[str, list[int]]:
    whole = len(order) // (b * world) * b * world
    per = whole // world
    full = len(order) // world
    return {
        "each process takes a contiguous block of the epoch; it must take its slice of every global batch of "
        "batch_size × world_size images, so that together the processes see the batches one process would": order[
            rank * per : (rank + 1) * per
        ],
        "each process takes a contiguous block of the epoch; it must take its slice of every global batch of "
        "batch_size × world_size images (and leave out the incomplete last one)": order[
            rank * full : (rank + 1) * full
        ],
        "each process takes every world_size-th image; it must take a slice of batch_size images of every global "
        "batch": order[rank:whole:world],
        "each process takes every world_size-th image; it must take a slice of batch_size images of every global "
        "batch, and the incomplete last global batch is left out": order[rank::world],
        "you returned positions in the epoch, not the images: index `order` with them": shard(
            torch.arange(len(order)), b, rank, world
        ).tolist(),
    }


def _with_leftover(order: list[int], b: int, rank: int, world: int) -> list[int]:
    """The right slices, plus this process's part of the incomplete last global batch (the slip of not dropping it)."""
    return [order[k] for k in range(len(order)) if (k % (b * world)) // b == rank]


def check_shard(fn: Callable[[list[int], int, int, int], list[int]]) -> bool:
    """Check ``fn(order, batch_size, rank, world_size)``: process ``rank``'s images of an epoch whose shuffled
    indices are ``order``, when ``world_size`` processes take ``batch_size`` images each per step. Global batch k is
    ``order[k·B : (k+1)·B]`` with B = batch_size × world_size; process r takes its r-th slice of batch_size images
    of each; with several processes the incomplete last global batch is left out, with one nothing is."""
    __tracebackhide__ = True
    generator = torch.Generator().manual_seed(0)
    for length, b, world in SHARD_CASES:
        order = torch.randperm(100, generator=generator)[:length].tolist()
        taken = []
        for rank in range(world):
            what = f"your function on order={order}, batch_size={b}, rank={rank}, world_size={world}"
            given = list(order)
            with calling(what):
                got = fn(given, b, rank, world)
            _unchanged(what, order=(order, given))
            got = _as_indices(got, what)
            want = shard(torch.tensor(order), b, rank, world).tolist()
            if got != want:
                if world > 1 and got == _with_leftover(order, b, rank, world):
                    slip = (
                        f"you kept the incomplete last global batch ({length % (b * world)} images); leave it out, "
                        "so that every process takes as many steps as the others"
                    )
                elif world == 1 and got == order[: length // b * b]:
                    slip = "with one process nothing is left out: its last batch is just smaller"
                else:
                    slip = next((t for t, v in _shard_slips(order, b, rank, world).items() if v == got), "")
                raise ExerciseError(f"{what} returns {got}, expected {want}" + (f": {slip}." if slip else "."))
            taken += got
        if world > 1 and len(set(taken)) != len(taken):  # pragma: no cover - implied by the equality above
            raise ExerciseError(f"two processes take the same image of order={order}")
    return passed(
        "Your shard gives each process its slice of every global batch, so that together the processes train on "
        "exactly the batches one process would, and every process takes as many steps."
    )


__all__ = ["check_crop_grid", "check_separated", "check_shard"]
