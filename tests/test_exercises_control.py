"""Chapter 11's checked exercise: §4.1's shallow control, each pair of 3×3 convolutions one 5×5."""

import pytest

from vgg_tutorial.lessons.exercises import ExerciseError, check_shallow_control


def merge(blocks, kernel="conv5", keep_both=False, channels=lambda c: c):
    """A reader's function with knobs for the slips: the kernel written, both layers kept, the channels."""
    out = []
    for block in blocks:
        layers = []
        for layer in block:
            if layer.startswith("conv3-") and layers and layers[-1].startswith("conv3-"):
                c = int(layer.split("-")[1])
                new = f"{kernel}-{channels(c)}"
                layers[-1:] = [new, new] if keep_both else [new]
            else:
                layers.append(layer)
        out.append(tuple(layers))
    return tuple(out)


def right(blocks):
    return merge(blocks)


def across_pools(blocks):
    flat = [layer for block in blocks for layer in block]
    return (merge((tuple(flat),))[0],)


def dropping_others(blocks):
    return tuple(tuple(layer for layer in block if layer.startswith(("conv3", "conv5"))) for block in merge(blocks))


def one_element_string(blocks):
    return tuple(block[0] if len(block) == 1 else block for block in merge(blocks))


def flat(blocks):
    return tuple(layer for block in merge(blocks) for layer in block)


def every_conv3_to_conv5(blocks):
    return tuple(tuple(layer.replace("conv3", "conv5") for layer in block) for block in blocks)


def test_check_shallow_control_accepts_the_pairwise_merge(capsys):
    assert check_shallow_control(right)
    assert check_shallow_control(lambda blocks: [list(block) for block in right(blocks)])  # lists are fine
    out = capsys.readouterr().out
    assert out.startswith("✓ my_shallow_control turns each pair") and "conv5-64 conv5-128" in out


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda blocks: blocks, "nothing changed"),
        (lambda blocks: merge(blocks, keep_both=True), "you kept both layers of a pair"),
        (every_conv3_to_conv5, "you kept both layers of a pair"),
        (lambda blocks: tuple(tuple(x.replace("conv3", "conv5") for x in b) for b in merge(blocks)), "stays a conv3"),
        (lambda blocks: merge(blocks, kernel="conv7"), "7×7"),
        (lambda blocks: merge(blocks, channels=lambda c: 2 * c), "keeps the pair's output channels"),
        (lambda blocks: merge(blocks, channels=lambda c: ""), "keeps the pair's output channels"),
        (across_pools, "across a max-pool|blocks"),
        (dropping_others, "keep the layers that are not 3×3"),
        (one_element_string, "trailing comma"),
        (flat, "a flat sequence of layer names"),
        (lambda blocks: (right(blocks), 5), "each block is a tuple of layer names"),
        (lambda blocks: None, "return statement"),
        (lambda blocks: "conv5-64", "return a tuple of blocks"),
    ],
)
def test_check_shallow_control_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError, match=expected):
        check_shallow_control(answer)


def test_a_merge_across_pools_that_keeps_the_blocks_is_named():
    def carried(blocks):  # a lone 3×3 waits for a partner in the next block
        out, waiting = [], None
        for block in blocks:
            layers = []
            for layer in block:
                if layer.startswith("conv3-") and waiting:
                    layers.append("conv5-" + layer.split("-")[1])
                    waiting = None
                elif layer.startswith("conv3-"):
                    waiting = layer
                else:
                    layers += [waiting, layer] if waiting else [layer]
                    waiting = None
            out.append(tuple(layers))
        return tuple(out)

    with pytest.raises(ExerciseError, match="across a max-pool"):
        check_shallow_control(carried)


def test_check_shallow_control_says_when_the_stub_is_not_written():
    def stub(blocks):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        check_shallow_control(stub)
