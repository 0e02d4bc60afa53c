"""Decode a training split once, whole images kept, for :class:`~vgg_tutorial.data.loaders.DeviceLoader` (§3.1).

§3.1 crops the 224×224 training input at random from the *whole* rescaled image. An Imagenette image is mostly 4:3,
so centre-cropping it to an S×S square before storing it would lose a quarter of its columns (85 of 341 at S = 256)
to every crop. :func:`decode_whole` keeps them: each image is resized so its smaller side is S, stored top-left in a
tensor padded to the split's largest shape (the padding repeats the image's last row and column), and its true
height and width are returned beside it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets.folder import pil_loader
from torchvision.transforms.v2 import functional as F

#: Longer side over shorter side beyond which an image is centre-cropped before storing (padding memory bound).
MAX_ASPECT = 2.0


def decode_whole(
    samples: list[tuple[str | Path, int]], image_size: int, max_aspect: float = MAX_ASPECT
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode ``(path, label)`` samples: uint8 images N×3×H×W (smaller side ``image_size``), labels, sizes N×2.

    Images longer than ``max_aspect`` times their smaller side are centre-cropped to that ratio first (rare in
    Imagenette), so the padded tensor stays at most ``max_aspect`` times the square one.
    """
    decoded, limit = [], int(image_size * max_aspect)
    for path, _ in samples:
        image = F.pil_to_tensor(F.resize(pil_loader(path), image_size))  # PIL resizes with antialiasing
        height, width = image.shape[1:]
        decoded.append(F.center_crop(image, [min(height, limit), min(width, limit)]))
    height, width = max(i.shape[1] for i in decoded), max(i.shape[2] for i in decoded)
    images = torch.empty(len(decoded), 3, height, width, dtype=torch.uint8)
    sizes = torch.tensor([list(i.shape[1:]) for i in decoded], dtype=torch.int64)
    for index, image in enumerate(decoded):
        h, w = image.shape[1:]
        images[index] = F.pad(image, [0, 0, width - w, height - h], padding_mode="edge")
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return images, labels, sizes
