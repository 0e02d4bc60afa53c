"""The two loaders: the epoch-seeded host order, and the device-resident loader (shapes, determinism, exact
epochs, crops, flips, colour shift, storage choice)."""

import pytest
import torch

from vgg_tutorial.data.datasets import make_dataloaders
from vgg_tutorial.data.loaders import (
    DeviceLoader,
    choose_storage,
    crop_and_flip,
    fits_in_memory,
    pca_offsets,
)
from vgg_tutorial.data.synthetic import render_split
from vgg_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC

SIDE = 16  # stored images are 16×16, so a pixel's value can encode its position: 16·row + column


def position_images(n: int) -> torch.Tensor:
    """``n`` images whose pixel (r, c) holds 16·r + c in every channel: a crop's values say where it came from."""
    grid = torch.arange(SIDE * SIDE, dtype=torch.uint8).reshape(1, 1, SIDE, SIDE)
    return grid.expand(n, 3, SIDE, SIDE).contiguous()


def plain(images, labels, **options):
    """A loader that only crops and flips: no colour shift, no mean subtracted, values back in 0..255 via ×255."""
    defaults = dict(batch_size=8, crop_size=10, color_shift=0.0, mean=(0.0, 0.0, 0.0))
    return DeviceLoader(images, labels, **{**defaults, **options})


def test_batches_have_the_requested_shape_dtype_and_memory_format():
    images, labels = render_split("train", image_size=40, per_class=3)
    loader = DeviceLoader(
        images, labels, batch_size=8, crop_size=32, dtype=torch.bfloat16, memory_format=torch.channels_last
    )
    batches = list(loader)
    assert len(loader) == len(batches) == 4  # 30 images: 8 + 8 + 8 + 6
    assert [len(y) for _, y in batches] == [8, 8, 8, 6]
    x, y = batches[0]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.bfloat16 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert len(DeviceLoader(images, labels, batch_size=8, crop_size=32, drop_last=True)) == 3


def test_every_epoch_visits_every_image_once_in_a_new_order():
    images, _ = render_split("train", image_size=34, per_class=5)
    ids = torch.arange(len(images))  # labels as image ids
    loader = DeviceLoader(images, ids, batch_size=16, crop_size=32)
    orders = [torch.cat([y for _, y in loader]) for _ in range(3)]
    for order in orders:
        assert torch.equal(order.sort().values, ids)
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


def test_epochs_depend_on_seed_and_epoch_only_so_resuming_is_exact():
    images, labels = render_split("train", image_size=36, per_class=2)
    first = DeviceLoader(images, labels, batch_size=8, crop_size=32, seed=3)
    run = [list(first) for _ in range(3)]  # epochs 0, 1, 2
    resumed = DeviceLoader(images, labels, batch_size=8, crop_size=32, seed=3)
    resumed.set_epoch(2)
    for (x, y), (x2, y2) in zip(run[2], resumed):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    other_seed = next(iter(DeviceLoader(images, labels, batch_size=8, crop_size=32, seed=4)))
    assert not torch.equal(run[0][0][0], other_seed[0])


def test_crops_are_windows_of_their_own_image_within_bounds_and_half_are_flipped():
    n, crop = 400, 10
    loader = plain(position_images(n), torch.arange(n), batch_size=100, crop_size=crop, std=(1 / 255,) * 3)
    steps = torch.arange(crop)
    tops, lefts, flips = [], [], []
    for x, _ in loader:
        values = x.round().to(torch.int64)  # ×255 undone by std = 1/255: the stored uint8 values
        assert torch.equal(values[:, 0], values[:, 1]) and torch.equal(values[:, 0], values[:, 2])
        rows, cols = values[:, 0] // SIDE, values[:, 0] % SIDE
        top, first, last = rows[:, 0, 0], cols[:, 0, 0], cols[:, 0, -1]
        flipped = first > last
        left = torch.where(flipped, last, first)
        expected_cols = left[:, None] + torch.where(flipped[:, None], crop - 1 - steps, steps)
        assert torch.equal(rows, (top[:, None] + steps)[:, :, None].expand(-1, -1, crop))
        assert torch.equal(cols, expected_cols[:, None, :].expand(-1, crop, -1))
        tops.append(top), lefts.append(left), flips.append(flipped)
    top, left, flipped = torch.cat(tops), torch.cat(lefts), torch.cat(flips)
    assert top.min() == 0 and top.max() == SIDE - crop  # every offset is possible, none out of bounds
    assert left.min() == 0 and left.max() == SIDE - crop
    assert 0.4 < flipped.float().mean() < 0.6
    no_flip = plain(position_images(50), torch.arange(50), flip=False, std=(1 / 255,) * 3)
    for x, _ in no_flip:
        assert (x[:, 0, :, 1:] > x[:, 0, :, :-1]).all()  # columns increase left to right: never mirrored


def test_crop_and_flip_matches_slicing():
    images = torch.randint(0, 256, (3, 3, 12, 9), dtype=torch.uint8)
    top, left, flip = torch.tensor([0, 2, 4]), torch.tensor([1, 0, 3]), torch.tensor([False, True, True])
    out = crop_and_flip(images, top, left, flip, 5)
    for i in range(3):
        window = images[i, :, top[i] : top[i] + 5, left[i] : left[i] + 5]
        assert torch.equal(out[i], window.flip(-1) if flip[i] else window)


def test_without_colour_shift_the_mean_is_subtracted_exactly():
    images = torch.full((4, 3, 12, 12), 200, dtype=torch.uint8)
    x, _ = next(iter(DeviceLoader(images, torch.zeros(4, dtype=torch.int64), batch_size=4, crop_size=8, color_shift=0)))
    expected = 200 / 255 - torch.tensor(IMAGENET_MEAN)
    assert torch.allclose(x, expected[None, :, None, None].expand_as(x), atol=1e-6)


def test_colour_shift_is_one_rgb_offset_per_image_along_the_principal_components():
    n = 4000
    images = torch.full((n, 3, 4, 4), 128, dtype=torch.uint8)
    loader = DeviceLoader(images, torch.zeros(n, dtype=torch.int64), batch_size=1000, crop_size=4, mean=(0, 0, 0))
    x = torch.cat([b for b, _ in loader]).double()
    offsets = x[:, :, 0, 0] - 128 / 255
    assert torch.allclose(x, x[:, :, :1, :1].expand_as(x))  # the same offset at every pixel of an image
    eigvec = torch.tensor(IMAGENET_PCA_EIGVEC, dtype=torch.double)
    alpha = (offsets @ eigvec) / torch.tensor(IMAGENET_PCA_EIGVAL, dtype=torch.double)  # eigvec is orthonormal
    assert alpha.mean(0).abs().max() < 0.01  # α ~ N(0, 0.1²): standard error 0.1/√4000 ≈ 0.0016
    assert torch.allclose(alpha.std(0), torch.full((3,), 0.1, dtype=torch.double), rtol=0.05)
    assert torch.allclose(pca_offsets(torch.zeros(2, 3)), torch.zeros(2, 3))


def test_bad_inputs_are_refused():
    labels = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="uint8"):
        DeviceLoader(torch.zeros(2, 3, 8, 8), labels, batch_size=2, crop_size=4)
    with pytest.raises(ValueError, match="larger"):
        DeviceLoader(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), labels, batch_size=2, crop_size=9)
    with pytest.raises(ValueError, match="labels"):
        DeviceLoader(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), labels, batch_size=2, crop_size=4)


def test_storage_is_chosen_from_the_free_memory_with_headroom():
    gib = 2**30
    assert fits_in_memory(2 * gib, free_bytes=70 * gib, total_bytes=80 * gib)  # Imagenette at S=256 on an H100
    assert not fits_in_memory(3 * gib, free_bytes=10 * gib, total_bytes=16 * gib)  # 10 − 8 GiB kept = 2 < 3 ...
    assert fits_in_memory(3 * gib, free_bytes=10 * gib, total_bytes=16 * gib, headroom=0.25)  # ... 10 − 4 = 6
    assert not fits_in_memory(5 * gib, free_bytes=15 * gib, total_bytes=16 * gib, headroom=0.75)
    with pytest.raises(ValueError):
        fits_in_memory(1, 1, 1, headroom=1.0)
    assert choose_storage(10**9, "cpu") == "host"


def test_loader_from_a_folder_of_jpegs(tmp_path):
    options = dict(image_size=32, batch_size=8, train_per_class=2, val_per_class=1, loader="device")
    loader, _ = make_dataloaders("synthetic", tmp_path, **options)
    assert loader.storage == "host" and loader.images.shape == (20, 3, 37, 37)  # decoded once at S = 32·256/224
    assert sorted(torch.cat([y for _, y in loader]).tolist()) == sorted(list(range(10)) * 2)


def test_device_loader_batches_the_same_images_as_the_host_loader(tmp_path):
    """Both loaders of make_dataloaders read one split: the same labels, and without augmentation the same pixels."""
    options = dict(image_size=32, scale=32, batch_size=20, train_per_class=2, val_per_class=1, augment=False)
    host, _ = make_dataloaders("synthetic", tmp_path, in_memory=True, **options)
    device, _ = make_dataloaders("synthetic", tmp_path, in_memory=True, loader="device", **options)
    (host_images, host_labels), (device_images, device_labels) = next(iter(host)), next(iter(device))
    assert torch.equal(device_labels, host.dataset.labels[device.order(0)])
    assert torch.equal(host_labels, device_labels)  # one order per (seed, epoch), whichever loader draws it
    assert torch.allclose(host_images, device_images, atol=1e-6)


def test_device_loader_jitters_scale_from_make_dataloaders(tmp_path):
    """Scale jittering (§3.1) now works on the device loader: images stored at S_max, rescaled per image."""
    options = dict(image_size=16, scale=(18, 30), in_memory=True, loader="device", train_per_class=2, val_per_class=1)
    loader, val = make_dataloaders("synthetic", tmp_path, **options)
    assert loader.scale == (18, 30) and loader.images.shape[2:] == (30, 30)
    images, _ = next(iter(loader))
    assert images.shape == (20, 3, 16, 16) and val.dataset[0][0].shape == (3, 16, 16)  # val at Q = 24, centre crop
