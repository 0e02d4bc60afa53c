"""Data faults and races (issue 12): runs sharing a data folder, killed runs, hostile servers and archives, stray or
missing class folders, unreadable images. Each ends in a clear error or is handled, never a traceback or wrong labels.
"""

import io
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest
from test_data import jpeg_bytes, serving, write_archive
from torchvision.datasets import Imagenette

import vgg_tutorial.data.folders as folders_module
import vgg_tutorial.data.synthetic as synthetic_module
from vgg_tutorial.data.datasets import imagenette, synthetic
from vgg_tutorial.data.folders import (
    IMAGENETTE_CLASSES,
    IMAGENETTE_WNIDS,
    DatasetNotFoundError,
    check_readable_images,
    download_imagenette,
    find_unreadable_images,
    imagenette_dir,
)
from vgg_tutorial.data.synthetic import SYNTHETIC_WNIDS, make_synthetic

TINY = dict(train_per_class=1, val_per_class=1)


# Item 5: runs that share --data, and runs killed while generating.


def run_twice_together(module, name, monkeypatch, run):
    """Call ``run()`` in a thread and, while that call is inside ``module.name`` (slowed down), call it again here.

    Returns the arguments ``module.name`` was called with, the thread's outcome and the second call's result.
    """
    original, calls, first_is_inside = getattr(module, name), [], threading.Event()

    def slowed(*args):
        calls.append(args)
        first_is_inside.set()
        time.sleep(0.3)  # the second call starts meanwhile
        return original(*args)

    monkeypatch.setattr(module, name, slowed)
    outcome = {}

    def first():
        try:
            outcome["result"] = run()
        except Exception as error:  # e.g. its staging folder deleted under it
            outcome["error"] = error

    thread = threading.Thread(target=first)
    thread.start()
    assert first_is_inside.wait(10)
    second = run()
    thread.join(10)
    return calls, outcome, second


def test_concurrent_runs_share_one_synthetic_copy(tmp_path, monkeypatch, capsys):
    """The second run waits for the first, then uses its copy: it neither generates again nor replaces it."""
    calls, outcome, second = run_twice_together(
        synthetic_module, "_write_split", monkeypatch, lambda: make_synthetic(tmp_path, image_size=16, **TINY)
    )
    assert outcome == {"result": second}
    assert [split for _, split, *_ in calls] == ["train", "val"]  # generated once
    assert "waiting for another process" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [second.name]


def test_concurrent_downloads_share_one_copy(tmp_path, monkeypatch):
    (tmp_path / "server").mkdir()
    root = tmp_path / "data"
    with serving(write_archive(tmp_path / "server" / "imagenette2-160.tgz"), monkeypatch):
        calls, outcome, second = run_twice_together(
            folders_module, "_download", monkeypatch, lambda: download_imagenette(root, "160px")
        )
    assert outcome == {"result": second} and len(calls) == 1  # downloaded once
    assert sorted(p.name for p in root.iterdir()) == ["imagenette2-160", "imagenette2-160.tgz"]


def test_staging_folder_of_a_killed_run_is_removed(tmp_path):
    script = (
        "import sys, time\n"
        "import vgg_tutorial.data.synthetic as s\n"
        "write_split = s._write_split\n"
        "def stuck(*args):\n"
        "    write_split(*args)\n"
        "    print('half written', flush=True)\n"
        "    time.sleep(60)\n"
        "s._write_split = stuck\n"
        "s.make_synthetic(sys.argv[1], image_size=16, train_per_class=1, val_per_class=1)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "half written\n"
    finally:
        child.kill()  # SIGKILL: no clean-up code of the child runs
        child.wait(10)
        child.stdout.close()
    assert [p.name.startswith(".synthetic-16px") for p in tmp_path.iterdir()] == [True]  # the hidden staging folder
    folder = make_synthetic(tmp_path, image_size=16, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


# Item 7: downloads that hang, archives that are damaged or would write outside the data folder.


def test_download_gives_up_on_a_silent_server(tmp_path, monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts connections; nobody answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/imagenette2-160.tgz"
        monkeypatch.setitem(Imagenette._ARCHIVES, "160px", (url, "0" * 32))
        start = time.monotonic()
        with pytest.raises(DatasetNotFoundError, match="failed: .* 1 s"):
            download_imagenette(tmp_path / "data", "160px", timeout=1)
        assert time.monotonic() - start < 5
    assert list((tmp_path / "data").iterdir()) == []


def test_truncated_archive_is_deleted_and_reported(tmp_path, monkeypatch):
    """An archive whose md5 matches (the md5 of a truncated file) but which ends early: reported, not kept."""
    (tmp_path / "server").mkdir()
    archive = write_archive(tmp_path / "server" / "imagenette2-160.tgz")
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    root = tmp_path / "data"
    with serving(archive, monkeypatch), pytest.raises(DatasetNotFoundError, match="damaged .* deleted"):
        download_imagenette(root, "160px")
    assert list(root.iterdir()) == []  # neither the bad archive, to be reused, nor a half extraction
    archive.write_bytes(whole)
    with serving(archive, monkeypatch):
        assert len(imagenette(root, "val", "160px", download=True)) == 10


def _member(name, kind=tarfile.REGTYPE, link=""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        data = b"escaped" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


@pytest.mark.parametrize(
    "make_member",
    [
        lambda outside: _member("imagenette2-160/../../../escaped.txt"),
        lambda outside: _member(str(outside / "escaped.txt")),  # an absolute path
        lambda outside: _member("imagenette2-160/link", tarfile.SYMTYPE, str(outside)),
        lambda outside: _member("imagenette2-160/hard", tarfile.LNKTYPE, "../../../escaped.txt"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink"],
)
def test_archive_members_outside_the_folder_are_refused(tmp_path, monkeypatch, make_member):
    (tmp_path / "server").mkdir()
    archive = write_archive(tmp_path / "server" / "imagenette2-160.tgz", extra=make_member(tmp_path))
    root = tmp_path / "data"
    with serving(archive, monkeypatch), pytest.raises(DatasetNotFoundError, match="refusing to extract member"):
        download_imagenette(root, "160px")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "server"]  # nothing written next to them
    assert list(root.iterdir()) == []


# Item 9: stray, extra or missing class folders, and unreadable images.


@pytest.fixture
def imagenette_root(tmp_path, monkeypatch):
    """The root of a downloaded miniature Imagenette (see tests/test_data.py)."""
    (tmp_path / "server").mkdir()
    with serving(write_archive(tmp_path / "server" / "imagenette2-160.tgz"), monkeypatch):
        download_imagenette(tmp_path / "data", "160px")
    return tmp_path / "data"


def test_hidden_folders_in_imagenette_are_ignored(imagenette_root):
    folder = imagenette_dir(imagenette_root, "160px")
    for split in ("train", "val"):
        (folder / split / ".ipynb_checkpoints").mkdir()
    (folder / "val" / ".ipynb_checkpoints" / "n01440764_0-checkpoint.JPEG").write_bytes(jpeg_bytes(0))
    val = imagenette(imagenette_root, "val", "160px")
    assert [label for _, label in val.samples] == list(range(10))
    assert val.classes == list(IMAGENETTE_CLASSES) and val.wnids == list(IMAGENETTE_WNIDS)
    assert len(imagenette(imagenette_root, "train", "160px")) == 20


def test_extra_imagenette_class_folder_is_reported(imagenette_root):
    extra = imagenette_dir(imagenette_root, "160px") / "train" / "n99999999"
    extra.mkdir()
    (extra / "n99999999_0.JPEG").write_bytes(jpeg_bytes(0))
    with pytest.raises(DatasetNotFoundError, match=f"{', '.join(IMAGENETTE_WNIDS)} \\(not a class n99999999\\)"):
        imagenette(imagenette_root, "train", "160px")


def test_synthetic_hidden_folder_does_not_shift_the_labels(tmp_path):
    folder = make_synthetic(tmp_path, image_size=16, **TINY)
    (folder / "train" / ".ipynb_checkpoints").mkdir()
    (folder / "train" / ".ipynb_checkpoints" / "train_00000-checkpoint.JPEG").write_bytes(jpeg_bytes(0))
    assert synthetic(tmp_path, "train", 16, **TINY).targets == list(range(10))


def test_synthetic_extra_class_folder_is_reported(tmp_path):
    folder = make_synthetic(tmp_path, image_size=16, **TINY)
    (folder / "train" / "extra").mkdir()
    (folder / "train" / "extra" / "x.JPEG").write_bytes(jpeg_bytes(0))
    with pytest.raises(DatasetNotFoundError, match=f"{', '.join(SYNTHETIC_WNIDS)} \\(not a class extra\\)"):
        synthetic(tmp_path, "train", 16, **TINY)


def test_synthetic_missing_class_folder_is_reported_not_shifted(tmp_path):
    folder = make_synthetic(tmp_path, image_size=16, **TINY)
    shutil.rmtree(folder / "val" / SYNTHETIC_WNIDS[3])
    with pytest.raises(
        DatasetNotFoundError, match=f"must hold exactly one folder per class.*missing {SYNTHETIC_WNIDS[3]}"
    ):
        synthetic(tmp_path, "val", 16, **TINY)


def test_unreadable_images_are_all_reported_with_their_paths(tmp_path):
    folder = make_synthetic(tmp_path, image_size=32, **TINY)
    assert find_unreadable_images(folder) == []
    check_readable_images(folder)  # nothing to report
    truncated, empty, garbage = sorted(folder.rglob("*.JPEG"))[:3]
    truncated.write_bytes(truncated.read_bytes()[:-50])
    empty.write_bytes(b"")
    garbage.write_bytes(random.Random(0).randbytes(500))
    (folder / "val" / ".ipynb_checkpoints").mkdir()
    (folder / "val" / ".ipynb_checkpoints" / "broken.JPEG").write_bytes(b"")  # skipped, as the loaders skip it
    found = dict(find_unreadable_images(folder))
    assert sorted(found) == [truncated, empty, garbage]
    assert "truncated" in found[truncated] and "cannot identify image file" in found[empty]
    with pytest.raises(DatasetNotFoundError, match=r"3 image\(s\) under .* cannot be read") as error:
        check_readable_images(folder)
    assert all(str(path) in str(error.value) for path in found)
