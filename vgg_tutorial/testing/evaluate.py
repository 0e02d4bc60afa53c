"""Testing like the paper (§3.2, §4.1-4.3, Tables 3-5): centre crop, dense, flips, multi-crop and several scales.

Half of the paper's results come from how it tests. For a trained checkpoint and a dataset split this module
measures the top-1 and top-5 error of

- ``center``: one centre crop at the test scale Q (what validation during training does);
- ``dense``: the fully convolutional net (§3.2) on the whole image, its class score map spatially averaged;
- ``dense+flip``: the same on the image and its horizontal flip;
- ``multicrop``: 50 crops per scale (§3.2, §4.3), a 5 × 5 grid and its flips (:mod:`vgg_tutorial.testing.views`);
- ``dense+multicrop``: the two methods together (Table 5's best row);

each at a single scale Q or averaged over several (§4.2, Table 4). As in the paper, what is averaged over views,
flips, scales and methods is the **soft-max posterior**, never the logits. Each method also gets its cost: forward
FLOPs per image (counted as :func:`vgg_tutorial.paper.accounting.forward_flops` counts them, on the actual input shapes)
and the seconds it took, measured here.

Command line: ``python -m vgg_tutorial.evaluate CHECKPOINT --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.data import datasets
from vgg_tutorial.data.synthetic import IMAGENETTE_PER_CLASS, SPLITS, SyntheticShapes
from vgg_tutorial.paper.models import VGG
from vgg_tutorial.testing.views import PASSES, Views, check_test_scale, evaluation_scales, training_scales
from vgg_tutorial.training import runs
from vgg_tutorial.training.commands import device_name, report_errors, whole
from vgg_tutorial.training.engine import pick_device, progress, topk_correct
from vgg_tutorial.training.train import TrainConfig, build_model

#: The test methods, from the cheapest to the paper's best (Table 5).
METHODS = ("center", "dense", "dense+flip", "multicrop", "dense+multicrop")

#: The views (:data:`~vgg_tutorial.testing.views.PASSES`) each method needs at every scale.
VIEWS = {
    "center": ("center",),
    "dense": ("dense",),
    "dense+flip": ("dense", "dense-flipped"),
    "multicrop": ("crops",),
    "dense+multicrop": ("dense", "dense-flipped", "crops"),
}


@dataclass(frozen=True)
class Protocol:
    """One row of the results: a method of :data:`METHODS` at one test scale or averaged over several."""

    method: str
    scales: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.method} Q={','.join(str(q) for q in self.scales)}"


def protocols(methods=METHODS, scale: int | None = None, multi_scales: tuple[int, ...] | None = None) -> list[Protocol]:
    """Every method in ``methods`` at the single test scale ``scale`` and over ``multi_scales`` (either may be None).

    The centre crop stays single-scale: the paper's multi-scale evaluation (§4.2) is dense or multi-crop.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown test method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(METHODS)}")
    plan = [Protocol(m, (scale,)) for m in methods] if scale is not None else []
    if multi_scales:
        plan += [Protocol(m, tuple(multi_scales)) for m in methods if m != "center"]
    return plan


# ---------------------------------------------------------------------------------------------------------------
# Evaluating a dataset
# ---------------------------------------------------------------------------------------------------------------


def collate_images(batch: list[tuple]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A batch as a list of uint8 image tensors (their sizes may differ) and a tensor of labels."""
    images = [F.to_image(image).as_subclass(torch.Tensor) for image, _ in batch]
    return images, torch.tensor([label for _, label in batch])


def dataset_classes(dataset: Dataset) -> list[str] | None:
    """The class names of ``dataset`` (or of the dataset a ``Subset`` draws from), if it has them."""
    while not hasattr(dataset, "classes") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return getattr(dataset, "classes", None)


def check_classes(model: VGG, dataset: Dataset) -> None:
    """Raise a ``ValueError`` unless ``model`` has one output per class of ``dataset``."""
    outputs = [m for m in model.classifier if isinstance(m, nn.Linear)][-1].out_features
    classes = dataset_classes(dataset)
    if classes is not None and len(classes) != outputs:
        raise ValueError(
            f"the model has {outputs} outputs but the dataset has {len(classes)} classes ({', '.join(classes)}); "
            f"evaluate a checkpoint on the dataset it was trained for"
        )


def combine(method: str, probs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The posterior of ``method`` at one scale from the posteriors of its views (:data:`VIEWS`)."""
    with_flip = (probs["dense"] + probs["dense-flipped"]) / 2 if "dense-flipped" in probs else None
    if method == "dense+flip":
        return with_flip
    if method == "dense+multicrop":
        return (with_flip + probs["crops"]) / 2  # the two methods' posteriors averaged (§4.3)
    return probs[VIEWS[method][0]]


def evaluate(
    model: VGG,
    dataset: Dataset,
    *,
    crop_size: int,
    plan: list[Protocol],
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    workers: int = 0,
    keep_posteriors: bool = False,
) -> dict[str, dict]:
    """Top-1 / top-5 error (%) and cost of ``model`` on ``dataset`` for every protocol of ``plan``, by label (with
    the soft-max ``posterior`` N × classes and the ``targets`` when ``keep_posteriors``, for ensembles: §4.4).

    ``dataset`` yields ``(image, label)`` with the image untransformed (PIL or uint8 tensor, any size of at least
    ``crop_size``); ``crop_size`` is the training crop. Each view is computed once per scale, however many
    methods share it; a method's ``seconds`` and ``forward_flops_per_image`` add those of the views it needs.
    A view's seconds are the wall-clock time of rescaling, cropping, the forward passes and the soft-max (not of
    reading the images, which every method shares); its FLOPs are :func:`~vgg_tutorial.testing.views.forward_flops` of
    each input shape it used.
    """
    check_classes(model, dataset)
    for protocol in plan:
        for scale in protocol.scales:
            check_test_scale(scale, crop_size)
    needed = sorted({(view, q) for p in plan for q in p.scales for view in VIEWS[p.method]})
    views = Views(model, crop_size, device, chunk=batch_size)
    probs = {key: [] for key in needed}
    seconds = dict.fromkeys(needed, 0.0)
    flops = dict.fromkeys(needed, 0)
    targets = []
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_images)
    for images, labels in progress(loader, desc="evaluate", total=len(loader)):
        targets.append(labels)
        for key in needed:
            began = time.perf_counter()
            batch_probs, batch_flops = views.posteriors(*key, images)
            views.synchronize()
            seconds[key] += time.perf_counter() - began
            probs[key].append(batch_probs)
            flops[key] += batch_flops
    targets = torch.cat(targets)
    probs = {key: torch.cat(value) for key, value in probs.items()}
    if not all(value.isfinite().all() for value in probs.values()):  # an error rate of NaN scores would be a lie
        raise ValueError("the model's outputs are not finite (NaN or infinite): there is no error rate to measure")
    return {p.label: _result(p, probs, seconds, flops, targets, keep_posteriors) for p in plan}


def _result(protocol: Protocol, probs: dict, seconds: dict, flops: dict, targets: torch.Tensor, keep: bool) -> dict:
    """The row of ``protocol``: its posteriors averaged over scales, scored, and the cost of its views."""
    keys = [(view, q) for q in protocol.scales for view in VIEWS[protocol.method]]
    per_scale = [combine(protocol.method, {v: probs[(v, q)] for v in VIEWS[protocol.method]}) for q in protocol.scales]
    posterior = torch.stack(per_scale).mean(dim=0)
    n = len(targets)
    top1, top5 = topk_correct(posterior, targets, (1, 5))
    return {
        "method": protocol.method,
        "scales": list(protocol.scales),
        "top1_error": 100 * (1 - top1 / n),
        "top5_error": 100 * (1 - top5 / n),
        "forward_flops_per_image": sum(flops[key] for key in keys) / n,
        "passes_per_image": sum(PASSES[view] for view, _ in keys),
        "seconds": sum(seconds[key] for key in keys),
        "images": n,
    } | ({"posterior": posterior, "targets": targets} if keep else {})


# ---------------------------------------------------------------------------------------------------------------
# A checkpoint and its split
# ---------------------------------------------------------------------------------------------------------------


class CheckpointMismatchError(runs.CheckpointError, ValueError):
    """A checkpoint whose weights do not fit the model its own config describes, that records no config or one with
    settings unknown to this version, or whose weights are not finite (a diverged run)."""


def load_model(checkpoint: str | Path | dict) -> tuple[VGG, dict]:
    """The trained model of a checkpoint written by :func:`vgg_tutorial.training.train.train`, in eval mode, and its
    config.

    The model is rebuilt with :func:`~vgg_tutorial.training.train.build_model` from the ``TrainConfig`` the checkpoint
    records (``meta["config"]``), with as many classes as its last layer has outputs, then given the weights.
    """
    state = checkpoint if isinstance(checkpoint, dict) else runs.load_checkpoint(checkpoint)
    name = "the checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
    config = (state.get("meta") or {}).get("config")
    if not config or "model" not in state:
        raise CheckpointMismatchError(
            f"{name} holds no model weights with the run's config (meta['config']); evaluate reads the "
            f"checkpoint.pt that python -m vgg_tutorial.train writes"
        )
    weights = state["model"]
    last_bias = [key for key in weights if key.startswith("classifier.") and key.endswith(".bias")][-1:]
    if not last_bias:
        raise CheckpointMismatchError(f"{name} has no classifier weights (classifier.*.bias): not a VGG of this book")
    known = {field.name for field in fields(TrainConfig)}
    if unknown := sorted(set(config) - known):
        raise CheckpointMismatchError(
            f"{name} was made with settings unknown to this version of vgg_tutorial ({', '.join(unknown)}): "
            f"evaluate it with the version that trained it"
        )
    broken = [key for key, value in weights.items() if value.is_floating_point() and not value.isfinite().all()]
    if broken:
        raise CheckpointMismatchError(
            f"{name} holds weights that are not finite (NaN or infinite, first in {broken[0]}): the run diverged; "
            f"there is no error rate to measure"
        )
    # The model alone: where and how it trained (a GPU, fp16) does not matter here, and this machine may lack them.
    cfg = TrainConfig(**config | {"device": "cpu", "precision": "fp32", "sync_batch_norm": False})
    model = build_model(cfg, num_classes=len(weights[last_bias[0]]))
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        described = f"VGG-{cfg.config}, batch_norm={cfg.batch_norm}, width={cfg.width}, fc_width={cfg.fc_width}, "
        described += f"pooled_size={cfg.pooled_size}"
        details = "\n".join(str(error).splitlines()[:8])
        raise CheckpointMismatchError(
            f"the weights in {name} do not fit the model its config describes ({described}):\n{details}"
        ) from None
    return model.eval(), config


def open_split(config: dict, split: str = "val", root: str | Path | None = None) -> Dataset:
    """The ``split`` of the dataset a run's ``config`` trained on, images untransformed, at the size it used.

    Synthetic images are drawn at S_max, as :func:`~vgg_tutorial.data.datasets.make_dataloaders` draws them (the same
    images the run validated on); Imagenette comes in the smallest size at least S_max. ``root`` replaces the
    run's data folder.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    dataset = config.get("dataset", "synthetic")
    if dataset not in datasets.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(datasets.DATASETS)}")
    high = training_scales(config)[1]
    root = root if root is not None else config.get("data", "data")
    if dataset == "imagefolder":  # the classes are the folders of root/train, as in training
        wnids = datasets.folder_wnids(root)
        datasets.check_image_folder(Path(root), wnids)
        return datasets.CheckedImageFolder(Path(root) / split, wnids, wnids)
    if dataset == "imagenette":
        return datasets.imagenette(root, split, datasets.smallest_imagenette_size(high))
    per_class = {s: config.get(f"{s}_per_class") or IMAGENETTE_PER_CLASS[s] for s in SPLITS}
    seed = config.get("data_seed", 0)
    if config.get("in_memory"):
        return SyntheticShapes(split, image_size=high, per_class=per_class[split], seed=seed)
    counts = {f"{s}_per_class": n for s, n in per_class.items()}
    return datasets.synthetic(root, split, high, seed=seed, **counts)


def check_same_data(state: dict, config: dict, root: str | Path | None = None) -> None:
    """Raise :class:`CheckpointMismatchError` unless the data found now are those the run recorded (its
    ``meta["data"]``, see :func:`~vgg_tutorial.data.datasets.identify_data`): its error rates are about its own
    images."""
    recorded = (state.get("meta") or {}).get("data")
    if recorded is None:  # written before runs recorded their data
        return
    now = datasets.identify_data(
        config.get("dataset", "synthetic"),
        root if root is not None else config.get("data", "data"),
        image_size=config["image_size"],
        scale=training_scales(config),
        train_per_class=config.get("train_per_class"),
        val_per_class=config.get("val_per_class"),
        in_memory=config.get("in_memory", False),
    )
    if now != recorded:
        raise CheckpointMismatchError(
            f"the data found now differ from those the run trained and validated on ({recorded} then, {now} now)"
        )


def spread_subset(dataset: Dataset, limit: int | None) -> Dataset:
    """``limit`` images spread evenly over ``dataset`` (whose images may be sorted by class), or all of them."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise ValueError(f"limit must be at least 1 image, got {limit}")
    return Subset(dataset, torch.linspace(0, len(dataset) - 1, limit).round().long().unique().tolist())


def evaluate_checkpoint(
    checkpoint: str | Path | dict,
    split: str = "val",
    *,
    methods=METHODS,
    scale: int | None = None,
    multi_scales: tuple[int, ...] | None = None,
    single: bool = True,
    multi: bool = True,
    data: str | Path | None = None,
    dataset: Dataset | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    workers: int = 0,
) -> dict:
    """Evaluate a checkpoint on ``split`` with every method of ``methods``, at one test scale and over several.

    The training scale S (or S_min, S_max) comes from the checkpoint's config; the test scales follow the paper
    (:func:`~vgg_tutorial.testing.views.evaluation_scales`) unless ``scale`` (single) or ``multi_scales`` replace them;
    ``single=False`` or ``multi=False`` leave one kind out. ``dataset`` replaces the run's own split (images
    untransformed); ``limit`` keeps that many images, spread over the split. Returns the scales used and the
    results of :func:`evaluate`.
    """
    state = checkpoint if isinstance(checkpoint, dict) else runs.load_checkpoint(checkpoint)
    model, config = load_model(state)
    crop = config["image_size"]
    scales = training_scales(config)
    default_single, default_multi = evaluation_scales(crop, scales)
    single_scale = (scale or default_single) if single else None
    multi_set = tuple(multi_scales or default_multi) if multi else None
    plan = protocols(methods, single_scale, multi_set)
    if not plan:
        raise ValueError("nothing to evaluate: choose at least one method, and single and/or multi-scale testing")
    for protocol in plan:  # before any data work
        for q in protocol.scales:
            check_test_scale(q, crop)
    if dataset is None:
        dataset = open_split(config, split, data)
        check_same_data(state, config, data)
    images = spread_subset(dataset, limit)
    results = evaluate(
        model, images, crop_size=crop, plan=plan, batch_size=batch_size, device=pick_device(device), workers=workers
    )
    return {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, dict) else None,
        "split": split,
        "config": config,
        "training_scales": list(scales),
        "crop_size": crop,
        "test_scale": single_scale,
        "multi_scales": list(multi_set) if multi_set else None,
        "results": results,
    }


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def format_results(results: dict[str, dict]) -> str:
    """The results as a table: error rates, and what each method costs per image."""
    lines = [f"{'method':<28} {'top-1 err':>9} {'top-5 err':>9} {'passes':>6} {'MFLOPs/img':>11} {'ms/img':>8}"]
    for label, row in results.items():
        ms = 1000 * row["seconds"] / max(row["images"], 1)
        lines.append(
            f"{label:<28} {row['top1_error']:>8.2f}% {row['top5_error']:>8.2f}% {row['passes_per_image']:>6} "
            f"{row['forward_flops_per_image'] / 1e6:>11.1f} {ms:>8.2f}"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m vgg_tutorial.evaluate``."""
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.evaluate",
        description="Test a trained checkpoint as the paper does (§3.2, §4.2-4.3): centre crop, dense evaluation, "
        "flips, 50 crops per scale, several scales; top-1/top-5 error and the cost of each method.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint.pt written by python -m vgg_tutorial.train")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=METHODS,
        metavar="METHOD",
        help=f"test methods: {', '.join(METHODS)}",
    )
    p.add_argument("--scale", type=whole(1), default=None, help="single test scale Q (default: S, or (S_min+S_max)/2)")
    p.add_argument(
        "--multi-scales",
        type=whole(1),
        nargs="+",
        default=None,
        metavar="Q",
        help="test scales averaged (default: {S-32, S, S+32} or {S_min, (S_min+S_max)/2, S_max}, scaled)",
    )
    p.add_argument("--no-single", dest="single", action="store_false", help="skip single-scale testing")
    p.add_argument("--no-multi", dest="multi", action="store_false", help="skip multi-scale testing")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's)")
    p.add_argument("--limit", type=whole(1), default=None, help="evaluate this many images, spread over the split")
    p.add_argument("--batch-size", type=whole(1), default=32, help="images per batch, and network inputs per pass")
    p.add_argument("--workers", type=whole(0), default=0, help="data loader worker processes")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--output", default=None, help="results JSON (default: evaluation-SPLIT.json next to CHECKPOINT)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vgg_tutorial.evaluate``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    checkpoint = Path(args.checkpoint)
    output = Path(args.output) if args.output else checkpoint.parent / f"evaluation-{args.split}.json"
    options = {key: value for key, value in vars(args).items() if key not in ("checkpoint", "output")}

    def run() -> None:
        if not checkpoint.is_file():
            raise runs.RunError(f"no checkpoint at {checkpoint}")
        runs.check_writable(output)  # before the work, not after it
        try:
            report = evaluate_checkpoint(checkpoint, **options)
        except (ValueError, KeyError) as error:  # a test scale, method or limit that does not fit this checkpoint
            raise runs.RunError(error.args[0] if isinstance(error, KeyError) else str(error)) from error
        info = runs.machine(pick_device(args.device))
        report["command"] = " ".join(["python -m vgg_tutorial.evaluate", *argv])
        report["machine"] = info
        report["versions"] = {key: str(info[key]) for key in ("python", "torch", "torchvision")}
        runs.atomic_write_text(json.dumps(report, indent=2, default=str) + "\n", output)
        print(format_results(report["results"]))
        print(f"results in {output}")

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
