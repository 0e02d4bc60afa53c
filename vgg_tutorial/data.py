"""Datasets and data loaders: Imagenette in torchvision's layout, and the embedded synthetic dataset.

The paper trains on ImageNet (ILSVRC-2012, 1.3M images, 1000 classes, §4). This book trains on Imagenette
(Howard 2019), ten easy ImageNet classes, from the archive and in the folder layout of torchvision's
:class:`~torchvision.datasets.Imagenette`, or, where Imagenette cannot be downloaded, on the synthetic dataset of
:mod:`vgg_tutorial.synthetic`. Both live on disk in the same layout, ``<folder>/{train,val}/<wnid>/*.JPEG``, and
both go through the transforms of :mod:`vgg_tutorial.transforms`.

The full ImageNet, or any dataset prepared in that layout, is ``dataset="imagefolder"`` (``--dataset imagefolder
--data ROOT``): ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG``, the classes being the folders of
``ROOT/train``, sorted (:func:`folder_wnids`), and ``ROOT/val`` holding exactly the same folders. ImageNet's
validation images come in one flat folder; the book's chapter 9 shows how to sort them into class folders.
"""

from __future__ import annotations

import gzip
import http.client
import tarfile
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder, Imagenette
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset, pil_loader
from torchvision.datasets.utils import check_integrity
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.configs import RECIPE
from vgg_tutorial.decoding import decode_whole
from vgg_tutorial.loaders import DeviceLoader, host_loader
from vgg_tutorial.synthetic import (
    IMAGENETTE_PER_CLASS,
    SPLITS,
    SYNTHETIC_CLASSES,
    SYNTHETIC_WNIDS,
    SyntheticShapes,
    make_synthetic,
    publishing,
    render_split,
    synthetic_dir,
)
from vgg_tutorial.transforms import IMAGENET_MEAN, default_scale, eval_transform, train_transform

#: Imagenette's folder sizes in torchvision: the shorter side of every image is 160 px, 320 px, or untouched.
IMAGENETTE_SIZES = {"160px": 160, "320px": 320, "full": None}

#: Imagenette's classes in label order (sorted WordNet ids), by the first of the names torchvision gives each.
IMAGENETTE_WNIDS: tuple[str, ...] = tuple(sorted(Imagenette._WNID_TO_CLASS))
IMAGENETTE_CLASSES: tuple[str, ...] = tuple(Imagenette._WNID_TO_CLASS[wnid][0] for wnid in IMAGENETTE_WNIDS)

DATASETS = ("synthetic", "imagenette", "imagefolder")
#: The class folders of each dataset, in label order.
WNIDS = {"synthetic": SYNTHETIC_WNIDS, "imagenette": IMAGENETTE_WNIDS}
#: How the training split is batched: decoded per batch on the host, or decoded once and augmented on the device.
LOADERS = ("host", "device")

#: Seconds a download waits for the server to send anything (connect, answer, next bytes) before giving up. It is
#: not a limit on the whole download, which takes minutes on a slow line.
DOWNLOAD_TIMEOUT = 60.0


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


def class_folders(split_folder: Path, wnids: tuple[str, ...]) -> dict[str, int]:
    """Check that ``split_folder`` has one folder per class in ``wnids`` and no other; return wnid → label.

    Labels follow the order of ``wnids``, never what happens to be on disk: torchvision's ``ImageFolder`` numbers
    the folders it finds, so there a deleted class folder silently shifts the labels of every class after it, and
    an extra one adds a class the network has no output for. Here either raises :class:`DatasetNotFoundError`
    naming the expected folders. Hidden folders such as ``.ipynb_checkpoints`` (which Jupyter creates) are ignored.
    """
    if not split_folder.is_dir():
        raise DatasetNotFoundError(f"{split_folder} is missing")
    found = {entry.name for entry in split_folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")}
    missing = [wnid for wnid in wnids if wnid not in found]
    extra = sorted(found - set(wnids))
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"not a class {', '.join(extra)}"] if extra else []
    if problems:
        raise DatasetNotFoundError(
            f"{split_folder} must hold exactly one folder per class, {', '.join(wnids)} ({'; '.join(problems)}). "
            f"Move other folders elsewhere, or delete {split_folder.parent} to make or download it again"
        )
    return {wnid: label for label, wnid in enumerate(wnids)}


class CheckedImageFolder(ImageFolder):
    """torchvision's ``ImageFolder`` whose class folders must be exactly ``wnids``, labelled in that order.

    ``classes`` holds the readable names, ``wnids`` the folder names; see :func:`class_folders` for the checks.
    """

    def __init__(self, root: str | Path, wnids: tuple[str, ...], classes: tuple[str, ...], transform=None):
        self.wnids = list(wnids)
        super().__init__(root, transform=transform)  # calls find_classes below
        self.classes = list(classes)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        class_to_idx = class_folders(Path(directory), tuple(self.wnids))
        return list(class_to_idx), class_to_idx


def check_image_folder(folder: Path, wnids: tuple[str, ...] = IMAGENETTE_WNIDS) -> None:
    """Raise :class:`DatasetNotFoundError` unless ``folder`` has ``train`` and ``val``, each with exactly one
    non-empty folder of JPEGs per class (see :func:`class_folders`)."""
    for split in SPLITS:
        class_folders(folder / split, wnids)
        for wnid in wnids:
            class_dir = folder / split / wnid
            if next(class_dir.glob("*.JPEG"), None) is None:
                raise DatasetNotFoundError(f"{class_dir} has no images")


def find_unreadable_images(folder: str | Path) -> list[tuple[Path, str]]:
    """Every image file under ``folder`` that PIL cannot decode (empty, truncated, not an image), with the reason.

    A data loader meets such a file only when it reaches it, in the middle of an epoch; this finds them all before
    training starts. Each image is decoded completely, in JPEG's draft mode (at 1/8 of the resolution, which still
    reads every byte of the file). Hidden folders (``.ipynb_checkpoints``) are skipped, as the loaders skip them.
    """
    from PIL import Image

    folder = Path(folder)
    unreadable = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden or not path.is_file() or path.suffix.lower() not in IMG_EXTENSIONS:
            continue
        try:
            with Image.open(path) as image:
                image.draft("RGB", (1, 1))  # smallest size the decoder offers; only JPEGs have a draft mode
                image.load()
        except Exception as error:  # whatever PIL raises here, the loader would raise in the middle of an epoch
            unreadable.append((path, f"{type(error).__name__}: {error}"))
    return unreadable


def check_readable_images(folder: str | Path) -> None:
    """Raise :class:`DatasetNotFoundError` listing the unreadable images under ``folder``, if there are any."""
    unreadable = find_unreadable_images(folder)
    if unreadable:
        listed = "\n".join(f"  {path} ({reason})" for path, reason in unreadable[:20])
        more = f"\n  ... and {len(unreadable) - 20} more" if len(unreadable) > 20 else ""
        raise DatasetNotFoundError(
            f"{len(unreadable)} image(s) under {folder} cannot be read; delete or replace them:\n{listed}{more}"
        )


def _download(url: str, path: Path, timeout: float) -> None:
    """Save ``url`` as ``path``, with a progress bar; give up if the server is silent for ``timeout`` seconds.

    torchvision's ``download_url`` sets no timeout, so a server that accepts the connection but never answers
    would make it wait forever.
    """
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "vgg_tutorial"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(path, "wb") as file:
        with tqdm(total=response.length, unit="B", unit_scale=True, desc=path.name) as progress:
            while chunk := response.read(1 << 20):
                file.write(chunk)
                progress.update(len(chunk))


def _unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` could write outside the target folder, or ``None`` if it is a plain file or
    folder with a relative path that stays inside."""
    paths = PurePosixPath(member.name), PureWindowsPath(member.name)  # "/x", "C:\\x", "..\\x" are all unsafe
    if any(path.is_absolute() or path.drive or path.root for path in paths):
        return "has an absolute path"
    if any(".." in path.parts for path in paths):
        return "climbs out of the folder with '..'"
    if not (member.isfile() or member.isdir()):
        return "is a link or a special file"
    return None


def extract_tar(archive: Path, folder: Path) -> None:
    """Extract the tar archive ``archive`` into ``folder``, refusing any member that could land outside it.

    ``tarfile`` alone would follow ``../``, absolute paths and links wherever they point. Every member is checked
    first (:func:`_unsafe_member`: plain files and folders with relative paths only; Imagenette has nothing else),
    and where Python has it (3.12, and security releases of 3.8 to 3.11) tarfile's own ``filter="data"`` checks
    again. A refused member raises ``tarfile.TarError``; so does a damaged archive (or ``EOFError``, ``zlib.error``).
    """
    with tarfile.open(archive) as tar:
        for member in tar:  # one pass over the compressed stream: check a member, then extract it
            reason = _unsafe_member(member)
            if reason is not None:
                raise tarfile.TarError(f"refusing to extract member {member.name!r}: it {reason}")
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, folder, filter="data")
            else:  # pragma: no cover - Pythons without extraction filters
                tar.extract(member, folder)


#: What a damaged (truncated, garbled) or refused archive raises while it is extracted.
_DAMAGED_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def download_imagenette(root: str | Path, size: str = "160px", *, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Download and extract Imagenette of ``size`` into ``root`` (if not already there) and return its folder.

    The URL, md5 and folder layout are torchvision's (``Imagenette._ARCHIVES``); the download waits at most
    ``timeout`` seconds for each answer of the server. It is extracted inside a temporary folder next to the target,
    refusing members that would write outside it (:func:`extract_tar`), and only a complete extraction is moved into
    place, in one rename. A corrupt download (wrong md5) raises and leaves nothing behind; so does a damaged archive,
    deleted so that the next call downloads it again. An intact archive is kept in ``root`` so a later call does not
    download it again. Runs started together on the same ``root`` take turns (see
    :func:`~vgg_tutorial.synthetic.publishing`): the second one uses what the first one downloaded.
    """
    target = imagenette_dir(root, size)
    if target.is_dir():
        return target
    url, md5 = Imagenette._ARCHIVES[size]
    archive = Path(root) / Path(url).name
    with publishing(target) as staging:
        if target.is_dir():  # another process finished it while this one waited for its turn
            return target
        if not check_integrity(str(archive), md5):
            archive.unlink(missing_ok=True)  # a corrupt archive is never kept
            download = staging / archive.name
            try:
                _download(url, download, timeout)
            except (OSError, http.client.HTTPException, ValueError) as error:  # no network, 404, silent server...
                timed_out = isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError)
                why = f"no answer from the server within {timeout:g} s" if timed_out else error  # urllib may wrap it
                raise DatasetNotFoundError(f"downloading Imagenette ({size}) from {url} failed: {why}") from error
            if not check_integrity(str(download), md5):
                raise DatasetNotFoundError(
                    f"downloading Imagenette ({size}) from {url} failed: the file is corrupted (its md5 is not {md5})"
                )
            download.rename(archive)  # kept, whatever fails next
        try:
            extract_tar(archive, staging)
        except _DAMAGED_ARCHIVE as error:
            archive.unlink()
            raise DatasetNotFoundError(
                f"the Imagenette archive {archive} is damaged or unsafe ({type(error).__name__}: {error}); it has "
                f"been deleted: run again to download it again"
            ) from error
        check_image_folder(staging / target.name)
        (staging / target.name).rename(target)
    return target


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
    - ``loader``: how the training split is batched (:mod:`vgg_tutorial.loaders`). ``"host"``: a
      :func:`~vgg_tutorial.loaders.host_loader`, images decoded and augmented per batch by ``num_workers`` worker
      processes (0 for CPU demos, 2 on Colab's two cores); ``"device"``: a :class:`~vgg_tutorial.loaders.DeviceLoader`,
      the split decoded once (whole images, smaller side S_max) and augmented on ``device`` in ``dtype`` and
      ``memory_format``; with S jittered it rescales there too, S drawn per image or per batch (``jitter``).
    - ``seed`` draws the order of every epoch and the random augmentations; ``data_seed`` draws the synthetic images,
      kept apart so that runs with different seeds train and validate on the same data.
    - ``pin_memory`` defaults to "CUDA is available".
    - ``rank``, ``world_size``: with several processes, ``batch_size`` is each one's share of the global batch, and
      the training loader yields process ``rank``'s share (:func:`~vgg_tutorial.loaders.shard`, §3.3).
    """
    _check_dataset(dataset)
    if loader not in LOADERS:
        raise ValueError(f"unknown loader {loader!r}; choose one of {', '.join(LOADERS)}")
    scale = default_scale(image_size) if scale is None else scale
    low, high = (scale, scale) if isinstance(scale, int) else scale
    test_scale = test_scale if test_scale is not None else (low + high) // 2
    val_tf = eval_transform(test_scale, image_size, mean=mean, std=std)
    counts = {
        "train_per_class": IMAGENETTE_PER_CLASS["train"] if train_per_class is None else train_per_class,
        "val_per_class": IMAGENETTE_PER_CLASS["val"] if val_per_class is None else val_per_class,
    }
    size = smallest_imagenette_size(high)
    wnids = folder_wnids(root) if dataset == "imagefolder" else WNIDS[dataset]

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
        sizes, folder = None, folders.get(dataset) or synthetic_dir(root, high)
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
