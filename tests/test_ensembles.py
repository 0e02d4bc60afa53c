"""Ensembles (§4.4): posteriors averaged over nets, members lined up by method, and checkpoints that do not combine."""

import dataclasses
import json

import pytest
import torch
from test_evaluate import TINY, make_checkpoint

from vgg_tutorial.data.synthetic import SyntheticShapes
from vgg_tutorial.paper.models import vgg
from vgg_tutorial.testing import ensembles as en
from vgg_tutorial.training.train import TrainConfig, train


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (see conftest.py)."""


def member_rows(posteriors, targets, key="dense+flip, several scales"):
    """What member_posteriors returns, for hand-made posteriors."""
    return {key: {"posterior": torch.tensor(posteriors), "targets": torch.tensor(targets)}}


def test_the_ensemble_averages_posteriors_so_two_wrong_nets_can_be_right_together():
    # Net 1 says class 0, net 2 class 2; their mean (0.3, 0.425, 0.275) says class 1, the right one.
    one = member_rows([[0.6, 0.4, 0.0]], [1])
    two = member_rows([[0.0, 0.45, 0.55]], [1])
    assert en.combine([one])["dense+flip, several scales"]["top1_error"] == 100
    assert en.combine([two])["dense+flip, several scales"]["top1_error"] == 100
    assert en.combine([one, two])["dense+flip, several scales"] == {"top1_error": 0.0, "top5_error": 0.0}


def test_members_line_up_by_method_and_kind_of_scale_not_by_q():
    torch.manual_seed(0)
    model = vgg("A", width=1 / 16, fc_width=8, pooled_size=1, num_classes=10).eval()
    images = SyntheticShapes("val", image_size=48, per_class=1)
    fixed = en.Member("fixed", model, 32, 37, (32, 37, 42))
    jittered = en.Member("jittered", model, 32, 40, (32, 40, 48))
    a = en.member_posteriors(fixed, images, ["dense", "center"])
    b = en.member_posteriors(jittered, images, ["dense", "center"])
    assert list(a) == ["dense, one scale", "center, one scale", "dense, several scales"]
    assert a["dense, several scales"]["scales"] == [32, 37, 42] and b["dense, several scales"]["scales"] == [32, 40, 48]
    combined = en.combine([a, b])
    assert list(combined) == list(a)
    # An ensemble of one net is that net; of a net and itself, too.
    for key, row in a.items():
        alone = {k: row[k] for k in ("top1_error", "top5_error")}
        assert en.combine([a])[key] == pytest.approx(alone)
        assert en.combine([a, a])[key] == pytest.approx(alone)
    mean = (a["dense, several scales"]["posterior"] + b["dense, several scales"]["posterior"]) / 2
    assert combined["dense, several scales"] == en.errors(mean, a["dense, several scales"]["targets"])


def test_members_that_do_not_combine_are_refused():
    with pytest.raises(ValueError, match="at least one member"):
        en.combine([])
    with pytest.raises(ValueError, match="different images"):
        en.combine([member_rows([[1.0, 0.0]], [0]), member_rows([[1.0, 0.0]], [1])])
    with pytest.raises(ValueError, match="differ in shape"):
        en.combine([member_rows([[1.0, 0.0]], [0]), member_rows([[1.0, 0.0, 0.0]], [0])])
    with pytest.raises(ValueError, match="share no test protocol"):
        en.combine([member_rows([[1.0, 0.0]], [0]), member_rows([[1.0, 0.0]], [0], key="center, one scale")])


def test_checkpoints_of_another_class_count_or_dataset_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    ten = make_checkpoint(tmp_path / "a")
    five = make_checkpoint(tmp_path / "b", num_classes=5)
    other = make_checkpoint(tmp_path / "c", dataset="imagenette", in_memory=False)
    with pytest.raises(ValueError, match="at least two checkpoints"):
        en.evaluate_ensemble([ten])
    with pytest.raises(ValueError, match=f"{five} has 5 classes but {ten} has 10"):
        en.evaluate_ensemble([ten, five], methods=["center"])
    with pytest.raises(ValueError, match="trained on 'imagenette'"):
        en.evaluate_ensemble([ten, other], methods=["center"])


def test_two_trained_checkpoints_combine_on_the_command_line(tmp_path, capsys):
    runs = []
    for seed in (0, 1):
        cfg = TrainConfig(**{**TINY, "val_per_class": 2}, train_per_class=2, epochs=1, batch_size=20, seed=seed)
        train(dataclasses.replace(cfg, output=str(tmp_path / f"run{seed}")), verbose=False)
        runs.append(str(tmp_path / f"run{seed}" / "checkpoint.pt"))
    output = tmp_path / "ensemble.json"
    argv = [*runs, "--methods", "center", "dense+flip", "--limit", "6", "--device", "cpu", "--output", str(output)]
    assert en.main(argv) == 0
    report = json.loads(output.read_text())
    assert report["command"].startswith("python -m vgg_tutorial.ensembles") and "machine" in report
    assert [m["name"].split(" (")[0] for m in report["members"]] == ["A S=37", "A S=37"]
    assert list(report["ensemble"]) == ["center, one scale", "dense+flip, one scale", "dense+flip, several scales"]
    assert report["members"][0]["results"]["center, one scale"]["images"] == 6
    assert "ensemble" in capsys.readouterr().out
    assert en.main([runs[0], str(tmp_path / "absent.pt"), "--output", str(output)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# The chapter's study: chapter 9's nets combined, validation and held-out test images
# ---------------------------------------------------------------------------------------------------------------


def test_the_quick_study_combines_every_entry_and_restarts_without_redoing_them(tmp_path, monkeypatch):
    from vgg_tutorial.studies import ensemble_study, experiments, testing_study

    nets, path = tmp_path / "nets", tmp_path / "ensembles.json"
    testing_study.main(["--quick", "--seeds", "2", "--out", str(nets)])
    assert ensemble_study.main(["--quick", "--seeds", "2", "--out", str(path), "--nets", str(nets)]) == 0
    results = json.loads(path.read_text())
    assert list(results["runs"]) == ["D", "D, jittered", "D + D, jittered", *ensemble_study.GROUPS]
    assert results["runs"]["all 6 nets"]["0"]["members"] == [
        "D seed 0",
        "D seed 1",
        "D, jittered seed 0",
        "D, jittered seed 1",
    ]
    assert results["runs"]["D + D, jittered"]["1"]["members"] == ["D seed 1", "D, jittered seed 1"]
    # The held-out images are other images than the validation ones, of the same classes, as many.
    val, test = testing_study.validation_images(experiments.QUICK), ensemble_study.test_images(experiments.QUICK)
    assert [label for _, label in val] == [label for _, label in test]
    assert not any(torch.equal(a, b) for (a, _), (b, _) in zip(val, test))
    # A net alone, read back from the file, is what evaluate says of it.
    net, _ = testing_study.load_net(testing_study.weights_path(nets, "D", 1))
    member = en.Member("D", testing_study.fold_std(net), experiments.CROP, *testing_study.test_scales("D"))
    alone = en.member_posteriors(member, test, ensemble_study.METHODS)
    for key, row in alone.items():
        assert results["runs"]["D"]["1"]["test"][key]["top1_error"] == pytest.approx(row["top1_error"])
    table = ensemble_study.table(results, "test")
    assert [row[:3] for row in table.rows][:3] == [
        ["D", "1", "2"],
        ["D, jittered", "1", "2"],
        ["D + D, jittered", "2", "2"],
    ]
    assert len(ensemble_study.pair_gains(results, "dense+flip")) == 2
    chosen = ensemble_study.chosen_on_validation(results)
    assert chosen["candidates"] == 3 * (2 + 2 + 2 + 3) and chosen["method"] in ensemble_study.METHODS
    # Restarting redoes nothing: no net is tested again.
    monkeypatch.setattr(ensemble_study, "member_posteriors", lambda *a, **k: pytest.fail("tested again"))
    assert ensemble_study.run(path, nets, 2, experiments.QUICK)["runs"] == results["runs"]


def test_the_study_without_chapter_9s_nets_says_how_to_make_them(tmp_path, capsys):
    from vgg_tutorial.studies import ensemble_study

    assert ensemble_study.main(["--out", str(tmp_path / "e.json"), "--nets", str(tmp_path)]) == 2
    assert "no trained net at" in capsys.readouterr().err and not (tmp_path / "e.json").exists()


def test_the_papers_tables_6_and_7_agree_with_each_other():
    from vgg_tutorial.paper.configs import PAPER_TABLE6, PAPER_TABLE7

    submission, *post = PAPER_TABLE6
    assert len(submission.nets) == 7 and all(len(row.nets) == 2 for row in post)
    vgg = {row.nets: row.top5_test for row in PAPER_TABLE7 if row.entry.startswith("VGG")}
    assert vgg[7] == submission.top5_test == 7.3 and vgg[2] == min(r.top5_test for r in post if r.top5_test) == 6.8
    # GoogLeNet won ILSVRC-2014's classification with 7 nets; VGG's submission came second.
    entries_2014 = [r for r in PAPER_TABLE7 if r.entry in ("GoogLeNet", "VGG (ILSVRC-2014 submission)", "MSRA")]
    best = sorted((r.top5_test, r.entry) for r in entries_2014)
    assert [entry for _, entry in best][:2] == ["GoogLeNet", "VGG (ILSVRC-2014 submission)"]
