"""Appendix B: a trained VGG net as a generic image descriptor, and a linear classifier on it.

"To utilise the ConvNets, pre-trained on ILSVRC, for image classification on other datasets, we remove the last
fully-connected layer [...], and use 4096-D activations of the penultimate layer as image features, which are
aggregated across multiple locations and scales. The resulting image descriptor is L2-normalised and combined with
a linear SVM classifier, trained on the target dataset" (Appendix B). The aggregation follows §3.2's testing: the
image is rescaled to each test scale Q, the net is applied densely over the whole image (its FC layers as
convolutions, :func:`vgg_tutorial.testing.views.dense_network`), the penultimate layer's map is averaged over positions
("global average pooling") and with the map of the flipped image; the scales are averaged (the paper's choice for
VOC; it *stacked* them for Caltech); the result is L2-normalised. :func:`descriptors` does all of it.

:func:`dense_scores` is the same pipeline with the last layer kept: §3.2's dense evaluation with flips, averaged over
the same scales, which scores a net trained on the new task itself on equal terms.

The classifier (:class:`LinearSVM`) is a one-vs-rest linear SVM with the squared hinge loss (LIBLINEAR's default
"L2-loss" SVM), minimised by L-BFGS from zero weights in a few lines of torch: deterministic, no extra dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.paper.dense import FullyConvolutionalVGG
from vgg_tutorial.paper.models import VGG
from vgg_tutorial.testing.views import check_test_scale, dense_network, to_network_input, with_flips


def check_images(images: torch.Tensor) -> torch.Tensor:
    """Return ``images`` if they are a batch of square uint8 RGB images N×3×H×H, else raise a ``ValueError``."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected uint8 images N×3×H×W, got {shape}; one image needs image.unsqueeze(0)")
    if images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (pixels 0-255, as the datasets give them), got {images.dtype}")
    if images.shape[2] != images.shape[3]:
        raise ValueError(
            f"expected square images (the study draws them square), got {images.shape[2]}×{images.shape[3]}"
        )
    return images


def check_scales(scales: Sequence[int], crop_size: int) -> tuple[int, ...]:
    """The test scales Q as a tuple, each checked by :func:`~vgg_tutorial.testing.views.check_test_scale`; at least
    one."""
    if isinstance(scales, int) or not len(scales):
        raise ValueError(f"scales must be a non-empty list of test scales Q (e.g. [32, 37, 42]), got {scales!r}")
    return tuple(check_test_scale(q, crop_size) for q in scales)


def penultimate(net: VGG, crop_size: int) -> FullyConvolutionalVGG:
    """The dense form of ``net`` (§3.2) without its last layer: its map holds the penultimate layer's activations
    (4096 channels at the paper's size, ``fc_width`` here) at every position. Eval mode, so dropout is off."""
    if not isinstance(net, VGG):
        raise TypeError(f"expected a VGG net of vgg_tutorial.paper.models, got {type(net).__name__}")
    dense = dense_network(net, crop_size).eval()
    return FullyConvolutionalVGG(dense.features, dense.classifier[:-1]).eval()


@torch.no_grad()
def pooled(dense: FullyConvolutionalVGG, images, scales, crop_size: int, softmax: bool, batch_size: int = 100):
    """``dense``'s output map averaged over positions, over each image and its flip and over ``scales``: N×C.
    With ``softmax`` the map's posteriors are averaged (§3.2's scores), else the raw activations (Appendix B)."""
    images, scales = check_images(images), check_scales(scales, crop_size)
    total = 0
    for q in scales:
        parts = []
        for start in range(0, len(images), batch_size):
            batch = F.resize(images[start : start + batch_size], [q], antialias=True)  # as chapter 9's tests (views)
            x = to_network_input(with_flips(batch))
            out = dense.score_map(x)
            out = out.softmax(1) if softmax else out
            mean = out.mean(dim=(2, 3))  # global average pooling over positions
            parts.append((mean[: len(mean) // 2] + mean[len(mean) // 2 :]) / 2)  # with the flipped image
        total = total + torch.cat(parts)
    return total / len(scales)


def descriptors(net: VGG, images: torch.Tensor, scales: Sequence[int], crop_size: int = 32) -> torch.Tensor:
    """Appendix B's image descriptor of every image: N×``fc_width``, L2-normalised (each row has length 1).

    ``net`` takes pixels minus the mean (§2.1; :func:`vgg_tutorial.studies.testing_study.fold_std` makes chapter 9's
    nets so); ``images`` are uint8 N×3×H×H; ``scales`` the test scales Q; ``crop_size`` the net's training crop.
    """
    features = pooled(penultimate(net, crop_size), images, scales, crop_size, softmax=False)
    return nn.functional.normalize(features, dim=1)


def dense_scores(net: VGG, images: torch.Tensor, scales: Sequence[int], crop_size: int = 32) -> torch.Tensor:
    """§3.2's dense evaluation with flips over ``scales``: the averaged soft-max posteriors, N×classes."""
    if not isinstance(net, VGG):
        raise TypeError(f"expected a VGG net of vgg_tutorial.paper.models, got {type(net).__name__}")
    return pooled(dense_network(net, crop_size).eval(), images, scales, crop_size, softmax=True)


# ---------------------------------------------------------------------------------------------------------------
# The linear classifier: a one-vs-rest linear SVM
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LinearSVM:
    """One linear scorer per class: ``features @ weight.T + bias``; the highest score is the prediction."""

    weight: torch.Tensor  #: classes × dimensions
    bias: torch.Tensor  #: classes

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.weight.shape[1])
        return features @ self.weight.T + self.bias

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.scores(features).argmax(1)

    def accuracy(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        """Share (%) of ``features`` whose predicted class is their label."""
        return 100 * (self.predict(features) == labels).double().mean().item()


def _check_features(features: torch.Tensor, dims: int | None = None) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a float tensor N×D (one descriptor per row), got {shape}")
    if dims is not None and features.shape[1] != dims:
        raise ValueError(f"features have {features.shape[1]} dimensions; the classifier was trained on {dims}")


def fit_linear_svm(
    features: torch.Tensor, labels: torch.Tensor, classes: int, c: float = 10.0, steps: int = 100
) -> LinearSVM:
    """Train a one-vs-rest linear SVM: per class, minimise ½‖w‖² + ``c`` Σᵢ max(0, 1 − yᵢ(w·xᵢ + b))², with
    yᵢ = +1 for the class's examples and −1 for the others (the bias is not penalised), by L-BFGS from zero."""
    _check_features(features)
    if labels.shape != (len(features),):
        raise ValueError(
            f"expected one label per feature row ({len(features)}), got labels of shape {tuple(labels.shape)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"labels must be 0 to {classes - 1} for {classes} classes, got {labels.min()} to {labels.max()}"
        )
    if not c > 0:
        raise ValueError(f"the SVM's cost c must be above 0, got {c}")
    x = features.double()
    y = torch.where(nn.functional.one_hot(labels, classes).bool(), 1.0, -1.0).double()
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        margins = (1 - y * (x @ w.T + b)).clamp(min=0)
        loss = 0.5 * (w**2).sum() + c * (margins**2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return LinearSVM(w.detach().to(features.dtype), b.detach().to(features.dtype))
