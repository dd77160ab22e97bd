"""Tests for continuous_gnn.data.synthetic."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, contains_self_loops, is_undirected

from continuous_gnn.data import synthetic
from continuous_gnn.data.fixed_graphs import complete_bipartite, grid_graph, path_graph, ring_graph
from continuous_gnn.data.synthetic import contextual_sbm, edge_homophily

GENERATORS: dict[str, Callable[..., Data]] = {
    "csbm": lambda seed, **kw: contextual_sbm(300, num_classes=3, homophily=0.3, seed=seed, **kw),
    "bipartite": lambda seed, **kw: complete_bipartite(6, snr=1.0, seed=seed, **kw),
    "ring": lambda seed, **kw: ring_graph(9, num_features=2, seed=seed, **kw),
    "path": lambda seed, **kw: path_graph(8, seed=seed, **kw),
    "grid": lambda seed, **kw: grid_graph(3, 4, seed=seed, **kw),
    "torus": lambda seed, **kw: grid_graph(3, 4, periodic=True, seed=seed, **kw),
}


def _assert_same(a: Data, b: Data) -> None:
    assert set(a.keys()) == set(b.keys())
    for key in a.keys():
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def _check_simple_undirected(data: Data) -> None:
    edge_index = data.edge_index
    assert edge_index.dtype == torch.long
    assert is_undirected(edge_index, num_nodes=data.num_nodes)
    assert not contains_self_loops(edge_index)
    # Coalesced: sorted by (source, target) and without duplicates.
    assert torch.equal(coalesce(edge_index, num_nodes=data.num_nodes), edge_index)


# --------------------------------------------------------------------------------------------------
# properties shared by every generator
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GENERATORS))
def test_seed_reproduces_and_differs(name: str) -> None:
    make = GENERATORS[name]
    state = torch.get_rng_state()
    _assert_same(make(3), make(3))
    _assert_same(make(3), make(torch.Generator().manual_seed(3)))
    other = make(4)
    assert not torch.equal(make(3).x, other.x)
    assert not torch.equal(make(3).train_mask, other.train_mask)
    if name == "csbm":
        assert not torch.equal(make(3).edge_index, other.edge_index)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never used


@pytest.mark.parametrize("name", list(GENERATORS))
def test_graphs_are_simple_undirected_with_documented_fields(name: str) -> None:
    data = GENERATORS[name](0, num_splits=3)
    _check_simple_undirected(data)
    n = data.num_nodes
    assert data.x.dtype == torch.float32 and data.x.size(0) == n
    assert data.y.dtype == torch.long and data.y.shape == (n,)
    masks = (data.train_mask, data.val_mask, data.test_mask)
    for mask in masks:
        assert mask.dtype == torch.bool and mask.shape == (n, 3)
    total = sum(mask.long() for mask in masks)
    assert torch.equal(total, torch.ones(n, 3, dtype=torch.long))  # disjoint, and cover everything
    assert data.train_mask.sum(0).tolist() == [round(0.5 * n)] * 3
    assert data.val_mask.sum(0).tolist() == [round(0.25 * n)] * 3
    assert not torch.equal(data.train_mask[:, 0], data.train_mask[:, 1])  # each split is a fresh permutation


def test_default_masks_are_two_dimensional_with_one_split() -> None:
    data = ring_graph(12)
    assert data.train_mask.shape == (12, 1)
    assert data.train_mask.sum() == 6 and data.val_mask.sum() == 3 and data.test_mask.sum() == 3


def test_fractions_summing_to_less_than_one_leave_nodes_out() -> None:
    data = path_graph(20, train_frac=0.5, val_frac=0.2, test_frac=0.1)
    assert (data.train_mask.sum(), data.val_mask.sum(), data.test_mask.sum()) == (10, 4, 2)
    assert not bool((data.train_mask & data.test_mask).any())


# --------------------------------------------------------------------------------------------------
# contextual SBM
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("homophily", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("num_classes", [2, 4])
def test_csbm_edge_homophily_matches_target(homophily: float, num_classes: int) -> None:
    data = contextual_sbm(1000, num_classes=num_classes, homophily=homophily, avg_degree=5.0, seed=11)
    assert abs(edge_homophily(data.edge_index, data.y) - homophily) < 0.05
    # Expected mean degree avg_degree (about 5000 edge entries, std about 70).
    assert abs(data.edge_index.size(1) / 1000 - 5.0) < 0.5


def test_csbm_extreme_homophily_is_exact() -> None:
    heterophilic = contextual_sbm(200, homophily=0.0, seed=1)
    homophilic = contextual_sbm(200, homophily=1.0, seed=1)
    assert edge_homophily(heterophilic.edge_index, heterophilic.y) == 0.0
    assert edge_homophily(homophilic.edge_index, homophilic.y) == 1.0


def test_csbm_classes_are_balanced_and_shuffled() -> None:
    data = contextual_sbm(1003, num_classes=4, seed=2)
    counts = torch.bincount(data.y, minlength=4)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == 1003
    assert not torch.equal(data.y, torch.arange(1003) % 4)


def test_csbm_rejection_sampler_matches_enumeration_law(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the large-block code path and check it keeps the same guarantees."""
    monkeypatch.setattr(synthetic, "_ENUMERATION_LIMIT", 10)
    data = contextual_sbm(1000, num_classes=3, homophily=0.7, seed=5)
    _check_simple_undirected(data)
    assert abs(edge_homophily(data.edge_index, data.y) - 0.7) < 0.05
    assert abs(data.edge_index.size(1) / 1000 - 5.0) < 0.5


def test_csbm_dense_large_blocks_are_drawn_as_the_complement_of_their_non_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large blocks with an edge probability above one half (rejection sampling alone never finished at p = 1)."""
    monkeypatch.setattr(synthetic, "_ENUMERATION_LIMIT", 10)
    edge_index, y = synthetic.sbm_edges(200, 2, homophily=1.0, avg_degree=99.0, seed=1)  # p_in = 1: two cliques
    assert edge_index.size(1) == 2 * 2 * (100 * 99 // 2) and bool((y[edge_index[0]] == y[edge_index[1]]).all())
    edge_index, y = synthetic.sbm_edges(200, 2, homophily=0.0, avg_degree=100.0, seed=1)  # p_out = 1: K_{100,100}
    assert edge_index.size(1) == 2 * 100 * 100 and bool((y[edge_index[0]] != y[edge_index[1]]).all())
    data = contextual_sbm(400, num_classes=2, homophily=0.9, avg_degree=150.0, seed=2)  # p_in = 0.68
    _check_simple_undirected(data)
    assert abs(edge_homophily(data.edge_index, data.y) - 0.9) < 0.01
    assert abs(data.edge_index.size(1) / 400 - 150.0) < 3.0
    # Uniform over the pairs: every node of a class has about p_in * 199 neighbours in it.
    inside = data.y[data.edge_index[0]] == data.y[data.edge_index[1]]
    degrees = torch.bincount(data.edge_index[0][inside], minlength=400).double()
    assert abs(float(degrees.mean()) - 0.9 * 150.0) < 2.0 and float(degrees.std()) < 12.0


@pytest.mark.parametrize("build, name", [
    (lambda: contextual_sbm(10**9), "contextual_sbm"),
    (lambda: contextual_sbm(10**19), "contextual_sbm"),  # beyond int64: refused before torch overflows
    (lambda: contextual_sbm(10**6, num_features=10**5), "contextual_sbm"),
    (lambda: synthetic.sbm_edges(10**10, avg_degree=10.0), "sbm_edges"),
    (lambda: complete_bipartite(10**5), "complete_bipartite"),
    (lambda: grid_graph(10**5, 10**5), "grid_graph"),
    (lambda: ring_graph(10**10), "ring_graph"),
    (lambda: path_graph(10**10), "path_graph"),
])
def test_a_graph_too_large_for_memory_is_refused_before_it_is_drawn(build, name, monkeypatch: pytest.MonkeyPatch):
    from continuous_gnn.training import preflight

    monkeypatch.setattr(preflight, "available_memory", lambda device: 2**34)  # 16 GiB, whatever this machine has
    with pytest.raises(ValueError, match=f"^{name} needs at least .* GiB to build .* but 16 GiB is available; ask "
                                         "for a smaller graph"):
        build()


def test_a_feature_count_that_is_no_int_is_refused_before_any_product():
    with pytest.raises(TypeError, match="num_features must be an int, got str"):
        ring_graph(10, num_features="16")


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_class_means_are_snr_apart_and_centred(num_classes: int) -> None:
    snr = 1.7
    means = synthetic._class_means(num_classes, 8, snr)
    for a, b in itertools.combinations(range(num_classes), 2):
        assert math.isclose(float((means[a] - means[b]).norm()), snr, rel_tol=1e-6)
    assert torch.allclose(means.sum(0), torch.zeros(8), atol=1e-6)
    assert torch.all(means[:, num_classes:] == 0)
    if num_classes == 2:  # +-mu with ||mu|| = snr / 2
        assert torch.allclose(means[0], -means[1]) and math.isclose(float(means[0].norm()), snr / 2, rel_tol=1e-6)


def test_csbm_features_have_the_documented_means_and_unit_noise() -> None:
    snr = 2.0
    data = contextual_sbm(4000, num_classes=2, num_features=4, snr=snr, seed=3)
    mean0, mean1 = data.x[data.y == 0].mean(0), data.x[data.y == 1].mean(0)
    assert abs(float((mean0 - mean1).norm()) - snr) < 0.15
    assert float((mean0 + mean1).norm()) < 0.15
    noise = data.x - torch.where(data.y.unsqueeze(1) == 0, mean0, mean1)
    assert torch.allclose(noise.std(0), torch.ones(4), atol=0.05)
    # Projecting on m_0 - m_1 is Bayes-optimal here; its error is Phi(-snr/2).
    true_means = synthetic._class_means(2, 4, snr)
    prediction = (data.x @ (true_means[1] - true_means[0]) > 0).long()
    bayes_error = 0.5 * math.erfc(snr / 2 / math.sqrt(2))
    assert abs(float((prediction != data.y).float().mean()) - bayes_error) < 0.025
    no_signal = contextual_sbm(4000, num_classes=2, num_features=4, snr=0.0, seed=3)
    assert float(no_signal.x[no_signal.y == 0].mean(0).norm()) < 0.1


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"homophily": -0.1}, r"homophily must lie in \[0, 1\]"),
        ({"homophily": 1.1}, r"homophily must lie in \[0, 1\]"),
        ({"num_classes": 1}, r"num_classes must be an integer >= 2"),
        ({"num_nodes": 3}, r"num_nodes must be an integer >= 4"),
        ({"num_features": 1}, r"num_features must be an integer >= 2"),
        ({"snr": -1.0}, r"snr must be a finite number >= 0"),
        ({"avg_degree": -1.0}, r"avg_degree must be a finite number >= 0"),
        ({"num_nodes": 10, "avg_degree": 9.0, "homophily": 1.0}, r"avg_degree=9.0 is too large"),
        ({"train_frac": 0.8, "val_frac": 0.3}, r"must be <= 1"),
        ({"num_splits": 0}, r"num_splits must be an integer >= 1"),
    ],
)
def test_csbm_bad_input(kwargs: dict, pattern: str) -> None:
    arguments = {"num_nodes": 100, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        contextual_sbm(**arguments)


def test_bad_seed_and_sizes() -> None:
    with pytest.raises(TypeError, match="seed"):
        ring_graph(5, seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        ring_graph(5, seed=True)
    with pytest.raises(ValueError, match=r"n must be an integer >= 3"):
        ring_graph(2)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
        path_graph(0)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
        complete_bipartite(0)
    with pytest.raises(ValueError, match=r"rows must be an integer >= 3"):
        grid_graph(2, 4, periodic=True)
    with pytest.raises(ValueError, match=r"cols must be an integer >= 1"):
        grid_graph(2, 0)
    with pytest.raises(ValueError, match=r"num_features must be an integer >= 2"):
        complete_bipartite(3, num_features=1, snr=1.0)


# --------------------------------------------------------------------------------------------------
# deterministic graphs
# --------------------------------------------------------------------------------------------------


def _degrees(data: Data) -> torch.Tensor:
    return torch.bincount(data.edge_index[0], minlength=data.num_nodes)


def test_complete_bipartite_structure() -> None:
    n = 5
    data = complete_bipartite(n)
    assert data.num_nodes == 2 * n and data.edge_index.size(1) == 2 * n * n
    assert torch.equal(data.y, torch.tensor([0] * n + [1] * n))
    assert torch.equal(_degrees(data), torch.full((2 * n,), n))
    assert edge_homophily(data.edge_index, data.y) == 0.0
    assert data.x.shape == (2 * n, 2)
    source, target = data.edge_index
    assert torch.all(data.y[source] != data.y[target])


def test_ring_path_grid_structure() -> None:
    ring = ring_graph(10)
    assert ring.edge_index.size(1) == 20 and torch.all(_degrees(ring) == 2)
    path = path_graph(10)
    assert path.edge_index.size(1) == 18 and _degrees(path).tolist() == [1] + [2] * 8 + [1]
    assert path_graph(1).edge_index.shape == (2, 0)
    grid = grid_graph(3, 4)
    assert grid.edge_index.size(1) == 2 * (3 * 3 + 4 * 2)
    assert sorted(set(_degrees(grid).tolist())) == [2, 3, 4]
    torus = grid_graph(3, 4, periodic=True)
    assert torus.edge_index.size(1) == 4 * 12 and torch.all(_degrees(torus) == 4)
    for data in (ring, path, grid, torus):
        assert torch.all(data.y == 0)


def test_edge_homophily_helper() -> None:
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    assert edge_homophily(edge_index, torch.tensor([0, 0, 1])) == 0.5
    assert edge_homophily(edge_index, torch.tensor([0, 0, 0])) == 1.0
    with pytest.raises(ValueError, match="without edges"):
        edge_homophily(torch.empty(2, 0, dtype=torch.long), torch.tensor([0]))


def test_sbm_edges_are_the_contextual_sbms_edges_without_features():
    from continuous_gnn.data.synthetic import sbm_edges

    data = contextual_sbm(300, 3, 0.8, 6.0, 5, seed=7)
    edges, y = sbm_edges(300, 3, 0.8, 6.0, seed=7)
    assert torch.equal(edges, data.edge_index) and torch.equal(y, data.y)
    with pytest.raises(ValueError, match="homophily"):
        sbm_edges(300, 3, 1.5)
