"""The localisation net of Appendix A: a trained classification net whose last layer predicts a box.

"To perform object localisation, we use a very deep ConvNet, where the last fully connected layer predicts the
bounding box location instead of the class scores" (Appendix A.1). This module builds that net from a trained
classifier and fine-tunes it:

- **the head**: the last FC layer is replaced by a randomly initialised one with 4 outputs (*single-class
  regression*, SCR: one box whatever the class) or 4 per class (*per-class regression*, PCR: the paper's 4000-D
  layer; the box of the ground-truth class is trained and scored);
- **the loss**: "a Euclidean loss, which penalises the deviation of the predicted bounding box parameters from the
  ground-truth", on the paper's parameters (centre x, centre y, width, height), here *standardised* by the
  training boxes' mean and std (:class:`BoxScaler`): in pixels the targets are tens of units and the loss diverged;
- **what is trained**: all layers, or only the FC layers (the paper's "1st and 2nd FC" plus the new last one);
- **the score** (Table 8's protocol): the box from one central crop, for the ground-truth class, right when its
  IoU with the true box is above 0.5 (:func:`vgg_tutorial.data.boxes.correct`). With the classifier's own top-1 or top-5
  classes it becomes ILSVRC's error: an image is right when a guessed class is its class *and* that class's box is
  right.

The training batches are random crops and flips of images at the training scale (§3.1), as
:class:`~vgg_tutorial.data.loaders.DeviceLoader` draws them (same :func:`~vgg_tutorial.data.loaders.crop_and_flip`); the
draws are made here because each box must follow its image's crop and flip (:mod:`vgg_tutorial.data.boxes`). The step
is :class:`~vgg_tutorial.training.engine.Engine`'s, with the Euclidean loss in place of the cross-entropy.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vgg_tutorial.data import boxes as B
from vgg_tutorial.data.loaders import crop_and_flip
from vgg_tutorial.data.transforms import normalise, resize
from vgg_tutorial.paper.configs import RECIPE
from vgg_tutorial.training.engine import Engine, make_optimizer
from vgg_tutorial.training.train import make_scheduler

#: The regression types of Appendix A.1: one box for all classes, or one per class.
MODES = ("SCR", "PCR")
#: What is fine-tuned: every layer, or the FC layers only (the last one is new either way).
TUNINGS = ("all", "fc")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown regression type {mode!r}; expected one of {MODES} (single-class, per-class)")
    return mode


def check_tuning(tuning: str) -> str:
    if tuning not in TUNINGS:
        raise ValueError(f"unknown fine-tuning {tuning!r}; expected one of {TUNINGS} (all layers, FC layers only)")
    return tuning


def localiser(net: nn.Module, mode: str, num_classes: int) -> nn.Module:
    """A copy of the classification ``net`` (a VGG trained on ``num_classes`` classes) whose last FC layer is a new
    box regressor: 4 outputs for SCR, 4 per class for PCR, drawn from N(0, 0.01²) with zero bias (random, as the
    paper's last layer, "trained from scratch"). Refuses a net of another class count or without a classifier."""
    check_mode(mode)
    last = getattr(net, "classifier", [None])[-1]
    if not isinstance(last, nn.Linear):
        raise ValueError(f"expected a VGG whose classifier ends with a Linear layer; got {type(net).__name__}")
    if last.out_features != num_classes:
        raise ValueError(
            f"the net classifies {last.out_features} classes, not {num_classes}: a checkpoint of another class count"
        )
    loc = copy.deepcopy(net)
    head = nn.Linear(last.in_features, 4 if mode == "SCR" else 4 * num_classes)
    nn.init.normal_(head.weight, std=0.01)
    nn.init.zeros_(head.bias)
    loc.classifier[-1] = head
    return loc


def freeze(net: nn.Module, tuning: str) -> nn.Module:
    """Leave every layer trainable (``"all"``) or only the FC layers (``"fc"``: the convolutions are frozen)."""
    net.features.requires_grad_(check_tuning(tuning) == "all")
    return net


def select(outputs: torch.Tensor, labels: torch.Tensor, mode: str) -> torch.Tensor:
    """The 4 box numbers of each image (N×4): SCR's only box, or PCR's box of class ``labels[i]``."""
    if check_mode(mode) == "SCR":
        return outputs
    return outputs.reshape(len(outputs), -1, 4)[torch.arange(len(outputs)), labels]


class BoxScaler:
    """The paper's box parameters (centre x, centre y, width, height), standardised: minus their mean over the
    training boxes, divided by their std, so that every target is about N(0, 1)."""

    def __init__(self, mean, std) -> None:
        self.mean, self.std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)

    @classmethod
    def fit(cls, boxes: torch.Tensor) -> BoxScaler:
        params = B.to_centre_size(boxes.float())
        return cls(params.mean(0), params.std(0))

    def encode(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes ``(x0, y0, x1, y1)`` to standardised targets (on the boxes' device)."""
        mean, std = self.mean.to(boxes.device), self.std.to(boxes.device)
        return (B.to_centre_size(boxes.float()) - mean) / std

    def decode(self, targets: torch.Tensor) -> torch.Tensor:
        """Standardised predictions back to boxes ``(x0, y0, x1, y1)``."""
        return B.to_corners(targets.float() * self.std.to(targets.device) + self.mean.to(targets.device))

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class EuclideanLoss(nn.Module):
    """Half the squared distance between predicted and true box parameters, averaged over the batch (Caffe's
    Euclidean loss, the paper's toolbox). ``targets`` is N×5: the class (for PCR's choice of box), then 4 numbers."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = check_mode(mode)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        chosen = select(outputs, targets[:, 0].long(), self.mode)
        return 0.5 * (chosen - targets[:, 1:]).pow(2).sum(-1).mean()


def box_batches(images, boxes, labels, scaler: BoxScaler, *, crop_size: int, batch_size: int, generator):
    """One epoch of training batches ``(inputs, targets)``: random ``crop_size`` crops anywhere in the images
    (uint8 at the training scale) and random flips, as the classifier was trained (§3.1), the boxes following
    each crop and flip; targets N×5 (class, standardised box). The draws are made on the CPU (``generator``), the
    crops on the images' device, where ``boxes`` and ``labels`` are too."""
    n, side, device = len(images), images.shape[-1], images.device
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size].to(device)
        top, left = (torch.randint(0, side - crop_size + 1, (len(index),), generator=generator) for _ in "tl")
        flip = torch.rand(len(index), generator=generator) < 0.5
        top, left, flip = top.to(device), left.to(device), flip.to(device)
        crops = crop_and_flip(images[index], top, left, flip, crop_size)
        moved = B.flip(B.crop(boxes[index], top, left), crop_size, flip)
        targets = torch.cat([labels[index, None].float(), scaler.encode(moved)], 1)
        yield normalise(crops), targets


def fine_tune(net, images, boxes, labels, scaler, *, mode, tuning, epochs, lr, batch_size, crop_size, seed):
    """Fine-tune the localisation ``net`` in place with SGD (momentum and weight decay of §3.1), a cosine
    schedule with a one-epoch warm-up, on :func:`box_batches`, on the images' device (bf16 on a GPU); returns the
    mean loss of every epoch."""
    freeze(net, tuning).train()
    engine = Engine(images.device, precision="auto", loss_fn=EuclideanLoss(mode))  # fp32 on a CPU
    optimizer = make_optimizer(net, lr, RECIPE.momentum, RECIPE.weight_decay)
    steps = -(-len(images) // batch_size)
    scheduler, interval = make_scheduler("cosine", optimizer, epochs=epochs, steps_per_epoch=steps)
    generator, losses = torch.Generator().manual_seed(seed), []
    for _ in range(epochs):
        total = 0.0
        for inputs, targets in box_batches(
            images, boxes, labels, scaler, crop_size=crop_size, batch_size=batch_size, generator=generator
        ):
            _, loss, _ = engine.train_step(net, inputs, targets, optimizer)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the localisation loss became {loss.item()}; lower the learning rate")
            if interval == "step":
                scheduler.step()
            total += loss.item() * len(inputs)
        losses.append(total / len(images))
    return losses


def centre_crops(images: torch.Tensor, q: int, crop_size: int) -> tuple[torch.Tensor, int]:
    """The images (uint8, square) rescaled to ``q`` and centre-cropped: network inputs, and the crop's offset."""
    offset = (q - crop_size) // 2
    return normalise(resize(images, q)[..., offset : offset + crop_size, offset : offset + crop_size]), offset


@torch.no_grad()
def localise(net, classifier, images, boxes, labels, scaler, *, mode, q, crop_size, batch_size=250) -> dict:
    """Table 8's protocol: each image (uint8, ``side`` px, with its true box) rescaled to ``q``, its central crop
    given to the localisation ``net``; the box of the ground-truth class, mapped back to the image, is right at
    IoU > 0.5. Also ILSVRC's error with the ``classifier``'s top-1 and top-5 classes (§4: top-5 is the
    challenge's): wrong unless a guessed class is the true one and its box is right. Errors in %."""
    B.check_boxes(boxes, images.shape[-1], "true box")
    net.eval(), classifier.eval()
    ious, ranks = [], []
    for start in range(0, len(images), batch_size):
        part = slice(start, start + batch_size)
        x, offset = centre_crops(images[part], q, crop_size)
        predicted = scaler.decode(select(net(x), labels[part], mode))
        in_image = B.rescale(predicted + offset, q, images.shape[-1])  # crop to image coordinates
        ious.append(B.iou(in_image, boxes[part]))
        scores = classifier(x)
        ranks.append((scores > scores.gather(1, labels[part, None])).sum(1))  # classes ranked above the true one
    iou, rank = torch.cat(ious), torch.cat(ranks)
    right = iou > B.IOU_THRESHOLD

    def error(hit: torch.Tensor) -> float:
        return round(100 * (1 - hit.float().mean().item()), 2)

    return {
        "images": len(images),
        "gt_class_error": error(right),
        "top1_error": error(right & (rank < 1)),
        "top5_error": error(right & (rank < 5)),
        "mean_iou": round(iou.mean().item(), 4),
    }
