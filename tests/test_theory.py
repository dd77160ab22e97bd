"""The GRAFF paper's dynamics theorems, checked numerically in float64.

Notation: Ā = D̃^{-1/2}(A+I)D̃^{-1/2}, Δ = I − Ā with eigenvalues 0 = μ_0 ≤ ... ≤ μ_max = ρ_Δ,
RQ(F) = tr(FᵀΔF)/‖F‖². LFD means RQ → 0, HFD means RQ → ρ_Δ.
"""

from __future__ import annotations

import pytest
import torch

import continuous_gnn as cg
from continuous_gnn.diagnostics import dirichlet_energy, rayleigh_quotient
from continuous_gnn.energies import ChannelDirichletEnergy, GRAFFEnergy
from continuous_gnn.studies import euler_frequencies

DTYPE = torch.float64


def _rq(x: torch.Tensor, graph: cg.Graph) -> float:
    return float(rayleigh_quotient(x, graph))


def _dirichlet(x: torch.Tensor, graph: cg.Graph) -> float:
    return float(dirichlet_energy(x, graph))


def _random_connected_graph(n: int, p: float, seed: int) -> cg.Graph:
    """Erdős–Rényi plus a Hamiltonian path (connected) plus one triangle (not bipartite)."""
    gen = torch.Generator().manual_seed(seed)
    upper = torch.triu(torch.rand(n, n, generator=gen) < p, diagonal=1)
    path = torch.arange(n - 1)
    upper[path, path + 1] = True
    upper[0, 2] = True
    src, dst = upper.nonzero().T
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
    return cg.Graph.from_edge_index(edge_index, n, dtype=DTYPE)


def _spectrum(graph: cg.Graph) -> tuple[torch.Tensor, torch.Tensor]:
    laplacian = torch.eye(graph.num_nodes, dtype=DTYPE) - graph.to_dense()
    return torch.linalg.eigh(laplacian)


def _diagonal_w_energy(values: torch.Tensor) -> GRAFFEnergy:
    """Ω = 0, β = 0, W = diag(values)."""
    energy = GRAFFEnergy(values.numel(), w="diag", omega="zero", source=False).to(DTYPE)
    with torch.no_grad():
        energy.W.w.copy_(values)
    return energy


def _residual_euler(energy, graph, x, steps: int, tau: float) -> torch.Tensor:
    return cg.integrate(cg.GradientFlow(energy).bind(graph, x), x, steps * tau, method="euler", step_size=tau).final


@pytest.mark.parametrize("tau", [0.5, 0.3])
def test_one_euler_step_is_a_spectral_filter(tau):
    # Ω = 0, β = 0, W = diag(λ): the coefficient of channel r at frequency μ is multiplied by 1 + τλ_r(1 − μ).
    graph = _random_connected_graph(12, 0.3, seed=0)
    mu, basis = _spectrum(graph)
    lam = torch.tensor([1.5, -0.7, 0.0, 2.0], dtype=DTYPE)
    x = torch.randn(12, 4, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    stepped = _residual_euler(_diagonal_w_energy(lam), graph, x, steps=1, tau=tau)
    expected = (basis.T @ x) * (1 + tau * lam[None, :] * (1 - mu[:, None]))
    torch.testing.assert_close(basis.T @ stepped, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_positive_w_is_low_frequency_dominated(seed):
    graph = _random_connected_graph(15, 0.25, seed)
    x = torch.randn(15, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))
    energy = _diagonal_w_energy(torch.full((3,), 0.8, dtype=DTYPE))
    final = _residual_euler(energy, graph, x, steps=300, tau=0.5)
    assert _rq(x, graph) > 0.1
    assert _rq(final, graph) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_negative_w_is_high_frequency_dominated(seed):
    graph = _random_connected_graph(15, 0.25, seed)
    mu, _ = _spectrum(graph)
    rho = float(mu[-1])
    assert 1.0 < rho < 2.0, "the theorem needs a non-bipartite graph with ρ_Δ > 1"
    tau, c = 0.5, 1.0
    assert c < 2 / (tau * (2 - rho)), "step inside the bound of Theorem 4.3"
    x = torch.randn(15, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))
    final = _residual_euler(_diagonal_w_energy(torch.full((3,), -c, dtype=DTYPE)), graph, x, steps=400, tau=tau)
    assert _rq(final, graph) == pytest.approx(rho, abs=1e-6)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_without_residual_either_sign_over_smooths(sign):
    # Theorem 4.3's converse: F ← τĀFW, no residual, non-bipartite graph: RQ → 0 whatever the sign of W.
    graph = _random_connected_graph(15, 0.25, seed=4)
    tau, c = 0.5, 1.0
    w = torch.full((3,), sign * c, dtype=DTYPE)
    x = torch.randn(15, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(4))
    for _ in range(300):
        x = tau * graph.propagate(x * w)
        x = x / x.norm()  # the scale shrinks geometrically; only the direction matters for RQ
    assert _rq(x, graph) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_channel_metric_dirichlet_flow_always_smooths(seed):
    # Prop. 2.4: with KᵀK positive definite, Ḟ = −ΔFKᵀK drives E^Dir → 0, monotonically.
    graph = _random_connected_graph(12, 0.3, seed)
    energy = ChannelDirichletEnergy(3).to(DTYPE)
    generator = torch.Generator().manual_seed(seed)
    # K = Q diag(σ) with a random rotation Q: KᵀK = diag(σ²) in a random basis, kept away from singular (σ ≥ 1.5),
    # so that E^Dir falls by e^{-2 λ₂ σ²_min T} at least: far below the bound within T = 40 (λ₂ of Δ, above 0.3 here).
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, dtype=DTYPE, generator=generator))
    with torch.no_grad():
        energy.kernel.copy_(rotation @ torch.diag(torch.tensor([1.5, 2.0, 2.5], dtype=DTYPE)))
    x0 = torch.randn(12, 3, dtype=DTYPE, generator=generator)
    times = torch.linspace(0.5, 40.0, 80).tolist()
    sol = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x0, 40.0, method="dopri5", rtol=1e-9, atol=1e-12, save_at=times)
    energies = torch.tensor([_dirichlet(state, graph) for state in sol.states])
    assert torch.all(energies[1:] <= energies[:-1] + 1e-12)
    assert energies[-1] < 1e-8 * energies[0]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("factor, hfd", [(0.8, True), (1.2, False)])
def test_prop_3_1_threshold_separates_hfd_from_lfd(seed, factor, hfd):
    # W = diag(λ₊, λ₋), λ₋ < 0, Ω = 0, no source, residual Euler within eq. 14 (|λ₋| < 2/(τ(2 − ρ_Δ))):
    # HFD (RQ → ρ_Δ) iff |λ₋|(ρ_Δ − 1) > λ₊, else LFD (RQ → 0). λ₊ is put 20% on either side of the threshold.
    graph = _random_connected_graph(15, 0.25, seed)
    mu, _ = _spectrum(graph)
    rho = float(mu[-1])
    assert 1.0 < rho < 2.0
    tau, lam_minus = 0.5, -1.0
    assert abs(lam_minus) < 2 / (tau * (2 - rho)), "step inside the bound of eq. 14"
    lam_plus = factor * abs(lam_minus) * (rho - 1)
    x = torch.randn(15, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        final = _residual_euler(_diagonal_w_energy(torch.tensor([lam_plus, lam_minus], dtype=DTYPE)), graph, x,
                                steps=500, tau=tau)
    assert 0.1 < _rq(x, graph) < rho - 0.1
    predicted = euler_frequencies(lam_minus, lam_plus, rho, tau)
    assert predicted.high_frequency_dominant is hfd and predicted.eq14 is hfd and (predicted.margin > 1) is hfd
    if hfd:
        assert _rq(final, graph) == pytest.approx(rho, abs=1e-6)
    else:
        assert _rq(final, graph) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_beyond_the_step_bound_of_eq_14_euler_loses_high_frequency_dominance(seed):
    # Prop. 3.1 holds (ρ₋ > λ₊: the continuous flow is HFD) but τ|λ₋| exceeds 2/(2 − ρ_Δ): the lowest frequency
    # along the negative eigenvector grows by |1 − τ|λ₋|| per step, faster than the top one, so RQ does not go to ρ_Δ.
    graph = _random_connected_graph(15, 0.25, seed)
    rho = float(_spectrum(graph)[0][-1])
    lam_minus = -1.0
    lam_plus = 0.5 * abs(lam_minus) * (rho - 1)
    tau = 1.2 * 2 / (abs(lam_minus) * (2 - rho))
    predicted = euler_frequencies(lam_minus, lam_plus, rho, tau)
    assert predicted.high_frequency_dominant and not predicted.step_bound and not predicted.eq14
    assert predicted.margin < 1
    x = torch.randn(15, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        final = _residual_euler(_diagonal_w_energy(torch.tensor([lam_plus, lam_minus], dtype=DTYPE)), graph, x,
                                steps=300, tau=tau)
    assert _rq(final, graph) < 1e-6


def test_euler_frequencies_margin_exceeds_one_exactly_when_eq_14_holds():
    generator = torch.Generator().manual_seed(0)
    agree = 0
    for _ in range(2000):
        lam_min, lam_max = (torch.rand(2, generator=generator, dtype=DTYPE) * torch.tensor([-4.0, 4.0])).tolist()
        rho = 1.0 + 0.98 * float(torch.rand((), generator=generator, dtype=DTYPE)) + 0.01
        tau = 0.01 + 2 * float(torch.rand((), generator=generator, dtype=DTYPE))
        predicted = euler_frequencies(lam_min, lam_max, rho, tau)
        lam_plus, lam_minus = max(lam_max, 0.0), max(-lam_min, 0.0)
        eq14 = lam_plus / (rho - 1) < lam_minus < 2 / (tau * (2 - rho))
        assert predicted.eq14 is eq14
        assert (predicted.margin > 1) is eq14
        agree += eq14
    assert 100 < agree < 1900  # both outcomes were drawn often


@pytest.mark.parametrize("rho, tau", [(1.0, 0.5), (2.0, 0.5), (1.5, 0.0)])
def test_euler_frequencies_refuses_a_radius_or_step_outside_its_domain(rho, tau):
    with pytest.raises(ValueError, match="rho must lie in|tau must be"):
        euler_frequencies(-1.0, 1.0, rho, tau)
