"""The chapter "Reading the paper": its tables are built from CONFIGS and say what the paper says."""

import re

import matplotlib

matplotlib.use("Agg")

from vgg_tutorial.lessons import paper_tables  # noqa: E402
from vgg_tutorial.paper.accounting import count_macs, count_parameters  # noqa: E402
from vgg_tutorial.paper.configs import CONFIGS  # noqa: E402
from vgg_tutorial.paper.table import Table  # noqa: E402


def test_table1_columns_hold_every_layer_of_their_configuration():
    table = paper_tables.table1()
    assert table.header == list(CONFIGS) and table.rows[0][4] == "16 weight layers"
    for column, name in enumerate(CONFIGS):
        layer_rows = [row for index, row in enumerate(table.rows) if index > 0 and index not in table.span_rows]
        listed = [row[column] for row in layer_rows if row[column]]
        assert listed == [layer for block in CONFIGS[name] for layer in block]
    spans = [table.rows[index][0] for index in sorted(table.span_rows)]
    assert spans.count("maxpool") == 5 and spans[-4:] == ["FC-4096", "FC-4096", "FC-1000", "soft-max"]


def test_table1_sets_new_layers_in_bold_like_the_paper():
    table = paper_tables.table1()
    bold = {(table.rows[row][column], list(CONFIGS)[column]) for row, column in table.bold}
    assert ("LRN", "A-LRN") in bold and ("conv1-256", "C") in bold and ("conv3-256", "D") in bold
    assert not any(name == "A" for _, name in bold)  # the first column has nothing to its left
    assert "<strong>LRN</strong>" in table._repr_html_()


def test_table2_agrees_with_the_paper():
    rows = paper_tables.table2().rows
    assert [row[0] for row in rows] == list(CONFIGS)
    assert all(row[-1] == "yes" for row in rows)
    assert rows[4][1] == "138,357,544"


def test_cost_split_adds_up():
    for name in CONFIGS:
        split = paper_tables.cost_split(name)
        assert sum(split.params.values()) == count_parameters(name)
        assert sum(split.macs.values()) == count_macs(name)
    d = paper_tables.cost_split("D")
    assert d.params["FC layers"] == 123_642_856
    table = {row[0]: row for row in paper_tables.cost_table().rows}
    assert table["D"][2] == "89.4%" and table["D"][4] == "99.2%"


def test_layer_table_of_d():
    rows = paper_tables.layer_table("D").rows
    assert rows[0] == ["conv3-64", "1", "64@224×224", "1,792", "89.9 M", "3×3"]
    assert rows[-3][0] == "FC-4096" and rows[-3][3] == "102,764,544"
    assert [row[5] for row in rows if row[0] == "maxpool"][-1] == "212×212"


def test_init_scale_table_gain():
    literal = paper_tables.init_scale_table("A", paper_std=0.1).rows
    assert len(literal) == 8
    assert literal[-1][1] == "4,608" and literal[-1][2] == "0.0208" and literal[-1][4] == "23×"
    assert literal[-1][5] == "3.63e+06×"
    rows = paper_tables.init_scale_table("A").rows  # default std 0.01, the reading that trains: 10⁻⁴ × each gain
    assert rows[-1][3] == "0.01" and rows[-1][4] == "0.23×" and rows[0][4] == "0.00135×"
    assert float(rows[-1][5].rstrip("×")) < 1e-8  # A's convolutions shrink the mean square a billionfold


def test_recipe_card_cites_sections():
    card = paper_tables.recipe_card()
    assert all(re.fullmatch(r"§\d\.\d", row[2]) for row in card.rows)
    rows = {row[0]: row for row in card.rows}
    assert rows["test scale Q"][2] == "§4.1" and "Q = 0.5(S_min + S_max)" in rows["test scale Q"][1]
    scale = rows["training scale S"][3]  # §3.1: only the S = 384 net got lr 1e-3; multi-scale nets start from it
    assert "S = 384 net was fine-tuned from the S = 256 one with learning rate 10⁻³" in scale
    assert "multi-scale nets were fine-tuned from the S = 384 one (no learning rate given)" in scale
    init = next(row for row in card.rows if row[0] == "initialisation")
    assert "std 0.01" in init[3] and "std 0.1" in init[3] and "NaN" in init[3] and "conv3_2" in init[3]


def test_text_and_html_forms():
    table = Table(["a", "b"], [["1", "<2>"]], "caption")
    assert repr(table).splitlines() == ["caption", "a  b", "-  ---", "1  <2>"]
    assert "&lt;2&gt;" in table._repr_html_() and "<caption>caption</caption>" in table._repr_html_()


def test_cost_plot_has_two_panels():
    fig = paper_tables.plot_cost_split()
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(CONFIGS)
