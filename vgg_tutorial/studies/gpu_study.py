"""Tables 3, 4 and 5 at a real size, on a GPU: full-width nets, 112 px crops, the cluttered task, several seeds.

Chapter 8's miniature (:mod:`vgg_tutorial.studies.experiments`) trains 1/8-width nets on 32 px crops on a CPU, and at
that size none of the paper's findings appear. This module runs the same cells
(:data:`vgg_tutorial.studies.experiments.CELLS`: A, A-LRN, B, C, D, E at a fixed and a jittered training scale, E from
the paper's N(0, 0.01²) start and from A, and a linear classifier) at the size a GPU lease allows (:data:`FULL`): the
paper's widths (64 to 512 channels, FC-4096 with dropout 0.5), crops of 112 px from images rescaled to S = 128 (the
paper's 256 : 224) or S ∈ [128, 256] (its [256; 512]), on the harder task of :mod:`vgg_tutorial.data.cluttered`. What
differs from §3.1 is said where it is set: fewer images and epochs, He et al.'s start for the plain nets (as in the
miniature), a cosine schedule.

Tables 4 and 5 (:func:`test_net`) then test the D nets of each seed with every method of
:mod:`vgg_tutorial.testing.evaluate`, at one test scale and at three, on the validation images: at full width the
weights are too large to keep (0.5 GB each), so they are tested in the lease that trained them. Table 8
(:meth:`Study.localisation`) fine-tunes them for localisation, and Tables 6 and 7 (:meth:`Study.ensembles`) combine
the D nets of all seeds, on the validation images and on held-out test images.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from vgg_tutorial.data.boxes import rescale
from vgg_tutorial.data.cluttered import cluttered_boxes, render_cluttered
from vgg_tutorial.data.loaders import DeviceLoader
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES
from vgg_tutorial.data.transforms import IMAGENET_STD, normalise, resize
from vgg_tutorial.paper.configs import RECIPE
from vgg_tutorial.paper.models import init_from_a, vgg
from vgg_tutorial.studies.ensemble_study import METHODS as ENSEMBLE_METHODS
from vgg_tutorial.studies.ensemble_study import TEST_DATA_SEED, score_entry
from vgg_tutorial.studies.ensemble_study import entries as ensemble_entries
from vgg_tutorial.studies.experiments import CELLS
from vgg_tutorial.studies.failures import he_init
from vgg_tutorial.studies.localisation_study import CELLS as LOCALISATION_CELLS
from vgg_tutorial.studies.localisation_study import START as LOCALISATION_START
from vgg_tutorial.studies.testing_study import fold_std
from vgg_tutorial.testing.ensembles import Member, member_posteriors
from vgg_tutorial.testing.evaluate import METHODS, evaluate, protocols
from vgg_tutorial.testing.views import evaluation_scales
from vgg_tutorial.training.engine import Engine, make_optimizer
from vgg_tutorial.training.localisation import BoxScaler, fine_tune, localise, localiser
from vgg_tutorial.training.runs import atomic_save
from vgg_tutorial.training.train import fit, make_scheduler


@dataclass(frozen=True)
class Setting:
    """The size of the study: crop and training scales (px), images per class, epochs, batch, widths, rate."""

    crop: int = 112
    scale: int = 128
    scale_max: int = 256
    train_per_class: int = 1000
    val_per_class: int = 250
    epochs: int = 12
    batch_size: int = 128
    width: float = 1.0
    fc_width: int = 4096
    dropout: float = RECIPE.dropout
    lr: float = 0.01


#: The GPU study, and a CPU one that runs every step end to end in seconds (``--quick``).
FULL = Setting()
QUICK = Setting(crop=32, scale=37, scale_max=74, train_per_class=4, val_per_class=2, epochs=1, batch_size=8)
QUICK = replace(QUICK, width=1 / 16, fc_width=16, dropout=0.0)
#: The cells Tables 4 and 5 test again (as chapter 9's miniature: D at a fixed and a jittered scale).
TESTED = ("D", "D, jittered")


def cell_spec(cell: str) -> tuple[str, str, str]:
    """Configuration, training scale kind and start of ``cell`` (a name of
    :data:`~vgg_tutorial.studies.experiments.CELLS`)."""
    specs = {name: tuple(rest) for name, *rest in CELLS}
    if cell not in specs:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(specs)}")
    return specs[cell]


def training_scales(kind: str, setting: Setting) -> tuple[int, int]:
    """(S_min, S_max) of ``"fixed"`` (S, S) or ``"jittered"`` (S, S_max) training."""
    if kind not in ("fixed", "jittered"):
        raise ValueError(f"unknown training scale {kind!r}; expected 'fixed' or 'jittered'")
    return (setting.scale, setting.scale) if kind == "fixed" else (setting.scale, setting.scale_max)


def study_images(setting: Setting, device: torch.device, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The cluttered train and validation splits at S_max px, rendered on ``device``."""
    counts = {"train": setting.train_per_class, "val": setting.val_per_class}
    return {
        split: render_cluttered(split, image_size=setting.scale_max, per_class=n, seed=seed, device=device)
        for split, n in counts.items()
    }


def validation_batches(images: dict, kind: str, setting: Setting, batch_size: int = 250) -> list:
    """The validation split rescaled to Q (§4.1: S, or (S_min + S_max) / 2) and centre-cropped, normalised as in
    training, in batches on the images' device."""
    q, _ = evaluation_scales(setting.crop, training_scales(kind, setting))
    val, labels = images["val"]
    offset = (q - setting.crop) // 2
    batches = []
    for start in range(0, len(val), batch_size):
        window = slice(offset, offset + setting.crop)
        part = resize(val[start : start + batch_size], q)[..., window, window]
        batches.append((normalise(part), labels[start : start + batch_size]))
    return batches


def build(config: str, setting: Setting, start: str = "he") -> nn.Module:
    """A plain VGG of ``config`` at the setting's widths, He-initialised (``"he"``) or N(0, 0.01²) (``"paper"``,
    also the start of ``"from-A"`` before A's layers are copied in); or a linear classifier on the pixels."""
    classes = len(SYNTHETIC_CLASSES)
    if config == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * setting.crop**2, classes))
    model = vgg(
        config,
        num_classes=classes,
        width=setting.width,
        fc_width=setting.fc_width,
        pooled_size=1,
        dropout=setting.dropout,
        init="paper",
    )
    return he_init(model) if start == "he" else model


def train_cell(
    cell: str, images: dict, setting: Setting, seed: int, device: torch.device, a: nn.Module | None = None
) -> tuple[nn.Module, list[dict]]:
    """Train ``cell`` from ``seed`` (``a``: the seed's trained A, for ``"from-A"``); return the net and its history
    (one row per epoch, the last with the seconds it took)."""
    config, kind, start = cell_spec(cell)
    engine = Engine(device, precision="auto", channels_last=device.type == "cuda")
    torch.manual_seed(seed)  # before building: the initial weights depend on the seed alone
    model = build(config, setting, start)
    if start == "from-A":
        if a is None:
            raise ValueError(f"cell {cell!r} starts from the seed's trained A: pass it as a")
        init_from_a(model, a)
    model = engine.prepare(model)
    low, high = training_scales(kind, setting)
    train_images, train_labels = images["train"]
    if low == high:  # fixed S: rescale once, then crop and flip as stored
        train_images = resize(train_images, low)
    train = DeviceLoader(
        train_images,
        train_labels,
        batch_size=setting.batch_size,
        crop_size=setting.crop,
        device=device,
        scale=(low, high) if low != high else None,
        std=IMAGENET_STD,
        dtype=engine.dtype or torch.float32,
        memory_format=engine.memory_format,
        seed=seed,
    )
    optimizer = make_optimizer(model, setting.lr, RECIPE.momentum, RECIPE.weight_decay, fused=device.type == "cuda")
    scheduler, interval = make_scheduler("cosine", optimizer, epochs=setting.epochs, steps_per_epoch=len(train))
    began = time.perf_counter()
    history = fit(
        model,
        train,
        validation_batches(images, kind, setting),
        epochs=setting.epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        interval=interval,
        engine=engine,
        seed=seed,
        verbose=False,
    )
    keys = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "seconds")
    rows = [{key: row[key] for key in keys} for row in history]
    rows[-1]["total_seconds"] = round(time.perf_counter() - began, 1)
    return model, rows


def test_net(
    model: nn.Module, images: dict, cell: str, setting: Setting, device: torch.device, limit: int | None = None
) -> dict:
    """Tables 4 and 5 for one trained net: every test method at the single test scale and at three (§4.2, §4.3).

    The net trained on pixels divided by the std; :func:`~vgg_tutorial.studies.testing_study.fold_std` makes it take the
    views' mean-subtracted pixels (the paper's preprocessing) exactly. ``limit``: the first that many validation
    images only (the labels cycle through the classes, so any prefix is balanced)."""
    single, multi = evaluation_scales(setting.crop, training_scales(cell_spec(cell)[1], setting))
    val, labels = images["val"]
    dataset = list(zip(val[:limit].cpu(), labels[:limit].tolist()))
    began = time.perf_counter()
    results = evaluate(
        fold_std(model).float().eval(),
        dataset,
        crop_size=setting.crop,
        plan=protocols(METHODS, single, multi),
        batch_size=50,
        device=device,
    )
    return {
        "test_scale": single,
        "multi_scales": list(multi),
        "images": len(dataset),
        "evaluation_seconds": round(time.perf_counter() - began, 1),
        "results": results,
    }


def weights_path(folder: str | Path, cell: str, seed: int) -> Path:
    """Where a net that later runs need (A for "E from A", the D nets for Tables 4-5) is kept during the lease."""
    return Path(folder) / f"{cell.replace(', ', '-')}-seed{seed}.pt"


#: Seconds per cell of Table 3's pilot on one H200 (``book/results/gpu/table3-pilot.json``: 7 epochs of 10,000
#: images at 112 px, batch 128, with validation), the base of the estimates.
H200_TABLE3 = {
    "linear": 2,
    "A": 7,
    "A-LRN": 14,
    "B": 8,
    "C": 8,
    "C, jittered": 14,
    "D": 9,
    "D, jittered": 15,
    "E": 10,
    "E, jittered": 15,
    "E, N(0, 0.01²)": 10,
    "E from A": 10,
}
H200_TABLE3_IMAGES = 7 * 10_000
#: Validation images Tables 4 and 5 test each D net on (the first of the split; its labels cycle through the
#: classes), and the seconds that takes on an H200 (an estimate: not measured yet).
TESTED_IMAGES, TESTED_S = 1000, 40
#: Seconds to test one D net with Table 6's three methods on those images (an estimate, as TESTED_S).
ENSEMBLE_S = 20
#: Epochs of localisation fine-tuning (Table 8 at a real size), half the classification study's.
LOCALISATION_EPOCHS = 6


class Study:
    """What the runs of parts 3 and 4 of :mod:`vgg_tutorial.studies.gpu_results` share in one process: the rendered
    images, and nets kept for later runs (each seed's A for "E from A", its D nets for Tables 4 and 5) in the work
    folder."""

    def __init__(self, quick: bool, device: torch.device | str, work: Path):
        self.quick = quick
        self.setting = QUICK if quick else FULL
        self.device = torch.device(device)
        self.folder = work / "table3"
        self._images = None

    def images(self) -> dict:
        if self._images is None:
            self._images = study_images(self.setting, self.device)
        return self._images

    def net(self, cell: str, seed: int, keep: bool = False):
        """Train ``cell`` (or load it, if an earlier run of this lease kept it); return the net and its history."""
        path = weights_path(self.folder, cell, seed)
        if path.exists():
            saved = torch.load(path, map_location=self.device, weights_only=True)
            config, _, start = cell_spec(cell)
            net = build(config, self.setting, start).to(self.device)
            net.load_state_dict(saved["model"])
            return net, saved["history"]
        a = self.net("A", seed, keep=True)[0] if cell_spec(cell)[2] == "from-A" else None
        net, history = train_cell(cell, self.images(), self.setting, seed, self.device, a=a)
        if keep:
            atomic_save({"model": net.state_dict(), "history": history}, path)
        return net, history

    def table3(self, cell: str, seed: int) -> dict:
        net, history = self.net(cell, seed, keep=cell == "A" or cell in TESTED)
        return {"history": history}

    def tables45(self, cell: str, seed: int) -> dict:
        net, history = self.net(cell, seed, keep=True)
        limit = None if self.quick else TESTED_IMAGES
        tested = test_net(net, self.images(), cell, self.setting, self.device, limit)
        return {"training": history[-1], **tested}

    def ensembles(self, seeds: int) -> dict:
        """Tables 6 and 7 at a real size: the D nets of every seed (kept by part 4's runs, or trained again) tested
        on the validation images and on held-out test images (another data seed), alone and combined, as
        :mod:`vgg_tutorial.studies.ensemble_study` combines chapter 9's nets; the results in its format."""
        limit = None if self.quick else TESTED_IMAGES
        size, per_class = self.setting.scale_max, self.setting.val_per_class
        held_out = render_cluttered(
            "val", image_size=size, per_class=per_class, seed=TEST_DATA_SEED, device=self.device
        )
        splits = {"val": self.images()["val"], "test": held_out}
        datasets = {split: list(zip(x[:limit].cpu(), y[:limit].tolist())) for split, (x, y) in splits.items()}

        @functools.cache
        def posteriors(cell: str, seed: int, split: str) -> dict:
            single, multi = evaluation_scales(self.setting.crop, training_scales(cell_spec(cell)[1], self.setting))
            net = fold_std(self.net(cell, seed, keep=True)[0]).float().eval()
            member = Member(f"{cell} seed {seed}", net, self.setting.crop, single, multi)
            return member_posteriors(member, datasets[split], ENSEMBLE_METHODS, device=self.device)

        todo = ensemble_entries(seeds)
        return {"runs": {name: {str(seed): score_entry(parts, posteriors)} for name, seed, parts in todo}}

    @functools.cached_property
    def boxed(self) -> tuple:
        """What every :meth:`localisation` run of a lease shares: the training images at S with their boxes, the
        validation images' boxes (the class object's, :func:`~vgg_tutorial.data.cluttered.cluttered_boxes`), and the
        scaler of the box targets, fitted in a central crop's coordinates."""
        s = self.setting
        train_boxes, val_boxes = (
            cluttered_boxes(split, image_size=s.scale_max, per_class=n).to(self.device)
            for split, n in (("train", s.train_per_class), ("val", s.val_per_class))
        )
        train, train_boxes = resize(self.images()["train"][0], s.scale), rescale(train_boxes, s.scale_max, s.scale)
        scaler = BoxScaler.fit(train_boxes.cpu() - (s.scale - s.crop) / 2)
        return train, train_boxes, val_boxes, scaler

    def localisation(self, cell: str, seed: int) -> dict:
        """Table 8 at a real size, one cell of :data:`vgg_tutorial.studies.localisation_study.CELLS`: the seed's D net
        (kept by part 4's runs, or trained again) fine-tuned at S for the box of the class object
        (:func:`~vgg_tutorial.data.cluttered.cluttered_boxes`) at a tenth of its learning rate (A.1), then scored by
        Table 8's protocol on the validation images; the results as :mod:`vgg_tutorial.studies.localisation_study` keeps
        them."""
        s, limit = self.setting, None if self.quick else TESTED_IMAGES
        (_, train_labels), (val, val_labels) = self.images()["train"], self.images()["val"]
        train, train_boxes, val_boxes, scaler = self.boxed
        mode, tuning = {name: (mode, tuning) for name, mode, tuning in LOCALISATION_CELLS}[cell]
        classifier = self.net(LOCALISATION_START, seed, keep=True)[0].float()
        torch.manual_seed(seed)  # the new last layer's weights depend on the seed alone
        net = localiser(classifier, mode, len(SYNTHETIC_CLASSES))
        began = time.perf_counter()
        epochs, lr = (1 if self.quick else LOCALISATION_EPOCHS), s.lr / 10
        kw = {"mode": mode, "batch_size": s.batch_size, "crop_size": s.crop, "seed": seed}
        losses = fine_tune(net, train, train_boxes, train_labels, scaler, tuning=tuning, epochs=epochs, lr=lr, **kw)
        seconds = round(time.perf_counter() - began, 1)
        val, val_boxes, val_labels = val[:limit], val_boxes[:limit], val_labels[:limit]
        kw = {"mode": mode, "q": s.scale, "crop_size": s.crop}  # Q = S (§4.1)
        scores = localise(net, classifier, val, val_boxes, val_labels, scaler, **kw)
        return {"losses": [round(v, 4) for v in losses], "seconds": seconds, "lr": lr, "epochs": epochs, **scores}

    def localisation_estimate(self, tuning: str) -> float:
        """Seconds of one :meth:`localisation` run on an H200: its epochs at D's training rate (all layers; the
        FC layers alone, a third of it), and the test."""
        if self.quick:
            return 2
        s = self.setting
        train = H200_TABLE3["D"] * (10 * s.train_per_class * LOCALISATION_EPOCHS) / H200_TABLE3_IMAGES
        return (train if tuning == "all" else train / 3) + TESTED_S / 4

    def retraining(self, cell: str, seed: int, quick: bool) -> float:
        """Seconds to train ``cell`` again if no earlier run of this lease kept it."""
        return 0.0 if weights_path(self.folder, cell, seed).exists() else self.estimate(cell, quick)

    def estimate(self, cell: str, quick: bool) -> float:
        """Seconds to train ``cell`` on an H200: what the pilot measured (:data:`H200_TABLE3`), per image-epoch."""
        if quick:
            return 2
        s = self.setting
        return H200_TABLE3[cell] * (10 * s.train_per_class * s.epochs) / H200_TABLE3_IMAGES
