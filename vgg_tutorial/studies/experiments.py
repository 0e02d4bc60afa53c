"""The paper's Table 3 in miniature: configurations A to E, fixed and jittered training scale, several seeds (§4.1).

Table 3 of the paper compares its six configurations at a single test scale: depth helps up to 16–19 layers, LRN
(A-LRN) does not, 1×1 convolutions (C) are worse than 3×3 ones (D) at the same depth, and scale jittering at
training time (S ∈ [256, 512]) lowers the error further. The paper ranks none of these gains; in its Table 3 depth
(A to D at S = 256: 29.6 to 27.0 % top-1) gains more than jittering (D: 27.0 to 25.6 %). This module runs the same
comparison at a size a two-core CPU can train in under an hour, and keeps every run's history in one JSON file:

- data: the synthetic shapes (:mod:`vgg_tutorial.data.synthetic`) made harder in the way scale jittering is about:
  objects drawn at sizes spread over a factor 3.5 (radius log-uniform in :data:`RADIUS`), at :data:`S_MAX` px;
- training (§3.1): crops of :data:`CROP` px from images rescaled to S = :data:`S_FIXED` (the paper's 256 : 224) or
  S ∈ [S_FIXED, 2·S_FIXED] drawn per image (the paper's [256, 512]), random flips and colour shift, by a
  :class:`~vgg_tutorial.data.loaders.DeviceLoader` on the CPU; SGD with momentum 0.9 and weight decay 5·10⁻⁴;
- testing (§4.1): the validation images rescaled to Q = S, or Q = (S_min + S_max) / 2 for jittered S, centre crop;
- what had to change: the nets are 1/8 as wide with a 128-wide classifier, no dropout, and start from He et al.'s
  initialisation (chapter 6: at this width N(0, 0.01²), the paper's start for A, leaves a deep plain net at chance;
  the cells "E, N(0, 0.01²)" and "E from A" measure the paper's start and its warm start from A here);
  learning rate :data:`LR` with a one-epoch warm-up and cosine decay over a few epochs instead of 74 epochs and
  three divisions by 10.

Beside the nets: chance (10 %) and a linear classifier on the pixels (same data, same SGD). The file is rewritten
after every run and runs it holds are skipped, so ``python -m vgg_tutorial.experiments table3 --out FILE`` continues
where it stopped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vgg_tutorial.data.loaders import DeviceLoader
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, render_split
from vgg_tutorial.data.transforms import IMAGENET_STD, normalise, resize
from vgg_tutorial.paper.configs import PAPER_TABLE3, PAPER_WEIGHT_LAYERS, RECIPE, Table3Row
from vgg_tutorial.paper.models import init_from_a, vgg
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies.common import open_study, run_missing
from vgg_tutorial.studies.failures import he_init, spread
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser, whole
from vgg_tutorial.training.engine import Engine, make_optimizer
from vgg_tutorial.training.runs import machine
from vgg_tutorial.training.train import fit, make_scheduler

#: The crop the nets see, the fixed training scale (32 · 256 / 224 ≈ 37) and the largest jittered one (2 · 37).
CROP, S_FIXED, S_MAX = 32, 37, 74
#: The object's radius (a share of half the image side), drawn log-uniformly: objects at many scales.
RADIUS = (0.2, 0.7)
#: The learning rate (the paper's 10⁻² is too high for the deepest plain nets here, see chapter 6).
LR = 0.005


@dataclass(frozen=True)
class Setting:
    """The size of a study: images per class, epochs, batch size, conv width multiplier, hidden FC width."""

    train_per_class: int = 200
    val_per_class: int = 50
    epochs: int = 10
    batch_size: int = 32
    width: float = 1 / 8
    fc_width: int = 128


#: The committed study, and the one the tests run end to end in seconds.
FULL, QUICK = Setting(), Setting(train_per_class=4, val_per_class=2, epochs=1, batch_size=8, width=1 / 16, fc_width=16)

#: Table 3's cells: (name, configuration or "linear", training scale, start). "jittered" is S ∈ [S_FIXED, S_MAX];
#: the start is He et al.'s init (``"he"``), the paper's N(0, 0.01²) (``"paper"``), or ``"from-A"``: N(0, 0.01²)
#: with the layers of the seed's trained A copied in (:func:`~vgg_tutorial.paper.models.init_from_a`, §3.1).
CELLS: tuple[tuple[str, str, str, str], ...] = (
    ("linear", "linear", "fixed", "he"),
    ("A", "A", "fixed", "he"),
    ("A-LRN", "A-LRN", "fixed", "he"),
    ("B", "B", "fixed", "he"),
    ("C", "C", "fixed", "he"),
    ("C, jittered", "C", "jittered", "he"),
    ("D", "D", "fixed", "he"),
    ("D, jittered", "D", "jittered", "he"),
    ("E", "E", "fixed", "he"),
    ("E, jittered", "E", "jittered", "he"),
    ("E, N(0, 0.01²)", "E", "fixed", "paper"),
    ("E from A", "E", "fixed", "from-A"),
)


def scales(kind: str) -> tuple[int | tuple[int, int], int]:
    """Training scale S (an int, or (S_min, S_max)) and test scale Q (§4.1's rule) of ``"fixed"``, ``"jittered"``
    or ``"large"``: the fixed S of the jittered nets' Q, as the paper's S = 384 is (§3.1, chapter 11's chain)."""
    if kind == "fixed":
        return S_FIXED, S_FIXED
    if kind == "jittered":
        return (S_FIXED, S_MAX), (S_FIXED + S_MAX) // 2
    if kind == "large":
        return (S_FIXED + S_MAX) // 2, (S_FIXED + S_MAX) // 2
    raise ValueError(f"unknown training scale {kind!r}; expected 'fixed', 'jittered' or 'large'")


def study_images(setting: Setting, data_seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The train and validation splits as uint8 images of :data:`S_MAX` px, objects at many scales."""
    return {
        split: render_split(split, image_size=S_MAX, per_class=per_class, seed=data_seed, radius=RADIUS)
        for split, per_class in (("train", setting.train_per_class), ("val", setting.val_per_class))
    }


def loaders(images: dict, kind: str, setting: Setting, seed: int) -> tuple[DeviceLoader, DataLoader]:
    """Training batches at scale S (§3.1: random crop of the whole image, flip, colour shift) and validation batches
    rescaled to Q and centre-cropped (§3.2 with one crop)."""
    scale, q = scales(kind)
    train_images, train_labels = images["train"]
    if isinstance(scale, int):  # fixed S: rescale once, then crop and flip as stored
        train_images, scale = resize(train_images, scale), None
    train = DeviceLoader(
        train_images,
        train_labels,
        batch_size=setting.batch_size,
        crop_size=CROP,
        scale=scale,
        std=IMAGENET_STD,
        seed=seed,
    )
    val_images, val_labels = images["val"]
    offset = (q - CROP) // 2
    val = resize(val_images, q)[:, :, offset : offset + CROP, offset : offset + CROP]
    return train, DataLoader(TensorDataset(normalise(val), val_labels), batch_size=256)


def build(config: str, setting: Setting, start: str = "he") -> nn.Module:
    """A plain (no batch norm) VGG of ``config``, narrow, He-initialised (``start="he"``) or from N(0, 0.01²)
    (``"paper"``; :func:`run_cell` copies A's layers in for ``"from-A"``); or a linear classifier on the pixels."""
    if config == "linear":
        linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * CROP * CROP, len(SYNTHETIC_CLASSES)))
        nn.init.zeros_(linear[1].bias)
        return linear
    model = vgg(
        config,
        num_classes=len(SYNTHETIC_CLASSES),
        width=setting.width,
        fc_width=setting.fc_width,
        pooled_size=1,
        dropout=0.0,
        init="paper",
    )
    return he_init(model) if start == "he" else model


def run_cell(cell: str, images: dict, setting: Setting, seed: int) -> list[dict]:
    """Train the cell ``cell`` of :data:`CELLS` from seed ``seed``; return its history (one dict per epoch)."""
    config, kind, start = {name: rest for name, *rest in CELLS}[cell]
    a = train_cell("A", images, setting, seed)[0] if start == "from-A" else None  # the same run as cell "A"
    torch.manual_seed(seed)  # before building: the initial weights depend on the seed alone
    model = build(config, setting, start)
    if a is not None:
        init_from_a(model, a)
    return train_cell(model, images, setting, seed, kind)[1]


def train_cell(model: nn.Module | str, images: dict, setting: Setting, seed: int, kind: str = "fixed", lr: float = LR):
    """Train ``model`` (or build cell ``model`` of :data:`CELLS` first) at training scale ``kind`` from the learning
    rate ``lr``; return the model and its history."""
    if isinstance(model, str):
        config, kind, start = {name: rest for name, *rest in CELLS}[model]
        torch.manual_seed(seed)
        model = build(config, setting, start)
    train, val = loaders(images, kind, setting, seed)
    optimizer = make_optimizer(model, lr, RECIPE.momentum, RECIPE.weight_decay)
    scheduler, interval = make_scheduler("cosine", optimizer, epochs=setting.epochs, steps_per_epoch=len(train))
    began = time.perf_counter()
    history = fit(
        model,
        train,
        val,
        epochs=setting.epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        interval=interval,
        engine=Engine("cpu", precision="fp32"),
        seed=seed,
        verbose=False,
    )
    keys = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5")
    rows = [{key: row[key] for key in keys} for row in history]
    rows[-1]["seconds"] = round(time.perf_counter() - began, 1)
    return model, rows


def study_settings(setting: Setting) -> dict:
    """What a results file of this study's nets records, and must match to be continued: setting, crop, scales,
    object radii, learning rate."""
    return {"setting": asdict(setting), "crop": CROP, "scales": [S_FIXED, S_MAX], "radius": list(RADIUS), "lr": LR}


def table3(
    path: str | Path,
    seeds: int = 3,
    setting: Setting = FULL,
    command: str | None = None,
    cells: tuple[str, ...] | None = None,
) -> dict:
    """Run every cell of :data:`CELLS` (or of ``cells``) for seeds ``0 .. seeds-1``, keeping each history in the JSON
    file ``path``.

    Rewritten atomically after every run; runs already there are skipped, so an interrupted study continues. The
    file also records the setting, the machine, the versions and the command.
    """
    results = open_study(path, study_settings(setting), "table3")
    results |= {"command": command, "machine": machine("cpu"), "threads": torch.get_num_threads()}
    images = study_images(setting)
    names = [cell for cell, *_ in CELLS if cells is None or cell in cells]
    todo = [(cell, seed) for seed in range(seeds) for cell in names]  # every cell of seed 0 first
    return run_missing(path, results, todo, lambda cell, seed: run_cell(cell, images, setting, seed))


def errors(results: dict, cell: str) -> dict[str, list[float]]:
    """Top-1 and top-5 validation *error* (%, the paper's measure) of every seed of ``cell`` at its last epoch."""
    histories = list(results["runs"][cell].values())
    return {
        "top1": [100 - h[-1]["val_top1"] for h in histories],
        "top5": [100 - h[-1]["val_top5"] for h in histories],
    }


def summary_table(results: dict) -> str:
    """One line per cell: seeds, top-1 and top-5 error as ``mean [min–max]``, last training loss."""
    lines = [f"{'cell':<13} {'seeds':>5}  {'top-1 error (%)':<19} {'top-5 error (%)':<19} train loss"]
    for cell, runs in results["runs"].items():
        e = errors(results, cell)
        loss = spread([h[-1]["train_loss"] for h in runs.values()], digits=2)
        lines.append(f"{cell:<13} {len(runs):>5}  {spread(e['top1']):<19} {spread(e['top5']):<19} {loss}")
    return "\n".join(lines)


def separated(results: dict, better: str, worse: str, metric: str = "top1") -> bool:
    """Whether every seed of ``better`` has a lower error than every seed of ``worse``: a difference with a margin."""
    return max(errors(results, better)[metric]) < min(errors(results, worse)[metric])


#: Where each cell of :data:`CELLS` sits in the paper's Table 3 (configuration, training scale as printed there).
PAPER_CELLS = {
    "A": ("A", "256"),
    "A-LRN": ("A-LRN", "256"),
    "B": ("B", "256"),
    "C": ("C", "256"),
    "C, jittered": ("C", "[256;512]"),
    "D": ("D", "256"),
    "D, jittered": ("D", "[256;512]"),
    "E": ("E", "256"),
    "E, jittered": ("E", "[256;512]"),
}


def paper_row(cell: str) -> Table3Row | None:
    """The row of the paper's Table 3 that ``cell`` reproduces in miniature, or None (baselines, init studies)."""
    if cell not in PAPER_CELLS:
        return None
    config, scale = PAPER_CELLS[cell]
    return next(row for row in PAPER_TABLE3 if (row.config, row.train_scale) == (config, scale))


def comparison_table(results: dict) -> Table:
    """The paper's Table 3 beside the miniature: per cell, the paper's S, Q and errors, then ours (mean [min–max])."""
    rows = []
    for cell in results["runs"]:
        config, kind, _ = {name: rest for name, *rest in CELLS}[cell]
        row, e = paper_row(cell), errors(results, cell)
        s, q = scales(kind)
        s_text = f"{s}" if isinstance(s, int) else f"[{s[0]};{s[1]}]"
        rows.append(
            [
                cell,
                str(PAPER_WEIGHT_LAYERS.get(config, 1)),
                f"{row.train_scale}, {row.test_scale}" if row else "",
                f"{row.top1} / {row.top5}" if row else "—",
                f"{s_text}, {q}",
                spread(e["top1"]),
                spread(e["top5"]),
            ]
        )
    header = ["cell", "layers", "paper S, Q", "paper top-1 / top-5", "S, Q", "top-1 error (%)", "top-5 error (%)"]
    return Table(header, rows, caption="Table 3: the paper (ImageNet) beside the miniature (synthetic, CPU)")


def plot_depth(results: dict, metric: str = "top1"):
    """Error against depth (weight layers): the paper's Table 3 (left) and the miniature (right, every seed a dot, the
    mean on the line). Lines join the 3×3 nets A, B, D, E at fixed and at jittered S; C (1×1) is a separate marker.
    Returns the two axes."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    config_of = {name: config for name, config, *_ in CELLS}
    for kind, marker, colour in (("fixed", "o", "C0"), ("jittered", "s", "C1")):
        suffix = "" if kind == "fixed" else ", jittered"
        scale = "256" if kind == "fixed" else "[256;512]"
        for configs, style in ((("A", "B", "D", "E"), "-"), (("C",), "none")):
            rows = [r for r in PAPER_TABLE3 if r.train_scale == scale and r.config in configs]
            xs = [PAPER_WEIGHT_LAYERS[r.config] for r in rows]
            label = f"S = {scale}" if style == "-" else None
            left.plot(xs, [getattr(r, metric) for r in rows], marker=marker, ls=style, color=colour, label=label)
            for x, r in zip(xs, rows):
                left.annotate(r.config, (x, getattr(r, metric)), textcoords="offset points", xytext=(4, 4))
            cells = [c + suffix for c in configs if c + suffix in results["runs"]]
            xs = [PAPER_WEIGHT_LAYERS[config_of[c]] for c in cells]
            means = []
            for x, cell in zip(xs, cells):
                values = errors(results, cell)[metric]
                right.scatter([x] * len(values), values, marker=marker, alpha=0.4, color=colour)
                means.append(sum(values) / len(values))
                right.annotate(config_of[cell], (x, means[-1]), textcoords="offset points", xytext=(5, 3))
            s = f"S = {S_FIXED}" if kind == "fixed" else f"S ∈ [{S_FIXED}, {S_MAX}]"
            label = f"{s} (mean of seeds)" if style == "-" else None
            right.plot(xs, means, marker=marker, ls=style, color=colour, label=label)
    if "linear" in results["runs"]:
        linear = errors(results, "linear")[metric]
        right.axhline(sum(linear) / len(linear), color="grey", ls=":", label="linear classifier")
    right.axhline(
        100 - (100 if metric == "top1" else 500) / len(SYNTHETIC_CLASSES), color="grey", ls="--", label="chance"
    )
    name = "top-1" if metric == "top1" else "top-5"
    left.set(title="The paper, Table 3 (ImageNet, 224 px crops)", xlabel="weight layers", ylabel=f"{name} error (%)")
    right.set(title=f"Miniature (synthetic, {CROP} px crops, CPU)", xlabel="weight layers", ylabel=f"{name} error (%)")
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return left, right


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.experiments table3 --out FILE``: Table 3 in miniature, restartable."""
    parser = study_parser("experiments", main.__doc__)
    parser.add_argument("study", choices=["table3"])
    parser.add_argument("--out", required=True, help="results file (JSON); runs it already holds are skipped")
    names = [cell for cell, *_ in CELLS]
    parser.add_argument("--cells", nargs="+", choices=names, metavar="CELL", help=f"only these cells of {names}")
    parser.add_argument("--epochs", type=whole(1), help=f"epochs per net (default: {FULL.epochs})")
    args, command = parse_study(parser, argv)

    def study() -> None:
        setting = QUICK if args.quick else FULL
        setting = replace(setting, epochs=args.epochs) if args.epochs else setting
        results = table3(args.out, args.seeds, setting, command, tuple(args.cells) if args.cells else None)
        print(summary_table(results))
        if not all(math.isfinite(h[-1]["train_loss"]) for runs in results["runs"].values() for h in runs.values()):
            print("some runs diverged (NaN loss)")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
