"""Tests for the scripts in experiments/ that have no test file of their own: their argument checks, which must
refuse bad input before any data loads or run trains, and what they write."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name: str):
    if str(EXPERIMENTS) not in sys.path:  # oversmoothing.py imports its page module from beside it
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _usage_error(main, argv, capsys) -> str:
    """The one-line error of a refused command line (exit status 2, no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    return err


@pytest.fixture
def data_root_env(tmp_path, monkeypatch):
    """An existing (empty) data root, so that the flag under test is the one refused."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("CONTINUOUS_GNN_DATA", str(root))
    return root


# ---------------------------------------------------------------------- batching_accuracy.py

batching = _load("batching_accuracy")
MARKED = f"# page\n\n{batching.BEGIN}\nold table\n{batching.END}\n\nafter\n"


@pytest.mark.parametrize("argv, fragment", [
    (["--dataset", "nope"], "--dataset: unknown dataset 'nope'"),
    (["--dataset", "minesweeper"], "--dataset: preset 'graff' has no config for dataset 'minesweeper'"),
    (["--splits", "99"], "--splits: dataset 'cora' has splits 0..9; split(s) [99] do not exist"),
    (["--splits", "x"], "--splits: bad split specification 'x'"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--epochs", "-1"], "--epochs must be a positive integer, got -1"),
    (["--threads", "0"], "--threads must be a positive integer, got 0"),
    (["--seed", "-1"], "--seed: seed must be an integer in [0, "),
    (["--data-root", "/nonexistent/data"], "data root '/nonexistent/data' is not a folder"),
    (["--out-dir", "/proc/x"], "--out-dir '/proc/x' cannot be created"),
    (["--page", "/proc/x.md"], "--page '/proc/x.md' cannot be created"),
    ([], "dataset 'cora' is incomplete under data root"),  # the empty root: before the data loads, no traceback
])
def test_batching_accuracy_refuses_bad_arguments_before_training(argv, fragment, data_root_env, tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(MARKED)
    err = _usage_error(batching.main, ["--page", str(page), "--out-dir", str(tmp_path / "runs"), *argv], capsys)
    assert fragment in err
    assert not (tmp_path / "runs").exists()


def test_batching_accuracy_refuses_a_page_without_its_block_before_training(data_root_env, tmp_path, capsys,
                                                                           monkeypatch):
    missing = tmp_path / "missing.md"
    assert "does not exist; pass the page that holds the" in _usage_error(batching.main, ["--page", str(missing)],
                                                                           capsys)
    plain = tmp_path / "plain.md"
    plain.write_text("# no block here\n")
    assert (f"--page {str(plain)!r} has no {batching.BEGIN} ... {batching.END} block"
            in _usage_error(batching.main, ["--page", str(plain)], capsys))
    monkeypatch.setattr(batching, "check_dataset_files", lambda name, root: None)  # the root is empty here
    assert batching._arguments(["--page", "none"]).page == "none"  # no page to check


def test_batching_accuracy_writes_its_records_under_the_repository_and_dates_the_table_in_utc(
        data_root_env, tmp_path, monkeypatch, capsys):
    saved = []

    class Dataset:
        name, num_nodes = "Cora", 10

    class Result:
        test_metrics = [0.8, 0.7]

        def aggregate(self):
            return {"test_mean": 0.75, "test_std": 0.05, "val_mean": 0.7, "val_std": 0.0, "epoch_time_mean": 0.01}

        def to_record(self, **_):
            return {}

    monkeypatch.setattr(batching, "check_dataset_files", lambda name, root: None)
    monkeypatch.setattr(batching, "load_run_dataset", lambda *a, **k: Dataset())
    monkeypatch.setattr(batching, "run", lambda config, dataset: Result())
    monkeypatch.setattr(batching, "_edges_inside", lambda config, dataset: 1.0)
    monkeypatch.setattr(batching, "save_record", lambda record, path, numbered: saved.append(path))
    monkeypatch.chdir(tmp_path)  # records used to land in ./runs of the current folder
    page = tmp_path / "page.md"
    page.write_text(MARKED)
    assert batching.main(["--page", str(page), "--splits", "0,1", "--epochs", "1"]) == 0
    assert {path.parent.parent for path in saved} == {batching.REPO / "runs"}
    assert all(path.parent.name.startswith("batching-") for path in saved)
    block = page.read_text().split(batching.BEGIN)[1]
    assert "+00:00 by `python experiments/batching_accuracy.py" in block  # UTC with its offset
    assert page.read_text().endswith(f"{batching.END}\n\nafter\n")


# ---------------------------------------------------------------------- operator_benchmark.py

operator_benchmark = _load("operator_benchmark")


@pytest.mark.parametrize("argv, fragment", [
    (["--dataset", "nope"], "--dataset: unknown dataset 'nope'"),
    (["--channels", "-4"], "--channels must be a positive integer, got -4"),
    (["--channels", "0"], "--channels must be a positive integer, got 0"),  # was: a page for 0 channels
    (["--repeats", "0"], "--repeats must be a positive integer, got 0"),
    (["--out", "/proc/x.md"], "--out '/proc/x.md' cannot be created"),
    (["--data-root", "/nonexistent/data"], "data root '/nonexistent/data' is not a folder"),
    (["--dataset", "texas"], "dataset 'texas' is incomplete under data root"),
])
def test_operator_benchmark_refuses_bad_arguments(argv, fragment, data_root_env, tmp_path, capsys):
    assert fragment in _usage_error(operator_benchmark.main, ["--out", str(tmp_path / "op.md"), *argv], capsys)
    assert not (tmp_path / "op.md").exists()


def test_operator_benchmark_help_describes_every_flag_and_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        operator_benchmark.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for fragment in ("(default: squirrel)", "(default: 128)", "(default: 30)", "(default: docs/operator.md)",
                     "(default: $CONTINUOUS_GNN_DATA"):
        assert fragment in text


@pytest.mark.data
def test_operator_benchmark_records_a_command_that_reruns_with_a_spaced_path(data_root, tmp_path):
    import shlex

    out = tmp_path / "a folder" / "operator.md"
    argv = ["--dataset", "texas", "--channels", "2", "--repeats", "1", "--data-root", str(data_root),
            "--out", str(out)]
    assert operator_benchmark.main(argv) == 0
    command = out.read_text().split("by `")[1].split("`")[0]
    assert shlex.split(command) == ["python", "experiments/operator_benchmark.py", *argv]


# ---------------------------------------------------------------------- oversmoothing.py

oversmoothing = _load("oversmoothing")


@pytest.mark.parametrize("argv, fragment", [
    (["--out-dir", "/proc/x"], "--out-dir '/proc/x' cannot be created"),
    (["--docs", "/proc/x"], "--docs '/proc/x' cannot be created"),
    (["--docs", "/etc/passwd"], "--docs '/etc/passwd' is a file; pass a folder"),
])
def test_oversmoothing_refuses_unwritable_outputs_before_any_work(argv, fragment, tmp_path, capsys):
    err = _usage_error(oversmoothing.main, ["--out-dir", str(tmp_path / "runs"), "--docs", str(tmp_path / "docs"),
                                            *argv], capsys)
    assert fragment in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "docs").exists()


def _fake_sections(monkeypatch, failing: str | None = None) -> None:
    """Sections that draw one figure each (and one that fails, if named), and a page of their figures."""
    def section(name):
        def draw(out, figures, *_):
            if name == failing:
                raise RuntimeError(f"{name} interrupted")
            (figures / f"{name}.png").write_bytes(b"\x89PNG new")
            return {"png": f"figures/{name}.png"}
        return draw

    for name in ("fresh", "bipartite", "extrapolation", "homophily"):
        monkeypatch.setattr(oversmoothing, f"{name}_section", section(name))
    monkeypatch.setattr(oversmoothing, "render", lambda sections, *_: " ".join(s["png"] for s in sections.values()))


def test_oversmoothing_publishes_its_figures_only_with_the_page(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "figures").mkdir(parents=True)
    (docs / "oversmoothing.md").write_text("old page")
    (docs / "figures" / "fresh.png").write_bytes(b"old")
    argv = ["--out-dir", str(tmp_path / "runs"), "--docs", str(docs)]
    _fake_sections(monkeypatch, failing="extrapolation")
    with pytest.raises(RuntimeError, match="extrapolation interrupted"):
        oversmoothing.main(argv)
    # the sections before the failure drew their figures, but the docs still hold the old page and figures
    assert (docs / "oversmoothing.md").read_text() == "old page"
    assert sorted(p.name for p in (docs / "figures").iterdir()) == ["fresh.png"]
    assert (docs / "figures" / "fresh.png").read_bytes() == b"old"

    _fake_sections(monkeypatch)
    assert oversmoothing.main(argv) == 0
    assert (docs / "oversmoothing.md").read_text() == ("figures/fresh.png figures/bipartite.png "
                                                        "figures/extrapolation.png figures/homophily.png")
    assert {p.name: p.read_bytes() for p in (docs / "figures").iterdir()} == {
        f"{name}.png": b"\x89PNG new" for name in ("fresh", "bipartite", "extrapolation", "homophily")}


# ---------------------------------------------------------------------- convergence_order.py, oversmoothing_page.py

convergence_order = _load("convergence_order")


def test_convergence_order_help_computes_nothing(capsys):
    with pytest.raises(SystemExit) as exit_info:
        convergence_order.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith("usage: python experiments/convergence_order.py")
    assert "slope" not in out


def test_convergence_order_says_which_slope_is_not_the_order(capsys):
    assert convergence_order.main([]) == 0
    out = capsys.readouterr().out
    assert "explicit_adams: the slope " in out and "is not its order 4 (torchdiffeq 0.2.5's explicit_adams" in out
    assert "rk4: the slope" not in out  # the methods that reach their order get no note


def test_oversmoothing_page_run_directly_says_how_to_regenerate_the_page():
    import subprocess

    result = subprocess.run([sys.executable, str(EXPERIMENTS / "oversmoothing_page.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "regenerate the page with: python experiments/oversmoothing.py" in result.stderr


# ---------------------------------------------------------------------- README.md


def test_the_readme_names_every_config_preset_folder_and_suite():
    import fnmatch
    import re

    readme = (EXPERIMENTS / "README.md").read_text(encoding="utf-8")
    quoted = re.findall(r"`([^`]+)`", readme)
    globs = [q for q in quoted if "*" in q]
    folders = [q for q in quoted if q.endswith("/")]
    missing = []
    for path in sorted((EXPERIMENTS / "configs").rglob("*.toml")):
        rel = path.relative_to(EXPERIMENTS).as_posix()
        named = re.search(rf"[`/]{re.escape(path.name)}`", readme)
        if not (named or any(fnmatch.fnmatch(rel, g) for g in globs) or any(rel.startswith(f) for f in folders)):
            missing.append(rel)
    presets = EXPERIMENTS.parent / "continuous_gnn" / "presets"
    for folder in sorted(p for p in presets.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        if folder.name in ("search", "studies", "suites"):
            continue
        if f"`continuous_gnn/presets/{folder.name}/" not in readme and f"`{folder.name}/`" not in readme:
            missing.append(f"continuous_gnn/presets/{folder.name}/")
    missing += [f"suite {suite.stem}" for suite in sorted((presets / "suites").glob("*.toml"))
                if f"`{suite.stem}`" not in readme]
    assert not missing, f"experiments/README.md does not describe: {', '.join(missing)}"
