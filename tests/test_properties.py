"""Property tests over random small graphs, and a fuzz pass over configs: the documented invariants hold for
every graph hypothesis can draw (isolated nodes, self-loops, multi-edges, weights, both normalisations), and no
config value gives anything but a clean error or a valid run.

The default run uses a fixed example budget; ``make test-slow`` runs the same properties with a larger one.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import continuous_gnn as cg
from continuous_gnn.data import NodeDataset, contextual_sbm
from continuous_gnn.energies import (
    AllenCahnEnergy,
    AttentionDirichletEnergy,
    ChannelDirichletEnergy,
    DirichletEnergy,
    GRAFFEnergy,
    PLaplacianEnergy,
)
from continuous_gnn.errors import IntegrationError, TrainingDivergedError
from continuous_gnn.training import RunConfig, train_split
from continuous_gnn.training.config import check_overrides

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPE = torch.float64


@st.composite
def graphs(draw, max_nodes: int = 8):
    """A random small undirected multigraph: isolated nodes, self-loops, repeated edges and positive weights."""
    n = draw(st.integers(1, max_nodes))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    weights = draw(st.lists(st.floats(0.1, 10.0), min_size=len(pairs), max_size=len(pairs)))
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.reshape(2, -1)
    edge_weight = torch.tensor(weights, dtype=DTYPE).reshape(-1)
    normalization = draw(st.sampled_from(["sym", "rw"]))
    return n, edge_index, edge_weight, normalization


def _build(n, edge_index, edge_weight, normalization, **kwargs) -> cg.Graph:
    return cg.Graph.from_edge_index(edge_index, n, edge_weight, normalization=normalization, symmetrize=True,
                                    dtype=DTYPE, **kwargs)


def _operator_spectrum_in_unit_interval(case) -> None:
    n, edge_index, edge_weight, normalization = case
    graph = _build(n, edge_index, edge_weight, normalization)
    dense = graph.to_dense()
    if normalization == "sym":
        assert graph.symmetric
        torch.testing.assert_close(dense, dense.T)
        eigenvalues = torch.linalg.eigvalsh(dense)
    else:
        # D^-1 Ã is similar to D^-1/2 Ã D^-1/2, so its spectrum is real too; rows sum to one.
        torch.testing.assert_close(dense.sum(dim=1), torch.ones(n, dtype=DTYPE))
        eigenvalues = torch.linalg.eigvals(dense)
        assert float(eigenvalues.imag.abs().max()) < 1e-8
        eigenvalues = eigenvalues.real
    assert float(eigenvalues.min()) >= -1 - 1e-9 and float(eigenvalues.max()) <= 1 + 1e-9


def _construction_invariant_to_order_and_duplication(case, seed: int) -> None:
    n, edge_index, edge_weight, normalization = case
    graph = _build(n, edge_index, edge_weight, normalization)
    perm = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(seed))
    shuffled = _build(n, edge_index[:, perm], edge_weight[perm], normalization)
    torch.testing.assert_close(shuffled.to_dense(), graph.to_dense(), rtol=1e-12, atol=1e-12)
    # Documented: duplicate edges are merged by summing their weights, so an edge listed twice is the edge
    # with twice the weight.
    doubled = _build(n, torch.cat([edge_index, edge_index], 1), torch.cat([edge_weight, edge_weight]),
                     normalization)
    twice = _build(n, edge_index, 2 * edge_weight, normalization)
    torch.testing.assert_close(doubled.to_dense(), twice.to_dense(), rtol=1e-12, atol=1e-12)


def _energies(d: int):
    torch.manual_seed(0)
    return [DirichletEnergy(), ChannelDirichletEnergy(d).double(), GRAFFEnergy(d).double(),
            AttentionDirichletEnergy(d).double(), AllenCahnEnergy(d).double(), PLaplacianEnergy(p=1.0, eps=0.1)]


def _fields_stay_finite(case, values) -> None:
    n, edge_index, edge_weight, _ = case
    graph = _build(n, edge_index, edge_weight, "sym")  # energies need a symmetric operator
    d = 2
    x0 = torch.tensor(values[: n * d] + [0.0] * max(0, n * d - len(values)), dtype=DTYPE).reshape(n, d)
    fields = [cg.GradientFlow(energy) for energy in _energies(d)]
    torch.manual_seed(1)
    fields += [cg.AttentionDiffusion(d).double(), cg.FixedAttentionDiffusion(d, rate=True, source=True).double(),
               cg.SecondOrderFlow(GRAFFEnergy(d).double())]
    for field in fields:
        if isinstance(field, (cg.GradientFlow, cg.SecondOrderFlow)):
            assert torch.isfinite(field.energy.energy(x0, graph, x0))
        state = field.initial_state(x0)
        velocity = field.bind(graph, x0)(torch.tensor(0.0, dtype=DTYPE), state)
        assert velocity.shape == state.shape and bool(torch.isfinite(velocity).all()), type(field).__name__


FEATURES = st.lists(st.floats(-100, 100), min_size=16, max_size=16)


@FAST
@given(graphs())
def test_operator_is_symmetric_with_spectrum_in_unit_interval(case):
    _operator_spectrum_in_unit_interval(case)


@FAST
@given(graphs(), st.integers(0, 2**31))
def test_graph_construction_is_invariant_to_edge_order_and_duplication(case, seed):
    _construction_invariant_to_order_and_duplication(case, seed)


@FAST
@given(graphs(), FEATURES)
def test_every_energy_and_field_stays_finite(case, values):
    _fields_stay_finite(case, values)


@pytest.mark.slow
@THOROUGH
@given(graphs(max_nodes=12), st.integers(0, 2**31), FEATURES)
def test_graph_properties_thorough(case, seed, values):
    _operator_spectrum_in_unit_interval(case)
    _construction_invariant_to_order_and_duplication(case, seed)
    _fields_stay_finite(case, values)


# --- fuzz over config values ---------------------------------------------------------------------------------------

#: Values of every type a TOML file or a command line can give.
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["none", "euler", "dopri5", "graff", "relu", "0-2", "cpu", "1e308", ""]),
    st.lists(st.integers(-3, 1200), max_size=3),
)
FIELDS = [name for name in RunConfig.field_names() if name != "energy_options"]


def _tiny_dataset() -> NodeDataset:
    data = contextual_sbm(24, 2, 0.7, 4.0, 5, 1.0, seed=0)
    return NodeDataset(name="sbm", data=data, num_classes=2, num_splits=int(data.train_mask.size(1)),
                       metric="accuracy", homophilous=True)


#: Bounds under which a valid fuzzed config is also trained (anything larger is checked for validity only).
def _affordable(config: RunConfig) -> bool:
    if config.hidden > 32 or config.epochs > 3 or config.time_pieces is not None and config.time_pieces > 8:
        return False
    if config.fixed_grid:
        return cg.count_steps(config.time, config.step_size) <= 40
    return config.time <= 5


def _fuzz(values: dict) -> None:
    try:
        overrides = check_overrides(values, source="fuzz")
        config = RunConfig.from_dict({**overrides, "splits": None, "device": "cpu"})
    except (ValueError, TypeError):
        return  # a clean error that names the field
    if not _affordable(config):
        return
    try:
        train_split(config, _tiny_dataset(), 0)
    except (IntegrationError, TrainingDivergedError):
        pass  # a typed failure of a run that started: the command line reports it with exit status 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), ANY_VALUE, max_size=4))
def test_fuzzed_config_values_give_clean_errors_or_valid_runs(values):
    _fuzz(values)


@pytest.mark.parametrize("name, value", [("weight_decay", 1e308), ("lr", 1e300), ("kinetic_weight", 1e308),
                                         ("jacobian_weight", 1e308)])
def test_values_beyond_float32_are_refused_or_fail_cleanly(name, value):
    _fuzz({name: value, "epochs": 1, "hidden": 4})


def _toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(FIELDS), ANY_VALUE.filter(lambda v: v is not None), max_size=4))
def test_fuzzed_config_files_give_clean_errors(tmp_path_factory, values):
    from continuous_gnn.training import read_config_file, resolve_config

    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_text("".join(f"{key} = {_toml_literal(value)}\n" for key, value in values.items()), encoding="utf-8")
    try:
        resolve_config(read_config_file(path))
    except (ValueError, TypeError):
        pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), st.text(max_size=8)), max_size=4))
def test_fuzzed_command_lines_give_usage_errors_or_configs(flags):
    from continuous_gnn.cli import build_parser
    from continuous_gnn.cli.common import UsageError
    from continuous_gnn.cli.config_flags import resolve_cli_config

    argv = ["train", "--dataset", "texas"]
    for name, text in flags:
        argv += [f"--{name.replace('_', '-')}", text] if not isinstance(RunConfig.__dataclass_fields__[name].default,
                                                                        bool) else [f"--{name.replace('_', '-')}"]
    try:
        args = build_parser().parse_args(argv)
        resolve_cli_config(args)
    except (UsageError, ValueError, TypeError, SystemExit):
        pass  # argparse (exit status 2), or one line naming the field


@FAST
@given(st.text(max_size=12), st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=6), max_size=3))
def test_any_string_and_any_energy_option_name_survive_the_toml_round_trip(text, options):
    import tomllib

    from continuous_gnn.training import config_to_toml

    values = {"dataset": text, "energy_options": options}
    assert tomllib.loads(config_to_toml(values)) == ({"dataset": text, "energy_options": options} if options
                                                     else {"dataset": text})
