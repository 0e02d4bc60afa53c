"""The training engine: accuracy, schedules, data order, checkpoints, exact resume, and the command line."""

import dataclasses
import itertools
import json

import pytest
import torch
from torch import nn

from vgg_tutorial.data import loaders as L
from vgg_tutorial.paper.configs import CONFIGS
from vgg_tutorial.training import engine as E
from vgg_tutorial.training import runs as R
from vgg_tutorial.training import train as T

# A VGG-A small enough to train for three epochs in a second or two on a CPU.
TINY = dict(
    config="A",
    width=1 / 16,
    fc_width=32,
    pooled_size=1,
    image_size=32,
    in_memory=True,
    train_per_class=6,
    val_per_class=3,
    batch_size=16,
    lr=0.02,
    patience=0,
)


def tiny_config(tmp_path, name: str, **changes) -> T.TrainConfig:
    return T.TrainConfig(**{**TINY, "data": str(tmp_path / "data"), "output": str(tmp_path / name), **changes})


def without_timings(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_topk_correct_counts_targets_among_the_k_best():
    logits = torch.tensor([[0.1, 0.9, 0.0, 0.0, 0.0, 0.0], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1], [1, 2, 3, 4, 5, 6.0]])
    targets = torch.tensor([1, 4, 0])
    # sample 0: top-1 right; sample 1: class 4 is 5th best; sample 2: class 0 is the worst of six.
    assert E.topk_correct(logits, targets) == [1, 2]
    assert E.topk_correct(logits, targets, ks=(1, 2, 6)) == [1, 1, 3]
    # Fewer classes than k: top-5 of three classes is always right.
    assert E.topk_correct(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))[1] == 4


def test_top5_is_capped_at_the_number_of_classes():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert E.topk_correct(logits, torch.tensor([2, 2])) == [1, 2]


def test_precision_choices_on_a_cpu():
    cpu = torch.device("cpu")
    assert E.autocast_dtype("auto", cpu) is None
    assert E.autocast_dtype("fp32", cpu) is None
    assert E.autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        E.autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        E.autocast_dtype("fp8", cpu)
    assert not E.Engine("cpu").scaler.is_enabled()


def test_epoch_sampler_order_depends_only_on_seed_and_epoch():
    sampler = L.EpochSampler(50, seed=3)
    sampler.set_epoch(4)
    order = list(sampler)
    assert sorted(order) == list(range(50))
    other = L.EpochSampler(50, seed=3)
    other.set_epoch(4)
    assert list(other) == order == list(sampler)  # re-iterating does not advance anything
    other.set_epoch(5)
    assert list(other) != order
    assert list(L.EpochSampler(50, seed=4)) != list(L.EpochSampler(50, seed=3))


def test_host_loader_reproduces_worker_seeds_per_epoch():
    dataset = torch.utils.data.TensorDataset(torch.arange(12))
    loader = L.host_loader(dataset, batch_size=4, seed=1)
    L.set_epoch(loader, 2, seed=1)
    first = [batch[0].tolist() for batch in loader]
    L.set_epoch(loader, 0, seed=1)
    L.set_epoch(loader, 2, seed=1)
    assert [batch[0].tolist() for batch in loader] == first
    assert loader.generator.initial_seed() == L.epoch_seed(1, 2)


def test_plateau_divides_by_ten_at_most_three_times():
    optimizer = E.make_optimizer(nn.Linear(2, 2), lr=0.01)
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 5e-4
    scheduler, interval = T.make_scheduler("plateau", optimizer, epochs=20, steps_per_epoch=5, patience=1)
    assert interval == "epoch"
    lrs = []
    for accuracy in [10, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20]:  # improves once, then never again
        scheduler.step(accuracy)
        lrs.append(optimizer.param_groups[0]["lr"])
    # patience 1: the second epoch without improvement lowers the rate.
    assert lrs[:3] == [0.01, 0.01, 0.01]
    assert lrs[3] == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-5)  # three drops, then the floor
    assert sorted(set(round(lr, 10) for lr in lrs)) == [1e-5, 1e-4, 1e-3, 1e-2]


@pytest.mark.parametrize("name", ["onecycle", "cosine"])
def test_modern_schedules_step_per_batch_rise_then_fall(name):
    optimizer = E.make_optimizer(nn.Linear(2, 2), lr=0.1)
    scheduler, interval = T.make_scheduler(name, optimizer, epochs=4, steps_per_epoch=10, warmup_epochs=1)
    assert interval == "step"
    lrs = [optimizer.param_groups[0]["lr"]]  # the rates the 40 batches of training use
    for _ in range(39):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[0] < 0.02 and max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert 5 <= peak <= 15  # warm-up of about one epoch (onecycle: 30 % of the steps)
    assert lrs[-1] < 2e-3
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b - 1e-12 for a, b in zip(lrs[peak:-1], lrs[peak + 1 :]))


def test_unknown_schedule_and_config_say_what_is_valid(tmp_path):
    with pytest.raises(ValueError, match="plateau, onecycle, cosine"):
        T.make_scheduler("step", E.make_optimizer(nn.Linear(2, 2)), epochs=1, steps_per_epoch=1)
    with pytest.raises(KeyError, match="A-LRN"):
        T.train(tiny_config(tmp_path, "x", config="F"), verbose=False)


def test_atomic_save_replaces_or_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    R.atomic_save({"epoch": 1}, path)
    R.atomic_save({"epoch": 2}, path)
    assert torch.load(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]

    def crash(obj, file):
        file.write(b"trunc")  # a partial write, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        R.atomic_save({"epoch": 3}, path)
    monkeypatch.undo()
    assert torch.load(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_history_round_trips_through_json_and_csv(tmp_path):
    rows = [
        {"epoch": e, "lr": 0.01, "train_loss": 2.0 / e, "train_top1": 10.0 * e, "train_top5": 50.0}
        | {"val_loss": 1.5, "val_top1": 12.5 * e, "val_top5": 60.0, "seconds": 1.25}
        for e in (1, 2)
    ]
    R.write_history(rows, tmp_path, {"command": "python -m vgg_tutorial.train"})
    assert R.read_history(tmp_path) == rows
    assert R.read_history(tmp_path / "history.csv") == rows
    assert json.loads((tmp_path / "history.json").read_text())["command"] == "python -m vgg_tutorial.train"
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == ",".join(R.HISTORY_FIELDS)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Three epochs without interruption: the reference the resumed runs must match exactly."""
    tmp_path = tmp_path_factory.mktemp("straight")
    cfg = tiny_config(tmp_path, "straight", epochs=3)
    history = T.train(cfg, verbose=False)
    return cfg, history, R.load_checkpoint(tmp_path / "straight" / R.CHECKPOINT)


def assert_same_run(state, reference):
    assert without_timings(state["history"]) == without_timings(reference["history"])
    assert state["model"].keys() == reference["model"].keys()
    for key, tensor in reference["model"].items():
        assert torch.equal(state["model"][key], tensor), key
    momentum = state["optimizer"]["state"]
    for index, buffers in reference["optimizer"]["state"].items():
        assert torch.equal(momentum[index]["momentum_buffer"], buffers["momentum_buffer"])
    assert state["scheduler"] == reference["scheduler"]


def test_checkpoint_holds_everything_needed_to_resume(straight_run):
    cfg, history, state = straight_run
    assert set(state) == {"model", "optimizer", "scheduler", "scaler", "epoch", "history", "rng", "meta", "format"}
    assert state["epoch"] == 3 and state["history"] == history
    assert {"torch", "python", "numpy"} <= set(state["rng"])
    assert state["meta"]["config"] == dataclasses.asdict(cfg)
    assert state["meta"]["machine"]["device"] == "cpu" and state["meta"]["machine"]["gpu"] is None
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for row in history:
        assert set(row) == set(R.HISTORY_FIELDS)
        assert 0 <= row["val_top1"] <= row["val_top5"] <= 100
    assert R.read_history(cfg.output) == history
    assert R.read_history(f"{cfg.output}/{R.HISTORY_CSV}") == history


def test_stop_after_one_epoch_and_resume_to_three_is_exact(straight_run, tmp_path, capsys):
    _, _, reference = straight_run
    T.train(tiny_config(tmp_path, "resumed", epochs=1), verbose=False)
    history = T.train(tiny_config(tmp_path, "resumed", epochs=3, resume=True))
    assert "resumed after epoch 1/3" in capsys.readouterr().out
    assert len(history) == 3
    assert_same_run(R.load_checkpoint(tmp_path / "resumed" / R.CHECKPOINT), reference)


def test_killed_mid_epoch_and_resumed_is_exact(straight_run, tmp_path, monkeypatch):
    _, _, reference = straight_run
    original = E.Engine.train_one_epoch
    calls = []

    def dies_in_epoch_two(self, model, loader, optimizer, scheduler=None, desc=""):
        calls.append(desc)
        if len(calls) == 2:  # two gradient steps into epoch 2, then the process is killed
            original(self, model, itertools.islice(loader, 2), optimizer, scheduler, desc)
            raise KeyboardInterrupt
        return original(self, model, loader, optimizer, scheduler, desc)

    monkeypatch.setattr(E.Engine, "train_one_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        T.train(tiny_config(tmp_path, "killed", epochs=3), verbose=False)
    assert R.load_checkpoint(tmp_path / "killed" / R.CHECKPOINT)["epoch"] == 1
    monkeypatch.undo()
    T.train(tiny_config(tmp_path, "killed", epochs=3, resume=True), verbose=False)
    assert_same_run(R.load_checkpoint(tmp_path / "killed" / R.CHECKPOINT), reference)


def test_resume_without_a_checkpoint_starts_from_scratch(straight_run, tmp_path):
    _, history, _ = straight_run
    again = T.train(tiny_config(tmp_path, "fresh", epochs=3, resume=True), verbose=False)
    assert without_timings(again) == without_timings(history)


def test_a_different_seed_gives_a_different_run(straight_run, tmp_path):
    _, history, _ = straight_run
    other = T.train(tiny_config(tmp_path, "seed1", epochs=1, seed=1), verbose=False)
    assert other[0]["train_loss"] != history[0]["train_loss"]


@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "jpeg-folder"])
def test_device_loader_trains_and_resumes_exactly(tmp_path, in_memory):
    """The GPU-resident pipeline behind --loader device (here on the CPU): same batches after a resume."""
    straight = tiny_config(tmp_path, "device", epochs=2, loader="device", in_memory=in_memory)
    train_loader, _ = T.build_data(straight, E.Engine("cpu"))
    assert type(train_loader).__name__ == "DeviceLoader"
    images, labels = next(iter(train_loader))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    history = T.train(straight, verbose=False)
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(row["train_loss"])) for row in history)
    T.train(tiny_config(tmp_path, "device-resumed", epochs=1, loader="device", in_memory=in_memory), verbose=False)
    resumed = tiny_config(tmp_path, "device-resumed", epochs=2, loader="device", in_memory=in_memory, resume=True)
    T.train(resumed, verbose=False)
    assert_same_run(
        R.load_checkpoint(tmp_path / "device-resumed" / R.CHECKPOINT),
        R.load_checkpoint(tmp_path / "device" / R.CHECKPOINT),
    )


def test_device_loader_without_augmentation_gives_the_same_centre_crops_every_epoch(tmp_path):
    cfg = tiny_config(tmp_path, "plain", loader="device", augment=False, batch_size=60)
    loader, _ = T.build_data(cfg, E.Engine("cpu"))
    crops = []
    for epoch in (0, 1):  # one batch holds all 60 images; the order differs between epochs, the crops must not
        loader.set_epoch(epoch)
        images, _ = next(iter(loader))
        crops.append(dict(zip(loader.order(epoch).tolist(), images)))
    assert loader.order(0).tolist() != loader.order(1).tolist()
    assert crops[0].keys() == crops[1].keys() == set(range(60))
    assert all(torch.equal(crops[0][i], crops[1][i]) for i in crops[0])


def test_auto_loader_keeps_the_dataloader_on_a_cpu_and_unknown_loader_is_refused(tmp_path):
    train_loader, _ = T.build_data(tiny_config(tmp_path, "auto"), E.Engine("cpu"))
    assert isinstance(train_loader, torch.utils.data.DataLoader)
    with pytest.raises(ValueError, match="auto, host, device"):
        T.build_data(tiny_config(tmp_path, "bad", loader="gpu"), E.Engine("cpu"))


def test_running_totals_read_the_device_once():
    totals = E.Totals()
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    totals.add(torch.tensor(0.5), logits, torch.tensor([0, 0]))
    totals.add(torch.tensor(1.5), logits[:1], torch.tensor([1]))
    assert totals.sums.dtype == torch.float64  # still a tensor: nothing was read back per step
    assert totals.means() == {"loss": (0.5 * 2 + 1.5) / 3, "top1": 100 / 3, "top5": 100.0}


def test_engine_runs_with_bf16_channels_last_and_onecycle(tmp_path):
    cfg = tiny_config(tmp_path, "fast", epochs=1, precision="bf16", channels_last=True, schedule="onecycle")
    (row,) = T.train(cfg, verbose=False)
    assert torch.isfinite(torch.tensor(row["train_loss"]))


def test_the_engine_learns_a_separable_problem():
    """Plain SGD through the Engine drives a linear model on an easy problem to 100 % top-1."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()  # four quadrant classes
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    model = nn.Linear(8, 4)
    engine = E.Engine("cpu")
    before = engine.evaluate(model, loader)
    optimizer = E.make_optimizer(model, lr=0.5)
    for _ in range(10):
        engine.train_one_epoch(model, loader, optimizer)
    after = engine.evaluate(model, loader)
    assert after["loss"] < before["loss"] / 2
    assert after["top1"] > 95 and after["top5"] == 100


def test_cli_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        T.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ["--config", "--batch-norm", "--dataset", "--download", "--image-size", "--epochs", "--lr"]:
        assert option in text
    for option in ["--schedule", "--precision", "--channels-last", "--compile", "--width", "--fc-width"]:
        assert option in text
    for option in ["--workers", "--output", "--resume", "--seed", "--batch-size"]:
        assert option in text


def test_cli_unknown_config_names_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_:
        T.main(["--config", "VGG16"])
    assert exit_.value.code == 2
    assert ", ".join(CONFIGS) in capsys.readouterr().err


def test_cli_missing_imagenette_says_what_to_run(tmp_path, capsys):
    status = T.main(["--dataset", "imagenette", "--data", str(tmp_path), "--output", str(tmp_path / "run")])
    assert status == 2
    assert "--download" in capsys.readouterr().err


def test_cli_trains_on_tiny_synthetic_jpegs(tmp_path, capsys):
    argv = ["--epochs", "2", "--image-size", "32", "--width", "1/16", "--fc-width", "16", "--batch-size", "16"]
    argv += ["--train-per-class", "3", "--val-per-class", "2", "--schedule", "cosine"]
    argv += ["--data", str(tmp_path / "data"), "--output", str(tmp_path / "run")]
    assert T.main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "best val top-1" in out
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert names == ["synthetic-37px-3+2-seed0-q90"]  # JPEGs drawn at S = 32·256/224
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved["command"] == "python -m vgg_tutorial.train " + " ".join(argv)
    assert saved["config"]["width"] == 1 / 16 and saved["config"]["schedule"] == "cosine"
    assert len(saved["history"]) == 2
