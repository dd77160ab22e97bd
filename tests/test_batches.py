"""Mini-batch training on subgraphs: config checks, the batch sources, per-batch normalisation, the loop's steps."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
import torch_geometric.typing as pyg_typing
from torch.nn import functional as F

from continuous_gnn.cli import build_parser, main, resolve_cli_config
from continuous_gnn.data import NodeDataset
from continuous_gnn.data.synthetic import contextual_sbm
from continuous_gnn.ode.regularizers import regularized_forward
from continuous_gnn.training import RunConfig, run, train_split
from continuous_gnn.training import loop as loop_module
from continuous_gnn.training import step as step_module
from continuous_gnn.training.batches import (
    Batch,
    EpochBatches,
    EvaluationBatches,
    MissingPackageError,
    batches_per_epoch,
    check_batching,
    metis_parts,
)
from continuous_gnn.training.build import build_graph, build_model, prepare_features

SMALL = dict(hidden=8, time=1.0, step_size=0.5, lr=0.01, weight_decay=5e-4, dropout=0.2, input_dropout=0.1)


def _synthetic(num_nodes: int = 120, splits: int = 2) -> NodeDataset:
    data = contextual_sbm(num_nodes, num_classes=3, homophily=0.85, avg_degree=6.0, num_features=12, snr=2.0, seed=3,
                          num_splits=splits)
    return NodeDataset(name="csbm", data=data, num_classes=3, num_splits=splits, metric="accuracy", homophilous=True)


def _dense(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], edge_index[1]] = 1.0
    return a


def _gcn(a: torch.Tensor) -> torch.Tensor:
    a = a + torch.eye(a.size(0), dtype=a.dtype)
    d = a.sum(1)
    return a / torch.sqrt(d[:, None] * d[None, :])


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize("values, fragment", [
    (dict(batching="random"), "batching = random needs num_parts"),
    (dict(num_parts=4), "num_parts applies only with batching"),
    (dict(batching="random", num_parts=0), "num_parts must be a positive integer"),
    (dict(batching="random", num_parts=4, parts_per_batch=2), "parts_per_batch applies only with batching = metis"),
    (dict(batching="metis", num_parts=4, parts_per_batch=5), r"parts_per_batch must be an integer in \[1, num_parts"),
    (dict(batching="neighbor", num_parts=4), "batching = neighbor needs num_neighbors"),
    (dict(batching="neighbor", num_parts=4, num_neighbors="10,x"), "num_neighbors must be comma-separated"),
    (dict(batching="neighbor", num_parts=4, num_neighbors="10,0"), "num_neighbors must be comma-separated"),
    (dict(batching="metis", num_parts=4, num_neighbors="10"), "num_neighbors applies only with batching = neighbor"),
    (dict(batching="random", num_parts=4, self_loops=False), "batching needs self_loops = true"),
    (dict(batching="clusters", num_parts=4), "unknown batching 'clusters'"),
    (dict(evaluation="batches"), "evaluation = batches .* needs batching random or metis"),
    (dict(batching="neighbor", num_parts=4, num_neighbors="10", evaluation="batches"), "use evaluation = full"),
    (dict(batching="random", num_parts=4, evaluation="subgraphs"), "unknown evaluation 'subgraphs'"),
])
def test_batching_settings_are_checked_when_the_config_is_built(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        RunConfig(**values)


def test_batching_flags_reach_the_config():
    args = build_parser().parse_args(["train", "--dataset", "texas", "--batching", "neighbor", "--num-parts", "4",
                                      "--num-neighbors", "10,-1"])
    config = resolve_cli_config(args).config
    assert (config.batching, config.num_parts, config.num_neighbors) == ("neighbor", 4, "10,-1")
    assert RunConfig.from_dict(config.to_dict()) == config


def test_check_batching_refuses_more_parts_than_nodes_and_uneven_shares():
    dataset = _synthetic(num_nodes=40)
    with pytest.raises(ValueError, match="num_parts = 41 is more than the 40 nodes of csbm; choose at most 40"):
        check_batching(RunConfig(batching="random", num_parts=41), dataset, [0])
    # 40 nodes in parts of ceil(40 / 7) = 6 nodes give 7 batches, which 2 processes cannot share.
    with pytest.raises(ValueError, match="an epoch has 7 batches, which 2 processes cannot share evenly.*"
                                         r"such as num_parts = 8$"):
        check_batching(RunConfig(batching="random", num_parts=7), dataset, [0], world_size=2)
    # 3 processes, 10 parts: 10 batches; 11 parts also make 10 (ceil(40 / 11) = 4 nodes each), 9 make 8, 12 make 10,
    # 8 make 8 and 13 make ceil(40 / 4) = 10 again; 7 make 7 and 14 make ceil(40 / 3) = 14; 6 parts make 6.
    with pytest.raises(ValueError, match=r"a multiple of 3 .*such as num_parts = 6$"):
        check_batching(RunConfig(batching="random", num_parts=10), dataset, [0], world_size=3)
    with pytest.raises(ValueError, match="training across 2 processes gives each its own batches; set batching"):
        check_batching(RunConfig(), dataset, [0], world_size=2)
    check_batching(RunConfig(batching="random", num_parts=8), dataset, [0], world_size=2)
    with pytest.raises(ValueError, match="num_parts = 41 is more than"):  # the loop checks before building a model
        train_split(RunConfig(batching="random", num_parts=41, epochs=1, **SMALL), dataset, 0)


def test_metis_without_pymetis_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymetis", None)  # an import of it now fails
    with pytest.raises(MissingPackageError, match=r"pip install pymetis"):
        check_batching(RunConfig(batching="metis", num_parts=4), _synthetic(), [0])


def test_neighbor_batching_without_a_sampler_names_what_to_install(monkeypatch):
    import torch_geometric.typing as pyg_typing

    monkeypatch.setattr(pyg_typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", False)
    config = RunConfig(batching="neighbor", num_parts=4, num_neighbors="5,5", epochs=1, **SMALL)
    with pytest.raises(MissingPackageError, match="needs pyg-lib or torch-sparse.*pip install torch-sparse"):
        check_batching(config, _synthetic(), [0])
    with pytest.raises(ValueError, match="pyg-lib or torch-sparse"):  # what the command line reports as a usage error
        train_split(config, _synthetic(), 0)
    from continuous_gnn.training import check_before_loading

    with pytest.raises(MissingPackageError, match="needs pyg-lib or torch-sparse"):  # before any data loads
        check_before_loading(config)


def test_neighbor_batching_needs_as_many_training_nodes_as_seed_batches(monkeypatch):
    import torch_geometric.typing as pyg_typing

    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", True)  # the count is checked whichever sampler there is
    dataset = _synthetic(num_nodes=40)
    count = int(dataset.split(1)[0].sum())
    with pytest.raises(ValueError, match=f"split 1 of csbm has {count} training nodes; choose at most {count}"):
        check_batching(RunConfig(batching="neighbor", num_parts=count + 1, num_neighbors="5"), dataset, [1])


@pytest.mark.data
def test_train_reports_a_missing_package_as_a_usage_error(monkeypatch, capsys, data_root, data_cache, tmp_path):
    monkeypatch.setitem(sys.modules, "pymetis", None)
    argv = ["train", "--dataset", "texas", "--batching", "metis", "--num-parts", "4", "--data-root", str(data_root),
            "--cache-dir", str(data_cache), "--out", str(tmp_path / "run.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("continuous-gnn train: error: batching = metis needs pymetis: pip install pymetis")
    assert not (tmp_path / "run.json").exists()


# ---------------------------------------------------------------------- batch sources


@pytest.mark.parametrize("num_nodes, num_parts", [(120, 4), (120, 7), (40, 7), (30, 7)])
def test_random_batches_partition_the_nodes_afresh_every_epoch(num_nodes, num_parts):
    dataset = _synthetic(num_nodes=num_nodes)
    config = RunConfig(batching="random", num_parts=num_parts)
    batches = EpochBatches(config, dataset, 0, seed=5, device=torch.device("cpu"))
    first, second = batches.groups(), batches.groups()
    for groups in (first, second):
        assert len(groups) == batches_per_epoch(config, num_nodes) <= num_parts
        assert torch.equal(torch.cat(groups).sort().values, torch.arange(num_nodes))  # every node exactly once
    assert not torch.equal(torch.cat(first), torch.cat(second))
    again = EpochBatches(config, dataset, 0, seed=5, device=torch.device("cpu")).groups()
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # the seed fixes the draws


def test_random_partitions_have_num_parts_parts_when_the_nodes_are_many_enough():
    # Only the two fields the count reads (a RunConfig per pair would validate 7,000 configs).
    configs = {k: SimpleNamespace(batching="random", num_parts=k) for k in range(1, 120)}
    for num_nodes in range(1, 120):
        for num_parts in range(1, num_nodes + 1):
            count = batches_per_epoch(configs[num_parts], num_nodes)
            assert count <= num_parts
            if num_parts * (num_parts - 1) < num_nodes:
                assert count == num_parts, (num_nodes, num_parts)


def test_metis_clusters_are_computed_once_per_seed_and_joined_per_epoch():
    pytest.importorskip("pymetis")
    dataset = _synthetic()
    config = RunConfig(batching="metis", num_parts=6, parts_per_batch=2, seed=4)
    parts = metis_parts(config, dataset.data)
    assert len(parts) == 6 and torch.equal(torch.cat(parts).sort().values, torch.arange(120))
    assert all(torch.equal(a, b) for a, b in zip(parts, metis_parts(config, dataset.data), strict=True))
    # METIS keeps most edges inside clusters: far fewer cut edges than a random partition of the same sizes.
    cluster = torch.empty(120, dtype=torch.long)
    for i, part in enumerate(parts):
        cluster[part] = i
    row, col = dataset.data.edge_index
    cut = float((cluster[row] != cluster[col]).float().mean())
    assert cut < 0.5 * (1 - 1 / 6)
    batches = EpochBatches(config, dataset, 0, seed=1, device=torch.device("cpu"), parts=parts)
    groups = batches.groups()
    assert len(groups) == batches_per_epoch(config, 120) == 3
    as_sets = {frozenset(p.tolist()) for p in parts}
    for group in groups:  # each batch is two whole clusters
        members = {frozenset(p.tolist()) for p in parts if set(p.tolist()) <= set(group.tolist())}
        assert len(members) == 2 and sum(len(m) for m in members) == group.numel() and members <= as_sets
    assert torch.equal(torch.cat(groups).sort().values, torch.arange(120))


def test_metis_clusters_are_shared_by_every_split_of_a_run(monkeypatch):
    pytest.importorskip("pymetis")
    calls = []

    def counted(config, data):
        calls.append(config.seed)
        return metis_parts(config, data)

    monkeypatch.setattr(loop_module, "metis_parts", counted)
    run(RunConfig(batching="metis", num_parts=4, epochs=1, splits=(0, 1), **SMALL), _synthetic())
    assert calls == [0]


def test_single_cluster_batches_are_built_once_and_equal_a_fresh_build():
    pytest.importorskip("pymetis")
    dataset = _synthetic()
    config = RunConfig(batching="metis", num_parts=4, seed=4)
    batches = EpochBatches(config, dataset, 0, seed=1, device=torch.device("cpu"))
    first, second = list(batches), list(batches)  # two epochs, each cluster once in a fresh order
    assert len(first) == len(second) == 4
    assert {id(batch) for batch in first} == {id(batch) for batch in second}
    for group in batches.groups():
        built, fresh = batches.materialise(group), batches.materialise(group.clone())  # a copy is not cached
        assert built is not fresh
        assert torch.equal(built.features, fresh.features) and torch.equal(built.train_index, fresh.train_index)
        assert torch.equal(built.graph.operator.to_dense(), fresh.graph.operator.to_dense())
    joined = EpochBatches(config.replace(parts_per_batch=2), dataset, 0, seed=1, device=torch.device("cpu"))
    first, second = list(joined), list(joined)  # joined clusters vary from epoch to epoch: built afresh
    assert {id(batch) for batch in first}.isdisjoint(id(batch) for batch in second)


@pytest.mark.skipif(not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE),
                    reason="NeighborLoader needs pyg-lib or torch-sparse")
def test_neighbor_batches_sample_around_their_seeds_and_train_on_them():
    dataset = _synthetic()
    config = RunConfig(batching="neighbor", num_parts=3, num_neighbors="4,4", epochs=2, **SMALL)
    batches = EpochBatches(config, dataset, 0, seed=0, device=torch.device("cpu"))
    train_nodes = dataset.split(0)[0].nonzero().view(-1)
    groups = batches.groups()
    assert len(groups) == 3 and sorted(torch.cat(groups).tolist()) == list(range(train_nodes.numel()))
    seeds = train_nodes[groups[0]]
    batch = batches.materialise(groups[0])
    assert torch.equal(batch.train_index, torch.arange(seeds.numel()))  # the seeds come first, and only they count
    assert torch.equal(batch.targets, dataset.data.y[seeds])
    assert torch.equal(batch.features[: seeds.numel()], dataset.data.x[seeds])
    assert batch.graph.symmetric and batch.graph.num_nodes > seeds.numel()
    assert train_split(config, dataset, 0).nfe_forward == [3 * 2, 3 * 2]


def test_a_batch_is_normalised_on_its_own_subgraph():
    dataset = _synthetic()
    config = RunConfig(batching="random", num_parts=3)
    batches = EpochBatches(config, dataset, 1, seed=0, device=torch.device("cpu"))
    nodes = batches.groups()[0]
    batch = batches.materialise(nodes)
    full = _dense(dataset.data.edge_index, 120)
    sub = full[nodes][:, nodes]
    expected = _gcn(sub)  # degrees counted inside the batch
    assert torch.allclose(batch.graph.to_dense().double(), expected, atol=1e-6)
    restricted = _gcn(full)[nodes][:, nodes]  # the full operator restricted to the batch: what it approximates
    lost = (full[nodes].sum(1) > sub.sum(1)).nonzero().view(-1)  # nodes with neighbours in other batches
    assert lost.numel() > 0
    kept = sub[lost].nonzero()
    i, j = lost[kept[:, 0]], kept[:, 1]
    assert bool((expected[i, j] > restricted[i, j] + 1e-9).all())  # the kept neighbours weigh more
    train = dataset.split(1)[0]
    assert torch.equal(nodes[batch.train_index], nodes[train[nodes]])
    assert torch.equal(batch.targets, dataset.data.y[nodes[train[nodes]]])
    assert torch.equal(batch.features, dataset.data.x[nodes])


# ---------------------------------------------------------------------- the loop


@pytest.mark.parametrize("evaluation", ["full", "batches"])
@pytest.mark.parametrize("batching", [dict(batching="random", num_parts=1),
                                      dict(batching="metis", num_parts=3, parts_per_batch=3)])
def test_one_batch_of_every_node_trains_like_full_batch(batching, evaluation):
    if batching["batching"] == "metis":
        pytest.importorskip("pymetis")
    # Without dropout the model is node-permutation equivariant, so the shuffled single batch differs from the
    # full batch only by rounding; so does evaluation on the one subgraph that holds every node.
    dataset = _synthetic()
    common = dict(SMALL, dropout=0.0, input_dropout=0.0, epochs=4)
    full = train_split(RunConfig(**common), dataset, 0)
    batched = train_split(RunConfig(**common, **batching, evaluation=evaluation), dataset, 0)
    assert batched.train_loss == pytest.approx(full.train_loss, rel=1e-5)
    assert batched.val_curve == pytest.approx(full.val_curve, abs=1e-6)
    assert batched.nfe_forward == full.nfe_forward


@pytest.mark.parametrize("kinetic_weight", [0.0, 0.1])
def test_batched_epochs_step_once_per_batch_and_record_the_weighted_loss(kinetic_weight):
    dataset = _synthetic()
    config = RunConfig(batching="random", num_parts=4, epochs=2, seed=3, kinetic_weight=kinetic_weight, **SMALL)
    result = train_split(config, dataset, 1, keep="last")
    # The reference: the same batches (same seed), one Adam step each, in one process.
    seed = config.seed + 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(config, dataset.num_features, dataset.num_classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
        batches = EpochBatches(config, dataset, 1, seed, torch.device("cpu"))
        losses, kinetic = [], []
        for _ in range(config.epochs):
            model.train()
            total, nodes, steps, kinetic_sum = 0.0, 0, 0, 0.0
            for batch in batches:
                optimizer.zero_grad(set_to_none=True)
                logits, _, regs = regularized_forward(model, batch.features, batch.graph, kinetic=True)
                loss = F.cross_entropy(logits[batch.train_index], batch.targets)
                if kinetic_weight:
                    loss = loss + kinetic_weight * regs["kinetic"]
                loss.backward()
                optimizer.step()
                count = batch.train_index.numel()
                total, nodes, steps = total + loss.item() * count, nodes + count, steps + 1
                kinetic_sum += regs["kinetic"].item()
            losses.append(total / nodes)
            kinetic.append(kinetic_sum / steps)  # the mean over the epoch's batches
    assert steps == 4 and result.nfe_forward == [4 * 2, 4 * 2]  # two Euler steps per batch
    assert result.train_loss == pytest.approx(losses, rel=1e-6)
    assert result.kinetic == (pytest.approx(kinetic, rel=1e-6) if kinetic_weight else [])
    for (name, kept), reference in zip(result.kept.model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.allclose(kept, reference, rtol=1e-6, atol=1e-7), name
    # Evaluation is on the full graph with the full operator.
    val = dataset.split(1)[1]
    with torch.no_grad():
        logits = result.kept.model(prepare_features(dataset.data.x), build_graph(dataset.data, config))
    accuracy = float((logits[val].argmax(1) == dataset.data.y[val]).float().mean())
    assert result.val_curve[-1] == pytest.approx(accuracy, abs=1e-7)


def test_batches_without_training_nodes_are_skipped():
    dataset = _synthetic(num_nodes=40)
    result = train_split(RunConfig(batching="random", num_parts=40, epochs=1, **SMALL), dataset, 0)
    train = int(dataset.split(0)[0].sum())
    assert 0 < train < 40 and result.nfe_forward == [2 * train]  # one step of two Euler steps per training node


def test_an_empty_batch_of_a_rank_has_an_exactly_zero_loss_that_reaches_every_parameter():
    dataset = _synthetic()
    config = RunConfig(**SMALL)
    model = build_model(config, dataset.num_features, dataset.num_classes)
    logits, _ = model.forward_with_solution(prepare_features(dataset.data.x), build_graph(dataset.data, config))
    empty = Batch(dataset.data.x, build_graph(dataset.data, config), torch.empty(0, dtype=torch.long),
                  torch.empty(0, dtype=torch.long))
    loss = step_module.batch_loss(logits, empty)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters() if p.requires_grad)


def test_rank_dropout_seeds_are_rank_0s_own_and_meet_no_split_seed():
    assert step_module.rank_seed(123, 0) == 123
    split_seeds = [base + split for base in (0, 5000, 2**40) for split in range(10)]
    rank_seeds = [step_module.rank_seed(seed, rank) for seed in split_seeds for rank in range(1, 8)]
    assert len(set(rank_seeds)) == len(rank_seeds) and not set(rank_seeds) & set(split_seeds)


def test_batched_training_learns_and_repeats_with_its_seed():
    dataset = _synthetic()
    config = RunConfig(batching="random", num_parts=3, epochs=12, **dict(SMALL, lr=0.05))
    assert train_split(config, dataset, 0).val_metric > 0.8
    short = config.replace(epochs=2)
    first = train_split(short, dataset, 0)
    assert train_split(short, dataset, 0).train_loss == first.train_loss
    assert train_split(short.replace(seed=9), dataset, 0).train_loss != first.train_loss


# ---------------------------------------------------------------------- evaluation in batches


@pytest.mark.parametrize("batching", [dict(batching="random", num_parts=4),
                                      dict(batching="metis", num_parts=6, parts_per_batch=2)])
def test_evaluation_batches_score_every_node_once_on_its_own_fixed_subgraph(batching):
    if batching["batching"] == "metis":
        pytest.importorskip("pymetis")
    dataset = _synthetic()
    config = RunConfig(**SMALL, **batching, evaluation="batches")
    evaluation = EvaluationBatches(config, dataset, seed=7, device=torch.device("cpu"))
    assert len(evaluation.groups) == batches_per_epoch(config, dataset.num_nodes)
    assert torch.equal(torch.cat(evaluation.groups).sort().values, torch.arange(dataset.num_nodes))
    again = EvaluationBatches(config, dataset, seed=7, device=torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(evaluation.groups, again.groups))

    torch.manual_seed(0)
    model = build_model(config, dataset.num_features, dataset.num_classes).eval()
    with torch.no_grad():
        logits = evaluation.logits(model)
        full = model(prepare_features(dataset.data.x), build_graph(dataset.data, config))
        for group in evaluation.groups:
            sample = dataset.data.subgraph(group)
            own = model(prepare_features(sample.x), build_graph(sample, config))
            assert torch.allclose(logits[group], own, atol=1e-6)
    # The subgraphs lose the edges between them, so the scores are not those of the full graph.
    assert not torch.allclose(logits, full, atol=1e-3)


def test_random_evaluation_partitions_follow_the_split_seed():
    dataset = _synthetic()
    config = RunConfig(**SMALL, batching="random", num_parts=3, evaluation="batches")
    first, other = (EvaluationBatches(config, dataset, seed=seed, device=torch.device("cpu")).groups for seed in (1, 2))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_batched_evaluation_never_builds_the_full_operator(monkeypatch):
    dataset = _synthetic()
    config = RunConfig(**dict(SMALL, epochs=3), batching="random", num_parts=3, evaluation="batches", splits=(0,))

    def refuse(*args, **kwargs):
        raise AssertionError("the full operator was built")

    monkeypatch.setattr(loop_module, "build_graph", refuse)
    result = run(config, dataset)
    assert len(result.splits[0].val_curve) == 3 and result.splits[0].val_metric > 0.5
    with pytest.raises(AssertionError, match="the full operator was built"):
        run(config.replace(evaluation="full"), dataset)


def test_evaluation_flag_reaches_the_config():
    args = build_parser().parse_args(["train", "--dataset", "texas", "--batching", "random", "--num-parts", "4",
                                      "--evaluation", "batches"])
    assert resolve_cli_config(args).config.evaluation == "batches"
