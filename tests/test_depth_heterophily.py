"""Tests for experiments/depth_heterophily.py: its configs, argument checks and an end-to-end smoke run."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "depth_heterophily.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("depth_heterophily", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


depth_heterophily = _load_script()


def test_graff_runs_depth_steps_of_its_preset_step_and_the_plain_stack_is_afw():
    configs = depth_heterophily._configs("graff_tuned", "minesweeper", 4, [0], None)
    graff, plain = configs["GRAFF (residual)"], configs["non-residual ĀFW"]
    assert graff.time == pytest.approx(4 * graff.step_size)
    assert (plain.step_size, plain.time, plain.omega, plain.source) == (1.0, 4.0, "const", False)
    assert plain.activation is None and not plain.normalize_field
    assert graff.seed == plain.seed == depth_heterophily.SEED and graff.splits == plain.splits == (0,)


@pytest.mark.parametrize("argv, fragment", [
    (["--depths", "0,2"], "every --depths value must be >= 1"),
    (["--depths", "two"], "--depths must be comma-separated integers"),
    (["--datasets", ","], "--datasets must name at least one dataset"),
])
def test_bad_arguments_are_usage_errors(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        depth_heterophily.main(argv)
    assert exit_info.value.code == 2 and fragment in capsys.readouterr().err


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


@pytest.mark.data
def test_smoke_writes_the_page_figure_and_table_and_resumes(data_root, data_cache, tmp_path, capsys):
    page, figure, table = tmp_path / "depth.md", tmp_path / "depth.png", tmp_path / "depth.csv"
    argv = ["--datasets", "minesweeper", "--depths", "1,2", "--splits", "0", "--epochs", "2",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--page", str(page),
            "--figure", str(figure), "--csv", str(table), "--out-dir", str(tmp_path / "records")]
    assert depth_heterophily.main(argv) == 0
    rows = list(csv.DictReader(table.open()))
    assert [(r["model"], r["layers"], r["status"], r["metric"]) for r in rows] == [
        ("GRAFF (residual)", "1", "ok", "roc_auc"), ("non-residual ĀFW", "1", "ok", "roc_auc"),
        ("GRAFF (residual)", "2", "ok", "roc_auc"), ("non-residual ĀFW", "2", "ok", "roc_auc")]
    text = page.read_text()
    assert "`graff_tuned` preset" in text and "## minesweeper" in text and f"figures/{figure.name}" in text
    assert "In words: GRAFF (residual) peaks at L = " in text and "\n\nIn words" in text  # not a table row
    assert "by `python experiments/depth_heterophily.py --datasets minesweeper" in text
    assert " ± " not in text.split("## minesweeper")[1]  # one split: no spread to show
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "records").glob("*.json"))) == 4

    capsys.readouterr()
    assert depth_heterophily.main(argv) == 0  # every run is found in --out-dir: nothing trains again
    assert capsys.readouterr().out.count("done before") == 4
    assert list(csv.DictReader(table.open())) == rows
