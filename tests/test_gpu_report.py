"""The book's reading of the GPU results files: tables, the epoch log, and the line for what is not measured yet."""

from pathlib import Path

import pytest

from vgg_tutorial.lessons import gpu_report
from vgg_tutorial.studies import gpu_results
from vgg_tutorial.training.train import format_epoch

GPU = Path(__file__).parent.parent / "book" / "results" / "gpu"


def test_the_epoch_log_is_read_back_exactly_as_train_prints_it(tmp_path):
    rows = [
        {"epoch": e, "lr": 0.01, "train_loss": 2.5 / e, "train_top1": 10.0 * e, "val_loss": 2.0 / e}
        | {"val_top1": 9.5 * e, "val_top5": 50.0 + e, "seconds": 1.0}
        for e in (1, 2, 3)
    ]
    (tmp_path / "log.txt").write_text("noise\n" + "\n".join(format_epoch(row, 3) for row in rows) + "\nmore\n")
    read = gpu_report.read_epoch_log(tmp_path / "log.txt")
    assert [row["epoch"] for row in read] == [1, 2, 3] and {row["epochs"] for row in read} == {3}
    for got, want in zip(read, rows):
        assert got["val_top1"] == pytest.approx(want["val_top1"], abs=0.05)
        assert got["train_loss"] == pytest.approx(want["train_loss"], abs=5e-5)


def test_the_committed_lease_log_holds_twelve_epochs_of_vgg16_bn():
    log = gpu_report.read_epoch_log(GPU / "lease-2026-12-04-log.txt")
    assert [row["epoch"] for row in log] == list(range(1, 13))
    assert log[0]["train_loss"] > log[-1]["train_loss"]


def test_speed_table_and_lookups_read_the_speed_file():
    speed = gpu_results.load_part(GPU, "speed")
    rows = gpu_report.speed_rows(speed)
    table = gpu_report.speed_table(rows, 759.0)
    assert len(table.rows) == sum(1 for row in rows if row["crop_size"] == 224)
    plain = gpu_report.speed_of(rows, "VGG-16", "eager", "compute")
    compiled = gpu_report.speed_of(rows, "VGG-16", "compiled", "compute")
    assert plain and compiled and gpu_report.speed_of(rows, "VGG-16", "eager", "typical") is None
    row = next(r for r in rows if r["pipeline"] == "compute" and not r["batch_norm"] and not r["settings"]["compile"])
    mfu = row["images_per_s"] * row["training_flops_per_image"] / 759e12
    assert f"{100 * mfu:.0f} %" in [cells[5] for cells in table.rows]
    assert "measured on one NVIDIA H200" in gpu_report.describe(speed)


def test_labels_say_whose_model_and_how_it_ran():
    row = {"batch_norm": True, "source": "torchvision", "settings": {"compile": True}, "batch_size": 256}
    assert gpu_report.model_name(row) == "torchvision vgg16_bn"
    assert gpu_report.step_label(row) == "compiled"
    row = {"batch_norm": False, "settings": {"compile": True, "compile_mode": "reduce-overhead"}, "batch_size": 512}
    assert gpu_report.model_name(row) == "VGG-16"
    assert gpu_report.step_label(row) == "compiled (reduce-overhead), batch 512"


def test_pilot_table_and_separation_read_the_study_file():
    pilot = gpu_results.load_part(GPU, "table3", "table3-pilot.json")
    table = gpu_report.table3_table(pilot)
    assert [row[0] for row in table.rows] == list(pilot["runs"])
    linear = gpu_report.final_errors(pilot, "linear")
    assert len(linear) == len(pilot["runs"]["linear"])
    assert gpu_report.separated(pilot, "A", "nonexistent") is None
    a, linear_worst = gpu_report.final_errors(pilot, "A"), max(linear)
    assert gpu_report.separated(pilot, "A", "linear") == (max(a) < min(linear))
    assert linear_worst >= min(linear)


def test_not_measured_names_the_part_and_the_command():
    line = gpu_report.not_measured("tables45")
    assert line.startswith("tables45: not measured yet") and "--parts tables45" in line
    assert "python -m vgg_tutorial.gpu_results" in line


def test_tables45_table_reads_a_quick_run(tmp_path):
    argv = ["--out", str(tmp_path / "o"), "--work", str(tmp_path / "w"), "--quick", "--parts", "tables45"]
    assert gpu_results.main(argv) == 0
    tested = gpu_results.load_part(tmp_path / "o", "tables45")
    table = gpu_report.tables45_table(tested, "D")
    assert [row[0] for row in table.rows] == list(tested["runs"]["D"]["0"]["result"]["results"])


def _study(errors: dict[str, list[float]]) -> dict:
    """A results file of part 3 whose cells end at the given top-1 errors, one per seed."""
    history = lambda e: {"result": {"history": [{"val_top1": 100 - e}]}}  # noqa: E731
    return {"runs": {cell: {str(i): history(e) for i, e in enumerate(values)} for cell, values in errors.items()}}


def test_table3_verdicts_need_three_seeds_and_every_seed_separated():
    study = _study({"A": [30, 31, 32], "D": [25, 26, 27], "C": [26, 29, 31], "linear": [80, 81]})
    verdicts = dict(line.split(": ", 1) for line in gpu_report.table3_verdicts(study))
    assert verdicts["depth, 16 against 11 layers"] == "D better in every seed"
    assert verdicts["3×3 against 1×1 convolutions at the same depth"] == "not separated (the seeds overlap)"
    assert verdicts["a VGG against a linear classifier on the pixels"].startswith("not judged (2 seeds")
    assert "depth, 13 against 11 layers" not in verdicts  # B was not run
    flipped = dict(line.split(": ", 1) for line in gpu_report.table3_verdicts(_study({"A": [1, 2, 3], "D": [5, 6, 7]})))
    assert flipped["depth, 16 against 11 layers"] == "A better in every seed (the paper found D better)"


def test_tables45_verdicts_pair_methods_by_seed(tmp_path):
    def record(errors):
        labels = {
            f"{m} Q={q}": {"top1_error": errors[m] + (0 if q == "37" else -1)}
            for m in errors
            for q in ("37", "32,37,42")
        }
        return {"result": {"test_scale": 37, "multi_scales": [32, 37, 42], "results": labels}}

    seeds = [
        {"center": 20, "dense": 20 + s, "dense+flip": 19 + s, "multicrop": 21 - 2 * s, "dense+multicrop": 18}
        for s in range(3)
    ]
    tested = {"runs": {"D": {str(s): record(e) for s, e in enumerate(seeds)}}}
    verdicts = gpu_report.tables45_verdicts(tested, "D")
    assert "flips, dense (§3.2): helps in every seed" in verdicts
    assert "50 crops against dense, 1 scale: mixed" in verdicts
    assert "3 scales against 1, dense (Table 4): helps in every seed" in verdicts
    assert gpu_report.tables45_verdicts(tested, "D", min_seeds=4)[0].startswith("D: not judged")
