"""A harder synthetic task for Table 3 at a real size: name the large object among smaller ones in front and behind.

At full width and 112 px or more, the synthetic shapes of :mod:`vgg_tutorial.data.synthetic` are too easy: every VGG
gets them right and Table 3's differences (§4.1: depth, 1×1 against 3×3, scale jittering) cannot show. This
variant keeps the ten classes and what tells them apart (the shape of one object, its texture or orientation) and
adds what makes ImageNet hard for a small receptive field:

- **clutter**: :data:`CLUTTER` smaller objects of random classes in every image, so that local patterns alone
  (an edge, a corner, a stripe) no longer name the class: the net has to find the *largest* object;
- **occlusion**: two of them are drawn after the object, covering parts of it;
- **scale**: the object's radius is drawn log-uniformly over a factor 2.7 (:data:`OBJECT_RADIUS`), the spread
  scale jittering (§3.1) is meant for; the distractors stay smaller (:data:`DISTRACTOR_RADIUS`);
- **noise**: pixel noise of std :data:`NOISE` instead of 0.06.

A first version (4 distractors of radius 0.08-0.2, objects of 0.25-0.75, noise 0.1) was too hard for a GPU lease:
after 7 epochs of 10,000 images the best net (A) named 27 % of the validation images and the deeper ones stayed
near chance (``book/results/gpu/table3-pilot.json``); this one is milder, and the study trains longer.

The images are rendered in memory (uint8, on any device: a GPU draws Imagenette's size in about a second), never
written to disk. The same arguments give the same images on one kind of device; the pixel noise is drawn by the
device's own generator, so a CPU and a GPU draw different noise.
"""

from __future__ import annotations

import torch

from vgg_tutorial.data.boxes import object_boxes
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, _check_split, _draw_params, _split_seed, background, paint

#: Smaller objects per image: the first half (rounded down) drawn behind the object, the rest in front of it.
CLUTTER = 3
#: Radii (shares of half the image side), drawn log-uniformly: the object's, and the distractors'.
OBJECT_RADIUS, DISTRACTOR_RADIUS = (0.3, 0.8), (0.06, 0.16)
#: Distractors' centres are drawn uniformly in [-SPREAD, SPREAD]² (the object's in [-0.3, 0.3]²).
SPREAD = 0.85
NOISE = 0.08
#: Seeds apart from :mod:`vgg_tutorial.data.synthetic`'s, so that the two tasks never share a draw.
SEED_OFFSET = 1000


def task() -> dict:
    """The task's parameters, for results files: a study made with other ones is not continued."""
    return {"clutter": CLUTTER, "object_radius": OBJECT_RADIUS, "distractor_radius": DISTRACTOR_RADIUS, "noise": NOISE}


def draw_layers(labels: torch.Tensor, gen: torch.Generator) -> list[tuple[torch.Tensor, dict]]:
    """The objects of every image, in drawing order: ``(labels, params)`` per layer, the class object in the middle."""
    n, behind = len(labels), CLUTTER // 2
    main = _draw_params(labels, gen, OBJECT_RADIUS)
    layers = []
    for _ in range(CLUTTER):
        others = torch.randint(0, len(SYNTHETIC_CLASSES), (n,), generator=gen)
        params = _draw_params(others, gen, DISTRACTOR_RADIUS)
        params["centre"] = SPREAD * (2 * torch.rand(n, 2, generator=gen) - 1)
        layers.append((others, params))
    return layers[:behind] + [(labels, main)] + layers[behind:]


def render_cluttered(
    split: str = "train",
    *,
    image_size: int = 256,
    per_class: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the cluttered task: uint8 images N×3×``image_size``² and int64 labels on ``device``,
    N = 10·``per_class``, labels cycling 0, 1, ..., 9 as in :func:`vgg_tutorial.data.synthetic.render_split`."""
    if image_size < 8 or per_class < 1:
        raise ValueError(f"image_size must be at least 8 and per_class at least 1, got {image_size} and {per_class}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(SEED_OFFSET + _split_seed(seed, _check_split(split)))
    n = per_class * len(SYNTHETIC_CLASSES)
    labels = torch.arange(n) % len(SYNTHETIC_CLASSES)
    layers = draw_layers(labels, gen)
    noise = torch.Generator(device).manual_seed(SEED_OFFSET + _split_seed(seed, split))
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8, device=device)
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        on_device = [(lab[part].to(device), {k: v[part].to(device) for k, v in p.items()}) for lab, p in layers]
        image = background(on_device[CLUTTER // 2][1], image_size)  # the class object's background
        for layer_labels, params in on_device:
            paint(image, layer_labels, params)
        image += NOISE * torch.randn(image.shape, generator=noise, device=device)
        images[part] = image.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return images, labels.to(device)


def cluttered_boxes(
    split: str = "train", *, image_size: int = 256, per_class: int = 100, seed: int = 0
) -> torch.Tensor:
    """The class object's box in every image of :func:`render_cluttered`'s split (the same draws): N×4, ``x0, y0,
    x1, y1`` in pixel edges (:func:`vgg_tutorial.data.boxes.object_boxes`), on the CPU. Distractors in front may hide
    part of the object; its box is the whole object's, as an annotator who sees through them would draw it."""
    gen = torch.Generator().manual_seed(SEED_OFFSET + _split_seed(seed, _check_split(split)))
    labels = torch.arange(per_class * len(SYNTHETIC_CLASSES)) % len(SYNTHETIC_CLASSES)
    return object_boxes(labels, draw_layers(labels, gen)[CLUTTER // 2][1], image_size)
