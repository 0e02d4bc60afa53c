"""Testing like the paper (§3.2, §4.2-4.3): the views, the dense net, how posteriors are averaged, the checkpoint."""

import dataclasses
import json

import pytest
import torch
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.data.datasets import DatasetNotFoundError, make_dataloaders
from vgg_tutorial.data.synthetic import SyntheticShapes
from vgg_tutorial.data.transforms import eval_transform
from vgg_tutorial.paper.accounting import forward_flops as table_flops
from vgg_tutorial.paper.models import vgg
from vgg_tutorial.testing import evaluate as ev
from vgg_tutorial.testing import views as vw
from vgg_tutorial.training.train import TrainConfig, build_model, train

TINY = dict(config="A", width=1 / 8, fc_width=16, pooled_size=1, image_size=32, in_memory=True, val_per_class=1)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (see conftest.py)."""


def make_checkpoint(folder, num_classes=10, weights_config=None, **changes):
    """A checkpoint as train() writes it (model weights, meta["config"]), from a freshly initialised tiny model."""
    cfg = TrainConfig(**{**TINY, **changes})
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg, config=weights_config or cfg.config), num_classes)
    path = folder / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "meta": {"config": dataclasses.asdict(cfg)}}, path)
    return path


def position_image(height, width):
    """An image whose pixels say where they are: channel 0 holds the row, channel 1 the column."""
    rows = torch.arange(height)[:, None].expand(height, width)
    cols = torch.arange(width)[None, :].expand(height, width)
    return torch.stack([rows, cols, torch.zeros_like(rows)])


# ---------------------------------------------------------------------------------------------------------------
# Views: scales, crops, flips
# ---------------------------------------------------------------------------------------------------------------


def test_the_50_crops_are_a_5x5_grid_touching_the_borders_then_their_flips():
    image = position_image(100, 130)
    crops = vw.grid_crops(image, 64)
    assert crops.shape == (50, 3, 64, 64)
    tops, lefts = [0, 9, 18, 27, 36], [0, 16, 33, 50, 66]  # (100 - 64) / 4 and (130 - 64) / 4 apart, rounded
    for index, (top, left) in enumerate((t, l) for t in tops for l in lefts):  # noqa: E741
        assert torch.equal(crops[index], image[:, top : top + 64, left : left + 64])
        flipped = crops[25 + index]
        assert flipped[0, 0, 0] == top and flipped[1, 0, 0] == left + 63 and flipped[1, 0, -1] == left
        assert torch.equal(flipped, crops[index].flip(-1))
    with pytest.raises(ValueError, match="64 px crops from a side of 60"):
        vw.grid_offsets(60, 64)


def test_rescale_sets_the_smaller_side_to_q_and_keeps_the_aspect_ratio():
    images = [torch.zeros(3, 40, 60, dtype=torch.uint8), torch.zeros(3, 90, 45, dtype=torch.uint8)]
    assert [tuple(i.shape[1:]) for i in vw.rescale(images, 64)] == [(64, 96), (128, 64)]


def test_the_centre_view_is_what_validation_during_training_sees():
    image = SyntheticShapes("val", image_size=40, per_class=1).images[3]
    view = vw.to_network_input(vw.center_crop(vw.rescale([image], 37)[0], 32)[None])
    assert torch.equal(view[0], eval_transform(37, 32)(image))


def test_test_scales_follow_section_4_2_scaled_to_the_crop():
    assert vw.evaluation_scales(224, (256, 256)) == (256, (224, 256, 288))  # S ± 32
    assert vw.evaluation_scales(224, (256, 512)) == (384, (256, 384, 512))  # S_min, middle, S_max
    assert vw.evaluation_scales(64, (73, 73)) == (73, (64, 73, 82))  # 32 px of 224 is 9 px of 64
    assert vw.training_scales({"image_size": 64}) == (73, 73)  # no scale recorded: make_dataloaders' default
    assert vw.training_scales({"image_size": 64, "scale": 80}) == (80, 80)
    assert vw.training_scales({"image_size": 64, "scale_max": 96}) == (73, 96)  # S_min: the default S
    assert vw.training_scales({"image_size": 64, "scale": 80, "scale_max": 96}) == (80, 96)


def test_a_test_scale_below_32_px_or_the_crop_is_refused():
    with pytest.raises(ValueError, match="at least 32 px"):
        vw.check_test_scale(31, 32)
    with pytest.raises(ValueError, match="smaller than the model's crop of 64 px"):
        vw.check_test_scale(48, 64)
    with pytest.raises(TypeError, match="whole number"):
        vw.check_test_scale(64.0, 64)


# ---------------------------------------------------------------------------------------------------------------
# The dense net and FLOPs
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crop, pooled", [(32, 1), (64, 1), (64, 2), (128, 2)])
def test_dense_at_q_equal_to_the_crop_gives_the_single_crop_logits(crop, pooled):
    """Glorot weights: torchvision's N(0, 0.01²) FC layers give logits too small to tell anything apart."""
    torch.manual_seed(0)
    model = vgg("A", width=1 / 16, fc_width=16, pooled_size=pooled, num_classes=5, init="glorot").eval()
    x = torch.randn(2, 3, crop, crop)
    with torch.no_grad():
        torch.testing.assert_close(vw.dense_network(model, crop)(x), model(x), rtol=1e-5, atol=1e-5)


def test_each_dense_score_is_the_classifier_of_one_crop_sized_window():
    """pooled_size 2 on a 128 px crop: a 4×4 map pooled to 2×2, so the dense net pools 2×2 and dilates by 2."""
    torch.manual_seed(0)
    model = vgg("A", width=1 / 16, fc_width=16, pooled_size=2, num_classes=5, init="glorot").eval()
    x = torch.randn(1, 3, 192, 224)
    with torch.no_grad():
        scores = vw.dense_network(model, 128).score_map(x)
        features = model.features(x)
        assert features.shape[2:] == (6, 7) and scores.shape[2:] == (3, 4)
        window = model.avgpool(features[:, :, 1:5, 2:6]).flatten(1)
        torch.testing.assert_close(scores[:, :, 1, 2], model.classifier(window), rtol=1e-5, atol=1e-5)


def test_dense_refuses_a_pool_that_does_not_tile_the_crop_map():
    model = vgg("A", width=1 / 16, fc_width=16, pooled_size=2, num_classes=5)
    with pytest.raises(ValueError, match=r"96 px crop \(3×3\) to be a whole multiple of the model's pooled_size 2"):
        vw.dense_network(model, 96)


def test_forward_flops_count_as_the_accounting_table_does():
    with torch.device("meta"):  # shapes only: the full-size net costs no memory or arithmetic
        model = vgg("D")
    assert vw.forward_flops(model, 224, 224) == table_flops("D", batch_norm=False, image_size=224)
    dense = vw.dense_network(model, 224)
    assert vw.forward_flops(dense, 224, 224) == table_flops("D", batch_norm=False, image_size=224)
    # At 256 × 320 the convolutions cost (256·320)/224² times more, and the classifier runs at 2 × 4 positions.
    classifier = table_flops("D", batch_norm=False) - vw.forward_flops(model.features, 224, 224)
    expected = vw.forward_flops(model.features, 256, 320) + 8 * classifier
    assert vw.forward_flops(dense, 256, 320) == expected


# ---------------------------------------------------------------------------------------------------------------
# Posteriors, and how methods average them
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = vgg("A", batch_norm=True, width=1 / 8, fc_width=16, pooled_size=1, num_classes=10, init="glorot").eval()
    images = list(SyntheticShapes("val", image_size=48, per_class=1).images[:3])
    return model, images


def test_views_give_soft_max_posteriors_of_the_right_inputs(tiny):
    model, images = tiny
    views = vw.Views(model, 32)
    resized = torch.stack(vw.rescale(images, 40))
    with torch.no_grad():
        for view, flip in (("dense", False), ("dense-flipped", True)):
            x = vw.to_network_input(resized)
            expected = views.dense(x.flip(-1) if flip else x).softmax(dim=1)
            probs, flops = views.posteriors(view, 40, images)
            torch.testing.assert_close(probs, expected)
            assert flops == 3 * vw.forward_flops(views.dense, 40, 40)
        crops = vw.to_network_input(vw.grid_crops(resized[1], 32))
        probs, flops = views.posteriors("crops", 40, images)
        torch.testing.assert_close(probs[1], model(crops).softmax(dim=1).mean(dim=0))
        assert flops == 3 * 50 * vw.forward_flops(model, 32, 32)
    assert torch.allclose(probs.sum(dim=1), torch.ones(3))


def test_images_of_several_sizes_pil_or_tensor_are_evaluated_one_size_at_a_time(tiny):
    model, images = tiny
    wide, tall = images[0][:, :40, :], images[1][:, :, :40]  # 40×48 and 48×40
    views = vw.Views(model, 32)
    probs, flops = views.posteriors("dense-flipped", 40, [wide, tall, wide])
    alone = [views.posteriors("dense-flipped", 40, [image])[0][0] for image in (wide, tall, wide)]
    torch.testing.assert_close(probs, torch.stack(alone))
    assert flops == 2 * vw.forward_flops(views.dense, 40, 48) + vw.forward_flops(views.dense, 48, 40)
    dataset = [(F.to_pil_image(wide), 0), (tall, 1)]  # Imagenette gives PIL images, the in-memory set tensors
    results = ev.evaluate(model, dataset, crop_size=32, plan=ev.protocols(["dense"], 40))
    assert results["dense Q=40"]["images"] == 2
    assert results["dense Q=40"]["forward_flops_per_image"] == vw.forward_flops(views.dense, 40, 48)  # same cost


class FakeViews:
    """Stands in for :class:`~vgg_tutorial.testing.views.Views`: fixed posteriors per view and scale, and a log of
    requests."""

    requests: list = []
    table = {
        ("dense", 40): [0.6, 0.4, 0.0],
        ("dense-flipped", 40): [0.0, 0.45, 0.55],
        ("crops", 40): [0.0, 0.0, 1.0],
        ("dense", 48): [0.1, 0.1, 0.8],
        ("dense-flipped", 48): [0.1, 0.1, 0.8],
        ("crops", 48): [0.0, 0.0, 1.0],
        ("center", 40): [1.0, 0.0, 0.0],
    }

    def __init__(self, model, crop_size, device, chunk):
        pass

    def posteriors(self, view, scale, images):
        FakeViews.requests.append((view, scale))
        return torch.tensor([self.table[(view, scale)]] * len(images)), 10 * len(images)

    def synchronize(self):
        pass


def test_methods_average_posteriors_over_flips_scales_and_methods(monkeypatch, tiny):
    monkeypatch.setattr(ev, "Views", FakeViews)
    FakeViews.requests = []
    dataset = [(torch.zeros(3, 40, 40, dtype=torch.uint8), 1)] * 2
    model = vgg("A", width=1 / 16, fc_width=8, pooled_size=1, num_classes=3)
    results = ev.evaluate(model, dataset, crop_size=32, plan=ev.protocols(ev.METHODS, 40, (40, 48)))
    top1 = {label: row["top1_error"] for label, row in results.items()}
    # dense alone says class 0; with its flip the posteriors average to (0.3, 0.425, 0.275): class 1, right.
    # (Averaging logits instead would be swamped by the flip's log 0 = -inf for class 0.)
    assert top1["dense Q=40"] == 100 and top1["dense+flip Q=40"] == 0
    # dense+multicrop: ((0.3, 0.425, 0.275) + (0, 0, 1)) / 2 → class 2.
    assert top1["dense+multicrop Q=40"] == 100
    # Over Q = 40 and 48: ((0.3, 0.425, 0.275) + (0.1, 0.1, 0.8)) / 2 = (0.2, 0.2625, 0.5375) → class 2.
    assert top1["dense+flip Q=40,48"] == 100 and top1["center Q=40"] == 100
    assert "center Q=40,48" not in results  # the paper's multi-scale testing is dense or multi-crop
    # Each view is computed once per scale and batch, however many methods share it; costs add up per method.
    assert sorted(set(FakeViews.requests)) == sorted(FakeViews.table) and len(FakeViews.requests) == 7
    row = results["dense+multicrop Q=40,48"]
    assert row["forward_flops_per_image"] == 60 and row["passes_per_image"] == 104 and row["images"] == 2


def test_unknown_methods_are_named():
    with pytest.raises(ValueError, match="unknown test method.*'crops10'.*center, dense, dense\\+flip"):
        ev.protocols(["crops10"], 64)
    assert [p.label for p in ev.protocols(["dense+flip"], 73, (64, 73, 82))] == [
        "dense+flip Q=73",
        "dense+flip Q=64,73,82",
    ]


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints, splits and the command line
# ---------------------------------------------------------------------------------------------------------------


def test_a_trained_checkpoint_centre_crop_is_its_validation_and_the_cli_writes_json(tmp_path, capsys):
    cfg = TrainConfig(**{**TINY, "val_per_class": 2}, train_per_class=2, epochs=1, batch_size=20)
    history = train(dataclasses.replace(cfg, output=str(tmp_path)), verbose=False)
    report = ev.evaluate_checkpoint(tmp_path / "checkpoint.pt", methods=["center"], multi=False, device="cpu")
    assert report["test_scale"] == 37 and report["results"]["center Q=37"]["images"] == 20
    assert report["results"]["center Q=37"]["top1_error"] == pytest.approx(100 - history[-1]["val_top1"])
    # The same posteriors, image by image, as the validation loader training used.
    model, config = ev.load_model(tmp_path / "checkpoint.pt")
    split = ev.open_split(config, "val")
    _, val_loader = make_dataloaders(image_size=32, in_memory=True, train_per_class=2, val_per_class=2, batch_size=20)
    images, labels = next(iter(val_loader))
    probs, _ = vw.Views(model, 32).posteriors("center", 37, [split[i][0] for i in range(20)])
    assert labels.tolist() == [split[i][1] for i in range(20)]
    with torch.no_grad():
        torch.testing.assert_close(probs, model(images).softmax(dim=1))

    output = tmp_path / "results.json"
    argv = [str(tmp_path / "checkpoint.pt"), "--methods", "dense+flip", "multicrop", "--limit", "4"]
    assert ev.main([*argv, "--output", str(output), "--device", "cpu"]) == 0
    saved = json.loads(output.read_text())
    assert saved["multi_scales"] == [32, 37, 42] and saved["command"].startswith("python -m vgg_tutorial.evaluate")
    assert {"machine", "versions", "config"} <= set(saved) and saved["versions"]["torch"] == torch.__version__
    assert list(saved["results"]) == [
        "dense+flip Q=37",
        "multicrop Q=37",
        "dense+flip Q=32,37,42",
        "multicrop Q=32,37,42",
    ]
    row = saved["results"]["multicrop Q=32,37,42"]
    assert row["images"] == 4 and row["passes_per_image"] == 150 and row["seconds"] > 0
    assert "multicrop Q=32,37,42" in capsys.readouterr().out


def test_multi_scale_uses_the_scales_of_the_training_run(tmp_path, monkeypatch):
    seen = []  # (Q, smaller side of every rescaled image)

    def spy(images, scale):
        resized = real_rescale(images, scale)
        seen.append((scale, {min(image.shape[1:]) for image in resized}))
        return resized

    real_rescale = vw.rescale
    monkeypatch.setattr(vw, "rescale", spy)
    state = torch.load(make_checkpoint(tmp_path), weights_only=False)
    state["meta"]["config"] |= {"scale": 40, "scale_max": 56}  # a jittered run: S ∈ [40; 56]
    report = ev.evaluate_checkpoint(state, methods=["dense"], limit=2, device="cpu")
    assert report["test_scale"] == 48 and report["multi_scales"] == [40, 48, 56]
    assert list(report["results"]) == ["dense Q=48", "dense Q=40,48,56"]
    assert sorted(seen) == [(40, {40}), (48, {48}), (56, {56})]  # each Q once, shared by both rows
    fixed = ev.evaluate_checkpoint(make_checkpoint(tmp_path), methods=["dense"], limit=2, device="cpu")
    assert fixed["test_scale"] == 37 and fixed["multi_scales"] == [32, 37, 42]  # S = 37 for a 32 px crop, ± 5


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    path = make_checkpoint(tmp_path, config="B", weights_config="A")
    with pytest.raises(ev.CheckpointMismatchError, match=r"do not fit the model its config describes \(VGG-B"):
        ev.load_model(path)
    with pytest.raises(ev.CheckpointMismatchError, match="meta\\['config'\\]"):
        ev.load_model({"model": {}})


def test_a_checkpoint_of_another_class_count_is_refused(tmp_path):
    path = make_checkpoint(tmp_path, num_classes=5)
    with pytest.raises(ValueError, match="the model has 5 outputs but the dataset has 10 classes"):
        ev.evaluate_checkpoint(path, methods=["center"], multi=False, device="cpu")


def test_bad_scales_and_missing_splits_give_clear_errors(tmp_path, capsys):
    path = make_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="at least 32 px"):
        ev.evaluate_checkpoint(path, scale=16)
    with pytest.raises(ValueError, match="unknown split 'test'; choose one of train, val"):
        ev.evaluate_checkpoint(path, "test")
    missing = make_checkpoint(tmp_path, dataset="imagenette", data=str(tmp_path / "nothing"), in_memory=False)
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        ev.evaluate_checkpoint(missing)
    assert ev.main([str(path), "--multi-scales", "24", "40"]) == 2
    assert "Q=24 px is too small" in capsys.readouterr().err
    assert ev.main([str(tmp_path / "absent.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_a_limit_spreads_over_the_split():
    subset = ev.spread_subset(list(range(100)), 5)
    assert [subset[i] for i in range(5)] == [0, 25, 50, 74, 99]
