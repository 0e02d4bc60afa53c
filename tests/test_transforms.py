"""The paper's augmentation (§3.1) and test-time preprocessing (§3.2)."""

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from vgg_tutorial.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_PCA_EIGVAL,
    IMAGENET_PCA_EIGVEC,
    IMAGENET_STD,
    PCAColorShift,
    default_scale,
    eval_transform,
    subtract_mean,
    train_transform,
)


def random_image(height=40, width=60, seed=0):
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_imagenet_constants_are_torchvisions():
    assert IMAGENET_MEAN == pytest.approx((0.485, 0.456, 0.406))
    assert IMAGENET_STD == pytest.approx((0.229, 0.224, 0.225))


def test_pca_eigenvectors_are_orthonormal():
    """A check on the typed-in numbers: the columns of the eigenvector matrix are orthonormal (to 4 digits)."""
    eigvec = torch.tensor(IMAGENET_PCA_EIGVEC)
    assert torch.allclose(eigvec.T @ eigvec, torch.eye(3), atol=1e-3)
    assert list(IMAGENET_PCA_EIGVAL) == sorted(IMAGENET_PCA_EIGVAL, reverse=True)


@pytest.mark.parametrize("scale", [36, (36, 72)])
def test_train_transform_output(scale):
    transform = train_transform(32, scale)
    for image in (random_image(), Image.fromarray(random_image().permute(1, 2, 0).numpy())):
        out = transform(image)
        assert out.shape == (3, 32, 32)
        assert out.dtype == torch.float32


def test_train_transform_is_deterministic_under_a_seed():
    transform = train_transform(32, (36, 72))
    image = random_image()
    torch.manual_seed(5)
    first = transform(image)
    torch.manual_seed(5)
    again = transform(image)
    other = transform(image)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_fixed_scale_sets_the_smaller_side():
    rescale = train_transform(32, 48).transforms[1]
    assert rescale(random_image(40, 60)).shape[-2:] == (48, 72)
    assert rescale(random_image(60, 40)).shape[-2:] == (72, 48)


def test_scale_jittering_draws_every_size_in_the_range():
    rescale = train_transform(32, (36, 40)).transforms[1]
    torch.manual_seed(0)
    sides = {min(rescale(random_image(20, 30)).shape[-2:]) for _ in range(200)}
    assert sides == {36, 37, 38, 39, 40}


def test_scale_smaller_than_crop_is_rejected():
    with pytest.raises(ValueError, match="smaller than the crop"):
        train_transform(224, 200)
    with pytest.raises(ValueError, match="S_min <= S_max"):
        train_transform(32, (64, 48))


def test_random_crop_is_a_window_of_the_rescaled_image():
    image = random_image(36, 36)
    transform = train_transform(32, 36, flip=False, color_shift=0, mean=(0, 0, 0))
    source = image.float() / 255
    windows = {(top, left): source[:, top : top + 32, left : left + 32] for top in range(5) for left in range(5)}
    torch.manual_seed(0)
    positions = []
    for _ in range(30):
        crop = transform(image)
        matches = [position for position, window in windows.items() if torch.allclose(crop, window)]
        assert len(matches) == 1  # every crop is exactly one 32×32 window of the image
        positions.append(matches[0])
    assert len(set(positions)) > 5  # and the window moves


def test_flip_actually_flips():
    image = random_image(32, 32)
    transform = train_transform(32, 32, color_shift=0, mean=(0, 0, 0))  # S = crop: the crop is the whole image
    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(20)]
    plain, flipped = image.float() / 255, image.flip(-1).float() / 255
    n_plain = sum(torch.allclose(out, plain) for out in outputs)
    n_flipped = sum(torch.allclose(out, flipped) for out in outputs)
    assert n_plain + n_flipped == 20
    assert n_plain > 0 and n_flipped > 0


def test_pca_shift_adds_one_rgb_offset_per_image():
    image = torch.rand(3, 8, 8)
    torch.manual_seed(0)
    shifted = PCAColorShift(0.1)(image)
    offset = shifted - image
    assert torch.allclose(offset, offset[:, :1, :1].expand_as(offset), atol=1e-6)
    assert offset.abs().max() > 0


def test_pca_shift_statistics():
    """Offsets are Σ_i α_i λ_i p_i with α ~ N(0, σ²): zero mean and covariance P diag(σλ)² Pᵀ."""
    torch.manual_seed(0)
    shift = PCAColorShift(0.1)
    offsets = shift(torch.zeros(20000, 3, 1, 1)).flatten(1)
    eigvec, eigval = torch.tensor(IMAGENET_PCA_EIGVEC), torch.tensor(IMAGENET_PCA_EIGVAL)
    expected = eigvec @ torch.diag((0.1 * eigval) ** 2) @ eigvec.T
    assert offsets.mean(0).abs().max() < 0.001
    assert torch.allclose(torch.cov(offsets.T), expected, atol=1e-5)
    # Along the first principal component the spread is σ·λ₁ = 0.02175.
    assert (offsets @ eigvec[:, 0]).std().item() == pytest.approx(0.1 * 0.2175, rel=0.03)


def test_pca_shift_off_and_type_check():
    image = torch.rand(3, 4, 4)
    assert torch.equal(PCAColorShift(0)(image), image)
    with pytest.raises(TypeError, match="float image"):
        PCAColorShift()(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_mean_subtraction():
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    image = mean.expand(3, 5, 5).clone()
    assert torch.allclose(subtract_mean()(image), torch.zeros(3, 5, 5), atol=1e-6)
    ones = torch.ones(3, 5, 5)
    assert torch.allclose(subtract_mean()(ones), 1 - mean.expand(3, 5, 5))
    assert torch.allclose(
        subtract_mean(IMAGENET_MEAN, IMAGENET_STD)(ones), (1 - mean) / torch.tensor(IMAGENET_STD)[:, None, None]
    )


def test_eval_transform_rescales_to_q_and_crops():
    image = random_image(40, 60)
    assert eval_transform(32, 32)(image).shape == (3, 32, 32)
    assert eval_transform(32, None)(image).shape == (3, 32, 48)  # dense evaluation keeps the whole image
    torch.manual_seed(0)
    assert torch.equal(eval_transform(32, 28)(image), eval_transform(32, 28)(image))  # no randomness


def test_eval_centre_crop_matches_torchvision():
    image = random_image(40, 60)
    expected = v2.functional.center_crop(v2.functional.resize(image, 32), 24).float() / 255
    got = eval_transform(32, 24, mean=(0, 0, 0))(image)
    assert torch.allclose(got, expected, atol=1e-6)


def test_default_scale_keeps_the_papers_ratio():
    assert default_scale(224) == 256
    assert default_scale(32) == 37
    assert default_scale(64) == 73


def test_pca_shift_draws_on_the_device_it_was_moved_to():
    shift = PCAColorShift().to("meta")  # stands in for a GPU: no CPU tensor may enter the computation
    assert shift.offset((4,)).device.type == "meta"
    assert shift(torch.empty(4, 3, 8, 8, device="meta")).shape == (4, 3, 8, 8)
