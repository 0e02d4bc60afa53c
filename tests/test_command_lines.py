"""Every command line as trustworthy as `train` (issue 22, items 3 and 4): no silently wrong results, and every known
failure a one-line message with a non-zero exit status, never a traceback.

Each test failed on the code before the fix (a traceback, an exit status of 0, or a result made from the wrong
weights), except where a comment says it guards what already worked.
"""

import dataclasses
import json
import resource
import signal
import subprocess
import sys
import zipfile

import pytest
import torch
from test_evaluate import make_checkpoint
from test_run_safety import flip_a_weight_byte
from test_train import tiny_config

from vgg_tutorial.data.synthetic import make_synthetic
from vgg_tutorial.studies import common as ST
from vgg_tutorial.studies import experiments, failures, init_study, testing_study
from vgg_tutorial.testing import evaluate as ev
from vgg_tutorial.training import bench
from vgg_tutorial.training import runs as R
from vgg_tutorial.training import train as T
from vgg_tutorial.training.commands import report_errors


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (see conftest.py)."""


def usage_error(main, argv, capsys) -> str:
    """What ``main(argv)`` says when argparse refuses an option (exit status 2, before any work)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def one_line_error(status: int, capsys) -> str:
    """The error a command line printed: one line (no traceback), after a non-zero exit ``status``."""
    err = capsys.readouterr().err
    assert status != 0 and "Traceback" not in err, err
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bars
    assert last.startswith("error: "), err
    return last


# ---------------------------------------------------------------------------------------------------------------
# Options checked before any work, with the valid range named
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("main", "argv", "said"),
    [
        (experiments.main, ["table3", "--out", "x.json", "--seeds", "0"], "--seeds: must be a whole number"),
        (experiments.main, ["table3", "--out", "x.json", "--seeds", "-2"], "at least 1"),
        (experiments.main, ["table3", "--out", "x.json", "--threads", "0"], "--threads: must be a whole number"),
        (experiments.main, ["table3", "--out", "x.json", "--threads", "100000"], "from 1 to"),
        (testing_study.main, ["--out", "x", "--seeds", "0"], "--seeds: must be a whole number of at least 1"),
        (testing_study.main, ["--out", "x", "--threads", "0"], "--threads"),
        (init_study.main, ["--out", "x.json", "--steps", "-1"], "--steps: must be a whole number of at least 1"),
        (init_study.main, ["--out", "x.json", "--batch-size", "0"], "--batch-size: must be a whole number"),
        (init_study.main, ["--out", "x.json", "--configs", "Z"], "unknown VGG configuration 'Z'"),
        (ev.main, ["c.pt", "--batch-size", "0"], "--batch-size: must be a whole number of at least 1"),
        (ev.main, ["c.pt", "--limit", "0"], "--limit"),
        (ev.main, ["c.pt", "--workers", "-1"], "--workers: must be a whole number of at least 0"),
        (ev.main, ["c.pt", "--device", "bogus"], "--device"),
        (failures.main, ["--out", "x.json", "--epochs", "0"], "--epochs: must be a whole number of at least 1"),
        (failures.main, ["--out", "x.json", "--threads", "100000"], "--threads: must be a whole number from 1 to"),
        (bench.main, ["--quick", "--configs", "Z"], "unknown VGG configuration 'Z'"),
        (bench.main, ["--quick", "--sizes", "0"], "--sizes: must be a whole number of at least 32"),
        (bench.main, ["--quick", "--steps", "0"], "--steps: must be a whole number of at least 1"),
        (bench.main, ["--quick", "--device", "bogus"], "--device"),
        (bench.main, ["--quick", "--batch-size", "0"], "--batch-size: must be a whole number of at least 1"),
        (bench.main, ["--quick", "--batch-size", "1000"], "--batch-size: at most the 320 training images"),
        (bench.main, ["--quick", "--width", "0"], "--width: must be a number above 0"),
        (bench.main, ["--quick", "--warmup", "-1"], "--warmup: must be a whole number of at least 0"),
    ],
)
def test_nonsense_options_are_refused_before_any_work(main, argv, said, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert said in usage_error(main, argv, capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written


# ---------------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------------


def test_bench_checks_its_output_before_the_timing(tmp_path, capsys):
    status = report_errors(lambda: bench.main(["--quick", "--out", str(tmp_path)]) and None)  # as its __main__ does
    assert (
        status == 2
        and capsys.readouterr().err
        == f"error: {tmp_path} is a folder; give the name of a file to write the results to\n"
    )
    assert list(tmp_path.iterdir()) == []  # no synthetic data made, not one step timed


def test_evaluate_refuses_damaged_checkpoints_with_one_line(tmp_path, capsys):
    path = make_checkpoint(tmp_path)
    flip_a_weight_byte(path)
    assert "does not match its CRC-32" in one_line_error(ev.main([str(path)]), capsys)
    path.write_bytes(path.read_bytes()[:-100])
    assert "is truncated or not a checkpoint" in one_line_error(ev.main([str(path)]), capsys)
    path.write_bytes(b"not a zip at all")
    assert "not a checkpoint" in one_line_error(ev.main([str(path)]), capsys)
    assert not (tmp_path / "evaluation-val.json").exists()


def test_evaluate_of_nan_weights_is_an_error_not_an_error_rate(tmp_path, capsys):
    path = make_checkpoint(tmp_path)
    state = torch.load(path, weights_only=True)
    next(value for value in state["model"].values() if value.is_floating_point()).fill_(float("nan"))
    torch.save(state, path)
    assert "not finite" in one_line_error(ev.main([str(path), "--limit", "2", "--no-multi"]), capsys)
    assert not (tmp_path / "evaluation-val.json").exists()


def test_evaluate_refuses_settings_unknown_to_this_version(tmp_path, capsys):
    path = make_checkpoint(tmp_path)
    state = torch.load(path, weights_only=True)
    state["meta"]["config"]["label_smoothing"] = 0.1  # made by a later version: the model may differ
    torch.save(state, path)
    assert "unknown to this version" in one_line_error(ev.main([str(path), "--limit", "2"]), capsys)


def test_evaluate_checks_its_output_before_the_work(tmp_path, capsys, monkeypatch):
    path = make_checkpoint(tmp_path)
    monkeypatch.setattr(ev, "evaluate_checkpoint", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "a-file").write_text("")
    for output in (tmp_path, tmp_path / "a-file" / "results.json"):  # a folder; a folder that cannot exist
        assert ev.main([str(path), "--output", str(output)]) == 2
        capsys.readouterr()


def test_evaluate_can_evaluate_an_imagefolder_run(tmp_path, capsys):
    images = make_synthetic(tmp_path / "data", image_size=37, train_per_class=2, val_per_class=1)
    cfg = tiny_config(tmp_path, "run", epochs=1, dataset="imagefolder", data=str(images), in_memory=False)
    T.train(cfg, verbose=False)
    assert ev.main([str(tmp_path / "run" / R.CHECKPOINT), "--limit", "3", "--methods", "center", "--no-multi"]) == 0
    report = json.loads((tmp_path / "run" / "evaluation-val.json").read_text())
    assert report["results"]["center Q=37"]["images"] == 3


def test_evaluate_refuses_data_other_than_the_runs(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "run", epochs=1, in_memory=False, train_per_class=2, val_per_class=1)
    T.train(cfg, verbose=False)
    argv = [str(tmp_path / "run" / R.CHECKPOINT), "--limit", "2", "--methods", "center", "--no-multi"]
    assert ev.main(argv) == 0  # its own data
    capsys.readouterr()
    image = next((tmp_path / "data").rglob("val_*.JPEG"))
    image.write_bytes(image.read_bytes() + b"\0")  # same name, other bytes
    assert "differ from those the run trained" in one_line_error(ev.main(argv), capsys)


# ---------------------------------------------------------------------------------------------------------------
# train: checkpoints that would resume wrongly, history, disk full, damaged images, out of memory
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run, copied by the tests that change it."""
    tmp_path = tmp_path_factory.mktemp("finished")
    T.train(tiny_config(tmp_path, "run", epochs=1), verbose=False)
    return tmp_path / "run"


def changed_copy(finished, tmp_path, change):
    """A copy of the finished run whose checkpoint ``change(state)`` has edited."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in R.RUN_FILES:
        (folder / name).write_bytes((finished / name).read_bytes())
    state = R.load_checkpoint(folder / R.CHECKPOINT)
    change(state)
    torch.save(state, folder / R.CHECKPOINT)
    return folder


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda state: state["history"].clear(), "history has 0 epochs, but it says 1"),
        (lambda state: state["meta"]["config"].update(label_smoothing=0.1), "label_smoothing=0.1 is unknown"),
        (lambda state: state.update(format=99), "format 99, which this version"),
    ],
)
def test_resume_refuses_checkpoints_it_cannot_continue_exactly(finished, tmp_path, change, said):
    changed_copy(finished, tmp_path, change)
    with pytest.raises(R.RunError, match=said):
        T.train(tiny_config(tmp_path, "run", epochs=2, resume=True), verbose=False)


def test_a_history_left_short_by_a_kill_is_whole_again_after_resume(finished, tmp_path):
    folder = changed_copy(finished, tmp_path, lambda state: None)
    (folder / R.HISTORY_JSON).write_text('{"history": []}\n')  # killed between the checkpoint and the history
    (folder / R.HISTORY_CSV).write_text(",".join(R.HISTORY_FIELDS) + "\n")
    T.train(tiny_config(tmp_path, "run", epochs=1, resume=True), verbose=False)  # nothing left to train
    assert len(R.read_history(folder)) == 1 and len(R.read_history(folder / R.HISTORY_CSV)) == 1


def test_a_compressed_record_is_refused_before_it_is_unpacked(tmp_path):
    path = tmp_path / R.CHECKPOINT
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", bytes(50_000_000))  # 50 MB of zeros, some 50 kB packed
    assert path.stat().st_size < 1_000_000
    with pytest.raises(R.CheckpointError, match="record archive/data.pkl is compressed"):
        R.load_checkpoint(path)


def test_disk_full_during_a_checkpoint_says_so(tmp_path):
    def small_files():  # in the child: files may not grow beyond 20 kB, and writing past it fails (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    argv = ["--width", "1/16", "--fc-width", "32", "--image-size", "32", "--in-memory", "--train-per-class", "2"]
    argv += ["--val-per-class", "1", "--epochs", "1", "--output", str(tmp_path / "run")]
    done = subprocess.run(
        [sys.executable, "-m", "vgg_tutorial.train", *argv],
        preexec_fn=small_files,  # noqa: PLW1509 (no threads in this test process's child before exec)
        capture_output=True,
        text=True,
        timeout=300,
        env={"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"no space left to write {tmp_path / 'run' / R.CHECKPOINT}" in done.stderr


def test_empty_class_folders_and_truncated_images_are_named_in_one_line(tmp_path, capsys):
    images = make_synthetic(tmp_path / "data", image_size=37, train_per_class=2, val_per_class=1)
    argv = ["--width", "1/16", "--fc-width", "32", "--image-size", "32", "--epochs", "1", "--dataset", "imagefolder"]
    argv += ["--data", str(images), "--batch-size", "4"]
    empty = next((images / "val").iterdir())
    hidden = images / ".kept"
    hidden.mkdir()
    next(empty.iterdir()).rename(hidden / "x.JPEG")
    said = one_line_error(T.main([*argv, "--output", str(tmp_path / "a")]), capsys)
    assert f"{empty} has no images" in said
    (hidden / "x.JPEG").rename(empty / "x.JPEG")
    broken = next((images / "train").rglob("*.JPEG"))
    broken.write_bytes(broken.read_bytes()[:200])
    said = one_line_error(T.main([*argv, "--output", str(tmp_path / "b"), "--workers", "1"]), capsys)
    assert f"{broken} cannot be read" in said and "\n" not in said


def test_a_model_too_large_for_memory_is_a_message(tmp_path, capsys):
    tiny = ["--in-memory", "--train-per-class", "1", "--val-per-class", "1", "--image-size", "32", "--width", "1/16"]
    status = T.main(["--fc-width", str(10**12), *tiny, "--output", str(tmp_path / "run")])
    assert status == 1 and "out of memory" in one_line_error(status, capsys)


# ---------------------------------------------------------------------------------------------------------------
# Studies: their files, their weights
# ---------------------------------------------------------------------------------------------------------------


def test_study_files_that_are_not_this_studys_are_refused_with_one_line(tmp_path, capsys):
    quick = ["table3", "--quick", "--seeds", "1", "--out"]
    assert "is a folder" in one_line_error(experiments.main([*quick, str(tmp_path)]), capsys)
    (tmp_path / "bad.json").write_text("{ not json")
    assert "not JSON" in one_line_error(experiments.main([*quick, str(tmp_path / "bad.json")]), capsys)
    (tmp_path / "other.json").write_text(json.dumps({"epochs": 5, "data": {}, "runs": {}}))  # chapter 6's study
    assert "other settings" in one_line_error(experiments.main([*quick, str(tmp_path / "other.json")]), capsys)
    (tmp_path / "later.json").write_text(json.dumps({"study": "table3", "format": 7, "runs": {}}))
    assert "in format 7" in one_line_error(experiments.main([*quick, str(tmp_path / "later.json")]), capsys)
    assert "is a folder" in one_line_error(init_study.main(["--out", str(tmp_path), "--configs", "A"]), capsys)


def test_testing_study_never_reuses_weights_of_other_settings_or_damaged_ones(tmp_path, capsys):
    other = dataclasses.replace(experiments.QUICK, epochs=2)  # same architecture, other training
    torch.manual_seed(0)
    net = experiments.build("D", other)
    path = testing_study.weights_path(tmp_path, "D", 0)
    ST.save_weights(path, {"model": net.state_dict(), "cell": "D", "seed": 0, "setting": dataclasses.asdict(other)})
    said = one_line_error(testing_study.main(["--quick", "--seeds", "1", "--out", str(tmp_path)]), capsys)
    assert "was trained with other settings (setting:" in said
    quick = dataclasses.asdict(experiments.QUICK)
    ST.save_weights(path, {"model": net.state_dict(), "cell": "D", "seed": 0, "setting": quick, "history": []})
    flip_a_weight_byte(path)
    said = one_line_error(testing_study.main(["--quick", "--seeds", "1", "--out", str(tmp_path)]), capsys)
    assert "does not match its CRC-32" in said


def test_an_interrupted_bench_keeps_the_rows_it_timed(tmp_path, monkeypatch):
    timed = []

    def two_then_ctrl_c(*args):
        if len(timed) == 2:
            raise KeyboardInterrupt
        timed.append(real(*args))
        return timed[-1]

    real = bench.run_pipeline
    monkeypatch.setattr(bench, "run_pipeline", two_then_ctrl_c)
    argv = ["--quick", "--configs", "A", "--sizes", "32", "--width", "0.0625", "--fc-width", "32", "--no-phases"]
    argv += ["--batch-size", "8", "--steps", "1", "--warmup", "0", "--train-per-class", "1", "--workers", "0"]
    argv += ["--device", "cpu", "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "bench.json")]
    with pytest.raises(KeyboardInterrupt):
        bench.main(argv)
    kept = bench.load_results(tmp_path / "bench.json")
    assert [row["pipeline"] for row in kept["runs"]] == ["typical", "host"]
