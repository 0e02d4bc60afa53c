"""Table 8 in miniature: SCR against PCR, all layers against the FC layers only (Appendix A.2), three seeds.

The paper compared its localisation nets with a simplified protocol (Table 8): configuration D, one central crop,
the box of the ground-truth class, right at IoU > 0.5. The miniature starts from chapter 9's trained D nets (the
Table 3 study's "D" cell, S = 37, three seeds; :mod:`vgg_tutorial.studies.testing_study` saved them) and fine-tunes each
four ways, the 2×2 grid of :data:`CELLS`, on the study's own images with their boxes
(:func:`vgg_tutorial.data.synthetic.render_boxes`):

- training: the images rescaled to S = 37, random 32 px crops and flips, the boxes following them; SGD at
  :data:`LR` (the classification study's rate divided by 5; the paper used 10⁻³, a tenth of its classification
  rate), the study's epochs and batch size;
- testing: the validation images rescaled to Q = 37, one central crop; the ground-truth class's box (Table 8's
  error), and ILSVRC's error with the classification net's own top-1 and top-5 classes.

Every (cell, seed) goes to one JSON file with the machine and the command; ``python -m
vgg_tutorial.localisation_study --out FILE`` continues where it stopped.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from vgg_tutorial.data.boxes import check_boxes, rescale
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, render_boxes
from vgg_tutorial.data.transforms import resize
from vgg_tutorial.paper.configs import PAPER_TABLE8, PAPER_TABLE9, PAPER_TABLE10
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies import experiments, testing_study
from vgg_tutorial.studies.common import open_study, run_missing
from vgg_tutorial.studies.failures import spread
from vgg_tutorial.training import localisation
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser
from vgg_tutorial.training.runs import machine

#: The 2×2 grid: (name, regression type, what is fine-tuned).
CELLS = (
    ("SCR, all layers", "SCR", "all"),
    ("SCR, FC only", "SCR", "fc"),
    ("PCR, all layers", "PCR", "all"),
    ("PCR, FC only", "PCR", "fc"),
)
#: The chapter 9 cell the localisation nets start from (the paper's D at a single scale, Appendix A.1).
START = "D"
#: The fine-tuning learning rate.
LR = experiments.LR / 5


def study_boxes(setting: experiments.Setting) -> dict[str, torch.Tensor]:
    """The true box of every image of the study's splits, in pixels of its :data:`~experiments.S_MAX` px image."""
    per_class = {"train": setting.train_per_class, "val": setting.val_per_class}
    return {
        split: render_boxes(split, image_size=experiments.S_MAX, per_class=n, seed=0, radius=experiments.RADIUS)[0]
        for split, n in per_class.items()
    }


def run(
    path: str | Path,
    nets: str | Path,
    seeds: int = 3,
    setting: experiments.Setting = experiments.FULL,
    command: str | None = None,
) -> dict:
    """Fine-tune chapter 9's D net of every seed (in the folder ``nets``, trained with ``setting``) in each cell of
    :data:`CELLS`, score it on the validation images, and keep the results in the JSON file ``path``, rewritten
    after every run; runs already there are skipped."""
    testing_study.require_nets(nets, (START,), seeds)
    s, q = experiments.scales("fixed")
    settings = {"setting": asdict(setting), "start": START, "crop": experiments.CROP, "scale": s, "lr": LR}
    results = open_study(path, settings, "localisation_study")
    results |= {"command": command, "machine": machine("cpu"), "threads": torch.get_num_threads()}
    images, boxes = experiments.study_images(setting), study_boxes(setting)
    train_images, train_labels = images["train"]
    train_images, train_boxes = resize(train_images, s), rescale(boxes["train"], experiments.S_MAX, s)
    offset = (s - experiments.CROP) / 2  # standardise in the coordinates of a central crop
    scaler = localisation.BoxScaler.fit(train_boxes - offset)
    results["box_mean"], results["box_std"] = scaler.state()["mean"], scaler.state()["std"]
    check_boxes(boxes["val"], experiments.S_MAX, "true box")
    modes = {name: (mode, tuning) for name, mode, tuning in CELLS}

    def fine_tune(cell: str, seed: int) -> dict:
        expected = {"cell": START, "seed": seed, "setting": asdict(setting)}
        classifier, _ = testing_study.load_net(testing_study.weights_path(nets, START, seed), expected)
        mode, tuning = modes[cell]
        torch.manual_seed(seed)  # the new last layer's weights depend on the seed alone
        net = localisation.localiser(classifier, mode, len(SYNTHETIC_CLASSES))
        began = time.perf_counter()
        losses = localisation.fine_tune(
            net,
            train_images,
            train_boxes,
            train_labels,
            scaler,
            mode=mode,
            tuning=tuning,
            epochs=setting.epochs,
            lr=LR,
            batch_size=setting.batch_size,
            crop_size=experiments.CROP,
            seed=seed,
        )
        seconds = round(time.perf_counter() - began, 1)
        val_images, val_labels = images["val"]
        kw = {"mode": mode, "q": q, "crop_size": experiments.CROP}
        scores = localisation.localise(net, classifier, val_images, boxes["val"], val_labels, scaler, **kw)
        return {"losses": [round(v, 4) for v in losses], "seconds": seconds, **scores}

    todo = [(cell, seed) for seed in range(seeds) for cell, *_ in CELLS]
    return run_missing(path, results, todo, fine_tune)


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------


def errors(results: dict, cell: str, metric: str = "gt_class_error") -> list[float]:
    """``metric`` (%, default Table 8's ground-truth-class localisation error) of every seed of ``cell``."""
    return [run[metric] for run in results["runs"][cell].values()]


def table(results: dict, caption: str = "Localisation in miniature: validation images, synthetic data, CPU") -> Table:
    """One row per cell: errors as ``mean [min–max]`` over seeds (ground-truth class, ILSVRC top-1 and top-5),
    mean IoU, the last epoch's loss."""
    rows = []
    for cell, runs in results["runs"].items():
        last = [run["losses"][-1] for run in runs.values()]
        metrics = ("gt_class_error", "top1_error", "top5_error")
        iou = spread(errors(results, cell, "mean_iou"), digits=2)
        rows.append([cell, str(len(runs)), *(spread(errors(results, cell, m)) for m in metrics), iou])
        rows[-1].append(spread(last, digits=2))
    header = ["cell", "seeds", "GT class error (%)", "top-1 error (%)", "top-5 error (%)", "mean IoU", "final loss"]
    return Table(header, rows, caption=caption)


def every_seed(results: dict, better: str, worse: str, metric: str = "gt_class_error") -> bool:
    """Whether ``better`` has the lower error in every seed (paired by seed: the same starting net)."""
    return all(b < w for b, w in zip(errors(results, better, metric), errors(results, worse, metric)))


def verdicts(results: dict) -> dict[str, str]:
    """The paper's two comparisons (and their mirror images), each ``"in every seed"`` or ``"not in every seed"``."""
    pairs = {
        "all layers beat FC only, SCR": ("SCR, all layers", "SCR, FC only"),
        "all layers beat FC only, PCR": ("PCR, all layers", "PCR, FC only"),
        "PCR beats SCR, FC only": ("PCR, FC only", "SCR, FC only"),
        "PCR beats SCR, all layers": ("PCR, all layers", "SCR, all layers"),
        "SCR beats PCR, FC only": ("SCR, FC only", "PCR, FC only"),
        "SCR beats PCR, all layers": ("SCR, all layers", "PCR, all layers"),
    }
    return {
        claim: "in every seed" if every_seed(results, *pair) else "not in every seed" for claim, pair in pairs.items()
    }


#: Each miniature cell's row in the paper's Table 8 ("1st and 2nd FC" is the paper's FC-only fine-tuning).
PAPER_ROWS = {"fc": "1st and 2nd FC", "all": "all"}


def comparison_table(results: dict) -> Table:
    """Table 8 beside the miniature: per cell, the paper's error (ILSVRC-2012 val, D, S = 384) and ours."""
    rows = []
    for cell, mode, tuning in CELLS:
        paper = [r.error for r in PAPER_TABLE8 if (r.fine_tuned, r.regression) == (PAPER_ROWS[tuning], mode)]
        ours = spread(errors(results, cell)) if cell in results["runs"] else "—"
        rows.append([PAPER_ROWS[tuning], mode, f"{paper[0]}" if paper else "not reported", ours])
    header = ["fine-tuned layers", "regression", "paper: ImageNet val (%)", "miniature: synthetic val (%)"]
    seeds = max(len(runs) for runs in results["runs"].values())
    caption = f"Table 8 (central crop, true class, IoU > 0.5): the paper beside the miniature ({seeds} seeds)"
    return Table(header, rows, caption=caption)


def paper_table9() -> Table:
    """The paper's Table 9: PCR applied densely, the top-5 classes of the best classification system (%)."""
    rows = [[r.train_scale, r.test_scale, f"{r.val}", "–" if r.test is None else f"{r.test}"] for r in PAPER_TABLE9]
    header = ["train S", "test Q", "top-5 val", "top-5 test"]
    return Table(header, rows, caption="The paper's Table 9: localisation error, dense application (ILSVRC)")


def paper_table10() -> Table:
    """The paper's Table 10: ILSVRC localisation, top-5 error (%); VGG won ILSVRC-2014's localisation task."""
    rows = [[r.entry, "–" if r.val is None else f"{r.val}", f"{r.test}"] for r in PAPER_TABLE10]
    return Table(["entry", "top-5 val", "top-5 test"], rows, caption="The paper's Table 10: ILSVRC localisation")


def show_boxes(images: torch.Tensor, boxes: torch.Tensor, titles: list[str], columns: int = 5):
    """Images (uint8, N×3×H×W) in rows of ``columns`` with their boxes (white, outlined in black, to show on any
    background). Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k].permute(1, 2, 0).numpy(), extent=(0, images.shape[-1], images.shape[-2], 0))
        x0, y0, x1, y1 = boxes[k].tolist()
        for colour, width in (("black", 3.0), ("white", 1.5)):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=width))
        ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return axes


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.localisation_study --out FILE``: Table 8 in miniature, restartable."""
    parser = study_parser("localisation_study", main.__doc__)
    parser.add_argument("--out", required=True, help="results JSON; the runs it holds are kept")
    testing_study.add_nets_option(parser)
    args, command = parse_study(parser, argv)
    setting = experiments.QUICK if args.quick else experiments.FULL

    def study() -> None:
        results = run(args.out, args.nets, args.seeds, setting, command)
        print(f"{table(results)!r}\n\n{comparison_table(results)!r}")
        for claim, verdict in verdicts(results).items():
            print(f"{claim}: {verdict}")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
