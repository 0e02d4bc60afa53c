"""Every configuration of Table 1, built from :data:`~vgg_tutorial.paper.configs.CONFIGS` (Simonyan & Zisserman, §2).

:func:`vgg` reads one column of Table 1 and returns a :class:`VGG` whose module layout is exactly torchvision's
(``features``, ``avgpool``, ``classifier``), so the ``state_dict`` of ``torchvision.models.vgg16`` loads into
``vgg("D")`` with a plain ``load_state_dict`` and gives the same outputs. Beyond torchvision it builds the paper's
two other columns, C (with 1×1 convolutions) and A-LRN (with AlexNet's local response normalisation), and it can
shrink every layer (``width``, ``fc_width``, ``pooled_size``) so that the training chapters run on a CPU.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from vgg_tutorial.paper.accounting import check_input_size
from vgg_tutorial.paper.configs import FC_WIDTHS, INPUT_CHANNELS, LRN, POOLED_SIZE, Conv, MaxPool, feature_layers

#: AlexNet's response-normalisation constants (Krizhevsky et al. 2012, §3.3), which the VGG paper reuses (§2.1).
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0

#: The initialisation schemes :func:`init_weights` knows.
INIT_SCHEMES = ("torchvision", "paper", "paper-literal", "glorot")

#: The fixed standard deviation of the two normal schemes: §3.1's "zero mean and 10⁻² variance" read as AlexNet's
#: std 0.01 (``"paper"``: A at full width starts at the loss ln 1000 and stays finite over a few SGD steps, see
#: :mod:`vgg_tutorial.studies.init_study`), and read literally as std 0.1 (``"paper-literal"``, whose logits are ~10⁵
#: and
#: whose loss is NaN after one SGD step).
INIT_STDS: dict[str, float] = {"paper": 0.01, "paper-literal": 0.1}


def alexnet_lrn() -> nn.LocalResponseNorm:
    """Local response normalisation with AlexNet's constants k=2, n=5, α=1e-4, β=0.75.

    AlexNet computes ``b = a / (k + α Σ a_j²)^β`` over the ``n`` neighbouring channels. PyTorch's
    :class:`~torch.nn.LocalResponseNorm` computes ``a / (k + (α/n) Σ a_j²)^β``: it divides α by ``n``. Passing
    ``alpha = n · 1e-4`` gives AlexNet's formula back.
    """
    return nn.LocalResponseNorm(size=LRN_SIZE, alpha=LRN_SIZE * LRN_ALPHA, beta=LRN_BETA, k=LRN_K)


def scaled(channels: int, width: float) -> int:
    """``channels`` scaled by ``width``, rounded, and at least 1."""
    return max(1, int(round(channels * width)))


def make_features(name: str, *, batch_norm: bool = False, width: float = 1.0) -> nn.Sequential:
    """The convolutional part of configuration ``name`` in torchvision's layout (``make_layers`` in ``vgg.py``).

    Each convolution (stride 1, padding ``kernel // 2``, §2.1) is followed by an optional ``BatchNorm2d`` and an
    in-place ReLU. Table 1 lists A-LRN's LRN right after the first convolution; since every hidden layer is followed
    by a ReLU (§2.1) and AlexNet normalises after the ReLU, the LRN here comes after that convolution's ReLU, before
    the max-pool. Every block ends with ``MaxPool2d(2, 2)``.
    """
    layers: list[nn.Module] = []
    channels = INPUT_CHANNELS
    for layer in feature_layers(name):
        if isinstance(layer, Conv):
            out = scaled(layer.channels, width)
            layers.append(nn.Conv2d(channels, out, kernel_size=layer.kernel, padding=layer.padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        elif isinstance(layer, LRN):
            layers.append(alexnet_lrn())
        elif isinstance(layer, MaxPool):
            layers.append(nn.MaxPool2d(kernel_size=layer.kernel, stride=layer.stride))
    return nn.Sequential(*layers)


def make_classifier(in_features: int, *, fc_width: int = FC_WIDTHS[0], num_classes: int = 1000, dropout: float = 0.5):
    """Table 1's FC-4096, FC-4096, FC-``num_classes``, with ReLU and dropout after the two hidden layers (§3.1).

    The last layer has no soft-max: the model returns logits and ``nn.CrossEntropyLoss`` applies the soft-max.
    """
    return nn.Sequential(
        nn.Linear(in_features, fc_width),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(fc_width, fc_width),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(fc_width, num_classes),
    )


def check_images(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` if it is a batch of RGB images VGG can take, else raise a ``ValueError`` that says why."""
    if x.dim() != 4:
        raise ValueError(
            f"VGG expects a 4-D batch of images (batch, 3, height, width), got a {x.dim()}-D tensor of shape "
            f"{tuple(x.shape)}; for a single image use x.unsqueeze(0)"
        )
    if x.shape[1] != INPUT_CHANNELS:
        raise ValueError(
            f"VGG expects {INPUT_CHANNELS} input channels (RGB) in dimension 1, got {x.shape[1]} "
            f"(shape {tuple(x.shape)}); channels-last images need x.permute(0, 3, 1, 2)"
        )
    check_input_size(min(x.shape[2], x.shape[3]))
    if not x.is_floating_point():
        raise ValueError(
            f"VGG expects floating-point images, got {x.dtype}; for uint8 pixels in 0-255 use x.float() / 255, then "
            f"normalise as vgg_tutorial.data.transforms does"
        )
    return x


class VGG(nn.Module):
    """A VGG network: ``features`` → ``avgpool`` → flatten → ``classifier``, returning logits.

    The attribute names and their order match ``torchvision.models.VGG``, so their ``state_dict`` keys match too.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, pooled_size: int = POOLED_SIZE):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pooled_size, pooled_size))
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_images(x)
        weight = self.features[0].weight  # every configuration starts with a convolution
        if x.dtype == torch.float64 and weight.dtype != torch.float64:
            raise ValueError(f"the images are float64 but the model's weights are {weight.dtype}: use x.float()")
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # keeps the batch dimension, whatever the input size
        return self.classifier(x)


def init_weights(model: nn.Module, scheme: str = "torchvision") -> nn.Module:
    """Initialise ``model`` in place with one of :data:`INIT_SCHEMES` and return it.

    - ``"torchvision"``: what ``torchvision.models.VGG`` draws. Convolutions: ``kaiming_normal_`` with
      ``mode="fan_out"``, ``nonlinearity="relu"`` (He et al. 2015), i.e. N(0, 2 / (out_channels·k²)); linear
      layers N(0, 0.01²); all biases 0; batch-norm weight 1 and bias 0.
    - ``"paper"``: §3.1, the scheme used to train configuration A from scratch: every convolution and linear weight
      from N(0, 0.01²), biases 0. §3.1 writes "10⁻² variance"; read as a standard deviation of 0.01, AlexNet's
      value, which §3.1 follows, A at full width starts at the loss ln 1000 and stays finite over three SGD steps
      on four images (:mod:`vgg_tutorial.studies.init_study`): a sane start, which does not show that A trains.
    - ``"paper-literal"``: the literal reading, variance 10⁻², i.e. standard deviation 0.1. At full width A's initial
      logits are ~10⁵–10⁸ and the paper's SGD makes the loss NaN after one step.
    - ``"glorot"``: the note in §3.1, added after the paper's submission, that Glorot & Bengio's (2010) random
      initialisation works without pre-training (the paper's recipe was the warm start from A, :func:`init_from_a`).
      Their "normalised initialisation" (their eq. 16) is *uniform*, U[−√(6/(fan_in+fan_out)),
      +√(6/(fan_in+fan_out))], which is ``nn.init.xavier_uniform_``; biases 0.

    Batch-norm layers always start at weight 1 and bias 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme in INIT_STDS:
                nn.init.normal_(module.weight, mean=0.0, std=INIT_STDS[scheme])
            elif scheme == "glorot":
                nn.init.xavier_uniform_(module.weight)
            elif isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.normal_(module.weight, mean=0.0, std=0.01)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def check_arguments(*, batch_norm: bool, num_classes: int, width: float, fc_width: int, pooled_size: int) -> None:
    """Raise a ``TypeError`` or ``ValueError`` naming the valid values unless :func:`vgg`'s arguments make sense.

    Without these checks ``batch_norm="no"`` would add batch norm (a non-empty string is true), ``num_classes=0``
    would build a network with no outputs, and ``width=float("nan")`` would fail deep inside PyTorch.
    """
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
    for name, value in (("num_classes", num_classes), ("fc_width", fc_width), ("pooled_size", pooled_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be a whole number of at least 1, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        raise TypeError(f"width must be a number greater than 0 (1.0 is the paper's size), got {width!r}")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a finite number greater than 0 (1.0 is the paper's size), got {width}")


def vgg(
    name: str,
    *,
    batch_norm: bool = False,
    num_classes: int = 1000,
    dropout: float = 0.5,
    init: str = "torchvision",
    width: float = 1.0,
    fc_width: int = FC_WIDTHS[0],
    pooled_size: int = POOLED_SIZE,
) -> VGG:
    """Build configuration ``name`` of Table 1 ("A", "A-LRN", "B", "C", "D" or "E") or a control ("B-5x5", §4.1).

    With the defaults, ``vgg("D")`` is ``torchvision.models.vgg16()`` layer for layer (and ``vgg("D",
    batch_norm=True)`` is ``vgg16_bn``). ``width`` scales every convolution's channel count, ``fc_width`` sets the
    two hidden FC layers and ``pooled_size`` the side of the adaptive average pool; a small model for CPU training
    is, for instance, ``vgg("A", width=1/8, fc_width=256, pooled_size=1, num_classes=10)``.
    An unknown ``name`` raises a ``KeyError`` that lists the valid ones; other nonsense (``num_classes=0``,
    ``batch_norm="no"``, ``width=0``) raises an error naming the valid values (see :func:`check_arguments`).
    """
    if init not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {init!r}; choose one of {', '.join(INIT_SCHEMES)}")
    check_arguments(
        batch_norm=batch_norm, num_classes=num_classes, width=width, fc_width=fc_width, pooled_size=pooled_size
    )
    features = make_features(name, batch_norm=batch_norm, width=width)
    last_channels = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
    classifier = make_classifier(
        last_channels * pooled_size**2, fc_width=fc_width, num_classes=num_classes, dropout=dropout
    )
    return init_weights(VGG(features, classifier, pooled_size=pooled_size), init)


def conv_names(model: VGG) -> dict[str, nn.Conv2d]:
    """The convolutions of ``model`` by the paper's names: ``conv<block>_<index>`` (``conv3_2`` is the second
    convolution of the third block), in order."""
    names, block, index = {}, 1, 0
    for module in model.features:
        if isinstance(module, nn.Conv2d):
            index += 1
            names[f"conv{block}_{index}"] = module
        elif isinstance(module, nn.MaxPool2d):
            block, index = block + 1, 0
    return names


#: Which of A's layers start a deeper net. §3.1 says only: "we initialised the first four convolutional layers and
#: the last three fully-connected layers with the layers of net A". Which layers of the deeper net receive A's four
#: convolutions is the book's reading, not the paper's words: each goes to the layer of the same name, whose shape
#: is the same in B, C, D and E. A's conv2_1 (64→128) cannot go to the deeper net's *second* convolution, conv1_2
#: (64→64), so a copy into the deeper net's first four does not fit; the same names do, but they are not the only
#: mapping that keeps the shapes (A's conv3_2 fits any 256→256 convolution of block 3, for one).
FROM_A_CONVS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv3_2")


def init_from_a(deep: VGG, a: VGG) -> VGG:
    """Copy the layers of a trained configuration ``a`` into the deeper ``deep`` (§3.1), in place; return ``deep``.

    A's convolutions :data:`FROM_A_CONVS` go into ``deep``'s convolutions of the same names, and A's three FC layers
    into ``deep``'s; every other layer of ``deep`` keeps its own initialisation (the paper's: random). Both nets must
    have the same widths and classifier; a layer whose shape differs raises a ``ValueError`` naming it.
    """
    source, target = conv_names(a), conv_names(deep)
    pairs = [(f"{name}", source.get(name), target.get(name)) for name in FROM_A_CONVS]
    linears = (
        [m for m in a.classifier if isinstance(m, nn.Linear)],
        [m for m in deep.classifier if isinstance(m, nn.Linear)],
    )
    pairs += [(f"FC-{i + 1}", s, t) for i, (s, t) in enumerate(zip(*linears))]
    for name, s, t in pairs:
        if s is None or t is None:
            raise ValueError(f"{name} is missing from {'the source' if s is None else 'the target'} network")
        if s.weight.shape != t.weight.shape:
            raise ValueError(
                f"cannot copy {name}: the source's weight is {tuple(s.weight.shape)}, the target's "
                f"{tuple(t.weight.shape)} (build both nets with the same width, fc_width, pooled_size, num_classes)"
            )
    with torch.no_grad():
        for _, s, t in pairs:
            t.weight.copy_(s.weight)
            t.bias.copy_(s.bias)
    return deep
