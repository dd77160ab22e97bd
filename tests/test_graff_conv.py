"""GRAFFConv: one Euler step of the GRAFF flow; L shared-weight layers are exactly Euler integration."""

from __future__ import annotations

import pytest
import torch
from helpers import DTYPE, QuarticEnergy, graff_energy, random_edge_index, random_features, random_graph

import continuous_gnn as cg
from continuous_gnn import Graph
from continuous_gnn.energies import DirichletEnergy, GRAFFEnergy
from continuous_gnn.nn import GRAFFConv


def stack(conv, x0, graph, layers):
    x = x0
    for _ in range(layers):
        x = conv(x, x0, graph)
    return x


def euler(conv, x0, graph, layers, activation=None):
    flow = cg.GradientFlow(conv.energy, activation)
    return cg.integrate(flow.bind(graph, x0), x0, layers * conv.step_size, method="euler",
                        step_size=conv.step_size)


@pytest.mark.parametrize("tau", [0.25, 0.5])
@pytest.mark.parametrize("layers", [1, 3, 8])
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("w", ["diag_dom", "diag", "sum"])
def test_residual_stack_is_euler_bitwise_float64(tau, layers, activation, w):
    graph = random_graph(8, 0.3, layers)
    conv = GRAFFConv(4, step_size=tau, energy=graff_energy(4, w=w, seed=layers), activation=activation)
    x0 = random_features(8, 4, 1)
    sol = euler(conv, x0, graph, layers, activation)
    assert sol.stats.steps_accepted == layers and sol.stats.nfe_forward == layers
    assert torch.equal(stack(conv, x0, graph, layers), sol.final)


def test_residual_stack_is_euler_for_other_energies():
    graph = random_graph(7, 0.3, 0)
    x0 = random_features(7, 3, 0)
    for energy in (DirichletEnergy(), QuarticEnergy(3, seed=1)):
        conv = GRAFFConv(3, step_size=0.25, energy=energy)
        assert torch.equal(stack(conv, x0, graph, 6), euler(conv, x0, graph, 6).final)


@pytest.mark.parametrize("tau", [0.1, 0.3])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_residual_stack_is_euler_float32(tau, activation):
    graph = random_graph(8, 0.3, 2, dtype=torch.float32)
    energy = graff_energy(4, seed=2).float()
    conv = GRAFFConv(4, step_size=tau, energy=energy, activation=activation)
    x0 = random_features(8, 4, 3, dtype=torch.float32)
    layers = 7
    sol = euler(conv, x0, graph, layers, activation)
    assert sol.final.dtype == torch.float32
    assert sol.stats.steps_accepted == layers
    torch.testing.assert_close(stack(conv, x0, graph, layers), sol.final, rtol=0, atol=1e-6)


def test_residual_stack_differs_from_a_wrong_step_count():
    # The bitwise equality above is informative: one layer more or less is far off.
    graph = random_graph(8, 0.3, 0)
    conv = GRAFFConv(4, step_size=0.5, energy=graff_energy(4, seed=0))
    x0 = random_features(8, 4, 0)
    final = euler(conv, x0, graph, 4).final
    for layers in (3, 5):
        assert (stack(conv, x0, graph, layers) - final).abs().max() > 1e-3


@pytest.mark.parametrize("w, omega, source",
                         [("diag_dom", "diag", True), ("diag", "const", False), ("prod", "zero", True)])
def test_one_layer_formula(w, omega, source):
    # X' = X + τ(−XΩ + ĀXW + βX(0)) with dense matrices.
    graph = random_graph(6, 0.4, 1)
    energy = graff_energy(3, w=w, omega=omega, source=source, seed=4)
    conv = GRAFFConv(3, step_size=0.3, energy=energy)
    x, x0 = random_features(6, 3, 1), random_features(6, 3, 2)
    with torch.no_grad():
        omega_m, w_m = energy.Omega(x), energy.W()
        velocity = -x @ omega_m + graph.to_dense() @ x @ w_m + (energy.beta * x0 if source else 0)
        torch.testing.assert_close(conv(x, x0, graph), x + 0.3 * velocity, rtol=1e-13, atol=1e-13)
        relu = GRAFFConv(3, step_size=0.3, energy=energy, activation="relu")
        torch.testing.assert_close(relu(x, x0, graph), x + 0.3 * velocity.clamp_min(0), rtol=1e-13, atol=1e-13)


def test_edge_index_input_equals_graph_input():
    n = 7
    edge_index = random_edge_index(n, 0.3, 5)
    graph = Graph.from_edge_index(edge_index, n, dtype=DTYPE)
    conv = GRAFFConv(3, step_size=0.5, energy=graff_energy(3, seed=5))
    x, x0 = random_features(n, 3, 1), random_features(n, 3, 2)
    assert torch.equal(conv(x, x0, edge_index), conv(x, x0, graph))
    sym = torch.full((edge_index.size(1),), 2.0, dtype=DTYPE)
    sym[edge_index[0] + edge_index[1] == 3] = 0.5  # symmetric: depends on the unordered pair only
    weighted = Graph.from_edge_index(edge_index, n, sym, dtype=DTYPE)
    assert torch.equal(conv(x, x0, edge_index, edge_weight=sym), conv(x, x0, weighted))


def test_cached_graph_is_reused_for_the_same_graph_and_never_stale(monkeypatch):
    n = 6
    edge_index = random_edge_index(n, 0.3, 0)
    other = random_edge_index(n, 0.8, 1)
    conv = GRAFFConv(3, step_size=0.5, energy=graff_energy(3, seed=0), cached=True)
    uncached = GRAFFConv(3, step_size=0.5, energy=conv.energy)
    x, x0 = random_features(n, 3, 0), random_features(n, 3, 1)
    built = []
    original = Graph.from_edge_index
    monkeypatch.setattr(Graph, "from_edge_index", lambda *a, **k: built.append(1) or original(*a, **k))
    first = conv(x, x0, edge_index)
    assert torch.equal(conv(x, x0, edge_index), first) and len(built) == 1  # the same graph: built once
    # another graph is another operator (GCNConv's cache would silently keep the first one)
    assert torch.equal(conv(x, x0, other), uncached(x, x0, other))
    assert not torch.equal(conv(x, x0, other), first)
    # the same tensor changed in place, and another dtype, are built afresh too
    changed = edge_index.clone()
    conv(x, x0, changed)
    relabelled = torch.tensor([1, 2, 3, 4, 5, 0])[edge_index]
    assert not torch.equal(uncached(x, x0, relabelled), first)
    changed.copy_(relabelled)
    assert torch.equal(conv(x, x0, changed), uncached(x, x0, relabelled))
    conv.float()  # the energy is shared: uncached is float32 now as well
    assert torch.equal(conv(x.float(), x0.float(), edge_index), uncached(x.float(), x0.float(), edge_index))
    before = len(built)
    conv.reset_parameters()
    conv(x.float(), x0.float(), edge_index)
    assert len(built) == before + 1  # reset_parameters clears the cache


def test_default_energy_and_kwargs():
    conv = GRAFFConv(5, step_size=0.5, w="diag", omega="zero", source=False)
    assert isinstance(conv.energy, GRAFFEnergy)
    assert conv.energy.W.style == "diag" and conv.energy.Omega.style == "zero" and conv.energy.beta is None
    assert sum(p.numel() for p in conv.parameters()) == 5
    assert "step_size=0.5" in repr(conv) and "'identity'" in repr(conv)
    with pytest.raises(ValueError, match="either an energy or GRAFFEnergy keyword arguments"):
        GRAFFConv(3, energy=DirichletEnergy(), w="diag")
    with pytest.raises(ValueError, match="step_size must be positive"):
        GRAFFConv(3, step_size=0.0)


def test_gradients_through_stack_equal_gradients_through_euler():
    graph = random_graph(6, 0.4, 3)
    energy = graff_energy(3, seed=3)
    conv = GRAFFConv(3, step_size=0.25, energy=energy)
    x0 = random_features(6, 3, 4).requires_grad_()
    weights = random_features(6, 3, 5)
    leaves = [x0, *energy.parameters()]
    by_stack = torch.autograd.grad((stack(conv, x0, graph, 5) * weights).sum(), leaves)
    by_euler = torch.autograd.grad((euler(conv, x0, graph, 5).final * weights).sum(), leaves)
    for a, b in zip(by_stack, by_euler):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
