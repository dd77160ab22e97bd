"""Node orders for locality: permutations that keep every output, group communities, narrow the band."""

from __future__ import annotations

import sys

import pytest
import torch

from continuous_gnn import Graph
from continuous_gnn.data import NodeDataset
from continuous_gnn.data.synthetic import contextual_sbm, sbm_edges
from continuous_gnn.node_order import NodeOrder, locality_order, metis_parts_for, neighbour_lists
from continuous_gnn.training import RunConfig, run
from continuous_gnn.training.batches import MissingPackageError


def _bandwidth(edge_index: torch.Tensor) -> int:
    return int((edge_index[0] - edge_index[1]).abs().max())


@pytest.mark.parametrize("method", ["metis", "rcm"])
def test_an_order_relabels_the_graph_and_restores_every_per_node_output(method):
    data = contextual_sbm(300, num_classes=3, homophily=0.8, avg_degree=6.0, num_features=5, seed=0, num_splits=2)
    order = locality_order(data.edge_index, data.num_nodes, method)
    assert torch.equal(order.order.sort().values, torch.arange(300))
    ordered = order.apply(data)
    for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(order.restore(ordered[key]), data[key])
    # The relabelled operator applied to the relabelled rows is the original product, relabelled.
    graph = Graph.from_edge_index(data.edge_index, 300, dtype=torch.float64)
    relabelled = Graph.from_edge_index(ordered.edge_index, 300, dtype=torch.float64)
    x = data.x.double()
    torch.testing.assert_close(order.restore(relabelled.propagate(ordered.x.double())), graph.propagate(x))


def test_the_metis_order_numbers_each_community_together():
    edges, labels = sbm_edges(2000, 4, 0.97, 10.0, seed=1)  # labels are drawn at random: communities interleave
    assert float((labels[1:] == labels[:-1]).float().mean()) < 0.4
    order = locality_order(edges, 2000, "metis", parts=4)
    ordered = labels[order.order]
    assert float((ordered[1:] == ordered[:-1]).float().mean()) > 0.95


def test_the_rcm_order_narrows_the_band_of_a_shuffled_grid():
    side = 30
    ids = torch.arange(side * side).view(side, side)
    edges = torch.cat([torch.stack([ids[:, :-1].flatten(), ids[:, 1:].flatten()]),
                       torch.stack([ids[:-1].flatten(), ids[1:].flatten()])], dim=1)
    shuffled = NodeOrder(torch.randperm(side * side, generator=torch.Generator().manual_seed(0)))
    edges = shuffled.inverse[edges]
    order = locality_order(edges, side * side, "rcm")
    assert _bandwidth(order.inverse[edges]) <= 2 * side < _bandwidth(edges) / 10


def test_neighbour_lists_hold_both_directions_of_every_edge_once_without_self_loops():
    from torch_geometric.utils import to_undirected

    generator = torch.Generator().manual_seed(0)
    # One direction only, repeated edges, self-loops and an isolated node (the last): the CSR of PyG's undirected
    # form with the self-loops dropped.
    edges = torch.randint(0, 199, (2, 1500), generator=generator).to(torch.int32)
    edges = torch.cat([edges, edges[:, :100], torch.arange(20, dtype=torch.int32).repeat(2, 1)], dim=1)
    starts, neighbours = neighbour_lists(edges, 200)
    row, col = to_undirected(edges.long(), num_nodes=200)
    row, col = row[row != col], col[row != col]
    assert torch.equal(neighbours, col)
    assert torch.equal(starts, torch.cat([torch.zeros(1, dtype=torch.long),
                                          torch.bincount(row, minlength=200).cumsum(0)]))
    assert starts[-2] == starts[-1]


def test_metis_clusters_hold_about_32k_nodes_within_bounds():
    assert [metis_parts_for(n) for n in (10, 100_000, 1_000_000, 10**8)] == [2, 4, 31, 256]


def test_a_run_with_a_node_order_scores_the_same_nodes():
    data = contextual_sbm(240, num_classes=3, homophily=0.85, avg_degree=6.0, num_features=12, snr=2.0, seed=3)
    dataset = NodeDataset(name="csbm", data=data, num_classes=3, num_splits=1, metric="accuracy", homophilous=True)
    # Without dropout nothing random depends on the order, so the metrics agree to rounding.
    base = dict(hidden=8, time=2.0, step_size=0.5, lr=0.02, dropout=0.0, input_dropout=0.0, epochs=15, seed=4)
    results = {order: run(RunConfig(node_order=order, **base), dataset).splits[0] for order in ("none", "metis", "rcm")}
    for order in ("metis", "rcm"):
        assert results[order].best_epoch == results["none"].best_epoch
        assert results[order].test_metric == pytest.approx(results["none"].test_metric, abs=1e-6)
        assert results[order].val_metric == pytest.approx(results["none"].val_metric, abs=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda e: locality_order(e, 50, "degree"), "unknown node order 'degree'; choose one of rcm, metis"),
    (lambda e: locality_order(e, 50, "metis", parts=51), "parts must be between 2 and the 50 nodes"),
    (lambda e: locality_order(e, 40, "rcm"), "edge_index names nodes 0..49, outside 0..39; pass the graph's num_nodes"),
    (lambda e: locality_order(e, 0, "rcm"), "num_nodes must be a positive integer, got 0"),
    (lambda e: NodeOrder(torch.tensor([0, 0, 1])), "must be a permutation"),
    (lambda e: NodeOrder(torch.arange(3)).restore(torch.zeros(4, 2)), "expected 3 rows (one per node), got 4"),
])
def test_bad_orders_are_value_errors_naming_the_problem(call, message):
    edges, _ = sbm_edges(50, 2, 0.8, 4.0, seed=0)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(edges)


def test_the_metis_order_without_pymetis_names_the_install(monkeypatch):
    from continuous_gnn.training.build import apply_node_order

    monkeypatch.setitem(sys.modules, "pymetis", None)
    edges, _ = sbm_edges(50, 2, 0.8, 4.0, seed=0)
    with pytest.raises(ImportError, match="pip install pymetis"):
        locality_order(edges, 50, "metis")
    data = contextual_sbm(50, num_classes=2, homophily=0.8, avg_degree=4.0, num_features=3, seed=0)
    dataset = NodeDataset(name="csbm", data=data, num_classes=2, num_splits=1, metric="accuracy", homophilous=True)
    with pytest.raises(MissingPackageError, match="node order 'rcm' needs nothing extra"):
        apply_node_order(RunConfig(node_order="metis"), dataset)
    assert apply_node_order(RunConfig(node_order="rcm"), dataset).data.num_nodes == 50
