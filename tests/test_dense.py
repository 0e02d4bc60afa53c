"""Dense evaluation (§3.2): FC layers as convolutions give the same logits at 224 px and a score map beyond."""

import pytest
import torch
from torch import nn

from vgg_tutorial.paper.dense import FullyConvolutionalVGG, linear_to_conv, to_fully_convolutional
from vgg_tutorial.paper.models import vgg


@pytest.fixture(scope="module")
def small():
    """A thin VGG-D with the paper's 7×7 pool, cheap enough to run at 224 and 384 px."""
    torch.manual_seed(0)
    return vgg("D", width=1 / 16, fc_width=64, num_classes=10).eval()


def test_classifier_becomes_a_7x7_conv_and_two_1x1_convs(small):
    dense = to_fully_convolutional(small)
    convs = [m for m in dense.classifier if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(7, 7), (1, 1), (1, 1)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(32, 64), (64, 64), (64, 10)]
    assert isinstance(dense, FullyConvolutionalVGG) and dense.features is small.features
    assert not dense.training
    # The same numbers, reshaped: the original model keeps its own copy.
    assert torch.equal(convs[0].weight.flatten(1), small.classifier[0].weight)
    assert convs[0].weight.data_ptr() != small.classifier[0].weight.data_ptr()


def test_same_logits_at_224(small):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        dense = to_fully_convolutional(small)
        assert dense.score_map(x).shape == (2, 10, 1, 1)
        torch.testing.assert_close(dense(x), small(x), rtol=1e-5, atol=1e-5)


def test_score_map_at_384_is_6x6_and_averages_into_scores(small):
    x = torch.randn(1, 3, 384, 384)
    dense = to_fully_convolutional(small)
    with torch.no_grad():
        scores = dense.score_map(x)
        assert scores.shape == (1, 10, 6, 6)
        torch.testing.assert_close(dense(x), scores.mean(dim=(2, 3)))
        # Each position is the FC classifier applied to one 7×7 window of the last feature map.
        features = small.features(x)
        assert features.shape[2:] == (12, 12)
        window = features[:, :, 2:9, 3:10].flatten(1)
        torch.testing.assert_close(scores[:, :, 2, 3], small.classifier(window), rtol=1e-5, atol=1e-5)


def test_linear_to_conv_on_a_single_window():
    torch.manual_seed(0)
    linear = nn.Linear(4 * 3 * 3, 5)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(linear_to_conv(linear, 4, 3)(x).flatten(1), linear(x.flatten(1)))


def test_small_pool_size_model():
    torch.manual_seed(0)
    model = vgg("A", width=1 / 8, fc_width=32, pooled_size=1, num_classes=3).eval()
    dense = to_fully_convolutional(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), model(x), rtol=1e-5, atol=1e-5)
        assert dense.score_map(torch.randn(1, 3, 96, 96)).shape == (1, 3, 3, 3)


def test_too_small_for_the_7x7_window(small):
    dense = to_fully_convolutional(small)
    with pytest.raises(ValueError, match="at least 7×7"):
        dense(torch.randn(1, 3, 128, 128))
    with pytest.raises(ValueError, match="4-D"):
        dense(torch.randn(3, 224, 224))


def test_full_size_d_at_224():
    """The chapter's check, with its seeds: same logits up to rounding, same top-5 classes."""
    torch.manual_seed(0)
    model = vgg("D").eval()
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        logits, dense_logits = model(x), to_fully_convolutional(model)(x)
    torch.testing.assert_close(dense_logits, logits, rtol=1e-4, atol=1e-5)
    assert torch.equal(logits.topk(5).indices, dense_logits.topk(5).indices)


def test_score_map_sizes_of_full_size_d():
    with torch.device("meta"):
        dense = to_fully_convolutional(vgg("D"))
        sides = {size: dense.score_map(torch.zeros(1, 3, size, size)).shape[2:] for size in (224, 256, 384, 512)}
    assert sides == {224: (1, 1), 256: (2, 2), 384: (6, 6), 512: (10, 10)}
