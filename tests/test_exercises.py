"""The exercise checks pass right answers and name the mistake in the typical wrong ones."""

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vgg_tutorial.lessons import exercises
from vgg_tutorial.lessons.exercises import ExerciseError
from vgg_tutorial.paper.accounting import count_macs, count_parameters, receptive_field
from vgg_tutorial.paper.configs import CONFIGS, LRN, Conv, MaxPool, feature_layers, parse_layer
from vgg_tutorial.paper.dense import to_fully_convolutional
from vgg_tutorial.paper.models import alexnet_lrn, vgg


@pytest.fixture(scope="module")
def vgg16():
    """One full-size VGG-16, shared by the hand-written variants below so that each test builds no new weights."""
    torch.manual_seed(0)
    return vgg("D")


def max_pool(x):
    return F.max_pool2d(x, 2)


def functional_dropout(x, model):
    return F.dropout(x, 0.5, model.training)


class HandWritten16(nn.Module):
    """A learner-style VGG-16 with functional ReLU, pooling and flattening, reusing ``base``'s layers.

    The keyword arguments plant one typical mistake each (or one unusual but right way of writing the model):
    ``pool`` and ``dropout`` replace max-pooling and dropout, ``flatten`` and ``final`` what comes before the first
    FC layer and after the last, ``keyword`` calls every layer as ``layer(input=x)``.
    """

    def __init__(
        self,
        base,
        *,
        skip_relu_after=None,
        skip_pool_after=None,
        flatten=None,
        final=None,
        fc=None,
        pool=max_pool,
        dropout=functional_dropout,
        keyword=False,
    ):
        super().__init__()
        self.convs = nn.ModuleList(m for m in base.features if isinstance(m, nn.Conv2d))
        self.fcs = fc or nn.ModuleList(m for m in base.classifier if isinstance(m, nn.Linear))
        self.skip_relu_after, self.skip_pool_after = skip_relu_after, skip_pool_after
        self.flatten = flatten or (lambda x: torch.flatten(x, 1))
        self.final = final or (lambda x: x)
        self.pool, self.dropout, self.keyword = pool, dropout, keyword

    def call(self, layer, x):
        return layer(input=x) if self.keyword else layer(x)

    def forward(self, x):
        index = 0
        for block, block_convs in enumerate((2, 2, 3, 3, 3)):
            for _ in range(block_convs):
                x = self.call(self.convs[index], x)
                x = x if index == self.skip_relu_after else F.relu(x)
                index += 1
            x = x if block == self.skip_pool_after else self.pool(x)
        x = self.flatten(x)
        for i, fc in enumerate(self.fcs):
            x = self.call(fc, x)
            if i < 2:
                x = F.relu(x)
                x = self.dropout(x, self) if self.dropout else x
        return self.final(x)


def check_fails(model, *fragments):
    """``check_vgg16(model)`` fails, and its message holds every fragment."""
    with pytest.raises(ExerciseError) as error:
        exercises.check_vgg16(model)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@contextlib.contextmanager
def first_conv(model, **changes):
    """Temporarily change attributes of ``model``'s first convolution (padding 0, another kernel size)."""
    conv = model.features[0]
    original = {name: getattr(conv, name) for name in changes}
    for name, value in changes.items():
        setattr(conv, name, value)
    try:
        yield model
    finally:
        for name, value in original.items():
            setattr(conv, name, value)


def test_check_vgg16_accepts_the_builder_model(vgg16, capsys):
    assert exercises.check_vgg16(vgg16) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "138,357,544 parameters" in out and "(batch, 1000)" in out


def test_check_vgg16_accepts_a_class_and_a_functional_style(vgg16, capsys):
    class VGG16(HandWritten16):  # a class the check instantiates itself
        def __init__(self):
            super().__init__(vgg16)

    assert exercises.check_vgg16(VGG16) is True
    assert capsys.readouterr().out.startswith("✓")


def test_check_vgg16_accepts_one_dropout_module_used_twice_and_keyword_calls(vgg16):
    model = HandWritten16(vgg16, keyword=True)
    model.drop = nn.Dropout(0.5)
    model.dropout = lambda x, m: m.drop(x)
    assert exercises.check_vgg16(model)


def test_check_vgg16_leaves_weights_mode_gradients_and_random_state_alone(vgg16):
    vgg16.train()
    state = torch.random.get_rng_state()
    weights = {name: p.detach().clone() for name, p in vgg16.named_parameters() if "classifier" in name}
    exercises.check_vgg16(vgg16)
    assert vgg16.training
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(p.grad is None for p in vgg16.parameters())
    assert all(torch.equal(p, weights[name]) for name, p in vgg16.named_parameters() if "classifier" in name)
    model = HandWritten16(vgg16, pool=lambda x: F.avg_pool2d(x, 2))  # a failing check restores them too
    first = model.convs[0].weight.detach().clone()
    check_fails(model, "average-pooled")
    assert torch.equal(model.convs[0].weight, first)


def test_softmax_and_log_softmax_in_forward(vgg16):
    check_fails(HandWritten16(vgg16, final=lambda x: F.softmax(x, dim=1)), "probabilities, not logits", "softmax")
    check_fails(HandWritten16(vgg16, final=lambda x: F.log_softmax(x, dim=1)), "log-probabilities")


def test_relu_after_the_last_layer(vgg16):
    check_fails(HandWritten16(vgg16, final=F.relu), "a ReLU follows the last FC layer")


def test_non_negative_logits_that_are_not_a_relu_are_not_blamed_on_one(vgg16):
    message = check_fails(
        HandWritten16(vgg16, final=lambda x: x.abs()), "output is not the last FC layer (FC-1000)'s output"
    )
    assert "ReLU" not in message


def test_padding_zero_names_the_layer(vgg16):
    with first_conv(vgg16, padding=(0, 0)):
        check_fails(
            vgg16, "weight layer 1 of 16 (your 'features.0')", "padding=(1, 1)", "padding=(0, 0)", "Use padding=1"
        )


def test_kernel_size_mistake_blames_the_kernel_not_the_padding(vgg16):
    with first_conv(vgg16, kernel_size=(5, 5), padding=(2, 2)):
        message = check_fails(vgg16, "Use kernel_size=3", "3×3 convolutions")
    assert "padding=1" not in message


def test_padding_same_is_accepted(vgg16):
    with first_conv(vgg16, padding="same"):
        assert exercises.check_vgg16(vgg16)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_view_with_any_fixed_batch_size_fails(vgg16, batch):
    model = HandWritten16(vgg16, flatten=lambda x: x.view(batch, -1))
    check_fails(model, "fixed batch size")


def test_missing_relu_names_the_layer_before(vgg16):
    check_fails(HandWritten16(vgg16, skip_relu_after=4), "after weight layer 5 (your 'convs.4') no ReLU follows it")


def test_missing_pool_says_the_map_is_too_large(vgg16):
    check_fails(
        HandWritten16(vgg16, skip_pool_after=1),
        "weight layer 5 of 16",
        "(3, 128, 112, 112), expected (3, 128, 56, 56)",
        "max-pooling missing",
    )


def test_missing_fifth_pool_hidden_by_the_adaptive_pool(vgg16):
    model = HandWritten16(vgg16, skip_pool_after=4, flatten=lambda x: torch.flatten(F.adaptive_avg_pool2d(x, 7), 1))
    check_fails(model, "after weight layer 13", "fifth max-pool is missing", "adaptive average pool hid it")


@pytest.mark.parametrize(
    "pool,expected",
    [
        (lambda x: F.avg_pool2d(x, 2), "average-pooled: VGG max-pools"),
        (nn.AvgPool2d(2), "average-pooled: VGG max-pools"),
        (nn.MaxPool2d(3, 2, 1), "overlapping 3×3 windows"),
    ],
)
def test_pooling_other_than_2x2_max_is_named(vgg16, pool, expected):
    check_fails(HandWritten16(vgg16, pool=pool), "after weight layer 2 (your 'convs.1')", expected)


def test_channels_last_flattening(vgg16):
    flatten = lambda x: torch.flatten(x.permute(0, 2, 3, 1), 1)  # noqa: E731
    check_fails(HandWritten16(vgg16, flatten=flatten), "(height, width, channels) order")


def test_wrong_fc_width_names_the_layer(vgg16):
    torch.manual_seed(0)
    narrow = nn.ModuleList([nn.Linear(25088, 2048), nn.Linear(2048, 2048), nn.Linear(2048, 1000)])
    check_fails(
        HandWritten16(vgg16, fc=narrow),
        "weight layer 14 of 16 (your 'fcs.0')",
        "expected Linear(in_features=25088, out_features=4096",
        "out_features=2048",
    )


def test_one_layer_called_twice_shares_its_weights(vgg16):
    convs = list(vgg16.features[i] for i, m in enumerate(vgg16.features) if isinstance(m, nn.Conv2d))
    model = HandWritten16(vgg16)
    model.convs = nn.ModuleList(convs[:12] + [convs[11]])  # the last 512→512 convolution reuses the one before
    check_fails(model, "weight layer 13 of 16 is 'convs.11' again", "its own weights")


def test_batch_norm_is_not_in_table_1(vgg16):
    model = HandWritten16(vgg16)
    model.bn = nn.BatchNorm2d(64)
    model.pool = lambda x: F.max_pool2d(model.bn(x) if x.shape[1] == 64 else x, 2)
    message = check_fails(model, "'bn', BatchNorm2d(64", "no batch normalisation")
    assert "weight layer" not in message


def test_unused_layer_shows_in_the_parameter_count(vgg16):
    model = HandWritten16(vgg16)
    model.unused = nn.Linear(10, 10)
    check_fails(model, "138,357,654 parameters, VGG-16 has 138,357,544 (a difference of +110)")


@pytest.mark.parametrize(
    "dropout,expected",
    [
        (None, "applies no dropout"),
        (lambda x, m: F.dropout(x, 0.2, m.training), "dropout rates are [0.2, 0.2]"),
        (lambda x, m: F.dropout(x, 0.5), "dropout is active in evaluation mode"),  # training= forgotten
        (lambda x, m: F.dropout(x, 0.5, training=False), "your dropout does nothing"),
        (lambda x, m: F.dropout(F.dropout(x, 0.5, m.training), 0.5, m.training), "dropout 2 times after FC layer 1"),
        (lambda x, m: F.dropout(x, 0.5, m.training, inplace=True), "in-place"),
    ],
)
def test_dropout_is_judged_by_its_calls(vgg16, dropout, expected):
    check_fails(HandWritten16(vgg16, dropout=dropout), expected)


def test_dropout_on_the_logits_or_the_features(vgg16):
    model = HandWritten16(vgg16, final=lambda x: F.dropout(x, 0.5, model.training))
    check_fails(model, "dropout to the logits")
    model = HandWritten16(vgg16, flatten=lambda x: F.dropout(torch.flatten(x, 1), 0.5, model.training))
    check_fails(model, "dropout before the first FC layer")


def test_a_detached_layer_gets_no_gradient(vgg16):
    model = HandWritten16(vgg16, flatten=lambda x: torch.flatten(x, 1).detach())
    check_fails(model, "'convs.0.weight' has no gradient")


def test_stub_says_not_written_yet():
    class VGG16(nn.Module):
        def __init__(self):
            super().__init__()
            raise NotImplementedError("Exercise")

    with pytest.raises(ExerciseError, match="not written yet: it still raises NotImplementedError"):
        exercises.check_vgg16(VGG16)
    with pytest.raises(ExerciseError, match="expected an nn.Module"):
        exercises.check_vgg16(lambda: None)


def test_a_failing_check_shows_only_its_message_in_a_notebook():
    error = ExerciseError("your forward returns probabilities")
    assert (
        len(error._render_traceback_()) == 1 and "your forward returns probabilities" in error._render_traceback_()[0]
    )


# A learner's make_layers(config, batch_norm): a right one, and versions with one typical mistake each.
def make_layers(config, batch_norm, *, padding=1, relu=True, pool_kernel=2, lrn=alexnet_lrn):
    layers, channels = [], 3
    for block in config:
        for text in block:
            layer = parse_layer(text)
            if isinstance(layer, LRN):
                layers.append(lrn())
                continue
            layers.append(nn.Conv2d(channels, layer.channels, layer.kernel, padding=padding if layer.kernel > 1 else 0))
            layers += [nn.BatchNorm2d(layer.channels)] if batch_norm else []
            layers += [nn.ReLU(inplace=True)] if relu else []
            channels = layer.channels
        layers.append(nn.MaxPool2d(pool_kernel, 2))
    return nn.Sequential(*layers)


def test_check_layer_builder_accepts_right_builders(capsys):
    assert exercises.check_layer_builder(make_layers)
    assert exercises.check_layer_builder(lambda config, bn: list(make_layers(config, bn)))  # a list is fine too
    assert "configurations A, A-LRN, B, C, D, E" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake,expected",
    [
        (dict(padding=0), "configuration A with batch_norm=False: layer 0 differs"),
        (dict(relu=False), "expected ReLU(inplace=True), got MaxPool2d"),
        (dict(pool_kernel=3), "layer 2 differs: expected MaxPool2d(kernel_size=2"),
        (dict(lrn=lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)), "divides alpha by size"),
    ],
)
def test_check_layer_builder_names_the_mistake(mistake, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_layer_builder(lambda config, bn: make_layers(config, bn, **mistake))
    assert expected in str(error.value)


def test_check_layer_builder_sees_missing_batch_norm_and_a_restricted_set():
    def no_bn(config, batch_norm):
        return make_layers(config, False)

    with pytest.raises(ExerciseError, match="configuration D with batch_norm=True: layer 1 differs"):
        exercises.check_layer_builder(no_bn, names=["D"])

    def conv3_only(config, batch_norm):  # ignores conv1 and LRN: fine for A, B, D, E only
        return make_layers(tuple(tuple(t for t in block if t.startswith("conv3")) for block in config), batch_norm)

    assert exercises.check_layer_builder(conv3_only, names=["A", "B", "D", "E"])
    with pytest.raises(ExerciseError, match="configuration A-LRN"):
        exercises.check_layer_builder(conv3_only)


def test_check_layer_builder_stub():
    def stub(config, batch_norm):
        raise NotImplementedError("Exercise")

    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_layer_builder(stub)


def student_receptive_field(name, *, start=1, pool_grows=True, use_jump=True):
    rf, jump = start, 1
    layers = feature_layers(name)[:-1]  # the last convolution's field: the final pool does not count
    for layer in layers:
        if isinstance(layer, Conv):
            rf += (layer.kernel - 1) * (jump if use_jump else 1)
        elif isinstance(layer, MaxPool):
            rf += (layer.kernel - 1) * (jump if use_jump else 1) if pool_grows else 0
            jump *= layer.stride
    return rf


def test_check_receptive_field(capsys):
    assert exercises.check_receptive_field(student_receptive_field)
    assert "D 196" in capsys.readouterr().out
    assert receptive_field("D") == 196


@pytest.mark.parametrize(
    "mistake,expected",
    [
        (
            dict(start=0),
            "configuration A: your receptive field is 133, the reference is 134 pixels per side: off by one",
        ),
        (dict(use_jump=False), "product of the strides"),
        (dict(pool_grows=False), "a 2×2 max-pool widens the field too"),
    ],
)
def test_check_receptive_field_names_the_slip(mistake, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_receptive_field(lambda name: student_receptive_field(name, **mistake))
    assert expected in str(error.value)


def student_param_count(name, batch_norm=False, *, biases=True, bn_per_channel=2):
    total, channels = 0, 3
    for layer in feature_layers(name):
        if isinstance(layer, Conv):
            total += layer.kernel**2 * channels * layer.channels + (layer.channels if biases else 0)
            total += bn_per_channel * layer.channels if batch_norm else 0
            channels = layer.channels
    for width_in, width_out in ((channels * 49, 4096), (4096, 4096), (4096, 1000)):
        total += width_in * width_out + (width_out if biases else 0)
    return total


def test_check_param_count(capsys):
    assert exercises.check_param_count(student_param_count)
    assert "VGG-16: 138,357,544" in capsys.readouterr().out
    assert student_param_count("D") == count_parameters("D") == 138_357_544


@pytest.mark.parametrize(
    "mistake,expected",
    [
        (dict(biases=False), "exactly the number of biases"),
        (dict(bn_per_channel=4), "running mean and variance are buffers"),
        (dict(bn_per_channel=0), "count them too"),
    ],
)
def test_check_param_count_names_the_slip(mistake, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_param_count(lambda name, batch_norm=False: student_param_count(name, batch_norm, **mistake))
    assert expected in str(error.value)


def test_check_param_count_needs_the_keyword():
    with pytest.raises(ExerciseError, match="unexpected keyword argument 'batch_norm'"):
        exercises.check_param_count(lambda name: count_parameters(name))


def learner_conversion(model, *, reshape=None, keep_pool=False, last_linear=False):
    """A learner's FC → conv conversion returning the score map from forward; each keyword plants a mistake."""
    layers = list(model.features) + ([model.avgpool] if keep_pool else [])
    channels = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    for i, linear in enumerate(linears):
        if last_linear and i == 2:
            layers += [nn.Flatten(), linear]
            break
        kernel = 7 if i == 0 else 1
        in_channels = channels if i == 0 else linear.in_features
        conv = nn.Conv2d(in_channels, linear.out_features, kernel)
        weight = linear.weight.detach()
        if reshape == "channels_last":
            weight = weight.reshape(linear.out_features, kernel, kernel, in_channels).permute(0, 3, 1, 2)
        conv.weight.data.copy_(weight.reshape(conv.weight.shape))
        conv.bias.data.copy_(linear.bias.detach())
        layers += [conv] + ([nn.ReLU()] if i < 2 else [])
    return nn.Sequential(*layers)


def test_check_dense_conversion_accepts_both_conventions(capsys):
    assert exercises.check_dense_conversion(learner_conversion)  # the score map from forward
    assert exercises.check_dense_conversion(to_fully_convolutional)  # the package's: score_map(x), averaged forward
    assert "6×6 class score map" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake,expected",
    [
        (dict(reshape="channels_last"), "scores differ from the original model's logits"),
        (dict(keep_pool=True), "calls an adaptive pool"),
        (dict(last_linear=True), "still calls a Linear layer"),
    ],
)
def test_check_dense_conversion_names_the_mistake(mistake, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_dense_conversion(lambda model: learner_conversion(model, **mistake))
    assert expected in str(error.value)


def test_check_dense_conversion_wants_a_map():
    def averaged(model):
        return nn.Sequential(learner_conversion(model), nn.Flatten())

    with pytest.raises(ExerciseError, match=r"returns shape \(1, 5\) on a 224×224 image"):
        exercises.check_dense_conversion(averaged)


# A learner's train_step(model, batch, optimizer), right and with one typical mistake each.
def train_step(model, batch, optimizer, *, train=True, zero_grad=True, step=True, softmax=False, item=True):
    images, labels = batch
    if train:
        model.train()
    if zero_grad:
        optimizer.zero_grad()
    outputs = model(images)
    loss = F.cross_entropy(F.softmax(outputs, dim=1) if softmax else outputs, labels)
    loss.backward()
    if step:
        optimizer.step()
    return loss.item() if item else loss


def test_check_training_step_accepts_the_right_step(capsys):
    assert exercises.check_training_step(train_step)
    assert capsys.readouterr().out.startswith("✓ Your training step")


@pytest.mark.parametrize(
    "mistake,expected",
    [
        (dict(zero_grad=False), "call optimizer.zero_grad() before loss.backward()"),
        (dict(train=False), "call model.train()"),
        (dict(step=False), "did not change the parameters"),
        (dict(softmax=True), "no softmax"),
        (dict(item=False), "return loss.item()"),
    ],
)
def test_check_training_step_names_the_mistake(mistake, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_training_step(lambda *args: train_step(*args, **mistake))
    assert expected in str(error.value)


def test_zero_grad_between_backward_and_step():
    def late_zero_grad(model, batch, optimizer):
        model.train()
        loss = F.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        return loss.item()

    with pytest.raises(ExerciseError, match="not between backward and step"):
        exercises.check_training_step(late_zero_grad)


def test_exercise_error_is_an_assertion_error():
    assert issubclass(ExerciseError, AssertionError)
    assert set(CONFIGS) == {"A", "A-LRN", "B", "C", "D", "E"}


def test_check_layer_builder_counts_missing_layers():
    def no_last_pool(config, batch_norm):
        return make_layers(config, batch_norm)[:-1]

    with pytest.raises(
        ExerciseError, match=r"returned 20 layers, the reference 21; the first missing one is MaxPool2d"
    ):
        exercises.check_layer_builder(no_last_pool, names=["A"])


def test_check_chance_loss_accepts_ln_k_as_float_or_tensor(capsys):
    assert exercises.check_chance_loss(lambda k: math.log(k))
    assert "0.693 for 2 classes, 2.303 for 10, 6.908 for 1000" in capsys.readouterr().out
    # the learner's other way: the loss of all-zero logits, a float32 tensor
    assert exercises.check_chance_loss(lambda k: F.cross_entropy(torch.zeros(1, k), torch.tensor([0])))


@pytest.mark.parametrize(
    "answer,expected",
    [
        (lambda k: math.log10(k), "your chance loss is 1, expected ln 10 = 2.3026: you used log base 10"),
        (lambda k: math.log2(k), "log base 2"),
        (lambda k: 1 / k, "that is the probability each class gets; the loss is −ln"),
        (lambda k: 1 - 1 / k, "error rate of guessing"),
        (lambda k: math.log(1 / k), "the sign is wrong"),
        (lambda k: k, "number of classes itself"),
        (lambda k: math.log(10), "for 2 classes your chance loss is 2.303, expected ln 2 = 0.6931: it equals the loss"),
        (lambda k: math.log(k + 1), "expected ln 10 = 2.3026."),
        (lambda k: "2.303", "returns the string '2.303': return the number itself"),
    ],
)
def test_check_chance_loss_names_the_slip(answer, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_chance_loss(answer)
    assert expected in str(error.value)


def test_check_chance_loss_stub():
    def stub(num_classes):
        raise NotImplementedError("Exercise")

    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_chance_loss(stub)


def hand_training_flops(name, image_size, num_classes, *, flops_per_mac=2, passes=3, biases=False, fixed_size=None):
    """A learner's count from Table 1 alone: weight products of every layer; keywords plant the usual slips."""
    size, channels, macs = fixed_size or image_size, 3, 0
    for layer in feature_layers(name):
        if isinstance(layer, Conv):
            macs += (layer.kernel**2 * channels + biases) * layer.channels * size**2
            channels = layer.channels
        elif isinstance(layer, MaxPool):
            size //= layer.stride
    features = channels * 7 * 7
    for width in (4096, 4096, num_classes):
        macs += (features + biases) * width
        features = width
    return passes * flops_per_mac * macs


def test_check_training_flops_accepts_the_hand_count_and_count_macs(capsys):
    assert exercises.check_training_flops(hand_training_flops)
    assert "VGG-16 at 224 px: 92.8 GFLOPs per image" in capsys.readouterr().out
    assert exercises.check_training_flops(
        lambda name, size, k: 6 * count_macs(name, image_size=size, num_classes=k, weights_only=True)
    )
    assert hand_training_flops("D", 224, 1000) == 6 * 15_470_264_320  # torchvision's 15.47 "GFLOPS" for vgg16


@pytest.mark.parametrize(
    "mistake,expected",
    [
        (dict(flops_per_mac=1), "(0.500 times it): a multiply-accumulate (MAC) is two FLOPs"),
        (dict(passes=1), "(0.333 times it): that is the forward pass alone"),
        (dict(passes=1, flops_per_mac=1), "that is the forward pass's MACs"),
        (dict(biases=True), "close but not equal"),
        (dict(fixed_size=224), "configuration D at 160 px with 10 classes: you count"),
    ],
)
def test_check_training_flops_names_the_slip(mistake, expected):
    with pytest.raises(ExerciseError) as error:
        exercises.check_training_flops(lambda *args: hand_training_flops(*args, **mistake))
    assert expected in str(error.value)


def test_check_training_flops_sees_the_fixed_size_torchinfo_convention_and_classes():
    with pytest.raises(ExerciseError, match="that is the count at 224 px"):
        exercises.check_training_flops(lambda name, size, k: hand_training_flops(name, 224, k))
    with pytest.raises(ExerciseError, match="that is the count for 1000 classes"):
        exercises.check_training_flops(lambda name, size, k: hand_training_flops(name, size, 1000))
    with pytest.raises(ExerciseError, match="that is torchinfo's convention"):
        exercises.check_training_flops(
            lambda name, size, k: 6 * count_macs(name, batch_norm=True, image_size=size, num_classes=k)
        )


def test_check_training_flops_stub():
    def stub(name, image_size, num_classes):
        raise NotImplementedError("Exercise")

    with pytest.raises(ExerciseError, match="not written yet"):
        exercises.check_training_flops(stub)


@pytest.mark.parametrize(
    "answer,expected",
    [
        (None, "returns None: does your function end with a return statement?"),
        ((138_357_544,), "returns a tuple"),
        ("138,357,544", "returns the string '138,357,544'"),
        (1.5, "not a whole number"),
        ([1, 2], "returns a list"),
    ],
)
def test_numeric_checks_read_any_answer(answer, expected):
    for check in (exercises.check_param_count, exercises.check_receptive_field):
        function = (
            (lambda name, batch_norm=False: answer) if check is exercises.check_param_count else (lambda n: answer)
        )
        with pytest.raises(ExerciseError) as error:
            check(function)
        assert expected in str(error.value)
    if answer != 1.5:
        with pytest.raises(ExerciseError, match=expected.split(":")[0].replace("(", r"\(").replace(")", r"\)")):
            exercises.check_chance_loss(lambda k: answer)


def test_numpy_numbers_are_numbers(capsys):
    assert exercises.check_param_count(
        lambda name, batch_norm=False: np.int64(count_parameters(name, batch_norm=batch_norm))
    )
    assert exercises.check_receptive_field(lambda name: np.int32(receptive_field(name)))
    assert exercises.check_chance_loss(lambda k: np.float32(np.log(k)))
    assert exercises.check_training_flops(lambda *args: np.float64(hand_training_flops(*args)))
    assert exercises.check_chance_loss(lambda k: np.log(np.array(k, dtype=np.float64)))  # a 0-d array


def test_training_step_may_return_a_numpy_float():
    def step(model, batch, optimizer):
        return np.float32(train_step(model, batch, optimizer))

    assert exercises.check_training_step(step)


def test_dense_conversion_ignores_an_unused_adaptive_pool(capsys):
    class Dense(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.body = learner_conversion(model)
            self.avgpool = nn.AdaptiveAvgPool2d(7)  # kept from the original model, never called

        def forward(self, x):
            return self.body(x)

    def convert(model):
        return Dense(model)

    assert exercises.check_dense_conversion(convert)
