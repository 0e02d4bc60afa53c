"""Appendix B: the new shapes, the descriptor, the linear SVM, and the transfer study end to end with a restart."""

import json
import math
import shutil

import pytest
import torch
from torch.nn.functional import normalize
from torchvision.transforms.v2 import functional as F

from vgg_tutorial.data.novel_shapes import NOVEL_CLASSES, render_novel, signed_distance
from vgg_tutorial.data.synthetic import SYNTHETIC_CLASSES, _signed_distance
from vgg_tutorial.paper.configs import PAPER_TABLE11
from vgg_tutorial.studies import experiments, testing_study, transfer_study
from vgg_tutorial.studies.common import StudyError
from vgg_tutorial.testing import transfer


def test_the_new_classes_are_new():
    assert not set(NOVEL_CLASSES) & set(SYNTHETIC_CLASSES)
    axis = torch.linspace(-1.2, 1.2, 61)
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    for new in range(len(NOVEL_CLASSES)):
        ours = signed_distance(new, u, v) < 0
        assert 0.1 < ours.double().mean() < 0.7  # a shape, not nothing nor everything
        for old in range(len(SYNTHETIC_CLASSES)):  # no old shape, turned, mirrored or resized, covers a new one
            for k in range(36):
                t = 2 * math.pi * k / 36
                tu, tv = math.cos(t) * u + math.sin(t) * v, -math.sin(t) * u + math.cos(t) * v
                for mirror in (1, -1):
                    for size in (0.9, 1.0, 1.15):
                        theirs = _signed_distance(old, mirror * tu / size, tv / size) < 0
                        iou = (ours & theirs).sum() / (ours | theirs).sum()
                        assert iou < 0.75, (NOVEL_CLASSES[new], SYNTHETIC_CLASSES[old], t, iou)


def test_rendering_is_deterministic_per_seed():
    images, labels = render_novel("train", image_size=40, per_class=2)
    assert images.shape == (12, 3, 40, 40) and images.dtype == torch.uint8
    assert labels.tolist() == list(range(6)) * 2
    again, _ = render_novel("train", image_size=40, per_class=2)
    assert torch.equal(images, again)
    assert not torch.equal(images, render_novel("train", image_size=40, per_class=2, seed=1)[0])
    assert not torch.equal(images, render_novel("val", image_size=40, per_class=2)[0])
    with pytest.raises(ValueError, match="unknown split 'test'"):
        render_novel("test")
    with pytest.raises(ValueError, match="no new shape for label 6"):
        signed_distance(6, torch.zeros(1), torch.zeros(1))


def small_net(fc_width: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return experiments.build("D", experiments.QUICK).eval()


@pytest.fixture
def images():
    return render_novel("val", image_size=48, per_class=1)[0]


def test_descriptors_are_unit_rows_of_the_penultimate_width(images, one_thread):
    features = transfer.descriptors(small_net(), images, [32, 40])
    assert features.shape == (6, experiments.QUICK.fc_width)
    assert torch.allclose(features.norm(dim=1), torch.ones(6))


def test_descriptors_average_scales_flips_and_positions(images, one_thread):
    net = small_net()
    dense = transfer.penultimate(net, 32)
    one, two = (transfer.pooled(dense, images, [q], 32, softmax=False) for q in (32, 48))
    assert torch.allclose(transfer.descriptors(net, images, [32, 48]), normalize((one + two) / 2, dim=1), atol=1e-6)
    flipped = transfer.descriptors(net, images.flip(-1), [32, 48])
    assert torch.allclose(flipped, transfer.descriptors(net, images, [32, 48]), atol=1e-3)  # rounding only
    # at the crop size the map is one position: the net's own penultimate layer on the image and its flip
    x = F.resize(images, [32], antialias=True)
    inputs = [transfer.to_network_input(x), transfer.to_network_input(x.flip(-1))]
    with torch.no_grad():
        hidden = [net.classifier[:-1](torch.flatten(net.avgpool(net.features(i)), 1)) for i in inputs]
    assert torch.allclose(one, (hidden[0] + hidden[1]) / 2, atol=1e-5)


def test_dense_scores_are_posteriors(images, one_thread):
    scores = transfer.dense_scores(small_net(), images, [32, 40])
    assert scores.shape == (6, 10) and torch.allclose(scores.sum(1), torch.ones(6))


def test_bad_inputs_are_refused(images):
    net = small_net()
    with pytest.raises(ValueError, match="expected uint8 images N×3×H×W, got \\(3, 48, 48\\)"):
        transfer.descriptors(net, images[0], [32])
    with pytest.raises(ValueError, match="expected uint8 images .* got torch.float32"):
        transfer.descriptors(net, images.float(), [32])
    with pytest.raises(ValueError, match="square"):
        transfer.descriptors(net, images[..., :40], [32])
    with pytest.raises(ValueError, match="non-empty list of test scales"):
        transfer.descriptors(net, images, [])
    with pytest.raises(ValueError, match="too small"):
        transfer.descriptors(net, images, [16])
    with pytest.raises(TypeError, match="whole number"):
        transfer.descriptors(net, images, [32.5])
    with pytest.raises(TypeError, match="expected a VGG net"):
        transfer.descriptors(torch.nn.Linear(2, 2), images, [32])


def test_the_svm_learns_a_separable_problem():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 8) * 4
    labels = torch.arange(60) % 3
    features = centres[labels] + 0.5 * torch.randn(60, 8, generator=gen)
    svm = transfer.fit_linear_svm(features, labels, 3)
    assert svm.accuracy(features, labels) == 100.0
    test = torch.arange(30) % 3
    assert svm.accuracy(centres[test] + 0.5 * torch.randn(30, 8, generator=gen), test) == 100.0
    # the labels carry the answer: shuffled, the SVM cannot fit new points
    assert transfer.fit_linear_svm(features, labels.roll(1), 3).accuracy(centres[test], test) == 0.0


def test_the_svm_refuses_bad_inputs():
    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match="labels must be 0 to 1 for 2 classes"):
        transfer.fit_linear_svm(x, y, 2)
    with pytest.raises(ValueError, match="one label per feature row"):
        transfer.fit_linear_svm(x, y[:3], 3)
    with pytest.raises(ValueError, match="cost c must be above 0"):
        transfer.fit_linear_svm(x, y, 3, c=0)
    with pytest.raises(ValueError, match="float tensor N×D"):
        transfer.fit_linear_svm(torch.zeros(4, dtype=torch.long), y, 3)
    with pytest.raises(ValueError, match="trained on 3"):
        transfer.fit_linear_svm(x, y, 3).predict(torch.zeros(2, 5))


def test_table11_as_printed():
    rows = {r.method: r for r in PAPER_TABLE11}
    assert rows["VGG Net-D & Net-E"].voc2007 == 89.7 and rows["VGG Net-D & Net-E"].caltech256 == (86.2, 0.3)
    assert rows["Chatfield et al."].caltech256 == (77.6, 0.1) and rows["He et al."].voc2012 is None
    assert "VOC-2007" in repr(transfer_study.paper_table11())


def test_scratch_gets_as_many_steps_as_the_source():
    full = experiments.FULL  # 2,000 images, batches of 32: 63 steps an epoch, 630 in all
    assert transfer_study.scratch_epochs(full, 200) == 17  # 38 steps an epoch
    assert transfer_study.scratch_epochs(full, 10) == 315  # 2 steps an epoch
    assert transfer_study.scratch_epochs(full, 10_000) == full.epochs


@pytest.fixture
def nets(tmp_path):
    images = experiments.study_images(experiments.QUICK)
    testing_study.train_and_save(tmp_path / "nets", "D", 0, experiments.QUICK, images)
    return tmp_path / "nets"


def test_quick_study_end_to_end_with_a_restart(tmp_path, nets, monkeypatch, one_thread):
    out = tmp_path / "results.json"
    status = transfer_study.main(["--out", str(out), "--source", str(nets), "--quick", "--seeds", "1"])
    assert status == 0
    results = json.loads(out.read_text())
    assert results["command"].startswith("python -m vgg_tutorial.transfer_study --out")
    assert results["machine"]["device"] == "cpu" and results["sizes"] == list(transfer_study.QUICK_SIZES)
    assert len(results["runs"]) == 3 * len(transfer_study.QUICK_SIZES)
    for method in transfer_study.METHODS:
        for size in transfer_study.QUICK_SIZES:
            (run,) = results["runs"][transfer_study.cell_name(method, size)].values()
            assert 0 <= run["accuracy"] <= 100 and run["train_images"] == 6 * size
    assert "images per class" in repr(transfer_study.table(results))
    assert len(transfer_study.verdicts(results)) == 2 * len(transfer_study.QUICK_SIZES)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was done again")

    monkeypatch.setattr(experiments, "train_cell", no_training)
    monkeypatch.setattr(transfer_study, "fit_linear_svm", no_training)
    again = transfer_study.run(out, nets, 1, experiments.QUICK, transfer_study.QUICK_SIZES)
    assert again["runs"] == results["runs"]


def test_the_study_refuses_missing_or_foreign_nets(tmp_path, nets, one_thread):
    with pytest.raises(StudyError, match="no trained D net at .*D-seed1.pt"):
        transfer_study.run(tmp_path / "r.json", nets, 2, experiments.QUICK, (2,))
    foreign = tmp_path / "foreign"
    images = experiments.study_images(experiments.QUICK)
    made = testing_study.train_and_save(foreign, "D, jittered", 0, experiments.QUICK, images)
    shutil.move(made, foreign / "D-seed0.pt")  # a jittered D where the plain one belongs
    with pytest.raises(StudyError, match="cell: 'D, jittered' there, 'D' now"):
        transfer_study.run(tmp_path / "r.json", foreign, 1, experiments.QUICK, (2,))
    with pytest.raises(StudyError, match="other settings"):  # chapter 9's full-size nets under the quick setting
        transfer_study.run(tmp_path / "r2.json", nets, 1, experiments.FULL, (2,))


def test_the_command_line_says_what_is_missing_in_one_line(tmp_path, capsys):
    status = transfer_study.main(["--out", str(tmp_path / "r.json"), "--source", str(tmp_path), "--quick"])
    assert status == 2
    assert capsys.readouterr().err.startswith("error: no trained D net at")
    with pytest.raises(SystemExit):
        transfer_study.main(["--out", "r.json", "--seeds", "0"])
