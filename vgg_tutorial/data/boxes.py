"""Bounding boxes for Appendix A (localisation): where each synthetic object is, and where it goes under the
book's transforms.

The paper's localisation net predicts "a bounding box ... represented by a 4-D vector storing its center
coordinates, width, and height" (Appendix A.1), and a box counts as correct when "its intersection over union ratio
with the ground-truth bounding box is above 0.5" (A.2, the ILSVRC criterion). ImageNet's boxes were drawn by people;
the synthetic objects (:mod:`vgg_tutorial.data.synthetic`) are drawn from parameters (centre, radius, angle), so their
boxes follow from the same parameters, exactly, and the images do not change.

One convention throughout: a box is ``(x0, y0, x1, y1)`` in *continuous pixel coordinates*: pixel column ``i``
covers ``[i, i + 1)``, so an image of width ``W`` spans ``[0, W]`` and the box of pixel ``(row, col)`` alone is
``(col, row, col + 1, row + 1)``. In these coordinates the training and testing transforms of §3.1-3.2 are exact:

- a crop at ``(top, left)`` shifts the box by ``(-left, -top)``;
- a horizontal flip of an image ``W`` wide maps ``x`` to ``W - x``: ``(x0, x1)`` becomes ``(W - x1, W - x0)``;
- a rescale from side ``s`` to side ``s'`` multiplies every coordinate by ``s' / s`` (``torch`` resizes with
  ``align_corners=False``, which maps pixel edges to pixel edges).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

#: Each class's shape (:func:`vgg_tutorial.data.synthetic._signed_distance`) as points in object units and a rounding
#: radius: the shape is the set of points within that radius of the points' convex hull. Discs and rings are a
#: point with radius 1, polygons their corners with radius 0, the two dots two points with radius 0.4.
_TRIANGLE = tuple((math.cos(a), math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6))
SHAPES: tuple[tuple[tuple[tuple[float, float], ...], float], ...] = (
    (((0.0, 0.0),), 1.0),  # disc
    (((0.0, 0.0),), 1.0),  # ring (outer radius 1)
    (((0.8, 0.8), (-0.8, 0.8), (0.8, -0.8), (-0.8, -0.8)), 0.0),  # square
    (_TRIANGLE, 0.0),  # triangle, circumradius 1
    (((1.0, 0.3), (-1.0, 0.3), (1.0, -0.3), (-1.0, -0.3), (0.3, 1.0), (-0.3, 1.0), (0.3, -1.0), (-0.3, -1.0)), 0.0),
    (((1.0, 0.25), (-1.0, 0.25), (1.0, -0.25), (-1.0, -0.25)), 0.0),  # horizontal bar
    (((1.0, 0.25), (-1.0, 0.25), (1.0, -0.25), (-1.0, -0.25)), 0.0),  # vertical bar (turned by its angle)
    (((0.0, 0.0),), 1.0),  # striped disc
    (((0.8, 0.8), (-0.8, 0.8), (0.8, -0.8), (-0.8, -0.8)), 0.0),  # checkered square
    (((0.6, 0.0), (-0.6, 0.0)), 0.4),  # two dots
)


def object_boxes(labels: torch.Tensor, params: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """The box (N×4, ``x0, y0, x1, y1``) of each object drawn by :func:`vgg_tutorial.data.synthetic.paint` with
    ``params`` in an image of ``size`` px, clipped to the image (a large object may reach past its border).

    A point ``(u, v)`` of the shape sits at ``centre + radius · R(angle) (u, v)`` in image coordinates ([-1, 1]),
    the inverse of the rotation :func:`~vgg_tutorial.data.synthetic.paint` applies; the box is the extent of the shape's
    points, widened by its rounding radius.
    """
    boxes = torch.empty(len(labels), 4, dtype=torch.float64)
    for i, label in enumerate(labels.tolist()):
        points, rounding = SHAPES[label]
        cos, sin = math.cos(params["angle"][i]), math.sin(params["angle"][i])
        cx, cy = params["centre"][i].tolist()
        r = float(params["radius"][i])
        xs = [cx + r * (cos * u - sin * v) for u, v in points]
        ys = [cy + r * (sin * u + cos * v) for u, v in points]
        extent = (min(xs) - r * rounding, min(ys) - r * rounding, max(xs) + r * rounding, max(ys) + r * rounding)
        boxes[i] = torch.tensor(extent, dtype=torch.float64)
    return ((boxes + 1) / 2 * size).clamp(0, size).float()  # [-1, 1] to pixels [0, size]


def check_boxes(boxes: torch.Tensor, size: int | tuple[int, int], what: str = "box") -> torch.Tensor:
    """``boxes`` (…×4) if every one lies inside an image of ``size`` (side, or ``(height, width)``) with
    ``x0 < x1`` and ``y0 < y1``; otherwise a ``ValueError`` naming the first bad one."""
    height, width = (size, size) if isinstance(size, int) else size
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"a {what} is 4 numbers (x0, y0, x1, y1); got shape {tuple(boxes.shape)}")
    flat = boxes.reshape(-1, 4)
    x0, y0, x1, y1 = flat.unbind(-1)
    bad = (x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height) | (x0 >= x1) | (y0 >= y1) | ~flat.isfinite().all(-1)
    if bad.any():
        first = flat[bad.nonzero()[0, 0]].tolist()
        raise ValueError(
            f"{what} {[round(v, 2) for v in first]} is not inside the {width}×{height} image: a box is (x0, y0, x1, "
            f"y1) with 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} (pixel edges)"
        )
    return boxes


def area(boxes: torch.Tensor) -> torch.Tensor:
    """The area of each box (…×4); a box with ``x1 < x0`` or ``y1 < y0`` (a prediction can be one) has area 0."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of the boxes ``a`` and ``b`` (…×4 each, paired), in [0, 1] (Appendix A.2)."""
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    corner0, corner1 = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (corner1 - corner0).clamp(min=0).prod(-1)
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


#: The ILSVRC criterion (Appendix A.2): a box is right when its IoU with the ground truth is *above* 0.5.
IOU_THRESHOLD = 0.5


def correct(predicted: torch.Tensor, truth: torch.Tensor, threshold: float = IOU_THRESHOLD) -> torch.Tensor:
    """Whether each predicted box counts as right: IoU with its ground-truth box above ``threshold``."""
    return iou(predicted, truth) > threshold


def crop(boxes: torch.Tensor, top, left) -> torch.Tensor:
    """The boxes in the coordinates of a crop whose top-left corner is at ``(top, left)`` (scalars or one per
    box). Not clipped: a box may reach past the crop (the object does too)."""
    left, top = (torch.as_tensor(v, dtype=boxes.dtype, device=boxes.device) for v in (left, top))
    left, top = torch.broadcast_tensors(left, top)
    return boxes - torch.stack([left, top, left, top], -1)


def flip(boxes: torch.Tensor, width: int, where: torch.Tensor | bool = True) -> torch.Tensor:
    """The boxes after a horizontal flip of an image ``width`` px wide (only where ``where`` is true, one flag per
    box or one for all): ``x`` becomes ``width - x``, so the left and right edges swap."""
    mirrored = torch.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], -1)
    return torch.where(torch.as_tensor(where, device=boxes.device)[..., None], mirrored, boxes)


def rescale(boxes: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """The boxes after the image is rescaled from side ``old`` to side ``new`` (square images)."""
    return boxes * (new / old)


def to_centre_size(boxes: torch.Tensor) -> torch.Tensor:
    """``(x0, y0, x1, y1)`` to the paper's ``(centre x, centre y, width, height)`` (Appendix A.1)."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)


def to_corners(boxes: torch.Tensor) -> torch.Tensor:
    """``(centre x, centre y, width, height)`` back to ``(x0, y0, x1, y1)``."""
    return torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)


# ---------------------------------------------------------------------------------------------------------------
# The boxes file of a synthetic folder: one per split, keyed by the image's file name
# ---------------------------------------------------------------------------------------------------------------

FIELDS = ("file", "label", "x0", "y0", "x1", "y1")


def boxes_file(folder: str | Path, split: str) -> Path:
    """Where :func:`vgg_tutorial.data.synthetic.make_synthetic` writes the boxes of ``split``: ``boxes-<split>.csv``."""
    return Path(folder) / f"boxes-{split}.csv"


def write_boxes(path: str | Path, names: list[str], labels: torch.Tensor, boxes: torch.Tensor) -> None:
    """Write one row per image: its file name, label and box (pixels, four decimals)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for name, label, box in zip(names, labels.tolist(), boxes.tolist()):
            writer.writerow([name, label, *(f"{v:.4f}" for v in box)])


def read_boxes(folder: str | Path, split: str) -> dict[str, tuple[int, torch.Tensor]]:
    """The boxes of a synthetic folder's ``split``: image file name → (label, box). A folder made before boxes
    were written has no such file: the error says so."""
    path = boxes_file(folder, split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {folder} was made before synthetic folders held boxes; delete the folder and "
            f"make it again (the images come out the same)"
        )
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row["file"]: (int(row["label"]), torch.tensor([float(row[k]) for k in FIELDS[2:]])) for row in rows}
