"""The "stuck at 10 %" experiments: each failure reproduces, and its fix learns (small, seeded, CPU)."""

import math

import pytest
import torch
from torch import nn

from vgg_tutorial import failures as F


@pytest.fixture(scope="module")
def data():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: faster on one thread, and immune to a busy machine
    yield F.demo_data(train_per_class=100, val_per_class=20)
    torch.set_num_threads(threads)


def test_demo_data_is_standardised_and_balanced(data):
    train, val = data
    images, labels = train.tensors
    assert images.shape == (1000, 3, 32, 32) and len(val) == 200
    assert torch.bincount(labels).tolist() == [100] * 10
    assert abs(images.mean().item()) < 0.5 and 0.3 < images.std().item() < 2


def test_softmax_in_forward_bounds_the_loss_from_below():
    """Even a perfectly confident, correct model cannot get below ln(9 + e) - 1 through a second soft-max."""
    assert F.SOFTMAX_LOSS_FLOOR == pytest.approx(1.4612, abs=1e-4)
    logits = torch.full((1, 10), -100.0)
    logits[0, 3] = 100.0
    model = F.SoftmaxOutput(nn.Identity())
    loss = nn.CrossEntropyLoss()(model(logits), torch.tensor([3]))
    assert loss.item() == pytest.approx(F.SOFTMAX_LOSS_FLOOR, abs=1e-5)
    assert nn.CrossEntropyLoss()(logits, torch.tensor([3])).item() < 1e-6  # logits: the loss can reach 0


def test_small_normal_init_makes_a_deep_plain_vgg_output_nothing(data):
    torch.manual_seed(0)
    images = data[0].tensors[0][:64]
    with torch.no_grad():
        vanishing = F.normal_init(F.small_vgg("E"), std=0.01)(images)
        healthy = F.he_init(F.small_vgg("E"))(images)
    assert vanishing.abs().max() < 1e-6  # 19 layers, each shrinking the signal
    assert 0.1 < healthy.std() < 10  # He et al.: the scale survives all 19 layers


def test_deep_plain_vgg_with_small_init_is_stuck_at_ln10(data):
    torch.manual_seed(0)
    history = F.run(F.normal_init(F.small_vgg("E"), std=0.01), data, lr=0.01, epochs=2)
    for row in history:
        assert row["train_loss"] == pytest.approx(math.log(10), abs=2e-3)
        assert row["val_loss"] == pytest.approx(F.CHANCE_LOSS, abs=1e-4)
        assert row["val_top1"] == F.CHANCE_TOP1


def test_too_high_a_rate_collapses_to_chance_and_batch_norm_learns(data):
    torch.manual_seed(0)
    plain = F.run(F.he_init(F.small_vgg("A")), data, lr=0.1, epochs=3)
    torch.manual_seed(0)
    normed = F.run(F.he_init(F.small_vgg("A", batch_norm=True)), data, lr=0.03, epochs=3)
    assert plain[-1]["val_top1"] == F.CHANCE_TOP1
    assert plain[-1]["train_loss"] > 2.3
    assert normed[-1]["train_loss"] < 2.1 and normed[-1]["val_top1"] > 20


def test_runs_are_deterministic_and_summarised(data):
    small = (torch.utils.data.Subset(data[0], range(64)), data[1])
    torch.manual_seed(0)
    first = F.run(F.he_init(F.small_vgg("A")), small, lr=0.01, epochs=1)
    torch.manual_seed(0)
    second = F.run(F.he_init(F.small_vgg("A")), small, lr=0.01, epochs=1)
    assert first == second and first[0]["finite"]
    line = F.summary_line("plain A", first)
    assert line.startswith("plain A") and f"{first[0]['val_top1']:5.1f}%" in line
