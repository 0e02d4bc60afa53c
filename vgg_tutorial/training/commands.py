"""What every command line of the package shares: options checked before any work, and failures as one line.

``python -m vgg_tutorial.train`` set the pattern (:mod:`vgg_tutorial.training.settings`): every option is checked before
any data or model work, with a message that names the option and its valid values, and a failure the program knows
about ends with one line on stderr and a non-zero exit status, never a Python traceback. The other command lines
(``evaluate``, ``bench``, ``experiments``, ``testing_study``, ``init_study``) get the same from here: argparse types
that name their range (:func:`whole`, :func:`fraction`, :func:`config_name`, :func:`device_name`, :func:`threads`),
and :func:`report_errors`, which runs a program and turns the failures it knows into messages and exit statuses:

- 2: refused before or while reading its inputs: a bad option, a damaged or foreign checkpoint or results file, a
  missing or damaged dataset, an output that cannot be written, a folder in use (argparse also exits 2);
- 1: the work itself failed: disk full, out of memory, a diverged run;
- 130: interrupted (Ctrl-C), as shells report it.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable

import torch

from vgg_tutorial.data.folders import DatasetNotFoundError
from vgg_tutorial.paper.configs import check_name
from vgg_tutorial.training.engine import pick_device
from vgg_tutorial.training.runs import RunError
from vgg_tutorial.training.settings import ConfigError

#: Failures that mean "this input or option is refused", exit status 2 (unless the error says otherwise).
REFUSED = (RunError, DatasetNotFoundError, ConfigError, FileExistsError)
#: What ``errno`` says when a file cannot grow: disk full, quota exceeded, file size limit.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [``low``, ``high``] (no upper bound when ``high`` is None)."""
    interval = f"of at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {interval}, got {text!r}")
        return value

    return parse


def fraction(text: str) -> float:
    """An argparse type: ``"0.25"`` or ``"1/4"``, a finite number above 0 (a width multiplier)."""
    numerator, _, denominator = text.partition("/")
    try:
        value = float(numerator) / float(denominator) if denominator else float(text)
    except (ValueError, ZeroDivisionError):
        value = None
    if value is None or not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number above 0 such as 0.25 or 1/4, got {text!r}")
    return value


def config_name(text: str) -> str:
    """An argparse type: a configuration of Table 1 (``A`` to ``E``, ``A-LRN``)."""
    try:
        return check_name(text)
    except KeyError as error:
        raise argparse.ArgumentTypeError(error.args[0]) from None


def device_name(text: str) -> str:
    """An argparse type: a device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...)."""
    try:
        pick_device(text)
    except (ValueError, RuntimeError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


#: An argparse type: torch threads, one to the number of CPUs (far more threads than CPUs crashes torch).
threads = whole(1, os.cpu_count() or 1)


def one_line(error: BaseException) -> str:
    """The message of ``error`` without what a data loader worker adds (``Caught ... Original Traceback ...``)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    if "Original Traceback" in text:  # re-raised from a worker: its last line is "SomeError: message"
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text


def _out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError | torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(
        words in str(error) for words in ("out of memory", "can't allocate memory", "not enough memory")
    )


def report_errors(program: Callable[[], int | None]) -> int:
    """Run ``program`` and return its exit status (0 for None); known failures print one line and return non-zero.

    Anything else is a bug and keeps its traceback.
    """
    try:
        status = program()
    except KeyboardInterrupt:
        print("error: interrupted; what was saved before is kept", file=sys.stderr)
        return 130
    except REFUSED as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return getattr(error, "exit_status", 2)
    except OSError as error:
        if error.errno in FULL:
            print(
                f"error: no space left to write {error.filename} ({error.strerror}): free some space or choose "
                f"another output; what was saved before is kept",
                file=sys.stderr,
            )
        else:
            print(f"error: {error.strerror or error}{f': {error.filename}' if error.filename else ''}", file=sys.stderr)
        return 1
    except Exception as error:
        if not _out_of_memory(error):
            raise
        print(
            f"error: out of memory ({one_line(error).splitlines()[0]}): try smaller sizes or batches", file=sys.stderr
        )
        return 1
    return 0 if status is None else status


def study_parser(module: str, description: str | None, seeds: int = 3, quick: bool = True) -> argparse.ArgumentParser:
    """The command line every study starts from: ``--seeds``, ``--threads`` and, with ``quick``, ``--quick`` (the
    tests' tiny setting); the study adds its own options, then calls :func:`parse_study`."""
    parser = argparse.ArgumentParser(prog=f"python -m vgg_tutorial.{module}", description=description)
    parser.add_argument("--seeds", type=whole(1), default=seeds, help="seeds per cell (default: %(default)s)")
    if quick:
        parser.add_argument("--quick", action="store_true", help="a tiny setting that runs in seconds (for tests)")
    parser.add_argument("--threads", type=threads, default=1, help="torch threads (default: %(default)s)")
    return parser


def parse_study(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """Parse a study's options, set torch's thread count, and return them with the command line as typed (what its
    results file records)."""
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args, f"{parser.prog} " + " ".join(argv if argv is not None else sys.argv[1:])
