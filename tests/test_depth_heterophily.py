"""Tests for experiments/depth_heterophily.py: its configs, argument checks and an end-to-end smoke run."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "depth_heterophily.py"


depth_heterophily = load_script(SCRIPT, "depth_heterophily")


def test_graff_runs_depth_steps_of_its_preset_step_and_the_plain_stack_is_afw():
    configs = depth_heterophily._configs("graff_tuned", "minesweeper", 4, [0], None)
    graff, plain = configs["GRAFF (residual)"], configs["non-residual ĀFW"]
    assert graff.time == pytest.approx(4 * graff.step_size)
    assert (plain.step_size, plain.time, plain.omega, plain.source) == (1.0, 4.0, "const", False)
    assert plain.activation is None and not plain.normalize_field
    assert graff.seed == plain.seed == depth_heterophily.SEED and graff.splits == plain.splits == (0,)
    assert list(configs) == ["GRAFF (residual)", "non-residual ĀFW"]  # no GRAFF-NL preset asked for


def test_graff_nl_runs_depth_steps_where_its_preset_covers_the_dataset():
    configs = depth_heterophily._configs("graff_tuned", "minesweeper", 8, [0], None, "graff_nl_tuned")
    assert list(configs) == ["GRAFF (residual)", "GRAFF-NL, per-step W", "non-residual ĀFW"]
    nl = configs["GRAFF-NL, per-step W"]
    assert nl.time == pytest.approx(8 * nl.step_size) and nl.time_dependent and nl.activation == "relu"
    assert nl.seed == depth_heterophily.SEED and nl.splits == (0,)
    # graff_nl_tuned has no tolokers file: the model is left out there, not an error
    assert "GRAFF-NL, per-step W" not in depth_heterophily._configs("graff_tuned", "tolokers", 8, [0], None,
                                                                   "graff_nl_tuned")


@pytest.mark.parametrize("argv, fragment", [
    (["--depths", "0,2"], "every --depths value must be >= 1"),
    (["--depths", "two"], "--depths must be comma-separated integers"),
    (["--datasets", ","], "--datasets must name at least one dataset"),
    (["--nl-preset", "graff_nl_tunde"], "--nl-preset 'graff_nl_tunde' is no packaged preset; available: "),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),  # was: the presets' full epochs
    (["--epochs", "-3"], "--epochs must be a positive integer, got -3"),
    (["--threads", "0"], "--threads must be a positive integer, got 0"),  # was: ignored
    (["--threads", "-1"], "--threads must be a positive integer, got -1"),
    (["--datasets", "nope"], "--datasets: unknown dataset 'nope'"),
    (["--datasets", "pubmed"], "--datasets: preset 'graff_tuned' has no config for dataset 'pubmed'"),
    (["--preset", "nope"], "--preset 'nope' is no packaged preset; available: "),
    (["--splits", "99"], "--splits: dataset 'minesweeper' has splits 0..9; split(s) [99] do not exist"),
    (["--data-root", "/nonexistent/data"], "data root '/nonexistent/data' is not a folder"),
    (["--out-dir", "/proc/x"], "--out-dir '/proc/x' cannot be created"),
    (["--page", "/proc/x.md"], "--page '/proc/x.md' cannot be created"),
    (["--csv", "/proc/x.csv"], "--csv '/proc/x.csv' cannot be created"),
    (["--datasets", "tolokers"], "dataset 'tolokers' is incomplete under data root"),  # before any dataset trains
])
def test_bad_arguments_are_usage_errors(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTINUOUS_GNN_DATA", str(tmp_path))  # a data root that exists, for the other flags
    outputs = ["--out-dir", str(tmp_path / "records"), "--page", str(tmp_path / "p.md"),
               "--figure", str(tmp_path / "f.png"), "--csv", str(tmp_path / "t.csv")]
    with pytest.raises(SystemExit) as exit_info:
        depth_heterophily.main([*outputs, *argv])  # the flag under test comes last and wins
    assert exit_info.value.code == 2 and fragment in capsys.readouterr().err
    assert not (tmp_path / "records").exists()  # refused before anything is created


def test_the_figure_without_matplotlib_is_refused_before_any_training(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(SystemExit) as exit_info:
        depth_heterophily.main(["--out-dir", str(tmp_path / "records"), "--page", str(tmp_path / "p.md")])
    assert exit_info.value.code == 2 and "matplotlib is not installed, and it draws the page's figure" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def _rows(epochs):
    return [{"dataset": "minesweeper", "model": model, "layers": 1, "test_mean": 80.0, "test_std": 0.0,
             "val_mean": 80.0, "metric": "roc_auc", "status": "ok", "best_epochs": "1", "epochs": epochs}
            for model in ("GRAFF (residual)", "non-residual ĀFW")]


def test_page_says_when_it_is_a_partial_run_and_states_the_epochs():
    page = depth_heterophily._page(_rows(2), ["minesweeper"], [1], [0], "graff_tuned", "cmd", "now", 1.0,
                                   "figures/depth.png", partial=True)
    assert "> **Partial run**" in page and "Epochs per run: GRAFF (residual) 2; non-residual ĀFW 2." in page
    full = depth_heterophily._page(_rows(500), ["minesweeper"], [1], [0], "graff_tuned", "cmd", "now", 1.0,
                                   "figures/depth.png")
    assert "Partial run" not in full


@pytest.mark.parametrize("argv, partial", [
    ([], False),
    (["--splits", "0"], True),
    (["--epochs", "5"], True),
    (["--depths", "1,2"], True),
    (["--datasets", "minesweeper"], True),
    (["--datasets", "Tolokers,minesweeper,cora", "--depths", "32,16,8,4,2,1,64", "--splits", "0-4"], False),
])
def test_a_run_is_partial_when_it_measures_less_than_the_default(argv, partial):
    parser_args = depth_heterophily.argparse.Namespace(datasets=depth_heterophily.DEFAULT_DATASETS,
                                                       depths=depth_heterophily.DEFAULT_DEPTHS,
                                                       splits=depth_heterophily.DEFAULT_SPLITS, epochs=None)
    for flag, value in zip(argv[::2], argv[1::2]):
        setattr(parser_args, flag[2:], int(value) if flag == "--epochs" else value)
    datasets = parser_args.datasets.split(",")
    depths = [int(d) for d in parser_args.depths.split(",")]
    splits = depth_heterophily.parse_splits(parser_args.splits)
    assert depth_heterophily._is_partial(parser_args, datasets, depths, splits) is partial


def test_findings_are_computed_from_the_rows():
    rows = [{"dataset": "m", "model": "A", "layers": layers, "test_mean": mean, "status": "ok",
             "best_epochs": best, "epochs": 100} for layers, mean, best in [(1, 80.0, "50 60"), (2, 90.0, "95 40"),
                                                                             (4, 85.5, "99 100")]]
    rows += [{"dataset": "m", "model": "B", "layers": layers, "test_mean": mean, "status": "ok",
              "best_epochs": "10 20", "epochs": 100} for layers, mean in [(1, 82.0), (2, 70.0)]]
    rows.append({"dataset": "m", "model": "B", "layers": 4, "test_mean": float("nan"), "status": "failed: X",
                 "best_epochs": "", "epochs": 100})
    text = depth_heterophily._findings(rows, "m")
    assert "A peaks at L = 2 (90.00) and is at 85.50 at L = 4 (-4.50)" in text
    assert "B peaks at L = 1 (82.00) and is at 70.00 at L = 2 (-12.00)" in text
    assert "A is above B at 1 of the 2 depths where both ran" in text
    assert text.endswith("may limit them: A at L = 2, A at L = 4.")


def test_findings_compare_every_residual_flow_with_the_stack_listed_last():
    rows = [{"dataset": "m", "model": model, "layers": layers, "test_mean": mean, "status": "ok",
             "best_epochs": "1", "epochs": 100}
            for model, means in [("A", [80.0, 70.0]), ("N", [81.0, 90.0]), ("B", [75.0, 72.0])]
            for layers, mean in zip([1, 2], means)]
    rows.append({"dataset": "other", "model": "C", "layers": 1, "test_mean": 1.0, "status": "ok",
                 "best_epochs": "1", "epochs": 100})
    text = depth_heterophily._findings(rows, "m")
    assert "A is above B at 1 of the 2 depths" in text and "N is above B at 2 of the 2 depths" in text
    assert "C" not in text  # another dataset's model


@pytest.mark.data
def test_smoke_writes_the_page_figure_and_table_and_resumes(data_root, data_cache, tmp_path, capsys):
    page, figure, table = tmp_path / "depth.md", tmp_path / "depth.png", tmp_path / "depth.csv"
    argv = ["--datasets", "minesweeper,tolokers", "--depths", "1,2", "--splits", "0", "--epochs", "2",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--page", str(page),
            "--figure", str(figure), "--csv", str(table), "--out-dir", str(tmp_path / "records")]
    assert depth_heterophily.main(argv) == 0
    rows = list(csv.DictReader(table.open()))
    expected = [(model, layers) for layers in "12" for model in ["GRAFF (residual)", "GRAFF-NL, per-step W",
                                                                   "non-residual ĀFW"]]
    expected += [(model, layers) for layers in "12" for model in ["GRAFF (residual)", "non-residual ĀFW"]]
    assert [(r["model"], r["layers"]) for r in rows] == expected  # no GRAFF-NL preset for tolokers
    assert {(r["status"], r["metric"]) for r in rows} == {("ok", "roc_auc")}
    text = page.read_text()
    tolokers = text.split("## tolokers")[1]
    assert "| layers | GRAFF (residual) | non-residual ĀFW |" in tolokers
    assert "GRAFF-NL, per-step W is not run on tolokers: the `graff_nl_tuned` preset has no file for it." in tolokers
    assert "| layers | GRAFF (residual) | GRAFF-NL, per-step W | non-residual ĀFW |" in text
    assert "`graff_tuned` preset" in text and "## minesweeper" in text
    assert f"![depth]({figure.name})" in text  # beside the page, so no figures/ folder in the link
    assert "> **Partial run**" in text and "Epochs per run: GRAFF (residual) 2; GRAFF-NL, per-step W 2;" in text
    assert "In words: GRAFF (residual) peaks at L = " in text and "\n\nIn words" in text  # not a table row
    assert "by `python experiments/depth_heterophily.py --datasets minesweeper" in text
    assert " ± " not in text.split("## minesweeper")[1]  # one split: no spread to show
    assert "`graff_nl_tuned` preset" in text
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "records").glob("*.json"))) == 10

    capsys.readouterr()
    assert depth_heterophily.main(argv) == 0  # every run is found in --out-dir: nothing trains again
    assert capsys.readouterr().out.count("done before") == 10
    assert list(csv.DictReader(table.open())) == rows
