"""Search spaces of ``continuous-gnn tune``: the packaged GRAFF space, the file format and its validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from continuous_gnn.training import RunConfig
from continuous_gnn.training.config_io import read_config_file, resolve_config
from continuous_gnn.training.presets import search_space_path
from continuous_gnn.training.search import SearchSpace, load_search_space

#: The official random search (graff-notes §11) with normalize_field, and the keys tune --also adds.
OFFICIAL = {
    "hidden": ("categorical", (32, 64)),
    "step_size": ("categorical", (0.25, 0.5, 1.0)),
    "time": ("uniform", (0.5, 5.0)),
    "input_dropout": ("uniform", (0.3, 0.75)),
    "dropout": ("uniform", (0.2, 0.6)),
    "lr": ("uniform", (1e-4, 5e-3)),
    "weight_decay": ("uniform", (0.0, 0.04)),
    "self_loops": ("categorical", (True, False)),
    "w_learnable": ("categorical", (True, False)),
    "normalize_field": ("categorical", (False, True)),
}
ALSO = {
    "w": ("categorical", ("diag", "diag_dom", "sum")),
    "omega": ("categorical", ("diag", "zero")),
    "encoder": ("categorical", ("linear", "mlp")),
    "epochs": ("categorical", (150, 300)),
}


def test_the_packaged_space_is_the_official_random_search():
    space = load_search_space(search_space_path())
    assert dict(space.search) == OFFICIAL and list(space.search) == list(OFFICIAL), "order: --fix help and trials"
    assert dict(space.also) == ALSO and list(space.also) == list(ALSO)
    assert all(type(a) is type(b) for key, (_, values) in OFFICIAL.items()
               for a, b in zip(space.search[key][1], values)), "ints stay ints, floats floats"
    with pytest.raises(ValueError, match="no packaged search space 'nope'; available: graff"):
        search_space_path("nope")


def test_widen_keeps_the_configured_values_inside():
    space = load_search_space(search_space_path())
    widened = space.widen(RunConfig(hidden=256, lr=0.02, time=3.0, w="prod"), ["hidden", "lr", "time", "w"])
    assert widened["hidden"] == ("categorical", (32, 64, 256))
    assert widened["lr"] == ("uniform", (1e-4, 0.02))
    assert widened["time"] == OFFICIAL["time"], "a value inside the range leaves it alone"
    assert widened["w"] == ("categorical", ("diag", "diag_dom", "sum", "prod"))


@pytest.mark.parametrize(("text", "fragment"), [
    ("[search]\nhiden = { categorical = [1, 2] }\n", r"unknown key 'hiden' \(did you mean 'hidden'\?\)"),
    ("[search]\nseed = { categorical = [1, 2] }\n", "seed cannot be searched"),
    ("[search]\nlr = { loguniform = [1e-4, 1e-2] }\n", r"lr must be \{ categorical = \[choices\] \} or \{ uniform = \[low, high\] \}, "
                                                r"got \{'loguniform'"),
    ("[search]\nlr = { uniform = [0.01, 0.001] }\n", r"the range \[0.01, 0.001\] is empty"),
    ("[search]\nlr = { uniform = [0.01, 0.01] }\n", "is empty"),
    ("[search]\nlr = { uniform = [0.01] }\n", r"uniform needs two numbers \[low, high\]"),
    ("[search]\nhidden = { uniform = [16, 64] }\n", "uniform applies to float fields"),
    ("[search]\nhidden = { categorical = [] }\n", "categorical needs a non-empty list"),
    ("[search]\nhidden = { categorical = [32, \"x\"] }\n", "hidden"),
    ("[search]\nw = { categorical = [\"sum\", \"nope\"] }\n", r"unknown choice\(s\) \['nope'\]; choose from"),
    ("[search]\nhidden = { categorical = [32, 32] }\n", "listed twice"),
    ("[search]\nlr = { uniform = [1e-4, 1e-2] }\n[also]\nlr = { uniform = [1e-4, 1e-2] }\n", "lr in both"),
    ("[also]\nlr = { uniform = [1e-4, 1e-2] }\n", r"expected a \[search\] table"),
    ("hidden = 3\n[search]\n", r"expected a \[search\] table"),
    ("[search\n", "is not valid TOML"),
])
def test_a_bad_space_file_names_the_problem(tmp_path, text, fragment):
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment) as info:
        load_search_space(path)
    assert str(path) in str(info.value)


def test_a_space_built_in_python_is_checked_too():
    space = SearchSpace({"time": ("uniform", (1, 2))}, {})
    assert space.search["time"] == ("uniform", (1.0, 2.0))
    with pytest.raises(ValueError, match="unknown key 'nope'"):
        SearchSpace({"nope": ("categorical", (1,))}, {})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_search_space("/nonexistent/space.toml")


REPO_CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


@pytest.mark.parametrize("path", sorted((REPO_CONFIGS / "search").glob("*.toml")), ids=lambda p: p.stem)
def test_the_repository_search_spaces_load_and_widen(path):
    space = load_search_space(path)
    assert space.search, f"{path.name} searches nothing by default"
    widened = space.widen(RunConfig(), list(space.search) + list(space.also))
    assert set(widened) == set(space.search) | set(space.also)


@pytest.mark.parametrize("path", sorted(p for folder in ("grand", "heterophily")
                                        for p in (REPO_CONFIGS / folder).glob("*.toml")), ids=lambda p: p.stem)
def test_the_repository_starting_configs_resolve(path):
    resolved = resolve_config(read_config_file(path), {"dataset": "texas"})
    assert resolved.energy in {"graff", "attention_dirichlet", "grand_nl"}


def test_a_value_that_makes_the_starting_config_invalid_is_named_with_the_way_out():
    space = SearchSpace(search={"lr": {"categorical": [0.01, -1.0]}}, also={"dropout": {"uniform": [0.5, 1.5]}})
    with pytest.raises(ValueError, match=r"lr: the choice -1.0 makes no valid config .*\(tune --fix lr\)"):
        space.widen(RunConfig(), ["lr"])
    with pytest.raises(ValueError, match=r"dropout: the end of the uniform range 1.5 .*\(leave dropout out of --also\)"):
        space.widen(RunConfig(), ["dropout"])
    assert space.widen(RunConfig(), []) == {}
