"""Training scale as in §3.1: random crops from the *whole* rescaled image (every border reachable, none of the
padding), S fixed or drawn from [S_min, S_max] per image (or per batch), in both loaders and from the command line.

The images here encode their own coordinates: channel 0 holds the column and channel 1 the row (scaled to 0..255),
so a crop's pixel values say where in the image it was taken and at what scale."""

import pytest
import torch
from PIL import Image

from vgg_tutorial.data.decoding import decode_whole
from vgg_tutorial.data.loaders import DeviceLoader
from vgg_tutorial.data.transforms import train_transform
from vgg_tutorial.training.train import TrainConfig, parser, training_scale


def coordinates(height: int, width: int, step: int = 1) -> torch.Tensor:
    """A uint8 image 3×H×W whose channel 0 is ``step``·column and channel 1 ``step``·row (channel 2 zero)."""
    cols = (torch.arange(width) * step).expand(height, width)
    rows = (torch.arange(height) * step)[:, None].expand(height, width)
    return torch.stack([cols, rows, torch.zeros_like(cols)]).to(torch.uint8)


def device_crops(images, sizes=None, epochs=40, **options) -> torch.Tensor:
    """Every crop of ``epochs`` epochs, back in 0..255 (no colour shift, no mean, no flip)."""
    defaults = dict(batch_size=8, crop_size=8, color_shift=0.0, mean=(0.0, 0.0, 0.0), flip=False)
    loader = DeviceLoader(images, torch.zeros(len(images), dtype=torch.int64), sizes=sizes, **{**defaults, **options})
    return torch.cat([x for _ in range(epochs) for x, _ in loader]) * 255


def test_device_crops_reach_every_border_of_a_wide_image_and_never_the_padding():
    # Two 4:3-like images of true size 12×24 and 12×18, padded to 12×30 with a value no crop may show (250).
    images = torch.full((2, 3, 12, 30), 250, dtype=torch.uint8)
    images[0, :, :, :24], images[1, :, :, :18] = coordinates(12, 24), coordinates(12, 18)
    crops = device_crops(images, sizes=torch.tensor([[12, 24], [12, 18]]), epochs=300).round()
    cols, rows = crops[:, 0], crops[:, 1]
    assert cols.max() == 23 and cols.min() == 0 and rows.max() == 11 and rows.min() == 0
    assert (crops != 250).all()  # not a pixel of padding
    # The 8-px crops' left edges cover every column the wide image allows, 0 to 24 - 8.
    assert set(cols[:, 0, 0].tolist()) == set(range(0, 24 - 8 + 1))


@pytest.mark.parametrize("jitter", ["image", "batch"])
def test_device_jitter_draws_s_over_its_whole_range_and_crops_reach_the_borders(jitter):
    images = coordinates(16, 16, step=17)[None].expand(8, 3, 16, 16).contiguous()  # columns 0, 17, ..., 255
    loader = DeviceLoader(
        images, torch.zeros(8, dtype=torch.int64), batch_size=8, crop_size=8, scale=(8, 16), jitter=jitter
    )
    generator = torch.Generator().manual_seed(0)
    draws = [loader.draw_scales(8, generator) for _ in range(200)]
    flat = [s for batch in draws for s in batch]
    assert min(flat) == 8 and max(flat) == 16 and set(flat) == set(range(8, 17))
    assert all(len(set(b)) == 1 for b in draws) == (jitter == "batch")  # one S per batch, or one per image
    crops = device_crops(images, scale=(8, 16), jitter=jitter, epochs=60)
    cols = crops[:, 0]
    assert cols.min() < 10 and cols.max() > 245  # left and right borders reached, whatever S
    # A crop's span of columns shrinks as S grows: at S = 8 it is the whole image (255), at S = 16 about half.
    spans = cols.amax(dim=(1, 2)) - cols.amin(dim=(1, 2))
    assert spans.max() > 230 and spans.min() < 140


def test_host_transform_crops_reach_every_border_and_s_varies():
    image = coordinates(20, 40, step=6)  # 2:1, columns 0..234
    transform = train_transform(10, (10, 20), color_shift=0.0, mean=(0.0, 0.0, 0.0), flip=False)
    torch.manual_seed(0)
    crops = torch.stack([transform(image) for _ in range(400)]) * 255
    cols, rows = crops[:, 0], crops[:, 1]
    assert cols.min() < 8 and cols.max() > 226 and rows.min() < 8 and rows.max() > 106
    spans = cols.amax(dim=(1, 2)) - cols.amin(dim=(1, 2))
    assert spans.max() > 100 and spans.min() < 70  # S = 10 sees half the width, S = 20 a quarter


def test_decode_whole_keeps_the_whole_width(tmp_path):
    wide = tmp_path / "wide.png"
    Image.fromarray(coordinates(30, 40, step=6).permute(1, 2, 0).numpy()).save(wide)
    Image.fromarray(coordinates(40, 30, step=6).permute(1, 2, 0).numpy()).save(tmp_path / "tall.png")
    images, labels, sizes = decode_whole([(wide, 3), (tmp_path / "tall.png", 5)], 15)
    assert images.shape == (2, 3, 20, 20) and labels.tolist() == [3, 5]
    assert sizes.tolist() == [[15, 20], [20, 15]]  # smaller side 15, aspect kept: nothing cut off
    assert images[0, 0, 0, 0] < 10 and images[0, 0, 0, 19] > 220  # the first and last columns survive


def test_scale_options_of_the_command_line():
    cfg = TrainConfig(**vars(parser().parse_args(["--image-size", "32", "--scale", "40", "--scale-max", "80"])))
    assert training_scale(cfg) == (40, 80) and cfg.test_scale is None
    assert training_scale(TrainConfig(image_size=32, scale_max=74)) == (37, 74)  # S_min defaults to 32·256/224
    assert training_scale(TrainConfig(image_size=32, scale=48)) == 48 and training_scale(TrainConfig()) is None
    options = ["--image-size", "32", "--test-scale", "50"]
    assert TrainConfig(**vars(parser().parse_args(options))).test_scale == 50


def test_device_loader_refuses_a_scale_below_the_crop():
    with pytest.raises(ValueError, match="S_min"):
        DeviceLoader(
            coordinates(16, 16)[None], torch.zeros(1, dtype=torch.int64), batch_size=1, crop_size=8, scale=(6, 12)
        )


@pytest.mark.parametrize(
    "options, field",
    [({"scale": 20}, "scale"), ({"scale_max": 50}, "scale_max"), ({"test_scale": 10}, "test_scale")],
)
def test_training_and_test_scales_below_the_crop_are_refused_naming_the_field(options, field):
    from vgg_tutorial.training.train import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=f"^{field} must be a whole number of at least"):
        TrainConfig(image_size=64, **options)
    TrainConfig(image_size=64, scale=70, scale_max=100, test_scale=85)  # within range: accepted
