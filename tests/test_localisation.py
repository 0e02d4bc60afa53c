"""The localisation net of Appendix A: its head, its loss, its score, and the study end to end with a restart."""

import json

import pytest
import torch
from torch import nn

from vgg_tutorial.data import boxes as B
from vgg_tutorial.paper.configs import PAPER_TABLE8, PAPER_TABLE10
from vgg_tutorial.studies import experiments, localisation_study, testing_study
from vgg_tutorial.training import localisation
from vgg_tutorial.training.localisation import BoxScaler, EuclideanLoss, localiser, select


def small_net(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return experiments.build("D", experiments.QUICK).eval() if classes == 10 else nn.Linear(2, 2)


@pytest.mark.parametrize(("mode", "outputs"), [("SCR", 4), ("PCR", 40)])
def test_the_head_predicts_one_box_or_one_per_class(mode, outputs):
    net = small_net()
    loc = localiser(net, mode, 10)
    assert loc(torch.zeros(3, 3, 32, 32)).shape == (3, outputs)
    assert loc.classifier[-1].out_features == outputs and net.classifier[-1].out_features == 10  # a copy
    for name, p in net.state_dict().items():  # every layer but the last is the classifier's
        if not name.startswith("classifier.6"):
            assert torch.equal(p, loc.state_dict()[name])


def test_fc_only_freezes_the_convolutions():
    loc = localisation.freeze(localiser(small_net(), "SCR", 10), "fc")
    assert not any(p.requires_grad for p in loc.features.parameters())
    assert all(p.requires_grad for p in loc.classifier.parameters())
    assert all(p.requires_grad for p in localisation.freeze(loc, "all").parameters())


def test_pcr_uses_the_box_of_the_true_class():
    outputs = torch.arange(2 * 12.0).reshape(2, 12)  # 3 classes × 4 numbers
    assert select(outputs, torch.tensor([2, 0]), "PCR").tolist() == [[8, 9, 10, 11], [12, 13, 14, 15]]
    assert torch.equal(select(outputs[:, :4], torch.tensor([2, 0]), "SCR"), outputs[:, :4])


def test_euclidean_loss():
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0, 1.0]])
    outputs = torch.zeros(2, 8)
    outputs[0, 4:] = torch.tensor([3.0, 4.0, 0.0, 0.0])  # class 1's box, 5 away from the target
    assert EuclideanLoss("PCR")(outputs, targets).item() == pytest.approx(0.5 * (25 + 4) / 2)
    assert EuclideanLoss("SCR")(outputs[:, :4], targets).item() == pytest.approx(0.5 * (0 + 4) / 2)


def test_standardised_targets_round_trip():
    boxes = torch.tensor([[1.0, 2.0, 9.0, 10.0], [4.0, 4.0, 20.0, 12.0], [0.0, 5.0, 7.0, 30.0]])
    scaler = BoxScaler.fit(boxes)
    z = scaler.encode(boxes)
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-6) and torch.allclose(z.std(0), torch.ones(4))
    assert torch.allclose(scaler.decode(z), boxes, atol=1e-5)


def test_training_targets_follow_crops_and_flips():
    labels = torch.arange(20) % 10
    images = torch.zeros(20, 3, 37, 37, dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 12.0, 20.0, 30.0]]).repeat(20, 1)
    images[:, :, 12:30, 10:20] = 255  # the object fills its box
    scaler = BoxScaler(torch.zeros(4), torch.ones(4))  # targets in pixels: (cx, cy, w, h)
    batches = localisation.box_batches(
        images, boxes, labels, scaler, crop_size=32, batch_size=8, generator=torch.Generator().manual_seed(0)
    )
    seen = 0
    for inputs, targets in batches:
        for x, t in zip(inputs, targets):
            box = B.to_corners(t[1:]).clamp(0, 32)
            rows, cols = (x[0] > 0).nonzero(as_tuple=True)  # white after normalising; the background is not
            assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            seen += 1
    assert seen == 20


class Oracle(nn.Module):
    """A 'net' that answers precomputed outputs (one batch)."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, x):
        return self.outputs[: len(x)]


def test_the_score_maps_the_crops_box_back_to_the_image():
    labels = torch.arange(10)
    truth = torch.tensor([[10.0 + i, 8.0, 50.0, 60.0 - i] for i in range(10)])
    images = torch.zeros(10, 3, 74, 74, dtype=torch.uint8)
    scaler = BoxScaler(torch.zeros(4), torch.ones(4))
    in_crop = B.crop(B.rescale(truth, 74, 37), 2, 2)  # the central 32 px crop of the image at Q = 37
    pcr = torch.randn(10, 40)
    pcr.view(10, 10, 4)[labels, labels] = B.to_centre_size(in_crop)
    logits = torch.eye(10)
    logits[3] = torch.tensor([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) / 10  # image 3: true class 3 ranked 7th
    kw = {"mode": "PCR", "q": 37, "crop_size": 32}
    scores = localisation.localise(Oracle(pcr), Oracle(logits), images, truth, labels, scaler, **kw)
    assert scores == {"images": 10, "gt_class_error": 0.0, "top1_error": 10.0, "top5_error": 10.0, "mean_iou": 1.0}
    wrong = B.to_centre_size(in_crop + torch.tensor([8.0, 0.0, 8.0, 0.0]))  # shifted 16 px in the image
    scores = localisation.localise(Oracle(wrong), Oracle(logits), images, truth, labels, scaler, **kw | {"mode": "SCR"})
    assert scores["gt_class_error"] == 100.0 and scores["mean_iou"] < 0.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: localiser(small_net(), "per-class", 10), r"expected one of \('SCR', 'PCR'\)"),
        (lambda: localisation.freeze(small_net(), "last"), r"expected one of \('all', 'fc'\)"),
        (lambda: localiser(small_net(), "SCR", 1000), "classifies 10 classes, not 1000"),
        (lambda: localiser(nn.Linear(2, 2), "SCR", 10), "expected a VGG"),
    ],
)
def test_bad_input_is_refused_naming_the_valid_values(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_score_refuses_a_true_box_outside_the_image():
    images, labels = torch.zeros(1, 3, 74, 74, dtype=torch.uint8), torch.tensor([0])
    with pytest.raises(ValueError, match="true box"):
        localisation.localise(
            Oracle(torch.zeros(1, 4)),
            Oracle(torch.zeros(1, 10)),
            images,
            torch.tensor([[0.0, 0, 80, 10]]),
            labels,
            BoxScaler(torch.zeros(4), torch.ones(4)),
            mode="SCR",
            q=37,
            crop_size=32,
        )


def test_the_paper_tables_as_data():
    assert [(r.fine_tuned, r.regression, r.error) for r in PAPER_TABLE8][-1] == ("all", "PCR", 33.1)
    assert min(PAPER_TABLE8, key=lambda r: r.error).regression == "PCR"  # PCR beats SCR in the paper
    assert PAPER_TABLE10[0].entry == "VGG" and PAPER_TABLE10[0].test == 25.3
    assert PAPER_TABLE10[0].test == min(r.test for r in PAPER_TABLE10)  # VGG won ILSVRC-2014's localisation


@pytest.fixture(scope="module")
def quick_nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    images = experiments.study_images(experiments.QUICK)
    for seed in range(2):
        for cell in testing_study.CELLS:
            testing_study.train_and_save(folder, cell, seed, experiments.QUICK, images)
    return folder


def test_the_quick_study_runs_end_to_end_and_restarts(quick_nets, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results.json"
    argv = ["--out", str(out), "--nets", str(quick_nets), "--quick", "--seeds", "2", "--threads", "1"]
    assert localisation_study.main(argv) == 0
    results = json.loads(out.read_text())
    assert results["command"].startswith("python -m vgg_tutorial.localisation_study --out")
    assert results["machine"]["device"] == "cpu"
    assert list(results["runs"]) == [cell for cell, *_ in localisation_study.CELLS]
    assert all(list(runs) == ["0", "1"] for runs in results["runs"].values())
    run = results["runs"]["PCR, all layers"]["0"]
    assert run["images"] == 20 and 0 <= run["gt_class_error"] <= run["top1_error"] <= 100
    assert "Table 8" in capsys.readouterr().out
    assert set(localisation_study.verdicts(results).values()) <= {"in every seed", "not in every seed"}
    assert len(localisation_study.comparison_table(results).rows) == 4

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(localisation, "fine_tune", no_training)
    before = out.read_text()
    assert localisation_study.main(argv) == 0  # every run is there: nothing is trained again
    assert json.loads(out.read_text())["runs"] == json.loads(before)["runs"]
    del results["runs"]["SCR, FC only"]["1"]  # an interrupted study: one run missing
    out.write_text(json.dumps(results))
    monkeypatch.undo()
    assert localisation_study.main(argv) == 0
    assert "1" in json.loads(out.read_text())["runs"]["SCR, FC only"]


def test_the_study_refuses_missing_nets_and_nets_of_another_cell(quick_nets, tmp_path, capsys):
    out = str(tmp_path / "results.json")
    assert localisation_study.main(["--out", out, "--nets", str(tmp_path), "--quick", "--seeds", "1"]) == 2
    assert "testing_study trains them" in capsys.readouterr().err
    (tmp_path / "D-seed0.pt").write_bytes((quick_nets / "D-jittered-seed0.pt").read_bytes())  # another cell
    assert localisation_study.main(["--out", out, "--nets", str(tmp_path), "--quick", "--seeds", "1"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_the_study_refuses_a_bad_seed_count(capsys):
    with pytest.raises(SystemExit):
        localisation_study.main(["--out", "x.json", "--seeds", "0"])
    assert "--seeds" in capsys.readouterr().err


def test_show_boxes_draws_one_box_per_image():
    import matplotlib

    matplotlib.use("Agg")
    images, box = torch.zeros(7, 3, 10, 10, dtype=torch.uint8), torch.tensor([[1.0, 2.0, 5.0, 6.0]] * 7)
    axes = localisation_study.show_boxes(images, box, [str(i) for i in range(7)], columns=4)
    assert axes.shape == (2, 4)
    drawn = [ax for ax in axes.flat if ax.patches]
    assert len(drawn) == 7 and all(len(ax.patches) == 2 for ax in drawn)  # outline and box
    assert drawn[0].patches[1].get_xy() == (1.0, 2.0) and drawn[0].patches[1].get_width() == 4.0
