"""Tables 4 and 5 in miniature: the Table 3 study's D nets tested with every method of
:mod:`vgg_tutorial.testing.evaluate`.

Chapter 8 trained configuration D at a fixed training scale (S = 37 for 32 px crops, the paper's 256 : 224) and
with scale jittering (S ∈ [37, 74]) and scored it the way validation during training does: one centre crop at
one test scale Q. The paper's Tables 4 and 5 score the same nets again with the test methods of §3.2 and
§4.2–4.3: dense evaluation, horizontal flips, 50 crops per scale, several test scales, and dense with multi-crop.
This module

1. trains the cells ``"D"`` and ``"D, jittered"`` of :data:`vgg_tutorial.studies.experiments.CELLS` exactly as
   :mod:`vgg_tutorial.studies.experiments` does (same data, setting, seeds), and saves each net's weights with what
   rebuilds it (``D-seed0.pt``, ``D-jittered-seed0.pt``, ...: about 1 MB each at 1/8 width);
2. tests each saved net with every method of :data:`~vgg_tutorial.testing.evaluate.METHODS`, at the single test scale of
   §4.1 and over the three scales of §4.2, on the study's validation images, and keeps the error rates, FLOPs per
   image and seconds of every run in one JSON file (with the machine, the versions and the command).

Both steps skip what their folder already holds, so ``python -m vgg_tutorial.testing_study --out FOLDER`` continues
where it stopped.

One detail joins the two halves: the study trains on pixels minus ImageNet's mean *divided by its std*, and
:mod:`vgg_tutorial.testing.views` feeds the network pixels minus the mean (the paper's preprocessing, §2.1). Dividing
the first convolution's weights by the std (:func:`fold_std`) makes the two the same network exactly: the convolution
is linear in each input channel, and zero padding stays zero after the division.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from vgg_tutorial.data.transforms import IMAGENET_STD
from vgg_tutorial.paper.configs import PAPER_TABLE3, PAPER_TABLE4, PAPER_TABLE5
from vgg_tutorial.paper.table import Table
from vgg_tutorial.studies import experiments
from vgg_tutorial.studies.common import StudyError, load_weights, open_study, run_missing, save_weights
from vgg_tutorial.testing.evaluate import METHODS, evaluate, protocols
from vgg_tutorial.testing.views import dense_network, evaluation_scales, to_network_input
from vgg_tutorial.training.commands import parse_study, report_errors, study_parser
from vgg_tutorial.training.runs import machine

#: The Table 3 cells Tables 4 and 5 test again (the paper reports D and E; D is the cheaper of the two).
CELLS = ("D", "D, jittered")
#: The results file inside the study's folder.
RESULTS = "results.json"


def weights_path(folder: str | Path, cell: str, seed: int) -> Path:
    """Where the weights of ``cell`` trained from ``seed`` live: ``D-seed0.pt``, ``D-jittered-seed1.pt``, ..."""
    return Path(folder) / f"{cell.replace(', ', '-')}-seed{seed}.pt"


def require_nets(folder: str | Path, cells: tuple[str, ...], seeds: int) -> None:
    """Raise a :class:`StudyError` naming the missing files unless ``folder`` holds the nets of ``cells`` for seeds
    ``0 .. seeds-1`` (for the studies that start from this study's nets)."""
    wanted = [weights_path(folder, cell, seed) for cell in cells for seed in range(seeds)]
    if missing := [str(path) for path in wanted if not path.is_file()]:
        raise StudyError(f"no trained net at {', '.join(missing)}: python -m vgg_tutorial.testing_study trains them")


def add_nets_option(parser) -> None:
    """The ``--nets FOLDER`` option of the studies that start from this study's nets (default: chapter 9's)."""
    parser.add_argument(
        "--nets",
        default="book/results/09_testing_like_the_paper",
        help="folder of chapter 9's trained nets (python -m vgg_tutorial.testing_study trains them)",
    )


def train_and_save(folder: str | Path, cell: str, seed: int, setting: experiments.Setting, images: dict) -> Path:
    """Train ``cell`` from ``seed`` as the Table 3 study does and save its weights, setting and history (skipped if
    the file exists and holds that cell, seed and setting; refused if it holds others, see :func:`load_net`)."""
    path = weights_path(folder, cell, seed)
    if path.exists():
        load_net(path, {"cell": cell, "seed": seed, "setting": asdict(setting)})
        return path
    model, history = experiments.train_cell(cell, images, setting, seed)
    state = {"model": model.state_dict(), "cell": cell, "seed": seed, "setting": asdict(setting), "history": history}
    save_weights(path, state)
    return path


def load_net(path: str | Path, expected: dict | None = None) -> tuple[nn.Module, dict]:
    """The net saved by :func:`train_and_save`, rebuilt and in eval mode, and what the file records about it.

    The file is checked as checkpoints are (CRC-32s, format, :func:`~vgg_tutorial.studies.common.load_weights`), and
    must hold the values of ``expected`` (cell, seed, setting): a study never tests a net trained under other settings.
    """
    state = load_weights(path, expected or {})
    if state.get("cell") not in {name for name, *_ in experiments.CELLS}:
        raise StudyError(f"{path} holds no net of the study (cell {state.get('cell')!r})")
    config = {name: config for name, config, *_ in experiments.CELLS}[state["cell"]]
    model = experiments.build(config, experiments.Setting(**state["setting"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        fit = str(error).splitlines()[0]
        raise StudyError(f"{path}: the weights do not fit cell {state['cell']!r} ({fit})") from None
    return model.eval(), {key: value for key, value in state.items() if key != "model"}


def fold_std(model: nn.Module, std: tuple[float, ...] = IMAGENET_STD) -> nn.Module:
    """A copy of ``model`` that takes pixels minus the mean where ``model`` took them divided by ``std`` as well:
    the first convolution's weights divided by ``std``, channel by channel (exact: zero padding stays zero)."""
    folded = copy.deepcopy(model)
    first = next(m for m in folded.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        first.weight /= torch.tensor(std, dtype=first.weight.dtype, device=first.weight.device)[None, :, None, None]
    return folded


def test_scales(cell: str) -> tuple[int, tuple[int, ...]]:
    """The single test scale (§4.1) and the multi-scale set (§4.2) of ``cell``: 37 and {32, 37, 42} for S = 37,
    55 and {37, 55, 74} for S ∈ [37, 74]."""
    kind = {name: kind for name, _, kind, _ in experiments.CELLS}[cell]
    scale = experiments.scales(kind)[0]
    return evaluation_scales(experiments.CROP, (scale, scale) if isinstance(scale, int) else scale)


def validation_images(setting: experiments.Setting) -> list[tuple[torch.Tensor, int]]:
    """The study's validation split as ``(uint8 image of S_max px, label)`` pairs, untransformed."""
    images, labels = experiments.study_images(setting)["val"]
    return [(image, int(label)) for image, label in zip(images, labels)]


def run(
    folder: str | Path,
    seeds: int = 3,
    setting: experiments.Setting = experiments.FULL,
    command: str | None = None,
    batch_size: int = 50,
) -> dict:
    """Train (or find) every net of :data:`CELLS` for seeds ``0 .. seeds-1`` in ``folder``, test each with every
    method at one and at several scales, and keep the results in ``folder/results.json``, rewritten after every net;
    nets and results already there are not redone."""
    folder = Path(folder)
    path = folder / RESULTS
    settings = {"setting": asdict(setting), "crop": experiments.CROP, "methods": list(METHODS)}
    results = open_study(path, settings, "testing_study")
    info = machine("cpu")
    results |= {"command": command, "machine": info, "threads": torch.get_num_threads()}
    results["versions"] = {key: str(info[key]) for key in ("python", "torch", "torchvision")}
    images = experiments.study_images(setting)
    val = validation_images(setting)

    def train_and_test(cell: str, seed: int) -> dict:
        net, record = load_net(train_and_save(folder, cell, seed, setting, images))
        single, multi = test_scales(cell)
        began = time.perf_counter()
        rows = evaluate(
            fold_std(net),
            val,
            crop_size=experiments.CROP,
            plan=protocols(METHODS, single, multi),
            batch_size=batch_size,
        )
        return {
            "weights": weights_path(folder, cell, seed).name,
            "training": record["history"][-1],
            "test_scale": single,
            "multi_scales": list(multi),
            "evaluation_seconds": round(time.perf_counter() - began, 1),
            "results": rows,
        }

    return run_missing(path, results, [(cell, seed) for seed in range(seeds) for cell in CELLS], train_and_test)


# ---------------------------------------------------------------------------------------------------------------
# Reading the results
# ---------------------------------------------------------------------------------------------------------------


def errors(results: dict, cell: str, label: str, metric: str = "top1") -> list[float]:
    """The top-1 (or top-5) error (%) of every seed of ``cell`` under the protocol ``label`` (``"dense Q=37"``)."""
    return [run["results"][label][f"{metric}_error"] for run in results["runs"][cell].values()]


def labels(results: dict, cell: str) -> list[str]:
    """The protocol labels of ``cell``, in the order they were run."""
    return list(next(iter(results["runs"][cell].values()))["results"])


def summary(results: dict, cell: str) -> Table:
    """One row per protocol of ``cell``: top-1 and top-5 error as ``mean [min–max]`` over seeds, passes per image,
    forward MFLOPs per image and measured milliseconds per image (means over seeds)."""
    rows = []
    runs = list(results["runs"][cell].values())
    for label in labels(results, cell):
        cells = [run["results"][label] for run in runs]
        ms = sum(1000 * row["seconds"] / row["images"] for row in cells) / len(cells)
        rows.append(
            [
                label,
                experiments.spread(errors(results, cell, label)),
                experiments.spread(errors(results, cell, label, "top5")),
                str(cells[0]["passes_per_image"]),
                f"{cells[0]['forward_flops_per_image'] / 1e6:.1f}",
                f"{ms:.2f}",
            ]
        )
    header = ["method", "top-1 error (%)", "top-5 error (%)", "passes", "MFLOPs/img", "ms/img"]
    return Table(header, rows, caption=f"{cell}: every test method, {len(runs)} seeds")


def better_in_every_seed(results: dict, cell: str, better: str, worse: str, metric: str = "top1") -> bool:
    """Whether protocol ``better`` has a lower error than ``worse`` in every seed of ``cell`` (paired by seed)."""
    pairs = zip(errors(results, cell, better, metric), errors(results, cell, worse, metric))
    return all(b < w for b, w in pairs)


#: The paper's comparisons of test methods: (what is compared, the method the paper found better or expects to
#: help, the other); ``{q}`` stands for the single test scale, ``{m}`` for the three.
COMPARISONS = (
    ("flips, dense (§3.2)", "dense+flip Q={q}", "dense Q={q}"),
    ("dense against centre crop", "dense+flip Q={q}", "center Q={q}"),
    ("50 crops against centre crop", "multicrop Q={q}", "center Q={q}"),
    ("50 crops against dense, 1 scale", "multicrop Q={q}", "dense+flip Q={q}"),
    ("3 scales against 1, dense (Table 4)", "dense+flip Q={m}", "dense+flip Q={q}"),
    ("3 scales against 1, 50 crops", "multicrop Q={m}", "multicrop Q={q}"),
    ("50 crops against dense, 3 scales (Table 5)", "multicrop Q={m}", "dense+flip Q={m}"),
    ("both against 50 crops, 3 scales (Table 5)", "dense+multicrop Q={m}", "multicrop Q={m}"),
    ("both against 50 crops, 1 scale", "dense+multicrop Q={q}", "multicrop Q={q}"),
)


def paired_gains(results: dict, cell: str, better: str, worse: str) -> list[float]:
    """Per seed of ``cell``, how many points of top-1 error protocol ``better`` saves over ``worse`` (the same net
    tested both ways); ``{q}`` and ``{m}`` in the labels are filled in with the cell's test scales."""
    single, multi = test_scales(cell)
    q, m = single, ",".join(map(str, multi))
    better, worse = better.format(q=q, m=m), worse.format(q=q, m=m)
    return [w - b for b, w in zip(errors(results, cell, better), errors(results, cell, worse))]


def comparison_verdict(gains: list[float]) -> str:
    """``"helps in every seed"``, ``"hurts in every seed"`` or ``"mixed"``, from :func:`paired_gains`."""
    if all(g > 0 for g in gains):
        return "helps in every seed"
    if all(g < 0 for g in gains):
        return "hurts in every seed"
    return "mixed"


def plot_comparisons(results: dict):
    """Every comparison of :data:`COMPARISONS`, seed by seed: the points of top-1 error the first method saves over
    the second (right of zero: it helps), one colour per cell. Returns the axes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(COMPARISONS) + 1))
    for offset, (cell, colour) in zip((-0.15, 0.15), zip(CELLS, ("C0", "C1"))):
        for row, (_, better, worse) in enumerate(COMPARISONS):
            gains = paired_gains(results, cell, better, worse)
            ax.scatter(gains, [row + offset] * len(gains), color=colour, label=cell if row == 0 else None)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(COMPARISONS)), [what for what, *_ in COMPARISONS])
    ax.invert_yaxis()
    ax.set_xlabel("top-1 error saved, points (one dot per seed; right of 0: the first method helps)")
    ax.legend(title="D nets", fontsize=8)
    fig.tight_layout()
    return ax


#: Each row the miniature puts beside the paper: (the paper's table, what it measured, our method, multi-scale?).
#: §3.2 averages every image's posterior with its flip's, so the paper's dense rows go with our ``dense+flip``.
ROWS = (
    ("—", "centre crop, Q", "center", False),
    ("3", "dense, Q", "dense+flip", False),
    ("4", "dense, 3 scales", "dense+flip", True),
    ("5", "multi-crop, 3 scales", "multicrop", True),
    ("5", "multi-crop & dense, 3 scales", "dense+multicrop", True),
)
#: The paper's row of Table 5 for each method.
TABLE5_METHODS = {"dense+flip": "dense", "multicrop": "multi-crop", "dense+multicrop": "multi-crop & dense"}


def paper_errors(cell: str, table: str, method: str) -> tuple[float, float] | None:
    """The paper's top-1 and top-5 error for the row of ``table`` that ``cell`` and ``method`` stand for, or None."""
    scale = "[256;512]" if "jittered" in cell else "256"
    if table == "3":
        rows = [r for r in PAPER_TABLE3 if (r.config, r.train_scale) == ("D", scale)]
    elif table == "4":
        rows = [r for r in PAPER_TABLE4 if (r.config, r.train_scale) == ("D", scale)]
    elif table == "5" and scale == "[256;512]":
        rows = [r for r in PAPER_TABLE5 if (r.config, r.method) == ("D", TABLE5_METHODS[method])]
    else:
        rows = []
    return (rows[0].top1, rows[0].top5) if rows else None


def comparison_table(results: dict, cell: str) -> Table:
    """The paper's Tables 3, 4 and 5 (configuration D) beside the miniature's ``cell``: per test method, the paper's
    top-1 / top-5 error and ours as ``mean [min–max]`` over seeds."""
    single, multi = test_scales(cell)
    rows = []
    for table, test, method, several in ROWS:
        label = f"{method} Q={','.join(map(str, multi if several else (single,)))}"
        paper = paper_errors(cell, table, method)
        paper_text = f"{paper[0]:.1f} / {paper[1]:.1f}" if paper else "—"
        top1, top5 = (experiments.spread(errors(results, cell, label, m)) for m in ("top1", "top5"))
        rows.append([table, test, paper_text, label, top1, top5])
    header = ["table", "test", "paper top-1 / top-5", "ours", "top-1 error (%)", "top-5 error (%)"]
    return Table(header, rows, caption=f"The paper's D beside the miniature's {cell}")


@torch.no_grad()
def window_scores(net: nn.Module, image: torch.Tensor, crop_size: int = experiments.CROP):
    """Class scores of the windows of ``image`` (uint8, 3×H×W) that the dense net's score map stands for, two ways.

    Position (i, j) of the score map reads the ``crop_size`` px window at (32·i, 32·j) (five 2×2 max-pools). Returns
    the dense net's scores (positions × classes, the image as its context) and the net's scores on each window cut
    out as a crop (zero padding at the crop's borders), in the same order, with the windows' corners.
    """
    dense = dense_network(net, crop_size).eval()
    x = to_network_input(image[None])
    scores = dense.score_map(x)[0]  # classes × rows × columns
    rows, columns = scores.shape[-2:]
    corners = [(32 * i, 32 * j) for i in range(rows) for j in range(columns)]
    crops = torch.cat([x[..., t : t + crop_size, s : s + crop_size] for t, s in corners])
    return scores.flatten(1).T, net.eval()(crops), corners


def main(argv: list[str] | None = None) -> int:
    """``python -m vgg_tutorial.testing_study --out FOLDER``: Tables 4 and 5 in miniature, restartable."""
    parser = study_parser("testing_study", main.__doc__)
    parser.add_argument("--out", required=True, help="folder for the weights and results.json; what it holds is kept")
    args, command = parse_study(parser, argv)
    setting = experiments.QUICK if args.quick else experiments.FULL

    def study() -> None:
        results = run(args.out, seeds=args.seeds, setting=setting, command=command)
        for cell in CELLS:
            print(f"{cell} ({len(results['runs'][cell])} seeds)\n{summary(results, cell)!r}\n")
            print(f"{comparison_table(results, cell)!r}\n")

    return report_errors(study)


if __name__ == "__main__":
    sys.exit(main())
