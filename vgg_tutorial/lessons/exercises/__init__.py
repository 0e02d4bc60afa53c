"""Checks that learners run on their own code, each saying precisely what is wrong, or that all is right.

Every check follows one design, chosen for notebooks:

- **Right**: it prints one short line that starts with ``✓`` and returns ``True``.
- **Wrong**: it raises :class:`ExerciseError`, a subclass of ``AssertionError``, whose message names the layer,
  configuration or number that differs, shows what was expected and what was received, and names the cause it
  recognised. Raising (rather than printing and returning ``False``) stops "Run all" at the first unfinished
  exercise, marks the cell red, and lets ``pytest`` and ``nbval`` treat a failing check like any failing ``assert``;
  in a notebook only the message shows, not the check's own traceback.
- **Not written yet**: a function that still raises ``NotImplementedError`` (the stub of the student edition) gives
  an :class:`ExerciseError` that says so, not a traceback.
- **Not a number**: ``None`` (a forgotten ``return``), a tuple or a string gets a message that says so; numpy
  scalars and one-element tensors count as numbers.

Checks judge behaviour where they can: a model by the numbers it computes with the reference's weights, a
conversion by its scores, a training step by the parameters it leaves. One module per kind of exercise:

- :mod:`~vgg_tutorial.lessons.exercises.vgg16`: ``check_vgg16`` (chapter 2);
- :mod:`~vgg_tutorial.lessons.exercises.layers`: ``check_layer_builder`` (chapter 3);
- :mod:`~vgg_tutorial.lessons.exercises.counting`: ``check_receptive_field``, ``check_param_count`` (chapter 1),
  ``check_training_flops`` (chapter 7);
- :mod:`~vgg_tutorial.lessons.exercises.conversion`: ``check_dense_conversion`` (chapter 4);
- :mod:`~vgg_tutorial.lessons.exercises.training`: ``check_training_step`` (chapter 5), ``check_chance_level``
  (chapter 6) and ``check_chance_loss``;
- :mod:`~vgg_tutorial.lessons.exercises.experiments`: ``check_separated`` (chapter 8), ``check_crop_grid`` (chapter 9),
  ``check_shard`` (chapter 10);
- :mod:`~vgg_tutorial.lessons.exercises.ensembles`: ``check_ensemble`` (chapter 12).
- :mod:`~vgg_tutorial.lessons.exercises.localisation`: ``check_flipped_box`` (chapter 13).
- :mod:`~vgg_tutorial.lessons.exercises.transfer`: ``check_descriptor`` (chapter 14);
- :mod:`~vgg_tutorial.lessons.exercises.control`: ``check_shallow_control`` (chapter 11).
"""

from vgg_tutorial.lessons.exercises.common import ExerciseError, as_number, passed, signature
from vgg_tutorial.lessons.exercises.control import check_shallow_control
from vgg_tutorial.lessons.exercises.conversion import check_dense_conversion
from vgg_tutorial.lessons.exercises.counting import check_param_count, check_receptive_field, check_training_flops
from vgg_tutorial.lessons.exercises.ensembles import check_ensemble
from vgg_tutorial.lessons.exercises.experiments import check_crop_grid, check_separated, check_shard
from vgg_tutorial.lessons.exercises.layers import check_layer_builder
from vgg_tutorial.lessons.exercises.localisation import check_flipped_box
from vgg_tutorial.lessons.exercises.training import check_chance_level, check_chance_loss, check_training_step
from vgg_tutorial.lessons.exercises.transfer import check_descriptor
from vgg_tutorial.lessons.exercises.vgg16 import VGG16_PARAMETERS, check_vgg16

__all__ = [
    "VGG16_PARAMETERS",
    "ExerciseError",
    "as_number",
    "check_chance_level",
    "check_chance_loss",
    "check_crop_grid",
    "check_dense_conversion",
    "check_descriptor",
    "check_ensemble",
    "check_flipped_box",
    "check_layer_builder",
    "check_param_count",
    "check_receptive_field",
    "check_separated",
    "check_shallow_control",
    "check_shard",
    "check_training_flops",
    "check_training_step",
    "check_vgg16",
    "passed",
    "signature",
]
