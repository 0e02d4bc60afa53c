"""The paper's data augmentation and test-time preprocessing (§3.1 and §3.2), built from ``torchvision.transforms.v2``.

Training (§3.1): the image is rescaled isotropically so that its smaller side is the *training scale* S, fixed or
drawn per image from [S_min, S_max] ("scale jittering"); a random crop of the network's input size (224 in the
paper) is taken; it is flipped horizontally at random and its colours are shifted along the principal components of
ImageNet's RGB values, as in AlexNet. The paper's only preprocessing is subtracting the mean RGB value (§2.1);
scaling the pixels to [0, 1] first is the book's choice (it changes nothing but the units), and so is dividing by
ImageNet's std where torchvision's pretrained weights expect it.

Testing (§3.2): the smaller side is rescaled to the *test scale* Q; the dense evaluation of the paper then runs the
network on the whole image, so the centre crop here is optional.

Everything but the colour shift is a torchvision transform; torchvision has no AlexNet colour shift, so
:class:`PCAColorShift` is written here.

For images already held as one uint8 tensor (the studies' miniatures), :func:`resize` and :func:`normalise` do
the rescaling and the normalisation on the whole batch at once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as TF
from torchvision.models import VGG16_Weights
from torchvision.transforms import v2

from vgg_tutorial.paper.configs import INPUT_SIZE, RECIPE

#: ImageNet's RGB mean and standard deviation (for pixel values in [0, 1]), as torchvision's pretrained weights
#: expect them. Read from the weights' own preprocessing so they are not retyped here.
IMAGENET_MEAN: tuple[float, ...]
IMAGENET_STD: tuple[float, ...]


def _imagenet_stats() -> tuple[tuple[float, ...], tuple[float, ...]]:
    preprocess = VGG16_Weights.IMAGENET1K_V1.transforms()
    return tuple(preprocess.mean), tuple(preprocess.std)


IMAGENET_MEAN, IMAGENET_STD = _imagenet_stats()

#: Eigenvalues and eigenvectors (columns) of the covariance of ImageNet's RGB pixel values in [0, 1], used for
#: AlexNet's colour augmentation (Krizhevsky et al. 2012, §4.1). AlexNet did not publish them; these are the values of
#: Facebook's fb.resnet.torch (``datasets/imagenet.lua``), the ones common PyTorch re-implementations copy.
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def pca_offsets(alpha: torch.Tensor, eigval=IMAGENET_PCA_EIGVAL, eigvec=IMAGENET_PCA_EIGVEC) -> torch.Tensor:
    """AlexNet's colour shift Σ_i α_i λ_i p_i for draws ``alpha`` (..., 3): RGB offsets for [0, 1] pixels."""
    eigval = torch.as_tensor(eigval, device=alpha.device, dtype=alpha.dtype)
    eigvec = torch.as_tensor(eigvec, device=alpha.device, dtype=alpha.dtype)
    return (alpha * eigval) @ eigvec.T


class PCAColorShift(nn.Module):
    """AlexNet's colour augmentation, used by VGG (§3.1): add ``Σ_i α_i λ_i p_i`` to every pixel of an image.

    ``p_i`` and ``λ_i`` are the eigenvectors and eigenvalues of the RGB covariance (:data:`IMAGENET_PCA_EIGVEC`,
    :data:`IMAGENET_PCA_EIGVAL`); ``α_i ~ N(0, std)`` is drawn once per image (std 0.1 is AlexNet's; VGG gives no
    value), so the whole image shifts by one RGB offset. Expects a float image (..., 3, H, W) with values in
    [0, 1]; a batch (N, 3, H, W) gets one draw per image.
    """

    def __init__(self, std: float = RECIPE.color_shift, eigval=IMAGENET_PCA_EIGVAL, eigvec=IMAGENET_PCA_EIGVEC) -> None:
        super().__init__()
        self.std = std
        self.register_buffer("eigval", torch.tensor(eigval, dtype=torch.float32), persistent=False)
        self.register_buffer("eigvec", torch.tensor(eigvec, dtype=torch.float32), persistent=False)

    def offset(self, batch_shape: tuple[int, ...] = ()) -> torch.Tensor:
        """Draw RGB offsets of shape ``batch_shape + (3,)``, on the module's device."""
        alpha = torch.randn(*batch_shape, 3, device=self.eigval.device) * self.std
        return pca_offsets(alpha, self.eigval, self.eigvec)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not image.is_floating_point():
            raise TypeError(
                "PCAColorShift needs a float image in [0, 1]; put v2.ToDtype(torch.float32, scale=True) first"
            )
        if self.std == 0:
            return image
        shift = self.offset(image.shape[:-3]).to(image.device, image.dtype)
        return image + shift[..., None, None]

    def extra_repr(self) -> str:
        return f"std={self.std}"


def subtract_mean(mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] | None = None) -> v2.Normalize:
    """The paper's only preprocessing (§2.1): subtract the mean RGB value; with ``std`` also divide by it.

    The paper subtracts the training set's mean and does not divide; torchvision's pretrained weights expect both
    (``mean=IMAGENET_MEAN, std=IMAGENET_STD``).
    """
    return v2.Normalize(mean=list(mean), std=list(std) if std is not None else [1.0] * len(mean))


def _rescale(scale: int | tuple[int, int]) -> nn.Module:
    """Smaller side to ``scale`` (fixed S) or to an integer drawn uniformly from [S_min, S_max] (scale jittering)."""
    if isinstance(scale, int):
        return v2.Resize(scale)
    low, high = scale
    if not 0 < low <= high:
        raise ValueError(f"scale range must satisfy 0 < S_min <= S_max, got {scale}")
    return v2.RandomResize(low, high + 1)  # RandomResize draws from [min_size, max_size)


def train_transform(
    crop_size: int = INPUT_SIZE,
    scale: int | tuple[int, int] = RECIPE.scale,
    *,
    flip: bool = True,
    color_shift: float = RECIPE.color_shift,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] | None = None,
) -> v2.Compose:
    """The paper's training augmentation (§3.1), for a PIL image or a uint8 tensor 3×H×W.

    Rescale the smaller side to S (``scale`` an int) or to S ~ U[S_min, S_max] (``scale`` a pair), take a random
    ``crop_size`` crop, flip horizontally with probability 1/2, shift colours along ImageNet's principal components
    (α ~ N(0, ``color_shift``); 0 turns it off) and subtract ``mean`` (and divide by ``std`` if given).
    """
    smallest = scale if isinstance(scale, int) else scale[0]
    if smallest < crop_size:
        raise ValueError(
            f"training scale S={smallest} is smaller than the crop size {crop_size} (§3.1 needs S >= crop)"
        )
    steps = [v2.ToImage(), _rescale(scale), v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if color_shift:
        steps.append(PCAColorShift(color_shift))
    steps.append(subtract_mean(mean, std))
    return v2.Compose(steps)


def eval_transform(
    scale: int = RECIPE.scale,
    crop_size: int | None = INPUT_SIZE,
    *,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] | None = None,
) -> v2.Compose:
    """Test-time preprocessing (§3.2): smaller side to Q = ``scale``, then a centre crop of ``crop_size``.

    ``crop_size=None`` keeps the whole rescaled image, as the paper's dense evaluation does (images then differ in
    shape, so batch them one at a time).
    """
    steps = [v2.ToImage(), v2.Resize(scale)]
    if crop_size is not None:
        steps.append(v2.CenterCrop(crop_size))
    steps += [v2.ToDtype(torch.float32, scale=True), subtract_mean(mean, std)]
    return v2.Compose(steps)


def default_scale(crop_size: int) -> int:
    """The training scale S that relates to ``crop_size`` as the paper's S = 256 relates to its 224 crop."""
    return round(crop_size * RECIPE.scale / INPUT_SIZE)


def resize(images: torch.Tensor, side: int) -> torch.Tensor:
    """Square uint8 images rescaled to ``side`` px with antialiasing (as PIL and ``v2.Resize`` do), still uint8."""
    out = TF.interpolate(images.float(), size=(side, side), mode="bilinear", antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to floats: [0, 1], minus ImageNet's mean, divided by its std (the scale He's init assumes)."""
    mean, std = (torch.tensor(v, device=images.device)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    return (images.float() / 255 - mean) / std
