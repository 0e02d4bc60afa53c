"""The datasets' folders on disk: Imagenette's layout and download, and the checks every image folder passes.

Imagenette (Howard 2019) comes as an archive in torchvision's :class:`~torchvision.datasets.Imagenette` layout,
``<folder>/{train,val}/<wnid>/*.JPEG``, which the synthetic dataset and a prepared ImageNet share. Downloads stop
when the server falls silent, extract only members that stay inside the folder, and publish the folder in one
rename; a folder is used only if it has exactly the expected class folders (hidden ones such as
``.ipynb_checkpoints`` ignored), and every image in it can be decoded, checked before training starts.
"""

from __future__ import annotations

import gzip
import http.client
import tarfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from torchvision.datasets import ImageFolder, Imagenette
from torchvision.datasets.folder import IMG_EXTENSIONS, pil_loader
from torchvision.datasets.utils import check_integrity

from vgg_tutorial.data.synthetic import SPLITS, publishing

#: Imagenette's folder sizes in torchvision: the shorter side of every image is 160 px, 320 px, or untouched.
IMAGENETTE_SIZES = {"160px": 160, "320px": 320, "full": None}

#: Imagenette's classes in label order (sorted WordNet ids), by the first of the names torchvision gives each.
IMAGENETTE_WNIDS: tuple[str, ...] = tuple(sorted(Imagenette._WNID_TO_CLASS))
IMAGENETTE_CLASSES: tuple[str, ...] = tuple(Imagenette._WNID_TO_CLASS[wnid][0] for wnid in IMAGENETTE_WNIDS)

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


def load_image(path: str):
    """The image at ``path`` as an RGB PIL image; one PIL cannot decode (truncated, empty, not an image) raises
    :class:`DatasetNotFoundError` naming the file, not PIL's error without it."""
    try:
        return pil_loader(path)
    except Exception as error:  # whatever PIL raises for a damaged file
        raise DatasetNotFoundError(
            f"{path} cannot be read ({type(error).__name__}: {error}); delete or replace it"
        ) from error


class CheckedImageFolder(ImageFolder):
    """torchvision's ``ImageFolder`` whose class folders must be exactly ``wnids``, labelled in that order.

    ``classes`` holds the readable names, ``wnids`` the folder names; see :func:`class_folders` for the checks. An
    image that cannot be decoded raises :class:`DatasetNotFoundError` naming its file (:func:`load_image`).
    """

    def __init__(self, root: str | Path, wnids: tuple[str, ...], classes: tuple[str, ...], transform=None):
        self.wnids = list(wnids)
        super().__init__(root, transform=transform, loader=load_image)  # calls find_classes below
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
            if not any(path.suffix.lower() in IMG_EXTENSIONS for path in class_dir.iterdir()):
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


def fingerprint(folder: str | Path) -> dict:
    """What a run records about the images under ``folder`` to notice, when it resumes, that they changed: per split,
    the number of image files and a CRC-32 of their paths and sizes (hidden folders left out, as the loaders do).

    Only the names and sizes are read, never the images themselves.
    """
    folder, found = Path(folder), {}
    for split in SPLITS:
        crc, count = 0, 0
        for path in sorted((folder / split).rglob("*")):
            parts = path.relative_to(folder).parts
            if any(part.startswith(".") for part in parts) or path.suffix.lower() not in IMG_EXTENSIONS:
                continue
            crc = zlib.crc32(f"{'/'.join(parts)}\t{path.stat().st_size}\n".encode(), crc)
            count += 1
        found[split] = {"images": count, "crc32": crc}
    return found


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
    :func:`~vgg_tutorial.data.synthetic.publishing`): the second one uses what the first one downloaded.
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
