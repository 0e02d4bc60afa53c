"""The synthetic dataset: deterministic, balanced, not solvable by colour, learnable, in Imagenette's layout."""

import json

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.data.synthetic import (
    MARKER,
    SYNTHETIC_CLASSES,
    SYNTHETIC_WNIDS,
    SyntheticShapes,
    make_synthetic,
    render_split,
)


def test_render_split_shapes_dtype_and_balance():
    images, labels = render_split("train", image_size=24, per_class=3)
    assert images.shape == (30, 3, 24, 24)
    assert images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [3] * 10
    assert len(SYNTHETIC_CLASSES) == len(SYNTHETIC_WNIDS) == 10
    assert list(SYNTHETIC_WNIDS) == sorted(SYNTHETIC_WNIDS)  # folder order is label order


def test_render_split_is_deterministic_and_seeded():
    first, _ = render_split("val", image_size=16, per_class=2, seed=3)
    again, _ = render_split("val", image_size=16, per_class=2, seed=3)
    other_seed, _ = render_split("val", image_size=16, per_class=2, seed=4)
    train, _ = render_split("train", image_size=16, per_class=2, seed=3)
    assert torch.equal(first, again)
    assert not torch.equal(first, other_seed)
    assert not torch.equal(first, train)


def test_same_scenes_at_any_resolution():
    """The scene depends on the seed, not the resolution: 64 px images shrunk to 32 px look like the 32 px ones."""
    small, _ = render_split("train", image_size=32, per_class=2)
    large, _ = render_split("train", image_size=64, per_class=2)
    shrunk = nn.functional.avg_pool2d(large.float(), 2)
    other = small.float().roll(1, dims=0)  # the same images paired with the wrong scene
    assert (shrunk - small.float()).abs().mean() < 0.3 * (shrunk - other).abs().mean()


def test_mean_colour_does_not_predict_the_class():
    """Nearest class mean on each image's mean RGB is near chance (10%): classes are shapes, not colours."""
    train, train_labels = render_split("train", image_size=16, per_class=60)
    val, val_labels = render_split("val", image_size=16, per_class=60)
    train_rgb, val_rgb = train.float().mean((2, 3)), val.float().mean((2, 3))
    centres = torch.stack([train_rgb[train_labels == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(val_rgb, centres).argmin(1) == val_labels).float().mean().item()
    assert accuracy < 0.2


def test_a_small_conv_net_learns_it(one_thread):
    """A three-block conv net with batch norm, eight epochs on 1,000 images of 32 px: well above chance (10%)."""
    torch.manual_seed(0)
    train, train_labels = render_split("train", image_size=32, per_class=100)
    val, val_labels = render_split("val", image_size=32, per_class=30)
    mean = train.float().mean((0, 2, 3), keepdim=True)
    train, val = (train.float() - mean) / 64, (val.float() - mean) / 64

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

    net = nn.Sequential(*block(3, 8), *block(8, 16), *block(16, 32), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net.append(nn.Linear(32, 10))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(8):
        for batch in torch.randperm(len(train)).split(50):
            loss = nn.functional.cross_entropy(net(train[batch]), train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(val).argmax(1) == val_labels).float().mean().item()
    assert accuracy > 0.35


def test_in_memory_dataset_items_and_transform():
    data = SyntheticShapes("val", image_size=20, per_class=2, transform=lambda image: image.float() / 255)
    image, label = data[3]
    assert len(data) == 20
    assert image.shape == (3, 20, 20) and image.dtype == torch.float32
    assert label == 3
    assert data.classes == list(SYNTHETIC_CLASSES)


def test_make_synthetic_writes_imagenette_layout(tmp_path):
    folder = make_synthetic(tmp_path, image_size=24, train_per_class=2, val_per_class=1)
    assert folder == tmp_path / "synthetic-24px-2+1-seed0-q90"  # every setting that shapes the images
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MARKER, "boxes-train.csv", "boxes-val.csv", "train", "val"]
    )
    for split, per_class in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (folder / split).iterdir()) == list(SYNTHETIC_WNIDS)
        for wnid in SYNTHETIC_WNIDS:
            assert len(list((folder / split / wnid).glob("*.JPEG"))) == per_class
    assert json.loads((folder / MARKER).read_text())["train_per_class"] == 2
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no staging folder left behind


def test_jpegs_match_the_in_memory_images(tmp_path):
    folder = make_synthetic(tmp_path, image_size=32, train_per_class=1, val_per_class=1)
    images, labels = render_split("val", image_size=32, per_class=1)
    paths = [folder / "val" / SYNTHETIC_WNIDS[label] / f"val_{index:05d}.JPEG" for index, label in enumerate(labels)]
    decoded = torch.stack([F.pil_to_tensor(Image.open(path)) for path in paths]).float()
    error = (decoded - images.float()).abs().mean()  # JPEG loses some of the pixel noise
    assert error < 0.5 * (decoded - images.float().roll(1, dims=0)).abs().mean()
    assert error < 20  # in 0-255 units


def test_make_synthetic_is_idempotent_and_never_replaces_a_folder(tmp_path):
    folder = make_synthetic(tmp_path, image_size=16, train_per_class=1, val_per_class=1)
    stamp = (folder / MARKER).stat().st_mtime_ns
    some_image = next((folder / "train").rglob("*.JPEG"))
    some_image.unlink()  # a reused copy is not rewritten, so this stays missing
    assert make_synthetic(tmp_path, image_size=16, train_per_class=1, val_per_class=1) == folder
    assert (folder / MARKER).stat().st_mtime_ns == stamp and not some_image.exists()
    other = make_synthetic(tmp_path, image_size=16, train_per_class=2, val_per_class=1)  # a folder of its own
    assert len(list((other / "train").rglob("*.JPEG"))) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder.name, other.name])
    assert (folder / MARKER).stat().st_mtime_ns == stamp  # the first one is untouched


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="unknown split"):
        render_split("test", image_size=8, per_class=1)
