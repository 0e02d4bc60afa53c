"""The paper's network configurations (Table 1 of Simonyan & Zisserman), held once, as data.

Every table, builder, summary and test in this project reads :data:`CONFIGS`; nothing else spells out a
configuration. Each configuration is a tuple of five convolution *blocks*; each block is a tuple of layers written
exactly as Table 1 writes them:

- ``"conv3-64"``: a 3×3 convolution with 64 output channels (stride 1, padding 1, then ReLU);
- ``"conv1-256"``: a 1×1 convolution with 256 output channels (configuration C only);
- ``"LRN"``: local response normalisation (configuration A-LRN only);
- ``"conv5-64"``: a 5×5 convolution (padding 2), used only by §4.1's shallow control in :data:`CONTROLS`.

Every block ends with a 2×2 max-pooling of stride 2 (§2.1), which Table 1 writes as a "maxpool" row between blocks.
The convolutional part is followed by the classifier of §2.1: FC-4096, FC-4096, FC-1000 (Table 1's last rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Table 1, one entry per column. Blocks are separated by max-pooling layers in the paper.
CONFIGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "A-LRN": (
        ("conv3-64", "LRN"),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "C": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512"),
    ),
    "E": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
    ),
}


def shallow_control(blocks: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """§4.1's control of a configuration: each pair of consecutive 3×3 convolutions of a block becomes one 5×5
    convolution with the pair's output channels, which sees the same 5×5 pixels (§2.3). A 3×3 convolution left
    without a partner and every other layer stay as they are; pairs never span a max-pooling (a block's end)."""
    control = []
    for block in blocks:
        layers: list[str] = []
        for text in block:
            if text.startswith("conv3-") and layers and layers[-1].startswith("conv3-"):
                layers[-1] = "conv5-" + text.removeprefix("conv3-")  # the pair's second layer sets the channels
            else:
                layers.append(text)
        control.append(tuple(layers))
    return tuple(control)


#: Nets the paper trains as controls, not columns of Table 1 (so no table of the paper lists them). §4.1: "a
#: shallow net with five 5×5 conv. layers, which was derived from B by replacing each pair of 3×3 conv. layers with
#: a single 5×5 conv. layer".
CONTROLS: dict[str, tuple[tuple[str, ...], ...]] = {"B-5x5": shallow_control(CONFIGS["B"])}

#: The classifier's hidden widths (Table 1: FC-4096, FC-4096); the last layer has one output per class.
FC_WIDTHS: tuple[int, ...] = (4096, 4096)

#: The input the paper trains on (§2.1): a fixed-size 224×224 RGB crop.
INPUT_SIZE = 224
INPUT_CHANNELS = 3

#: Side of the feature map the classifier expects (224 / 2**5). torchvision's ``AdaptiveAvgPool2d((7, 7))``
#: brings any input size to it, so the classifier's first layer always sees 512·7·7 = 25,088 numbers.
POOLED_SIZE = 7

#: Table 2 of the paper: number of parameters, in millions, as printed there.
PAPER_PARAMS_MILLIONS: dict[str, int] = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}

#: Table 1's column heading: the number of weight layers of each configuration.
PAPER_WEIGHT_LAYERS: dict[str, int] = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}

#: The configurations torchvision ships (``torchvision.models.vgg11`` ... ``vgg19``), by paper name.
TORCHVISION_NAMES: dict[str, str] = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}

_CONV = re.compile(r"conv(?P<kernel>[135])-(?P<channels>\d+)")


@dataclass(frozen=True)
class Conv:
    """A convolution of Table 1: ``kernel``×``kernel``, stride 1, padding ``kernel // 2`` (§2.1)."""

    kernel: int
    channels: int

    @property
    def padding(self) -> int:
        return self.kernel // 2


@dataclass(frozen=True)
class LRN:
    """Local response normalisation as in AlexNet (§2.1 and §4.1 of the VGG paper)."""


@dataclass(frozen=True)
class MaxPool:
    """The 2×2, stride-2 max-pooling that closes every block (§2.1)."""

    kernel: int = 2
    stride: int = 2


Layer = Conv | LRN | MaxPool


def check_name(name: str) -> str:
    """Return ``name`` if it is a configuration of Table 1 or a control (:data:`CONTROLS`), or raise a ``KeyError``
    naming the valid ones."""
    if name not in CONFIGS and name not in CONTROLS:
        valid = ", ".join(CONFIGS)
        controls = " and the control" + "s" * (len(CONTROLS) > 1) + " " + ", ".join(CONTROLS)
        hint = " (names are case-sensitive)" if name.upper() in {n.upper() for n in (*CONFIGS, *CONTROLS)} else ""
        raise KeyError(f"unknown VGG configuration {name!r}{hint}; valid names are: {valid}{controls}")
    return name


def blocks_of(name: str) -> tuple[tuple[str, ...], ...]:
    """The blocks of configuration ``name``: a column of Table 1 or a control of :data:`CONTROLS`."""
    check_name(name)
    return CONFIGS[name] if name in CONFIGS else CONTROLS[name]


def parse_layer(text: str) -> Layer:
    """Turn one cell of Table 1 (``"conv3-64"``, ``"conv1-512"``, ``"LRN"``, or a control's ``"conv5-64"``) into a
    layer description."""
    if text == "LRN":
        return LRN()
    match = _CONV.fullmatch(text)
    if match is None:
        raise ValueError(
            f"cannot read layer {text!r}: expected 'conv3-<channels>', 'conv1-<channels>', 'conv5-<channels>' or 'LRN'"
        )
    return Conv(kernel=int(match["kernel"]), channels=int(match["channels"]))


def feature_layers(name: str) -> list[Layer]:
    """The convolutional part of configuration ``name`` as a flat list, a :class:`MaxPool` closing each block."""
    layers: list[Layer] = []
    for block in blocks_of(name):
        layers.extend(parse_layer(text) for text in block)
        layers.append(MaxPool())
    return layers


def weight_layers(name: str) -> int:
    """Number of weight layers (convolutions plus the three FC layers), the figure in Table 1's heading."""
    convs = sum(isinstance(layer, Conv) for layer in feature_layers(name))
    return convs + len(FC_WIDTHS) + 1


@dataclass(frozen=True)
class Recipe:
    """The training recipe of §3.1, as numbers: what :mod:`vgg_tutorial.training.train`, the transforms and the recipe
    card read instead of retyping them."""

    lr: float = 1e-2  #: initial learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4  #: L2 penalty multiplier
    batch_size: int = 256
    dropout: float = 0.5  #: on the first two FC layers
    lr_drops: int = 3  #: the rate is divided by 10 three times in all
    lr_factor: float = 0.1
    color_shift: float = 0.1  #: std of the colour-shift draws α: AlexNet's value, VGG's paper gives none
    scale: int = 256  #: the fixed training scale S that goes with a 224 crop


#: The paper's recipe (§3.1).
RECIPE = Recipe()


@dataclass(frozen=True)
class Table3Row:
    """One row of the paper's Table 3: configuration, training scale S, test scale Q, top-1 and top-5 val error (%)."""

    config: str
    train_scale: str  #: "256", "384" or "[256;512]" (jittered), as the paper prints it
    test_scale: int
    top1: float
    top5: float


#: Table 3 of the paper (§4.1): ConvNet performance at a single test scale, ILSVRC-2012 validation set.
PAPER_TABLE3: tuple[Table3Row, ...] = (
    Table3Row("A", "256", 256, 29.6, 10.4),
    Table3Row("A-LRN", "256", 256, 29.7, 10.5),
    Table3Row("B", "256", 256, 28.7, 9.9),
    Table3Row("C", "256", 256, 28.1, 9.4),
    Table3Row("C", "384", 384, 28.1, 9.3),
    Table3Row("C", "[256;512]", 384, 27.3, 8.8),
    Table3Row("D", "256", 256, 27.0, 8.8),
    Table3Row("D", "384", 384, 26.8, 8.7),
    Table3Row("D", "[256;512]", 384, 25.6, 8.1),
    Table3Row("E", "256", 256, 27.3, 9.0),
    Table3Row("E", "384", 384, 26.9, 8.7),
    Table3Row("E", "[256;512]", 384, 25.5, 8.0),
)


@dataclass(frozen=True)
class Table4Row:
    """One row of the paper's Table 4: configuration, training scale S, the test scales Q averaged, top-1 and top-5
    val error (%)."""

    config: str
    train_scale: str  #: as in :class:`Table3Row`
    test_scales: tuple[int, ...]
    top1: float
    top5: float


#: Table 4 of the paper (§4.2): dense evaluation at several test scales, the posteriors averaged; the rows of D and E
#: (B and C are in the paper too). Q ∈ {S − 32, S, S + 32} for fixed S, {S_min, (S_min + S_max)/2, S_max} jittered.
# Every row is checked against the paper's Table 4 (and the project's paper facts, shared/paper-facts.md).
PAPER_TABLE4: tuple[Table4Row, ...] = (
    Table4Row("D", "256", (224, 256, 288), 26.6, 8.6),
    Table4Row("D", "384", (352, 384, 416), 26.5, 8.6),
    Table4Row("D", "[256;512]", (256, 384, 512), 24.8, 7.5),
    Table4Row("E", "256", (224, 256, 288), 26.9, 8.7),
    Table4Row("E", "384", (352, 384, 416), 26.7, 8.6),
    Table4Row("E", "[256;512]", (256, 384, 512), 24.8, 7.5),
)


@dataclass(frozen=True)
class Table5Row:
    """One row of the paper's Table 5: configuration, test method, top-1 and top-5 val error (%). Every row is a net
    trained with S ∈ [256;512] and tested at Q ∈ {256, 384, 512}."""

    config: str
    method: str  #: "dense", "multi-crop" or "multi-crop & dense", as the paper prints it
    top1: float
    top5: float


#: Table 5 of the paper (§4.3): dense evaluation against 50 crops per scale, and the two combined.
PAPER_TABLE5: tuple[Table5Row, ...] = (
    Table5Row("D", "dense", 24.8, 7.5),
    Table5Row("D", "multi-crop", 24.6, 7.5),
    Table5Row("D", "multi-crop & dense", 24.4, 7.2),
    Table5Row("E", "dense", 24.8, 7.5),
    Table5Row("E", "multi-crop", 24.6, 7.4),
    Table5Row("E", "multi-crop & dense", 24.4, 7.1),
)


#: §4's data (ILSVRC-2012): 1000 classes; images per split. The test labels are held out: test-set errors come only
#: from the challenge's server, so the paper chooses on the validation set and submits few test runs.
ILSVRC_2012: dict[str, int] = {"classes": 1000, "train": 1_300_000, "val": 50_000, "test": 100_000}


@dataclass(frozen=True)
class Table6Row:
    """One row of the paper's Table 6 (§4.4): nets combined by averaging their soft-max posteriors, each written
    ``config/S`` as the paper writes them, the test method, top-1 and top-5 val error and top-5 test error (%)."""

    nets: tuple[str, ...]
    method: str
    top1: float
    top5: float
    top5_test: float | None  #: ``None`` where the paper submitted no test run


#: Table 6 of the paper: the ILSVRC-2014 submission (7 nets, dense) and the two best nets combined afterwards.
PAPER_TABLE6: tuple[Table6Row, ...] = (
    Table6Row(("D/256", "D/384", "D/[256;512]", "C/256", "C/384", "E/256", "E/384"), "dense", 24.7, 7.5, 7.3),
    Table6Row(("D/[256;512]", "E/[256;512]"), "dense", 24.0, 7.1, 7.0),
    Table6Row(("D/[256;512]", "E/[256;512]"), "multi-crop", 23.9, 7.2, None),
    Table6Row(("D/[256;512]", "E/[256;512]"), "multi-crop & dense", 23.7, 6.8, 6.8),
)


@dataclass(frozen=True)
class Table7Row:
    """One row of the paper's Table 7 (§4.5): an ILSVRC entry, how many nets it combines, its top-5 test error (%)."""

    entry: str
    nets: int | None  #: ``None``: several, the paper does not say how many
    top5_test: float


#: Table 7 of the paper: comparison with the state of the art in ILSVRC classification (top-5 test error, the
#: challenge's criterion; entries without outside training data). In ILSVRC-2014 GoogLeNet came first, VGG second.
PAPER_TABLE7: tuple[Table7Row, ...] = (
    Table7Row("VGG (post-submission)", 2, 6.8),
    Table7Row("VGG (post-submission)", 1, 7.0),
    Table7Row("VGG (ILSVRC-2014 submission)", 7, 7.3),
    Table7Row("GoogLeNet", 1, 7.9),
    Table7Row("GoogLeNet", 7, 6.7),
    Table7Row("MSRA", 11, 8.1),
    Table7Row("MSRA", 1, 9.1),
    Table7Row("Clarifai", None, 11.7),
    Table7Row("Clarifai", 1, 12.5),
    Table7Row("Zeiler & Fergus", 6, 14.8),
    Table7Row("OverFeat", 7, 13.6),
    Table7Row("Krizhevsky et al.", 5, 16.4),
)


# Localisation (Appendix A): Tables 8, 9 and 10 of the paper.


@dataclass(frozen=True)
class Table8Row:
    """One row of the paper's Table 8 (Appendix A.2): which layers were fine-tuned, the regression type (SCR: one
    box for all classes; PCR: one box per class) and the localisation error (%) on ILSVRC's validation set with the
    simplified protocol: one central crop, the box of the *ground-truth* class, right at IoU > 0.5."""

    fine_tuned: str  #: "1st and 2nd FC" or "all", as the paper prints it
    regression: str  #: "SCR" or "PCR"
    error: float


#: Table 8 of the paper (configuration D, S = 384). The paper reports no SCR row for fine-tuning all layers.
PAPER_TABLE8: tuple[Table8Row, ...] = (
    Table8Row("1st and 2nd FC", "SCR", 36.4),
    Table8Row("1st and 2nd FC", "PCR", 34.3),
    Table8Row("all", "PCR", 33.1),
)


@dataclass(frozen=True)
class Table9Row:
    """One row of the paper's Table 9 (Appendix A.2): PCR, all layers fine-tuned, applied densely to the whole
    image with the top-5 predicted classes; training and test scales, top-5 localisation error (%) on val and
    test (``None`` where the paper gives none)."""

    train_scale: str
    test_scale: str
    val: float
    test: float | None


#: Table 9 of the paper: the fully-fledged protocol; "fusion" combines the S = 256 and S = 384 nets.
PAPER_TABLE9: tuple[Table9Row, ...] = (
    Table9Row("256", "256", 29.5, None),
    Table9Row("384", "384", 28.2, 26.7),
    Table9Row("384", "352,384", 27.5, None),
    Table9Row("fusion: 256/256 and 384/352,384", "", 26.9, 25.3),
)


@dataclass(frozen=True)
class Table10Row:
    """One row of the paper's Table 10: an ILSVRC localisation entry, top-5 val and test error (%)."""

    entry: str
    val: float | None
    test: float


#: Table 10 of the paper: the state of the art in ILSVRC localisation. VGG won ILSVRC-2014's localisation task.
PAPER_TABLE10: tuple[Table10Row, ...] = (
    Table10Row("VGG", 26.9, 25.3),
    Table10Row("GoogLeNet", None, 26.7),
    Table10Row("OverFeat", 30.0, 29.9),
    Table10Row("Krizhevsky et al.", None, 34.2),
)


# Transfer (Appendix B): Table 11 of the paper.


@dataclass(frozen=True)
class Table11Row:
    """One row of the paper's Table 11 (Appendix B): image classification on other datasets with features of nets
    pre-trained on ILSVRC. VOC: mean average precision (%) on the test sets; Caltech: mean class recall (%) as
    (mean, std) over three random splits. ``None`` where the paper prints "-". Wei et al.'s VOC results with nets
    pre-trained on 2,000 ILSVRC classes (85.2 and 90.3, starred in the paper) are left out."""

    method: str
    voc2007: float | None
    voc2012: float | None
    caltech101: tuple[float, float] | None
    caltech256: tuple[float, float] | None


#: Table 11 of the paper: the previous best rows, then VGG's (D and E alone, and their descriptors stacked).
PAPER_TABLE11: tuple[Table11Row, ...] = (
    Table11Row("Zeiler & Fergus", None, 79.0, (86.5, 0.5), (74.2, 0.3)),
    Table11Row("Chatfield et al.", 82.4, 83.2, (88.4, 0.6), (77.6, 0.1)),
    Table11Row("He et al.", 82.4, None, (93.4, 0.5), None),
    Table11Row("Wei et al.", 81.5, 81.7, None, None),
    Table11Row("VGG Net-D (16 layers)", 89.3, 89.0, (91.8, 1.0), (85.0, 0.2)),
    Table11Row("VGG Net-E (19 layers)", 89.3, 89.0, (92.3, 0.5), (85.1, 0.3)),
    Table11Row("VGG Net-D & Net-E", 89.7, 89.3, (92.7, 0.5), (86.2, 0.3)),
)
