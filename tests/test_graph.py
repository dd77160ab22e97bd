"""Graph: the normalised operator against dense references, its spectrum, variants and input validation."""

from __future__ import annotations

import pytest
import torch
from helpers import DTYPE, dense_adjacency, gcn_dense, random_edge_index, random_features, random_graph
from torch_geometric.data import Data

import continuous_gnn as cg
from continuous_gnn import Graph
from continuous_gnn.energies import ChannelDirichletEnergy, DirichletEnergy, GRAFFEnergy


@pytest.mark.parametrize("seed", range(5))
def test_sym_operator_equals_dense_gcn_normalisation(seed):
    n = 7 + seed
    edge_index = random_edge_index(n, 0.35, seed)
    graph = Graph.from_edge_index(edge_index, n, dtype=DTYPE)
    expected = gcn_dense(edge_index, n)
    torch.testing.assert_close(graph.to_dense(), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(graph.degree, dense_adjacency(edge_index, n).sum(1) + 1, rtol=0, atol=0)
    assert graph.symmetric and graph.self_loops and graph.normalization == "sym"
    # The sparse product is the dense product.
    x = random_features(n, 3, seed)
    torch.testing.assert_close(graph.propagate(x), expected @ x, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(graph.laplacian(x), x - expected @ x, rtol=1e-14, atol=1e-14)


def test_weighted_operator_equals_dense():
    n = 6
    edge_index = random_edge_index(n, 0.5, 3)
    g = torch.Generator().manual_seed(0)
    half = torch.rand(n, n, generator=g, dtype=DTYPE) + 0.1
    sym = half + half.T
    weight = sym[edge_index[0], edge_index[1]]
    graph = Graph.from_edge_index(edge_index, n, weight, dtype=DTYPE)
    torch.testing.assert_close(graph.to_dense(), gcn_dense(edge_index, n, weight), rtol=0, atol=1e-15)


def test_duplicate_edges_sum_like_weights():
    n = 5
    edge_index = random_edge_index(n, 0.4, 0)
    doubled = torch.cat([edge_index, edge_index], dim=1)
    weight = torch.full((edge_index.size(1),), 2.0, dtype=DTYPE)
    merged = Graph.from_edge_index(doubled, n, dtype=DTYPE)
    torch.testing.assert_close(merged.to_dense(), Graph.from_edge_index(edge_index, n, weight, dtype=DTYPE).to_dense(),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(merged.to_dense(), gcn_dense(doubled, n), rtol=0, atol=1e-15)


def test_without_self_loops():
    n = 8
    edge_index = random_edge_index(n, 0.3, 1)
    graph = Graph.from_edge_index(edge_index, n, self_loops=False, dtype=DTYPE)
    a = dense_adjacency(edge_index, n)
    d = a.sum(1)
    torch.testing.assert_close(graph.to_dense(), a / torch.sqrt(d[:, None] * d[None, :]), rtol=0, atol=1e-15)
    assert torch.all(graph.to_dense().diagonal() == 0)
    torch.testing.assert_close(graph.degree, d)


def test_random_walk_normalisation():
    n = 9
    edge_index = random_edge_index(n, 0.3, 2)
    graph = Graph.from_edge_index(edge_index, n, normalization="rw", dtype=DTYPE)
    a = dense_adjacency(edge_index, n) + torch.eye(n, dtype=DTYPE)
    dense = graph.to_dense()
    torch.testing.assert_close(dense, a / a.sum(1, keepdim=True), rtol=0, atol=1e-15)
    torch.testing.assert_close(dense.sum(1), torch.ones(n, dtype=DTYPE), rtol=0, atol=1e-14)
    assert not graph.symmetric
    assert not torch.allclose(dense, dense.T)


def test_from_data_matches_from_edge_index():
    n = 7
    edge_index = random_edge_index(n, 0.4, 4)
    data = Data(edge_index=edge_index, num_nodes=n)
    graph = Graph.from_data(data, dtype=DTYPE)
    torch.testing.assert_close(graph.to_dense(), gcn_dense(edge_index, n), rtol=0, atol=1e-15)
    # An isolated last node only exists through data.num_nodes.
    data = Data(edge_index=edge_index, num_nodes=n + 1)
    graph = Graph.from_data(data, dtype=DTYPE)
    assert graph.num_nodes == n + 1
    assert graph.to_dense()[n, n] == 1.0
    # Edge weights stored on the Data object are used.
    weight = torch.full((edge_index.size(1),), 2.0, dtype=DTYPE)
    graph = Graph.from_data(Data(edge_index=edge_index, edge_weight=weight, num_nodes=n), dtype=DTYPE)
    torch.testing.assert_close(graph.to_dense(), gcn_dense(edge_index, n, weight), rtol=0, atol=1e-15)
    with pytest.raises(TypeError, match="edge_index attribute"):
        Graph.from_data(object())


@pytest.mark.parametrize("seed", range(5))
def test_laplacian_spectrum_and_kernel(seed):
    n = 6 + 2 * seed
    graph = random_graph(n, 0.3, seed)
    lap = torch.eye(n, dtype=DTYPE) - graph.to_dense()
    torch.testing.assert_close(lap, lap.T, rtol=0, atol=0)
    evals, evecs = torch.linalg.eigh(lap)
    assert evals.min() > -1e-12
    assert evals.max() < 2.0
    # The graph is connected: a simple zero eigenvalue whose eigenvector is ∝ √d̃, not the constant vector.
    assert abs(evals[0]) < 1e-12 and evals[1] > 1e-6
    root = graph.degree.sqrt()
    cosine = (evecs[:, 0] @ root).abs() / root.norm()
    assert abs(cosine - 1) < 1e-12
    torch.testing.assert_close(graph.laplacian(root[:, None]), torch.zeros(n, 1, dtype=DTYPE), rtol=0, atol=1e-14)
    assert graph.laplacian(torch.ones(n, 1, dtype=DTYPE)).abs().max() > 1e-3  # irregular degrees


def test_bipartite_top_eigenvalue():
    # K_{m,m} with self-loops: ρ_Δ = 2m/(m+1) (graff-notes §12).
    m = 4
    left, right = torch.arange(m), torch.arange(m, 2 * m)
    row = left.repeat_interleave(m)
    col = right.repeat(m)
    edge_index = torch.stack([torch.cat([row, col]), torch.cat([col, row])])
    graph = Graph.from_edge_index(edge_index, 2 * m, dtype=DTYPE)
    rho = torch.linalg.eigvalsh(torch.eye(2 * m, dtype=DTYPE) - graph.to_dense()).max()
    assert abs(float(rho) - 2 * m / (m + 1)) < 1e-12


def test_bad_edge_index_type_and_shape():
    with pytest.raises(TypeError, match="integer node indices"):
        Graph.from_edge_index(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(TypeError, match=r"shape \(2, num_edges\)"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0], [0, 0]]))
    with pytest.raises(TypeError, match=r"shape \(2, num_edges\)"):
        Graph.from_edge_index(torch.tensor([0, 1, 1, 0]))
    with pytest.raises(TypeError, match=r"shape \(2, num_edges\)"):
        Graph.from_edge_index([[0, 1], [1, 0]])


def test_bad_edge_index_values():
    with pytest.raises(ValueError, match="refers to node 3, but num_nodes is 3"):
        Graph.from_edge_index(torch.tensor([[0, 3], [3, 0]]), num_nodes=3)
    with pytest.raises(ValueError, match="refers to node -1, but num_nodes is 3"):
        Graph.from_edge_index(torch.tensor([[0, -1], [-1, 0]]), num_nodes=3)
    with pytest.raises(ValueError, match="non-negative"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="edge_weight must be a tensor of shape"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="unknown normalization 'mean'"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), normalization="mean")
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), dtype=torch.int64)
    with pytest.raises(ValueError, match="nodes with zero degree.*keep self_loops=True"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), num_nodes=3, self_loops=False)


def test_directed_graph_needs_symmetrize():
    directed = torch.tensor([[0, 1, 2], [1, 2, 0]])
    with pytest.raises(ValueError, match="the graph is directed.*to_undirected.*Graph.from_edge_index"):
        Graph.from_edge_index(directed, 3)
    graph = Graph.from_edge_index(directed, 3, symmetrize=True, dtype=DTYPE)
    undirected = torch.cat([directed, directed.flip(0)], dim=1)
    torch.testing.assert_close(graph.to_dense(), gcn_dense(undirected, 3), rtol=0, atol=1e-15)
    # Asymmetric weights on a symmetric pattern are directed too, and named as such.
    with pytest.raises(ValueError, match=r"the edge weights are not symmetric.*symmetrize=True"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("weights", [(1.0, 3.0), (3.0, 1.0)])
def test_symmetrize_keeps_the_larger_weight_of_an_edge_stored_both_ways(weights):
    # 0→1 and 1→0 with different weights (in either order) plus the undirected 1-2: both ways get weight 3.
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    graph = Graph.from_edge_index(edge_index, 3, torch.tensor([*weights, 1.0, 1.0], dtype=DTYPE), symmetrize=True,
                                  dtype=DTYPE)
    expected_weight = torch.tensor([3.0, 3.0, 1.0, 1.0], dtype=DTYPE)
    torch.testing.assert_close(graph.to_dense(), gcn_dense(edge_index, 3, expected_weight), rtol=0, atol=1e-15)
    # By hand: Ã = [[1, 3, 0], [3, 1, 1], [0, 1, 1]], d̃ = (4, 5, 2).
    torch.testing.assert_close(graph.degree, torch.tensor([4.0, 5.0, 2.0], dtype=DTYPE), rtol=0, atol=0)
    torch.testing.assert_close(graph.to_dense()[0, 1], torch.tensor(3 / 20**0.5, dtype=DTYPE), rtol=1e-15, atol=0)
    torch.testing.assert_close(graph.to_dense()[1, 0], graph.to_dense()[0, 1], rtol=0, atol=0)


def test_self_loops_keep_an_existing_self_loop_weight():
    # A loop of weight 2.5 on node 0 stays 2.5 (not 2.5 + 1, not 1); the other nodes get the added 1.
    edge_index = torch.tensor([[0, 0, 1, 1, 2], [0, 1, 0, 2, 1]])
    weight = torch.tensor([2.5, 1.0, 1.0, 2.0, 2.0], dtype=DTYPE)
    graph = Graph.from_edge_index(edge_index, 3, weight, dtype=DTYPE)
    a_tilde = torch.tensor([[2.5, 1.0, 0.0], [1.0, 1.0, 2.0], [0.0, 2.0, 1.0]], dtype=DTYPE)
    degree = torch.tensor([3.5, 4.0, 3.0], dtype=DTYPE)
    torch.testing.assert_close(graph.degree, degree, rtol=0, atol=0)
    expected = a_tilde / torch.sqrt(degree[:, None] * degree[None, :])
    torch.testing.assert_close(graph.to_dense(), expected, rtol=0, atol=1e-15)
    assert float(graph.to_dense()[0, 0]) == pytest.approx(2.5 / 3.5, abs=1e-15)


def test_propagate_checks_shape_and_dtype():
    graph = random_graph(5, 0.3, 0)
    with pytest.raises(ValueError, match=r"shape \(5, channels\)"):
        graph.propagate(torch.zeros(4, 2, dtype=DTYPE))
    with pytest.raises(TypeError, match="torch.float32 but the graph operator is torch.float64"):
        graph.propagate(torch.zeros(5, 2))


def test_to_dtype_keeps_operator():
    graph = random_graph(6, 0.3, 0)
    single = graph.to(dtype=torch.float32)
    assert single.dtype == torch.float32 and single.degree.dtype == torch.float32
    torch.testing.assert_close(single.to_dense(), graph.to_dense().float())
    assert single.edge_index.dtype == torch.long


@pytest.mark.parametrize(
    "energy", [DirichletEnergy(), ChannelDirichletEnergy(3), GRAFFEnergy(3)], ids=lambda e: type(e).__name__
)
def test_energies_refuse_random_walk_graph(energy):
    graph = random_graph(5, 0.3, 0, dtype=torch.float32, normalization="rw")
    with pytest.raises(ValueError, match="needs a symmetric operator.*normalization='sym'"):
        energy.check_graph(graph)
    with pytest.raises(ValueError, match="normalization='rw'"):
        cg.GradientFlow(energy).bind(graph)
    with pytest.raises(TypeError, match="Graph.from_data"):
        energy.check_graph(torch.zeros(2, 2))


def test_propagate_gradients_match_the_dense_operator_to_second_order():
    # The symmetric operator has a custom backward (Āᵀ G = Ā G); first and second derivatives must be exact.
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 0, 3], [1, 0, 2, 1, 3, 2, 3, 0]])
    graph = Graph.from_edge_index(edge_index, 4, dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(graph.propagate, (x,))
    assert torch.autograd.gradgradcheck(lambda h: graph.propagate(h).pow(2), (x,))
    dense = graph.to_dense()
    (grad,) = torch.autograd.grad(graph.propagate(x).pow(3).sum(), x)
    (expected,) = torch.autograd.grad((dense @ x).pow(3).sum(), x)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normalization", ["sym", "rw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_propagate_gives_the_bits_of_the_plain_sparse_product(normalization, dtype):
    # propagate writes the product into a fresh tensor with addmm (beta = 0) instead of `@`: the same kernel, so
    # the same bits, forward and backward; the fresh tensor's contents (here NaN) are never read.
    graph = random_graph(300, 0.05, 0, dtype=dtype, normalization=normalization)
    x = torch.randn(300, 7, dtype=dtype, requires_grad=True)
    upstream = torch.randn(300, 7, dtype=dtype)
    (graph.propagate(x) * upstream).sum().backward()
    expected = graph.operator @ x.detach()
    with torch.no_grad():
        assert torch.equal(graph.propagate(x), expected)
    if normalization == "sym":  # the symmetric product's own backward (rw's is autograd's)
        assert torch.equal(x.grad, graph.operator @ upstream)
    garbage = torch.full((300, 7), float("nan"), dtype=dtype)
    assert torch.equal(torch.addmm(garbage, graph.operator, x.detach(), beta=0, out=garbage), expected)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_edge_weights_are_refused(bad):
    with pytest.raises(ValueError, match="edge weights must be finite"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, torch.tensor([bad, bad]))


def test_num_nodes_and_dtype_types():
    edges = torch.tensor([[0, 1], [1, 0]])
    for bad in (3.0, "3", True):
        with pytest.raises(TypeError, match="num_nodes must be an integer"):
            Graph.from_edge_index(edges, bad)
    for dtype in (torch.float16, torch.bfloat16, "float64"):
        with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
            Graph.from_edge_index(edges, 2, dtype=dtype)
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        Graph.from_edge_index(edges, 2).to(dtype=torch.int64)


def test_zero_degree_and_empty_graphs_are_named_with_a_fix_that_applies():
    # Node 2's only edge is its own self-loop, of weight 0: keeping self-loops cannot help it.
    with pytest.raises(ValueError, match=r"zero degree \(e.g. \[2\]\).*positive weight"):
        Graph.from_edge_index(torch.tensor([[0, 1, 2], [1, 0, 2]]), 3, torch.tensor([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"zero degree \(e.g. \[2\]\).*keep self_loops=True"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 3, self_loops=False)
    with pytest.raises(ValueError, match="got num_nodes=0 .node features with no rows"):
        Graph.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="pass num_nodes for a graph without edges"):
        Graph.from_edge_index(torch.zeros(2, 0, dtype=torch.long))


def test_a_graph_deep_copies_into_an_independent_equal_graph():
    import copy

    graph = random_graph(9, 0.4, 5)
    _ = graph.pattern  # a cached property, rebuilt by the copy on demand
    copied = copy.deepcopy(graph)
    x = random_features(9, 3, 6)
    assert torch.equal(copied.propagate(x), graph.propagate(x)) and torch.equal(copied.to_dense(), graph.to_dense())
    assert copied.edge_index.data_ptr() != graph.edge_index.data_ptr()
    assert (copied.num_nodes, copied.normalization, copied.self_loops, copied.symmetric) == (
        graph.num_nodes, graph.normalization, graph.self_loops, graph.symmetric)
    pair = copy.deepcopy([graph, graph])
    assert pair[0] is pair[1]  # the memo keeps shared graphs shared
