"""The GPU results command: every part end to end in --quick on a CPU, restartable, budgeted, and its plan."""

import json

import pytest
import torch

from vgg_tutorial.data import cluttered
from vgg_tutorial.studies import ensemble_study, gpu_results, gpu_study, localisation_study
from vgg_tutorial.studies.experiments import CELLS

PARTS_FILES = {f"{part}.json" for part in gpu_results.PARTS}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One --quick run of every part into a fresh folder."""
    tmp = tmp_path_factory.mktemp("gpu")
    argv = ["--out", str(tmp / "out"), "--work", str(tmp / "work"), "--quick", "--device", "cpu"]
    return argv, tmp / "out", gpu_results.main(argv)


def test_quick_runs_every_part_and_writes_one_file_each(quick):
    argv, out, status = quick
    assert status == 0
    assert {p.name for p in out.iterdir()} == PARTS_FILES
    for part in gpu_results.PARTS:
        results = gpu_results.load_part(out, part)
        assert results["schema"] == gpu_results.SCHEMA and results["part"] == part
        assert results["settings"]["quick"] is True
        for seeds in results["runs"].values():
            for record in seeds.values():
                assert record["command"] == "python -m vgg_tutorial.gpu_results " + " ".join(argv)
                assert record["machine"]["device"] == "cpu" and record["machine"]["torch"] == torch.__version__
                assert record["seconds"] >= 0 and record["estimated_seconds"] > 0
    table3 = gpu_results.load_part(out, "table3")
    assert set(table3["runs"]) == {name for name, *_ in CELLS}
    assert table3["settings"]["task"] == json.loads(json.dumps(cluttered.task()))
    tested = gpu_results.load_part(out, "tables45")["runs"]
    assert set(tested) == set(gpu_study.TESTED)
    assert "dense+multicrop Q=37,55,74" in tested["D, jittered"]["0"]["result"]["results"]
    localised = gpu_results.load_part(out, "localisation")["runs"]
    assert set(localised) == {name for name, *_ in localisation_study.CELLS}
    scores = localised["PCR, FC only"]["0"]["result"]
    assert 0 <= scores["gt_class_error"] <= scores["top1_error"] <= 100 and len(scores["losses"]) == 1
    combined = gpu_results.load_part(out, "ensembles")["runs"]["Tables 6-7"]["0"]["result"]
    members = {"D, 3 seeds": ["D seed 0"], "all 6 nets": ["D seed 0", "D, jittered seed 0"]}  # one seed in --quick
    assert {name: entry["0"]["members"] for name, entry in combined["runs"].items() if name in members} == members
    assert len(ensemble_study.table(combined, "test").rows) == len(combined["runs"])
    vgg16 = gpu_results.load_part(out, "vgg16")["runs"]
    assert set(vgg16) == set(gpu_results.VGG16) | {f"{name}, tested" for name in gpu_results.VGG16}
    run = vgg16["VGG-16-BN"]["0"]["result"]
    assert len(run["history"]) == run["config"]["epochs"] == 1
    run = vgg16["VGG-16-BN, tested"]["0"]["result"]
    assert {"center Q=37", "dense+flip Q=32,37,42"} <= set(run["evaluation"])
    assert set(run["multicrop"]) == {
        "multicrop Q=37",
        "multicrop Q=32,37,42",
        "dense+multicrop Q=37",
        "dense+multicrop Q=32,37,42",
    }


def test_a_second_run_continues_and_redoes_nothing(quick, capsys):
    argv, out, _ = quick
    before = {p.name: p.read_text() for p in out.iterdir()}
    assert gpu_results.main(argv) == 0
    assert "0 runs done" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_plan_marks_what_is_done_and_runs_nothing(quick, capsys):
    argv, out, _ = quick
    assert gpu_results.main([*argv, "--plan"]) == 0
    text = capsys.readouterr().out
    assert "still to run" in text and "done" in text and "0.0 min still to run" in text


def test_minutes_starts_nothing_that_would_not_fit(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"), "--quick", "--minutes", "0.01"]
    assert gpu_results.main(argv) == 0
    assert "0 runs done" in capsys.readouterr().out
    assert not any(p.suffix == ".json" for p in (tmp_path / "out").iterdir())


def test_a_file_with_other_settings_or_of_another_kind_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "table3.json").write_text(json.dumps({"schema": gpu_results.SCHEMA, "part": "table3", "settings": {}}))
    argv = ["--out", str(out), "--quick", "--parts", "table3", "--work", str(tmp_path / "w")]
    assert gpu_results.main(argv) == 2
    assert "other settings" in capsys.readouterr().err
    (out / "table3.json").write_text('{"schema": "vgg_tutorial.bench/2"}')
    assert gpu_results.main(argv) == 2
    assert "not a 'table3' results file" in capsys.readouterr().err
    (out / "table3.json").write_text("{not json")
    assert gpu_results.main(argv) == 2
    assert "not a readable results file" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gives")
def test_without_a_gpu_it_says_so_unless_quick_or_plan(tmp_path, capsys):
    assert gpu_results.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert gpu_results.main(["--out", str(tmp_path), "--plan"]) == 0
    assert "an H200" in capsys.readouterr().out


def test_the_full_plan_fits_five_leases_of_nine_minutes(tmp_path):
    args = gpu_results.parser().parse_args(["--out", str(tmp_path), "--device", "cpu"])
    runs = gpu_results.plan(args, tmp_path, "command")
    assert sum(run.estimate_s for run in runs) <= 5 * 9 * 60
    ensembles = [run for run in runs if run.part == "ensembles"]
    assert runs[-1:] == ensembles and ensembles[0].estimate() <= 9 * 60  # last, within one lease even if retraining
    assert [run.part for run in runs[:2]] == ["speed", "speed"]
    per_seed = [sum(r.estimate_s for r in runs if r.part == "table3" and r.seed == s) for s in range(gpu_results.SEEDS)]
    assert max(per_seed) <= 4 * 60  # one seed of every Table 3 cell within four minutes on an H200
    for seed in range(gpu_results.SEEDS):  # each seed's D nets are tested after its Table 3 cells, in the same lease
        order = [(r.part, r.name) for r in runs if r.seed == seed and r.part in ("table3", "tables45")]
        assert order.index(("tables45", "D")) > order.index(("table3", "D"))


def test_a_run_that_fails_is_reported_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    def broken(name, work, args, command):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(gpu_results, "train_vgg16", broken)
    argv = ["--out", str(tmp_path / "o"), "--work", str(tmp_path / "w"), "--quick", "--parts", "vgg16", "speed"]
    assert gpu_results.main(argv) == 1
    err = capsys.readouterr().err
    assert "simulated" in err and "failed (traceback above): [vgg16] VGG-16-BN" in err
    assert gpu_results.load_part(tmp_path / "o", "speed")["runs"]  # the other part's runs were kept
    assert set(gpu_results.load_part(tmp_path / "o", "vgg16")["runs"]) == {
        "VGG-16-BN, tested",
        "VGG-16, Glorot, tested",
    }


def test_quick_options_drop_compilation_and_sizes():
    words = gpu_results.quick_options(
        "--configs D --sizes 224 --compile --compile-mode reduce-overhead --batch-size 512"
    )
    assert words[:2] == ["--configs", "D"]
    assert not {"--compile", "reduce-overhead", "512", "224"} & set(words)
    assert "--quick" in words


def test_testing_a_net_costs_its_training_too_when_this_session_has_not_trained_it(tmp_path):
    args = gpu_results.parser().parse_args(["--out", str(tmp_path), "--device", "cpu", "--work", str(tmp_path / "w")])
    runs = {run.name: run for run in gpu_results.plan(args, tmp_path / "w", "command") if run.part == "vgg16"}
    tested, trained = runs["VGG-16-BN, tested"], runs["VGG-16-BN"]
    assert tested.estimate() == tested.estimate_s + trained.estimate_s
    checkpoint = tmp_path / "w" / "vgg-16-bn" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    assert tested.estimate() == tested.estimate_s


def test_bad_options_and_outputs_are_refused_before_any_work(tmp_path, capsys):
    from vgg_tutorial.training.commands import report_errors

    (tmp_path / "afile").write_text("")
    argv = ["--out", str(tmp_path / "afile"), "--quick", "--work", str(tmp_path / "w")]
    assert report_errors(lambda: gpu_results.main(argv)) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing was rendered or trained
    for bad in (["--minutes", "-1"], ["--device", "bogus"], ["--parts", "table4"]):
        with pytest.raises(SystemExit) as exit:
            gpu_results.main(["--out", str(tmp_path / "o"), *bad])
        assert exit.value.code == 2
    assert "--minutes must be a positive number" in capsys.readouterr().err
