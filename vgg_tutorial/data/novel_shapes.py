"""A second synthetic task for Appendix B: six shapes the first task never showed, drawn with the same look.

Appendix B of the paper takes nets trained on ILSVRC and uses them "as feature extractors on other, smaller,
datasets" (VOC, Caltech), whose classes the nets were never trained on. The miniature needs the same: images whose
*classes* are new to chapter 9's nets while everything else (backgrounds, colours, sizes, positions, noise) is as in
:mod:`vgg_tutorial.data.synthetic`. This module draws only the new shapes; the nuisance parameters, the background and
the pixel grid come from :mod:`vgg_tutorial.data.synthetic` itself, so the two tasks differ in their classes alone.

No new shape is one of the old ones turned or mirrored: a crescent, a half disc, a five-pointed star, a square
frame, three dots and an L (``tests/test_transfer.py`` checks every pair's overlap at every angle).
"""

from __future__ import annotations

import math

import torch

# _draw_params is private to synthetic.py; it is reused (not copied) so both tasks draw their nuisance alike.
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, _draw_params, background, pixel_grid

#: The new task's classes, in label order (none of them is in :data:`~vgg_tutorial.data.synthetic.SYNTHETIC_CLASSES`).
NOVEL_CLASSES: tuple[str, ...] = ("crescent", "half disc", "star", "square frame", "three dots", "L shape")
SPLITS = ("train", "val")
#: Seeds of the new task's splits start here, so they never repeat a generator of the first task.
SEED_OFFSET = 1000


def signed_distance(label: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to new class ``label``'s shape in object coordinates (negative inside; the
    shape fits in the unit disc, as the first task's do)."""
    r = torch.hypot(u, v)
    if label == 0:  # crescent: the unit disc minus a disc shifted to one side
        return torch.maximum(r - 1.0, 0.8 - torch.hypot(u - 0.45, v))
    if label == 1:  # half disc
        return torch.maximum(r - 1.0, v)
    if label == 2:  # five-pointed star: a radius that swings between 0.4 and 1 five times a turn
        theta = torch.atan2(v, u)
        return 0.6 * (r - (0.4 + 0.6 * ((1 + torch.cos(5 * theta)) / 2) ** 2))
    if label == 3:  # square frame: a square ring, sides 1.1 inside and 1.6 outside
        return (torch.maximum(u.abs(), v.abs()) - 0.675).abs() - 0.125
    if label == 4:  # three dots at the corners of a triangle
        angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        dots = [torch.hypot(u - 0.6 * math.cos(a), v - 0.6 * math.sin(a)) for a in angles]
        return torch.stack(dots).amin(0) - 0.32
    if label == 5:  # L: a vertical bar and a horizontal one, joined at a corner
        upright = torch.maximum((u + 0.55).abs() - 0.25, v.abs() - 0.8)
        foot = torch.maximum(u.abs() - 0.8, (v - 0.55).abs() - 0.25)
        return torch.minimum(upright, foot)
    raise ValueError(f"no new shape for label {label}; expected 0 to {len(NOVEL_CLASSES) - 1} ({NOVEL_CLASSES})")


def paint_novel(image: torch.Tensor, labels: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
    """Draw one new object per image into ``image`` (N×3×H×W, in place) at ``params``' centre, radius, angle and
    colour, with anti-aliased edges (as :func:`vgg_tutorial.data.synthetic.paint` draws the first task's)."""
    size = image.shape[-1]
    y, x = pixel_grid(size, image.device)
    pixel = 2.0 / size
    for label in labels.unique().tolist():
        idx = (labels == label).nonzero().squeeze(1)
        centre, radius, angle = params["centre"][idx], params["radius"][idx], params["angle"][idx]
        dx, dy = x - centre[:, 0, None, None], y - centre[:, 1, None, None]
        cos, sin, r = angle.cos()[:, None, None], angle.sin()[:, None, None], radius[:, None, None]
        u, v = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r
        coverage = (0.5 - signed_distance(label, u, v) * r / pixel).clamp(0, 1)[:, None]
        colour = params["foreground"][idx][:, :, None, None]
        image[idx] = image[idx] * (1 - coverage) + colour * coverage


def render_novel(
    split: str = "train",
    *,
    image_size: int = 74,
    per_class: int = 50,
    seed: int = 0,
    radius: tuple[float, float] = (0.2, 0.7),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the new task: uint8 images N×3×``image_size``×``image_size`` and int64 labels 0..5, N =
    6·``per_class``, labels cycling (any prefix is class-balanced). Deterministic in its arguments; the default
    ``radius`` is chapter 8's (objects at many sizes, :data:`vgg_tutorial.studies.experiments.RADIUS`)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if per_class < 1 or image_size < 1:
        raise ValueError(f"per_class and image_size must be at least 1, got {per_class} and {image_size}")
    gen = torch.Generator().manual_seed(SEED_OFFSET + 2 * seed + SPLITS.index(split))
    labels = torch.arange(per_class * len(NOVEL_CLASSES)) % len(NOVEL_CLASSES)
    # Labels shifted past the first task's: its parameter draw keeps its bars (labels 5, 6) upright, not ours.
    params = _draw_params(labels + len(SYNTHETIC_CLASSES), gen, radius)
    image = background(params, image_size)
    paint_novel(image, labels, params)
    image += 0.06 * torch.randn(image.shape, generator=gen)
    return image.clamp_(0, 1).mul_(255).round_().to(torch.uint8), labels
