"""Dense evaluation (§3.2): the fully connected layers rewritten as convolutions and slid over the whole image.

At test time the paper converts "the first FC layer to a 7×7 conv. layer, the last two FC layers to 1×1 conv.
layers". The weights are the same numbers, reshaped: an FC layer that reads a C×7×7 block is a 7×7 convolution with
C input channels. On a 224×224 image the converted net gives the classifier's logits exactly; on a larger image it
gives a *class score map*, one score vector per 7×7 window of the last feature map, which is spatially averaged
into the image's class scores.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import skip_init

from vgg_tutorial.paper.models import VGG, check_images


class FullyConvolutionalVGG(nn.Module):
    """A :class:`~vgg_tutorial.paper.models.VGG` whose classifier is made of convolutions (§3.2).

    ``score_map(x)`` returns the class score map (batch, classes, h, w); calling the module averages that map
    over space, giving one logit vector per image.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(check_images(x))
        window = self.classifier[0].kernel_size
        if x.shape[2] < window[0] or x.shape[3] < window[1]:
            raise ValueError(
                f"dense evaluation needs a feature map of at least {window[0]}×{window[1]}, got "
                f"{x.shape[2]}×{x.shape[3]} from an input of {x.shape[2:]} pixels; use a larger image "
                f"(the paper's smallest test scale is 256)"
            )
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_map(x).mean(dim=(2, 3))


def linear_to_conv(linear: nn.Linear, in_channels: int, kernel_size: int) -> nn.Conv2d:
    """A convolution computing ``linear`` on every ``kernel_size``×``kernel_size`` window of its input.

    ``linear`` reads a flattened (channels, height, width) block, so its weight matrix reshapes row by row into
    ``out × in_channels × kernel_size × kernel_size`` filters. The numbers are copied, not shared, so the original
    model stays as it was.
    """
    weight = linear.weight
    # skip_init: no point drawing random weights that are overwritten on the next line.
    conv = skip_init(nn.Conv2d, in_channels, linear.out_features, kernel_size, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        conv.bias.copy_(linear.bias)
    return conv


def to_fully_convolutional(model: VGG) -> FullyConvolutionalVGG:
    """Convert ``model``'s classifier to a 7×7 convolution and two 1×1 convolutions with the same weights (§3.2).

    The kernel of the first convolution is the model's ``pooled_size`` (7 for the paper's network), its input
    channels those of the last feature map. ReLUs and dropouts stay where they were. The features are reused
    as they are (the same module, not a copy).
    """
    first, second, last = (m for m in model.classifier if isinstance(m, nn.Linear))
    pooled = model.avgpool.output_size
    kernel = pooled if isinstance(pooled, int) else pooled[0]
    channels = first.in_features // kernel**2
    convs = iter(
        [
            linear_to_conv(first, channels, kernel),  # FC-4096 → 7×7 conv
            linear_to_conv(second, first.out_features, 1),  # FC-4096 → 1×1 conv
            linear_to_conv(last, second.out_features, 1),  # FC-classes → 1×1 conv
        ]
    )
    layers = [next(convs) if isinstance(m, nn.Linear) else m for m in model.classifier]
    converted = FullyConvolutionalVGG(model.features, nn.Sequential(*layers))
    return converted.train(model.training)
