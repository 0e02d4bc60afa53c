"""The benchmark: a CPU smoke run writes a valid results file; the arithmetic the chapter prints is checked."""

import json
import math

import pytest
import torch

from vgg_tutorial.accounting import count_macs
from vgg_tutorial.bench import (
    PIPELINES,
    SCHEMA,
    activation_bytes,
    forward_flops,
    images_per_second_at,
    largest_batch,
    load_results,
    main,
    model_flops_utilisation,
    parser,
    peak_tflops,
    saved_activation_bytes,
    training_flops,
    training_memory_estimate,
)
from vgg_tutorial.models import vgg

RUN_KEYS = {
    "config",
    "batch_norm",
    "crop_size",
    "scale",
    "pipeline",
    "settings",
    "workers",
    "setup_s",
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
    assert results["runs"][0]["settings"] == {"amp": "off", "channels_last": False, "fused": False, "compile": False}
    [ratio] = results["ratios"]
    speed = {run["pipeline"]: run["images_per_s"] for run in results["runs"]}
    assert ratio["device_over_compute"] == pytest.approx(speed["device"] / speed["compute"])
    assert ratio["device_over_seeds"] == pytest.approx(speed["device"] / speed["seeds"])
    assert ratio["package_over_compute"] == pytest.approx(speed["package"] / speed["compute"])
    assert [phase["label"] for phase in results["phases"]] == ["seeds settings", "fast settings"]
    assert all(phase[k] > 0 for phase in results["phases"] for k in ("forward_ms", "backward_ms", "optimizer_ms"))


def test_results_files_are_checked_on_loading(smoke, tmp_path):
    argv, results = smoke
    assert load_results(argv[argv.index("--out") + 1]) == results
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    with pytest.raises(ValueError, match="schema"):
        load_results(tmp_path / "other.json")


def test_help_names_the_module():
    assert "python -m vgg_tutorial.bench" in parser().format_help()


def test_peaks_are_looked_up_by_device_name():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989
    assert peak_tflops("NVIDIA H100 PCIe") == 756
    assert peak_tflops("NVIDIA H200") == 989
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312
    assert peak_tflops("Tesla T4") == 65
    assert peak_tflops("NVIDIA GeForce RTX 4090") is None
    assert peak_tflops("NVIDIA H100 NVL") is None  # not in the table: no MFU rather than a wrong one


def test_flops_follow_the_accounting():
    assert forward_flops("D", batch_norm=False, image_size=224, num_classes=1000) == 2 * count_macs(
        "D", image_size=224, weights_only=True
    )
    assert round(forward_flops("D", batch_norm=False, num_classes=1000) / 2e9, 2) == 15.47  # torchvision's GFLOPS
    assert training_flops("A", image_size=160) == 3 * forward_flops("A", image_size=160)


def test_figures_the_chapter_prints():
    """The chapter's table of training GFLOPs per image (BN, 10 classes) and its images/s arithmetic."""
    gflops = {
        (name, size): round(training_flops(name, batch_norm=True, image_size=size, num_classes=10) / 1e9, 1)
        for name in ("A", "D")
        for size in (160, 224)
    }
    assert gflops == {("A", 160): 23.6, ("A", 224): 45.6, ("D", 160): 47.7, ("D", 224): 92.8}
    d224 = training_flops("D", batch_norm=True, image_size=224, num_classes=10)
    assert round(images_per_second_at(0.4, 989, d224)) == 4263
    assert round(images_per_second_at(0.4, 65, d224)) == 280
    assert model_flops_utilisation(images_per_second_at(0.4, 989, d224), d224, 989) == pytest.approx(0.4)
    assert model_flops_utilisation(1000, d224, None) is None
    at_40 = {
        (name, size, peak): round(
            images_per_second_at(0.4, peak, training_flops(name, batch_norm=True, image_size=size, num_classes=10))
        )
        for name in ("A", "D")
        for size in (160, 224)
        for peak in (989, 65)
    }
    assert at_40 == {
        ("A", 160, 989): 16740,
        ("A", 160, 65): 1100,
        ("A", 224, 989): 8670,
        ("A", 224, 65): 570,
        ("D", 160, 989): 8294,
        ("D", 160, 65): 545,
        ("D", 224, 989): 4263,
        ("D", 224, 65): 280,
    }
    # Imagenette's training split decoded as uint8 at S = 256 (for 224 crops) and S = 183 (for 160 crops), in GB
    assert [round(9469 * 3 * side**2 / 1e9, 2) for side in (256, 183)] == [1.86, 0.95]


def test_activation_estimate_matches_what_autograd_saves():
    """In fp32 the layer-shape estimate is within 1 % of the bytes autograd keeps (the rest: the classifier)."""
    for name, batch_norm in (("A", True), ("D", False)):
        model = vgg(name, batch_norm=batch_norm, num_classes=10, fc_width=64)
        saved = saved_activation_bytes(model, torch.randn(2, 3, 64, 64))
        estimate = 2 * activation_bytes(name, batch_norm=batch_norm, image_size=64, element_bytes=4)
        assert estimate <= saved < 1.01 * estimate
    # the two figures the chapter prints, in MiB, for VGG-A with batch norm, two 64 px images
    model = vgg("A", batch_norm=True, num_classes=10, fc_width=64)
    assert round(saved_activation_bytes(model, torch.randn(2, 3, 64, 64)) / 2**20, 2) == 12.44
    assert round(2 * activation_bytes("A", batch_norm=True, image_size=64, element_bytes=4) / 2**20, 2) == 12.39


def test_memory_estimate_and_t4_batch_sizes():
    """The chapter's T4 guidance: estimates from layer shapes, bf16/fp16 activations, 15 GiB usable."""
    estimate = training_memory_estimate("D", batch_norm=True, image_size=224, batch_size=64, num_classes=10)
    assert estimate["total"] == estimate["parameters_state"] + estimate["activations"]
    assert round(estimate["parameters_state"] / 2**30, 2) == 1.50
    assert round(estimate["activations"] / 2**30, 2) == 4.16
    totals = {
        (name, size, batch): round(
            training_memory_estimate(name, batch_norm=True, image_size=size, batch_size=batch, num_classes=10)["total"]
            / 2**30,
            2,
        )
        for name in ("A", "D")
        for size in (160, 224)
        for batch in (64, 128)
    }
    assert totals == {
        ("A", 160, 64): 2.82,
        ("A", 160, 128): 4.2,
        ("A", 224, 64): 4.14,
        ("A", 224, 128): 6.85,
        ("D", 160, 64): 3.63,
        ("D", 160, 128): 5.75,
        ("D", 224, 64): 5.66,
        ("D", 224, 128): 9.83,
    }
    t4 = 15 * 2**30
    assert largest_batch("D", t4, batch_norm=True, image_size=224, num_classes=10) == 128
    assert largest_batch("D", t4, batch_norm=True, image_size=160, num_classes=10) == 256
    assert largest_batch("A", t4, batch_norm=True, image_size=224, num_classes=10) == 256
    assert largest_batch("A", t4, batch_norm=True, image_size=160, num_classes=10) == 512
