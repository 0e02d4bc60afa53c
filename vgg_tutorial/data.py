"""Datasets and data loaders: Imagenette through torchvision, and the embedded synthetic dataset.

The paper trains on ImageNet (ILSVRC-2012, 1.3M images, 1000 classes, §4). This book trains on Imagenette
(Howard 2019), ten easy ImageNet classes, through :class:`torchvision.datasets.Imagenette`, or, where Imagenette
cannot be downloaded, on the synthetic dataset of :mod:`vgg_tutorial.synthetic`. Both live on disk in the same
layout, ``<folder>/{train,val}/<wnid>/*.JPEG``, and both go through the transforms of :mod:`vgg_tutorial.transforms`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder, Imagenette
from torchvision.datasets.folder import find_classes, make_dataset, pil_loader
from torchvision.datasets.utils import check_integrity
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.configs import RECIPE
from vgg_tutorial.loaders import DeviceLoader, host_loader
from vgg_tutorial.synthetic import (
    IMAGENETTE_PER_CLASS,
    SYNTHETIC_CLASSES,
    SyntheticShapes,
    make_synthetic,
    render_split,
    synthetic_dir,
)
from vgg_tutorial.transforms import IMAGENET_MEAN, default_scale, eval_transform, train_transform

#: Imagenette's folder sizes in torchvision: the shorter side of every image is 160 px, 320 px, or untouched.
IMAGENETTE_SIZES = {"160px": 160, "320px": 320, "full": None}

#: Imagenette's classes in label order (sorted WordNet ids), by the first of the names torchvision gives each.
IMAGENETTE_WNIDS: tuple[str, ...] = tuple(sorted(Imagenette._WNID_TO_CLASS))
IMAGENETTE_CLASSES: tuple[str, ...] = tuple(Imagenette._WNID_TO_CLASS[wnid][0] for wnid in IMAGENETTE_WNIDS)

DATASETS = ("synthetic", "imagenette")
#: How the training split is batched: decoded per batch on the host, or decoded once and augmented on the device.
LOADERS = ("host", "device")


class DatasetNotFoundError(RuntimeError):
    """The dataset is missing or incomplete on disk; the message says what to run."""


def imagenette_dir(root: str | Path, size: str = "160px") -> Path:
    """The folder torchvision's ``Imagenette`` reads for ``size``: ``<root>/imagenette2-160`` and so on."""
    _check_size(size)
    url, _ = Imagenette._ARCHIVES[size]
    return Path(root) / Path(url).stem


def _check_size(size: str) -> str:
    if size not in IMAGENETTE_SIZES:
        raise ValueError(f"unknown Imagenette size {size!r}; expected one of {tuple(IMAGENETTE_SIZES)}")
    return size


def check_image_folder(folder: Path, wnids: tuple[str, ...] = IMAGENETTE_WNIDS) -> None:
    """Raise :class:`DatasetNotFoundError` unless ``folder`` has ``train`` and ``val``, each with a non-empty folder
    of JPEGs per class."""
    for split in ("train", "val"):
        for wnid in wnids:
            class_dir = folder / split / wnid
            if not class_dir.is_dir() or next(class_dir.glob("*.JPEG"), None) is None:
                raise DatasetNotFoundError(f"{class_dir} is missing or has no images")


def download_imagenette(root: str | Path, size: str = "160px") -> Path:
    """Download and extract Imagenette of ``size`` into ``root`` (if not already there) and return its folder.

    The download, md5 check and extraction are torchvision's (``Imagenette(..., download=True)``), run inside a
    temporary folder next to the target; only a complete extraction is moved into place, in one rename. A corrupt
    download (wrong md5) raises and leaves nothing behind. The archive is kept in ``root`` so a later call does not
    download it again.
    """
    target = imagenette_dir(root, size)
    if target.is_dir():
        return target
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    url, md5 = Imagenette._ARCHIVES[size]
    archive = root / Path(url).name
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        if archive.is_file():  # torchvision re-checks its md5 and downloads again if it is corrupt
            archive.rename(staging / archive.name)
        try:
            Imagenette(staging, split="train", size=size, download=True)
        except (RuntimeError, OSError) as error:  # torchvision's "File not found or corrupted.", network errors
            raise DatasetNotFoundError(f"downloading Imagenette ({size}) from {url} failed: {error}") from error
        check_image_folder(staging / target.name)
        (staging / target.name).rename(target)
    finally:
        if check_integrity(str(staging / archive.name), md5):  # whatever else failed, an intact archive is kept
            (staging / archive.name).rename(archive)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def imagenette(
    root: str | Path, split: str = "train", size: str = "160px", *, download: bool = False, transform=None
) -> Imagenette:
    """Imagenette's ``split`` ("train" or "val") at ``size`` ("160px", "320px", "full"), as torchvision's dataset.

    With ``download=True`` it is fetched first (see :func:`download_imagenette`). A missing or incomplete copy
    raises :class:`DatasetNotFoundError` saying what to run.
    """
    _check_size(size)
    if download:
        download_imagenette(root, size)
    folder = imagenette_dir(root, size)
    try:
        check_image_folder(folder)
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"Imagenette ({size}) not found or incomplete under {Path(root)} ({error}). Call "
            f"imagenette({str(root)!r}, size={size!r}, download=True), or run "
            f"python -m vgg_tutorial.train --dataset imagenette --download"
        ) from None
    return Imagenette(root, split=split, size=size, transform=transform)


def synthetic(root: str | Path, split: str = "train", image_size: int = 160, *, transform=None, **options) -> Dataset:
    """The synthetic dataset's ``split`` from disk (generated first if needed, see :func:`make_synthetic`)."""
    folder = make_synthetic(root, image_size=image_size, **options)
    dataset = ImageFolder(folder / split, transform=transform)
    dataset.classes = list(SYNTHETIC_CLASSES)  # readable names instead of the folder names
    return dataset


def class_names(dataset: str) -> tuple[str, ...]:
    """Readable class names, in label order, of ``"synthetic"`` or ``"imagenette"``."""
    return {"synthetic": SYNTHETIC_CLASSES, "imagenette": IMAGENETTE_CLASSES}[_check_dataset(dataset)]


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    return dataset


def smallest_imagenette_size(needed: int) -> str:
    """The smallest Imagenette size whose images are at least ``needed`` px on the shorter side."""
    for size, side in IMAGENETTE_SIZES.items():
        if side is None or side >= needed:
            return size
    raise AssertionError("unreachable: 'full' accepts everything")


def make_dataloaders(
    dataset: str = "synthetic",
    root: str | Path = "data",
    *,
    image_size: int = 64,
    scale: int | tuple[int, int] | None = None,
    test_scale: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    augment: bool = True,
    color_shift: float = RECIPE.color_shift,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] | None = None,
    download: bool = False,
    in_memory: bool = False,
    train_per_class: int | None = None,
    val_per_class: int | None = None,
    seed: int = 0,
    data_seed: int = 0,
    pin_memory: bool | None = None,
    loader: str = "host",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[Iterable, DataLoader]:
    """Training and validation loaders with the paper's augmentation and test-time preprocessing (§3.1, §3.2).

    - ``image_size``: the crop the network sees (224 in the paper).
    - ``scale``: training scale S (an int) or jittering range (S_min, S_max); default S = ``image_size``·256/224.
    - ``test_scale``: Q; default S, or (S_min + S_max) / 2 when jittering (the paper's choice, §4.1). Validation
      images are centre-cropped to ``image_size`` so they batch.
    - ``augment=False``: no random crop position, flip or colour shift in training (rescale and centre crop only).
    - ``dataset="synthetic"`` generates the images first (JPEGs under ``root``; ``in_memory=True`` keeps them in
      memory instead); its images are drawn at S_max so rescaling never enlarges them. ``train_per_class`` and
      ``val_per_class`` choose its size (default: Imagenette's). ``dataset="imagenette"`` picks the smallest
      torchvision size that is at least S_max.
    - ``loader``: how the training split is batched (:mod:`vgg_tutorial.loaders`). ``"host"``: a
      :func:`~vgg_tutorial.loaders.host_loader`, images decoded and augmented per batch by ``num_workers`` worker
      processes (0 for CPU demos, 2 on Colab's two cores); ``"device"``: a :class:`~vgg_tutorial.loaders.DeviceLoader`,
      the split decoded once at S and augmented on ``device`` in ``dtype`` and ``memory_format`` (fixed S only).
    - ``seed`` draws the order of every epoch and the random augmentations; ``data_seed`` draws the synthetic images,
      kept apart so that runs with different seeds train and validate on the same data.
    - ``pin_memory`` defaults to "CUDA is available".
    """
    _check_dataset(dataset)
    if loader not in LOADERS:
        raise ValueError(f"unknown loader {loader!r}; choose one of {', '.join(LOADERS)}")
    scale = default_scale(image_size) if scale is None else scale
    low, high = (scale, scale) if isinstance(scale, int) else scale
    if loader == "device" and low != high:
        raise ValueError("the device loader decodes the images once at a fixed scale S: scale jittering needs 'host'")
    test_scale = test_scale if test_scale is not None else (low + high) // 2
    val_tf = eval_transform(test_scale, image_size, mean=mean, std=std)
    counts = {
        "train_per_class": IMAGENETTE_PER_CLASS["train"] if train_per_class is None else train_per_class,
        "val_per_class": IMAGENETTE_PER_CLASS["val"] if val_per_class is None else val_per_class,
    }
    size = smallest_imagenette_size(high)

    def open_split(split: str, transform) -> Dataset:
        if dataset == "imagenette":
            return imagenette(root, split, size, download=download and split == "train", transform=transform)
        if in_memory:
            per_class = counts[f"{split}_per_class"]
            return SyntheticShapes(split, image_size=high, per_class=per_class, seed=data_seed, transform=transform)
        return synthetic(root, split, high, transform=transform, seed=data_seed, **counts)

    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    if loader == "host":
        train_tf = (
            train_transform(image_size, scale, color_shift=color_shift, mean=mean, std=std)
            if augment
            else eval_transform(test_scale, image_size, mean=mean, std=std)
        )
        train_set = open_split("train", train_tf)
        train_loader = host_loader(
            train_set, batch_size=batch_size, seed=seed, num_workers=num_workers, pin_memory=pin_memory
        )
        val_set = open_split("val", val_tf)
    else:
        val_set = open_split("val", val_tf)  # downloads and checks Imagenette, writes the synthetic JPEGs
        if dataset == "synthetic" and in_memory:
            images, labels = render_split("train", image_size=high, per_class=counts["train_per_class"], seed=data_seed)
        else:
            folder = imagenette_dir(root, size) if dataset == "imagenette" else synthetic_dir(root, high)
            images, labels = decode_split(folder / "train", high)
        if not augment:  # rescale and centre crop only, as the host loader's eval_transform(S, crop)
            images = F.center_crop(images, [image_size])
        train_loader = DeviceLoader(
            images,
            labels,
            batch_size=batch_size,
            crop_size=image_size,
            device=device,
            flip=augment,
            color_shift=color_shift if augment else 0.0,
            mean=mean,
            std=std,
            dtype=dtype,
            memory_format=memory_format,
            seed=seed,
        )
    val_loader = DataLoader(
        val_set,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
    return train_loader, val_loader


def decode_split(folder: str | Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode an ImageFolder-layout split once: uint8 images N×3×``image_size``×``image_size`` and int64 labels.

    Every image is resized so its smaller side is ``image_size`` and centre-cropped to a square; labels follow the
    sorted class folders (as in ``ImageFolder``). For a pipeline that keeps the whole split on the GPU and augments
    there, instead of decoding JPEGs every epoch.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"no image folder at {folder}")
    _, class_to_idx = find_classes(folder)
    samples = make_dataset(folder, class_to_idx, extensions=(".jpeg", ".jpg", ".png"))
    images = torch.empty(len(samples), 3, image_size, image_size, dtype=torch.uint8)
    for index, (path, _) in enumerate(samples):
        image = F.pil_to_tensor(F.resize(pil_loader(path), image_size))  # PIL resizes with antialiasing
        images[index] = F.center_crop(image, image_size)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return images, labels
