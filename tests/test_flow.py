"""Gradient flows: energy never increases (Euler below 2/L, dopri5, GRAFF-NL), EnergySchedule semantics."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    DTYPE,
    SYMMETRIC_W,
    graff_energy,
    hessian_graff,
    lipschitz,
    random_features,
    random_graph,
)

import continuous_gnn as cg
from continuous_gnn.energies import DirichletEnergy
from continuous_gnn.fields import ACTIVATIONS
from continuous_gnn.nn import GRAFFConv

NUM_GRAPHS = 20
REL_TOL = 1e-10


def energies_along(energy, graph, x0, states):
    with torch.no_grad():
        return torch.stack([energy.energy(s, graph, x0) for s in states])


def assert_non_increasing(values, label):
    values = values.tolist()
    for k in range(len(values) - 1):
        slack = REL_TOL * max(1.0, abs(values[k]))
        assert values[k + 1] <= values[k] + slack, f"{label}: energy rose at step {k}: {values[k]} -> {values[k + 1]}"


def case(seed, d=3):
    """A random graph, features and GRAFF energy: symmetric W (rotating style), random diagonal Ω, source."""
    n = 5 + seed % 8
    graph = random_graph(n, 0.3, seed)
    energy = graff_energy(d, w=SYMMETRIC_W[seed % len(SYMMETRIC_W)], omega="diag", source=True, seed=seed)
    return graph, energy, random_features(n, d, seed + 1000)


def test_euler_below_two_over_lipschitz_never_increases_energy():
    for seed in range(NUM_GRAPHS):
        graph, energy, x0 = case(seed)
        lip = lipschitz(hessian_graff(energy, graph))
        steps = 25
        tau = 1.9 / lip
        sol = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x0, steps * tau, method="euler",
                           num_steps=steps, save_at=cg.fixed_grid(steps * tau, num_steps=steps))
        assert sol.states.shape[0] == steps + 1
        values = energies_along(energy, graph, x0, sol.states)
        assert_non_increasing(values, f"seed {seed}")
        assert values[-1] < values[0] - 1e-6


def test_euler_beyond_two_over_lipschitz_can_increase_energy():
    # The bound is sharp: the heat flow's top Laplacian mode grows once τ > 2/ρ_Δ, and the check above sees it.
    graph = random_graph(10, 0.3, 1)
    lap = torch.eye(10, dtype=DTYPE) - graph.to_dense()
    evals, evecs = torch.linalg.eigh(lap)
    x0 = evecs[:, -1:] + 0.1 * random_features(10, 1, 2)
    tau = 2.2 / float(evals[-1])
    energy = DirichletEnergy()
    sol = cg.integrate(cg.GradientFlow(energy).bind(graph), x0, 40 * tau, method="euler", num_steps=40,
                       save_at=cg.fixed_grid(40 * tau, num_steps=40))
    values = energies_along(energy, graph, None, sol.states)
    with pytest.raises(AssertionError, match="energy rose"):
        assert_non_increasing(values, "heat beyond 2/L")


def test_dopri5_never_increases_energy():
    for seed in range(NUM_GRAPHS):
        graph, energy, x0 = case(seed)
        t_end = 1.5
        save_at = torch.linspace(0, t_end, 31, dtype=torch.float64)[1:-1]
        sol = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x0, t_end, method="dopri5",
                           rtol=1e-10, atol=1e-12, save_at=save_at)
        assert sol.states.shape[0] == 31
        values = energies_along(energy, graph, x0, sol.states)
        assert_non_increasing(values, f"seed {seed}")
        assert values[-1] < values[0] - 1e-6


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_graff_nl_never_increases_energy(activation):
    for seed in range(NUM_GRAPHS):
        graph, energy, x0 = case(seed)
        flow = cg.GradientFlow(energy, activation=activation)
        # Euler with a small step: the descent bound τ < 2/L holds for σ with xσ(x) ≥ σ(x)² (ReLU, tanh).
        tau = 1.0 / lipschitz(hessian_graff(energy, graph))
        steps = 20
        sol = cg.integrate(flow.bind(graph, x0), x0, steps * tau, method="euler", num_steps=steps,
                           save_at=cg.fixed_grid(steps * tau, num_steps=steps))
        values = energies_along(energy, graph, x0, sol.states)
        assert_non_increasing(values, f"{activation} euler seed {seed}")
        assert values[-1] < values[0] - 1e-8
        # The continuous flow, by dopri5.
        save_at = torch.linspace(0, 1.0, 21, dtype=torch.float64)[1:-1]
        sol = cg.integrate(flow.bind(graph, x0), x0, 1.0, method="dopri5", rtol=1e-10, atol=1e-12, save_at=save_at)
        values = energies_along(energy, graph, x0, sol.states)
        assert_non_increasing(values, f"{activation} dopri5 seed {seed}")


def test_activation_is_applied_inside_the_step():
    graph, energy, x0 = case(3)
    t = torch.tensor(0.0, dtype=DTYPE)
    velocity = -energy.gradient(x0, graph, x0)
    assert (velocity < 0).any()
    relu = cg.GradientFlow(energy, activation="relu").bind(graph, x0)(t, x0)
    torch.testing.assert_close(relu, velocity.clamp_min(0), rtol=0, atol=0)
    custom = cg.GradientFlow(energy, activation=lambda v: 2 * v)
    torch.testing.assert_close(custom.bind(graph, x0)(t, x0), 2 * velocity, rtol=0, atol=0)
    identity = cg.GradientFlow(energy, activation="identity").bind(graph, x0)(t, x0)
    torch.testing.assert_close(identity, velocity, rtol=0, atol=0)


def test_every_named_activation_satisfies_x_sigma_x_nonnegative():
    # flow.ACTIVATIONS: each σ has xσ(x) ≥ 0, which keeps the energy non-increasing along σ(−∇E).
    grid = torch.cat([torch.linspace(-50.0, 50.0, 2001, dtype=DTYPE), torch.tensor([0.0, -1e-300, 1e-300], dtype=DTYPE)])
    assert (grid < 0).any() and (grid == 0).any()
    assert {"identity", "relu", "tanh"} <= set(ACTIVATIONS)
    for name, sigma in ACTIVATIONS.items():
        values = sigma(grid)
        assert values.shape == grid.shape, name
        assert bool((grid * values >= 0).all()), f"{name}: x·σ(x) < 0 at x = {grid[grid * values < 0][:3].tolist()}"


def test_gradient_flow_validates_arguments():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; choose one of \['identity', 'relu', 'tanh'\]"):
        cg.GradientFlow(DirichletEnergy(), activation="gelu")
    with pytest.raises(TypeError, match="activation must be a name, a callable or None"):
        cg.GradientFlow(DirichletEnergy(), activation=3)
    with pytest.raises(TypeError, match="energy must be an Energy or an EnergySchedule"):
        cg.GradientFlow(torch.nn.Linear(2, 2))


def test_bind_does_not_mutate_the_flow():
    graph, energy, x0 = case(2)
    flow = cg.GradientFlow(energy)
    before = set(vars(flow))
    bound = flow.bind(graph, x0)
    assert set(vars(flow)) == before
    assert bound.flow is flow and bound.graph is graph and bound.x0 is x0
    assert bound.captured_tensors() == (x0,)
    assert flow.bind(graph).captured_tensors() == ()
    assert [p for p in bound.parameters()] == [p for p in flow.parameters()]


# --- EnergySchedule -------------------------------------------------------------------------------------------------


def schedule_case(num, seed=0, n=7, d=3, source=True, activation=None):
    graph = random_graph(n, 0.35, seed)
    pieces = [graff_energy(d, w="diag_dom", omega="diag", source=source, seed=seed * 10 + k) for k in range(num)]
    return graph, pieces, random_features(n, d, seed + 7)


@pytest.mark.parametrize("tau", [0.25, 0.5])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_schedule_euler_step_k_uses_piece_k(tau, activation):
    num = 4
    graph, pieces, x0 = schedule_case(num)
    schedule = cg.EnergySchedule(pieces, t_end=num * tau)
    sol = cg.integrate(cg.GradientFlow(schedule, activation).bind(graph, x0), x0, num * tau, method="euler",
                       step_size=tau)
    assert sol.stats.steps_accepted == num
    x = x0
    for energy in pieces:
        x = GRAFFConv(3, step_size=tau, energy=energy, activation=activation)(x, x0, graph)
    assert torch.equal(sol.final, x)
    # The order of the pieces matters, so the equality above is not an accident.
    reordered = cg.EnergySchedule(pieces[::-1], t_end=num * tau)
    other = cg.integrate(cg.GradientFlow(reordered, activation).bind(graph, x0), x0, num * tau, method="euler",
                         step_size=tau)
    assert not torch.allclose(other.final, sol.final)


def test_schedule_with_non_dyadic_step():
    # τ = 0.1: the grid points k·τ are not exact; integrate snaps them onto the piece boundaries, so step k
    # still uses piece k.
    num, tau = 3, 0.1
    graph, pieces, x0 = schedule_case(num, seed=1)
    schedule = cg.EnergySchedule(pieces, t_end=num * tau)
    assert [schedule.index(t) for t in [0.0, *schedule.boundaries()]] == list(range(num))
    assert schedule.index(num * tau) == num - 1 and schedule.index(100.0) == num - 1
    sol = cg.integrate(cg.GradientFlow(schedule).bind(graph, x0), x0, num * tau, method="euler", step_size=tau)
    x = x0
    for energy in pieces:
        x = GRAFFConv(3, step_size=tau, energy=energy)(x, x0, graph)
    torch.testing.assert_close(sol.final, x, rtol=1e-14, atol=1e-14)


def test_schedule_index_boundaries():
    schedule = cg.EnergySchedule([DirichletEnergy() for _ in range(4)], t_end=2.0)
    assert [schedule.index(t) for t in (0.0, 0.49, 0.5, 0.99, 1.0, 1.5, 1.9999, 2.0)] == [0, 0, 1, 1, 2, 3, 3, 3]
    assert schedule.at(torch.tensor(1.2)) is schedule.energies[2]


def test_schedule_with_dopri5_matches_piecewise_exponential():
    num, t_end = 3, 1.2
    graph, pieces, x0 = schedule_case(num, seed=2, source=False)
    schedule = cg.EnergySchedule(pieces, t_end=t_end)
    sol = cg.integrate(cg.GradientFlow(schedule).bind(graph), x0, t_end, method="dopri5", rtol=1e-9, atol=1e-11)
    assert torch.isfinite(sol.final).all()
    v = x0.reshape(-1)
    for energy in pieces:  # dF/dt = -H F in row-major vec form: exact flow exp(-(T/K) H) per piece
        v = torch.linalg.matrix_exp(-(t_end / num) * hessian_graff(energy, graph)) @ v
    torch.testing.assert_close(sol.final.reshape(-1), v, rtol=1e-6, atol=1e-7)


def test_schedule_validation_and_bind_checks_every_piece():
    with pytest.raises(ValueError, match="at least one energy"):
        cg.EnergySchedule([], t_end=1.0)
    with pytest.raises(ValueError, match="t_end must be positive"):
        cg.EnergySchedule([DirichletEnergy()], t_end=0.0)
    schedule = cg.EnergySchedule([DirichletEnergy(), DirichletEnergy()], t_end=1.0)
    rw = random_graph(5, 0.3, 0, normalization="rw")
    with pytest.raises(ValueError, match="normalization='sym'"):
        cg.GradientFlow(schedule).bind(rw)


def test_schedule_parameters_are_per_piece():
    pieces = [graff_energy(3, seed=k) for k in range(4)]
    schedule = cg.EnergySchedule(pieces, t_end=1.0)
    per_piece = sum(p.numel() for p in pieces[0].parameters())
    assert sum(p.numel() for p in cg.GradientFlow(schedule).parameters()) == 4 * per_piece


def test_normalized_field_is_standardised_per_channel_before_the_activation():
    graph, pieces, x0 = schedule_case(1, seed=3)
    energy = pieces[0]
    plain = cg.GradientFlow(energy)(torch.tensor(0.0), x0, graph, x0)
    normalized = cg.GradientFlow(energy, normalize=True)(torch.tensor(0.0), x0, graph, x0)
    torch.testing.assert_close(normalized.mean(dim=0), torch.zeros(x0.size(1), dtype=x0.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(normalized.var(dim=0, unbiased=False), torch.ones(x0.size(1), dtype=x0.dtype),
                               atol=1e-4, rtol=0)  # BatchNorm's eps = 1e-5 in the denominator
    expected = (plain - plain.mean(dim=0)) / torch.sqrt(plain.var(dim=0, unbiased=False) + 1e-5)
    torch.testing.assert_close(normalized, expected, rtol=1e-12, atol=1e-12)
    relu = cg.GradientFlow(energy, activation="relu", normalize=True)(torch.tensor(0.0), x0, graph, x0)
    torch.testing.assert_close(relu, torch.relu(expected), rtol=1e-12, atol=1e-12)


def test_bind_checks_x0_against_the_energy_and_the_graph():
    graph = random_graph(6)
    flow = cg.GradientFlow(graff_energy(3))
    with pytest.raises(ValueError, match="GRAFFEnergy has 3 channels but x0 has 1"):
        flow.bind(graph, random_features(6, 1))
    with pytest.raises(ValueError, match="x0 has 2 rows but the graph has 6 nodes"):
        flow.bind(graph, random_features(2, 3))
    # A state of another width than the bound x0 fails at the first evaluation, not by broadcasting.
    with pytest.raises(ValueError, match="channels but x has 1"):
        cg.integrate(flow.bind(graph, random_features(6, 3)), random_features(6, 1), 1.0, step_size=0.5)


def test_schedule_pieces_must_be_energies_of_one_width():
    with pytest.raises(TypeError, match="EnergySchedule takes Energy modules, got Linear"):
        cg.EnergySchedule([torch.nn.Linear(2, 2)], t_end=1.0)
    with pytest.raises(ValueError, match="the same channels, got \\[2, 3\\]"):
        cg.EnergySchedule([graff_energy(2), graff_energy(3)], t_end=1.0)
    with pytest.raises(ValueError, match="t_end must be positive"):
        cg.EnergySchedule([graff_energy(2)], t_end=float("inf"))


def test_normalized_field_needs_two_nodes():
    graph = cg.Graph.from_edge_index(torch.empty(2, 0, dtype=torch.long), 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs at least 2 nodes"):
        cg.GradientFlow(DirichletEnergy(), normalize=True).bind(graph)
