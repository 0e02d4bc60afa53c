"""§3.1's fine-tuning chain in miniature: which net starts from which, at what rate, and the study (quick, restart)."""

import json

import pytest
import torch

from vgg_tutorial.studies import chain_study, experiments, testing_study


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (see conftest.py)."""


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """Chapter 9's nets at the quick setting, two seeds."""
    folder = tmp_path_factory.mktemp("nets")
    torch.set_num_threads(1)
    assert testing_study.main(["--quick", "--seeds", "2", "--out", str(folder)]) == 0
    return folder


def test_the_chain_fine_tunes_for_half_the_epochs_at_a_tenth_of_the_rate():
    assert chain_study.FINE_LR == pytest.approx(experiments.LR / 10)
    full = experiments.FULL
    assert [chain_study.epochs(cell, full) for cell in chain_study.CELLS] == [10, 10, 5, 10, 5, 15, 20]
    assert chain_study.epochs_in_all("D, jittered, from S=55", full) == 10 + 5 + 5
    assert experiments.scales("large") == (55, 55) == (experiments.scales("jittered")[1],) * 2
    with pytest.raises(ValueError, match="'fixed', 'jittered' or 'large'"):
        experiments.scales("small")


def test_each_fine_tuning_starts_from_the_net_before_it(nets, monkeypatch):
    calls = []

    def fake_train(model, images, setting, seed, kind, lr):
        calls.append((kind, lr, setting.epochs, {k: v.clone() for k, v in model.state_dict().items()}))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # "training" changes every weight
        return model, [{"val_top1": 50.0}]

    monkeypatch.setattr(experiments, "train_cell", fake_train)
    net = chain_study.chain(nets, experiments.QUICK)
    start, _ = net("D, S=37 (chapter 9)", 1)
    tuned, _ = net("D, jittered, from S=55", 1)
    (kind1, lr1, _, first), (kind2, lr2, _, second) = calls
    assert (kind1, kind2) == ("large", "jittered") and lr1 == lr2 == chain_study.FINE_LR
    assert all(torch.equal(first[k], v) for k, v in start.state_dict().items())
    assert all(torch.equal(second[k], v + 1) for k, v in start.state_dict().items())
    assert all(torch.allclose(tuned.state_dict()[k], v + 2) for k, v in start.state_dict().items())
    net("D, S=55", 1)
    assert calls[-1][:3] == ("large", experiments.LR, experiments.QUICK.epochs)


def test_the_quick_study_runs_every_cell_and_restarts_without_redoing_them(nets, tmp_path, monkeypatch):
    path = tmp_path / "chain.json"
    argv = ["--quick", "--seeds", "2", "--out", str(path), "--nets", str(nets)]
    assert chain_study.main(argv) == 0
    results = json.loads(path.read_text())
    assert {cell: list(runs) for cell, runs in results["runs"].items()} == {
        cell: ["0", "1"] for cell in chain_study.CELLS
    }
    assert results["command"].startswith("python -m vgg_tutorial.chain_study --quick") and results["fine_lr"] == 0.0005
    # Chapter 9's nets are read, not trained again: their histories are the ones saved with their weights.
    _, record = testing_study.load_net(testing_study.weights_path(nets, "D, jittered", 1))
    assert results["runs"]["D, jittered (chapter 9)"]["1"] == record["history"]
    rows = chain_study.table(results).rows
    assert [row[0] for row in rows] == list(chain_study.CELLS)
    assert rows[4][1:5] == ["D, S=55, from S=37", "0.0005", "1 / 3", "[37;74], 55"]
    axes = chain_study.plot_histories(results)
    assert len(axes) == 2 and len(axes[1].lines) == 5
    assert list(axes[0].lines[2].get_xdata()) == [3]  # the jittered fine-tuning comes after 1 + 1 epochs
    monkeypatch.setattr(experiments, "train_cell", lambda *a, **k: pytest.fail("trained again"))
    assert chain_study.main(argv) == 0


def test_fine_tuning_is_better_only_if_better_in_every_seed():
    def history(error):
        return [{"val_top1": 100 - error}]

    results = {"runs": {"a": {"0": history(30), "1": history(40)}, "b": {"0": history(35), "1": history(45)}}}
    assert chain_study.better_in_every_seed(results, "a", "b")
    assert chain_study.gains(results, "a", "b") == {"0": 5, "1": 5}
    results["runs"]["a"]["1"] = history(46)
    assert not chain_study.better_in_every_seed(results, "a", "b")


def test_the_study_without_chapter_9s_nets_says_how_to_make_them(tmp_path, capsys):
    assert chain_study.main(["--out", str(tmp_path / "c.json"), "--nets", str(tmp_path)]) == 2
    assert "no trained net at" in capsys.readouterr().err and not (tmp_path / "c.json").exists()
