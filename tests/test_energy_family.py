"""The GRAND family and its kin: closed-form gradients, energy decrease along the flows, the stated property of
each non-gradient field, adjoint gradients of the attention and the memory of learnable edge values."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import graff_energy, random_features, random_graph
from torch import nn

import continuous_gnn as cg
from continuous_gnn.data import contextual_sbm
from continuous_gnn.diagnostics import dirichlet_energy
from continuous_gnn.energies import (
    AllenCahnEnergy,
    AttentionDirichletEnergy,
    AttentionGraph,
    DirichletEnergy,
    EdgeAttention,
    Energy,
    EnergySum,
    GRAFFEnergy,
    PLaplacianEnergy,
)
from continuous_gnn.energies.attention import squareplus

DTYPE = torch.float64
N, D = 9, 3


def _attention(seed: int = 0, **kwargs) -> AttentionDirichletEnergy:
    torch.manual_seed(seed)
    return AttentionDirichletEnergy(D, **kwargs).double()


def _randomized(energy: Energy, seed: int) -> Energy:
    """``energy`` with its scalar parameters (rate, β) moved off their zero initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in energy.parameters():
            if parameter.dim() == 0:
                parameter.copy_(0.5 * torch.randn((), generator=g, dtype=parameter.dtype))
    return energy


def _energies() -> dict[str, Energy]:
    return {
        "attention": _attention(heads=2, key_channels=4),
        "attention_rate_source": _randomized(_attention(seed=3, rate=True, source=True), seed=4),
        "allen_cahn": AllenCahnEnergy(D, repulsion=0.7, well=1.3).double(),
        "allen_cahn_fixed": AllenCahnEnergy(D, repulsion=0.0, well=0.5, learnable=False).double(),
        "p_laplacian_1": PLaplacianEnergy(p=1.0, eps=0.3),
        "p_laplacian_1.5": PLaplacianEnergy(p=1.5, eps=0.1),
        "p_laplacian_2": PLaplacianEnergy(p=2.0, eps=0.2),
        "sum": graff_energy(D, seed=4) + 0.1 * AllenCahnEnergy(D).double(),
    }


ENERGIES = list(_energies())


@pytest.mark.parametrize("name", ENERGIES)
def test_a_graph_built_under_inference_mode_serves_a_training_step(name):
    # Its indices are inference tensors, which autograd cannot save: the p-Laplacian's gathers saved them.
    energy = _energies()[name]
    with torch.inference_mode():
        graph = random_graph(N, 0.35, 40)
    x = random_features(N, D, 41).requires_grad_()
    x0 = random_features(N, D, 42)
    cg.GradientFlow(energy).bind(graph, x0)(torch.zeros((), dtype=DTYPE), x).square().sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


@pytest.mark.parametrize("name", ENERGIES)
def test_closed_form_gradient_equals_autograd(name):
    energy = _energies()[name]
    graph = random_graph(N, 0.35, 1)
    x0 = random_features(N, D, 2)
    x = random_features(N, D, 3).requires_grad_()
    (expected,) = torch.autograd.grad(energy.energy(x, graph, x0), x)
    torch.testing.assert_close(energy.gradient(x.detach(), graph, x0), expected, rtol=1e-10, atol=1e-12)
    # The prepared context (what a bound flow uses) gives the same values as the plain graph.
    prepared = energy.prepare(graph, x0)
    torch.testing.assert_close(energy.gradient(x.detach(), prepared, x0), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(energy.energy(x.detach(), prepared, x0), energy.energy(x.detach(), graph, x0))


@pytest.mark.parametrize("name", ENERGIES)
def test_negative_gradient_is_the_gradient_negated_bit_for_bit(name):
    energy = _energies()[name]
    graph = random_graph(N, 0.35, 1)
    x0, x = random_features(N, D, 2), random_features(N, D, 3)
    for context in (graph, energy.prepare(graph, x0)):
        assert torch.equal(energy.negative_gradient(x, context, x0), -energy.gradient(x, context, x0))


@pytest.mark.parametrize("name", ENERGIES)
def test_energy_never_increases_along_its_flow(name):
    energy = _energies()[name]
    graph = random_graph(N, 0.35, 5)
    x0 = random_features(N, D, 6)
    field = cg.GradientFlow(energy).bind(graph, x0)
    prepared = energy.prepare(graph, x0)
    times = [0.1 * k for k in range(1, 20)]
    # Explicit Euler with a step below 2/L (L bounds the Hessian along these trajectories), and dopri5.
    for solver in (cg.FixedGrid("euler", step_size=0.01), cg.Adaptive("dopri5", rtol=1e-9, atol=1e-11)):
        sol = cg.integrate(field, x0, 2.0, solver=solver, save_at=times)
        with torch.no_grad():
            values = torch.stack([energy.energy(s, prepared, x0) for s in sol.states])
        rises = values[1:] - values[:-1]
        assert bool((rises <= 1e-9 * values.abs().max()).all()), (solver, values)
        assert float(values[-1]) < float(values[0])


def test_p_laplacian_at_p2_is_the_dirichlet_energy():
    graph = random_graph(N, 0.35, 7)
    x = random_features(N, D, 8)
    p2 = PLaplacianEnergy(p=2.0, eps=0.5)
    torch.testing.assert_close(p2.gradient(x, graph), DirichletEnergy().gradient(x, graph))
    # The energies differ by the constant ε²/4 Σ ã_ij (ã with self-loops, so Σ_j ã_ij = d̃_i).
    constant = 0.25 * 0.5 ** 2 * float(graph.degree.sum())
    torch.testing.assert_close(p2.energy(x, graph), DirichletEnergy().energy(x, graph) + constant)


def test_energy_sum_is_the_weighted_sum_and_flattens():
    graph = random_graph(N, 0.35, 9)
    x0, x = random_features(N, D, 10), random_features(N, D, 11)
    graff, acmp, tv = graff_energy(D, seed=2), AllenCahnEnergy(D).double(), PLaplacianEnergy(p=1.2)
    total = graff + 0.1 * acmp + 2 * tv
    assert isinstance(total, EnergySum) and len(total.parts) == 3 and total.weights == (1.0, 0.1, 2.0)
    expected = graff.gradient(x, graph, x0) + 0.1 * acmp.gradient(x, graph) + 2 * tv.gradient(x, graph)
    torch.testing.assert_close(total.gradient(x, graph, x0), expected)
    assert total.channels == D and total.is_gradient_flow
    assert not (total + GRAFFEnergy(D, w="asymm", allow_asymmetric=True).double()).is_gradient_flow
    with pytest.raises(ValueError, match=r"the same channels, got \[3, 4\]"):
        graff + GRAFFEnergy(4)
    with pytest.raises(ValueError, match="finite"):
        EnergySum([graff], [float("nan")])
    with pytest.raises(ValueError, match="2 energies but 1 weights"):
        EnergySum([graff, tv], [1.0])


def test_allen_cahn_is_bounded_below_and_keeps_the_dirichlet_energy_away_from_zero():
    energy = AllenCahnEnergy(4, repulsion=1.0, well=1.0, learnable=False).double()
    data = contextual_sbm(60, 2, 0.8, 5.0, 4, 1.0, seed=0)
    graph = cg.Graph.from_data(data, dtype=DTYPE)
    bound = energy.lower_bound(graph.num_nodes)
    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 3.0, 30.0):
        x = scale * torch.randn(graph.num_nodes, 4, generator=g, dtype=DTYPE)
        assert float(energy.energy(x, graph)) >= float(bound)
    x0 = 0.5 * torch.randn(graph.num_nodes, 4, generator=g, dtype=DTYPE)
    solver = cg.Adaptive("dopri5", rtol=1e-7, atol=1e-9)
    acmp = cg.integrate(cg.GradientFlow(energy).bind(graph), x0, 200.0, solver=solver, save_at=[50.0, 100.0])
    heat = cg.integrate(cg.GradientFlow(DirichletEnergy()).bind(graph), x0, 200.0, solver=solver)
    assert all(float(energy.energy(s, graph)) >= float(bound) for s in acmp.states)
    assert float(dirichlet_energy(heat.final, graph)) < 1e-6
    assert all(float(dirichlet_energy(s, graph)) > 10.0 for s in acmp.states[1:])
    with pytest.raises(ValueError, match="well must be a finite number > 0"):
        AllenCahnEnergy(4, well=0.0)


def test_allen_cahn_lower_bound_is_attained_where_its_proof_is_tight():
    # No edges (Δ = 0) and entries ±s with s² = (δ + β)/δ and zero mean per channel: every inequality of the
    # bound's proof is an equality, so E equals the bound; a wrong formula would miss it.
    energy = AllenCahnEnergy(3, repulsion=1.0, well=2.0, learnable=False).double()
    graph = cg.Graph.from_edge_index(torch.empty(2, 0, dtype=torch.long), 4, dtype=DTYPE)
    signs = torch.tensor([[1, -1, 1], [-1, 1, 1], [1, -1, -1], [-1, 1, -1]], dtype=DTYPE)
    x = signs * 1.5 ** 0.5
    assert float(energy.energy(x, graph)) == pytest.approx(float(energy.lower_bound(4)), rel=1e-12)
    assert float(energy.lower_bound(4)) == pytest.approx(-7.5, rel=1e-12)


def test_attention_is_row_stochastic_and_its_energy_is_symmetric():
    graph = random_graph(N, 0.35, 12)
    x0 = random_features(N, D, 13)
    energy = _attention(heads=3)
    attended = energy.prepare(graph, x0)
    assert isinstance(attended, AttentionGraph)
    row_sums = torch.zeros(N, dtype=DTYPE).index_add(0, graph.pattern.row, attended.values)
    torch.testing.assert_close(row_sums, torch.ones(N, dtype=DTYPE))
    # S̄ is symmetric: <y, S̄ x> = <x, S̄ y>; (I - S̄) D_S^{1/2} 1 = 0; the spectrum of S̄ lies in [-1, 1].
    x, y = random_features(N, D, 14), random_features(N, D, 15)
    torch.testing.assert_close((y * attended.propagate(x)).sum(), (x * attended.propagate(y)).sum())
    kernel = attended.inv_sqrt_degree.reciprocal().unsqueeze(1)
    torch.testing.assert_close(attended.laplacian(kernel), torch.zeros(N, 1, dtype=DTYPE))
    dense = attended.propagate(torch.eye(N, dtype=DTYPE)).detach()
    eigenvalues = torch.linalg.eigvalsh(0.5 * (dense + dense.T))
    assert float(eigenvalues.min()) >= -1 - 1e-10 and float(eigenvalues.max()) <= 1 + 1e-10
    assert float(energy.energy(x, attended).detach()) >= 0
    with pytest.raises(ValueError, match="pass x0=F\\(0\\)"):
        energy.energy(x, graph)


@pytest.mark.parametrize("make", [lambda: _attention(heads=2, uniform_start=True),
                                  lambda: cg.AttentionDiffusion(D, heads=2, uniform_start=True).double(),
                                  lambda: cg.FixedAttentionDiffusion(D, heads=2, uniform_start=True).double(),
                                  lambda: cg.FixedAttentionDiffusion(D, heads=2, uniform_start=True,
                                                                     score_map="squareplus").double()])
def test_a_uniform_start_gives_each_neighbour_the_same_attention_and_still_learns(make):
    graph = random_graph(N, 0.35, 30)
    x0 = random_features(N, D, 31)
    model = make()
    values = model.attention(x0, graph.pattern)
    degree = torch.bincount(graph.pattern.row, minlength=N).to(DTYPE)
    torch.testing.assert_close(values, degree.reciprocal()[graph.pattern.row])
    # The random start does not give it: its attention differs between neighbours.
    torch.manual_seed(0)
    assert not torch.allclose(EdgeAttention(D, heads=2).double()(x0, graph.pattern), values)
    # It learns from there (a loss that the uniform attention does not minimise): the key weights at once; the
    # query weights shift a node's scores alike, which its softmax cancels, until the keys differ after a step.
    target = random_features(graph.pattern.row.numel(), 1, 32).squeeze(1)
    query, key = model.attention.query.weight, model.attention.key.weight
    biases = [layer.bias for layer in (model.attention.query, model.attention.key) if layer.bias is not None]

    def gradients() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad((model.attention(x0, graph.pattern) * target).sum(), [query, key])

    query_grad, key_grad = gradients()
    assert float(key_grad.abs().max()) > 1e-3 and float(query_grad.abs().max()) < 1e-12
    # Both biases, as the docstring says: a bias shifts every score of a node alike, which the softmax cancels.
    bias_grads = torch.autograd.grad((model.attention(x0, graph.pattern) * target).sum(), biases)
    assert len(bias_grads) == 2 and all(float(g.abs().max()) < 1e-12 for g in bias_grads)
    with torch.no_grad():
        key -= 0.5 * key_grad
    assert float(gradients()[0].abs().max()) > 1e-3
    # reset_parameters keeps the uniform start.
    model.reset_parameters()
    torch.testing.assert_close(model.attention(x0, graph.pattern), degree.reciprocal()[graph.pattern.row])
    with pytest.raises(ValueError, match="uniform_start must be true or false, got 1"):
        EdgeAttention(D, uniform_start=1)


@pytest.mark.parametrize("adjoint", [False, True])
def test_attention_parameters_get_gradients_direct_and_adjoint(adjoint):
    graph = random_graph(N, 0.35, 16)
    x0 = random_features(N, D, 17).requires_grad_()
    energy = _attention(seed=1, heads=2)
    solver = cg.Adaptive("dopri5", rtol=1e-10, atol=1e-12)

    def gradients(use_adjoint: bool) -> list[torch.Tensor]:
        sol = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x0, 1.0, solver=solver, adjoint=use_adjoint)
        return torch.autograd.grad(sol.final.square().sum(), [*energy.parameters(), x0])

    grads = gradients(adjoint)
    assert all(float(g.abs().max()) > 0 for g in grads)
    for got, expected in zip(grads, gradients(False)):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


def test_the_adjoint_check_sees_attention_computed_from_an_untracked_tensor():
    graph = random_graph(N, 0.35, 18)
    x0 = random_features(N, D, 19)
    energy = _attention(seed=2)
    stray = torch.ones((), dtype=DTYPE, requires_grad=True)  # not a parameter of the field, not declared
    field = cg.GradientFlow(energy).bind(graph, x0)
    field.context = AttentionGraph.from_attention(graph, field.context.values * stray)
    with pytest.raises(ValueError, match=r"\['context.values', 'context.inv_sqrt_degree', 'context.normalized'\]"):
        cg.integrate(field, x0, 1.0, method="rk4", step_size=0.25, adjoint=True)
    cg.integrate(field, x0, 1.0, method="rk4", step_size=0.25, adjoint=True, adjoint_params=[stray])


def test_learnable_edge_values_cost_edges_not_nodes_squared():
    # A torch CSR product with values that require grad asks autograd for a dense N x N gradient: at this size
    # 4e10 floats (160 GB). The pattern's product keeps its backward O(|E| d).
    script = textwrap.dedent("""
        import resource, torch
        from torch_geometric.utils import to_undirected
        from continuous_gnn.edge_product import EdgePattern
        n, e, d = 200_000, 1_000_000, 8
        g = torch.Generator().manual_seed(0)
        pattern = EdgePattern.from_edge_index(to_undirected(torch.randint(0, n, (2, e), generator=g)), n)
        values = torch.rand(pattern.col.numel(), generator=g).requires_grad_()
        x = torch.randn(n, d, generator=g).requires_grad_()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = pattern.propagate(values, x)
        out.square().sum().backward()
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert values.grad.shape == values.shape and x.grad.shape == (n, d)
        print(grown * 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    grown = int(done.stdout.split()[-1])
    dense = 200_000 ** 2 * 4
    assert grown < 1.5e9 and dense > 25 * grown, grown


@pytest.mark.parametrize("fixed", [False, True], ids=["grand_nl", "grand_l_row"])
@pytest.mark.parametrize(("rate", "score_map"), [(False, "exp"), (True, "exp"), (True, "squareplus")])
def test_attention_diffusion_obeys_the_maximum_principle(fixed, rate, score_map):
    graph = random_graph(12, 0.3, 20)
    x0 = random_features(12, D, 21)
    torch.manual_seed(3)
    kind = cg.FixedAttentionDiffusion if fixed else cg.AttentionDiffusion
    field = _randomized(kind(D, heads=2, rate=rate, score_map=score_map).double(), seed=5)
    assert not field.is_gradient_flow
    low, high = x0.min(dim=0).values, x0.max(dim=0).values
    for solver, slack in ((cg.FixedGrid("euler", step_size=1.0), 1e-12), (cg.FixedGrid("euler", step_size=0.25), 1e-12),
                          (cg.Adaptive("dopri5", rtol=1e-9, atol=1e-11), 1e-8)):
        sol = cg.integrate(field.bind(graph, x0), x0, 5.0, solver=solver, save_at=[1.0, 2.0, 3.0, 4.0])
        assert bool((sol.states >= low - slack).all() and (sol.states <= high + slack).all()), solver
        # It mixes: the spread shrinks.
        assert bool(((sol.final.max(0).values - sol.final.min(0).values) < (high - low)).all())


@pytest.mark.parametrize("fixed", [False, True], ids=["grand_nl", "grand_l_row"])
@pytest.mark.parametrize("score_map", ["exp", "squareplus"])
def test_column_normalised_attention_diffusion_conserves_each_channels_sum(fixed, score_map):
    graph = random_graph(12, 0.3, 40)
    x0 = random_features(12, D, 41)
    torch.manual_seed(6)
    kind = cg.FixedAttentionDiffusion if fixed else cg.AttentionDiffusion
    field = _randomized(kind(D, heads=2, rate=True, normalization="column", score_map=score_map).double(), seed=8)
    values = field.attention(x0, graph.pattern)
    column_sums = torch.zeros(12, dtype=DTYPE).index_add(0, graph.pattern.col, values)
    row_sums = torch.zeros(12, dtype=DTYPE).index_add(0, graph.pattern.row, values)
    torch.testing.assert_close(column_sums, torch.ones(12, dtype=DTYPE))
    assert not torch.allclose(row_sums, torch.ones(12, dtype=DTYPE))
    for solver in (cg.FixedGrid("euler", step_size=1.0), cg.FixedGrid("rk4", step_size=0.5),
                   cg.Adaptive("dopri5", rtol=1e-6, atol=1e-8)):
        sol = cg.integrate(field.bind(graph, x0), x0, 5.0, solver=solver, save_at=[1.0, 2.0, 3.0, 4.0])
        torch.testing.assert_close(sol.states.sum(dim=1), x0.sum(dim=0).expand(len(sol.states), D), rtol=0,
                                   atol=1e-10)
        assert not torch.allclose(sol.final, x0, atol=1e-2)  # it moves, though its sums do not


def test_column_normalised_attention_breaks_the_maximum_principle_that_rows_keep():
    # A star with self-loops (hub degree 6, leaves 2) and uniform attention: by rows the hub moves to the mean of
    # its neighbours, 5/6; by columns it takes half of each leaf's value, 2.5, above every initial value.
    leaves = torch.arange(1, 6)
    edge_index = torch.cat([torch.stack([torch.zeros(5, dtype=torch.long), leaves]),
                            torch.stack([leaves, torch.zeros(5, dtype=torch.long)])], dim=1)
    graph = cg.Graph.from_edge_index(edge_index, 6, dtype=DTYPE)
    x0 = torch.tensor([[0.0], [1.0], [1.0], [1.0], [1.0], [1.0]], dtype=DTYPE)
    euler = cg.FixedGrid("euler", step_size=1.0)
    finals = {}
    for normalization in ("row", "column"):
        field = cg.FixedAttentionDiffusion(1, uniform_start=True, normalization=normalization).double()
        finals[normalization] = cg.integrate(field.bind(graph, x0), x0, 1.0, solver=euler).final
    leaves_after = torch.full((5, 1), 0.5, dtype=DTYPE)
    torch.testing.assert_close(finals["row"], torch.cat([torch.tensor([[5 / 6]], dtype=DTYPE), leaves_after]))
    torch.testing.assert_close(finals["column"], torch.cat([torch.tensor([[2.5]], dtype=DTYPE), leaves_after]))
    with pytest.raises(ValueError, match="normalization must be one of 'row', 'column', got 'cols'"):
        cg.FixedAttentionDiffusion(1, normalization="cols")


def test_a_uniform_start_by_columns_gives_each_recipient_the_same_share_and_the_query_learns_first():
    graph = random_graph(N, 0.35, 42)
    x0 = random_features(N, D, 43)
    attention = EdgeAttention(D, heads=2, uniform_start=True, normalization="column").double()
    degree = torch.bincount(graph.pattern.col, minlength=N).to(DTYPE)
    torch.testing.assert_close(attention(x0, graph.pattern), degree.reciprocal()[graph.pattern.col])
    target = random_features(graph.pattern.row.numel(), 1, 44).squeeze(1)
    query_grad, key_grad = torch.autograd.grad((attention(x0, graph.pattern) * target).sum(),
                                               [attention.query.weight, attention.key.weight])
    assert float(query_grad.abs().max()) > 1e-3 and float(key_grad.abs().max()) < 1e-12
    assert "normalization='column'" in repr(attention)


def test_squareplus_is_its_formula_stays_accurate_far_below_zero_and_normalises_like_the_softmax():
    s = torch.linspace(-30.0, 30.0, 121, dtype=DTYPE)
    torch.testing.assert_close(squareplus(s), (s + torch.sqrt(s * s + 4)) / 2, rtol=1e-12, atol=1e-13)
    # Far below zero it is 1/|s| to first order, where s + sqrt(s² + 4) loses most of its digits to cancellation.
    far = torch.tensor([-1e4, -1e8], dtype=DTYPE)
    torch.testing.assert_close(squareplus(far), 1 / far.abs(), rtol=1e-7, atol=0)
    naive = (far + torch.sqrt(far * far + 4)) / 2
    assert abs(float(naive[1]) * 1e8 - 1) > 0.1
    graph = random_graph(N, 0.35, 45)
    x0 = random_features(N, D, 46)
    for normalization, over in (("row", graph.pattern.row), ("column", graph.pattern.col)):
        torch.manual_seed(7)
        attention = EdgeAttention(D, heads=2, normalization=normalization, score_map="squareplus").double()
        q = attention.query(x0).view(N, 2, D)
        k = attention.key(x0).view(N, 2, D)
        scores = (q[graph.pattern.row] * k[graph.pattern.col]).sum(-1) / D ** 0.5
        weights = (scores + torch.sqrt(scores ** 2 + 4)) / 2
        totals = torch.zeros(N, 2, dtype=DTYPE).index_add(0, over, weights)
        expected = (weights / totals[over]).mean(dim=1)
        values = attention(x0, graph.pattern)
        torch.testing.assert_close(values, expected)
        torch.testing.assert_close(torch.zeros(N, dtype=DTYPE).index_add(0, over, values), torch.ones(N, dtype=DTYPE))
        torch.manual_seed(7)
        assert not torch.allclose(EdgeAttention(D, heads=2, normalization=normalization).double()(x0, graph.pattern),
                                  values)
    assert "score_map='squareplus'" in repr(attention)
    with pytest.raises(ValueError, match="score_map must be one of 'exp', 'squareplus', got 'softmax'"):
        cg.AttentionDiffusion(D, score_map="softmax")


def test_fixed_attention_diffusion_holds_the_attention_of_x0():
    graph = random_graph(N, 0.35, 26)
    x0, x = random_features(N, D, 27), random_features(N, D, 28)
    torch.manual_seed(4)
    fixed = _randomized(cg.FixedAttentionDiffusion(D, heads=2, rate=True, source=True).double(), seed=6)
    moving = cg.AttentionDiffusion(D, heads=2, rate=True, source=True).double()
    moving.load_state_dict(fixed.state_dict())
    bound, t = fixed.bind(graph, x0), torch.zeros((), dtype=DTYPE)
    attention = fixed.attention(x0, graph.pattern)
    alpha, beta = torch.sigmoid(fixed.rate_logit), fixed.beta
    # f(X) = α(A(X(0)) X - X) + β X(0), with A(X(0)) row-stochastic on the graph's edges.
    dense = torch.zeros(N, N, dtype=DTYPE).index_put((graph.pattern.row, graph.pattern.col), attention.detach())
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(N, dtype=DTYPE))
    torch.testing.assert_close(bound(t, x), alpha * (dense @ x - x) + beta * x0)
    # At X(0) it is GRAND-nl's field; elsewhere it is not (GRAND-nl recomputes the attention from X).
    torch.testing.assert_close(bound(t, x0), moving.bind(graph, x0)(t, x0))
    assert not torch.allclose(bound(t, x), moving.bind(graph, x0)(t, x))
    with pytest.raises(ValueError, match="pass x0=F\\(0\\)"):
        fixed.bind(graph)
    with pytest.raises(ValueError, match="source=True\\) needs the initial state"):
        moving.bind(graph)


@pytest.mark.parametrize("adjoint", [False, True])
def test_fixed_attention_parameters_get_gradients_direct_and_adjoint(adjoint):
    graph = random_graph(N, 0.35, 29)
    x0 = random_features(N, D, 30).requires_grad_()
    torch.manual_seed(5)
    field = _randomized(cg.FixedAttentionDiffusion(D, heads=2, rate=True, source=True).double(), seed=7)
    solver = cg.Adaptive("dopri5", rtol=1e-10, atol=1e-12)

    def gradients(use_adjoint: bool) -> list[torch.Tensor]:
        sol = cg.integrate(field.bind(graph, x0), x0, 1.0, solver=solver, adjoint=use_adjoint)
        return torch.autograd.grad(sol.final.square().sum(), [*field.parameters(), x0])

    grads = gradients(adjoint)
    assert all(float(g.abs().max()) > 0 for g in grads)
    for got, expected in zip(grads, gradients(False)):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("damping", [0.0, 0.5, 2.0])
def test_second_order_total_energy_never_increases(damping):
    graph = random_graph(N, 0.35, 22)
    x0 = random_features(N, D, 23)
    energy = graff_energy(D, seed=5)
    flow = cg.SecondOrderFlow(energy, damping=damping).double()
    z0 = flow.initial_state(x0)
    assert z0.shape == (2 * N, D) and torch.equal(flow.readout(z0), x0)
    sol = cg.integrate(flow.bind(graph, x0), z0, 3.0, method="rk4", step_size=0.005,
                       save_at=[0.25 * k for k in range(1, 12)])
    with torch.no_grad():
        total = torch.stack([flow.total_energy(s, graph, x0) for s in sol.states])
    changes = total[1:] - total[:-1]
    if damping == 0:
        torch.testing.assert_close(total, total[0].expand_as(total), rtol=1e-6, atol=1e-8)  # conserved
    else:
        assert bool((changes <= 1e-10).all()) and float(total[-1]) < float(total[0])
    assert not flow.is_gradient_flow
    with pytest.raises(ValueError, match="damping must be a finite number >= 0"):
        cg.SecondOrderFlow(energy, damping=-1.0)


@pytest.mark.parametrize("damping", [0.5, 2.0])
def test_second_order_total_energy_falls_at_the_rate_gamma_times_the_squared_velocity(damping):
    # dH/dt = -γ‖V‖²: integrated, H(0) - H(T) = γ ∫ ‖V‖² dt (trapezoid on a fine save grid); a wrong damping
    # factor would be off by that factor, which mere monotonicity does not see.
    graph = random_graph(N, 0.35, 22)
    x0 = random_features(N, D, 23)
    flow = cg.SecondOrderFlow(graff_energy(D, seed=5), damping=damping).double()
    times = [0.025 * k for k in range(1, 81)]
    sol = cg.integrate(flow.bind(graph, x0), flow.initial_state(x0), 2.0, method="rk4", step_size=0.025,
                       save_at=times)
    with torch.no_grad():
        total = torch.stack([flow.total_energy(s, graph, x0) for s in sol.states])
        speed = torch.stack([s[N:].square().sum() for s in sol.states])
    dissipated = damping * torch.trapezoid(speed, torch.tensor([0.0, *times], dtype=DTYPE))
    assert float(dissipated) > 0.1
    torch.testing.assert_close(total[0] - total[-1], dissipated, rtol=1e-4, atol=0.0)


class _UserEnergy(Energy):
    """A user's energy: only energy(), autograd gives the gradient."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.scale = nn.Parameter(torch.tensor(0.5))

    def energy(self, x, graph, x0=None):
        self.check_input(x, graph)
        return 0.5 * self.scale * (x * graph.laplacian(x)).sum() + torch.log(torch.cosh(x)).sum()


@pytest.mark.parametrize("adjoint", [False, True])
def test_a_user_energy_trains_through_the_model(adjoint):
    torch.manual_seed(0)
    graph = random_graph(N, 0.35, 24, dtype=torch.float32)
    x = torch.randn(N, 5)
    y = torch.arange(N) % 2
    model = cg.ContinuousGNN(5, D, 2, _UserEnergy(D), t_end=1.0, solver=cg.FixedGrid("rk4", step_size=0.25),
                             adjoint=adjoint)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x, graph), y)
        loss.backward()
        assert model.energy.scale.grad is not None and float(model.energy.scale.grad.abs()) > 0
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    with torch.no_grad():
        assert model(x, graph).shape == (N, 2)


def test_the_model_takes_fields_edge_index_adj_t_and_data():
    from torch_geometric.data import Data

    torch.manual_seed(0)
    graph = random_graph(N, 0.35, 25, dtype=torch.float32)
    edge_index = graph.edge_index[:, graph.edge_index[0] != graph.edge_index[1]]
    x = torch.randn(N, 5)
    model = cg.ContinuousGNN(5, D, 2, cg.AttentionDiffusion(D), t_end=1.0, solver=cg.FixedGrid(step_size=0.5)).eval()
    reference = model(x, graph)
    torch.testing.assert_close(model(x, edge_index), reference)
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.size(1)), (N, N), is_coalesced=False,
                                    check_invariants=True)
    torch.testing.assert_close(model(x, adj_t), reference)
    torch.testing.assert_close(model(Data(x=x, edge_index=edge_index)), reference)
    # The operator is built once per adjacency tensor, and again for another tensor.
    assert model.graph(x, edge_index) is model.graph(x, edge_index)
    assert model.graph(x, edge_index.clone()) is not model.graph(x, edge_index)
    second = cg.ContinuousGNN(5, D, 2, cg.SecondOrderFlow(GRAFFEnergy(D)), solver=cg.FixedGrid(step_size=0.5))
    logits, sol = second.forward_with_solution(x, graph)
    assert logits.shape == (N, 2) and sol.final.shape == (N, D) and sol.states.shape == (2, N, D)
    with pytest.raises(ValueError, match="a Field given as the energy is used as it is"):
        cg.ContinuousGNN(5, D, 2, cg.AttentionDiffusion(D), activation="relu")


@pytest.mark.parametrize("field", [cg.AttentionDiffusion, cg.FixedAttentionDiffusion])
def test_grand_nl_names_a_state_of_the_wrong_width(field):
    graph = random_graph(N, 0.35, 40)
    x0 = random_features(N, D, 41)
    bound = field(D, heads=2).double().bind(graph, x0)
    with pytest.raises(ValueError, match=rf"takes states of shape \(num_nodes, {D}\), got \({N}, {D + 1}\)"):
        bound(torch.zeros((), dtype=DTYPE), random_features(N, D + 1, 42))
