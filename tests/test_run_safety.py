"""A run's output folder, resume and arguments are safe (issue 12, items 1, 2, 3, 4, 6, 8, 10 and a diverged run).

Every test here failed on the code before the fix: a second run overwrote the first, resuming mixed settings,
workers broke exact resume, checkpoints needed ``weights_only=False`` and were not checked, nonsense arguments were
accepted or raised tracebacks, and files were created private.
"""

import fcntl
import os
import re
import struct
import zipfile

import pytest
import torch
from test_train import assert_same_run, tiny_config, without_timings

from vgg_tutorial.training import engine as E
from vgg_tutorial.training import runs as R
from vgg_tutorial.training import train as T

# The tiny command line (with 1/16 width, as tests/test_train.py, to keep it fast).
TINY_ARGV = ["--width", "1/16", "--fc-width", "32", "--image-size", "32", "--train-per-class", "6"]
TINY_ARGV += ["--val-per-class", "3", "--batch-size", "16", "--in-memory"]


def cli(tmp_path, *extra, output="run"):
    return T.main([*TINY_ARGV, "--data", str(tmp_path / "data"), "--output", str(tmp_path / output), *extra])


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished one-epoch run, copied by tests that damage or resume it."""
    tmp_path = tmp_path_factory.mktemp("one")
    T.train(tiny_config(tmp_path, "run", epochs=1), verbose=False)
    return tmp_path / "run"


def copy_run(source, target):
    target.mkdir()
    for name in R.RUN_FILES:
        (target / name).write_bytes((source / name).read_bytes())
    return target


# ---------------------------------------------------------------------------------------------------------------
# Item 1: a previous run is never destroyed silently
# ---------------------------------------------------------------------------------------------------------------


def test_a_second_run_into_a_used_folder_is_refused_and_says_what_is_there(one_epoch, tmp_path):
    folder = copy_run(one_epoch, tmp_path / "run")
    before = (folder / R.CHECKPOINT).read_bytes()
    with pytest.raises(R.RunError, match="already holds checkpoint.pt, history.csv, history.json: use --resume"):
        T.train(tiny_config(tmp_path, "run", epochs=1, seed=1), verbose=False)
    assert (folder / R.CHECKPOINT).read_bytes() == before


def test_overwrite_replaces_the_previous_run(one_epoch, tmp_path, capsys):
    copy_run(one_epoch, tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    history = T.train(tiny_config(tmp_path, "run", epochs=1, seed=1, overwrite=True))
    assert "--overwrite: replacing the run" in capsys.readouterr().out
    assert R.load_checkpoint(tmp_path / "run" / R.CHECKPOINT)["meta"]["config"]["seed"] == 1
    assert R.read_history(tmp_path / "run") == history
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only the run files are replaced


def test_resume_without_a_checkpoint_says_so_and_refuses_a_folder_with_other_run_files(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "history.json").write_text('{"history": []}')
    with pytest.raises(R.RunError, match=r"no checkpoint.pt in .*it holds history.json.*--overwrite"):
        T.train(tiny_config(tmp_path, "run", epochs=1, resume=True), verbose=False)
    assert (tmp_path / "run" / "history.json").read_text() == '{"history": []}'
    T.train(tiny_config(tmp_path, "empty", epochs=1, resume=True))
    assert "--resume: no checkpoint in" in capsys.readouterr().out


def test_a_second_run_on_a_locked_folder_fails_at_once(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / R.LOCK, "a+") as lock:  # another process holds the lock
        lock.write("4242\n")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(R.RunError, match=r"another run \(process 4242\) is writing to .*run"):
            T.train(tiny_config(tmp_path, "run", epochs=1), verbose=False)
    assert not (tmp_path / "data").exists()  # refused before any data work
    assert R.folder_contents(folder) == []


def test_cli_refuses_a_used_folder_with_exit_status_2(one_epoch, tmp_path, capsys):
    copy_run(one_epoch, tmp_path / "run")
    assert cli(tmp_path, "--epochs", "1") == 2
    assert "already holds checkpoint.pt" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Item 2: resume never mixes settings
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change", [{"lr": 0.1}, {"momentum": 0.5}, {"batch_size": 8}, {"image_size": 64}, {"dropout": 0.1}, {"seed": 3}]
)
def test_resume_with_another_setting_is_refused_naming_it(one_epoch, tmp_path, change):
    copy_run(one_epoch, tmp_path / "run")
    ((name, value),) = change.items()
    with pytest.raises(R.RunError, match=rf"cannot resume .*{name}: .* in the checkpoint, {value!r} now"):
        T.train(tiny_config(tmp_path, "run", epochs=2, resume=True, **change), verbose=False)


def test_resume_with_another_schedule_is_refused_not_a_key_error(one_epoch, tmp_path):
    copy_run(one_epoch, tmp_path / "run")
    with pytest.raises(R.RunError, match="schedule: 'plateau' in the checkpoint, 'cosine' now"):
        T.train(tiny_config(tmp_path, "run", epochs=1, resume=True, schedule="cosine"), verbose=False)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_step_schedules_cannot_be_extended_but_resume_with_the_same_epochs(tmp_path, schedule):
    T.train(tiny_config(tmp_path, "run", epochs=1, schedule=schedule), verbose=False)
    with pytest.raises(R.RunError, match=rf"epochs: 1 in the checkpoint, 2 now, but the {schedule} schedule"):
        T.train(tiny_config(tmp_path, "run", epochs=2, schedule=schedule, resume=True), verbose=False)
    assert len(T.train(tiny_config(tmp_path, "run", epochs=1, schedule=schedule, resume=True), verbose=False)) == 1


def test_resume_cannot_shrink_a_run(tmp_path):
    T.train(tiny_config(tmp_path, "run", epochs=2), verbose=False)
    with pytest.raises(R.RunError, match="trained 2 epochs already, 1 asked for"):
        T.train(tiny_config(tmp_path, "run", epochs=1, resume=True), verbose=False)


# ---------------------------------------------------------------------------------------------------------------
# Item 3: exact resume with worker processes
# ---------------------------------------------------------------------------------------------------------------


def test_resume_with_two_workers_is_bit_identical_to_a_straight_run(tmp_path):
    """The validation loader's workers used to draw their seed from torch's global generator, shifting dropout."""
    T.train(tiny_config(tmp_path, "straight", epochs=3, workers=2), verbose=False)
    T.train(tiny_config(tmp_path, "resumed", epochs=1, workers=2), verbose=False)
    T.train(tiny_config(tmp_path, "resumed", epochs=3, workers=2, resume=True), verbose=False)
    assert_same_run(
        R.load_checkpoint(tmp_path / "resumed" / R.CHECKPOINT), R.load_checkpoint(tmp_path / "straight" / R.CHECKPOINT)
    )


# ---------------------------------------------------------------------------------------------------------------
# Item 4: checkpoints load without running code, and damage is found
# ---------------------------------------------------------------------------------------------------------------


def test_checkpoints_load_with_weights_only(one_epoch):
    state = torch.load(one_epoch / R.CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and {"torch", "python", "numpy"} <= set(state["rng"])


class Payload:
    def __reduce__(self):
        return (os.system, ("touch crafted-code-ran",))


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": Payload()}, tmp_path / R.CHECKPOINT)
    with pytest.raises(R.CheckpointError, match="cannot be loaded as a checkpoint"):
        R.load_checkpoint(tmp_path / R.CHECKPOINT)
    assert not (tmp_path / "crafted-code-ran").exists()


def flip_a_weight_byte(path):
    """Flip one bit in the middle of the largest tensor record of the zip archive ``torch.save`` wrote."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26 : record.header_offset + 30])
    data[record.header_offset + 30 + name_length + extra_length + record.file_size // 2] ^= 1
    path.write_bytes(bytes(data))


def test_flipped_or_truncated_checkpoints_are_refused_with_a_clear_message(one_epoch, tmp_path):
    flipped = copy_run(one_epoch, tmp_path / "flipped") / R.CHECKPOINT
    flip_a_weight_byte(flipped)
    with pytest.raises(R.CheckpointError, match=r"is damaged: record .*/data/\d+ does not match its CRC-32"):
        R.load_checkpoint(flipped)
    truncated = copy_run(one_epoch, tmp_path / "truncated") / R.CHECKPOINT
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    with pytest.raises(R.CheckpointError, match="is truncated or not a checkpoint"):
        R.load_checkpoint(truncated)


def test_cli_resume_from_a_damaged_checkpoint_exits_2(one_epoch, tmp_path, capsys):
    flip_a_weight_byte(copy_run(one_epoch, tmp_path / "run") / R.CHECKPOINT)
    assert cli(tmp_path, "--epochs", "2", "--resume") == 2
    assert "does not match its CRC-32" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Item 6: an unwritable output folder is found before any work
# ---------------------------------------------------------------------------------------------------------------


def test_an_unwritable_output_is_refused_before_the_data_is_generated(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert cli(tmp_path, "--epochs", "1", output="file/run") == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------------------------------------------
# Item 8: nonsense is refused by TrainConfig, which the command line turns into usage errors
# ---------------------------------------------------------------------------------------------------------------

NONSENSE = [
    (["--epochs", "0"], "epochs must be a whole number of at least 1, got 0"),
    (["--epochs", "-1"], "epochs must be a whole number of at least 1"),
    (["--lr", "nan"], r"lr must be a finite number in \(0, inf\), got nan"),
    (["--lr", "-0.1"], r"lr must be a finite number in \(0, inf\)"),
    (["--momentum", "-0.5"], r"momentum must be a finite number in \[0, 1\)"),
    (["--weight-decay", "-1"], r"weight_decay must be a finite number in \[0, inf\)"),
    (["--width", "0"], "width must be a finite number in"),
    (["--width", "-1"], "width must be a finite number in"),
    (["--width", "nan"], "width must be a finite number in"),
    (["--width", "1/0"], "expected a number such as 0.25 or 1/4"),
    (["--fc-width", "0"], "fc_width must be a whole number of at least 1"),
    (["--pooled-size", "0"], "pooled_size must be a whole number of at least 1"),
    (["--patience", "-1"], "patience must be a whole number of at least 0"),
    (["--batch-size", "0"], "batch_size must be a whole number of at least 1"),
    (["--workers", "-1"], "workers must be a whole number of at least 0"),
    (["--image-size", "0"], "image_size must be a whole number of at least 32"),
    (["--image-size", "16"], "image_size must be a whole number of at least 32"),
    (["--dropout", "1.5"], r"dropout must be a finite number in \[0, 1\)"),
    (["--device", "tpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
    (["--resume", "--overwrite"], "resume and overwrite exclude each other"),
]


@pytest.mark.parametrize("argv,message", NONSENSE, ids=[" ".join(argv) for argv, _ in NONSENSE])
def test_cli_nonsense_is_a_usage_error_before_any_work(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli(tmp_path, *argv)
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        cli(tmp_path, "--device", "cuda")
    assert exit_.value.code == 2
    assert "argument --device: device 'cuda': CUDA is not available on this machine" in capsys.readouterr().err
    with pytest.raises(T.ConfigError, match="fp16 needs a CUDA GPU"):
        T.TrainConfig(precision="fp16", device="cpu")


def test_the_api_checks_the_same_way(tmp_path):
    with pytest.raises(T.ConfigError, match="epochs must be a whole number of at least 1") as error:
        tiny_config(tmp_path, "run", epochs=0)
    assert error.value.field == "epochs"
    cfg = tiny_config(tmp_path, "run")
    cfg.lr = float("nan")  # changed after the config was made: train() checks again
    with pytest.raises(T.ConfigError, match="lr must be a finite number"):
        T.train(cfg, verbose=False)
    with pytest.raises(T.ConfigError, match="fc_width must be a whole number"):
        tiny_config(tmp_path, "run", fc_width=2.5)


# ---------------------------------------------------------------------------------------------------------------
# A non-finite loss stops the run
# ---------------------------------------------------------------------------------------------------------------


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = E.Engine.train_one_epoch

    def poisoned_in_epoch_two(self, model, loader, optimizer, scheduler=None, desc=""):
        if desc.startswith("epoch 2/"):
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return original(self, model, loader, optimizer, scheduler, desc)

    monkeypatch.setattr(E.Engine, "train_one_epoch", poisoned_in_epoch_two)
    with pytest.raises(T.NonFiniteLossError, match=r"loss became nan in epoch 2 .*the checkpoint of epoch 1 is kept"):
        T.train(tiny_config(tmp_path, "run", epochs=3), verbose=False)
    saved = R.load_checkpoint(tmp_path / "run" / R.CHECKPOINT)
    assert saved["epoch"] == 1 and all(torch.isfinite(t).all() for t in saved["model"].values())
    assert without_timings(R.read_history(tmp_path / "run")) == without_timings(saved["history"])


def test_cli_a_diverging_run_exits_1_naming_the_epoch(tmp_path, capsys):
    assert cli(tmp_path, "--epochs", "2", "--lr", "1e30") == 1
    assert "the run diverged" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Item 10: temporary files, permissions, help text
# ---------------------------------------------------------------------------------------------------------------


def test_temporaries_of_killed_runs_are_removed_when_the_lock_is_held(one_epoch, tmp_path, capsys):
    folder = copy_run(one_epoch, tmp_path / "run")
    (folder / ".checkpoint.pt.dead1234.tmp").write_bytes(b"x" * 1000)
    T.train(tiny_config(tmp_path, "run", epochs=1, resume=True))
    assert "removed 1 temporary file(s) left by a killed run" in capsys.readouterr().out
    assert not list(folder.glob(".*.tmp"))


def test_run_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        T.train(tiny_config(tmp_path, "run", epochs=1), verbose=False)
    finally:
        os.umask(old)
    for name in R.RUN_FILES:
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_augment_is_a_switch_whose_help_is_true_to_its_default(capsys):
    assert T.parser().parse_args([]).augment is True
    assert T.parser().parse_args(["--no-augment"]).augment is False
    with pytest.raises(SystemExit):
        T.main(["--help"])
    assert "--augment, --no-augment" in capsys.readouterr().out
