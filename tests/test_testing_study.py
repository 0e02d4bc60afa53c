"""Tables 4 and 5 in miniature (vgg_tutorial.studies.testing_study) end to end in its quick setting, its restartability,
the exactness of folding the std into the first convolution, and the paper's Tables 4 and 5 as data."""

import json

import pytest
import torch

from vgg_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vgg_tutorial.paper.configs import PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5
from vgg_tutorial.studies import experiments, testing_study
from vgg_tutorial.testing.evaluate import METHODS
from vgg_tutorial.testing.views import evaluation_scales, to_network_input


def test_quick_study_trains_saves_and_tests_every_net_and_restarts_without_redoing_them(tmp_path, monkeypatch):
    testing_study.main(["--quick", "--seeds", "1", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"] == f"python -m vgg_tutorial.testing_study --quick --seeds 1 --out {tmp_path}"
    assert results["machine"]["torch"] == torch.__version__ and results["setting"]["epochs"] == 1
    assert list(results["runs"]) == list(testing_study.CELLS)
    for cell in testing_study.CELLS:
        (run,) = results["runs"][cell].values()
        assert (tmp_path / run["weights"]).is_file()
        single, multi = testing_study.test_scales(cell)
        assert len(run["results"]) == len(METHODS) + len(METHODS) - 1  # the centre crop is single-scale only
        centre = run["results"][f"center Q={single}"]
        assert centre["images"] == 10 * experiments.QUICK.val_per_class
        # the centre crop at Q is what validation during training measured, on the same images (to one image:
        # torchvision centres a crop of 55 px one pixel further than the study's loader, and resizes its own way)
        assert centre["top1_error"] == pytest.approx(100 - run["training"]["val_top1"], abs=100 / centre["images"])
        both = run["results"][f"dense+multicrop Q={','.join(map(str, multi))}"]
        assert both["passes_per_image"] == 3 * 52
        assert 0 <= both["top5_error"] <= both["top1_error"] <= 100
        assert f"center Q={single}" in [row[0] for row in testing_study.summary(results, cell).rows]

    def redo(*args, **kwargs):
        raise AssertionError("a finished net was trained or tested again")

    monkeypatch.setattr(experiments, "train_cell", redo)
    monkeypatch.setattr(testing_study, "evaluate", redo)
    assert testing_study.run(tmp_path, seeds=1, setting=experiments.QUICK)["runs"] == results["runs"]
    # a lost results file is rebuilt from the saved weights, without training
    (tmp_path / "results.json").unlink()
    monkeypatch.undo()
    monkeypatch.setattr(experiments, "train_cell", redo)
    again = testing_study.run(tmp_path, seeds=1, setting=experiments.QUICK)
    for cell in testing_study.CELLS:
        (first,), (second,) = results["runs"][cell].values(), again["runs"][cell].values()
        for label, row in first["results"].items():
            assert second["results"][label]["top1_error"] == row["top1_error"]
    with pytest.raises(ValueError, match="other settings"):
        testing_study.run(tmp_path, seeds=1, setting=experiments.FULL)


def test_folding_the_std_into_the_first_convolution_is_the_same_network():
    torch.manual_seed(0)
    model = experiments.build("A", experiments.QUICK).eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    mean, std = (torch.tensor(v)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    trained_on = (images.float() / 255 - mean) / std  # what the study's loaders feed
    with torch.no_grad():
        expected = model(trained_on)
        folded = testing_study.fold_std(model)(to_network_input(images))
    torch.testing.assert_close(folded, expected, rtol=1e-4, atol=1e-5)
    assert not torch.equal(model.features[0].weight, testing_study.fold_std(model).features[0].weight)


def test_test_scales_follow_sections_4_1_and_4_2():
    assert testing_study.test_scales("D") == (37, (32, 37, 42))
    assert testing_study.test_scales("D, jittered") == (55, (37, 55, 74))
    assert testing_study.weights_path("x", "D, jittered", 2).name == "D-jittered-seed2.pt"


def test_paper_tables_4_and_5_agree_with_each_other_and_with_table_3():
    for row in PAPER_TABLE4:
        low, high = (
            (int(s) for s in row.train_scale.strip("[]").split(";"))
            if ";" in row.train_scale
            else (
                int(row.train_scale),
                int(row.train_scale),
            )
        )
        assert row.test_scales == evaluation_scales(224, (low, high))[1]  # the paper's Q sets, from its S
        single = next(r for r in PAPER_TABLE3 if (r.config, r.train_scale) == (row.config, row.train_scale))
        assert row.top1 < single.top1 and row.top5 < single.top5  # §4.2: several scales beat one
    for config in ("D", "E"):
        dense, crops, both = (r for r in PAPER_TABLE5 if r.config == config)
        jittered = next(r for r in PAPER_TABLE4 if (r.config, r.train_scale) == (config, "[256;512]"))
        assert (dense.top1, dense.top5) == (jittered.top1, jittered.top5)  # Table 5's dense row is Table 4's
        assert both.top1 < crops.top1 < dense.top1  # §4.3: the two together are best


def test_window_scores_agree_on_one_crop_and_differ_with_context():
    torch.manual_seed(0)
    net = experiments.build("D", experiments.QUICK).eval()
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    dense, crops, corners = testing_study.window_scores(net, image)
    assert corners == [(0, 0)]
    torch.testing.assert_close(dense, crops, rtol=1e-4, atol=1e-5)  # the same pixels, the same zero padding
    larger = torch.randint(0, 256, (3, 74, 74), dtype=torch.uint8)
    larger[:, :32, :32] = image
    dense, crops, corners = testing_study.window_scores(net, larger)
    assert corners == [(0, 0), (0, 32), (32, 0), (32, 32)] and dense.shape == crops.shape == (4, 10)
    torch.testing.assert_close(crops[0], testing_study.window_scores(net, image)[1][0])  # a crop ignores the rest
    assert not torch.allclose(dense[0], crops[0])  # the dense net's window sees its neighbours


def test_comparison_table_puts_the_papers_rows_beside_the_miniatures(tmp_path):
    results = testing_study.run(tmp_path, seeds=1, setting=experiments.QUICK)
    fixed = testing_study.comparison_table(results, "D").rows
    jittered = testing_study.comparison_table(results, "D, jittered").rows
    assert len(fixed) == len(jittered) == len(testing_study.ROWS)
    assert fixed[1][2:4] == ["27.0 / 8.8", "dense+flip Q=37"] and fixed[2][2] == "26.6 / 8.6"
    assert fixed[3][:3] == ["5", "multi-crop, 3 scales", "—"]  # not in the paper for fixed S
    assert jittered[4][2:4] == ["24.4 / 7.2", "dense+multicrop Q=37,55,74"]
    assert "27.0 / 8.8" in repr(testing_study.comparison_table(results, "D"))  # the text form, for the command line
    assert testing_study.paper_errors("D", "5", "multicrop") is None


def test_paired_gains_and_verdicts_read_the_committed_study():
    import json
    from pathlib import Path

    from vgg_tutorial.studies import testing_study

    study = json.loads(
        (Path(__file__).parent.parent / "book/results/09_testing_like_the_paper/results.json").read_text()
    )
    for cell in testing_study.CELLS:
        for _, better, worse in testing_study.COMPARISONS:
            gains = testing_study.paired_gains(study, cell, better, worse)
            assert len(gains) == len(study["runs"][cell])
            single, multi = testing_study.test_scales(cell)
            labels = [x.format(q=single, m=",".join(map(str, multi))) for x in (better, worse)]
            helps = testing_study.better_in_every_seed(study, cell, *labels)
            assert (testing_study.comparison_verdict(gains) == "helps in every seed") == helps
    assert testing_study.comparison_verdict([1.0, 2.0]) == "helps in every seed"
    assert testing_study.comparison_verdict([-1.0, -0.5]) == "hurts in every seed"
    assert testing_study.comparison_verdict([1.0, 0.0]) == "mixed"
    ax = testing_study.plot_comparisons(study)
    assert len(ax.get_yticklabels()) == len(testing_study.COMPARISONS)
