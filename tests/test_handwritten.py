"""The hand-written VGG-16 of chapter 2, read from the notebook itself, against the builder and Table 2."""

import math
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vgg_tutorial.paper.models import vgg

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "02_vgg16_by_hand.ipynb"


def tagged_cell(tag: str) -> dict:
    """Execute the notebook cell carrying ``tag`` and return the names it defines."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (source,) = [c.source for c in notebook.cells if tag in c.metadata.get("tags", [])]
    namespace = {"torch": torch, "nn": nn, "F": F}
    exec(compile(source, f"{NOTEBOOK.name}[{tag}]", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def hand_written():
    torch.manual_seed(0)
    return tagged_cell("vgg16-by-hand")["VGG16"]().eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 224, 224)


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts(hand_written):
    assert count(hand_written.features) == 14_714_688
    assert count(hand_written.classifier) == 123_642_856
    assert count(hand_written) == 138_357_544
    assert round(count(hand_written.classifier) / count(hand_written), 3) == 0.894
    assert count(hand_written.classifier[0]) == 102_764_544
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in hand_written.modules()) == 16


def test_shapes_after_each_block_and_identical_to_builder(hand_written, images):
    shapes, x = [], images
    with torch.no_grad():
        for layer in hand_written.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                shapes.append(tuple(x.shape[1:]))
        logits = hand_written(images)
        assert shapes == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
        assert torch.flatten(x, 1).shape == (2, 25088) and logits.shape == (2, 1000)

        built = vgg("D")
        assert list(built.state_dict()) == list(hand_written.state_dict())
        built.load_state_dict(hand_written.state_dict())
        assert torch.equal(built.eval()(images), logits)

    # The gradients the chapter prints, from the first ten of these logits.
    targets = torch.tensor([0, 1])
    right, bug = gradient_norms(logits[:, :10], targets)
    assert (round(right, 4), round(bug, 4), round(right / bug, 1)) == (0.67, 0.0677, 9.9)


def gradient_norms(logits, targets):
    norms = []
    for apply_softmax in (False, True):
        z = logits.detach().clone().requires_grad_(True)
        F.cross_entropy(z.softmax(dim=1) if apply_softmax else z, targets).backward()
        norms.append(z.grad.norm().item())
    return norms


def test_softmax_in_forward_has_a_loss_floor_and_vanishing_gradients():
    target = torch.tensor([3])
    floor = math.log(math.e + 9) - 1
    assert round(floor, 3) == 1.461
    for margin, right, bug in [(0, 2.303, 2.303), (1, 1.461, 2.172), (2, 0.797, 1.959), (5, 0.059, 1.510)]:
        logits = margin * F.one_hot(target, 10).float()
        assert round(F.cross_entropy(logits, target).item(), 3) == right
        assert round(F.cross_entropy(logits.softmax(1), target).item(), 3) == bug
    logits = 20 * F.one_hot(target, 10).float()
    assert F.cross_entropy(logits.softmax(1), target).item() == pytest.approx(floor, abs=1e-6)
    right, bug = gradient_norms(20 * F.one_hot(torch.tensor([5, 7]), 10).float(), torch.tensor([0, 1]))
    assert round(right, 4) == 1.0 and bug < 1e-8


def test_training_demo_from_the_notebook():
    train = tagged_cell("softmax-demo")["train_on_clusters"]
    right, bug = train(False), train(True)

    def summary(history):  # (loss, accuracy) at the steps the chapter prints
        return [(round(history[s - 1][1], 3), round(history[s - 1][2], 2)) for s in (1, 50, 100, 200)]

    assert summary(right) == [(2.372, 0.07), (0.473, 0.94), (0.207, 0.95), (0.11, 0.98)]
    assert summary(bug) == [(2.306, 0.07), (2.233, 0.24), (2.099, 0.53), (1.772, 0.8)]
    assert min(h[1] for h in bug) > math.log(math.e + 9) - 1
