"""Bad input to the Python API: a clear ValueError or TypeError naming the problem, never a wrong answer."""

from __future__ import annotations

import pytest
import torch

from continuous_gnn import ContinuousGNN, Graph
from continuous_gnn.energies import AllenCahnEnergy, AttentionDirichletEnergy, GRAFFEnergy
from continuous_gnn.fields import AttentionDiffusion, GradientFlow, SecondOrderFlow
from continuous_gnn.nn import FlowConv, GRAFFConv
from continuous_gnn.ode.regularizers import integrate_regularized

EDGES = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])


def test_edge_weights_that_overflow_the_graphs_dtype_are_refused():
    with pytest.raises(ValueError, match=r"edge weights overflow torch.float32 .*pass dtype=torch.float64"):
        Graph.from_edge_index(EDGES, 3, torch.tensor([1e39, 1e39, 1.0, 1.0], dtype=torch.float64))
    # Each weight fits, but node 1's degree (their sum) does not: its row of the operator would be zeros.
    with pytest.raises(ValueError, match=r"a node's degree .* overflows torch.float32"):
        Graph.from_edge_index(EDGES, 3, torch.full((4,), 3e38))
    graph = Graph.from_edge_index(EDGES, 3, torch.full((4,), 3e38), dtype=torch.float64)
    assert bool(torch.isfinite(graph.edge_weight).all())


@pytest.mark.parametrize("build, name", [
    (lambda: Graph.from_edge_index(EDGES, 3, self_loops="no"), "self_loops"),
    (lambda: Graph.from_edge_index(EDGES, 3, symmetrize="no"), "symmetrize"),
    (lambda: GRAFFEnergy(4, source="no"), "source"),
    (lambda: GRAFFEnergy(4, w_learnable="no"), "w_learnable"),
    (lambda: GRAFFEnergy(4, allow_asymmetric=1), "allow_asymmetric"),
    (lambda: AllenCahnEnergy(4, learnable="no"), "learnable"),
    (lambda: AttentionDirichletEnergy(4, rate="no"), "rate"),
    (lambda: AttentionDiffusion(4, source="no"), "source"),
    (lambda: GradientFlow(GRAFFEnergy(4), normalize="no"), "normalize"),
    (lambda: SecondOrderFlow(GRAFFEnergy(4), learnable="no"), "learnable"),
    (lambda: ContinuousGNN(3, 4, 2, GRAFFEnergy(4), normalize_field="no"), "normalize_field"),
    (lambda: ContinuousGNN(3, 4, 2, GRAFFEnergy(4), detach_source="no"), "detach_source"),
    (lambda: GRAFFConv(4, cached="no"), "cached"),
    (lambda: FlowConv(GRAFFEnergy(4), cached=1), "cached"),
    (lambda: integrate_regularized(lambda t, x: -x, torch.ones(2), 1.0, kinetic="no"), "kinetic"),
])
def test_a_flag_that_is_not_a_bool_is_refused(build, name):
    # "no" is a truthy string: taken as it is, it would turn the option on.
    with pytest.raises(TypeError, match=f"{name} must be True or False, got"):
        build()


def test_a_graff_layer_refuses_an_energy_of_another_width():
    with pytest.raises(ValueError, match=r"the energy has 4 channels but channels=8; build it with 8 channels"):
        GRAFFConv(8, energy=GRAFFEnergy(4))


def test_a_regulariser_probe_must_be_finite():
    probe = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="probe must be finite"):
        integrate_regularized(lambda t, x: -x, torch.ones(2), 1.0, jacobian=True, probe=probe)
