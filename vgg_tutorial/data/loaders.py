"""Two ways to batch the same training set, both with an order drawn from ``(seed, epoch)`` alone (§3.1).

- :func:`host_loader`: a ``DataLoader`` over a dataset whose transforms decode and augment one image at a time, on
  the CPU, in worker processes;
- :class:`DeviceLoader`: the whole split decoded once into a uint8 tensor (Imagenette's training split at the
  training scale S = 256 is 9,469 × 3 × 256 × 256 bytes ≈ 1.9 GB), kept next to the model (or in pinned host memory
  when it does not fit, see :func:`choose_storage`), and augmented there a whole batch at a time: a random crop and
  flip as one gather, AlexNet's colour shift, the mean subtracted (§2.1), in the model's dtype and memory format.

:func:`vgg_tutorial.data.datasets.make_dataloaders` builds either from a dataset built once. Because the order of an
epoch (and the seeds of its random augmentations) is a function of ``(seed, epoch)`` rather than a generator that
advances, a run resumed at epoch ``e`` (:func:`set_epoch`) sees the same batches as an uninterrupted one.

The device loader's images keep their whole extent (not a centre square): each is stored with its smaller side at
the decode size, padded to the split's largest shape, with its true height and width in ``sizes``, and crops are
drawn from the whole image, borders included. With ``scale`` (S or (S_min, S_max)) it rescales on the device:
S is drawn per image (§3.1; a loop over the batch) or, with ``jitter="batch"``, once per batch (one resize).

With several processes (:mod:`vgg_tutorial.training.distributed`, the paper's §3.3) both loaders take ``rank`` and
``world_size``: every process draws the same global order and takes its slice of each global batch (:func:`shard`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.nn import functional as TF
from torch.utils.data import DataLoader, Dataset, Sampler

from vgg_tutorial.data.transforms import IMAGENET_MEAN, pca_offsets
from vgg_tutorial.paper.configs import RECIPE

#: Share of the GPU's total memory left free for the model, its gradients, optimizer state and activations.
DEFAULT_HEADROOM = 0.5

STORAGES = ("device", "pinned", "host")
#: How :class:`DeviceLoader` draws the training scale S when it jitters: one per image (§3.1) or one per batch.
JITTERS = ("image", "batch")


def fits_in_memory(nbytes: int, free_bytes: int, total_bytes: int, headroom: float = DEFAULT_HEADROOM) -> bool:
    """Whether ``nbytes`` of data fit in ``free_bytes`` while leaving ``headroom`` × ``total_bytes`` for training."""
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom is a share of the GPU's memory in [0, 1), got {headroom}")
    return nbytes <= free_bytes - headroom * total_bytes


def choose_storage(nbytes: int, device: torch.device | str, headroom: float = DEFAULT_HEADROOM) -> str:
    """Where :class:`DeviceLoader` keeps ``nbytes`` of images for training on ``device``.

    ``"device"`` when the device is a GPU and the data fit with ``headroom`` to spare (``torch.cuda.mem_get_info``),
    ``"pinned"`` (page-locked host memory, copied per batch) when they do not, and ``"host"`` on a CPU.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return "host"
    free, total = torch.cuda.mem_get_info(device)
    return "device" if fits_in_memory(nbytes, free, total, headroom) else "pinned"


def epoch_seed(seed: int, epoch: int) -> int:
    """One seed per (run seed, epoch): the data order of an epoch depends on nothing else."""
    return seed * 100_003 + epoch


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` whose state depends on ``(seed, epoch)`` only: the same pair, the same draws."""
    return torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch))


def shard(order: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """Process ``rank``'s part of an epoch's ``order`` when ``world_size`` processes take ``batch_size`` images each.

    Global batch ``k`` is ``order[k·B : (k+1)·B]`` with B = ``batch_size`` × ``world_size``, as for one process with
    batch B; process ``r`` takes its ``r``-th slice of ``batch_size`` images. With one process, ``order`` itself.
    With several, the last incomplete global batch (fewer than B images; a different few each epoch, since the
    order is reshuffled) is left out, so that every process takes as many steps as the others, on equal shares.
    """
    if world_size == 1:
        return order
    whole = len(order) // (batch_size * world_size) * batch_size * world_size
    return order[:whole].reshape(-1, world_size, batch_size)[:, rank].reshape(-1)


# ---------------------------------------------------------------------------------------------------------------
# On the host: a DataLoader whose order and worker seeds derive from (seed, epoch)
# ---------------------------------------------------------------------------------------------------------------


class EpochSampler(Sampler[int]):
    """A random permutation of the dataset per epoch, drawn from ``epoch_seed(seed, epoch)``; with ``world_size``
    processes, process ``rank``'s :func:`shard` of it for batches of ``batch_size``.

    Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``).
    """

    def __init__(self, length: int, seed: int = 0, *, batch_size: int = 1, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.seed, self.epoch = length, seed, 0
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(shard(torch.arange(self.length), self.batch_size, self.rank, self.world_size))

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.length, generator=epoch_generator(self.seed, self.epoch))
        return iter(shard(order, self.batch_size, self.rank, self.world_size).tolist())


def host_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A training loader whose data order and worker seeds derive from ``(seed, epoch)`` (see :func:`set_epoch`).

    ``batch_size`` is this process's share of the global batch when ``world_size`` processes train (:func:`shard`).

    Worker processes are not kept across epochs (``persistent_workers=False``): each epoch's workers are seeded
    afresh from the loader's generator, which :func:`set_epoch` re-seeds, so random augmentations in workers are
    reproduced on resume too. With ``num_workers=0`` the augmentations draw from the global torch generator, whose
    state the checkpoint keeps.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), seed, batch_size=batch_size, rank=rank, world_size=world_size),
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )


def set_epoch(loader, epoch: int, seed: int) -> None:
    """Prepare ``loader`` for ``epoch``: its order and its random augmentations then depend on (seed, epoch) only.

    A :class:`DeviceLoader` draws both from its own (seed, epoch); a :func:`host_loader` re-seeds its sampler and
    the generator its workers are seeded from. Other iterables (a plain validation ``DataLoader``) are left alone.
    """
    if isinstance(loader, DeviceLoader):
        loader.set_epoch(epoch)
        return
    if hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if getattr(loader, "generator", None) is not None:
        loader.generator.manual_seed(epoch_seed(seed, epoch))


# ---------------------------------------------------------------------------------------------------------------
# On the device: the decoded split in one tensor, augmented a batch at a time
# ---------------------------------------------------------------------------------------------------------------


def crop_and_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, size: int):
    """Crop ``size``×``size`` at (``top[i]``, ``left[i]``) from each ``images[i]`` and mirror it where ``flip[i]``.

    One ``torch.gather`` for the whole batch (B×C×H×W → B×C×size×size), no loop over images: pixel (r, c) of crop
    ``i`` is pixel (``top[i]`` + r, ``left[i]`` + c) of image ``i``, or (``top[i]`` + r, ``left[i]`` + size − 1 − c)
    when it is flipped, so the flip costs nothing extra. The indices are flattened over H×W, which on a CPU is
    about twice as fast as indexing rows and columns separately.
    """
    b, channels, height, width = images.shape
    steps = torch.arange(size, device=images.device)
    rows = top[:, None] + steps  # B × size
    cols = left[:, None] + torch.where(flip[:, None], size - 1 - steps, steps)  # B × size
    flat = (rows[:, :, None] * width + cols[:, None, :]).reshape(b, 1, size * size).expand(b, channels, -1)
    return images.reshape(b, channels, height * width).gather(2, flat).reshape(b, channels, size, size)


class DeviceLoader:
    """An iterable of augmented training batches ``(images, labels)`` drawn from uint8 images held in memory.

    ``images`` is N×3×H×W uint8 (e.g. from :func:`vgg_tutorial.data.decoding.decode_whole`, whole images padded to
    one shape, their true heights and widths in ``sizes``; or squares from
    :func:`vgg_tutorial.data.datasets.decode_split`) and ``labels`` N int64. With ``scale`` (S, or (S_min, S_max) for
    scale jittering, §3.1) each image is first rescaled so that its smaller side is S, drawn per image or, with
    ``jitter="batch"``, per batch; without it the images are used at their stored scale. Each batch is
    ``crop_size``×``crop_size``, cropped anywhere in the whole image, flipped, colour-shifted with α ~ N(0,
    ``color_shift``), minus ``mean`` (and divided by ``std`` if given, as in
    :func:`vgg_tutorial.data.transforms.train_transform`), in ``dtype`` and ``memory_format``, on ``device``.
    ``storage`` ("device", "pinned", "host" or None to let :func:`choose_storage` decide) says where the uint8
    images live. Like a ``DataLoader``: ``len()`` is the number of batches and each ``iter()`` is a new epoch.
    With ``world_size`` processes, ``batch_size`` is this process's share: process ``rank`` takes its :func:`shard`
    of the epoch's order, and its slice of the augmentations drawn for the whole global batch, so that the
    processes together see exactly the batches one process with batch ``batch_size × world_size`` would.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        crop_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
        flip: bool = True,
        color_shift: float = RECIPE.color_shift,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] | None = None,
        dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.contiguous_format,
        seed: int = 0,
        storage: str | None = None,
        headroom: float = DEFAULT_HEADROOM,
        sizes: torch.Tensor | None = None,
        scale: int | tuple[int, int] | None = None,
        jitter: str = "image",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images N×3×H×W, got {images.dtype} of shape {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.sizes = check_sizes(sizes, images) if sizes is not None else None
        smallest = int(self.sizes.min()) if self.sizes is not None else min(images.shape[2:])
        if scale is None and crop_size > smallest:
            raise ValueError(f"crop of {crop_size} px is larger than the stored images (smallest side {smallest})")
        self.scale = (scale, scale) if isinstance(scale, int) else scale
        if self.scale is not None and not crop_size <= self.scale[0] <= self.scale[1]:
            raise ValueError(f"training scale {scale} must satisfy crop ({crop_size}) <= S_min <= S_max (§3.1)")
        if jitter not in JITTERS:
            raise ValueError(f"unknown jitter {jitter!r}; expected one of {JITTERS}")
        self.jitter = jitter
        self.device = torch.device(device)
        self.storage = storage or choose_storage(images.numel() * images.element_size(), self.device, headroom)
        if self.storage not in STORAGES:
            raise ValueError(f"unknown storage {self.storage!r}; expected one of {STORAGES}")
        if self.storage == "device":
            self.images = images.to(self.device)
        elif self.storage == "pinned":
            self.images = images.pin_memory()
        else:
            self.images = images
        self.labels = labels.to(self.device)
        self.batch_size, self.crop_size = batch_size, crop_size
        self.shuffle, self.drop_last, self.flip = shuffle, drop_last, flip
        self.color_shift = color_shift
        self.dtype, self.memory_format = dtype, memory_format
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, world_size
        # The mean (and std) of [0, 1] pixels, folded into one multiply-add on uint8 values: x / 255 · scale − shift.
        std = std if std is not None else (1.0,) * len(mean)
        self._mean = torch.tensor(mean, device=self.device)
        self._inv_std = 1 / torch.tensor(std, device=self.device)

    def __len__(self) -> int:
        n = len(shard(self.labels, self.batch_size, self.rank, self.world_size))
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next ``iter()`` yields (it counts up by one after every ``iter()``); for exact resumption."""
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """The indices of epoch ``epoch``, in the order they are visited: a permutation of all N images."""
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n)
        return torch.randperm(n, generator=epoch_generator(self.seed, epoch))

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = shard(self.order(epoch), self.batch_size, self.rank, self.world_size)
        augment = epoch_generator(self.seed, epoch, self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            sizes = self.sizes[index] if self.sizes is not None else None
            yield self.augment(self._gather(index), augment, sizes), self.labels[index.to(self.device)]

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        """The uint8 images ``index`` on the device (one copy from pinned or host memory when they live there)."""
        if self.storage == "device":
            return self.images[index.to(self.device)]
        batch = self.images[index]
        if self.storage == "pinned":
            batch = batch.pin_memory()
        return batch.to(self.device, non_blocking=True)

    def augment(self, images: torch.Tensor, generator: torch.Generator, sizes: torch.Tensor | None = None):
        """Crop, flip, colour-shift and normalise a uint8 batch B×3×H×W on the device, drawing from ``generator``.

        ``sizes`` (B×2) are the images' true heights and widths inside the padded H×W (default: all of it). With a
        training scale, the batch is first rescaled (:meth:`rescale`); crops are drawn from the whole image. Every
        draw is made for the whole global batch when several processes train, and this process keeps its slice, so
        N processes see exactly the pixels one process would.
        """
        b, _, height, width = images.shape
        size, device = self.crop_size, images.device
        n, mine = b * self.world_size, slice(self.rank * b, (self.rank + 1) * b)
        if sizes is None and self.scale is None:  # every image fills the stored H×W
            top = torch.randint(0, height - size + 1, (n,), device=device, generator=generator)[mine]
            left = torch.randint(0, width - size + 1, (n,), device=device, generator=generator)[mine]
        else:
            sizes = torch.tensor([[height, width]] * b) if sizes is None else sizes
            if self.scale is not None:
                images, sizes = self.rescale(images, sizes.tolist(), generator)
            sizes = sizes.to(device)  # a uniform integer in [0, side - size] per image, whatever each side
            top = (torch.rand(n, device=device, generator=generator)[mine] * (sizes[:, 0] - size + 1)).long()
            left = (torch.rand(n, device=device, generator=generator)[mine] * (sizes[:, 1] - size + 1)).long()
        flip = torch.rand(n, device=device, generator=generator)[mine] < 0.5
        if not self.flip:
            flip = torch.zeros_like(flip)
        crops = crop_and_flip(images, top, left, flip, size)
        alpha = torch.randn(n, 3, device=device, generator=generator)[mine] * self.color_shift
        shift = (pca_offsets(alpha) - self._mean) * self._inv_std  # B × 3, per-image offset after normalising
        scale = self._inv_std / 255
        out = crops.float().mul_(scale[None, :, None, None]).add_(shift[:, :, None, None])  # one new tensor, not three
        return out.to(dtype=self.dtype, memory_format=self.memory_format)

    def draw_scales(self, b: int, generator: torch.Generator) -> list[int]:
        """The training scales S of a batch of ``b``: uniform integers in [S_min, S_max], one per image (or one for
        the whole batch with ``jitter="batch"``), as torchvision's ``RandomResize`` draws them on the host."""
        low, high = self.scale
        if self.jitter == "batch":
            return torch.randint(low, high + 1, (1,), generator=generator, device=self.device).tolist() * b
        draws = torch.randint(low, high + 1, (b * self.world_size,), generator=generator, device=self.device)
        return draws[self.rank * b : (self.rank + 1) * b].tolist()  # this process's slice of the global batch

    def rescale(self, images: torch.Tensor, sizes: list[list[int]], generator: torch.Generator):
        """Rescale each image so that its smaller side is its S (:meth:`draw_scales`), with antialiasing as PIL and
        ``torchvision.transforms.v2.Resize`` do; return the batch (padded to its largest image) and the new sizes.

        Per image this is a loop of B resizes; with ``jitter="batch"`` the whole batch is resized at once (the padding
        past an image's edge repeats its edge pixels, see :func:`vgg_tutorial.data.datasets.decode_whole`, so the border
        pixels are not darkened).
        """
        scales = self.draw_scales(len(images), generator)
        new = [
            [max(self.crop_size, round(h * s / min(h, w))), max(self.crop_size, round(w * s / min(h, w)))]
            for (h, w), s in zip(sizes, scales)
        ]
        if self.jitter == "batch":
            (h, w), (nh, nw) = sizes[0], new[0]
            factor = nh / h
            height, width = round(images.shape[2] * factor), round(images.shape[3] * factor)
            out = TF.interpolate(images.float(), size=(height, width), mode="bilinear", antialias=True)
            new = [[min(height, round(h * factor)), min(width, round(w * factor))] for h, w in sizes]
            return out, torch.tensor(new)
        out = images.new_zeros((len(images), 3, max(n[0] for n in new), max(n[1] for n in new)), dtype=torch.float32)
        for i, ((h, w), (nh, nw)) in enumerate(zip(sizes, new)):
            part = images[i : i + 1, :, :h, :w].float()
            out[i, :, :nh, :nw] = TF.interpolate(part, size=(nh, nw), mode="bilinear", antialias=True)[0]
        return out, torch.tensor(new)


def check_sizes(sizes: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Return ``sizes`` (N×2 int64, each image's true height and width) if they fit the padded ``images``."""
    sizes = torch.as_tensor(sizes, dtype=torch.int64).cpu()
    if sizes.shape != (len(images), 2):
        raise ValueError(f"sizes must be N×2 (height, width), got shape {tuple(sizes.shape)} for {len(images)} images")
    if (sizes[:, 0] > images.shape[2]).any() or (sizes[:, 1] > images.shape[3]).any() or (sizes < 1).any():
        raise ValueError(f"every size must lie within the stored {tuple(images.shape[2:])} and be at least 1")
    return sizes
