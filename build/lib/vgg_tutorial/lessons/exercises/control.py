"""Check for chapter 11's exercise on §4.1's shallow control: ``check_shallow_control``.

``fn(blocks)`` gets a configuration as :data:`~vgg_tutorial.paper.configs.CONFIGS` holds it (a tuple of blocks, each a
tuple of layers such as ``"conv3-64"``) and must return its shallow control the way §4.1 derives B-5x5 from B:
each pair of consecutive 3×3 convolutions of a block becomes one ``"conv5-<channels>"`` with the pair's output
channels; a 3×3 left without a partner, ``"LRN"`` and ``"conv1-..."`` stay; a pair never spans a block's end (a
max-pool). The check compares with :func:`vgg_tutorial.paper.configs.shallow_control` on several columns of Table 1 and
names the slip it recognises: both convolutions kept, a pair merged across a pool, a 7×7 instead of a 5×5, the
channels lost or summed, other layers dropped, a block written as a string (the missing comma of a one-element
tuple), the blocks flattened into one sequence, nothing returned.
"""

from __future__ import annotations

from collections.abc import Callable

from vgg_tutorial.lessons.exercises.common import ExerciseError, calling, passed
from vgg_tutorial.paper.configs import CONFIGS, shallow_control

#: The columns the check tries: B (the paper's case), a lone 3×3 before a pool (A-LRN), a 1×1 (C), an odd one (D).
_NAMES = ("B", "A-LRN", "C", "D", "E")

Blocks = tuple[tuple[str, ...], ...]


def _across_pools(blocks: Blocks) -> list[str]:
    """The slip of merging every two consecutive 3×3 layers of the whole net, pools ignored (flat)."""
    flat = [layer for block in blocks for layer in block]
    return [layer for block in shallow_control((tuple(flat),)) for layer in block]


def _diagnose(name: str, blocks: Blocks, answer: Blocks) -> str:
    """What is wrong with ``answer`` for configuration ``name``, as precisely as the check can tell."""
    want = shallow_control(blocks)
    flat = [layer for block in answer for layer in block]
    if answer == blocks:
        return "nothing changed: every pair of conv3 layers must become one conv5 layer"
    if any(layer.startswith("conv7-") for layer in flat):
        return "you used a 7×7 convolution: two stacked 3×3 layers see 5×5 pixels (each adds k − 1 = 2), §2.3"
    if len(answer) != len(want):
        return f"you returned {len(answer)} blocks, {name} has {len(want)}: keep one block per max-pool"
    lost = any(
        not any(layer.startswith("conv") for layer in got) and any(layer.startswith("conv") for layer in block)
        for got, block in zip(answer, blocks)
    )
    if lost or flat == _across_pools(blocks):
        return "you merged a pair across a max-pool: a pair is two 3×3 layers of the same block"
    for index, (got, expected) in enumerate(zip(answer, want)):
        if got == expected:
            continue
        where = f"block {index + 1} of {name} is {got}, expected {expected}"
        kept = [layer for layer in expected if not layer.startswith("conv5-")]
        if [layer for layer in got if not layer.startswith(("conv5-", "conv3-"))] != [
            layer for layer in kept if not layer.startswith("conv3-")
        ]:
            return f"{where}: keep the layers that are not 3×3 convolutions (LRN, conv1) where they are"
        if len(got) > len(expected):
            return f"{where}: you kept both layers of a pair; one conv5 layer replaces the two conv3 layers"
        if len(got) < len(expected):
            return f"{where}: a 3×3 layer left without a partner in its block stays; you dropped it"
        if [layer.split("-")[0] for layer in got] == [layer.split("-")[0] for layer in expected]:
            return f"{where}: the conv5 layer keeps the pair's output channels (two conv3-64 give conv5-64)"
        return f"{where}: a 3×3 layer left without a partner in its block stays a conv3 layer"
    return f"{name}: expected {want}, got {answer}"


def _as_blocks(answer, name: str) -> Blocks:
    """``answer`` as a tuple of tuples of strings, or an :class:`ExerciseError` naming what it is instead."""
    if answer is None:
        raise ExerciseError("my_shallow_control returned None: does your function end with a return statement?")
    if not isinstance(answer, (tuple, list)) or not answer:
        raise ExerciseError(f"my_shallow_control returned {type(answer).__name__}; return a tuple of blocks")
    if all(isinstance(block, str) for block in answer):
        raise ExerciseError(
            f"for {name} you returned {tuple(answer)}, a flat sequence of layer names; keep the blocks, one tuple of "
            f"layers per block (each ends with a max-pool); a one-element block needs a trailing comma: "
            f"({answer[0]!r},)"
        )
    for block in answer:
        if isinstance(block, str):
            raise ExerciseError(
                f"for {name} a block is the string {block!r}, not a tuple of layers: a one-element tuple needs a "
                f"trailing comma, ({block!r},)"
            )
        if not isinstance(block, (tuple, list)) or not all(isinstance(layer, str) for layer in block):
            raise ExerciseError(f"for {name} a block is {block!r}; each block is a tuple of layer names")
    return tuple(tuple(block) for block in answer)


def check_shallow_control(fn: Callable[[Blocks], Blocks]) -> bool:
    """Check ``fn(blocks)`` → the shallow control of a configuration: each pair of 3×3 layers one 5×5 (§4.1)."""
    __tracebackhide__ = True
    for name in _NAMES:
        blocks = CONFIGS[name]
        with calling(f'my_shallow_control(CONFIGS["{name}"])'):
            answer = fn(blocks)
        answer = _as_blocks(answer, name)
        if answer != shallow_control(blocks):
            raise ExerciseError(_diagnose(name, blocks, answer))
    return passed(
        "my_shallow_control turns each pair of 3×3 layers of a block into one 5×5 with the same channels "
        f"({', '.join(_NAMES)} checked); B gives {' '.join(b[0] for b in shallow_control(CONFIGS['B']))}"
    )
