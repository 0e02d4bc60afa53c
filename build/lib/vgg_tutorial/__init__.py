"""vgg_tutorial: the code behind the executable book on the VGG paper (Simonyan & Zisserman, ICLR 2015).

Its folders are its layers, each importing only the ones before it: ``paper`` (Table 1 as data, the builder, the
arithmetic), ``data``, ``training``, ``testing``, ``studies`` (the paper's experiments in miniature and at a real
size) and ``lessons`` (what only the book's chapters use). The files beside them (``train.py``, ``evaluate.py``, ...)
are the commands' short forms, ``python -m vgg_tutorial.train``. Here, the names the chapters use most.
"""

from vgg_tutorial.data.datasets import (
    IMAGENETTE_CLASSES,
    DatasetNotFoundError,
    class_names,
    decode_split,
    download_imagenette,
    imagenette,
    make_dataloaders,
)
from vgg_tutorial.data.loaders import DeviceLoader, choose_storage, host_loader
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes, make_synthetic, render_split
from vgg_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PCAColorShift, eval_transform, train_transform
from vgg_tutorial.lessons.plotting import plot_history, show_samples
from vgg_tutorial.lessons.summaries import summary
from vgg_tutorial.paper.accounting import (
    LayerStats,
    check_input_size,
    count_macs,
    count_parameters,
    layer_stats,
    receptive_field,
)
from vgg_tutorial.paper.configs import (
    CONFIGS,
    PAPER_PARAMS_MILLIONS,
    PAPER_WEIGHT_LAYERS,
    TORCHVISION_NAMES,
    check_name,
    feature_layers,
    parse_layer,
    weight_layers,
)
from vgg_tutorial.paper.dense import FullyConvolutionalVGG, to_fully_convolutional
from vgg_tutorial.paper.models import VGG, init_weights, vgg

__all__ = [
    "IMAGENETTE_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SYNTHETIC_CLASSES",
    "DatasetNotFoundError",
    "DeviceLoader",
    "PCAColorShift",
    "SyntheticShapes",
    "class_names",
    "decode_split",
    "host_loader",
    "download_imagenette",
    "imagenette",
    "make_dataloaders",
    "make_synthetic",
    "render_split",
    "eval_transform",
    "train_transform",
    "CONFIGS",
    "FullyConvolutionalVGG",
    "PAPER_PARAMS_MILLIONS",
    "PAPER_WEIGHT_LAYERS",
    "TORCHVISION_NAMES",
    "VGG",
    "LayerStats",
    "check_input_size",
    "check_name",
    "choose_storage",
    "count_macs",
    "count_parameters",
    "feature_layers",
    "init_weights",
    "layer_stats",
    "parse_layer",
    "receptive_field",
    "summary",
    "to_fully_convolutional",
    "vgg",
    "weight_layers",
    "plot_history",
    "show_samples",
]
