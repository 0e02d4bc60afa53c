"""vgg()'s arguments and the model's input are checked, with messages that name the valid values (issue 12, item 8)."""

import pytest
import torch

from vgg_tutorial.paper.models import vgg

#: A model small enough to build in milliseconds, so that nonsense the old code accepted fails the test quickly.
SMALL = dict(width=1 / 16, fc_width=8, pooled_size=1, num_classes=10)


@pytest.mark.parametrize(
    "argument,value,error,message",
    [
        ("num_classes", 0, ValueError, "num_classes must be at least 1, got 0"),
        ("num_classes", -3, ValueError, "num_classes must be at least 1"),
        ("num_classes", 2.5, TypeError, "num_classes must be a whole number of at least 1"),
        ("num_classes", True, TypeError, "num_classes must be a whole number"),
        ("batch_norm", "no", TypeError, "batch_norm must be True or False, got 'no'"),
        ("batch_norm", 1, TypeError, "batch_norm must be True or False"),
        ("width", 0, ValueError, "width must be a finite number greater than 0"),
        ("width", -1, ValueError, "width must be a finite number greater than 0"),
        ("width", float("nan"), ValueError, "greater than 0 .*got nan"),
        ("width", float("inf"), ValueError, "finite"),
        ("width", "1", TypeError, "width must be a number greater than 0"),
        ("fc_width", 0, ValueError, "fc_width must be at least 1"),
        ("fc_width", 1.5, TypeError, "fc_width must be a whole number"),
        ("pooled_size", 0, ValueError, "pooled_size must be at least 1"),
    ],
)
def test_nonsense_arguments_are_rejected(argument, value, error, message):
    with pytest.raises(error, match=message):
        vgg("A", **{**SMALL, argument: value})


def test_sensible_arguments_still_build():
    model = vgg("A", **{**SMALL, "width": 1, "num_classes": 1, "batch_norm": True})
    assert model.classifier[-1].out_features == 1
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.features)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_integer_images_get_a_clear_message(dtype):
    model = vgg("A", **SMALL)
    images = torch.randint(0, 256, (1, 3, 32, 32)).to(dtype)
    with pytest.raises(ValueError, match=r"floating-point images, got torch\.(uint8|int64); .*x\.float\(\) / 255"):
        model(images)


def test_float64_images_get_a_clear_message():
    model = vgg("A", **SMALL)
    with pytest.raises(ValueError, match=r"float64 but the model's weights are torch\.float32: use x\.float\(\)"):
        model(torch.rand(1, 3, 32, 32, dtype=torch.float64))
    assert model.double()(torch.rand(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64  # both float64: fine
