"""Tests for continuous_gnn.config: validation, key errors, split specs, layers, TOML files and the presets."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from continuous_gnn.training import (
    RunConfig,
    check_overrides,
    config_to_toml,
    load_config,
    parse_splits,
    read_config_file,
    resolve_config,
)
from continuous_gnn.training.presets import presets_dir

PRESETS = presets_dir()
REPO = Path(__file__).resolve().parents[1]
PAPER_DATASETS = ("cora", "citeseer", "pubmed", "texas", "wisconsin", "cornell", "film", "chameleon", "squirrel")


# ---------------------------------------------------------------------- RunConfig


def test_defaults_are_valid_and_round_trip_through_json():
    config = RunConfig()
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_round_trip_with_every_kind_of_value():
    config = RunConfig(dataset="texas", splits=(3, 1), activation="relu", method="dopri5", step_size=None,
                       rtol=1e-4, atol=1e-6, adjoint=True, adjoint_method="dopri5", seminorm=True, max_nfe=500,
                       patience=20, normalize_features=False, lr=0.0123456789, seed=7)
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.splits == (3, 1)


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"'step-size' \(did you mean 'step_size'\?\)"):
        RunConfig.from_dict({"step-size": 0.5})
    with pytest.raises(ValueError, match=r"'learning_rate'") as info:
        RunConfig.from_dict({"learning_rate": 0.1, "hidden": 8})
    assert "Valid keys" in str(info.value)


def test_several_unknown_keys_are_all_named():
    with pytest.raises(ValueError, match=r"keys 'foo', 'hiden' \(did you mean 'hidden'\?\)"):
        check_overrides({"foo": 1, "hiden": 2})


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"hidden": "64"}, "hidden must be an integer"),
        ({"epochs": 1.5}, "epochs must be an integer"),
        ({"lr": True}, "lr must be a number"),
        ({"adjoint": 1}, "adjoint must be true or false"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"dataset": 3}, "dataset must be a string"),
        ({"time": None}, "time cannot be none"),
    ],
)
def test_wrong_types_name_the_field(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        RunConfig.from_dict(values)


def test_ints_are_accepted_for_floats_and_none_strings_for_optionals():
    config = RunConfig.from_dict({"lr": 1, "time": 3, "activation": "none", "patience": "None"})
    assert isinstance(config.lr, float) and config.lr == 1.0
    assert isinstance(config.time, float)
    assert config.activation is None and config.patience is None


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"activation": "rlu"}, r"unknown activation 'rlu' \(did you mean 'relu'\?\)"),
        ({"w": "diagdom"}, "did you mean 'diag_dom'"),
        ({"method": "scipy_solver"}, "unknown method"),
        ({"method": "euler", "rtol": 1e-3}, "rtol/atol apply to adaptive methods"),
        ({"method": "dopri5"}, r"--step-size none"),
        ({"method": "euler", "step_size": None}, "needs a step_size"),
        ({"method": "dopri5", "step_size": None, "time_dependent": True}, "need time_pieces"),
        ({"time_dependent": True, "time_pieces": 0}, r"time_pieces must be an integer in \[1, 10000\]"),
        ({"time_pieces": 3}, "time_pieces applies only with time_dependent"),
        ({"time_dependent": True, "method": "rk4", "step_size": 0.3, "time": 1.0},
         r"with 'rk4' needs step_size to divide time .*set time_pieces"),
        ({"kinetic_weight": -0.1}, "kinetic_weight must be non-negative"),
        ({"jacobian_weight": -1}, "jacobian_weight must be non-negative"),
        ({"kinetic_weight": float("inf")}, "kinetic_weight must be a finite number"),
        ({"seminorm": True}, "only with adjoint"),
        ({"adjoint_method": "rk4"}, "only with adjoint"),
        ({"adjoint": True, "seminorm": True}, "adjoint method 'euler' is fixed-grid"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"time": 0.0}, "time .* must be positive"),
        ({"step_size": -1.0}, "step_size must be positive"),
        ({"time": 1e39, "step_size": 1e38}, r"time \(T\) must be at most 3.4e\+38 \(float32's largest number\)"),
        ({"time": 1e39, "method": "dopri5", "step_size": None}, r"time \(T\) must be at most 3.4e\+38"),
        ({"time": 1e38, "step_size": 1e39}, r"step_size must be at most 3.4e\+38"),
        ({"epochs": 0}, "epochs must be a positive"),
        ({"patience": 0}, "patience must be"),
        ({"device": "gpu!"}, "not a torch device"),
        ({"dataset": " "}, "dataset must not be empty"),
    ],
)
def test_invalid_values_fail_with_the_fix(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        RunConfig.from_dict(values)


def test_adaptive_config_is_valid_without_step_size():
    config = RunConfig(method="dopri5", step_size=None, rtol=1e-4)
    assert not config.fixed_grid


def test_time_dependent_steps_read_one_set_of_weights_each():
    # Euler reads the field at each step's start, inside its own piece even with a shorter last step; rk4 reads it
    # inside the step too, where the pieces (T/K each) and the steps (τ) are the same only when τ divides T.
    from continuous_gnn.training.build import build_model

    for method, step_size, time in (("euler", 0.3, 1.0), ("rk4", 0.25, 1.0), ("midpoint", 0.1, 0.9)):
        config = RunConfig(time_dependent=True, method=method, step_size=step_size, time=time, hidden=4)
        schedule = build_model(config, 3, 2).energy
        stages = {"euler": [0.0], "rk4": [0.0, 0.5], "midpoint": [0.0, 0.5]}[method]  # where a step reads the field
        for k in range(len(schedule.energies)):
            assert {schedule.index(min((k + c) * step_size, time)) for c in stages} == {k}, (method, k)


def test_time_pieces_and_regulariser_weights():
    config = RunConfig(method="dopri5", step_size=None, time_dependent=True, time_pieces=3,
                       kinetic_weight=0.01, jacobian_weight=1)
    assert config.time_pieces == 3 and isinstance(config.jacobian_weight, float)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert RunConfig(time_dependent=True, time_pieces=2).time_pieces == 2  # fixed grids may override the step count
    defaults = RunConfig()
    assert (defaults.kinetic_weight, defaults.jacobian_weight, defaults.time_pieces) == (0.0, 0.0, None)


def test_replace_checks_like_from_dict():
    config = RunConfig().replace(hidden=8)
    assert config.hidden == 8
    with pytest.raises(ValueError, match="unknown config key"):
        RunConfig().replace(hiddn=8)


# ---------------------------------------------------------------------- split specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0-9", tuple(range(10))),
        ("0,3,5", (0, 3, 5)),
        ("0-2, 7", (0, 1, 2, 7)),
        ("4", (4,)),
        ("all", None),
        ("none", None),
        (None, None),
        (2, (2,)),
        ([5, 1], (5, 1)),
    ],
)
def test_parse_splits(spec, expected):
    assert parse_splits(spec) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty split specification"),
        ("3-1", "the end is before the start"),
        ("a", "bad split specification 'a'"),
        ("1,,2", "bad split specification"),
        ("0-", "bad split specification"),
        ("-1", "bad split specification"),
        ("\u0661", "bad split specification"),  # an Arabic-Indic one: int() reads it, the syntax is ASCII digits
        ("0,1,0", r"split\(s\) \[0\] listed more than once"),
        ([], "must not be empty"),
        ([-1], "non-negative"),
    ],
)
def test_bad_split_specs(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_splits(spec)


def test_bad_split_spec_in_a_config_names_the_field():
    with pytest.raises(ValueError, match="splits: bad split specification"):
        RunConfig.from_dict({"splits": "x"})
    with pytest.raises(ValueError, match="splits: split indices must be integers"):
        RunConfig.from_dict({"splits": [0.5]})


# ---------------------------------------------------------------------- layers and files


def test_later_layers_win():
    config = resolve_config({"hidden": 8, "lr": 0.1}, None, {"lr": 0.2}, {"hidden": 16},
                            sources=["a", "b", "c", "d"])
    assert (config.hidden, config.lr) == (16, 0.2)


def test_layer_errors_name_their_source():
    with pytest.raises(ValueError, match="my.toml: unknown config key 'hiddn'"):
        resolve_config({"hidden": 8}, {"hiddn": 3}, sources=["preset", "my.toml"])
    with pytest.raises(ValueError, match=r"sources names 2 layer\(s\) but 1 were given; give one name per layer"):
        resolve_config({"hidden": 3}, sources=["a", "b"])
    with pytest.raises(TypeError, match="sources must be a list of names, one per layer, not the string 'my.toml'"):
        resolve_config({"hidden": 3}, sources="my.toml")


def test_cross_field_rules_apply_to_the_merged_result():
    # The preset's step_size is removed by a later layer: the merged config is valid.
    config = resolve_config({"step_size": 0.5}, {"method": "dopri5", "step_size": None}, sources=["p", "f"])
    assert config.method == "dopri5" and config.step_size is None


def test_toml_file_round_trip(tmp_path):
    config = RunConfig(dataset="cora", splits=(0, 2), activation="tanh", lr=0.00261, normalize_features=False)
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(config, header="a header\nsecond line"))
    text = path.read_text()
    assert text.startswith("# a header\n# second line\n")
    assert "patience" not in text  # None values are omitted
    assert load_config(path) == config


def test_config_file_errors(tmp_path):
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('hiden = 3\n')
    with pytest.raises(ValueError, match=r"bad.toml.*'hiden' \(did you mean 'hidden'\?\)"):
        read_config_file(bad_key)
    broken = tmp_path / "broken.toml"
    broken.write_text("hidden = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config_file(broken)
    table = tmp_path / "table.toml"
    table.write_text("[model]\nhidden = 3\n")
    with pytest.raises(ValueError, match="tables"):
        read_config_file(table)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_config_file(tmp_path / "missing.toml")


def test_load_config_over_a_base(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("hidden = 12\n")
    config = load_config(path, base=RunConfig(lr=0.3, hidden=4))
    assert (config.hidden, config.lr) == (12, 0.3)


# ---------------------------------------------------------------------- presets


def test_presets_ship_in_the_package_and_errors_name_what_exists():
    from continuous_gnn.training.presets import available_presets, preset_path

    assert PRESETS == Path(__file__).resolve().parents[1] / "continuous_gnn" / "presets"
    assert available_presets() == ["graff", "graff_nl", "graff_nl_omega_tuned", "graff_nl_shared_omega_tuned",
                                   "graff_nl_shared_tuned", "graff_nl_tuned", "graff_omega_tuned", "graff_tuned",
                                   "grand_l", "grand_l_row", "grand_nl"]
    assert preset_path("graff", "Actor") == PRESETS / "graff" / "film.toml"
    with pytest.raises(ValueError, match="unknown preset 'nope'; available: graff, graff_nl, graff_nl_omega_tuned, "
                                         "graff_nl_shared_omega_tuned, graff_nl_shared_tuned, graff_nl_tuned, "
                                         "graff_omega_tuned, graff_tuned, grand_l, grand_l_row, grand_nl"):
        preset_path("nope", "texas")
    with pytest.raises(ValueError, match="preset 'graff_tuned' has no config for dataset 'cornell'; it covers: "
                                         "chameleon, chameleon-filtered, citeseer, cora, film, minesweeper, "
                                         "squirrel-filtered, texas, tolokers, wisconsin"):
        preset_path("graff_tuned", "cornell")


@pytest.mark.parametrize("preset", ["graff", "graff_nl"])
@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_presets_exist_and_resolve(preset, dataset):
    path = PRESETS / preset / f"{dataset}.toml"
    config = resolve_config(read_config_file(path), sources=[str(path)])
    assert config.dataset == dataset
    assert config.energy == "graff" and config.method == "euler"
    assert config.activation == ("relu" if preset == "graff_nl" else None)
    assert not config.detach_source and config.self_loops  # the paper's model, not the official code's quirks
    assert config.epochs >= 150
    assert config.normalize_features is False  # as the hyperparameters were selected (docs/training.md)


#: Where the searches of the datasets the paper did not run started.
HETEROPHILY_START = "experiments/configs/heterophily/graff.toml"


@pytest.mark.parametrize("path", sorted((PRESETS / "graff_tuned").glob("*.toml")), ids=lambda p: p.stem)
def test_tuned_presets_beat_their_starting_point_on_validation(path):
    config = resolve_config(read_config_file(path), sources=[str(path)])
    paper_file = PRESETS / "graff" / path.name
    assert config.dataset == path.stem
    assert config.energy == "graff" and config.activation is None and not config.detach_source
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    commands = [line for line in header if "Tuned by `continuous-gnn tune " in line]
    # A chain of searches, newest first: each started from the one below it; the oldest from the paper preset,
    # or on a dataset the paper did not run, from the heterophily starting config or the unfiltered graph's preset.
    # A line without seeds trained with the file's seed, 0 (asserted below).
    steps = [(set((m[1] or "0").split(",")), float(m[2]), float(m[3])) for line in header if (m := re.search(
        r"over splits [\d,]+(?: at seeds? ([\d,]+))? = ([\d.]+) \(trial \d+; the configured values, "
        r"trial 0: ([\d.]+)\); the test metric was not used", line))]
    assert steps and len(steps) == len(commands), header
    if paper_file.exists():
        paper = resolve_config(read_config_file(paper_file))
        assert config.dataset == paper.dataset and config.epochs in (150, 300, paper.epochs)
        assert f"--preset graff --dataset {path.stem} " in commands[-1]
        assert not config.normalize_features
    else:  # a filtered graph starts from the paper preset of the unfiltered one
        unfiltered = f"continuous_gnn/presets/graff/{path.stem.removesuffix('-filtered')}.toml"
        start_file = unfiltered if path.stem.endswith("-filtered") else HETEROPHILY_START
        start = resolve_config(read_config_file(REPO / start_file), {"dataset": path.stem})
        assert f"--config {start_file} " in commands[-1] and f" --dataset {path.stem} " in commands[-1]
        assert config.epochs in (150, 200, 300, 400, 500, start.epochs)  # the choices of the search spaces
        assert config.normalize_features == start.normalize_features
    assert config.seed == 0
    later_starts = (f"experiments/configs/graff_tuned/{path.stem}.toml",
                    f"continuous_gnn/presets/graff_tuned/{path.stem}.toml")
    for command in commands[:-1]:
        assert any(f"--config {start} " in command for start in later_starts), command
    for command, (seeds, _, configured), (earlier_seeds, earlier_best, _) in zip(commands, steps, steps[1:]):
        # Other seeds score the same starting config differently, and a search may start from the previous best
        # with fields changed on its command line (its trial 0 is then that changed config).
        if seeds == earlier_seeds and not _changed_fields(command):
            assert configured == earlier_best, "each search starts from the previous search's best"
    # Beside a paper preset, a tuned one exists only where it beats it on validation; elsewhere the search's best
    # may be its starting config (trial 0), since there is nothing else to run.
    assert all(best > configured if paper_file.exists() else best >= configured for _, best, configured in steps), \
        "a tuned preset beats (or, without a paper preset, equals) its starting point on validation"
    from continuous_gnn.cli.reproduce import REPORT_SEED
    from continuous_gnn.training.search import search_seeds

    assert REPORT_SEED not in search_seeds(path), \
        "the reproduction's seed must be one no search trained with"


#: The flags of ``continuous-gnn tune`` that choose the search; any other flag changes the starting config.
SEARCH_FLAGS = {"--preset", "--config", "--space", "--dataset", "--splits", "--seeds", "--also", "--fix", "--trials",
                "--timeout", "--sampler-seed", "--storage", "--study-name", "--threads", "--quiet", "--out"}


def _changed_fields(header_line):
    """The config flags a preset header's ``tune`` command sets besides its starting file."""
    command = shlex.split(re.search(r"`(continuous-gnn tune [^`]*)`", header_line)[1])
    return [arg for arg in command if arg.startswith("--") and arg not in SEARCH_FLAGS]


def test_changed_fields_reads_the_config_flags_of_a_tune_command():
    plain = "# Tuned by `continuous-gnn tune --config a.toml --dataset cora --seeds 0,1000 --quiet --out b.toml`"
    assert _changed_fields(plain) == []
    changed = plain.replace("--quiet", "--encoder mlp --decoder mlp --quiet")
    assert _changed_fields(changed) == ["--encoder", "--decoder"]


#: Where the searches of the GRAFF-NL presets with per-step weights started.
NL_STEPS_STARTS = ("experiments/configs/heterophily/graff_nl_steps.toml",
                   "experiments/configs/heterophily/graff_nl_steps_wide.toml")


def _search_chain(path):
    """The ``tune`` commands in a preset's header, newest first, and each one's (best, configured) validation
    numbers; one pair per command, or the header is malformed."""
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    commands = [line for line in header if "Tuned by `continuous-gnn tune " in line]
    steps = [(float(m[1]), float(m[2])) for line in header if (m := re.search(
        r"over splits [\d,]+ at seeds? [\d,]+ = ([\d.]+) \(trial \d+; the configured values, trial 0: ([\d.]+)\); "
        r"the test metric was not used", line))]
    assert steps and len(steps) == len(commands), header
    return commands, steps


@pytest.mark.parametrize("path", sorted((PRESETS / "graff_nl_tuned").glob("*.toml")), ids=lambda p: p.stem)
def test_graff_nl_tuned_presets_come_from_a_chain_of_validation_searches(path):
    config = resolve_config(read_config_file(path), sources=[str(path)])
    assert config.dataset == path.stem and config.seed == 0
    assert config.energy == "graff" and config.activation == "relu" and config.time_dependent
    commands, steps = _search_chain(path)
    # Newest first: the oldest search started from a shared starting file, each later one from the preset itself.
    assert any(f"--config {start} " in commands[-1] for start in NL_STEPS_STARTS), commands[-1]
    assert f" --dataset {path.stem} " in commands[-1]
    for command in commands[:-1]:
        assert f"--config continuous_gnn/presets/graff_nl_tuned/{path.stem}.toml " in command
    assert all(best >= configured for best, configured in steps), "a search keeps its best trial, trial 0 included"
    for (_, configured), (earlier_best, _) in zip(steps, steps[1:]):
        assert configured == earlier_best, "each search starts from the previous search's best"
    from continuous_gnn.benchmarks.suite import load_suite, suite_path
    from continuous_gnn.training.search import search_seeds

    suite_seeds = set(load_suite(suite_path("heterophily_nl")).seeds)
    assert not suite_seeds & search_seeds(path), "the suite's seeds must be ones no search trained with"


#: The presets with a full Ω: the folder, the preset its first search started from, the search spaces of its
#: searches, oldest first (every later one started from the full-Ω preset itself), and the config flags the first
#: search's command line changed (Ω there, or Ω offered by the space).
FULL_OMEGA_PRESETS = {
    "graff_nl_omega_tuned": ("graff_nl_tuned", ["heterophily_nl_omega"], []),
    "graff_nl_shared_omega_tuned": ("graff_nl_shared_tuned",
                                    ["heterophily_nl_shared_omega", "heterophily_nl_shared_omega_depth",
                                     "heterophily_nl_shared_omega_wide", "heterophily_nl_shared_omega_length"], []),
    "graff_omega_tuned": ("graff_tuned", ["graff_omega_lr"], ["--omega"]),
}


def _offered(space):
    """The config fields a search space offers."""
    return set(tomllib.loads((REPO / "experiments" / "configs" / "search" / f"{space}.toml").read_text())["search"])


@pytest.mark.parametrize(("path", "start", "spaces", "changed"), [
    (path, start, spaces, changed) for folder, (start, spaces, changed) in FULL_OMEGA_PRESETS.items()
    for path in sorted((PRESETS / folder).glob("*.toml"))], ids=lambda value: getattr(value, "stem", str(value)))
def test_full_omega_presets_change_only_what_their_searches_offered(path, start, spaces, changed):
    config = resolve_config(read_config_file(path), sources=[str(path)])
    start_path = PRESETS / start / path.name
    started = resolve_config(read_config_file(start_path), sources=[str(start_path)])
    assert config.omega in ("sum", "asymm")
    offered = {"omega"}.union(*map(_offered, spaces))
    assert config == started.replace(**{field: getattr(config, field) for field in offered}), \
        f"the searches offered only {sorted(offered)}"
    commands, steps = _search_chain(path)
    first = len(spaces) - 1  # newest first: this preset's own searches, then the header of the one it started from
    assert f"--config continuous_gnn/presets/{start}/{path.stem}.toml " in commands[first]
    assert f"--space experiments/configs/search/{spaces[0]}.toml " in commands[first]
    assert _changed_fields(commands[first]) == changed
    for command, space in zip(commands[:first], reversed(spaces[1:])):
        assert f"--config continuous_gnn/presets/{path.parent.name}/{path.stem}.toml " in command
        assert f"--space experiments/configs/search/{space}.toml " in command and not _changed_fields(command)
    for (best, configured), (earlier_best, _) in zip(steps[:first], steps[1:first + 1]):
        assert best > configured == earlier_best, "a later search starts from the earlier best and beats it"
    (best, configured), (start_best, _) = steps[first], _search_chain(start_path)[1][0]
    assert best >= configured and best > start_best, "it beats its starting preset on validation"
    if not changed:
        assert configured == start_best, "its trial 0 is the starting preset itself"
    from continuous_gnn.benchmarks.suite import load_suite, suite_path
    from continuous_gnn.training.search import search_seeds

    suite_seeds = set(load_suite(suite_path("heterophily_omega")).seeds)
    assert not suite_seeds & search_seeds(path), "the suite's seeds must be ones no search trained with"


@pytest.mark.parametrize("path", sorted((PRESETS / "graff_nl_shared_tuned").glob("*.toml")), ids=lambda p: p.stem)
def test_graff_nl_shared_tuned_presets_are_the_papers_graff_nl_searched_from_the_graff_preset(path):
    config = resolve_config(read_config_file(path), sources=[str(path)])
    assert config.dataset == path.stem and config.seed == 0
    # The paper's GRAFF-NL: one W, Ω and β for the whole flow, a ReLU after each step, GRAFF's symmetric W.
    assert config.energy == "graff" and config.activation == "relu" and not config.time_dependent
    assert config.w != "asymm" and not config.detach_source
    commands, steps = _search_chain(path)
    # Newest first: searches from the preset itself, then the first one, from the dataset's GRAFF preset with only
    # the activation changed; the header it copied from that preset holds GRAFF's own searches below it.
    first = next(i for i, command in enumerate(commands) if "--activation" in command)
    assert f"--config continuous_gnn/presets/graff_tuned/{path.stem}.toml --activation relu " in commands[first]
    assert _changed_fields(commands[first]) == ["--activation"]
    for command in commands[:first]:
        assert f"--config continuous_gnn/presets/graff_nl_shared_tuned/{path.stem}.toml " in command
    for command in commands[first + 1:]:
        assert "--activation" not in command and ("/graff_tuned/" in command or "/heterophily/" in command), command
    assert all(best >= configured for best, configured in steps[:first + 1]), \
        "a search keeps its best trial, trial 0 included"
    from continuous_gnn.benchmarks.suite import load_suite, suite_path
    from continuous_gnn.training.search import search_seeds

    suite_seeds = set(load_suite(suite_path("heterophily")).seeds)
    assert not suite_seeds & search_seeds(path), "the suite's seeds must be ones no search trained with"


def test_choosing_a_method_drops_step_control_from_lower_layers():
    from continuous_gnn.training import resolve_config

    assert resolve_config({"method": "dopri5"}).step_size is None  # the default step size belonged to euler
    adaptive = resolve_config({"method": "euler", "step_size": 0.5}, {"method": "dopri5", "rtol": 1e-4})
    assert adaptive.step_size is None and adaptive.rtol == 1e-4
    fixed = resolve_config({"method": "dopri5", "rtol": 1e-4, "atol": 1e-6}, {"method": "rk4"})
    assert fixed.rtol is None and fixed.atol is None and fixed.step_size == RunConfig().step_size
    with pytest.raises(ValueError, match="step_size=0.5 applies to fixed-grid methods"):
        resolve_config({"method": "dopri5", "step_size": 0.5})  # set together: a real conflict


#: The energy each GRAND preset folder trains, and where its searches may start: GRAND's own starting files on the
#: Planetoid splits, the dataset's GRAFF preset (with the energy swapped on the command line) on the heterophilous
#: benchmarks, the public-split preset of the same graph on GRAND's own split (the ``-lcc`` datasets), and for
#: ``grand_l_row`` (GRAND-l with row-stochastic attention) the symmetrised ``grand_l`` preset of the same dataset.
GRAND_PRESETS = {"grand_l": "attention_dirichlet", "grand_l_row": "grand_l_row", "grand_nl": "grand_nl"}


@pytest.mark.parametrize("path", sorted(p for folder in GRAND_PRESETS for p in (PRESETS / folder).glob("*.toml")),
                         ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_grand_presets_come_from_validation_searches_at_seeds_their_suites_do_not_use(path):
    config = resolve_config(read_config_file(path), sources=[str(path)])
    assert config.dataset == path.stem and config.seed == 0
    assert config.energy == GRAND_PRESETS[path.parent.name]
    commands, steps = _search_chain(path)
    starts = (f"--config experiments/configs/grand/{path.parent.name}.toml ",
              f"--config continuous_gnn/presets/graff_tuned/{path.stem}.toml --energy {config.energy} ")
    if path.parent.name == "grand_l_row":  # GRAND-l's row-stochastic form starts from the symmetrised preset
        starts = (f"--config continuous_gnn/presets/grand_l/{path.stem}.toml --energy grand_l_row ",)
    elif path.stem.endswith("-lcc"):  # GRAND's own split of a Planetoid graph starts from that graph's public preset
        starts = (f"--config continuous_gnn/presets/{path.parent.name}/{path.stem[:-len('-lcc')]}-public.toml ",)
    # Newest first; the GRAND searches end at the first that started from a known file. A GRAFF or public-split
    # preset's header, quoted below that, holds that preset's own searches, which its own test checks.
    first = next((i for i, command in enumerate(commands) if any(start in command for start in starts)), None)
    assert first is not None, commands
    commands, steps = commands[:first + 1], steps[:first + 1]
    assert all(f" --dataset {path.stem} " in command for command in commands)
    assert all(best >= configured for best, configured in steps), "a search keeps its best trial, trial 0 included"
    from continuous_gnn.benchmarks.suite import available_suites, load_suite, suite_path
    from continuous_gnn.training.search import search_seeds

    users = [(suite, model) for suite in map(load_suite, map(suite_path, available_suites()))
             for model in suite.models if model.preset == path.parent.name and path.stem in model.datasets]
    assert users, f"no packaged suite runs {path.parent.name}/{path.name}"
    for suite, model in users:
        assert not set(model.seeds or suite.seeds) & search_seeds(path), \
            f"suite {suite.name} runs {model.label} at a seed the search trained with"


def test_detach_source_is_refused_on_the_command_line_where_the_flow_has_no_source_term(tmp_path, capsys):
    # It was recorded as true and changed nothing: GRAFF without its source term, an energy that never reads
    # F(0), or attention from F(0) without a source term (detaching reaches the source term only). A stored
    # config that has it still loads (checkpoints saved before the rule).
    from continuous_gnn.cli import main
    from continuous_gnn.training.config_rules import has_source_term

    base = ["train", "--dataset", "texas", "--detach-source", "--data-root", str(tmp_path), "--no-download",
            "--out", str(tmp_path / "r.json")]
    for flags, fix in ((["--energy", "dirichlet"], ""), (["--no-source"], ", or keep the source term"),
                       (["--energy", "grand_nl"], ", or give the flow its source term"),
                       (["--energy", "attention_dirichlet"], ", or give the flow its source term"),
                       (["--energy", "second_order", "--energy-option", "inner=allen_cahn"], "")):
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert "detach_source detaches F(0) where the source term reads it" in err and fix in err
    assert [has_source_term(RunConfig(**fields)) for fields in (
        {}, {"energy": "attention_dirichlet"}, {"energy": "attention_dirichlet", "energy_options": {"source": True}},
        {"energy": "grand_l_row"}, {"energy": "second_order"},
        {"energy": "second_order", "energy_options": {"inner": "attention_dirichlet"}},
        {"energy": "grand_nl", "energy_options": {"source": True}}, {"energy": "dirichlet"}, {"source": False},
        {"energy": "continuous_gnn.energies:DirichletEnergy"})] == [
        True, False, True, False, True, False, True, False, False, None]
    assert RunConfig(energy="dirichlet", detach_source=True).detach_source


def test_a_rule_broken_by_merged_layers_names_the_layers_it_merged():
    # `dataset = ""` in a config file said only "dataset must not be empty".
    with pytest.raises(ValueError, match=re.escape("dataset must not be empty (settings merged from: config file "
                                                   "a.toml, command line)")):
        resolve_config(None, {"dataset": ""}, {"hidden": 4}, sources=["preset p", "config file a.toml",
                                                                     "command line"])
    with pytest.raises(ValueError, match="^dataset must not be empty$"):
        RunConfig(dataset="")


def test_second_order_lists_inner_among_its_options():
    with pytest.raises(ValueError, match="its options are: inner, damping, learnable"):
        RunConfig(energy="second_order", energy_options={"bogus": 1})
