"""Timing a step: warm-up until the step time settles, and the benchmark's peer and compile options."""

import pytest
import torch
from torch import nn

from vgg_tutorial.training import bench, timing
from vgg_tutorial.training.engine import Engine, make_optimizer


def test_settled_needs_two_windows_that_agree():
    assert not timing.settled([])
    assert not timing.settled([10.0])
    assert timing.settled([10.0, 10.2])
    assert not timing.settled([10.0, 12.0])
    assert timing.settled([30.0, 12.0, 12.1])  # only the last two count


def _step_parts():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = [(torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0]))]
    return Engine("cpu", "fp32"), model, make_optimizer(model), batches


@pytest.mark.parametrize("warmup, max_warmup", [(3, 0), (2, 2), (1, 21)])
def test_warm_up_runs_at_least_warmup_and_at_most_max_warmup_steps(warmup, max_warmup):
    engine, model, optimizer, batches = _step_parts()
    result = timing.time_steps(
        engine, model, optimizer, batches, steps=4, warmup=warmup, batch_size=4, max_warmup=max_warmup
    )
    done = result["warmup_steps"]
    assert warmup <= done <= max(warmup, max_warmup)
    assert (done - warmup) % timing.SETTLE_WINDOW == 0
    assert result["images_per_s"] > 0 and result["step_ms_p10"] <= result["step_ms_p90"]


def test_warm_up_goes_on_until_settled(monkeypatch):
    medians = iter([50.0, 20.0, 12.0, 12.1, 99.0])
    monkeypatch.setattr(timing.statistics, "median", lambda values: next(medians, 1.0))
    engine, model, optimizer, batches = _step_parts()
    result = timing.time_steps(engine, model, optimizer, batches, steps=2, warmup=1, batch_size=4, max_warmup=60)
    assert result["warmup_steps"] == 1 + 3 * timing.SETTLE_WINDOW  # windows: 1 step, then 5, 5, 5 (12.0 ≈ 12.1)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--configs", "C"], "configurations"),
        (["--width", "0.5"], "paper's widths"),
        (["--compile-mode", "fastest"], "invalid choice"),
    ],
)
def test_torchvision_peer_and_compile_options_are_checked(options, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--source", "torchvision", *options])
    assert message in capsys.readouterr().err


def test_torchvision_names_cover_its_vgg_models():
    import torchvision.models as models

    for config, name in bench.TORCHVISION_NAMES.items():
        assert hasattr(models, name) and hasattr(models, name + "_bn"), config
