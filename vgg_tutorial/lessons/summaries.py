"""Layer-by-layer model summaries: a thin wrapper around ``torchinfo.summary`` with columns that fit a book page.

torchinfo runs one forward pass on an input of the size it is given and records, for every module, the output
shape, the parameter count and the multiply-accumulates (MACs). The totals can be checked against Table 2 of the
paper (parameters) and against :func:`vgg_tutorial.paper.accounting.count_macs` (MACs), which computes them from
Table 1 alone. torchinfo is imported inside the function, so the package works where it is not installed.
"""

from __future__ import annotations

import torch
from torch import nn

from vgg_tutorial.paper.configs import INPUT_CHANNELS, INPUT_SIZE
from vgg_tutorial.paper.models import vgg

#: Output shape, parameters and MACs: what the chapters discuss, in a table about 90 characters wide.
COLUMNS = ("output_size", "num_params", "mult_adds")


def summary(
    model: str | nn.Module,
    *,
    image_size: int = INPUT_SIZE,
    batch_size: int = 1,
    depth: int = 2,
    columns: tuple[str, ...] = COLUMNS,
    column_width: int = 19,
    **vgg_options,
):
    """``torchinfo.summary`` of ``model`` for a batch of ``batch_size`` RGB images of ``image_size`` pixels.

    ``model`` is a module or a configuration name of Table 1; a name is built with
    :func:`~vgg_tutorial.paper.models.vgg` and ``vgg_options`` (``batch_norm=True``, ``num_classes=10``, ...) on
    PyTorch's ``"meta"`` device, which records shapes without allocating or initialising any weight, so even VGG-19 is
    summarised in a second.

    Returns torchinfo's ``ModelStatistics``: print it for the table; ``total_params`` and ``total_mult_adds``
    hold the totals. MACs are printed as exact integers, and the layer-name column is only as wide as it needs
    to be.
    """
    import torchinfo  # optional dependency: only the summaries need it

    if isinstance(model, str):
        with torch.device("meta"):
            model = vgg(model, **vgg_options)
    elif vgg_options:
        raise TypeError(f"options {sorted(vgg_options)} only apply when model is a configuration name")
    device = next(model.parameters()).device
    stats = torchinfo.summary(
        model,
        input_size=(batch_size, INPUT_CHANNELS, image_size, image_size),
        col_names=columns,
        col_width=column_width,
        depth=depth,
        device=device,
        verbose=0,
    )
    stats.formatting.macs_units = torchinfo.Units.NONE  # "15,483,821,032" rather than "(Units.GIGABYTES): 15.48"
    stats.formatting.layer_name_width = 0
    stats.formatting.set_layer_name_width(stats.summary_list)
    return stats
