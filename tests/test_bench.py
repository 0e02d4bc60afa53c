"""The benchmark: a CPU smoke run of the four pipelines writes a valid results file."""

import json
import math

import pytest
import torch

from vgg_tutorial.training.bench import PIPELINES, SCHEMA, load_results, main

RUN_KEYS = {
    "config",
    "batch_norm",
    "source",
    "batch_size",
    "crop_size",
    "scale",
    "pipeline",
    "settings",
    "workers",
    "setup_s",
    "warmup_steps",
    "step_ms_median",
    "step_ms_p10",
    "step_ms_p90",
    "images_per_s",
    "images_per_s_mean",
    "data_wait_ms_median",
    "process_cpu_ms_median",
    "peak_memory_mb",
    "peak_memory_kind",
    "training_flops_per_image",
    "mfu",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A tiny CPU run of all four pipelines: width 1/16, 32 px crops, 2 timed steps."""
    tmp = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--configs", "A", "--sizes", "32", "--width", "0.0625", "--fc-width", "32"]
    argv += ["--batch-size", "8", "--steps", "2", "--warmup", "1", "--train-per-class", "2", "--workers", "0"]
    argv += ["--device", "cpu", "--data-root", str(tmp / "data"), "--out", str(tmp / "results.json")]
    main(argv)
    return argv, json.loads((tmp / "results.json").read_text())


def test_smoke_run_writes_every_pipeline_with_finite_figures(smoke):
    argv, results = smoke
    assert results["schema"] == SCHEMA
    assert results["command"].startswith("python -m vgg_tutorial.bench --quick")
    assert results["machine"]["device"] == "cpu" and results["machine"]["torch"] == torch.__version__
    assert [run["pipeline"] for run in results["runs"]] == list(PIPELINES)
    for run in results["runs"]:
        assert set(run) == RUN_KEYS
        assert (run["config"], run["crop_size"], run["scale"]) == ("A", 32, 37)
        for key in ("step_ms_median", "images_per_s", "images_per_s_mean", "peak_memory_mb"):
            assert math.isfinite(run[key]) and run[key] > 0
        assert run["step_ms_p10"] <= run["step_ms_median"] <= run["step_ms_p90"]
        assert run["images_per_s"] == pytest.approx(8 / run["step_ms_median"] * 1000)
        assert run["mfu"] is None and run["training_flops_per_image"] is None  # CPU, and not the paper's widths
    settings = {
        "precision": "fp32",
        "channels_last": False,
        "fused": False,
        "compile": False,
        "compile_mode": "default",
    }
    assert results["runs"][0]["settings"] == settings
    assert results["runs"][1]["settings"] == settings | {"precision": "bf16", "channels_last": True}
    [ratio] = results["ratios"]
    speed = {run["pipeline"]: run["images_per_s"] for run in results["runs"]}
    assert ratio["device_over_compute"] == pytest.approx(speed["device"] / speed["compute"])
    assert ratio["device_over_typical"] == pytest.approx(speed["device"] / speed["typical"])
    assert ratio["host_over_compute"] == pytest.approx(speed["host"] / speed["compute"])
    assert [phase["label"] for phase in results["phases"]] == ["typical settings", "fast settings"]
    assert all(phase[k] > 0 for phase in results["phases"] for k in ("forward_ms", "backward_ms", "optimizer_ms"))


def test_results_files_are_checked_on_loading(smoke, tmp_path):
    argv, results = smoke
    assert load_results(argv[argv.index("--out") + 1]) == results
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    with pytest.raises(ValueError, match="schema"):
        load_results(tmp_path / "other.json")


def test_results_table_has_a_row_per_timed_run(smoke):
    _, results = smoke
    from vgg_tutorial.training.bench import results_table

    table = results_table(results["runs"], caption="smoke")
    assert [row[1] for row in table.rows] == list(PIPELINES)
    assert table.rows[0][2] == "fp32" and table.rows[1][2] == "bf16, channels-last"
    assert all(row[0] == "A-BN 32 px" for row in table.rows)
