"""What the network sees at test time (§3.2, §4.2, §4.3), and its posteriors: test scales Q, centre crops, the 5×5
grid of crops, flips, the whole image for the dense net.

Every test method of the paper starts the same way: the image is rescaled isotropically so that its smaller side is
the *test scale* Q. Then

- a **centre crop** of the training crop size is what validation during training looks at;
- **dense evaluation** (§3.2) feeds the whole rescaled image to the fully convolutional net (:func:`dense_network`),
  and the image's horizontal flip as well;
- **multi-crop evaluation** (§3.2, compared with dense in §4.3) takes 50 crops per scale, a 5 × 5 regular grid with
  2 flips: 25 crops of the training crop size whose outer ones touch the image's borders, and their mirror images.

**Multi-scale evaluation** (§4.2) repeats a method at several Q: Q ∈ {S − 32, S, S + 32} for a model trained at a
fixed scale S, Q ∈ {S_min, (S_min + S_max) / 2, S_max} for one trained with scale jittering. The paper's numbers
go with its 224 px crop; :func:`evaluation_scales` shrinks them with the crop (32 px of 224 is 9 px of a 64 px crop).

Images here are uint8 tensors 3×H×W (what the datasets give after ``v2.functional.to_image``) until
:func:`to_network_input` turns a batch into the mean-subtracted floats the network was trained on (§2.1).
:class:`Views` runs the network on each kind of view and returns soft-max posteriors, with the FLOPs they cost;
:mod:`vgg_tutorial.testing.evaluate` combines them into the paper's test methods.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.data.transforms import default_scale, subtract_mean
from vgg_tutorial.paper.accounting import MIN_INPUT_SIZE
from vgg_tutorial.paper.configs import INPUT_SIZE
from vgg_tutorial.paper.dense import FullyConvolutionalVGG, to_fully_convolutional
from vgg_tutorial.paper.models import VGG

#: Multi-crop evaluation (§3.2, §4.3): a GRID × GRID regular grid of crops per scale, each also flipped: 5 × 5 × 2 = 50.
GRID = 5
#: The paper's step between test scales, Q = S ± 32, for its 224 px crop (§4.2).
PAPER_SCALE_STEP = 32
#: Network inputs per image and scale for each kind of view: ``dense-flipped`` is the dense net on the mirrored
#: image, ``crops`` the multi-crop views.
PASSES = {"center": 1, "dense": 1, "dense-flipped": 1, "crops": GRID * GRID * 2}


def check_test_scale(scale: int, crop_size: int) -> int:
    """Return the test scale ``scale`` (Q) if the crop-based methods can use it, else raise a ``ValueError``.

    Q must be a whole number of at least 32 px (VGG's five 2×2 max-pools) and at least the training crop size:
    every method of the paper looks at crops of that size, or at windows of it in the dense score map.
    """
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise TypeError(f"a test scale Q must be a whole number of pixels, got {scale!r}")
    if scale < MIN_INPUT_SIZE:
        raise ValueError(
            f"test scale Q={scale} px is too small: VGG's five 2×2 max-pools need at least {MIN_INPUT_SIZE} px "
            f"(the paper tests at Q >= 256 for its {INPUT_SIZE} px crops)"
        )
    if scale < crop_size:
        raise ValueError(
            f"test scale Q={scale} px is smaller than the model's crop of {crop_size} px; choose Q >= {crop_size} "
            f"(the paper's smallest Q, 256 for a {INPUT_SIZE} crop, is {default_scale(crop_size)} here)"
        )
    return scale


def training_scales(config: Mapping) -> tuple[int, int]:
    """The training scale of a run's config as ``(S_min, S_max)``; ``S_min == S_max`` for a fixed scale S.

    Read from the :class:`~vgg_tutorial.training.train.TrainConfig` fields ``scale`` (S, or S_min when jittered) and
    ``scale_max``; a run that set neither used the default of :func:`~vgg_tutorial.data.datasets.make_dataloaders`,
    S = ``default_scale(image_size)`` (S = 256 for a 224 crop, §3.1).
    """
    low = config.get("scale") or default_scale(config["image_size"])
    return int(low), int(config.get("scale_max") or low)


def evaluation_scales(crop_size: int, scales: tuple[int, int]) -> tuple[int, tuple[int, ...]]:
    """The single test scale and the multi-scale set of §4.1-4.2 for a model trained at ``scales`` = (S_min, S_max).

    Fixed S: single Q = S, multi-scale Q ∈ {S − step, S, S + step} with the paper's 32 px step scaled by
    ``crop_size`` / 224 (never below the crop). Jittered: Q = (S_min + S_max) / 2, and Q ∈ {S_min, (S_min + S_max) / 2,
    S_max}. At the paper's sizes: S = 256 gives 256 and {224, 256, 288}; [256; 512] gives 384 and {256, 384, 512}.
    """
    low, high = scales
    middle = (low + high) // 2
    if low == high:
        step = round(PAPER_SCALE_STEP * crop_size / INPUT_SIZE)
        multi = (max(low - step, crop_size), low, high + step)
    else:
        multi = (low, middle, high)
    return middle, tuple(sorted(set(multi)))


def rescale(images: list[torch.Tensor], scale: int) -> list[torch.Tensor]:
    """Each image with its smaller side resized to ``scale`` (Q), the aspect ratio kept (§3.2), antialiased as
    :func:`~vgg_tutorial.data.transforms.eval_transform` does. Images of the same size are resized together."""
    out: list[torch.Tensor | None] = [None] * len(images)
    for indices in same_size(images).values():
        resized = F.resize(torch.stack([images[i] for i in indices]), [scale], antialias=True)
        for i, image in zip(indices, resized):
            out[i] = image
    return out


def same_size(images: list[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    """The indices of ``images`` grouped by height × width, so that each group stacks into one batch."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape[-2:]), []).append(index)
    return groups


def center_crop(image: torch.Tensor, crop_size: int) -> torch.Tensor:
    """The central ``crop_size`` × ``crop_size`` window of ``image`` (what validation during training sees)."""
    return F.center_crop(image, [crop_size])


def grid_offsets(length: int, crop_size: int, grid: int = GRID) -> list[int]:
    """Where ``grid`` crops of ``crop_size`` start along a side of ``length`` pixels: evenly spaced, the first at 0
    and the last ending at the border, rounded to whole pixels. §4.3 says only "a regular 5 × 5 grid"; that the
    outer crops touch the borders is the book's choice."""
    if length < crop_size:
        raise ValueError(f"cannot take {crop_size} px crops from a side of {length} px")
    return [round(i * (length - crop_size) / (grid - 1)) for i in range(grid)]


def crop_windows(height: int, width: int, crop_size: int, grid: int = GRID) -> list[tuple[int, int]]:
    """The (top, left) corners of the ``grid`` × ``grid`` crops of a ``height`` × ``width`` image, row by row."""
    return [
        (top, left) for top in grid_offsets(height, crop_size, grid) for left in grid_offsets(width, crop_size, grid)
    ]


def grid_crops(image: torch.Tensor, crop_size: int, grid: int = GRID) -> torch.Tensor:
    """The multi-crop views of one image (§4.3): the ``grid``² crops of :func:`crop_windows`, then their horizontal
    flips in the same order, stacked: 50 × C × ``crop_size`` × ``crop_size`` for the paper's 5 × 5 grid."""
    windows = crop_windows(*image.shape[-2:], crop_size, grid)
    crops = torch.stack([image[..., top : top + crop_size, left : left + crop_size] for top, left in windows])
    return with_flips(crops)


def with_flips(batch: torch.Tensor) -> torch.Tensor:
    """``batch`` followed by its horizontal flips (§3.2: the test set is augmented by flipping)."""
    return torch.cat([batch, batch.flip(-1)])


def to_network_input(batch: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images N×3×H×W as the network was trained on them: minus the mean RGB (§2.1), as floats in [0, 1]
    (the book's units; the paper subtracts the mean from the raw values)."""
    floats = F.to_dtype(batch.to(device), torch.float32, scale=True)
    return subtract_mean()(floats)


# ---------------------------------------------------------------------------------------------------------------
# The network side: the dense net, and the FLOPs of a forward pass
# ---------------------------------------------------------------------------------------------------------------


def dense_network(model: VGG, crop_size: int) -> FullyConvolutionalVGG:
    """The fully convolutional form of ``model`` (§3.2) whose score map at ``crop_size`` px gives its logits exactly.

    The paper's net reads a 7×7 map at 224 px, which its 7×7 pool leaves as it is, so converting the FC layers
    (:func:`~vgg_tutorial.paper.dense.to_fully_convolutional`) is all dense evaluation needs. A miniature may pool more:
    with ``pooled_size=1`` a 64 px crop's 2×2 map is averaged to 1×1 before the classifier. That average becomes
    a 2×2 average pool of stride 1 in front of the converted classifier (whose first convolution, for
    ``pooled_size`` > 1, reads every k-th position: ``dilation`` k), so each position of the score map is the
    classifier of one crop-sized window of the image's feature map, as in the paper.
    """
    side = crop_size // 2**5  # the last feature map of a crop: five 2×2 max-pools
    pooled = model.avgpool.output_size
    pooled = pooled if isinstance(pooled, int) else pooled[0]
    if side < pooled or side % pooled:
        raise ValueError(
            f"dense evaluation needs the last feature map of a {crop_size} px crop ({side}×{side}) to be a whole "
            f"multiple of the model's pooled_size {pooled}; choose an image_size of {32 * pooled}·n px"
        )
    dense = to_fully_convolutional(model)
    window = side // pooled
    if window == 1:
        return dense
    first = dense.classifier[0]
    first.dilation = (window, window)
    features = nn.Sequential(*dense.features, nn.AvgPool2d(window, stride=1))
    return FullyConvolutionalVGG(features, dense.classifier).train(model.training)


def forward_flops(module: nn.Module, height: int, width: int) -> int:
    """FLOPs of one forward pass of ``module`` on one RGB image of ``height`` × ``width`` px.

    The convention of :func:`vgg_tutorial.paper.accounting.forward_flops` (2 × the multiply-adds of the weights of every
    convolution and linear layer), counted on the actual shapes: the module runs on PyTorch's ``meta`` device, which
    computes shapes and no numbers, with a hook on each such layer.
    """
    probe = copy.deepcopy(module).to("meta")
    total = 0

    def count(layer: nn.Module, inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        else:
            per_output = layer.in_features
        total += 2 * per_output * output.numel()

    for layer in probe.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.register_forward_hook(count)
    probe(torch.empty(1, 3, height, width, device="meta"))
    return total


class Views:
    """Soft-max posteriors of a batch of images for each kind of view (:data:`PASSES`) at a test scale Q.

    Holds the model and its dense form on ``device``, and the FLOPs of each input shape once counted. At most
    ``chunk`` network inputs go through the net at a time.
    """

    def __init__(self, model: VGG, crop_size: int, device: torch.device | str = "cpu", chunk: int = 64):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dense = dense_network(self.model, crop_size)
        self.crop_size = crop_size
        self.chunk = chunk
        self._flops: dict[tuple[str, int, int], int] = {}

    def flops(self, net: str, height: int, width: int) -> int:
        """:func:`forward_flops` of ``"model"`` or ``"dense"`` at ``height`` × ``width``, counted once per shape."""
        key = (net, height, width)
        if key not in self._flops:
            self._flops[key] = forward_flops(self.model if net == "model" else self.dense, height, width)
        return self._flops[key]

    def synchronize(self) -> None:
        """Wait for the GPU, so that a measured time includes the work it was given."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def posteriors(self, view: str, scale: int, images: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Posteriors (N × classes, on the CPU) of ``images`` (uint8, 3×H×W) for ``view`` at test scale ``scale``, and
        the FLOPs spent on them."""
        resized = rescale(images, scale)
        if view == "center":
            return self._crops([center_crop(image, self.crop_size) for image in resized], per_image=1)
        if view == "crops":
            return self._crops([grid_crops(image, self.crop_size) for image in resized], per_image=PASSES["crops"])
        if view in ("dense", "dense-flipped"):
            return self._dense(resized, flip=view == "dense-flipped")
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(PASSES)}")

    @torch.no_grad()
    def _crops(self, crops: list[torch.Tensor], per_image: int) -> tuple[torch.Tensor, int]:
        """The model on every crop (chunked), soft-max, averaged over the ``per_image`` crops of each image."""
        batch = torch.cat(crops) if per_image > 1 else torch.stack(crops)
        probs = [
            self.model(to_network_input(part, self.device)).float().softmax(dim=1).cpu()
            for part in batch.split(self.chunk)
        ]
        probs = torch.cat(probs).reshape(len(crops), per_image, -1).mean(dim=1)
        return probs, len(batch) * self.flops("model", self.crop_size, self.crop_size)

    @torch.no_grad()
    def _dense(self, images: list[torch.Tensor], flip: bool) -> tuple[torch.Tensor, int]:
        """The dense net on each whole image (images of one size together): score map averaged, then soft-max."""
        probs: list[torch.Tensor | None] = [None] * len(images)
        flops = 0
        for (height, width), indices in same_size(images).items():
            group = torch.stack([images[i] for i in indices])
            for start in range(0, len(indices), self.chunk):
                x = to_network_input(group[start : start + self.chunk], self.device)
                scores = self.dense(x.flip(-1) if flip else x)
                for i, p in zip(indices[start : start + self.chunk], scores.float().softmax(dim=1).cpu()):
                    probs[i] = p
            flops += len(indices) * self.flops("dense", height, width)
        return torch.stack(probs), flops
