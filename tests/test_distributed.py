"""Several processes training as one (§3.3): sharding, DDP equals one process, resume after a kill, failures.

The multi-process tests start ``torchrun`` with 2 CPU processes talking over gloo on 127.0.0.1, each bounded by a
subprocess timeout (and by the process group's own timeout inside), so a hang fails the test instead of CI.
"""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from PIL import Image

from vgg_tutorial.data import loaders as L
from vgg_tutorial.data.datasets import DatasetNotFoundError, folder_wnids, make_dataloaders
from vgg_tutorial.training import distributed as D
from vgg_tutorial.training import runs as R
from vgg_tutorial.training import train as T

LAUNCH_TIMEOUT = 90  # seconds for one torchrun launch (about 10 s on two busy cores)
# A plain VGG-A (no batch norm, no dropout, no random augmentation): nothing random differs between 1 and 2 processes.
PLAIN = dict(
    config="A",
    batch_norm=False,
    dropout=0.0,
    augment=False,
    width=1 / 16,
    fc_width=32,
    image_size=32,
    in_memory=True,
    train_per_class=8,  # 80 images: 5 global batches of 16 per epoch, 8 per process
    val_per_class=2,
    batch_size=16,
    lr=0.05,
    epochs=8,
    device="cpu",
)


def arguments(**settings) -> list[str]:
    """``settings`` as command-line options of ``vgg_tutorial.training.train``."""
    args = []
    for name, value in settings.items():
        option = "--" + name.replace("_", "-")
        if value is True:
            args.append(option)
        elif value is False:
            args.append("--no-" + name.replace("_", "-"))
        else:
            args += [option, str(value)]
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(tmp_path: Path, name: str, **changes) -> subprocess.Popen:
    """Start ``torchrun --nproc_per_node=2 -m vgg_tutorial.train`` on PLAIN with ``changes``, output in tmp/name."""
    settings = {**PLAIN, "data": tmp_path / "data", "output": tmp_path / name, **changes}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    command += [f"--master_port={free_port()}", "--monitor_interval=0.1", "-m", "vgg_tutorial.train"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.Popen(
        command + arguments(**settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Wait for ``process`` (killing it after LAUNCH_TIMEOUT s); return its exit status and its output."""
    try:
        out, err = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"torchrun did not end within {LAUNCH_TIMEOUT} s:\n{out}\n{err}")
    return process.returncode, out + err


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return R.load_checkpoint(folder / R.CHECKPOINT)["model"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """PLAIN trained by 2 processes without interruption: the reference of the equality and resume tests."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    status, output = finish(torchrun(tmp_path, "straight"))
    assert status == 0, output
    return tmp_path, R.load_checkpoint(tmp_path / "straight" / R.CHECKPOINT)


# ---------------------------------------------------------------------------------------------------------------
# In one process: how the epoch is split
# ---------------------------------------------------------------------------------------------------------------


def test_shards_are_the_global_batches_split_in_equal_slices():
    order = torch.randperm(37, generator=torch.Generator().manual_seed(0))
    assert torch.equal(L.shard(order, 8), order)  # one process: the order itself, last small batch included
    shares = [L.shard(order, 4, rank, 2) for rank in range(2)]
    assert [len(share) for share in shares] == [16, 16]  # 4 whole global batches of 8; the last 5 images left out
    joined = torch.cat([torch.stack(shares)[:, k * 4 : (k + 1) * 4].reshape(-1) for k in range(4)])
    assert torch.equal(joined, order[:32])
    sampler = L.EpochSampler(37, seed=3, batch_size=4, rank=1, world_size=2)
    sampler.set_epoch(2)
    assert (
        len(sampler) == 16
        and list(sampler) == L.shard(torch.randperm(37, generator=L.epoch_generator(3, 2)), 4, 1, 2).tolist()
    )


@pytest.mark.parametrize("scale", [None, (12, 20)])  # fixed S, and S drawn per image (§3.1)
def test_device_loader_shares_add_up_to_one_process_batches_augmentation_included(scale):
    images = torch.randint(0, 256, (37, 3, 12, 12), dtype=torch.uint8)
    labels = torch.arange(37)
    options = dict(crop_size=8, seed=5, scale=scale)
    whole = L.DeviceLoader(images, labels, batch_size=8, **options)
    parts = [L.DeviceLoader(images, labels, batch_size=4, rank=r, world_size=2, **options) for r in range(2)]
    for loader in [whole, *parts]:
        loader.set_epoch(1)
    assert len(whole) == 5 and [len(part) for part in parts] == [4, 4]
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert torch.equal(torch.cat([y0, y1]), y)
        assert torch.equal(torch.cat([x0, x1]), x)  # the same crops, flips and colour shifts as one process


def test_the_global_batch_must_split_evenly(monkeypatch, tmp_path):
    assert D.local_batch_size(256, 4) == 64
    with pytest.raises(ValueError, match="cannot be split evenly across 3 processes"):
        D.local_batch_size(256, 3)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(T.ConfigError, match="multiple of 3") as error:
        T.TrainConfig(batch_size=64, output=str(tmp_path))
    assert error.value.field == "batch_size"


def test_a_checkpoint_older_than_sync_batch_norm_still_resumes(tmp_path):
    cfg = T.TrainConfig(output=str(tmp_path))
    meta = {"machine": {"device": "cpu"}, "precision": "fp32"}
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "sync_batch_norm"}
    assert T.resume_conflicts({"meta": {**meta, "config": old}, "epoch": 1}, cfg, meta) == []
    cfg.sync_batch_norm = True
    assert T.resume_conflicts({"meta": {**meta, "config": old}, "epoch": 1}, cfg, meta) == [
        "sync_batch_norm: False in the checkpoint, True now"
    ]


def test_one_process_is_left_alone():
    assert D.world_size() == 1 and D.is_main() and not torch.distributed.is_initialized()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert D.wrap(model) is model and D.convert_batch_norm(model) is model
    assert D.main_first(lambda: 42) == 42 and D.share("x") == "x"
    assert D.average({"loss": 1.5}) == {"loss": 1.5}
    assert D.start(torch.device("cpu")) == torch.device("cpu") and not torch.distributed.is_initialized()


def test_sync_batch_norm_converts_in_a_process_group_and_needs_a_gpu(tmp_path):
    with pytest.raises(T.ConfigError, match="sync_batch_norm needs CUDA GPUs"):
        T.TrainConfig(sync_batch_norm=True, device="cpu", output=str(tmp_path))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    address = f"tcp://127.0.0.1:{free_port()}"
    group = dict(init_method=address, rank=0, world_size=1, timeout=timedelta(seconds=30))
    torch.distributed.init_process_group("gloo", **group)
    try:
        assert isinstance(D.convert_batch_norm(model)[1], torch.nn.SyncBatchNorm)
    finally:
        torch.distributed.destroy_process_group()


# ---------------------------------------------------------------------------------------------------------------
# Two processes
# ---------------------------------------------------------------------------------------------------------------


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(ddp_run, tmp_path, one_thread):
    """§3.3: "the result is exactly the same as when training on a single GPU" (here, to float rounding)."""
    folder, two = ddp_run
    one = T.train(
        T.TrainConfig(**{**PLAIN, "data": str(folder / "data"), "output": str(tmp_path / "one")}), verbose=False
    )
    assert [round(row["train_loss"], 4) for row in two["history"]] == [round(row["train_loss"], 4) for row in one]
    single = weights(tmp_path / "one")
    start = T.build_model(T.TrainConfig(**PLAIN)).state_dict()  # the seeded initial weights both started from
    for key, tensor in single.items():
        assert torch.allclose(two["model"][key], tensor, rtol=1e-4, atol=1e-6), key
        assert not torch.allclose(start[key], tensor, rtol=1e-4, atol=1e-6) or "bias" in key, key  # it trained
    # A batch half as large (what each process sees) gives different weights: the test can tell.
    T.train(
        T.TrainConfig(**{**PLAIN, "data": str(folder / "data"), "output": str(tmp_path / "half"), "batch_size": 8}),
        verbose=False,
    )
    halved = weights(tmp_path / "half")
    assert any(not torch.allclose(halved[key], single[key], rtol=1e-4, atol=1e-6) for key in single)
    assert two["meta"]["machine"]["processes"] == 2
    assert two["meta"]["command"].startswith("torchrun --nproc_per_node=2 -m vgg_tutorial.train")


def test_a_killed_process_ends_the_run_and_resume_is_exact(ddp_run, tmp_path):
    folder, reference = ddp_run
    (tmp_path / "data").symlink_to(folder / "data")
    run = torchrun(tmp_path, "killed")
    began = time.monotonic()
    while not (tmp_path / "killed" / R.HISTORY_JSON).exists():  # written after the checkpoint of epoch 1
        assert run.poll() is None and time.monotonic() - began < LAUNCH_TIMEOUT, "the run ended before epoch 1"
        time.sleep(0.02)
    os.kill(rank_pid(run.pid, 1), signal.SIGKILL)
    killed = time.monotonic()
    status, output = finish(run)
    assert status != 0 and "FAILED" in output and "SIGKILL" in output, output
    assert time.monotonic() - killed < 30  # not a hang until some timeout
    assert R.load_checkpoint(tmp_path / "killed" / R.CHECKPOINT)["epoch"] < PLAIN["epochs"]
    status, output = finish(torchrun(tmp_path, "killed", resume=True))
    assert status == 0 and "resumed after epoch" in output, output
    resumed = R.load_checkpoint(tmp_path / "killed" / R.CHECKPOINT)
    for key, tensor in reference["model"].items():
        assert torch.equal(resumed["model"][key], tensor), key
    drop = [{k: v for k, v in row.items() if k != "seconds"} for row in reference["history"]]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed["history"]] == drop


def test_when_rank_0_refuses_the_folder_every_process_stops_with_its_reason(ddp_run):
    folder, _ = ddp_run
    began = time.monotonic()
    status, output = finish(torchrun(folder, "straight"))  # not empty, and no --resume
    assert status != 0 and time.monotonic() - began < LAUNCH_TIMEOUT
    assert "error: rank 0 stopped the run: RunError:" in output and "use --resume to continue that run" in output


def rank_pid(launcher: int, rank: int) -> int:
    """The process id of worker ``rank`` among the children of the torchrun process ``launcher``."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in children:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environment:
            return int(pid)
    raise AssertionError(f"no worker of rank {rank} among {children}")


# ---------------------------------------------------------------------------------------------------------------
# The full-ImageNet path: a dataset in ImageFolder layout
# ---------------------------------------------------------------------------------------------------------------


def image_tree(root: Path, wnids: list[str], per_class: int = 3) -> Path:
    """A miniature ImageNet: root/{train,val}/<wnid>/*.JPEG, each class a flat colour."""
    for split in ("train", "val"):
        for label, wnid in enumerate(wnids):
            (root / split / wnid).mkdir(parents=True)
            for index in range(per_class):
                colour = (80 * label, 40 * index, 255 - 80 * label)
                Image.new("RGB", (48, 40), colour).save(root / split / wnid / f"{wnid}_{index}.JPEG")
    return root


def test_imagefolder_reads_imagenet_layout_with_sorted_wnids(tmp_path, capsys):
    root = image_tree(tmp_path / "imagenet", ["n03000684", "n01440764", "n02102040"])
    (root / "train" / ".ipynb_checkpoints").mkdir()
    assert folder_wnids(root) == ("n01440764", "n02102040", "n03000684")
    for loader in ("host", "device"):
        train, val = make_dataloaders("imagefolder", root, image_size=32, batch_size=4, loader=loader)
        assert val.dataset.classes == ["n01440764", "n02102040", "n03000684"]
        assert sorted(label for _, labels in train for label in labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [label for _, label in val.dataset.samples] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert val.dataset.samples[0][0].endswith("val/n01440764/n01440764_0.JPEG")
    output = tmp_path / "run"
    status = T.main(["--dataset", "imagefolder", "--data", str(root), "--output", str(output), "--epochs", "1"])
    assert status == 0 and R.load_checkpoint(output / R.CHECKPOINT)["model"]["classifier.6.weight"].shape[0] == 3


def test_imagefolder_refuses_a_tree_in_another_layout(tmp_path, capsys):
    with pytest.raises(DatasetNotFoundError, match="ROOT/train/<class>/"):
        folder_wnids(tmp_path)
    root = image_tree(tmp_path / "imagenet", ["n01440764", "n02102040"])
    (root / "val" / "n02102040").rename(root / "val" / "n09999999")  # val's classes are not train's
    with pytest.raises(DatasetNotFoundError, match="missing n02102040; not a class n09999999"):
        make_dataloaders("imagefolder", root, image_size=32, batch_size=4)
