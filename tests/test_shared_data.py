"""Data that cannot change under a run, `--overwrite` that keeps the old run until the new one has a checkpoint, and a
folder lock that dies with its process (issue 22, items 1, 2 and 5).

Each test failed on the code before the fix: `synthetic-<S>` was shared by every per-class count and regenerated in
place, a run recorded nothing about its data, `--overwrite` deleted the old run first, and loader workers kept the
lock of a killed run.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from test_train import tiny_config

from vgg_tutorial.data import synthetic as S
from vgg_tutorial.data.folders import DatasetNotFoundError
from vgg_tutorial.training import runs as R
from vgg_tutorial.training import train as T

ON_DISK = dict(in_memory=False, train_per_class=2, val_per_class=1)


def test_other_per_class_counts_never_touch_a_folder_in_use(tmp_path):
    first = S.make_synthetic(tmp_path, image_size=16, train_per_class=1, val_per_class=1)
    files = sorted(first.rglob("*"))
    second = S.make_synthetic(tmp_path, image_size=16, train_per_class=2, val_per_class=1)
    third = S.make_synthetic(tmp_path, image_size=16, train_per_class=1, val_per_class=1, seed=1)
    assert len({first, second, third}) == 3  # counts and seed are part of the folder's identity
    assert sorted(first.rglob("*")) == files
    assert not os.access(first / S.MARKER, os.W_OK) or os.geteuid() == 0  # the marker is read-only
    assert oct((first / S.MARKER).stat().st_mode & 0o777) == "0o444"


def test_a_folder_with_the_name_but_not_the_marker_is_refused_not_replaced(tmp_path):
    folder = S.synthetic_dir(tmp_path, 16, 1, 1, 0)
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="never replaced in place: delete it"):
        S.make_synthetic(tmp_path, image_size=16, train_per_class=1, val_per_class=1)
    assert (folder / "train" / "mine.txt").read_text() == "keep me"


def test_a_run_records_its_data_and_refuses_to_resume_on_other_data(tmp_path):
    T.train(tiny_config(tmp_path, "run", epochs=1, **ON_DISK), verbose=False)
    data = R.load_checkpoint(tmp_path / "run" / R.CHECKPOINT)["meta"]["data"]
    assert data["train_per_class"] == 2 and data["train"]["images"] == 20 and data["val"]["images"] == 10
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "data", copy)
    T.train(tiny_config(tmp_path, "run", epochs=2, resume=True, data=str(copy), **ON_DISK), verbose=False)  # same
    changed = next((next(copy.iterdir()) / "train").rglob("*.JPEG"))
    changed.write_bytes(changed.read_bytes() + b"\0")  # another image of the same name: the data differ
    with pytest.raises(R.RunError, match="the data in .* differ from the data it trained on"):
        T.train(tiny_config(tmp_path, "run", epochs=3, resume=True, data=str(copy), **ON_DISK), verbose=False)
    assert len(R.read_history(tmp_path / "run")) == 2


def test_a_run_refuses_at_start_a_synthetic_folder_changed_since_it_was_made(tmp_path):
    folder = S.make_synthetic(tmp_path / "data", image_size=37, train_per_class=2, val_per_class=1)
    next((folder / "train").rglob("*.JPEG")).unlink()
    with pytest.raises(DatasetNotFoundError, match="holds 19 images, not the 20 it was made with"):
        T.train(tiny_config(tmp_path, "run", epochs=1, **ON_DISK), verbose=False)
    assert R.folder_contents(tmp_path / "run") == []  # no checkpoint of the wrong data


# ---------------------------------------------------------------------------------------------------------------
# --overwrite
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def old_run(tmp_path):
    T.train(tiny_config(tmp_path, "run", epochs=1), verbose=False)
    return {name: (tmp_path / "run" / name).read_bytes() for name in R.RUN_FILES}


def same_run(tmp_path, old_run) -> bool:
    folder = tmp_path / "run"
    return sorted(R.folder_contents(folder)) == sorted(old_run) and all(
        (folder / name).read_bytes() == data for name, data in old_run.items()
    )


def test_overwrite_with_a_missing_dataset_keeps_the_old_run(tmp_path, old_run):
    cfg = tiny_config(tmp_path, "run", overwrite=True, dataset="imagefolder", data=str(tmp_path / "nowhere"))
    assert T.main([*argv(cfg)]) == 2
    assert same_run(tmp_path, old_run)


def test_overwrite_interrupted_or_diverged_before_its_first_checkpoint_keeps_the_old_run(tmp_path, old_run):
    cfg = tiny_config(tmp_path, "run", overwrite=True, seed=1, lr=1e30)  # diverges in epoch 1
    with pytest.raises(T.NonFiniteLossError):
        T.train(cfg, verbose=False)
    assert same_run(tmp_path, old_run)


def test_overwrite_deletes_the_old_run_once_the_new_one_has_a_checkpoint(tmp_path, old_run):
    T.train(tiny_config(tmp_path, "run", epochs=1, seed=1, overwrite=True), verbose=False)
    assert R.load_checkpoint(tmp_path / "run" / R.CHECKPOINT)["meta"]["config"]["seed"] == 1
    assert sorted(R.folder_contents(tmp_path / "run")) == sorted(R.RUN_FILES)  # nothing set aside is left


def test_overwrite_killed_before_its_first_checkpoint_gives_the_old_run_back_next_time(tmp_path, old_run, capsys):
    script = textwrap.dedent(f"""
        import time, vgg_tutorial.training.train as T
        def stuck(*args):
            print("building data", flush=True)
            time.sleep(60)
        T.build_data = stuck
        T.main({argv(tiny_config(tmp_path, "run", overwrite=True, seed=1))!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert "building data\n" in iter(child.stdout.readline, "")  # after "--overwrite: replacing the run ..."
        assert not (tmp_path / "run" / R.CHECKPOINT).exists()  # set aside, not deleted
    finally:
        child.kill()  # SIGKILL: no clean-up code runs
        child.wait(10)
        child.stdout.close()
    T.train(tiny_config(tmp_path, "run", epochs=2, resume=True))
    assert "put back checkpoint.pt, history.json, history.csv" in capsys.readouterr().out
    assert len(R.read_history(tmp_path / "run")) == 2  # the old run, continued


def argv(cfg: T.TrainConfig) -> list[str]:
    """The command line of ``cfg`` (the options the tests here change, over the tiny defaults)."""
    out = ["--width", "1/16", "--fc-width", "32", "--image-size", "32", "--batch-size", "16", "--epochs", "1"]
    out += ["--train-per-class", str(cfg.train_per_class), "--val-per-class", str(cfg.val_per_class)]
    out += ["--dataset", cfg.dataset, "--data", cfg.data, "--output", cfg.output, "--seed", str(cfg.seed)]
    out += ["--in-memory"] * cfg.in_memory + ["--overwrite"] * cfg.overwrite + ["--patience", "0", "--lr", "0.02"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# The folder's lock
# ---------------------------------------------------------------------------------------------------------------


def test_the_lock_dies_with_its_process_even_if_a_forked_worker_lives_on(tmp_path):
    """A data loader worker is a forked child: it must not keep the lock of a run killed with ``kill -9``."""
    script = textwrap.dedent(f"""
        import os, time
        from vgg_tutorial.training import runs
        with runs.lock_folder({str(tmp_path / "run")!r}):
            worker = os.fork()
            if worker == 0:  # the worker: outlives its parent
                time.sleep(60)
                os._exit(0)
            print(worker, flush=True)
            time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(parent.stdout.readline())
        with pytest.raises(R.RunError, match="another run"), R.lock_folder(tmp_path / "run"):
            pass
        parent.kill()
        parent.wait(10)
        os.kill(worker, 0)  # the worker still runs...
        with R.lock_folder(tmp_path / "run"):  # ...and the lock is free at once
            pass
    finally:
        parent.kill()
        parent.stdout.close()
        if worker is not None:
            os.kill(worker, signal.SIGKILL)


def test_the_lock_is_free_at_once_after_kill_9_of_a_run_with_two_workers(tmp_path):
    """The issue's case: ``kill -9`` of a run whose loaders have two worker processes each, then ``--resume`` at once
    (which takes the lock first)."""
    argv = ["--width", "1/16", "--fc-width", "32", "--image-size", "32", "--in-memory", "--train-per-class", "4"]
    argv += ["--val-per-class", "4", "--batch-size", "8", "--epochs", "50", "--workers", "2", "--lr", "0.02"]
    argv += ["--data", str(tmp_path / "data"), "--output", str(tmp_path / "run")]
    env = os.environ | {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "vgg_tutorial.train", *argv], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert any(" 1/50 " in line for line in iter(child.stdout.readline, ""))  # epoch 1 done, workers running
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    with R.lock_folder(tmp_path / "run"):
        pass


def test_ctrl_c_during_an_overwrite_exits_130_and_keeps_the_old_run(tmp_path, old_run, capsys, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "build_data", interrupted)
    assert T.main(argv(tiny_config(tmp_path, "run", overwrite=True, seed=1))) == 130
    assert capsys.readouterr().err == "error: interrupted; what was saved before is kept\n"
    assert same_run(tmp_path, old_run)
