"""The cluttered task of Table 3 at a real size: deterministic, balanced, harder than the plain shapes."""

import pytest
import torch

from vgg_tutorial.data import cluttered
from vgg_tutorial.data.synthetic import render_split


def test_same_arguments_same_images_and_labels_cycle():
    a, labels = cluttered.render_cluttered("train", image_size=40, per_class=3, seed=1)
    b, _ = cluttered.render_cluttered("train", image_size=40, per_class=3, seed=1)
    assert a.dtype == torch.uint8 and a.shape == (30, 3, 40, 40)
    assert torch.equal(a, b)
    assert labels.tolist() == [i % 10 for i in range(30)]


def test_splits_and_seeds_differ_and_validation_does_not_depend_on_the_training_size():
    train, _ = cluttered.render_cluttered("train", image_size=32, per_class=2)
    val, _ = cluttered.render_cluttered("val", image_size=32, per_class=2)
    other, _ = cluttered.render_cluttered("train", image_size=32, per_class=2, seed=1)
    assert not torch.equal(train, val) and not torch.equal(train, other)
    small, _ = cluttered.render_cluttered("val", image_size=32, per_class=2, chunk=7)
    assert torch.equal(small, val)  # chunking changes nothing


def test_clutter_changes_the_picture_of_the_plain_task():
    plain, _ = render_split("train", image_size=48, per_class=2)
    busy, _ = cluttered.render_cluttered("train", image_size=48, per_class=2)
    assert not torch.equal(plain, busy)
    assert len(cluttered.draw_layers(torch.arange(5), torch.Generator().manual_seed(0))) == cluttered.CLUTTER + 1


def test_distractors_stay_smaller_than_the_object():
    assert cluttered.DISTRACTOR_RADIUS[1] < cluttered.OBJECT_RADIUS[0]
    layers = cluttered.draw_layers(torch.arange(200) % 10, torch.Generator().manual_seed(0))
    main = layers[cluttered.CLUTTER // 2][1]["radius"]
    others = torch.stack([params["radius"] for i, (_, params) in enumerate(layers) if i != cluttered.CLUTTER // 2])
    assert (others.amax(0) < main).all()


@pytest.mark.parametrize("bad", [{"image_size": 4}, {"per_class": 0}, {"split": "test"}])
def test_bad_arguments_are_refused_with_the_valid_values(bad):
    with pytest.raises(ValueError, match="image_size|per_class|expected one of"):
        cluttered.render_cluttered(**{"image_size": 32, "per_class": 1} | bad)
