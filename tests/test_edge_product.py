"""Products with changing edge values on a graph's pattern: they equal the dense products, and their custom
backward equals autograd's (first and second order) in float64."""

from __future__ import annotations

import pytest
import torch
from helpers import random_edge_index, random_features, random_graph

from continuous_gnn.edge_product import EdgePattern

DTYPE = torch.float64


def _dense(pattern: EdgePattern, values: torch.Tensor) -> torch.Tensor:
    dense = torch.zeros(pattern.num_nodes, pattern.num_nodes, dtype=values.dtype)
    return dense.index_put((pattern.row, pattern.col), values)


def test_pattern_is_the_graphs_edges_in_csr_order_with_reverses():
    graph = random_graph(9, 0.4, 1)
    pattern = graph.pattern
    assert graph.pattern is pattern  # built once per graph
    keys = pattern.row * 9 + pattern.col
    assert bool((keys[1:] > keys[:-1]).all())
    assert sorted(keys.tolist()) == sorted((graph.edge_index[0] * 9 + graph.edge_index[1]).tolist())
    assert torch.equal(pattern.row[pattern.reverse], pattern.col)
    assert torch.equal(pattern.col[pattern.reverse], pattern.row)
    assert torch.equal(pattern.crow[1:] - pattern.crow[:-1], torch.bincount(pattern.row, minlength=9))


def test_product_and_scores_equal_the_dense_forms():
    pattern = random_graph(10, 0.35, 2).pattern
    values = torch.rand(pattern.col.numel(), dtype=DTYPE)  # not symmetric: the transpose matters in backward
    x = random_features(10, 3, 3)
    torch.testing.assert_close(pattern.propagate(values, x), _dense(pattern, values) @ x)
    q, k = torch.randn(10, 2, 4, dtype=DTYPE), torch.randn(10, 2, 4, dtype=DTYPE)
    for h in range(2):
        expected = (q[:, h] @ k[:, h].T)[pattern.row, pattern.col]
        torch.testing.assert_close(pattern.edge_dot(q, k)[:, h], expected)


def test_backward_and_double_backward_match_autograd():
    pattern = random_graph(8, 0.4, 4).pattern
    values = torch.rand(pattern.col.numel(), dtype=DTYPE, requires_grad=True)
    x = random_features(8, 3, 5).requires_grad_()
    assert torch.autograd.gradcheck(pattern.propagate, (values, x))
    assert torch.autograd.gradgradcheck(pattern.propagate, (values, x))
    q = torch.randn(8, 2, 3, dtype=DTYPE, requires_grad=True)
    k = torch.randn(8, 2, 3, dtype=DTYPE, requires_grad=True)
    assert torch.autograd.gradcheck(pattern.edge_dot, (q, k))
    assert torch.autograd.gradgradcheck(pattern.edge_dot, (q, k))


def test_a_directed_pattern_and_wrong_shapes_are_refused():
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="not symmetric.*to_undirected"):
        EdgePattern.from_edge_index(edge_index, 3)
    # A duplicate edge: the backward's transpose pointed both copies at one, a wrong gradient without a word.
    with pytest.raises(ValueError, match="lists an edge twice; coalesce it first"):
        EdgePattern.from_edge_index(torch.tensor([[0, 1, 0, 1, 2, 1], [1, 0, 1, 0, 1, 2]]), 3)
    pattern3 = EdgePattern.from_edge_index(torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), 3)
    with pytest.raises(TypeError, match="values are torch.float32 but the features torch.float64"):
        pattern3.propagate(torch.ones(4), torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="no torch.float16 kernel on the CPU; use float32"):
        pattern3.propagate(torch.ones(4).half(), torch.ones(3, 2).half())
    pattern = EdgePattern.from_edge_index(random_edge_index(6, 0.5, 6), 6)
    with pytest.raises(ValueError, match=r"values must have shape"):
        pattern.propagate(torch.ones(3, dtype=DTYPE), torch.ones(6, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"features must have shape \(6, channels\)"):
        pattern.propagate(torch.ones(pattern.col.numel(), dtype=DTYPE), torch.ones(5, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="query and key"):
        pattern.edge_dot(torch.ones(6, 2, 3), torch.ones(6, 2, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_product_gives_the_bits_of_the_plain_csr_product(dtype):
    # The forward and the backward's Aᵀ G run addmm into a fresh tensor (beta = 0) instead of `@`: the same kernel.
    from continuous_gnn.edge_product import _csr

    pattern = random_graph(200, 0.05, 6).pattern
    values = torch.rand(pattern.col.numel(), dtype=dtype, requires_grad=True)
    x = torch.randn(200, 5, dtype=dtype, requires_grad=True)
    upstream = torch.randn(200, 5, dtype=dtype)
    out = pattern.propagate(values, x)
    out.backward(upstream)
    matrix = _csr(pattern.crow, pattern.col, values.detach(), 200)
    transposed = _csr(pattern.crow, pattern.col, values.detach()[pattern.reverse], 200)
    assert torch.equal(out, matrix @ x.detach())
    assert torch.equal(x.grad, transposed @ upstream)
