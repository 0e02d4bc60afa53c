"""§4.1's shallow control B-5x5: the data, the builder, the accounting, and its study (quick, restartable)."""

import json

import pytest
import torch
from torch import nn

from vgg_tutorial.lessons.paper_tables import table1, table2
from vgg_tutorial.lessons.summaries import summary
from vgg_tutorial.paper.accounting import count_macs, count_parameters, layer_stats, receptive_field
from vgg_tutorial.paper.configs import (
    CONFIGS,
    CONTROLS,
    MaxPool,
    check_name,
    feature_layers,
    shallow_control,
    weight_layers,
)
from vgg_tutorial.paper.models import vgg
from vgg_tutorial.studies import control_study


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (see conftest.py)."""


def test_the_control_is_b_with_each_pair_of_3x3_convolutions_one_5x5():
    assert CONTROLS["B-5x5"] == (("conv5-64",), ("conv5-128",), ("conv5-256",), ("conv5-512",), ("conv5-512",))
    first, pool = feature_layers("B-5x5")[:2]
    assert (first.kernel, first.padding, first.channels) == (5, 2, 64) and isinstance(pool, MaxPool)
    assert weight_layers("B-5x5") == 5 + 3 and weight_layers("B") == 13
    # A lone 3×3 stays, other layers stay, and no pair spans a block's end.
    assert shallow_control(CONFIGS["A-LRN"])[:3] == (("conv3-64", "LRN"), ("conv3-128",), ("conv5-256",))
    assert shallow_control(CONFIGS["D"])[2] == ("conv5-256", "conv3-256")
    assert shallow_control(CONFIGS["C"])[2] == ("conv5-256", "conv1-256")


def test_the_control_sees_what_b_sees():
    # §2.3: two stacked 3×3 convolutions see 5×5 pixels, as one 5×5 does; pools are the same, so the whole nets too.
    assert receptive_field("B-5x5") == receptive_field("B") == 140
    deep = [row.receptive_field for row in layer_stats("B") if row.label == "maxpool"]
    shallow = [row.receptive_field for row in layer_stats("B-5x5") if row.label == "maxpool"]
    assert deep == shallow


def test_parameters_by_formula():
    # k²·c_in·c_out + c_out per convolution, then the classifier of Table 1.
    def convs(layers):
        total, c_in = 0, 3
        for k, c in layers:
            total, c_in = total + k * k * c_in * c + c, c
        return total

    fc = 512 * 7 * 7 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    widths = (64, 128, 256, 512, 512)
    shallow = convs([(5, c) for c in widths])
    deep = convs([(3, c) for c in widths for _ in range(2)])
    assert count_parameters("B-5x5") == shallow + fc == 134_503_528
    assert count_parameters("B") == deep + fc == 133_047_848
    built = vgg("B-5x5", num_classes=10, width=1 / 8, fc_width=16, pooled_size=1)
    assert (
        sum(p.numel() for p in built.parameters())
        == convs([(5, c // 8) for c in widths]) + 64 * 16 + 16 * 16 + 16 * 10 + 16 + 16 + 10
    )


def test_forward_shapes_and_summary():
    net = vgg("B-5x5", num_classes=10, width=1 / 16, fc_width=8, pooled_size=1)
    assert [m.kernel_size for m in net.features if isinstance(m, nn.Conv2d)] == [(5, 5)] * 5
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert net.features[:2](torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)  # padding 2 keeps the size
    stats = summary("B-5x5")
    assert stats.total_params == count_parameters("B-5x5")
    assert stats.total_mult_adds == count_macs("B-5x5")


def test_an_unknown_name_lists_configurations_and_controls():
    with pytest.raises(KeyError, match=r"valid names are: A, A-LRN, B, C, D, E and the control B-5x5"):
        vgg("B-3x3")
    with pytest.raises(KeyError, match="case-sensitive"):
        check_name("b-5x5")
    assert check_name("B-5x5") == "B-5x5"


def test_table_1_views_do_not_list_the_control():
    assert list(CONFIGS) == ["A", "A-LRN", "B", "C", "D", "E"]
    assert table1().header == list(CONFIGS)
    assert [row[0] for row in table2().rows] == list(CONFIGS)
    assert "conv5" not in repr(table1())


def test_the_quick_study_trains_both_nets_per_seed_and_restarts_without_redoing_them(tmp_path, monkeypatch):
    path = tmp_path / "control.json"
    assert control_study.main(["--quick", "--seeds", "2", "--out", str(path)]) == 0
    results = json.loads(path.read_text())
    assert {cell: list(runs) for cell, runs in results["runs"].items()} == {"B": ["0", "1"], "B-5x5": ["0", "1"]}
    assert results["command"].endswith(f"--quick --seeds 2 --out {path}") and results["machine"]["device"] == "cpu"
    gaps = control_study.gaps(results)
    assert list(gaps) == ["0", "1"]
    assert control_study.deeper_wins_every_seed(results) == all(g > 0 for g in gaps.values())
    assert [row[0] for row in control_study.table(results).rows] == [
        "seed 0",
        "seed 1",
        "mean [min–max]",
        "the paper (ImageNet, §4.1)",
    ]
    monkeypatch.setattr(control_study.experiments, "train_cell", lambda *a, **k: pytest.fail("trained again"))
    assert control_study.main(["--quick", "--seeds", "2", "--out", str(path)]) == 0


def test_the_deeper_net_wins_only_if_it_wins_every_seed():
    def history(error):
        return [{"val_top1": 100 - error}]

    results = {"runs": {"B": {"0": history(40), "1": history(50)}, "B-5x5": {"0": history(45), "1": history(55)}}}
    assert control_study.deeper_wins_every_seed(results)
    results["runs"]["B-5x5"]["1"] = history(49)
    assert not control_study.deeper_wins_every_seed(results)
    assert control_study.gaps(results) == {"0": 5, "1": -1}


def test_a_results_file_of_another_study_is_refused(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"study": "table3", "runs": {}}))
    assert control_study.main(["--quick", "--out", str(path)]) == 2
    assert "holds the study 'table3'" in capsys.readouterr().err


def test_the_accounting_table_compares_b_with_its_control():
    rows = {row[0]: row[1:] for row in control_study.accounting_table().rows}
    assert rows["weight layers"] == ["13", "8"]
    assert rows["convolutions"] == ["10 × 3×3", "5 × 5×5"]
    assert rows["receptive field"] == ["140 px", "140 px"]
    assert rows["parameters in all"] == ["133,047,848", "134,503,528"]
    # Per block of c channels in and out, two 3×3 layers hold 18c² weights, one 5×5 layer 25c²: the control has more.
    assert rows["parameters in convolutions"] == ["9,404,992", "10,860,672"]
