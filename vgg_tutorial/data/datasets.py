"""Datasets and data loaders: Imagenette in torchvision's layout, and the embedded synthetic dataset.

The paper trains on ImageNet (ILSVRC-2012, 1.3M images, 1000 classes, §4). This book trains on Imagenette
(Howard 2019), ten easy ImageNet classes, from the archive and in the folder layout of torchvision's
:class:`~torchvision.datasets.Imagenette`, or, where Imagenette cannot be downloaded, on the synthetic dataset of
:mod:`vgg_tutorial.data.synthetic`. Both live on disk in the same layout, ``<folder>/{train,val}/<wnid>/*.JPEG``, and
both go through the transforms of :mod:`vgg_tutorial.data.transforms`.

The full ImageNet, or any dataset prepared in that layout, is ``dataset="imagefolder"`` (``--dataset imagefolder
--data ROOT``): ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG``, the classes being the folders of
``ROOT/train``, sorted (:func:`folder_wnids`), and ``ROOT/val`` holding exactly the same folders. ImageNet's
validation images come in one flat folder; the book's chapter 10 shows how to sort them into class folders.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset, pil_loader
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.data.decoding import decode_whole
from vgg_tutorial.data.folders import (
    IMAGENETTE_CLASSES,
    IMAGENETTE_SIZES,
    IMAGENETTE_WNIDS,
    CheckedImageFolder,
    DatasetNotFoundError,
    _check_size,
    check_image_folder,
    check_readable_images,
    class_folders,
    download_imagenette,
    fingerprint,
    imagenette_dir,
)
from vgg_tutorial.data.loaders import DeviceLoader, host_loader
from vgg_tutorial.data.synthetic import (
    IMAGENETTE_PER_CLASS,
    SPLITS,
    SYNTHETIC_CLASSES,
    SYNTHETIC_WNIDS,
    SyntheticShapes,
    data_identity,
    make_synthetic,
    render_split,
    synthetic_dir,
)
from vgg_tutorial.data.transforms import IMAGENET_MEAN, default_scale, eval_transform, train_transform
from vgg_tutorial.paper.configs import RECIPE

DATASETS = ("synthetic", "imagenette", "imagefolder")
#: The class folders of each dataset, in label order.
WNIDS = {"synthetic": SYNTHETIC_WNIDS, "imagenette": IMAGENETTE_WNIDS}
#: How the training split is batched: decoded per batch on the host, or decoded once and augmented on the device.
LOADERS = ("host", "device")


def imagenette(
    root: str | Path, split: str = "train", size: str = "160px", *, download: bool = False, transform=None
) -> CheckedImageFolder:
    """Imagenette's ``split`` ("train" or "val") at ``size`` ("160px", "320px", "full"), in torchvision's layout.

    With ``download=True`` it is fetched first (see :func:`download_imagenette`). A missing or incomplete copy
    raises :class:`DatasetNotFoundError` saying what to run. The dataset is a :class:`CheckedImageFolder`: labels
    follow :data:`IMAGENETTE_WNIDS` and hidden folders such as ``.ipynb_checkpoints`` are ignored (torchvision's
    ``Imagenette`` takes them for classes and fails with a ``KeyError``).
    """
    _check_size(size)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
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
    return CheckedImageFolder(folder / split, IMAGENETTE_WNIDS, IMAGENETTE_CLASSES, transform=transform)


def synthetic(root: str | Path, split: str = "train", image_size: int = 160, *, transform=None, **options) -> Dataset:
    """The synthetic dataset's ``split`` from disk (generated first if needed, see :func:`make_synthetic`)."""
    folder = make_synthetic(root, image_size=image_size, **options)
    check_image_folder(folder, SYNTHETIC_WNIDS)  # no class folder emptied since it was made
    return CheckedImageFolder(folder / split, SYNTHETIC_WNIDS, SYNTHETIC_CLASSES, transform=transform)


def class_names(dataset: str) -> tuple[str, ...]:
    """Readable class names, in label order, of ``"synthetic"`` or ``"imagenette"``."""
    if _check_dataset(dataset) == "imagefolder":
        raise ValueError("an imagefolder dataset's classes are its folders: see folder_wnids(root)")
    return {"synthetic": SYNTHETIC_CLASSES, "imagenette": IMAGENETTE_CLASSES}[dataset]


def folder_wnids(root: str | Path) -> tuple[str, ...]:
    """The classes of a dataset in ImageFolder layout: the folders of ``root/train``, sorted (hidden ones left out).

    For ImageNet prepared as ``train/<wnid>/`` and ``val/<wnid>/``: its 1,000 WordNet ids, ``n01440764`` (tench)
    first, which is the label order of torchvision's ``ImageNet`` and of its pretrained weights.
    """
    train = Path(root) / "train"
    found = train.iterdir() if train.is_dir() else []
    wnids = sorted(p.name for p in found if p.is_dir() and not p.name.startswith("."))
    if not wnids:
        raise DatasetNotFoundError(
            f"no class folders in {train}: --dataset imagefolder reads ROOT/train/<class>/*.JPEG and "
            f"ROOT/val/<class>/*.JPEG (ImageNet's layout once its val images are sorted into class folders)"
        )
    return tuple(wnids)


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


def per_class_counts(train_per_class: int | None = None, val_per_class: int | None = None) -> dict[str, int]:
    """The synthetic dataset's images per class in each split; ``None`` is Imagenette's count."""
    return {
        "train_per_class": IMAGENETTE_PER_CLASS["train"] if train_per_class is None else train_per_class,
        "val_per_class": IMAGENETTE_PER_CLASS["val"] if val_per_class is None else val_per_class,
    }


def identify_data(
    dataset: str,
    root: str | Path,
    *,
    image_size: int = 64,
    scale: int | tuple[int, int] | None = None,
    train_per_class: int | None = None,
    val_per_class: int | None = None,
    data_seed: int = 0,
    in_memory: bool = False,
) -> dict:
    """What a run trains on, for it to record and to check when it resumes: the settings that draw synthetic images
    and, for images on disk, :func:`~vgg_tutorial.data.folders.fingerprint` of the folder. Call it after
    :func:`make_dataloaders` with the same arguments (the folder exists by then). A synthetic folder whose images
    were deleted or added since it was made raises :class:`DatasetNotFoundError`."""
    _check_dataset(dataset)
    scale = default_scale(image_size) if scale is None else scale
    high = scale if isinstance(scale, int) else scale[1]
    counts = per_class_counts(train_per_class, val_per_class)
    if dataset == "synthetic" and in_memory:
        return {"dataset": "synthetic in memory", "image_size": high, **counts, "seed": data_seed}
    if dataset == "synthetic":
        folder = synthetic_dir(root, high, *counts.values(), data_seed)
        made, found = data_identity(folder), fingerprint(folder)
        for split in SPLITS:  # images deleted or added since it was made: not the data its name promises
            if found[split]["images"] != len(SYNTHETIC_CLASSES) * made[f"{split}_per_class"]:
                raise DatasetNotFoundError(
                    f"{folder / split} holds {found[split]['images']} images, not the "
                    f"{len(SYNTHETIC_CLASSES) * made[f'{split}_per_class']} it was made with; delete {folder} to make "
                    f"it again"
                )
        return {"dataset": dataset, **made, **found}
    folder = imagenette_dir(root, smallest_imagenette_size(high)) if dataset == "imagenette" else Path(root)
    return {"dataset": dataset, **fingerprint(folder)}


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
    jitter: str = "image",
    rank: int = 0,
    world_size: int = 1,
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
      torchvision size that is at least S_max. ``dataset="imagefolder"`` reads ``root/{train,val}/<class>/``
      (:func:`folder_wnids`); its images are not all decoded first to find unreadable ones, as the others' are.
    - ``loader``: how the training split is batched (:mod:`vgg_tutorial.data.loaders`). ``"host"``: a
      :func:`~vgg_tutorial.data.loaders.host_loader`, images decoded and augmented per batch by ``num_workers`` worker
      processes (0 for CPU demos, 2 on Colab's two cores); ``"device"``: a
      :class:`~vgg_tutorial.data.loaders.DeviceLoader`, the split decoded once (whole images, smaller side S_max) and
      augmented on ``device`` in ``dtype`` and ``memory_format``; with S jittered it rescales there too, S drawn per
      image or per batch (``jitter``).
    - ``seed`` draws the order of every epoch and the random augmentations; ``data_seed`` draws the synthetic images,
      kept apart so that runs with different seeds train and validate on the same data.
    - ``pin_memory`` defaults to "CUDA is available".
    - ``rank``, ``world_size``: with several processes, ``batch_size`` is each one's share of the global batch, and
      the training loader yields process ``rank``'s share (:func:`~vgg_tutorial.data.loaders.shard`, §3.3).
    """
    _check_dataset(dataset)
    if loader not in LOADERS:
        raise ValueError(f"unknown loader {loader!r}; choose one of {', '.join(LOADERS)}")
    scale = default_scale(image_size) if scale is None else scale
    low, high = (scale, scale) if isinstance(scale, int) else scale
    test_scale = test_scale if test_scale is not None else (low + high) // 2
    val_tf = eval_transform(test_scale, image_size, mean=mean, std=std)
    counts = per_class_counts(train_per_class, val_per_class)
    size = smallest_imagenette_size(high)
    wnids = folder_wnids(root) if dataset == "imagefolder" else WNIDS[dataset]
    if dataset == "imagefolder":  # every class folder of val too, none of them empty: found now, not mid-epoch
        check_image_folder(Path(root), wnids)

    def open_split(split: str, transform) -> Dataset:
        if dataset == "imagefolder":
            return CheckedImageFolder(Path(root) / split, wnids, wnids, transform=transform)
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
            train_set,
            batch_size=batch_size,
            seed=seed,
            num_workers=num_workers,
            pin_memory=pin_memory,
            rank=rank,
            world_size=world_size,
        )
        val_set = open_split("val", val_tf)
    else:
        val_set = open_split("val", val_tf)  # downloads and checks Imagenette, writes the synthetic JPEGs
        folders = {"imagenette": imagenette_dir(root, size), "imagefolder": Path(root)}
        sizes, folder = None, folders.get(dataset) or synthetic_dir(root, high, *counts.values(), data_seed)
        if dataset == "synthetic" and in_memory:
            images, labels = render_split("train", image_size=high, per_class=counts["train_per_class"], seed=data_seed)
        elif augment:  # whole images, so that random crops reach every border (§3.1)
            samples = make_dataset(folder / "train", class_folders(folder / "train", wnids), IMG_EXTENSIONS)
            images, labels, sizes = decode_whole(samples, high)
        else:
            images, labels = decode_split(folder / "train", high, wnids=wnids)
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
            sizes=sizes,
            scale=(low, high) if augment and low != high else None,
            jitter=jitter,
            rank=rank,
            world_size=world_size,
        )
    # Images on disk: find unreadable files now, not in the middle of an epoch (ImageNet's 1.3M would take long).
    if isinstance(val_set, ImageFolder) and dataset != "imagefolder":
        for split in SPLITS:
            check_readable_images(Path(val_set.root).parent / split)
    val_loader = DataLoader(
        val_set,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        # Its own generator: without one, starting its workers draws a seed from torch's global generator (which
        # dropout draws from) once per process, so a resumed run would draw different dropout masks from then on.
        generator=torch.Generator().manual_seed(seed),
    )
    return train_loader, val_loader


def decode_split(
    folder: str | Path, image_size: int, wnids: tuple[str, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode an ImageFolder-layout split once: uint8 images N×3×``image_size``×``image_size`` and int64 labels.

    Every image is resized so its smaller side is ``image_size`` and centre-cropped to a square; labels follow
    ``wnids``, the expected class folders (default: the folder's own, sorted, hidden ones such as
    ``.ipynb_checkpoints`` left out; see :func:`class_folders`). For a pipeline that keeps the whole split on the GPU
    and augments there, instead of decoding JPEGs every epoch.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"no image folder at {folder}")
    if wnids is None:
        wnids = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    class_to_idx = class_folders(folder, wnids)
    samples = make_dataset(folder, class_to_idx, extensions=(".jpeg", ".jpg", ".png"))
    images = torch.empty(len(samples), 3, image_size, image_size, dtype=torch.uint8)
    for index, (path, _) in enumerate(samples):
        image = F.pil_to_tensor(F.resize(pil_loader(path), image_size))  # PIL resizes with antialiasing
        images[index] = F.center_crop(image, image_size)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return images, labels
