"""Table 3 in miniature (vgg_tutorial.studies.experiments) end to end in its quick setting, its restartability and its
reading of a study; and the full-width initialisation probe of vgg_tutorial.studies.init_study."""

import json
import math

import pytest
import torch

from vgg_tutorial.data.synthetic import RADIUS, render_split
from vgg_tutorial.paper.configs import PAPER_TABLE3
from vgg_tutorial.studies import experiments, init_study


def test_quick_study_runs_every_cell_end_to_end_and_restarts_without_retraining(tmp_path, monkeypatch):
    out = tmp_path / "table3.json"
    experiments.main(["table3", "--quick", "--seeds", "1", "--out", str(out)])
    results = json.loads(out.read_text())
    assert list(results["runs"]) == [name for name, *_ in experiments.CELLS]
    for runs in results["runs"].values():
        (history,) = runs.values()
        assert len(history) == experiments.QUICK.epochs and math.isfinite(history[-1]["train_loss"])
        assert 0 <= history[-1]["val_top1"] <= history[-1]["val_top5"] <= 100
    assert results["command"].startswith("python -m vgg_tutorial.experiments table3 --quick")
    assert results["machine"]["torch"] == torch.__version__ and results["setting"]["epochs"] == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiments, "run_cell", no_training)
    again = experiments.table3(out, seeds=1, setting=experiments.QUICK)
    assert again["runs"] == results["runs"]
    with pytest.raises(ValueError, match="other settings"):
        experiments.table3(out, seeds=1, setting=experiments.FULL)


def test_test_scale_follows_section_4_1():
    assert experiments.scales("fixed") == (37, 37)  # Q = S
    assert experiments.scales("jittered") == ((37, 74), 55)  # Q = (S_min + S_max) / 2
    with pytest.raises(ValueError):
        experiments.scales("multi")


def test_separated_needs_every_seed_and_the_paper_rows_match_the_cells():
    run = lambda top1: [{"val_top1": top1, "val_top5": 90.0, "train_loss": 1.0}]  # noqa: E731
    results = {"runs": {"A": {"0": run(60), "1": run(70)}, "E": {"0": run(50), "1": run(65)}}}
    assert experiments.errors(results, "A")["top1"] == [40, 30]
    assert not experiments.separated(results, "A", "E")  # A's worst seed (40 % error) is not below E's best (35 %)
    results["runs"]["E"]["1"] = run(20)
    assert experiments.separated(results, "A", "E") and not experiments.separated(results, "E", "A")
    assert experiments.paper_row("D, jittered").top1 == 25.6 and experiments.paper_row("linear") is None
    assert len(PAPER_TABLE3) == 12 and {r.config for r in PAPER_TABLE3} == {"A", "A-LRN", "B", "C", "D", "E"}


def test_objects_at_many_scales_leave_the_default_dataset_unchanged():
    default, _ = render_split("val", image_size=16, per_class=2)
    assert torch.equal(default, render_split("val", image_size=16, per_class=2, radius=RADIUS)[0])
    assert not torch.equal(default, render_split("val", image_size=16, per_class=2, radius=experiments.RADIUS)[0])


def test_literal_variance_diverges_and_the_alexnet_reading_starts_at_chance():
    """Full-width A at 224 px, one image, one SGD step of §3.1: the measurement behind init="paper"."""
    literal = init_study.probe("A", "paper-literal", steps=1, batch_size=1)
    paper = init_study.probe("A", "paper", steps=1, batch_size=1)
    assert literal["logit_std"] > 1e3 and not literal["finite"]
    assert paper["finite"] and abs(paper["losses"][0] - math.log(1000)) < 0.01 and paper["signal_gain"] < 1e-6


def test_comparison_table_puts_the_papers_table3_beside_the_committed_study():
    from pathlib import Path

    study = json.loads((Path(__file__).parent.parent / "book/results/08_does_depth_help/table3.json").read_text())
    table = experiments.comparison_table(study)
    rows = {row[0]: row for row in table.rows}
    assert list(rows) == list(study["runs"])
    assert rows["D"][1:5] == ["16", "256, 256", "27.0 / 8.8", "37, 37"]
    assert rows["D, jittered"][2:5] == ["[256;512], 384", "25.6 / 8.1", "[37;74], 55"]
    assert rows["linear"][3] == "—" and rows["E from A"][3] == "—"
