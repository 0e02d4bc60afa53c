"""What a training run depends on: :class:`TrainConfig`, its checks, and the command line that fills it in.

Every option of ``python -m vgg_tutorial.train`` is a field of :class:`TrainConfig`, with the paper's recipe (§3.1,
:data:`vgg_tutorial.paper.configs.RECIPE`) where the paper gives one. :meth:`TrainConfig.check` is the one place where
values are checked, for the command line and the Python API alike, before any data or model work starts; its
errors name the field and its valid values.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers

from vgg_tutorial.data.datasets import DATASETS
from vgg_tutorial.data.transforms import default_scale
from vgg_tutorial.paper.accounting import MIN_INPUT_SIZE
from vgg_tutorial.paper.configs import CONFIGS, CONTROLS, RECIPE, check_name
from vgg_tutorial.paper.models import INIT_SCHEMES
from vgg_tutorial.training import distributed
from vgg_tutorial.training.engine import PRECISIONS, pick_device

#: Learning-rate schedules: the paper's divide-by-10-on-plateau (§3.1) and two modern ones.
SCHEDULES = ("plateau", "onecycle", "cosine")
#: How the training split is batched: ``auto`` is ``device`` on a GPU and ``host`` on a CPU.
LOADERS = ("auto", "host", "device")
#: The settings that may differ when a run is resumed: where the data and the run files are, and more epochs (with
#: ``schedule="plateau"`` only: one-cycle and cosine spread their rates over the planned epochs). Any other
#: difference, even ``workers`` (it decides which worker's generator augments which batch), is refused.
RESUMABLE = ("data", "download", "output", "resume", "overwrite", "epochs")


class ConfigError(ValueError):
    """A :class:`TrainConfig` field with a value outside its range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _whole(name: str, value, low: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int ≥ ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(name, f"{name} must be a whole number of at least {low}, got {value!r}")


def _real(name: str, value, low: float, high: float = math.inf, *, open_low: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in [low, high) (or (low, high))."""
    interval = f"{'(' if open_low else '['}{low}, {high})"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (value > low if open_low else value >= low) and value < high):
        raise ConfigError(name, f"{name} must be a finite number in {interval}, got {value!r}")


@dataclasses.dataclass
class TrainConfig:
    """Everything a run depends on; the command line's options map one to one onto these fields."""

    config: str = "A"
    batch_norm: bool = True  # a plain VGG this narrow needs a careful initialisation to learn at all (chapter 6)
    sync_batch_norm: bool = False  # under torchrun: batch statistics over the global batch, not each process's share
    init: str = "glorot"
    width: float = 0.125
    fc_width: int = 128
    pooled_size: int = 1
    dropout: float = 0.0  # measured: with the paper's 0.5 these defaults stay at 10 % for five epochs
    dataset: str = "synthetic"
    data: str = "data"
    download: bool = False
    in_memory: bool = False
    train_per_class: int | None = 200  # synthetic only; None: as many as Imagenette (about 950 a class)
    val_per_class: int | None = 50
    image_size: int = 32
    scale: int | None = None  # training scale S (§3.1); None: image_size · 256 / 224
    scale_max: int | None = None  # with it, S is jittered in [scale, scale_max] per image (§3.1)
    test_scale: int | None = None  # Q; None: S, or (S_min + S_max) / 2 when jittered (§4.1)
    augment: bool = True
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = RECIPE.momentum
    weight_decay: float = RECIPE.weight_decay
    schedule: str = "plateau"
    patience: int = 2
    warmup_epochs: int = 1
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    workers: int = 0
    loader: str = "auto"
    device: str = "auto"
    output: str = "runs/vgg"
    resume: bool = False
    overwrite: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> TrainConfig:
        """Return ``self`` if every field makes sense, else raise :class:`ConfigError` naming the field and its valid
        values (a ``KeyError`` for an unknown ``config``). Runs when a config is made and again in :func:`train`;
        the command line turns these errors into usage errors (exit status 2), before any data or model work.
        """
        check_name(self.config)
        for name, choices in [
            ("init", INIT_SCHEMES),
            ("dataset", DATASETS),
            ("schedule", SCHEDULES),
            ("precision", PRECISIONS),
            ("loader", LOADERS),
        ]:
            if getattr(self, name) not in choices:
                raise ConfigError(name, f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        switches = ["batch_norm", "sync_batch_norm", "download", "in_memory", "augment", "channels_last", "compile"]
        switches += ["resume", "overwrite"]
        for name in switches:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"{name} must be True or False, got {getattr(self, name)!r}")
        _real("width", self.width, 0, open_low=True)
        _real("dropout", self.dropout, 0, 1)
        _real("lr", self.lr, 0, open_low=True)
        _real("momentum", self.momentum, 0, 1)
        _real("weight_decay", self.weight_decay, 0)
        for name, low in [("fc_width", 1), ("pooled_size", 1), ("epochs", 1), ("batch_size", 1), ("patience", 0)]:
            _whole(name, getattr(self, name), low)
        for name, low in [("warmup_epochs", 0), ("workers", 0), ("seed", 0), ("image_size", MIN_INPUT_SIZE)]:
            _whole(name, getattr(self, name), low)  # image_size: VGG's five 2×2 poolings need 32 px at least
        try:  # under torchrun, each of the WORLD_SIZE processes takes an equal share of the batch (§3.3)
            distributed.local_batch_size(self.batch_size, distributed.world_size())
        except ValueError as error:
            raise ConfigError("batch_size", str(error)) from None
        if self.seed >= 2**32:
            raise ConfigError("seed", f"seed must be below 2**32, got {self.seed}")
        for name in ["train_per_class", "val_per_class"]:
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), 1)
        for name in ["scale", "test_scale"]:  # S and Q: the image is rescaled to them, then cropped to image_size
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), self.image_size)
        if self.scale_max is not None:
            _whole("scale_max", self.scale_max, self.scale or default_scale(self.image_size))
        if not isinstance(self.output, str) or not self.output:
            raise ConfigError("output", f"output must be a folder name, got {self.output!r}")
        if self.resume and self.overwrite:
            raise ConfigError("overwrite", "resume and overwrite exclude each other: continue the run or replace it")
        try:
            device = pick_device(self.device)
        except ValueError as error:
            raise ConfigError("device", str(error)) from None
        if self.sync_batch_norm and device.type != "cuda":  # PyTorch's SyncBatchNorm runs on GPUs only
            raise ConfigError("sync_batch_norm", "sync_batch_norm needs CUDA GPUs; on a CPU leave it off")
        if self.precision == "fp16" and device.type != "cuda":
            raise ConfigError("precision", "precision fp16 needs a CUDA GPU; use auto, fp32 or bf16 here")
        return self


def training_scale(cfg: TrainConfig) -> int | tuple[int, int] | None:
    """S of ``cfg``: an int, (S_min, S_max) when ``scale_max`` is set, or None for the default."""
    if cfg.scale_max is None:
        return cfg.scale
    low = cfg.scale if cfg.scale is not None else default_scale(cfg.image_size)
    return (low, cfg.scale_max)


def _fraction(text: str) -> float:
    """``"0.25"`` or ``"1/4"`` as a float (for ``--width``)."""
    numerator, _, denominator = text.partition("/")
    try:
        return float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number such as 0.25 or 1/4, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m vgg_tutorial.train``; every option is a :class:`TrainConfig` field."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m vgg_tutorial.train",
        description=(
            "Train a VGG (Simonyan & Zisserman 2015) with the paper's SGD recipe. The defaults train a small VGG-A "
            "on the synthetic dataset (generated on first use, no download) and fit a CPU; see the book's chapter "
            "'Training VGG on Imagenette' for the GPU recipe."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = p.add_argument_group("model")
    names = f"{', '.join(CONFIGS)}; or the control {', '.join(CONTROLS)} (§4.1)"
    model.add_argument("--config", default=d.config, help=f"configuration of Table 1: {names}")
    model.add_argument(
        "--batch-norm",
        action=argparse.BooleanOptionalAction,
        default=d.batch_norm,
        help="batch norm after every convolution (--no-batch-norm: the paper's plain nets)",
    )
    model.add_argument(
        "--sync-batch-norm",
        action="store_true",
        help="under torchrun: batch norm statistics over the global batch (SyncBatchNorm), not each process's share",
    )
    model.add_argument("--init", default=d.init, choices=INIT_SCHEMES, help="weight init")
    model.add_argument("--width", type=_fraction, default=d.width, help="conv channel multiplier (1 = paper)")
    model.add_argument("--fc-width", type=int, default=d.fc_width, help="hidden FC width (4096 = paper)")
    model.add_argument("--pooled-size", type=int, default=d.pooled_size, help="side of the adaptive pool (7 = paper)")
    model.add_argument("--dropout", type=float, default=d.dropout, help="dropout of the two hidden FC layers")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=d.dataset, choices=DATASETS)
    data.add_argument("--data", default=d.data, help="folder holding (or receiving) the dataset")
    data.add_argument("--download", action="store_true", help="download Imagenette if it is not there")
    data.add_argument("--in-memory", action="store_true", help="synthetic only: keep images in memory, no JPEGs")
    data.add_argument("--train-per-class", type=int, default=None, help="synthetic only (None: as Imagenette)")
    data.add_argument("--val-per-class", type=int, default=None, help="synthetic only (None: as Imagenette)")
    data.add_argument("--image-size", type=int, default=d.image_size, help="crop side (224 = paper)")
    data.add_argument("--scale", type=int, default=None, help="training scale S (default: image size · 256/224)")
    data.add_argument("--scale-max", type=int, default=None, help="jitter S in [--scale, --scale-max] (§3.1)")
    data.add_argument("--test-scale", type=int, default=None, help="test scale Q (default: S, or the jitter's middle)")
    data.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=d.augment,
        help="random crop, flip and colour shift (--no-augment: rescale and centre crop only)",
    )
    data.add_argument(
        "--workers", type=int, default=d.workers, help="data loader worker processes (keep it the same to --resume)"
    )
    data.add_argument(
        "--loader",
        default=d.loader,
        choices=LOADERS,
        help="host: JPEGs decoded per batch by workers; device: decoded once, augmented on the device; "
        "auto: device on a GPU",
    )
    optim = p.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=d.epochs)
    optim.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"{RECIPE.batch_size} = paper; under torchrun the global batch, split evenly across the processes",
    )
    optim.add_argument("--lr", type=float, default=d.lr, help="initial (or peak) learning rate")
    optim.add_argument("--momentum", type=float, default=d.momentum)
    optim.add_argument("--weight-decay", type=float, default=d.weight_decay)
    optim.add_argument("--schedule", default=d.schedule, choices=SCHEDULES, help="plateau = paper")
    optim.add_argument("--patience", type=int, default=d.patience, help="plateau: epochs without improvement")
    optim.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help="cosine: linear warm-up")
    speed = p.add_argument_group("speed")
    speed.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    speed.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on tensor cores)")
    speed.add_argument("--compile", action="store_true", help="torch.compile the model")
    speed.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ...")
    run = p.add_argument_group("run")
    run.add_argument(
        "--output", default=d.output, help="folder for checkpoint.pt, history.json, history.csv: one run per folder"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUTPUT from its checkpoint.pt (refused if a setting other than --epochs, --data "
        "or --download differs; an empty OUTPUT starts afresh)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace the run files already in OUTPUT")
    run.add_argument("--seed", type=int, default=d.seed)
    return p
