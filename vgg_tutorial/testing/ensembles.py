"""Combining nets (§4.4, Tables 6 and 7): the soft-max posteriors of several nets averaged, image by image.

§4.4 of the paper: "we combine the outputs of several models by averaging their soft-max class posteriors. This
improves the performance due to complementarity of the models". The ILSVRC-2014 entry combined seven nets (Table 6);
two nets, D and E, did better after the deadline (Table 7: 6.8 % top-5 test error).

An ensemble here is a list of *members*: a trained net with the crop it was trained on and the test scales that
go with its training scale (§4.1-4.2: a net trained at S is tested at Q = S, or at {S − 32, S, S + 32}). Every
member is tested by :func:`vgg_tutorial.testing.evaluate.evaluate` at its own scales, its posteriors kept; the
ensemble's posterior for a test method is the mean of its members' posteriors for that method, so an ensemble of one net
is that net. Members line up by method and by *one scale* or *several scales*, not by the scale's value: a net trained
at S = 256 and one trained at S ∈ [256, 512] are each tested at their own Q, as in the paper's 7-net entry.

Any checkpoints written by ``python -m vgg_tutorial.train`` combine:
``python -m vgg_tutorial.ensembles run1/checkpoint.pt run2/checkpoint.pt --help``. They must have the same classes
and have been validated on the same images (the labels are checked image by image).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from vgg_tutorial.testing.evaluate import (
    METHODS,
    check_same_data,
    evaluate,
    load_model,
    open_split,
    protocols,
    spread_subset,
)
from vgg_tutorial.testing.views import evaluation_scales, training_scales
from vgg_tutorial.training.commands import device_name, report_errors, whole
from vgg_tutorial.training.engine import pick_device, topk_correct
from vgg_tutorial.training.runs import RunError, atomic_write_text, check_writable, load_checkpoint, machine


@dataclass
class Member:
    """One net of an ensemble: its name, the net, its training crop, its single test scale and its multi-scale set."""

    name: str
    model: nn.Module
    crop_size: int
    scale: int
    multi_scales: tuple[int, ...]


def kind(scales: list[int] | tuple[int, ...]) -> str:
    """``"one scale"`` or ``"several scales"``: how members tested at different Q line up."""
    return "one scale" if len(scales) == 1 else "several scales"


def member_posteriors(
    member: Member, dataset: Dataset, methods=METHODS, *, batch_size: int = 50, device: str = "cpu"
) -> dict[str, dict]:
    """``member`` tested with every method of ``methods`` at its single scale and at its scales (§4.2), as
    :func:`~vgg_tutorial.testing.evaluate.evaluate` tests it; rows keyed ``"dense+flip, several scales"``, each with the
    error rates, the ``posterior`` (N × classes) and the ``targets``."""
    plan = protocols(methods, member.scale, member.multi_scales)
    rows = evaluate(
        member.model,
        dataset,
        crop_size=member.crop_size,
        plan=plan,
        batch_size=batch_size,
        device=device,
        keep_posteriors=True,
    )
    return {f"{row['method']}, {kind(row['scales'])}": row for row in rows.values()}


def errors(posterior: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 error (%) of the posteriors ``posterior`` (N × classes) against ``targets``."""
    top1, top5 = topk_correct(posterior, targets, (1, min(5, posterior.shape[1])))
    return {"top1_error": 100 * (1 - top1 / len(targets)), "top5_error": 100 * (1 - top5 / len(targets))}


def combine(members: list[dict[str, dict]]) -> dict[str, dict[str, float]]:
    """The ensemble of ``members`` (each what :func:`member_posteriors` returns): for every protocol they all have,
    the mean of their posteriors, scored. Raises ``ValueError`` if the members saw other images (labels differ)
    or have other classes (posteriors of another width)."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    keys = [key for key in members[0] if all(key in m for m in members)]
    if not keys:
        raise ValueError("the members share no test protocol: test them with the same methods")
    targets = members[0][keys[0]]["targets"]
    combined = {}
    for key in keys:
        rows = [m[key] for m in members]
        widths = {row["posterior"].shape for row in rows}
        if len(widths) > 1:
            raise ValueError(f"the members' posteriors differ in shape ({sorted(widths)}): other classes or images")
        if any(not torch.equal(row["targets"], targets) for row in rows):
            raise ValueError("the members were tested on different images (their labels differ image by image)")
        combined[key] = errors(torch.stack([row["posterior"] for row in rows]).mean(dim=0), targets)
    return combined


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints written by train
# ---------------------------------------------------------------------------------------------------------------


def checkpoint_member(path: str | Path) -> tuple[Member, dict, dict]:
    """The member of a checkpoint written by ``python -m vgg_tutorial.train``: the net, its crop and its test
    scales (§4.1-4.2, from its training scale), with the checkpoint's state and config."""
    state = load_checkpoint(path)
    model, config = load_model(state)
    crop = config["image_size"]
    scale, multi = evaluation_scales(crop, training_scales(config))
    name = f"{config.get('config', '?')} S={'-'.join(map(str, sorted(set(training_scales(config)))))} ({path})"
    return Member(name, model, crop, scale, multi), state, config


def check_members(paths: list[str | Path], members: list[Member], configs: list[dict]) -> None:
    """Raise ``ValueError`` naming the checkpoint unless every member has the first one's classes and dataset."""
    outputs = [[m for m in member.model.modules() if isinstance(m, nn.Linear)][-1].out_features for member in members]
    for path, config, classes in zip(paths, configs, outputs):
        if classes != outputs[0]:
            raise ValueError(
                f"{path} has {classes} classes but {paths[0]} has {outputs[0]}: an ensemble averages posteriors over "
                f"the same classes; combine nets trained on the same dataset"
            )
        if config.get("dataset", "synthetic") != configs[0].get("dataset", "synthetic"):
            raise ValueError(
                f"{path} was trained on {config.get('dataset', 'synthetic')!r}, {paths[0]} on "
                f"{configs[0].get('dataset', 'synthetic')!r}: combine nets trained on the same dataset"
            )


def evaluate_ensemble(
    checkpoints: list[str | Path],
    split: str = "val",
    *,
    methods=METHODS,
    data: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> dict:
    """Every checkpoint tested alone and all of them combined (§4.4), each on its own copy of ``split`` (the same
    images, at the size its training used). Returns each member's errors and the ensemble's, by protocol."""
    if len(checkpoints) < 2:
        raise ValueError(f"an ensemble combines at least two checkpoints, got {len(checkpoints)}")
    loaded = [checkpoint_member(path) for path in checkpoints]
    members, configs = [m for m, _, _ in loaded], [c for _, _, c in loaded]
    check_members(checkpoints, members, configs)
    tested = []
    for member, state, config in loaded:
        check_same_data(state, config, data)
        dataset = spread_subset(open_split(config, split, data), limit)
        tested.append(member_posteriors(member, dataset, methods, batch_size=batch_size, device=pick_device(device)))
    strip = ("posterior", "targets")
    return {
        "checkpoints": [str(path) for path in checkpoints],
        "split": split,
        "members": [
            {"name": m.name, "results": {k: {f: v for f, v in row.items() if f not in strip} for k, row in t.items()}}
            for m, t in zip(members, tested)
        ],
        "ensemble": combine(tested),
    }


def format_results(report: dict) -> str:
    """Top-1 / top-5 error of each member and of the ensemble, one line per protocol."""
    lines = [f"{'protocol':<34} {'best member':>16} {'ensemble':>16}"]
    for key, row in report["ensemble"].items():
        best = min(m["results"][key]["top1_error"] for m in report["members"])
        lines.append(f"{key:<34} {best:>15.2f}% {row['top1_error']:>15.2f}%  (top-1 error)")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m vgg_tutorial.ensembles``."""
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.ensembles",
        description="Combine trained checkpoints by averaging their soft-max posteriors (§4.4, Tables 6-7): each "
        "tested at its own scales with every method of python -m vgg_tutorial.evaluate, then all of them together.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="two or more checkpoint.pt files")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD", help="test methods"
    )
    p.add_argument("--data", default=None, help="dataset folder (default: each run's)")
    p.add_argument("--limit", type=whole(1), default=None, help="test this many images, spread over the split")
    p.add_argument("--batch-size", type=whole(1), default=32, help="images per batch")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--output", required=True, help="results JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vgg_tutorial.ensembles``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)

    def run() -> None:
        missing = [path for path in args.checkpoints if not Path(path).is_file()]
        if missing:
            raise RunError(f"no checkpoint at {', '.join(missing)}")
        output = check_writable(args.output)
        options = {key: getattr(args, key) for key in ("split", "methods", "data", "limit", "batch_size", "device")}
        try:
            report = evaluate_ensemble(args.checkpoints, **options)
        except ValueError as error:  # checkpoints that do not combine, a limit or scale that does not fit
            raise RunError(str(error)) from error
        report |= {
            "command": " ".join(["python -m vgg_tutorial.ensembles", *argv]),
            "machine": machine(pick_device(args.device)),
        }
        atomic_write_text(json.dumps(report, indent=2, default=str) + "\n", output)
        print(format_results(report))
        print(f"results in {output}")

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())
