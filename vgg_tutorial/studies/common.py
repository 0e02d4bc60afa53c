"""Studies: many short runs kept in one restartable results file, and the trained weights some of them keep.

The Table 3 study (:mod:`vgg_tutorial.studies.experiments`), the testing study
(:mod:`vgg_tutorial.studies.testing_study`) and chapter 6's experiments (:mod:`vgg_tutorial.studies.failures`) each
train dozens of small nets. Each run's result is added to one JSON file, rewritten atomically after every run, so an
interrupted study loses at most the run in progress and continues where it stopped. A results file records its study,
its format and the settings it was made with; one made by another study, another format or other settings is refused
with the reason, never mixed with new runs. Saved weights go through the checkpoints' own checks
(:func:`~vgg_tutorial.training.runs.load_checkpoint`: CRC-32 of every record, ``weights_only=True``, format), and must
have been trained with the study's settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from vgg_tutorial.training.engine import progress
from vgg_tutorial.training.runs import FORMAT, RunError, atomic_save, atomic_write_text, check_writable, load_checkpoint

#: The layout of the results files this version writes and reads (files without the key have this same layout).
STUDY_FORMAT = 1
#: A results file larger than this is not one of ours (the committed ones are under 1 MB): refused before reading.
MAX_RESULTS_BYTES = 64 * 2**20


class StudyError(RunError, ValueError):
    """A study's results or weights file cannot be used (another study's, other settings, damaged); says why."""


def _differences(found: dict, wanted: dict) -> list[str]:
    """The keys of ``wanted`` whose value in ``found`` differs, as ``key: found, wanted``."""
    wanted = json.loads(json.dumps(wanted))  # tuples as lists, as they come back from JSON
    return [
        f"{key}: {found.get(key)!r} there, {value!r} now" for key, value in wanted.items() if found.get(key) != value
    ]


def open_study(path: str | Path, settings: dict, study: str) -> dict:
    """The results the ``study`` already holds in the JSON file ``path`` (none when it does not exist), with
    ``settings``, ``study``, ``format`` and a ``runs`` dict. Raises :class:`StudyError` for a folder, an unwritable
    place, a file that is not a results file, and one of another study, format or settings."""
    path = check_writable(path)
    if not path.exists():
        return settings | {"study": study, "format": STUDY_FORMAT, "runs": {}}
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise StudyError(f"{path} is too large to be a study's results file; choose another file")
    try:
        results = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise StudyError(f"{path} is not a study's results file (not JSON: {error}); choose another file") from None
    if not isinstance(results, dict) or not isinstance(results.get("runs"), dict):
        raise StudyError(f"{path} is not a study's results file (no runs); choose another file")
    if results.get("study", study) != study or results.get("format", STUDY_FORMAT) != STUDY_FORMAT:
        raise StudyError(
            f"{path} holds the study {results.get('study')!r} in format {results.get('format', STUDY_FORMAT)!r}, not "
            f"{study!r} in format {STUDY_FORMAT}; choose another file"
        )
    if problems := _differences(results, settings):
        raise StudyError(f"{path} holds a study with other settings ({'; '.join(problems)}); choose another file")
    return settings | {"study": study, "format": STUDY_FORMAT} | results


def run_missing(path: str | Path, results: dict, todo: list[tuple[str, int]], run) -> dict:
    """Call ``run(name, seed)`` for every ``(name, seed)`` of ``todo`` that ``results["runs"]`` does not hold yet,
    rewriting ``path`` atomically after each: an interrupted study loses at most the run in progress."""
    for name, seed in progress(todo, desc="runs"):
        runs = results["runs"].setdefault(name, {})
        if str(seed) not in runs:
            runs[str(seed)] = run(name, seed)
            atomic_write_text(json.dumps(results, indent=1) + "\n", path)
    return results


def save_weights(path: str | Path, state: dict) -> None:
    """Save a study's trained net (``state``: ``model`` weights and what rebuilds them) atomically, with the format."""
    atomic_save({**state, "format": FORMAT}, path)


def load_weights(path: str | Path, expected: dict) -> dict:
    """A net saved by :func:`save_weights`, checked as checkpoints are; raises :class:`StudyError` unless it has a
    ``model`` and the values of ``expected`` (the settings it must have been trained with)."""
    state = load_checkpoint(path)
    if "model" not in state:
        raise StudyError(f"{path} holds no model weights; delete it, and the study trains the net again")
    if problems := _differences(state, expected):
        raise StudyError(
            f"{path} was trained with other settings ({'; '.join(problems)}); delete it (the study trains it again), "
            f"or choose another folder"
        )
    return state
