"""Tests for continuous_gnn.training and continuous_gnn.builders: metrics, protocol, seeds, records, speed paths."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from torch.nn import functional as F

from continuous_gnn import Adaptive, Adjoint, ContinuousGNN, FixedGrid
from continuous_gnn.data import NodeDataset
from continuous_gnn.data.synthetic import contextual_sbm
from continuous_gnn.energies import EnergySchedule
from continuous_gnn.nn import SparseInputLinear
from continuous_gnn.training import (
    EpochInfo,
    RunConfig,
    accuracy,
    check_run,
    load_record,
    load_run_dataset,
    population_mean_std,
    read_config_file,
    resolve_config,
    roc_auc,
    run,
    save_record,
    train_split,
)
from continuous_gnn.training.build import (
    build_energy,
    build_graph,
    build_model,
    num_steps,
    prepare_features,
)
from continuous_gnn.training.presets import presets_dir

PRESETS = presets_dir()


def _synthetic(metric: str = "accuracy", num_classes: int = 3, splits: int = 3) -> NodeDataset:
    data = contextual_sbm(120, num_classes=num_classes, homophily=0.85, avg_degree=6.0, num_features=12, snr=2.0,
                          seed=3, num_splits=splits)
    return NodeDataset(name="csbm", data=data, num_classes=num_classes, num_splits=splits, metric=metric,
                       homophilous=True)


SMALL = dict(hidden=16, time=1.0, step_size=0.5, lr=0.01, weight_decay=5e-4, dropout=0.2, input_dropout=0.1)


# ---------------------------------------------------------------------- metrics


def _brute_auc(scores, labels):
    pos = [s for s, l in zip(scores, labels, strict=True) if l]
    neg = [s for s, l in zip(scores, labels, strict=True) if not l]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_the_pairwise_definition_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (40,), generator=g).float()  # many ties
    labels = torch.rand(40, generator=g) < 0.4
    assert roc_auc(scores, labels) == pytest.approx(_brute_auc(scores.tolist(), labels.tolist()), abs=1e-12)


def test_roc_auc_extremes():
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([0, 0, 1, 1])) == 0.0
    assert roc_auc(torch.ones(4), torch.tensor([0, 1, 0, 1])) == 0.5
    assert math.isnan(roc_auc(torch.rand(3), torch.ones(3)))


def test_accuracy_per_mask():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 0, 1])
    masks = torch.tensor([[True, True, False, False], [False, False, True, True]])
    assert accuracy(logits, y, masks).tolist() == [0.5, 1.0]


def test_population_std():
    assert population_mean_std([1.0, 3.0]) == (2.0, 1.0)  # ddof=0; the sample std would be 1.414
    assert population_mean_std([0.5]) == (0.5, 0.0)


# ---------------------------------------------------------------------- builders


def test_sparse_input_linear_equals_the_dense_path():
    torch.manual_seed(0)
    x = (torch.rand(30, 20) < 0.05).float() * torch.rand(30, 20)
    sparse = prepare_features(x)
    assert sparse.layout == torch.sparse_csr
    layer = SparseInputLinear(20, 5, dropout=0.0)
    out_sparse = layer(sparse)
    out_sparse.square().sum().backward()
    grad_sparse = layer.weight.grad.clone()
    layer.weight.grad = None
    out_dense = layer(x)
    out_dense.square().sum().backward()
    assert torch.allclose(out_sparse, out_dense, atol=1e-6)
    assert torch.allclose(grad_sparse, layer.weight.grad, atol=1e-5)


def test_sparse_input_dropout_only_drops_stored_entries_and_rescales():
    x = prepare_features(torch.eye(200))
    layer = SparseInputLinear(200, 1, dropout=0.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    torch.manual_seed(1)
    out = layer(x).view(-1)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert 60 < int((out == 2.0).sum()) < 140
    layer.eval()
    assert torch.equal(layer(x).view(-1), torch.ones(200))


def test_sparse_input_linear_with_dropout_is_linear_of_the_dropped_input_with_its_gradients():
    # SparseInputLinear draws its mask as `rand_like(stored values) >= p` from the global stream; drawing the
    # same numbers from the same seed gives the mask, and a dense nn.Linear fed those dropped values must give
    # the same output and the same weight and bias gradients.
    p, seed = 0.5, 7
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(12, 9, generator=g, dtype=torch.float64) < 0.3) * torch.randn(12, 9, generator=g, dtype=torch.float64)
    sparse = prepare_features(x, max_density=1.0)
    assert sparse.layout == torch.sparse_csr and sparse.values().numel() > 20
    weights = torch.randn(12, 4, generator=g, dtype=torch.float64)
    layer = SparseInputLinear(9, 4, dropout=p).double().train()
    dense = torch.nn.Linear(9, 4).double()
    dense.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        keep = torch.rand_like(sparse.values()) >= p
        torch.manual_seed(seed)
        out = layer(sparse)
    assert 0 < int(keep.sum()) < keep.numel()  # some stored entries are dropped, some kept
    dropped = torch.sparse_csr_tensor(sparse.crow_indices(), sparse.col_indices(), sparse.values() * keep / (1 - p),
                                      sparse.shape, check_invariants=True).to_dense()
    expected = dense(dropped)
    assert not torch.allclose(expected, dense(x))  # dropout changed the output
    torch.testing.assert_close(out, expected, rtol=1e-13, atol=1e-13)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(layer.weight.grad, dense.weight.grad, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(layer.bias.grad, dense.bias.grad, rtol=1e-13, atol=1e-13)
    # Dense input takes F.dropout: the same function of the same draws.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        reference = dense(F.dropout(x, p, training=True))
        torch.manual_seed(seed)
        torch.testing.assert_close(layer(x), reference, rtol=0, atol=0)


def test_build_model_initial_values_differ_from_continuous_gnn_only_in_the_first_linear_map():
    # build_model's docstring: same parameters, same distribution of initial values; under one seed the values
    # agree except the first linear map (a SparseInputLinear drawn after the energy and the decoder).
    for encoder, decoder, first in (("linear", "linear", "encoder."), ("mlp", "linear", "encoder.input."),
                                    ("linear", "mlp", "encoder.")):
        config = RunConfig(hidden=8, input_dropout=0.3, encoder=encoder, decoder=decoder)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            built = build_model(config, 6, 3).state_dict()
            torch.manual_seed(0)
            plain = ContinuousGNN(6, 8, 3, build_energy(config), t_end=config.time, input_dropout=0.3,
                                  encoder=encoder, decoder=decoder).state_dict()
        assert {k: v.shape for k, v in built.items()} == {k: v.shape for k, v in plain.items()}
        differ = sorted(k for k in built if not torch.equal(built[k], plain[k]))
        assert differ == [first + "bias", first + "weight"]
        bound = 1 / math.sqrt(6)  # nn.Linear's U(-1/√fan_in, 1/√fan_in), for both models
        assert all(float(state[first + "weight"].abs().max()) <= bound for state in (built, plain))


def test_dense_features_stay_dense():
    assert prepare_features(torch.rand(5, 4)).layout == torch.strided


def test_solver_options_and_time_dependent_energy():
    config = RunConfig(time=3.194, step_size=1.0, time_dependent=True, max_nfe=50)
    assert num_steps(config) == 4  # floor(T/τ) steps plus one shorter last step
    assert config.solver_settings() == (FixedGrid("euler", step_size=1.0, max_nfe=50), None)
    model = build_model(config, 6, 3)
    assert isinstance(model.energy, EnergySchedule) and len(model.energy.energies) == 4
    adaptive = RunConfig(method="dopri5", step_size=None, rtol=1e-4, adjoint=True, seminorm=True)
    assert adaptive.solver_settings() == (Adaptive("dopri5", rtol=1e-4, atol=1e-5), Adjoint(seminorm=True))
    assert num_steps(adaptive) is None


def test_time_pieces_sets_the_number_of_pieces():
    config = RunConfig(time=2.0, step_size=0.5, time_dependent=True, time_pieces=2)
    energy = build_model(config, 6, 3).energy
    assert isinstance(energy, EnergySchedule) and len(energy.energies) == 2  # not one per step (4)
    assert energy.boundaries() == [1.0]
    assert len(build_model(config.replace(time_pieces=None), 6, 3).energy.energies) == 4


def _energy_parameters(config: RunConfig) -> int:
    return sum(p.numel() for p in build_energy(config).parameters() if p.requires_grad)


def test_time_dependent_weights_train_with_an_adaptive_method():
    adaptive = {**SMALL, "step_size": None, "method": "dopri5", "rtol": 1e-3, "atol": 1e-5, "epochs": 2}
    shared_config = RunConfig(**adaptive)
    config = shared_config.replace(time_dependent=True, time_pieces=3)
    dataset = _synthetic()
    shared = train_split(shared_config, dataset, 0)
    pieces = train_split(config, dataset, 0)
    per_energy = _energy_parameters(shared_config)
    assert per_energy > 0
    rest = shared.num_parameters - per_energy  # encoder and decoder, shared by both models
    assert pieces.num_parameters - rest == 3 * per_energy
    assert pieces.num_parameters == shared.num_parameters + 2 * per_energy
    assert pieces.epochs_run == 2 and all(math.isfinite(v) for v in pieces.train_loss)
    # dopri5 steps end exactly on the piece boundaries T/3 and 2T/3 (its jump times): more evaluations than
    # the shared model's three steps on this task
    assert all(p > s for p, s in zip(pieces.nfe_forward, shared.nfe_forward, strict=True))
    model = build_model(config, dataset.num_features, dataset.num_classes)
    assert isinstance(model.energy, EnergySchedule) and len(model.energy.energies) == 3


@pytest.mark.parametrize(("w", "omega", "gradient_flow"), [("sum", "sum", True), ("sum", "asymm", False),
                                                        ("asymm", "sum", False), ("asymm", "diag", False)])
def test_an_asymmetric_w_or_omega_in_a_config_is_an_explicit_request(w, omega, gradient_flow):
    # A config asks for an asymmetric matrix by naming it: the energy is built, and says it is no gradient flow.
    energy = build_energy(RunConfig(w=w, omega=omega, hidden=4))
    assert energy.is_gradient_flow is gradient_flow
    assert energy.Omega.is_symmetric is (omega != "asymm") and energy.W.is_symmetric is (w != "asymm")


@pytest.mark.parametrize("energy", ["graff", "dirichlet", "channel_dirichlet"])
@pytest.mark.parametrize(("encoder", "decoder"), [("linear", "linear"), ("mlp", "linear"), ("linear", "mlp")])
def test_every_energy_encoder_and_decoder_builds_and_runs(energy, encoder, decoder):
    config = RunConfig(energy=energy, encoder=encoder, decoder=decoder, **SMALL)
    dataset = _synthetic()
    model = build_model(config, dataset.num_features, dataset.num_classes)
    out = model(prepare_features(dataset.data.x), build_graph(dataset.data, config))
    assert out.shape == (dataset.num_nodes, dataset.num_classes)


# ---------------------------------------------------------------------- training protocol


def test_training_learns_the_synthetic_task_and_reports_the_best_validation_epoch():
    dataset = _synthetic()
    config = RunConfig(epochs=40, splits=(0,), **SMALL)
    seen: list[EpochInfo] = []
    result = train_split(config, dataset, 0, progress=seen.append)
    assert len(seen) == result.epochs_run == 40
    assert result.test_metric > 0.6  # chance is 1/3
    assert result.val_metric == max(result.val_curve)
    assert result.best_epoch == result.val_curve.index(max(result.val_curve)) + 1  # first epoch on ties
    assert result.nfe_forward == [2] * 40 and result.nfe_backward == [0] * 40  # T/τ = 2 Euler steps
    assert len(result.train_loss) == 40 and result.train_loss[-1] < result.train_loss[0]
    assert seen[-1].best_epoch == result.best_epoch


def test_patience_stops_early():
    config = RunConfig(epochs=200, patience=3, lr=1e-6, **{k: v for k, v in SMALL.items() if k != "lr"})
    result = train_split(config, _synthetic(), 0)
    assert result.epochs_run < 200
    assert result.epochs_run - result.best_epoch == 3


def test_adjoint_counts_backward_evaluations():
    config = RunConfig(epochs=2, adjoint=True, **SMALL)
    result = train_split(config, _synthetic(), 0)
    assert all(n > 0 for n in result.nfe_backward)


def test_seeds_are_per_split_reproducible_and_leave_the_global_rng_alone():
    dataset = _synthetic()
    config = RunConfig(epochs=5, seed=11, **SMALL)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    full = run(config, dataset)
    assert torch.equal(torch.rand(3), expected_next)  # run() does not consume the caller's random state
    assert [s.seed for s in full.splits] == [11, 12, 13]
    alone = train_split(config, dataset, 2)
    assert alone.val_curve == full.splits[2].val_curve and alone.test_metric == full.splits[2].test_metric
    other_seed = train_split(config.replace(seed=12), dataset, 2)
    assert other_seed.val_curve != alone.val_curve


def _reference_losses(config: RunConfig, dataset: NodeDataset, split: int,
                      optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam) -> list[float]:
    """The training step as it was before the regularisers existed: forward_with_solution, cross-entropy, Adam."""
    graph = build_graph(dataset.data, config)
    features = prepare_features(dataset.data.x)
    index = dataset.split(split)[0].nonzero().view(-1)
    y = dataset.data.y[index]
    losses = []
    with torch.random.fork_rng():
        torch.manual_seed(config.seed + split)
        model = build_model(config, dataset.num_features, dataset.num_classes)
        optimizer = optimizer_class(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
        for _ in range(config.epochs):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            logits, _ = model.forward_with_solution(features, graph)
            loss = F.cross_entropy(logits[index], y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())  # evaluation runs in eval mode: it draws no random numbers
    return losses


def test_zero_regulariser_weights_train_bitwise_as_before():
    dataset = _synthetic()
    config = RunConfig(epochs=4, seed=2, kinetic_weight=0.0, jacobian_weight=0.0, **SMALL)
    result = train_split(config, dataset, 1)
    assert result.train_loss == _reference_losses(config, dataset, 1)  # exact equality
    assert result.kinetic == [] and result.jacobian == []
    assert train_split(config, dataset, 1).val_curve == result.val_curve


def test_adamax_trains_with_torch_adamax():
    dataset = _synthetic()
    config = RunConfig(epochs=4, seed=2, optimizer="adamax", **SMALL)
    result = train_split(config, dataset, 1)
    assert result.train_loss == _reference_losses(config, dataset, 1, torch.optim.Adamax)  # exact equality
    assert result.train_loss != train_split(config.replace(optimizer="adam"), dataset, 1).train_loss
    with pytest.raises(ValueError, match="optimizer.*adam.*adamax"):
        RunConfig(optimizer="sgd")


def test_kinetic_regulariser_is_added_to_the_loss_and_recorded():
    dataset = _synthetic()
    plain = train_split(RunConfig(epochs=3, **SMALL), dataset, 0)
    config = RunConfig(epochs=3, kinetic_weight=0.1, **SMALL)
    result = train_split(config, dataset, 0)
    assert len(result.kinetic) == 3 and all(k > 0 for k in result.kinetic) and result.jacobian == []
    # Same initialisation and dropout masks: the first loss is the plain one plus λ_K · R_K.
    assert result.train_loss[0] == pytest.approx(plain.train_loss[0] + 0.1 * result.kinetic[0], rel=1e-5)
    assert result.train_loss[1:] != plain.train_loss[1:]  # the regulariser changed the updates
    # For this linear gradient flow R_K = E(F(0)) - E(F(T)) ≥ 0, and minimising it shrinks it.
    stronger = train_split(config.replace(kinetic_weight=10.0, epochs=10), dataset, 0)
    assert stronger.kinetic[-1] < stronger.kinetic[0]


def test_jacobian_probe_has_its_own_generator_so_the_first_loss_is_the_plain_one_plus_the_regulariser():
    # The probe is drawn between the input and the decoder dropout: from the global stream it would change
    # the decoder's mask, and the first loss would no longer be the plain cross-entropy plus λ_J · R_J.
    dataset = _synthetic()
    plain = train_split(RunConfig(epochs=1, **SMALL), dataset, 0)
    weight = 1e-3
    result = train_split(RunConfig(epochs=1, jacobian_weight=weight, kinetic_weight=0.0, **SMALL), dataset, 0)
    assert result.kinetic == [] and len(result.jacobian) == 1 and result.jacobian[0] > 0
    assert weight * result.jacobian[0] > 0.1 * plain.train_loss[0]  # both terms matter at this weight
    assert result.train_loss[0] == pytest.approx(plain.train_loss[0] + weight * result.jacobian[0], rel=1e-6)


def test_jacobian_regulariser_is_reproducible_and_round_trips_in_the_record(tmp_path):
    dataset = _synthetic()
    config = RunConfig(dataset="csbm", epochs=2, splits=(0,), kinetic_weight=0.05, jacobian_weight=0.01, **SMALL)
    result = run(config, dataset)
    split = result.splits[0]
    assert len(split.kinetic) == len(split.jacobian) == 2 and all(j > 0 for j in split.jacobian)
    again = train_split(config, dataset, 0)
    assert again.jacobian == split.jacobian and again.train_loss == split.train_loss  # the probe is seeded
    loaded = load_record(save_record(result.to_record(), tmp_path / "r.json"))
    assert RunConfig.from_dict(loaded["config"]) == config
    assert loaded["config"]["jacobian_weight"] == 0.01
    assert loaded["splits"][0]["jacobian"] == split.jacobian and loaded["splits"][0]["kinetic"] == split.kinetic


def test_roc_auc_datasets_are_scored_with_roc_auc():
    dataset = _synthetic(metric="roc_auc", num_classes=2, splits=1)
    result = train_split(RunConfig(epochs=15, **SMALL), dataset, 0)
    assert 0.5 < result.test_metric <= 1.0


def test_run_rejects_missing_splits_and_mismatched_normalisation():
    dataset = _synthetic()
    with pytest.raises(ValueError, match=r"splits 0..2; split\(s\) \[5\] do not exist"):
        run(RunConfig(splits=(0, 5), epochs=1, **SMALL), dataset)
    with pytest.raises(ValueError, match="normalize_features=True"):
        run(RunConfig(normalize_features=True, epochs=1, **SMALL), dataset)
    with pytest.raises(ValueError, match="names no dataset"):
        load_run_dataset(RunConfig(), "/nonexistent")
    # a benchmark under another benchmark's name is refused; a dataset of the user's own runs under any name
    import dataclasses

    texas_named = dataclasses.replace(dataset, name="texas")
    with pytest.raises(ValueError, match="config.dataset is 'Cora' but the dataset given is 'texas'; load the one"):
        run(RunConfig(dataset="Cora", epochs=1, **SMALL), texas_named)
    assert check_run(RunConfig(dataset="TEXAS", epochs=1, **SMALL), texas_named)
    assert check_run(RunConfig(dataset="cora", epochs=1, **SMALL), dataset)  # 'csbm' is no benchmark


def test_record_round_trips_and_is_written_atomically(tmp_path):
    config = RunConfig(dataset="csbm", epochs=3, splits=(1, 0), seed=4, activation="tanh", **SMALL)
    result = run(config, _synthetic())
    record = result.to_record(preset=None, command="test")
    path = save_record(record, tmp_path / "sub" / "r.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]  # no temporary file left behind
    loaded = load_record(path)
    assert RunConfig.from_dict(loaded["config"]) == config
    assert loaded["seed"] == 4 and loaded["split_seeds"] == {"1": 5, "0": 4}
    assert [s["split"] for s in loaded["splits"]] == [1, 0]
    assert len(loaded["splits"][0]["nfe_forward"]) == 3
    agg = loaded["aggregate"]
    assert agg["std"] == "population (ddof=0)"
    mean, std = population_mean_std([s["test_metric"] for s in loaded["splits"]])
    assert agg["test_mean"] == pytest.approx(mean) and agg["test_std"] == pytest.approx(std)
    for key in ("continuous_gnn", "torch", "torch_geometric", "torchdiffeq", "python"):
        assert key in loaded["versions"]
    assert loaded["machine"]["cpu_count"] >= 1 and loaded["date"]
    assert loaded["command"] == "test"
    json.dumps(loaded)
    with pytest.raises(ValueError, match="overwrite"):
        result.to_record(config={})


def test_a_run_trained_in_parts_merges_into_the_record_of_the_whole_run():
    import datetime as dt

    from continuous_gnn.training import RunResult

    config = RunConfig(dataset="csbm", epochs=2, splits=(0, 1, 2), seed=4, **SMALL)
    dataset = _synthetic()
    whole = run(config, dataset).to_record()
    parts = [run(config.replace(splits=splits), dataset).to_record() for splits in ((2,), (0, 1))]
    parts[0]["date"], parts[0]["aggregate"]["wall_time"] = "2026-12-07T01:00:00+00:00", 30.0
    parts[1]["date"], parts[1]["aggregate"]["wall_time"] = "2026-12-07T01:00:10+00:00", 50.0
    merged = RunResult.from_parts(config, parts)
    drop = ("wall_time", "epoch_time")
    assert [{k: v for k, v in s.to_dict().items() if k not in drop} for s in merged.splits] == \
        [{k: v for k, v in s.items() if k not in drop} for s in whole["splits"]]
    # The span from the earliest start (01:00:00) to the latest end (01:01:00), not the summed 80 s.
    assert merged.wall_time == 60.0 and dt.datetime.fromisoformat(merged.date).minute == 0
    record = merged.to_record()
    assert record["config"] == whole["config"] and record["split_seeds"] == whole["split_seeds"]
    assert record["aggregate"]["test_mean"] == pytest.approx(whole["aggregate"]["test_mean"])
    with pytest.raises(ValueError, match="split twice"):
        RunResult.from_parts(config, [*parts, parts[0]])
    with pytest.raises(ValueError, match=r"hold splits \[2\], the run asks for \[0, 1, 2\]"):
        RunResult.from_parts(config, parts[:1])
    with pytest.raises(ValueError, match="differs from the merged run's in more than its splits"):
        RunResult.from_parts(config.replace(seed=5), parts)
    with pytest.raises(ValueError, match="no part records"):
        RunResult.from_parts(config, [])


def _save_numbered(args) -> str:
    path, value = args
    return save_record({"value": value}, path, numbered=True).name


def test_numbered_records_never_replace_a_file_even_when_written_at_once(tmp_path):
    """Runs that chose the same default name (started in the same second) each keep their record."""
    import concurrent.futures
    import multiprocessing

    path = tmp_path / "cora-graff-20261206-004240.json"
    path.write_text("{}")  # a record of an earlier run
    assert save_record({"value": -1}, path).name == path.name and json.loads(path.read_text()) == {"value": -1}
    # Forked, not spawned: a spawned worker spends seconds importing torch before it writes.
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
        names = list(pool.map(_save_numbered, [(path, value) for value in range(8)]))
    assert sorted(names) == [f"{path.stem}-{i}.json" for i in range(1, 9)]
    assert sorted(json.loads((tmp_path / name).read_text())["value"] for name in names) == list(range(8))
    assert json.loads(path.read_text()) == {"value": -1}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, *names])  # no temporary file
    # The first run into a folder that does not exist yet (a fresh checkout's runs/) creates it.
    fresh = tmp_path / "runs" / "sub" / "r.json"
    assert save_record({"value": 9}, fresh, numbered=True) == fresh and json.loads(fresh.read_text()) == {"value": 9}


def test_a_default_named_search_claims_its_name_with_its_study_file(tmp_path):
    from continuous_gnn.cli.tune import _claim_study_name

    path = tmp_path / "tune-cora-20261206-004240.toml"
    assert _claim_study_name(path) == path and (tmp_path / f"{path.stem}.optuna.sqlite3").stat().st_size == 0
    # A second search in the same second finds the study file taken and moves on, as it does past a config.
    assert _claim_study_name(path).name == f"{path.stem}-1.toml"
    (tmp_path / f"{path.stem}-2.toml").write_text("")
    assert _claim_study_name(path).name == f"{path.stem}-3.toml"


def test_load_record_rejects_files_that_are_not_run_records(tmp_path):
    cases = {
        "list.json": ("[1, 2]", "holds a JSON list, not a continuous_gnn run record"),
        "other.json": ('{"a": 1}', r"not a continuous_gnn run record: it lacks \['format', 'config'"),
        "partial.json": ('{"format": 1, "config": {}, "aggregate": {}}', r"it lacks \['splits'\]"),
        "broken.json": ('{"config": ', "is not valid JSON"),
        "empty.json": ("  \n", "is empty"),
    }
    for name, (text, match) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=match) as info:
            load_record(tmp_path / name)
        assert name in str(info.value)  # the message names the file
    (tmp_path / "binary.json").write_bytes(b"\x80\xff\x00")
    with pytest.raises(ValueError, match="binary.json.*not UTF-8"):
        load_record(tmp_path / "binary.json")
    with pytest.raises(ValueError, match=r"its aggregate lacks \['metric', 'num_splits'"):
        load_record(save_record({"format": 1, "config": {}, "aggregate": {}, "splits": []}, tmp_path / "bare.json"))
    from helpers import run_record

    whole = run_record()
    assert load_record(save_record(whole, tmp_path / "whole.json")) == whole


def test_save_record_requires_a_dict(tmp_path):
    with pytest.raises(TypeError, match="record must be a dict"):
        save_record([1], tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- real data


@pytest.mark.data
def test_cora_preset_reaches_a_sane_accuracy(data_root, data_cache):
    # data_root and data_cache come from conftest.py: the root is $CONTINUOUS_GNN_DATA or ../shared/data
    # (skip when missing, fail on CI), the cache a temporary folder.
    path = PRESETS / "graff" / "cora.toml"
    config = resolve_config(read_config_file(path), {"splits": [0], "epochs": 40}, sources=["preset", "test"])
    dataset = load_run_dataset(config, data_root, cache_dir=data_cache)
    result = run(config, dataset)
    assert result.splits[0].test_metric > 0.75  # 7 classes: chance is about 0.3


def test_normalize_field_reaches_the_model():
    from continuous_gnn.training.build import build_model

    model = build_model(RunConfig(normalize_field=True), num_features=5, num_classes=3)
    assert model.flow.normalize
    assert not build_model(RunConfig(), num_features=5, num_classes=3).flow.normalize


def test_an_unwritable_record_path_names_the_path_not_its_temporary_file(tmp_path):
    (tmp_path / "afile").write_text("a file, not a folder")
    target = tmp_path / "afile" / "r.json"
    with pytest.raises(OSError, match=f"cannot write '{target}'") as info:
        save_record({"format": 1}, target)
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize("self_loops", [True, False])
def test_a_built_model_normalises_an_edge_index_or_data_input_as_its_config_says(self_loops):
    # A model rebuilt from a --no-self-loops checkpoint added self-loops to an edge_index or Data input (logits
    # off by up to 0.19 on Cornell): the config's self_loops now travels with the model.
    dataset = _synthetic()
    config = RunConfig(dataset="csbm", self_loops=self_loops, **SMALL)
    torch.manual_seed(0)
    model = build_model(config, dataset.num_features, dataset.num_classes).eval()
    assert model.self_loops is self_loops
    x = dataset.data.x
    with torch.no_grad():
        expected = model(x, build_graph(dataset.data, config))
        for got in (model(x, dataset.data.edge_index), model(dataset.data)):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match="self_loops"):
        ContinuousGNN(3, 4, 2, model.energy, self_loops="no")
