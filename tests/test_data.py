"""Imagenette's download and loading (against a miniature archive made here), loaders, and decode_split."""

import contextlib
import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading

import pytest
import torch
from PIL import Image
from torchvision.datasets import Imagenette

from vgg_tutorial.data.datasets import (
    IMAGENETTE_CLASSES,
    IMAGENETTE_WNIDS,
    DatasetNotFoundError,
    class_names,
    decode_split,
    download_imagenette,
    imagenette,
    imagenette_dir,
    make_dataloaders,
    smallest_imagenette_size,
)
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_WNIDS, make_synthetic, render_split

PER_CLASS = {"train": 2, "val": 1}


def jpeg_bytes(label: int, height: int = 24, width: int = 36) -> bytes:
    """A small JPEG whose colour encodes its label, so tests can check labels after loading."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20 * label, 100, 200 - 10 * label)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_archive(path, top="imagenette2-160", extra=None):
    """A miniature of fastai's archive: ``imagenette2-160/{train,val}/<wnid>/*.JPEG`` and its csv of labels.

    ``extra``, if given, is called with the open ``TarFile`` to add more members at the end.
    """
    with tarfile.open(path, "w:gz") as tar:

        def add(name, data):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("noisy_imagenette.csv", b"path,noisy_labels_0,is_valid\n")
        for split, count in PER_CLASS.items():
            for label, wnid in enumerate(IMAGENETTE_WNIDS):
                for index in range(count):
                    add(f"{split}/{wnid}/{wnid}_{index}.JPEG", jpeg_bytes(label))
        if extra is not None:
            extra(tar)
    return path


@contextlib.contextmanager
def serving(archive, monkeypatch):
    """Serve ``archive``'s folder over HTTP on localhost and point torchvision's "160px" entry at it (true md5).

    torchvision's downloader reads the response's length, which ``file://`` URLs lack, hence a real HTTP server.
    """
    handler = functools.partial(QuietHandler, directory=str(archive.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}"
    monkeypatch.setitem(Imagenette._ARCHIVES, "160px", (url, hashlib.md5(archive.read_bytes()).hexdigest()))
    try:
        yield archive
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A miniature archive served as Imagenette "160px" (see :func:`serving`)."""
    folder = tmp_path / "server"
    folder.mkdir()
    with serving(write_archive(folder / "imagenette2-160.tgz"), monkeypatch) as archive:
        yield archive


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_class_names():
    assert IMAGENETTE_CLASSES == (
        "tench",
        "English springer",
        "cassette player",
        "chain saw",
        "church",
        "French horn",
        "garbage truck",
        "gas pump",
        "golf ball",
        "parachute",
    )
    assert IMAGENETTE_WNIDS == SYNTHETIC_WNIDS  # the synthetic folders reuse Imagenette's, in the same order
    assert class_names("imagenette") == IMAGENETTE_CLASSES
    assert class_names("synthetic") == SYNTHETIC_CLASSES
    with pytest.raises(ValueError, match="unknown dataset"):
        class_names("imagenet")


def test_download_extract_and_load(server, tmp_path):
    root = tmp_path / "data"
    train = imagenette(root, "train", "160px", download=True)
    val = imagenette(root, "val", "160px")
    assert len(train) == 20 and len(val) == 10
    assert sorted(p.name for p in root.iterdir()) == ["imagenette2-160", "imagenette2-160.tgz"]  # nothing else left
    assert (root / "imagenette2-160" / "noisy_imagenette.csv").is_file()
    assert train.wnids == list(IMAGENETTE_WNIDS)
    image, label = val[7]
    assert image.size == (36, 24)
    assert label == 7 and image.getpixel((18, 12))[0] == pytest.approx(140, abs=8)  # colour encodes the label


def test_second_download_reuses_what_is_there(server, tmp_path):
    root = tmp_path / "data"
    download_imagenette(root, "160px")
    server.unlink()  # the "internet" is gone: nothing may be fetched again
    assert download_imagenette(root, "160px") == imagenette_dir(root, "160px")
    assert len(imagenette(root, "train", "160px", download=True)) == 20


def test_kept_archive_is_extracted_without_downloading(server, tmp_path):
    root = tmp_path / "data"
    download_imagenette(root, "160px")
    server.unlink()
    shutil.rmtree(imagenette_dir(root, "160px"))  # only the archive is left
    assert len(imagenette(root, "val", "160px", download=True)) == 10


def test_corrupt_download_leaves_nothing_behind(server, tmp_path, monkeypatch):
    url, _ = Imagenette._ARCHIVES["160px"]
    monkeypatch.setitem(Imagenette._ARCHIVES, "160px", (url, "0" * 32))  # md5 that cannot match
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="corrupted"):
        imagenette(root, "train", "160px", download=True)
    assert list(root.iterdir()) == []  # no folder to mistake for a dataset, no corrupt archive


def test_missing_dataset_says_what_to_run(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        imagenette(tmp_path, "train", "320px")
    message = str(error.value)
    assert "download=True" in message and "python -m vgg_tutorial.train --dataset imagenette --download" in message
    assert str(tmp_path) in message


def test_incomplete_dataset_is_reported(server, tmp_path):
    root = tmp_path / "data"
    download_imagenette(root, "160px")
    shutil.rmtree(imagenette_dir(root, "160px") / "val" / IMAGENETTE_WNIDS[3])
    with pytest.raises(DatasetNotFoundError, match=IMAGENETTE_WNIDS[3]):
        imagenette(root, "train", "160px")


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown Imagenette size"):
        imagenette(tmp_path, "train", "64px")


def test_smallest_imagenette_size():
    assert smallest_imagenette_size(73) == "160px"
    assert smallest_imagenette_size(160) == "160px"
    assert smallest_imagenette_size(256) == "320px"
    assert smallest_imagenette_size(512) == "full"


def test_imagenette_loaders(server, tmp_path):
    train, val = make_dataloaders("imagenette", tmp_path / "data", image_size=16, batch_size=8, download=True)
    images, labels = next(iter(train))
    assert images.shape == (8, 3, 16, 16) and images.dtype == torch.float32
    images, labels = next(iter(val))
    assert labels.tolist() == list(range(8))  # validation is not shuffled


def test_synthetic_loaders_on_disk_and_in_memory(tmp_path):
    options = dict(image_size=16, batch_size=10, train_per_class=2, val_per_class=1)
    train, val = make_dataloaders("synthetic", tmp_path, **options)
    assert (tmp_path / "synthetic-18px-2+1-seed0-q90").is_dir()  # drawn at S = 16·256/224 ≈ 18
    images, labels = next(iter(train))
    assert images.shape == (10, 3, 16, 16)
    assert len(train.dataset) == 20 and len(val.dataset) == 10
    mem_train, mem_val = make_dataloaders("synthetic", tmp_path, in_memory=True, **options)
    assert sorted(mem_val.dataset.targets) == sorted(val.dataset.targets)
    on_disk, _ = next(iter(val))
    in_memory, _ = next(iter(mem_val))
    assert on_disk.shape == in_memory.shape == (10, 3, 16, 16)


def test_loaders_are_seeded(tmp_path):
    options = dict(image_size=16, batch_size=5, train_per_class=2, val_per_class=1, in_memory=True)
    torch.manual_seed(0)
    first = next(iter(make_dataloaders("synthetic", tmp_path, seed=1, **options)[0]))
    torch.manual_seed(0)
    again = next(iter(make_dataloaders("synthetic", tmp_path, seed=1, **options)[0]))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_scale_jittering_loader_uses_the_papers_test_scale(tmp_path):
    train, val = make_dataloaders(
        "synthetic", tmp_path, image_size=16, scale=(18, 30), in_memory=True, train_per_class=1, val_per_class=1
    )
    assert train.dataset.images.shape[-1] == 30  # drawn at S_max
    resize = val.dataset.transform.transforms[1]
    assert resize.size == [24]  # Q = (S_min + S_max) / 2


def test_loader_workers_settings(tmp_path):
    train, _ = make_dataloaders(
        "synthetic", tmp_path, image_size=16, in_memory=True, train_per_class=1, val_per_class=1, num_workers=2
    )
    # workers restart every epoch, seeded from (seed, epoch), so that a resumed run redraws the same augmentations
    assert train.num_workers == 2 and not train.persistent_workers
    assert train.pin_memory == torch.cuda.is_available()


def test_decode_split(tmp_path):
    folder = make_synthetic(tmp_path, image_size=24, train_per_class=1, val_per_class=2)
    images, labels = decode_split(folder / "val", 16)
    assert images.shape == (20, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == sorted([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 2)
    reference, reference_labels = render_split("val", image_size=16, per_class=2)
    order = torch.argsort(reference_labels, stable=True)
    error = (images.float() - reference[order].float()).abs().mean()
    assert error < 0.5 * (images.float() - reference[order].roll(1, dims=0).float()).abs().mean()


def test_decode_split_crops_to_a_centred_square(server, tmp_path):
    download_imagenette(tmp_path / "data", "160px")
    images, labels = decode_split(imagenette_dir(tmp_path / "data", "160px") / "train", 12)
    assert images.shape == (20, 3, 12, 12)
    assert labels.tolist() == [label for label in range(10) for _ in range(2)]
    assert images[labels == 7][:, 0].float().mean().item() == pytest.approx(140, abs=8)


def test_decode_split_missing_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        decode_split(tmp_path / "nowhere", 16)


def test_run_seed_does_not_change_the_synthetic_images(tmp_path):
    """Runs with different seeds shuffle differently but train and validate on the same images."""
    options = dict(image_size=32, in_memory=True, train_per_class=2, val_per_class=1, augment=False)
    first_train, first_val = make_dataloaders("synthetic", tmp_path, seed=0, **options)
    other_train, other_val = make_dataloaders("synthetic", tmp_path, seed=1, **options)
    assert torch.equal(first_train.dataset.images, other_train.dataset.images)
    assert torch.equal(first_val.dataset.images, other_val.dataset.images)
    changed = make_dataloaders("synthetic", tmp_path, seed=0, data_seed=1, **options)[0]
    assert not torch.equal(changed.dataset.images, first_train.dataset.images)


def test_failed_extraction_keeps_the_intact_archive(server, tmp_path, monkeypatch):
    """A download that succeeded is not thrown away because a later step failed."""
    import vgg_tutorial.data.folders as folders

    def broken(folder):
        raise DatasetNotFoundError(f"pretend {folder} is incomplete")

    original = folders.check_image_folder
    monkeypatch.setattr(folders, "check_image_folder", broken)
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match="pretend"):
        download_imagenette(root, "160px")
    assert [p.name for p in root.iterdir()] == ["imagenette2-160.tgz"]  # the archive, and no half-made folder
    monkeypatch.setattr(folders, "check_image_folder", original)
    server.unlink()  # no network from here on
    assert len(imagenette(root, "val", "160px", download=True)) == 10


def test_network_error_is_a_dataset_error(tmp_path, monkeypatch):
    monkeypatch.setitem(Imagenette._ARCHIVES, "160px", ("http://127.0.0.1:9/imagenette2-160.tgz", "0" * 32))
    with pytest.raises(DatasetNotFoundError, match="failed"):
        download_imagenette(tmp_path / "data", "160px")
    assert list((tmp_path / "data").iterdir()) == []


def test_decode_split_ignores_hidden_folders(tmp_path):
    folder = make_synthetic(tmp_path, image_size=24, train_per_class=1, val_per_class=1)
    clean, clean_labels = decode_split(folder / "val", 16, wnids=SYNTHETIC_WNIDS)
    (folder / "val" / ".ipynb_checkpoints").mkdir()
    (folder / "val" / ".ipynb_checkpoints" / "x.JPEG").write_bytes(jpeg_bytes(0))
    images, labels = decode_split(folder / "val", 16)
    assert torch.equal(images, clean) and torch.equal(labels, clean_labels)


@pytest.mark.parametrize("loader", ["host", "device"])
def test_unreadable_image_stops_the_loaders_before_training_with_its_path(tmp_path, loader):
    folder = make_synthetic(tmp_path, image_size=24, train_per_class=2, val_per_class=1)
    bad = next((folder / "val" / SYNTHETIC_WNIDS[3]).glob("*.JPEG"))
    bad.write_bytes(bad.read_bytes()[:40])  # truncated: the header survives, the pixels do not
    with pytest.raises(DatasetNotFoundError, match=bad.name):
        make_dataloaders(
            "synthetic", tmp_path, image_size=16, scale=24, train_per_class=2, val_per_class=1, loader=loader
        )
