"""Boxes (Appendix A): each synthetic object's box, IoU, and boxes that follow their object under the book's
crops, flips and rescaling, checked on position-encoding images and on painted objects."""

import pytest
import torch
from torch.nn import functional as TF

from vgg_tutorial.data import boxes as B
from vgg_tutorial.data import cluttered, synthetic
from vgg_tutorial.data.loaders import crop_and_flip
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes, make_synthetic, render_boxes, render_split
from vgg_tutorial.data.transforms import resize


def painted(labels: torch.Tensor, size: int, seed: int = 3, radius=(0.2, 0.7)):
    """Objects painted white on black (no noise) and their parameters: the object's pixels are the mask."""
    params = synthetic._draw_params(labels, torch.Generator().manual_seed(seed), radius)
    white = dict(params, foreground=torch.ones(len(labels), 3), second=torch.ones(len(labels), 3))
    image = torch.zeros(len(labels), 3, size, size)
    synthetic.paint(image, labels, white)
    return image, params


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """The box of the pixels of ``mask`` (H×W bool), in pixel edges."""
    rows, cols = mask.nonzero(as_tuple=True)
    return torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).float()


def test_each_class_box_fits_its_painted_object():
    labels = torch.arange(200) % len(SYNTHETIC_CLASSES)
    image, params = painted(labels, 74)
    boxes = B.object_boxes(labels, params, 74)
    for i in range(len(labels)):
        # Pixel centres inside the shape; the sharp tip of a triangle can fall between two centres (1.2 px).
        assert (mask_box(image[i, 0] > 0.5) - boxes[i]).abs().max() <= 1.5, (i, labels[i])


def test_cluttered_boxes_fit_the_class_object_not_the_distractors():
    labels = torch.arange(40) % len(SYNTHETIC_CLASSES)
    gen = torch.Generator().manual_seed(cluttered.SEED_OFFSET + synthetic._split_seed(0, "val"))
    layers = cluttered.draw_layers(labels, gen)
    ones = torch.ones(len(labels), 3)
    image = torch.zeros(len(labels), 3, 64, 64)
    synthetic.paint(image, labels, dict(layers[cluttered.CLUTTER // 2][1], foreground=ones, second=ones))
    boxes = cluttered.cluttered_boxes("val", image_size=64, per_class=4, seed=0)
    for i in range(len(labels)):
        assert (mask_box(image[i, 0] > 0.5) - boxes[i]).abs().max() <= 1.5, (i, labels[i])
    distractors = B.object_boxes(*layers[0], 64)  # a smaller object drawn behind
    assert (B.iou(distractors, boxes) < 0.5).all()


def test_boxes_stay_inside_the_image_even_for_objects_past_its_border():
    labels = torch.arange(400) % len(SYNTHETIC_CLASSES)
    _, params = painted(labels, 32, radius=(0.6, 0.7))
    boxes = B.object_boxes(labels, params, 32)
    B.check_boxes(boxes, 32)
    assert (boxes == 0).any() or (boxes == 32).any()  # some objects reach the border and are clipped


#: The pixel sum of ``render_split("train", image_size=32, per_class=3, seed=0)`` before boxes were added (4adc2ea).
EXPECTED_SUM = 11613964


def test_images_are_unchanged_by_the_boxes():
    # A tolerance of a few units for a rounding that another CPU's sin/cos could flip.
    images, labels = render_split("train", image_size=32, per_class=3, seed=0)
    again, _ = render_split("train", image_size=32, per_class=3, seed=0)
    render_boxes("train", image_size=32, per_class=3, seed=0)
    assert torch.equal(images, again)
    assert abs(int(images.long().sum()) - EXPECTED_SUM) <= 4
    assert labels.tolist() == [i % 10 for i in range(30)]


def test_folder_boxes_equal_in_memory_boxes(tmp_path):
    folder = make_synthetic(tmp_path, image_size=24, train_per_class=2, val_per_class=1)
    for split, per_class in (("train", 2), ("val", 1)):
        memory = SyntheticShapes(split, image_size=24, per_class=per_class)
        written = B.read_boxes(folder, split)
        assert len(written) == len(memory) == 10 * per_class
        for i in range(len(memory)):
            label, box = written[f"{split}_{i:05d}.JPEG"]
            assert label == memory.targets[i]
            assert torch.allclose(box, memory.boxes[i], atol=1e-4)
        path = next((folder / split).rglob(f"{split}_00001.JPEG"))  # the file the row names holds that class
        assert path.parent.name == synthetic.SYNTHETIC_WNIDS[written[path.name][0]]


def test_a_folder_without_boxes_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="made before synthetic folders held boxes"):
        B.read_boxes(tmp_path, "train")


def positions(size: int) -> torch.Tensor:
    """A position-encoding image: channel 0 holds each pixel's column, channel 1 its row (1×3×size×size)."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.stack([cols, rows, torch.zeros_like(rows)])[None].float()


def test_a_pixel_box_follows_its_pixel_under_crop_and_flip():
    image = positions(20).to(torch.uint8)
    top, left = torch.tensor([3, 0]), torch.tensor([5, 8])
    flips = torch.tensor([True, False])
    crops = crop_and_flip(image.expand(2, -1, -1, -1), top, left, flips, 12)
    for row in range(20):
        for col in range(20):
            box = torch.tensor([[col, row, col + 1, row + 1]] * 2).float()
            moved = B.flip(B.crop(box, top, left), 12, flips)
            for k in range(2):
                x0, y0 = int(moved[k, 0]), int(moved[k, 1])
                if 0 <= x0 < 12 and 0 <= y0 < 12:  # the pixel is inside the crop: read back where it went
                    assert crops[k, 0, y0, x0] == col and crops[k, 1, y0, x0] == row
                    assert moved[k, 2] - moved[k, 0] == 1


@pytest.mark.parametrize(("old", "new"), [(74, 37), (37, 74), (40, 32)])
def test_a_box_follows_the_pixels_under_rescaling(old, new):
    image = positions(old)
    out = TF.interpolate(image, size=(new, new), mode="bilinear", antialias=True)
    # Away from the borders, where the filter is cut off; antialiasing at a ratio like 40 : 32 weighs a linear ramp
    # a few hundredths of a pixel off its centre, far less than align_corners=True's shift of up to half a pixel.
    for j in range(3, new - 3):
        centre = torch.tensor([[j + 0.5, j + 0.5, j + 0.5, j + 0.5]])  # a point box at pixel j's centre
        back = B.rescale(centre, new, old)  # where that point was in the original image
        assert out[0, 0, j, j].item() == pytest.approx(back[0, 0].item() - 0.5, abs=0.05)  # its column


def test_boxes_follow_painted_objects_under_the_studys_transforms():
    labels = torch.arange(30) % len(SYNTHETIC_CLASSES)
    image, params = painted(labels, 74)
    boxes = B.object_boxes(labels, params, 74)
    small = resize((image * 255).to(torch.uint8), 37)  # the study's S = 37
    top, left = torch.randint(0, 6, (30,)), torch.randint(0, 6, (30,))
    flips = torch.arange(30) % 2 == 0
    crops = crop_and_flip(small, top, left, flips, 32)
    moved = B.flip(B.crop(B.rescale(boxes, 74, 37), top, left), 32, flips).clamp(0, 32)
    for i in range(30):
        assert (mask_box(crops[i, 0] > 127) - moved[i]).abs().max() <= 1.5, i


def test_iou_values():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    assert B.iou(a, a).item() == 1.0
    assert B.iou(a, torch.tensor([1.0, 0.0, 3.0, 2.0])).item() == pytest.approx(1 / 3)
    assert B.iou(a, torch.tensor([2.0, 2.0, 4.0, 4.0])).item() == 0.0  # touching corners
    assert B.iou(a, torch.tensor([0.0, 0.0, 1.0, 1.0])).item() == 0.25
    assert B.iou(a, torch.tensor([1.0, 1.0, 0.0, 0.0])).item() == 0.0  # an inverted prediction has no area
    half = torch.tensor([0.0, 0.0, 2.0, 1.0])  # IoU exactly 0.5 is not above 0.5
    assert not B.correct(half, a) and B.correct(torch.tensor([0.0, 0.0, 2.0, 1.1]), a)


def test_centre_size_round_trip():
    boxes = torch.tensor([[1.0, 2.0, 5.0, 10.0]])
    assert B.to_centre_size(boxes).tolist() == [[3.0, 6.0, 4.0, 8.0]]
    assert torch.equal(B.to_corners(B.to_centre_size(boxes)), boxes)


@pytest.mark.parametrize(
    "box", [[-1.0, 0.0, 4.0, 4.0], [0.0, 0.0, 33.0, 4.0], [5.0, 0.0, 5.0, 4.0], [0.0, 6.0, 4.0, 2.0]]
)
def test_a_box_outside_the_image_is_refused(box):
    with pytest.raises(ValueError, match="is not inside the 32×32 image"):
        B.check_boxes(torch.tensor([box]), 32)


def test_a_box_of_three_numbers_is_refused():
    with pytest.raises(ValueError, match="a box is 4 numbers"):
        B.check_boxes(torch.tensor([[1.0, 2.0, 3.0]]), 32)
