"""The "stuck at 10 %" experiments: each failure reproduces, and its fix learns (small, seeded, CPU)."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from vgg_tutorial.studies import failures as F

STUDY = Path(__file__).resolve().parents[1] / "book" / "results" / "06_stuck_at_10_percent" / "study.json"


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


def history(losses, last_top1=10.0):
    return [
        {"epoch": e + 1, "train_loss": loss, "val_top1": last_top1, "finite": True} for e, loss in enumerate(losses)
    ]


def test_verdict_reads_the_training_loss_with_margins():
    assert F.verdict(history([2.30, 1.9, 1.5], last_top1=40)) == "learning"
    assert F.verdict(history([2.30, 2.303, 2.304])) == "at chance"
    assert F.verdict(history([2.30, 1.5, 2.31])) == "at chance"  # a run that fell back
    assert F.verdict(history([2.30, 2.303, 2.304], last_top1=30)) == "unclear"  # loss says chance, accuracy does not
    assert F.verdict(history([2.30, 2.2, 2.1], last_top1=20)) == "unclear"  # 0.2 below ln 10: inside the margin
    assert F.verdict(history([2.30, math.nan, math.nan])) == "diverged"


def test_summary_table_gives_mean_range_and_verdict_counts():
    runs = {"two seeds": [history([2.3, 1.0], last_top1=60), history([2.3, 2.303])]}
    table = F.summary_table(runs)
    assert table.header[:2] == ["experiment", "seeds"]
    assert table.rows == [["two seeds", "2", "1.65 [1.00–2.30]", "35.0 [10.0–60.0]", "1 learning, 1 at chance"]]
    text = repr(table).splitlines()
    assert text[0].split()[:2] == ["experiment", "seeds"] and text[2].startswith("two seeds")
    assert "<td>1 learning, 1 at chance</td>" in table._repr_html_()


def test_study_is_restartable_and_refuses_other_settings(tmp_path, monkeypatch):
    path, name = tmp_path / "study.json", "A plain, He, lr 0.01"
    calls = []

    def fake_run(experiment, data, seed=0, epochs=10):
        calls.append((experiment, seed))
        return history([2.3] * epochs)

    monkeypatch.setattr(F, "run_experiment", fake_run)
    monkeypatch.setattr(F, "demo_data", lambda **options: None)
    first = F.study(path, seeds=2, epochs=1, names=[name], command="test")
    assert calls == [(name, 0), (name, 1)] and list(first["runs"][name]) == ["0", "1"]
    assert first["machine"]["cpu"] and first["command"] == "test"
    again = F.study(path, seeds=3, epochs=1, names=[name])  # one more seed: only seed 2 runs
    assert calls[2:] == [(name, 2)] and len(again["runs"][name]) == 3
    assert json.loads(path.read_text())["runs"][name]["2"] == history([2.3])
    with pytest.raises(ValueError, match="other settings"):
        F.study(path, seeds=1, epochs=2, names=[name])
    with pytest.raises(KeyError, match="choose from"):
        F.study(path, seeds=1, epochs=1, names=["VGG-Z"])


def test_committed_study_shows_every_claim_of_the_chapter():
    """The conclusions chapter 6 draws hold in every seed of the committed results file."""
    results = json.loads(STUDY.read_text())
    runs = F.seed_runs(results, list(F.EXPERIMENTS))
    assert all(len(histories) == 5 for histories in runs.values())
    verdicts = {name: {F.verdict(h) for h in histories} for name, histories in runs.items()}
    for name in ("N(0, 0.01²) everywhere", "torchvision's init", "Glorot (uniform)"):
        assert verdicts[f"E, {name}, lr 0.005"] == {"at chance"}
    assert verdicts["E, He et al. everywhere, lr 0.005"] == {"learning"}
    assert verdicts["A plain, He, lr 0.01"] == verdicts["A+BN, logits, lr 0.03"] == {"learning"}
    assert "at chance" in verdicts["A plain, He, lr 0.03"]
    softmax = runs["A+BN, soft-max in forward, lr 0.03"]
    assert all(min(row["train_loss"] for row in h) > F.SOFTMAX_LOSS_FLOOR for h in softmax)
    assert all(h[-1]["train_loss"] < F.SOFTMAX_LOSS_FLOOR - 0.3 for h in runs["A+BN, logits, lr 0.03"])
