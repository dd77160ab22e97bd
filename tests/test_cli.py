"""Tests for the command line: precedence of config layers, errors (exit status 2), and end-to-end runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from continuous_gnn.cli import build_parser, main, resolve_cli_config
from continuous_gnn.training import RunConfig, read_config_file, resolve_config
from continuous_gnn.training.presets import presets_dir, search_space_path
from continuous_gnn.training.search import load_search_space

REPO = Path(__file__).resolve().parents[1]
#: The search space tune uses by default.
SPACE = load_search_space(search_space_path())
TUNE_SPACE, EXTRA_SPACE = SPACE.search, SPACE.also


def _resolve(argv: list[str]) -> RunConfig:
    return resolve_cli_config(build_parser().parse_args(["train", *argv])).config


# ---------------------------------------------------------------------- precedence


def test_untyped_flags_are_absent():
    args = build_parser().parse_args(["train", "--dataset", "texas"])
    assert not hasattr(args, "lr") and not hasattr(args, "adjoint") and not hasattr(args, "splits")


def test_defaults_preset_file_flags_precedence(tmp_path):
    preset = read_config_file(presets_dir() / "graff" / "texas.toml")
    assert preset["hidden"] == 256 and preset["encoder"] == "mlp"

    # defaults < preset
    config = _resolve(["--preset", "graff", "--dataset", "texas"])
    assert config.hidden == 256 and config.step_size == 0.5
    assert config.seed == RunConfig().seed  # not in the preset: the library default

    # preset < config file
    file = tmp_path / "over.toml"
    file.write_text('hidden = 32\nlr = 0.01\nadjoint = true\nsplits = "0-2"\n')
    config = _resolve(["--preset", "graff", "--dataset", "texas", "--config", str(file)])
    assert (config.hidden, config.lr, config.adjoint, config.splits) == (32, 0.01, True, (0, 1, 2))
    assert config.encoder == "mlp"  # untouched preset value

    # config file < typed flags, even when the typed value equals the library default
    config = _resolve(["--preset", "graff", "--dataset", "texas", "--config", str(file),
                       "--hidden", "64", "--lr", str(RunConfig().lr), "--no-adjoint", "--splits", "4"])
    assert config.hidden == 64 == RunConfig().hidden
    assert config.lr == RunConfig().lr
    assert config.adjoint is False and config.splits == (4,)


def test_dataset_from_the_config_file_selects_the_preset(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text('dataset = "cornell"\n')
    config = _resolve(["--preset", "graff_nl", "--config", str(file)])
    assert config.dataset == "cornell" and config.activation == "relu" and config.hidden == 32


def test_none_on_the_command_line_clears_a_preset_value():
    config = _resolve(["--preset", "graff", "--dataset", "cora", "--method", "dopri5", "--step-size", "none",
                       "--rtol", "1e-4"])
    assert config.method == "dopri5" and config.step_size is None and config.rtol == 1e-4


def test_regulariser_and_time_piece_flags():
    config = _resolve(["--dataset", "texas", "--kinetic-weight", "0.1", "--jacobian-weight", "2", "--method", "dopri5",
                       "--step-size", "none", "--time-dependent", "--time-pieces", "4"])
    assert (config.kinetic_weight, config.jacobian_weight, config.time_pieces) == (0.1, 2.0, 4)
    assert config.time_dependent and config.method == "dopri5"


# ---------------------------------------------------------------------- user errors: status 2, no traceback


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--dataset", "texas", "--lr", "abc"], "expected a number"),
        (["train", "--dataset", "texas", "--splits", "3-1"], "the end is before the start"),
        (["train", "--dataset", "texas", "--no-such-flag=1"], "unrecognized arguments"),
        (["train", "--dataset", "texas", "--activation", "sigmoid"], "invalid choice 'sigmoid'"),
        (["train", "--dataset", "texas", "--hidden", "1.5"], "expected an integer"),
        (["train", "--dataset", "texas", "--method", "dopri5", "--step-size", "0.5"], "--step-size none"),
        (["train", "--dataset", "texas", "--method", "euler", "--rtol", "1e-3"], "rtol/atol apply to adaptive"),
        (["train", "--dataset", "texas", "--kinetic-weight", "-1"], "kinetic_weight must be non-negative"),
        (["train", "--dataset", "texas", "--method", "dopri5", "--step-size", "none", "--time-dependent"],
         "need time_pieces"),
        (["train", "--preset", "graff"], "--preset needs a dataset"),
        (["train", "--preset", "nope", "--dataset", "texas"], "unknown preset 'nope'; available: graff, graff_nl"),
        (["train", "--preset", "graff", "--dataset", "minesweeper"], "has no config for dataset 'minesweeper'"),
        (["train", "--epochs", "3"], "no dataset"),
        (["train", "--dataset", "texas", "--dropout", "1.5"], r"dropout must lie in \[0, 1\)"),
        (["train", "--dataset", "texas", "--config", "/nonexistent/c.toml"], "does not exist"),
        (["train", "--dataset", "texas", "--data-root", "/nonexistent/data"], "data root '/nonexistent/data'"),
        ([], "usage"),
        (["train", "--dataset", "texas", "--hiden", "3"], r"continuous-gnn train: error: .*--hiden \(did you mean --hidden\?\)"),
        # the dashes every flag shares make no flag close: no suggestion for a flag like no other
        (["train", "--dataset", "texas", "--bogus"], r"unrecognized arguments: --bogus$"),
        (["trian", "--dataset", "texas"], r"^continuous-gnn: error: unknown command 'trian' \(did you mean 'train'\?\); "
                                          r"choose from train, tune"),
        (["train", "--dataset", "texas", "--epohcs=3"], r"--epohcs=3 \(did you mean --epochs\?\)"),
        # a prefix is no flag: argparse would take it for --epochs, and the record would quote a flag that does not exist
        (["train", "--dataset", "texas", "--epoch", "3"], r"--epoch \(did you mean --epochs\?\) 3$"),
        (["train", "--dataset", "texas", "--splits", "0-200000"], "split 200000 in '0-200000' is beyond any dataset"),
        (["train", "--dataset", "texas", "--splits", "0-9999999999"], "is beyond any dataset"),
        (["train", "--dataset", "texas", "--device", "meta"], "device 'meta' is not supported"),
        (["train", "--dataset", "texas", "--hidden", "100000000"], r"hidden must be an integer in \[1, 65536\]"),
        (["train", "--dataset", "texas", "--seed", "99999999999999999999"], "seed must be an integer in"),
        (["train", "--dataset", "texas", "--time", "1e4", "--step-size", "1e-3"], "gives 1e\\+07 steps"),
        (["train", "--dataset", "texas", "--time-dependent", "--step-size", "1e-300"], "raise step_size"),
        (["train", "--dataset", "texas", "--time", "2", "--step-size", "0.1", "--max-nfe", "10"],
         "gives 20 steps, more than the evaluation budget max_nfe = 10 .*; raise step_size or lower time, or raise "
         "max_nfe"),
        (["train", "--dataset", "texas", "--method", "dopri5", "--step-size", "none", "--adjoint",
          "--adjoint-method", "euler"], "choose an adaptive adjoint_method"),
        (["train", "--dataset", "texas", "--method", "dopri5", "--step-size", "none", "--rtol", "1e-12"],
         "rtol must be at least 1.2e-07"),
        (["train", "--dataset", "texas", "--preset", ""], "--preset is empty; available: graff"),
        (["tune", "--dataset", "texas", "--fix", ",".join(TUNE_SPACE)], "nothing to search"),
        (["tune", "--dataset", "texas", "--out", "best.json"], "name it .toml"),
        (["tune", "--dataset", "texas", "--timeout", "0"], "--timeout must be a positive number"),
        (["tune", "--dataset", "texas", "--sampler-seed", "-1"], "--sampler-seed must be in"),
        (["tune", "--dataset", "texas", "--sampler-seed", "1", "--storage", "sqlite:///unused.db", "--study-name", "s"],
         "--sampler-seed with --storage: every worker .* would draw the same trials"),
        (["tune", "--dataset", "texas", "--seeds", "99999999999999999999"], "--seeds: expected distinct integers"),
    ],
)
def test_user_errors_exit_2_with_a_message(argv, fragment, capsys):
    assert _status(argv) == 2
    err = capsys.readouterr().err
    assert re.search(fragment, err), err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["train", "--dataset", "texas", "--hiden", "3"], ["tune", "--trials", "x"],
                                  ["study", "--bogus"], ["bogus"], ["train", "--dataset", "texas", "--lr", "abc"]])
def test_every_usage_error_is_one_line_from_the_one_ladder(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    prefix = "continuous-gnn: error: " if argv[0] == "bogus" else f"continuous-gnn {argv[0]}: error: "
    assert err.startswith(prefix) and err.count("\n") == 1, err


@pytest.mark.parametrize(("space", "argv", "fragment"), [
    ("[search]\nlr = { uniform = [0.1, 0.01] }\n", [], r"lr: the range \[0.1, 0.01\] is empty"),
    ("[search]\nhiden = { categorical = [8] }\n", [], "unknown key 'hiden'"),
    ("[search]\nlr = { normal = [0.1, 0.01] }\n", [], "lr must be { categorical"),
    ("[search]\nlr = { uniform = [0.001, 0.01] }\n", ["--fix", "hidden"],
     r"--fix: unknown search key\(s\) \['hidden'\]; searched keys: lr"),
    ("[search]\nlr = { uniform = [0.001, 0.01] }\n", ["--also", "w"],
     r"--also: unknown key\(s\) \['w'\]; the search space has no \[also\] table$"),
    # Values each trial drawing them would fail on: the search would report a best config that ignored the space.
    ("[search]\nlr = { categorical = [-1.0] }\n", [],
     r"lr: the choice -1.0 makes no valid config from the starting one \(.*\); change the space, or keep lr out "
     r"of the search \(tune --fix lr\)"),
    ("[search]\ndropout = { uniform = [0.5, 1.5] }\n", [], "dropout: the end of the uniform range 1.5 makes no valid"),
])
def test_tune_space_file_errors_are_usage_errors(space, argv, fragment, tmp_path, capsys):
    pytest.importorskip("optuna")
    path = tmp_path / "space.toml"
    path.write_text(space)
    # The data root does not exist: the space is checked first.
    assert main(["tune", "--dataset", "texas", "--space", str(path), "--data-root", "/nonexistent", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("continuous-gnn tune: error: ") and err.count("\n") == 1
    assert re.search(fragment, err.strip()) or fragment in err, err
    assert main(["tune", "--dataset", "texas", "--space", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _tune_in_space(space_text: str, flags: list[str], data_root, data_cache, tmp_path) -> Path:
    """Run ``tune`` on texas split 0 for one epoch in the search space ``space_text``; the best config's path."""
    space = tmp_path / "space.toml"
    space.write_text(space_text)
    out = tmp_path / "best.toml"
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--hidden", "4", "--space", str(space),
            *flags, "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.data
def test_tune_searches_the_space_of_a_file(data_root, data_cache, tmp_path):
    pytest.importorskip("optuna")
    out = _tune_in_space('[search]\nlr = { uniform = [0.001, 0.01] }\n[also]\nhidden = { categorical = [4, 8] }\n',
                         ["--trials", "2", "--also", "hidden"], data_root, data_cache, tmp_path)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["space"] == {"lr": ["uniform", [0.001, 0.01]], "hidden": ["categorical", [4, 8]]}
    assert all(set(t["params"]) == {"lr", "hidden"} for t in record["trials"])
    assert f"--space {tmp_path / 'space.toml'}" in out.read_text().splitlines()[0]


@pytest.mark.data
def test_tune_searches_the_feature_normalisation_on_both_loadings(data_root, data_cache, tmp_path):
    pytest.importorskip("optuna")
    out = _tune_in_space("[search]\nnormalize_features = { categorical = [true] }\n",
                         ["--no-normalize-features", "--trials", "4", "--quiet"], data_root, data_cache, tmp_path)
    trials = json.loads(out.with_suffix(".json").read_text())["trials"]
    assert all(t["state"] == "COMPLETE" for t in trials)
    assert {t["params"]["normalize_features"] for t in trials} == {True, False}


def _status(argv: list[str]) -> int:
    """main()'s exit status, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def test_unknown_key_in_the_config_file_is_named(tmp_path, capsys):
    file = tmp_path / "c.toml"
    file.write_text("hiden = 3\n")
    assert main(["train", "--dataset", "texas", "--config", str(file)]) == 2
    err = capsys.readouterr().err
    assert "'hiden' (did you mean 'hidden'?)" in err


@pytest.mark.parametrize(("script", "command"), [
    ("reproduce.py", "reproduce"),
    pytest.param("solver_benchmark.py", "solvers", marks=pytest.mark.slow),  # 9 s; the same wrapper as reproduce.py
])
def test_the_experiment_scripts_run_the_package_commands(script, command):
    # docs/results.md and docs/solvers.md record these scripts as their rerun commands.
    done = subprocess.run([sys.executable, str(REPO / "experiments" / script), "--help"], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: continuous-gnn {command} "), done.stderr


def test_python_dash_m_help():
    done = subprocess.run([sys.executable, "-m", "continuous_gnn", "--help"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0
    for command in ("train", "tune", "reproduce"):
        assert command in done.stdout


# ---------------------------------------------------------------------- end to end on real data


@pytest.mark.data
def test_train_end_to_end_on_texas(data_root, data_cache, tmp_path, capsys):
    out = tmp_path / "texas.json"
    argv = ["train", "--preset", "graff", "--dataset", "texas", "--splits", "0", "--epochs", "5",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "population std over 1 split" in stdout and f"record {out}" in stdout
    record = json.loads(out.read_text())
    config = RunConfig.from_dict(record["config"])
    expected = resolve_config(read_config_file(presets_dir() / "graff" / "texas.toml"),
                              {"splits": [0], "epochs": 5}, sources=["preset", "flags"])
    assert config == expected
    assert record["preset"] == "graff" and record["command"].startswith("continuous-gnn train --preset graff")
    assert record["dataset"]["name"] == "texas" and record["dataset"]["num_nodes"] == 183
    assert [s["split"] for s in record["splits"]] == [0] and record["splits"][0]["epochs_run"] == 5
    assert record["splits"][0]["nfe_forward"] == [6] * 5  # T = 2.985, τ = 0.5: ceil(T/τ) = 6 Euler steps
    assert 0.0 <= record["aggregate"]["test_mean"] <= 1.0


@pytest.mark.data
def test_train_sets_the_torch_threads_and_records_them(data_root, data_cache, tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    out = tmp_path / "texas.json"
    argv = ["train", "--preset", "graff", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--threads", "1",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out), "--quiet"]
    try:
        torch.set_num_threads(2)
        assert main(argv) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert json.loads(out.read_text())["machine"]["torch_threads"] == 1
    assert main(["train", "--dataset", "texas", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


@pytest.mark.data
def test_train_writes_the_default_record_name(data_root, data_cache, tmp_path, capsys):
    argv = ["train", "--dataset", "texas", "--splits", "1", "--epochs", "2", "--hidden", "8",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", f"{tmp_path}/"]
    assert main(argv) == 0
    files = list(tmp_path.glob("texas-graff-*.json"))
    assert len(files) == 1


@pytest.mark.data
def test_nonexistent_split_is_a_user_error(data_root, data_cache, capsys):
    argv = ["train", "--dataset", "texas", "--splits", "12", "--epochs", "1",
            "--data-root", str(data_root), "--cache-dir", str(data_cache)]
    assert main(argv) == 2
    assert "split(s) [12] do not exist" in capsys.readouterr().err


@pytest.mark.data
def test_tune_writes_a_loadable_best_config(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "best.toml"
    argv = ["tune", "--preset", "graff", "--dataset", "cornell", "--splits", "0", "--epochs", "3", "--trials", "2",
            "--fix", "self_loops", "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "mean validation accuracy" in text and "test metric was not used" in text
    config = resolve_config(read_config_file(out), sources=[str(out)])
    assert config.dataset == "cornell" and config.epochs == 3 and config.self_loops is True
    trials = json.loads(out.with_suffix(".json").read_text())
    assert len(trials["trials"]) == 2
    preset = _resolve(["--preset", "graff", "--dataset", "cornell"])
    first = trials["trials"][0]["params"]
    assert first == {name: getattr(preset, name) for name in first}, "trial 0 must be the configured values"
    assert trials["configured_value"] == trials["trials"][0]["value"]
    assert "configured values, trial 0" in text


@pytest.mark.data
def test_tune_refuses_an_out_that_another_search_wrote(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "best.toml"
    argv = ["tune", "--preset", "graff", "--dataset", "cornell", "--splits", "0", "--epochs", "2", "--trials", "1",
            "--fix", "self_loops", "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    written, record = out.read_text(), out.with_suffix(".json").read_text()
    assert json.loads(record)["study"].startswith("best-")
    capsys.readouterr()
    assert main([*argv[:8], "3", *argv[9:]]) == 2  # --epochs 3: another search
    err = capsys.readouterr().err
    assert f"--out {out} holds the best config of another search" in err and "Traceback" not in err
    assert out.read_text() == written and out.with_suffix(".json").read_text() == record
    assert main([*argv[:10], "2", *argv[11:]]) == 0  # the same search with a larger budget continues it
    assert len(json.loads(out.with_suffix(".json").read_text())["trials"]) == 2


@pytest.mark.data
def test_tune_from_a_config_file_keeps_its_header(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    start = tmp_path / "start.toml"
    start.write_text('# Tuned by `an earlier search`\n# Selection: = 50.00\ndataset = "cornell"\nepochs = 2\n')
    out = tmp_path / "next.toml"
    argv = ["tune", "--config", str(start), "--splits", "0", "--trials", "1", "--data-root", str(data_root),
            "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    header = out.read_text().split("\ndataset")[0].splitlines()
    assert header[0].startswith("# Tuned by `continuous-gnn tune --config")
    assert header[3:] == [f"# Started from `{start}`, whose header reads:", "#   Tuned by `an earlier search`",
                          "#   Selection: = 50.00"]


@pytest.mark.data
def test_tune_threads_sets_the_workers_torch_threads_and_the_header_records_them(data_root, data_cache, tmp_path):
    pytest.importorskip("optuna")
    import torch

    out = tmp_path / "best.toml"
    argv = ["tune", "--preset", "graff", "--dataset", "cornell", "--splits", "0", "--epochs", "2", "--trials", "1",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    before = torch.get_num_threads()
    threads = 1 if before > 1 else 2
    try:
        assert main([*argv, "--threads", str(threads)]) == 0
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert f" with {threads} torch thread(s) " in out.read_text().splitlines()[1]


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_tune_refuses_a_thread_count_below_one(threads, capsys):
    pytest.importorskip("optuna")
    assert main(["tune", "--preset", "graff", "--dataset", "cornell", "--threads", threads]) == 2
    assert f"--threads must be a positive integer, got {threads}" in capsys.readouterr().err


@pytest.mark.data
def test_tune_keeps_the_header_its_start_had_when_the_search_began(data_root, data_cache, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import continuous_gnn.training as training

    start = tmp_path / "start.toml"
    start.write_text('# Tuned by `an earlier search`\ndataset = "cornell"\nepochs = 2\n')
    train = training.run

    def run_while_another_search_replaces_the_start(*args, **kwargs):
        start.write_text('# Tuned by `a later search`\ndataset = "cornell"\nepochs = 3\n')
        return train(*args, **kwargs)

    monkeypatch.setattr(training, "run", run_while_another_search_replaces_the_start)
    out = tmp_path / "next.toml"
    argv = ["tune", "--config", str(start), "--splits", "0", "--trials", "1", "--data-root", str(data_root),
            "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "#   Tuned by `an earlier search`" in text and "a later search" not in text
    assert "epochs = 2" in text


@pytest.mark.data
def test_tune_averages_the_objective_over_seeds_and_keeps_the_config_seed(data_root, data_cache, tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "best.toml"
    argv = ["tune", "--preset", "graff", "--dataset", "cornell", "--splits", "0,1", "--epochs", "2", "--trials", "1",
            "--seeds", "1000,2000", "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    assert "over splits 0,1 at seeds 1000,2000 = " in out.read_text()
    assert re.search(r"with \d+ torch thread\(s\)", out.read_text())
    assert resolve_config(read_config_file(out)).seed == 0, "the searched seeds are not the config's seed"
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["seeds"] == [1000, 2000] and record["machine"]["torch_threads"] >= 1
    per_seed = record["trials"][0]["per_seed"]
    assert list(per_seed) == ["1000", "2000"]
    assert record["trials"][0]["value"] == pytest.approx(sum(per_seed.values()) / 2)
    train = tmp_path / "seed2000.json"
    assert main(["train", "--preset", "graff", "--dataset", "cornell", "--splits", "0,1", "--epochs", "2", "--seed",
                 "2000", "--quiet", "--data-root", str(data_root), "--cache-dir", str(data_cache),
                 "--out", str(train)]) == 0
    val_mean = json.loads(train.read_text())["aggregate"]["val_mean"]
    assert per_seed["2000"] == pytest.approx(val_mean), "seed s trains as train --seed s does"


@pytest.mark.data
def test_tune_keeps_self_loops_on_a_graph_with_isolated_nodes(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "best.toml"
    argv = ["tune", "--preset", "graff", "--dataset", "citeseer", "--splits", "0", "--epochs", "1", "--trials", "2",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    assert "citeseer has isolated nodes: self_loops stays True" in capsys.readouterr().out
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["space"]["self_loops"] == ["categorical", [True]]
    assert all(t["state"] == "COMPLETE" for t in record["trials"])


@pytest.mark.data
def test_tune_keeps_self_loops_with_batching_in_the_default_space(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "best.toml"
    argv = ["tune", "--preset", "graff", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--trials", "2",
            "--batching", "random", "--num-parts", "2", "--data-root", str(data_root), "--cache-dir", str(data_cache),
            "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err  # the space's self_loops = false once refused the search
    assert "batching = random: self_loops stays True" in capsys.readouterr().out
    assert json.loads(out.with_suffix(".json").read_text())["space"]["self_loops"] == ["categorical", [True]]


@pytest.mark.data
def test_tune_refuses_too_many_metis_clusters_once_before_any_trial(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("pymetis")
    argv = ["tune", "--preset", "graff", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--trials", "3",
            "--batching", "metis", "--num-parts", "150", "--data-root", str(data_root), "--cache-dir",
            str(data_cache), "--out", str(tmp_path / "best.toml")]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "METIS left" in err and "clusters empty; lower num_parts" in err and err.count("\n") == 1
    assert "trial" not in out  # it used to fail every trial in turn, each computing the clusters again
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("seeds", ["0,x", "0,0", "-1"])
def test_tune_rejects_bad_seeds(seeds, capsys):
    pytest.importorskip("optuna")
    assert main(["tune", "--dataset", "texas", "--seeds", seeds]) == 2
    assert "--seeds: expected" in capsys.readouterr().err


def test_tune_also_searches_the_model_family_and_rejects_unknown_keys(capsys):
    pytest.importorskip("optuna")
    tune_space = SPACE.widen

    assert main(["tune", "--dataset", "texas", "--also", "w,nope"]) == 2
    assert "--also: unknown key(s) ['nope']; choose from w, omega, encoder, epochs" in capsys.readouterr().err
    space = tune_space(RunConfig(w="prod"), ["w", "encoder"])
    assert space["w"] == ("categorical", (*EXTRA_SPACE["w"][1], "prod"))
    assert space["encoder"] == EXTRA_SPACE["encoder"]
    assert tune_space(RunConfig(epochs=400), ["epochs"])["epochs"] == ("categorical", (150, 300, 400))


def test_tune_leaves_out_graff_fields_that_the_energy_does_not_read(capsys):
    from continuous_gnn.cli.tune import _searched

    graff = _searched(SPACE, "", "w,omega", RunConfig())
    assert {"w_learnable", "w", "omega"} <= set(graff) and "note:" not in capsys.readouterr().err
    # Searched for GRAND-l, every value of w would train the same model: trials that repeat each other.
    grand = _searched(SPACE, "", "w,omega", RunConfig(energy="attention_dirichlet"))
    assert grand == [k for k in graff if k not in ("w_learnable", "w", "omega")]
    assert ("note: w_learnable, w, omega not searched: they configure the GRAFF energy, and the energy is 'attention_dirichlet'"
            in capsys.readouterr().err)


def test_tune_space_contains_the_configured_values():
    tune_space = SPACE.widen

    base = RunConfig(hidden=256, lr=0.02, time=3.0, normalize_field=True)
    space = tune_space(base, ["hidden", "lr", "time", "normalize_field"])
    assert space["hidden"] == ("categorical", (*TUNE_SPACE["hidden"][1], 256))
    assert space["lr"] == ("uniform", (TUNE_SPACE["lr"][1][0], 0.02))
    assert space["time"] == TUNE_SPACE["time"], "a value inside the range leaves it alone"
    assert space["normalize_field"] == TUNE_SPACE["normalize_field"]


def _quick_reproduction(datasets: str, models: str, data_root, data_cache, tmp_path) -> list[str]:
    """``reproduce`` argv for split 0 and 2 epochs, records in tmp_path/runs, the page in tmp_path/results.md."""
    return ["reproduce", "--datasets", datasets, "--models", models, "--splits", "0", "--epochs", "2",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out-dir", str(tmp_path / "runs"),
            "--results", str(tmp_path / "results.md"), "--quiet"]


@pytest.mark.data
def test_reproduce_smoke(data_root, data_cache, tmp_path, capsys):
    results = tmp_path / "results.md"
    assert main(_quick_reproduction("texas,pubmed", "graff", data_root, data_cache, tmp_path)) == 0
    text = results.read_text()
    assert text.startswith("<!-- GENERATED by experiments/reproduce.py")
    assert "Partial run" in text and "| Texas |" in text and "PubMed unavailable" in text
    assert "Texas misses its target: GRAFF is" in text and "of the 37 test predictions over 1 split " in text
    assert "| Texas | 88.38 ± 4.53 (DD) | 85.14 ± 6.86 | 85.14 |" in text
    assert (tmp_path / "runs" / "texas-graff.json").is_file()


@pytest.mark.data
def test_reproduce_keeps_a_record_of_other_settings_under_the_same_name(data_root, data_cache, tmp_path, capsys):
    argv = _quick_reproduction("texas", "graff", data_root, data_cache, tmp_path)
    assert main(argv) == 0
    first = tmp_path / "runs" / "texas-graff.json"
    saved = first.read_bytes()
    assert main([*argv[:argv.index("--epochs") + 1], "3", *argv[argv.index("--epochs") + 2:]]) == 0
    assert first.read_bytes() == saved, "the 2-epoch record is another run's and stays"
    assert json.loads((tmp_path / "runs" / "texas-graff-1.json").read_text())["config"]["epochs"] == 3
    assert "runs/texas-graff-1.json" in (tmp_path / "results.md").read_text()
    assert main(argv) == 0 and "record found in" in capsys.readouterr().out  # each is found again by its settings
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["texas-graff-1.json", "texas-graff.json"]


@pytest.mark.data
def test_reproduce_refuses_a_tuned_preset_at_one_of_its_search_seeds(data_root, data_cache, tmp_path, capsys):
    results = tmp_path / "results.md"
    argv = _quick_reproduction("texas", "graff,graff_tuned", data_root, data_cache, tmp_path)
    assert main([*argv, "--seed", "0"]) == 0
    assert "GRAFF-tuned skipped: its search trained with seed 0" in capsys.readouterr().out
    assert not (tmp_path / "runs" / "texas-graff_tuned.json").exists()
    assert main([*argv, "--seed", "77"]) == 0
    assert (tmp_path / "runs" / "texas-graff_tuned.json").is_file()
    record = json.loads((tmp_path / "runs" / "texas-graff_tuned.json").read_text())
    assert record["config"]["seed"] == 77
    assert "with base seed 77 (split *i* uses seed 77 + *i*)" in results.read_text()


def test_search_seeds_come_from_every_selection_line_of_the_header(tmp_path):
    from continuous_gnn.training.search import search_seeds

    path = tmp_path / "tuned.toml"
    path.write_text("# Tuned by `continuous-gnn tune --config start.toml --seeds 1000,2000`\n"
                    "# Selection: mean validation accuracy over splits 0,1 at seeds 1000,2000 = 80.00 (trial 3)\n"
                    "# Started from `start.toml`, whose header reads:\n"
                    "#   Selection: mean validation accuracy over splits 0,1 = 79.00 (trial 1)\n"
                    'dataset = "texas"\nseed = 7\n')
    assert search_seeds(path) == {1000, 2000, 7}, "a line without seeds trained with the file's seed"
    path.write_text('dataset = "texas"\n')
    with pytest.raises(ValueError, match="no 'Selection:' line"):
        search_seeds(path)


def test_study_subcommand_writes_csv_and_figures(tmp_path):
    from continuous_gnn.cli import main

    out = tmp_path / "study"
    status = main(["study", "--synthetic", "ring", "--nodes", "30", "--step-sizes", "0.5", "--times", "2",
                   "--methods", "euler", "--w-families", "prod", "--out", str(out), "--quiet"])
    assert status == 0
    assert (out / "study.csv").read_text().count("\n") > 2
    assert all((out / name).stat().st_size > 0 for name in ("rq_vs_time.png", "accuracy_vs_depth.png"))
    assert main(["study", "--synthetic", "ring", "--step-sizes", "-1", "--out", str(out), "--quiet"]) == 2


def test_study_homophily_sweep_writes_one_row_per_level_and_family(tmp_path, capsys):
    from continuous_gnn.studies import HOMOPHILY_COLUMNS, read_csv

    out = tmp_path / "hom"
    status = main(["study", "--synthetic", "sbm", "--homophily-sweep", "0.1,0.5,0.9", "--w-families", "prod,neg_prod",
                   "--nodes", "60", "--epochs", "2", "--hidden", "4", "--seed", "3", "--out", str(out), "--quiet"])
    assert status == 0 and capsys.readouterr().out == ""
    rows = read_csv(out / "homophily.csv")
    assert list(rows[0]) == list(HOMOPHILY_COLUMNS)
    assert sorted((r["homophily"], r["w_family"]) for r in rows) == sorted(
        (h, f) for h in (0.1, 0.5, 0.9) for f in ("prod", "neg_prod"))
    assert all(r["epochs"] == 2 and r["seed"] == 3 and 0 <= r["acc_test"] <= 1 for r in rows)
    assert (out / "accuracy_vs_homophily.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "accuracy_vs_homophily.png").stat().st_size > 1000
    summary = json.loads((out / "homophily.json").read_text())
    assert summary["rows"] == 6 and summary["base_config"]["hidden"] == 4 and summary["nodes"] == 60
    assert not (out / "study.csv").exists()
    # Without a data option the sweep runs too (on SBMs).
    assert main(["study", "--homophily-sweep", "1", "--w-families", "sum", "--nodes", "60", "--epochs", "1",
                 "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    assert len(read_csv(tmp_path / "plain" / "homophily.csv")) == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--homophily-sweep", "0.1,1.5"], r"must lie in \[0, 1\], got 1.5"),
        (["--homophily-sweep", "-0.2"], r"must lie in \[0, 1\]"),
        (["--homophily-sweep", "nan"], r"must lie in \[0, 1\]"),
        (["--homophily-sweep", "0.1,abc"], "'abc' is not a number"),
        (["--homophily-sweep", "0.1,,0.5"], "without empty items"),
        (["--homophily-sweep", "0.5", "--synthetic", "ring"], "--synthetic ring does not apply"),
        (["--homophily-sweep", "0.5", "--dataset", "cora"], "--dataset does not apply"),
        (["--homophily-sweep", "0.5", "--times", "1,2", "--methods", "rk4"], "--times, --methods do not apply"),
        (["--homophily-sweep", "0.5", "--epochs", "0"], "--epochs must be >= 1"),
        (["--synthetic", "sbm", "--epochs", "5"], "--epochs applies to --homophily-sweep only"),
        (["--dataset", "texas", "--nodes", "50", "--homophily", "0.3"],
         "--nodes and --homophily apply to --synthetic graphs, not to the dataset 'texas'; drop them"),
        (["--dataset", "texas", "--nodes", "50"], "--nodes applies to --synthetic graphs"),
    ],
)
def test_study_homophily_sweep_usage_errors_exit_2(argv, fragment, tmp_path, capsys):
    assert main(["study", *argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(fragment, err), err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_reproduce_holds_the_validation_choice_against_the_target():
    from continuous_gnn import benchmarks as reproduce

    Outcome = reproduce.Outcome
    preset = Outcome("texas", "graff", "ok", test_mean=90.0, val_mean=80.0)
    tuned = Outcome("texas", "graff_tuned", "ok", test_mean=70.0, val_mean=85.0)
    nl = Outcome("texas", "graff_nl", "ok", test_mean=99.0, val_mean=99.0)
    outcomes = {("texas", o.model): o for o in (preset, tuned, nl)}
    assert reproduce.select_by_validation(outcomes, "texas") is tuned, "validation decides, never test"
    tuned.val_mean = preset.val_mean
    assert reproduce.select_by_validation(outcomes, "texas") is preset, "ties go to the paper preset"
    outcomes[("texas", "graff_tuned")] = Outcome("texas", "graff_tuned", "absent")
    assert reproduce.select_by_validation(outcomes, "texas") is preset
    assert reproduce.select_by_validation({}, "texas") is None
    assert reproduce.stretch_bar("texas") == 88.38 and reproduce.stretch_bar("squirrel") == 58.41


def test_reproduce_counts_a_shortfall_in_test_predictions():
    from continuous_gnn.benchmarks import Outcome
    from continuous_gnn.cli.reproduce_page import shortfall_note

    outcome = Outcome("cora", "graff_tuned", "ok", test_mean=87.83, splits=10, test_nodes=4970)
    note = shortfall_note(outcome, target=87.85)
    assert note.startswith("Cora misses its target: GRAFF-tuned is 0.02 points below it, about 1.0 of the 4970 ")


def test_a_config_file_that_is_a_directory_is_named(tmp_path, capsys):
    assert main(["train", "--dataset", "texas", "--config", str(tmp_path)]) == 2
    assert "is a directory; pass a TOML file" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["afile/x.json", "afile/sub/"])
def test_an_unusable_output_path_fails_before_any_work(out, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    # The data root does not exist: the output path must be refused first, before loading or training.
    argv = ["train", "--dataset", "texas", "--data-root", "/nonexistent/data", "--out", str(tmp_path / out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"'{tmp_path / 'afile'}' is a file, not a folder" in err and "Traceback" not in err


@pytest.mark.data
def test_a_diverged_run_exits_1_and_names_the_learning_rate(data_root, data_cache, tmp_path, capsys):
    argv = ["train", "--dataset", "texas", "--splits", "0", "--epochs", "3", "--lr", "1e308", "--quiet",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(tmp_path / "r.json")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "training diverged on split 0 at epoch 1" in err and "lower the learning rate" in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.data
def test_tune_reports_a_bad_split_before_any_trial(data_root, data_cache, tmp_path, capsys):
    pytest.importorskip("optuna")
    argv = ["tune", "--dataset", "texas", "--splits", "10", "--epochs", "1", "--trials", "3",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(tmp_path / "t.toml")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "split(s) [10] do not exist" in captured.err and "trial" not in captured.out


def test_progress_bar_is_off_when_stderr_is_closed(monkeypatch):
    from continuous_gnn.cli.common import show_progress

    monkeypatch.setattr(sys, "stderr", None)
    assert show_progress(build_parser().parse_args(["train", "--dataset", "texas"])) is False


def test_solvers_finds_its_data_root_as_every_command_does(tmp_path, monkeypatch, capsys):
    # No flag and no variable: the user cache, as for train; a missing root is a usage error before any work.
    monkeypatch.delenv("CONTINUOUS_GNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["solvers", "--out", str(tmp_path / "s.md"), "--plot", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert f"data root {tmp_path / 'cache' / 'continuous_gnn' / 'data'} is not a folder" in err
    assert "pass --data-root or set CONTINUOUS_GNN_DATA" in err
    monkeypatch.setenv("CONTINUOUS_GNN_DATA", str(tmp_path / "from-env"))
    assert main(["solvers", "--out", str(tmp_path / "s.md")]) == 2
    assert f"data root {tmp_path / 'from-env'} is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "s.md").exists()


def test_solvers_refuses_repeated_names_and_missing_data_before_any_run(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    out = ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "s.md")]
    assert main(["solvers", *out, "--datasets", "cora", "cora"]) == 2
    assert "--datasets lists cora twice; name each once" in capsys.readouterr().err
    assert main(["solvers", *out, "--datasets", "cora", "--methods", "euler", "rk4", "euler"]) == 2
    assert "--methods lists euler twice" in capsys.readouterr().err
    # The memory-against-T part runs on chameleon whatever --datasets says: its files are checked too.
    assert main(["solvers", *out, "--datasets", "cora", "--methods", "euler"]) == 2
    assert "dataset 'cora' is incomplete under data root" in capsys.readouterr().err
    assert not (tmp_path / "s.md").exists()


def test_bench_checks_the_data_of_its_last_section_before_its_first(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["bench", "--quick", "--sections", "b,g", "--data-root", str(tmp_path / "data"),
                 "--out", str(tmp_path / "p.md")]) == 2
    assert "dataset 'cora' is incomplete under data root" in capsys.readouterr().err
    assert not (tmp_path / "p.md").exists()


@pytest.mark.slow  # the benchmark's forkserver children each import the package: 25 s on two cores
@pytest.mark.data
def test_solvers_subcommand_runs_its_worker_processes(data_root, tmp_path):
    # The benchmark trains each configuration in a forkserver child, which imports the worker from the package.
    out, plot = tmp_path / "solvers.md", tmp_path / "figures" / "solvers.png"
    argv = [sys.executable, "-m", "continuous_gnn", "solvers", "--datasets", "cora", "--methods", "euler",
            "--no-memory-vs-t", "--epochs", "3", "--data-root", str(data_root), "--out", str(out), "--plot", str(plot),
            "--json", str(tmp_path / "solvers.json")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FAILED" not in done.stderr and out.is_file() and plot.is_file()
    # the raw results say which command, machine and versions produced them, as every record does
    record = json.loads((tmp_path / "solvers.json").read_text())
    assert record["meta"]["command"].endswith("--json " + str(tmp_path / "solvers.json"))
    assert record["meta"]["versions"]["torch"] == torch.__version__ and "logical CPUs" in record["meta"]["machine"]
    assert [(r["config"]["kind"], r["config"]["adjoint"]) for r in record["results"]] == [
        ("main", False), ("main", True), ("baseline_repeat", False)]
    page = out.read_text()
    assert "![accuracy vs NFE](figures/solvers.png)" in page  # the figure written, from the page's folder
    # the parts this run left out say so instead of an empty table
    assert "Not run: the comparison needs dopri5 among --methods" in page and "Not run (--no-memory-vs-t)." in page
    assert "memory vs T below" not in page
    assert "- **Command:** `continuous-gnn solvers --datasets cora --methods euler" in page  # what ran


@pytest.mark.data
def test_tune_interrupted_keeps_the_best_trial_so_far(data_root, data_cache, tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    import continuous_gnn.training as training

    real_run, calls = training.run, []

    def run_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real_run(*args, **kwargs)

    monkeypatch.setattr(training, "run", run_then_interrupt)
    out = tmp_path / "best.toml"
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--hidden", "8", "--trials", "10",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 130  # Ctrl-C's status, with the best so far written
    assert "interrupted after 2 completed trial(s)" in capsys.readouterr().err
    assert "2 of 3 trials completed (interrupted; 10 were asked for)" in out.read_text()
    assert read_config_file(out)["epochs"] == 1


@pytest.mark.parametrize("argv", [
    ["study", "--synthetic", "sbm", "--homophily", "0.2", "--nodes", "60", "--step-sizes", "0.5", "--times", "1"],
    ["study", "--homophily-sweep", "0.2,0.8", "--nodes", "60"],
    ["solvers", "--datasets", "cora", "--methods", "euler", "--epochs", "3"],
])
def test_commands_that_draw_figures_refuse_to_start_without_matplotlib(argv, tmp_path, monkeypatch, capsys):
    # Their figures come last: without the check, the whole sweep or benchmark ran and then ended in a traceback.
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main([*argv, "--out", str(tmp_path / ("out.md" if argv[0] == "solvers" else "out"))]) == 2
    err = capsys.readouterr().err
    assert re.search(r"matplotlib is not installed, and it draws the \S+ figures?: pip install matplotlib \(or the "
                     r"extra: pip install 'continuous_gnn\[plot\]'\)", err) and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "nothing was computed or written"


def test_solvers_and_bench_check_their_output_files_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    under_a_file = str(tmp_path / "file" / "s.md")
    for flag in ("--out", "--plot", "--json"):
        argv = ["solvers", "--data-root", str(tmp_path), "--out", str(tmp_path / "s.md"),
                "--plot", str(tmp_path / "s.png"), flag, under_a_file]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{flag} {under_a_file!r} cannot be created" in err and "[1/" not in err
    for out, fragment in (("", "--out is empty"), (str(tmp_path), "is a folder")):
        assert main(["bench", "--quick", "--sections", "c", "--out", out]) == 2
        assert fragment in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "keep me"
    # one file for two outputs: the second write would replace the first
    same = str(tmp_path / "x.md")
    assert main(["bench", "--quick", "--sections", "c", "--out", same, "--json", same]) == 2
    assert f"--out and --json name the same file {same!r}; give each its own" in capsys.readouterr().err
    assert main(["solvers", "--data-root", str(tmp_path), "--out", same, "--plot", same]) == 2
    assert "--out and --plot name the same file" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_no_file_can_be_created_in_is_refused_even_for_root(tmp_path):
    from continuous_gnn.atomic import check_creatable, check_output_file

    # os.access says yes for root in /proc; only creating a file tells.
    with pytest.raises(ValueError, match=r"'/proc/x.json' cannot be created: the folder '/proc' is not writable "
                                         r"\(it accepts no new files, as a virtual file system such as /proc does\)"):
        check_creatable("/proc/x.json", "--out")
    with pytest.raises(ValueError, match="cannot be created"):
        check_output_file("/proc/x.md", "--page")
    check_output_file(tmp_path / "new" / "page.md", "--page")
    assert not any(tmp_path.iterdir()), "the check leaves nothing behind"


def test_the_solver_figure_has_a_panel_per_dataset_of_the_main_runs(tmp_path):
    pytest.importorskip("matplotlib")
    from continuous_gnn.cli.solvers_page import plot

    main_run = {"config": {"dataset": "cora", "kind": "main", "method": "euler", "adjoint": False},
                "nfe_forward": 6, "nfe_backward": 6, "test_acc": 0.8}
    # The memory-against-T runs are always on chameleon and carry no accuracy: no empty (log-scaled) panel for them.
    memory_run = {"config": {"dataset": "chameleon", "kind": "memory_vs_t", "method": "euler", "adjoint": True},
                  "nfe_forward": 64, "nfe_backward": 64, "peak_bytes": 1}
    plot([main_run, memory_run], tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0


def test_an_empty_config_path_and_a_bad_download_timeout_are_refused_offline_too(tmp_path, capsys):
    argv = ["train", "--dataset", "texas", "--data-root", str(tmp_path), "--no-download", "--out", str(tmp_path / "r.json")]
    assert main([*argv, "--config", ""]) == 2
    assert "--config is empty; pass a TOML config file" in capsys.readouterr().err
    assert main([*argv, "--download-timeout", "-1"]) == 2
    assert "--download-timeout" in capsys.readouterr().err
    # An empty --data-root fell back to $CONTINUOUS_GNN_DATA without a word.
    assert main(["train", "--dataset", "texas", "--data-root", "", "--out", str(tmp_path / "r.json")]) == 2
    assert "--data-root is empty; pass a folder" in capsys.readouterr().err


def test_an_atomic_write_to_a_device_or_pipe_writes_into_it_instead_of_replacing_it(tmp_path):
    import stat
    import threading

    from continuous_gnn.atomic import atomic_write_text

    # `--out /dev/null` is a common way to discard a result; a rename onto it would replace the device (as root).
    # A FIFO takes the same path through atomic_open, and a regression cannot break the machine's /dev/null.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "through the pipe")
    reader.join(timeout=30)
    assert received == ["through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_existing_pipe_is_checked_by_its_own_permission_not_its_folder_s(tmp_path, monkeypatch):
    import continuous_gnn.atomic as atomic

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # As for /dev/null under a user who cannot create files in /dev: atomic_open writes such a target in place.
    monkeypatch.setattr(atomic, "_write_problem", lambda folder: "permission denied")
    atomic.check_output_file(fifo, "--out")
    regular = tmp_path / "regular.md"
    regular.write_text("replaced by a rename in its folder")
    with pytest.raises(ValueError, match="cannot be replaced: its folder is not writable"):
        atomic.check_output_file(regular, "--out")
