"""integrate: fixed grids, convergence order, adjoint vs direct gradients, grad modes, statistics and failures."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torchdiffeq
from helpers import (
    DTYPE,
    CountingField,
    LinearField,
    QuarticEnergy,
    graff_energy,
    permute_edge_index,
    random_edge_index,
    random_features,
    random_graph,
    randomize_,
)
from torch import nn

import continuous_gnn as cg
from continuous_gnn import Graph, IntegrationError
from continuous_gnn.energies import ChannelDirichletEnergy, DirichletEnergy
from continuous_gnn.ode.methods import ADAPTIVE_METHODS, FIXED_METHODS
from continuous_gnn.ode.settings import DEFAULT_MAX_GRID_STEPS

# --- fixed grids ----------------------------------------------------------------------------------------------------


def test_fixed_grid_step_size_multiple():
    grid = cg.fixed_grid(3.0, step_size=0.25)
    assert grid.dtype == torch.float64
    assert len(grid) - 1 == 12
    assert torch.equal(grid, torch.arange(13, dtype=torch.float64) * 0.25)


def test_fixed_grid_fractional_last_step():
    grid = cg.fixed_grid(3.194, step_size=1.0)
    assert grid.tolist() == [0.0, 1.0, 2.0, 3.0, 3.194]
    steps = grid.diff()
    assert abs(float(steps[-1]) - 0.194) < 1e-12


def test_fixed_grid_rounding_gives_exact_count():
    grid = cg.fixed_grid(0.14, step_size=0.01)
    assert len(grid) - 1 == 14
    assert float(grid[-1]) == 0.14
    torch.testing.assert_close(grid.diff(), torch.full((14,), 0.01, dtype=DTYPE), rtol=1e-12, atol=1e-15)
    # torchdiffeq's own step_size grid takes a spurious 15th step here: the reason the grid is built explicitly.
    counter = CountingField(LinearField(1.0))
    torchdiffeq.odeint(counter, torch.ones(2, dtype=DTYPE), torch.tensor([0.0, 0.14], dtype=DTYPE), method="euler",
                       options={"step_size": 0.01})
    assert counter.calls == 15
    counter = CountingField(LinearField(1.0))
    sol = cg.integrate(counter, torch.ones(2, dtype=DTYPE), 0.14, method="euler", step_size=0.01)
    assert counter.calls == sol.stats.nfe_forward == sol.stats.steps_accepted == 14


@pytest.mark.parametrize("steps", [1, 3, 7, 10])
def test_fixed_grid_num_steps(steps):
    grid = cg.fixed_grid(2.3, num_steps=steps)
    assert len(grid) - 1 == steps
    assert float(grid[0]) == 0.0 and float(grid[-1]) == 2.3
    torch.testing.assert_close(grid.diff(), torch.full((steps,), 2.3 / steps, dtype=DTYPE))


def test_fixed_grid_validation():
    # integrate's default method is euler: the message says so, and how to ask for an adaptive solve instead
    with pytest.raises(ValueError, match=r"the fixed-grid method 'euler' needs exactly one of step_size or "
                                         r"num_steps, got neither; .* such as 'dopri5' with rtol/atol"):
        cg.integrate(lambda t, x: -x, torch.ones(2), 1.0)
    with pytest.raises(ValueError, match="'rk4' needs exactly one of step_size or num_steps, got both"):
        cg.FixedGrid("rk4", step_size=0.5, num_steps=2)
    with pytest.raises(ValueError, match="exactly one of step_size or num_steps"):
        cg.fixed_grid(1.0)
    with pytest.raises(ValueError, match="exactly one of step_size or num_steps"):
        cg.fixed_grid(1.0, step_size=0.5, num_steps=2)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        cg.fixed_grid(1.0, num_steps=0)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        cg.fixed_grid(1.0, num_steps=2.0)
    with pytest.raises(ValueError, match="step_size must be positive"):
        cg.fixed_grid(1.0, step_size=-0.1)


@pytest.mark.parametrize("method, per_step", [("euler", 1), ("rk4", 4)])
def test_fractional_grid_in_integrate(method, per_step):
    graph = random_graph(6, 0.4, 0)
    energy = graff_energy(3, seed=1)
    x0 = random_features(6, 3, 2)
    field = CountingField(cg.GradientFlow(energy).bind(graph, x0))
    sol = cg.integrate(field, x0, 3.194, method=method, step_size=1.0)
    assert sol.stats.steps_accepted == 4
    assert sol.stats.nfe_forward == field.calls == 4 * per_step
    assert abs(sol.stats.last_dt - 0.194) < 1e-12
    assert sol.stats.t_final == pytest.approx(3.194, abs=1e-12)
    if method == "euler":
        grid = cg.fixed_grid(3.194, step_size=1.0)
        x = x0
        for k in range(4):
            x = x + (grid[k + 1] - grid[k]) * field.func(grid[k], x)
        assert torch.equal(sol.final, x)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_schedule_on_a_fixed_grid_is_the_composition_of_one_step_solves_per_piece(method):
    # Grid points k·τ within rounding of the jumps kT/K are snapped onto them and every stage is evaluated
    # strictly inside its step, so step k is one step of piece k alone, for non-dyadic τ too.
    graph = random_graph(7, 0.35, 0)
    x0 = random_features(7, 3, 7)
    for pieces_count in range(2, 12):
        pieces = [graff_energy(3, seed=k) for k in range(pieces_count)]
        for tau in (0.1, 0.3, 0.7, 0.15):
            t_end = pieces_count * tau
            schedule = cg.EnergySchedule(pieces, t_end=t_end)
            with torch.no_grad():
                sol = cg.integrate(cg.GradientFlow(schedule).bind(graph, x0), x0, t_end, method=method,
                                   step_size=tau)
                x = x0
                for energy in pieces:
                    x = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x, tau, method=method, num_steps=1).final
            assert sol.stats.steps_accepted == pieces_count
            torch.testing.assert_close(sol.final, x, rtol=1e-12, atol=1e-12, msg=f"K={pieces_count}, τ={tau}")


# --- convergence order ----------------------------------------------------------------------------------------------


def heat_flow_slope(method: str) -> tuple[float, list[float]]:
    """Slope of log error against log step (τ = 2^-3 ... 2^-7) on the heat flow, exact by matrix_exp."""
    graph = random_graph(5, 0.4, 3)
    x0 = random_features(5, 2, 4)
    t_end = 1.0
    lap = torch.eye(5, dtype=DTYPE) - graph.to_dense()
    exact = torch.linalg.matrix_exp(-t_end * lap) @ x0
    field = cg.GradientFlow(DirichletEnergy()).bind(graph)
    taus = [2.0**-k for k in range(3, 8)]
    errors = [float((cg.integrate(field, x0, t_end, method=method, step_size=tau).final - exact).norm())
              for tau in taus]
    logs = torch.tensor([[math.log(t), 1.0] for t in taus], dtype=DTYPE)
    slope = torch.linalg.lstsq(logs, torch.tensor([math.log(e) for e in errors], dtype=DTYPE)[:, None]).solution[0, 0]
    return float(slope), errors


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun2", "heun3", "rk4", "implicit_adams"])
def test_convergence_order_on_heat_flow(method):
    slope, errors = heat_flow_slope(method)
    order = FIXED_METHODS[method]
    # At least the nominal order; implicit_adams's multistep start makes it look a little better on this range.
    assert order - 0.3 < slope < order + 0.7, (errors, slope)


@pytest.mark.parametrize("method", list(ADAPTIVE_METHODS))
def test_adaptive_methods_propagate_a_solution_of_their_listed_order(method):
    # Every step accepted (tolerances far above any error) and held at h by max_step, so the error of the
    # propagated solution falls as h^order; a nonlinear, time-dependent field, so that no order is met by luck.
    def pendulum(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[1], -torch.sin(x[0])]) * (1 + 0.5 * torch.cos(t))

    x0 = torch.tensor([1.0, 0.0], dtype=DTYPE)
    exact = cg.integrate(pendulum, x0, 2.0, solver=cg.Adaptive("dopri5", rtol=1e-13, atol=1e-14)).final
    order = ADAPTIVE_METHODS[method]
    steps = (0.5, 0.25) if order > 5 else (0.25, 0.125)  # binary fractions: the steps end at T exactly
    errors = []
    for h in steps:
        solver = cg.Adaptive(method, rtol=1e6, atol=1e6, options={"first_step": h, "max_step": h})
        solution = cg.integrate(pendulum, x0, 2.0, solver=solver)
        assert solution.stats.steps_accepted == round(2.0 / h) and solution.stats.steps_rejected == 0
        errors.append(float((solution.final - exact).abs().max()))
    slope = math.log2(errors[0] / errors[1])
    assert order - 0.3 < slope < order + 0.7, (errors, slope)


def test_explicit_adams_diverges_as_the_step_shrinks():
    # docs/index.md and solvers.FIXED_METHODS warn that torchdiffeq's explicit_adams does not reach its order.
    slope, errors = heat_flow_slope("explicit_adams")
    assert slope < 0 and errors[-1] > errors[0], (errors, slope)


# --- adjoint vs direct ----------------------------------------------------------------------------------------------


class Problem:
    """encoder(x_in) = h0 → flow of `energy` from h0 with source h0 → loss; gradients w.r.t. all leaves."""

    def __init__(self, energy, n=6, p=4, d=3, seed=0):
        self.graph = random_graph(n, 0.4, seed)
        self.x_in = random_features(n, p, seed + 1).requires_grad_()
        self.encoder = randomize_(nn.Linear(p, d).double(), seed + 2, scale=0.5)
        self.energy = energy
        self.flow = cg.GradientFlow(energy)
        self.target = random_features(n, d, seed + 3)

    def leaves(self):
        return [self.x_in, *self.encoder.parameters(), *self.energy.parameters()]

    def gradients(self, t_end=1.0, source_only=False, **solver):
        h0 = self.encoder(self.x_in)
        start = h0.detach() if source_only else h0
        sol = cg.integrate(self.flow.bind(self.graph, h0), start, t_end, **solver)
        loss = ((sol.final - self.target) ** 2).sum() + torch.sin(sol.final).sum()
        grads = torch.autograd.grad(loss, self.leaves())
        return sol, grads


def relative_gap(a, b):
    num = math.sqrt(sum(float((x - y).norm()) ** 2 for x, y in zip(a, b)))
    den = math.sqrt(sum(float(y.norm()) ** 2 for y in b))
    return num / den


def per_leaf_gap(a, b):
    return max(float((x - y).norm() / y.norm()) for x, y in zip(a, b))


ENERGY_FACTORIES = {
    "graff": lambda: graff_energy(3, w="diag_dom", omega="diag", source=True, seed=5),
    "autograd": lambda: QuarticEnergy(3, seed=5),
}


@pytest.mark.parametrize("kind", ENERGY_FACTORIES)
@pytest.mark.parametrize("source_only", [False, True])
@pytest.mark.parametrize("seminorm", [False, True])
def test_adjoint_matches_direct_dopri5(kind, source_only, seminorm):
    problem = Problem(ENERGY_FACTORIES[kind]())
    solver = dict(method="dopri5", rtol=1e-8, atol=1e-10)
    direct_sol, direct = problem.gradients(source_only=source_only, **solver)
    adjoint_sol, adjoint = problem.gradients(source_only=source_only, adjoint=True, seminorm=seminorm, **solver)
    assert all(float(g.norm()) > 1e-6 for g in direct)  # every leaf, the encoder included, gets a gradient
    assert per_leaf_gap(adjoint, direct) < 1e-5
    torch.testing.assert_close(adjoint_sol.final, direct_sol.final, rtol=0, atol=0)
    assert direct_sol.stats.nfe_backward == 0
    assert adjoint_sol.stats.nfe_backward > 0 and adjoint_sol.stats.steps_backward > 0
    assert adjoint_sol.stats.adjoint and not direct_sol.stats.adjoint


@pytest.mark.parametrize("kind", ENERGY_FACTORIES)
def test_adjoint_matches_direct_fixed_grid(kind):
    problem = Problem(ENERGY_FACTORIES[kind]())
    # rk4 with a small step: the backward rk4 solve is accurate to O(τ⁴).
    _, direct = problem.gradients(method="rk4", step_size=1 / 16)
    _, adjoint = problem.gradients(method="rk4", step_size=1 / 16, adjoint=True)
    assert per_leaf_gap(adjoint, direct) < 1e-5
    # Euler: the adjoint's backward Euler differs from backprop through forward Euler by O(τ).
    gaps = []
    for tau in (1 / 16, 1 / 32, 1 / 64):
        sol, direct = problem.gradients(method="euler", step_size=tau)
        adj_sol, adjoint = problem.gradients(method="euler", step_size=tau, adjoint=True)
        assert adj_sol.stats.nfe_backward == adj_sol.stats.steps_backward == round(1 / tau)
        gaps.append(relative_gap(adjoint, direct))
    assert gaps[0] < 0.5
    for coarse, fine in zip(gaps, gaps[1:]):
        assert 0.35 < fine / coarse < 0.65, gaps  # first order: halving τ halves the gap


def test_adjoint_source_path_reaches_encoder():
    # The source term alone (initial state detached) carries gradient to the encoder, directly and by adjoint.
    problem = Problem(graff_energy(3, seed=6))
    _, direct = problem.gradients(source_only=True, method="rk4", step_size=1 / 16)
    _, adjoint = problem.gradients(source_only=True, method="rk4", step_size=1 / 16, adjoint=True)
    encoder_weight = 1
    assert float(direct[encoder_weight].norm()) > 1e-3
    torch.testing.assert_close(adjoint[encoder_weight], direct[encoder_weight], rtol=1e-5, atol=1e-8)
    # Without a source there is no path at all.
    problem = Problem(graff_energy(3, seed=6, source=False))
    h0 = problem.encoder(problem.x_in)
    sol = cg.integrate(problem.flow.bind(problem.graph, h0), h0.detach(), 1.0, method="euler", step_size=0.5)
    assert not sol.final.requires_grad or torch.autograd.grad(
        sol.final.sum(), problem.encoder.weight, allow_unused=True)[0] is None


def saved_bytes_of_forward_solve(t_end, adjoint):
    """Bytes (unique storages) that autograd saves for backward during one Euler (τ = 1) solve of a GRAFF flow."""
    graph = random_graph(12, 0.3, 3)
    flow = cg.GradientFlow(graff_energy(4, seed=3))
    h0 = random_features(12, 4, 4).requires_grad_()
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        sol = cg.integrate(flow.bind(graph, h0), h0, t_end, method="euler", step_size=1.0, adjoint=adjoint)
    assert sol.final.requires_grad and sol.stats.steps_accepted == t_end
    return sum(storages.values())


def test_adjoint_saved_memory_does_not_grow_with_the_number_of_steps():
    adjoint = [saved_bytes_of_forward_solve(t_end, adjoint=True) for t_end in (4, 64)]
    direct = [saved_bytes_of_forward_solve(t_end, adjoint=False) for t_end in (4, 64)]
    assert adjoint[0] > 0 and adjoint[0] == adjoint[1]
    assert direct[1] > 8 * direct[0]  # direct backprop stores every step (16 times as many here)


def test_direct_backprop_matches_gradcheck_for_autograd_energy():
    # Double backprop through the base-class autograd gradient is exact for the discretised solve.
    energy = QuarticEnergy(2, seed=3)
    graph = random_graph(4, 0.5, 1)

    def run(x0, alpha):
        energy.alpha.data.copy_(alpha.detach())
        field = cg.GradientFlow(energy).bind(graph, x0)
        return cg.integrate(field, x0, 0.5, method="rk4", step_size=0.25).final

    x0 = random_features(4, 2, 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: run(x, energy.alpha), (x0,))


# --- grad modes: no_grad and the adjoint's grad-free forward ------------------------------------------------------

GRAD_MODE_ENERGIES = {
    "dirichlet": lambda: DirichletEnergy(),
    "channel_dirichlet": lambda: randomize_(ChannelDirichletEnergy(3, init="glorot").double(), 1, 0.6),
    "graff_diag_dom": lambda: graff_energy(3, w="diag_dom", seed=1),
    "graff_diag_zero": lambda: graff_energy(3, w="diag", omega="zero", source=False, seed=2),
    "graff_asymm": lambda: graff_energy(3, w="asymm", seed=3, allow_asymmetric=True),
    "quartic_autograd": lambda: QuarticEnergy(3, seed=4),
    "quartic_autograd_nosrc": lambda: QuarticEnergy(3, seed=4, source=False),
}


@pytest.mark.parametrize("name", GRAD_MODE_ENERGIES)
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_no_grad_and_adjoint_for_every_energy(name, activation):
    energy = GRAD_MODE_ENERGIES[name]()
    graph = random_graph(6, 0.4, 2)
    flow = cg.GradientFlow(energy, activation)
    leaf = random_features(6, 3, 3).requires_grad_()
    solver = dict(method="rk4", step_size=1 / 32)  # adjoint vs direct gap ~1e-7 here, shrinking as O(τ⁴)

    def solve(**extra):
        x0 = 1.0 * leaf
        return cg.integrate(flow.bind(graph, x0), x0, 1.0, **solver, **extra)

    reference = solve()
    assert reference.final.requires_grad
    with torch.no_grad():
        inference = solve()
    assert not inference.final.requires_grad
    assert torch.equal(inference.final, reference.final)
    adaptive = dict(method="dopri5", rtol=1e-9, atol=1e-11)
    with torch.no_grad():
        adaptive_inference = cg.integrate(flow.bind(graph, leaf), leaf, 1.0, **adaptive)
    adaptive_reference = cg.integrate(flow.bind(graph, 1.0 * leaf), 1.0 * leaf, 1.0, **adaptive)
    torch.testing.assert_close(adaptive_inference.final, adaptive_reference.final.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(adaptive_inference.final, reference.final.detach(), rtol=1e-4, atol=1e-5)

    adjoint = solve(adjoint=True)
    assert torch.equal(adjoint.final, reference.final)
    leaves = [leaf, *energy.parameters()]
    weights = random_features(6, 3, 9)
    direct_grads = torch.autograd.grad((reference.final * weights).sum(), leaves)
    adjoint_grads = torch.autograd.grad((adjoint.final * weights).sum(), leaves)
    assert adjoint.stats.nfe_backward > 0
    for a, b in zip(adjoint_grads, direct_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


# --- permutation equivariance ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, solver", [("euler", {"step_size": 0.25}), ("dopri5", {"rtol": 1e-9, "atol": 1e-11})])
@pytest.mark.parametrize("seed", range(3))
def test_integrate_is_permutation_equivariant(method, solver, seed):
    n, d = 9, 3
    edge_index = random_edge_index(n, 0.3, seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    graph = Graph.from_edge_index(edge_index, n, dtype=DTYPE)
    permuted = Graph.from_edge_index(permute_edge_index(edge_index, perm), n, dtype=DTYPE)
    torch.testing.assert_close(permuted.to_dense(), graph.to_dense()[perm][:, perm], rtol=0, atol=1e-15)
    flow = cg.GradientFlow(graff_energy(d, seed=seed), activation="relu")
    x0 = random_features(n, d, seed + 1)
    out = cg.integrate(flow.bind(graph, x0), x0, 1.0, method=method, **solver).final
    out_perm = cg.integrate(flow.bind(permuted, x0[perm]), x0[perm], 1.0, method=method, **solver).final
    # dopri5's step choices see norms summed in another order, so agreement is to the solver tolerance.
    tol = 0.0 if method == "euler" else 1e-7
    torch.testing.assert_close(out_perm, out[perm], rtol=tol, atol=tol if method == "dopri5" else 1e-14)
    assert not torch.allclose(out[perm], out)  # the permutation is not trivial


# --- solve statistics -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, per_step", [("euler", 1), ("midpoint", 2), ("rk4", 4), ("heun3", 3)])
@pytest.mark.parametrize("steps", [1, 5])
def test_fixed_grid_statistics_count_calls(method, per_step, steps):
    graph = random_graph(5, 0.4, 0)
    energy = graff_energy(2, seed=0)
    x0 = random_features(5, 2, 0)
    field = CountingField(cg.GradientFlow(energy).bind(graph, x0))
    sol = cg.integrate(field, x0, 1.0, method=method, num_steps=steps)
    assert field.calls == sol.stats.nfe_forward == per_step * steps
    assert sol.stats.steps_accepted == steps and sol.stats.steps_rejected == 0
    assert sol.stats.nfe_backward == 0 and sol.stats.nfe == sol.stats.nfe_forward
    assert sol.stats.method == method
    assert sol.stats.last_dt == pytest.approx(1.0 / steps)
    assert sol.stats.as_dict()["nfe_forward"] == per_step * steps


DOPRI5_NODES = (0.2, 0.3, 0.8, 8 / 9, 1.0, 1.0)


def count_dopri5_steps(times, first_step_given):
    """Accepted and rejected dopri5 steps read off the call times alone (6 stages per attempt, FSAL)."""
    head = 1 if first_step_given else 2
    body = times[head:]
    assert len(body) % 6 == 0
    starts, ends = [], []
    for k in range(0, len(body), 6):
        first, last = body[k], body[k + 5]
        dt = (last - first) / (1 - DOPRI5_NODES[0])
        starts.append(last - dt)
        ends.append(last)
    accepted = rejected = 0
    for k in range(len(starts)):
        if k + 1 == len(starts) or abs(starts[k + 1] - ends[k]) < 1e-9:
            accepted += 1
        else:
            assert abs(starts[k + 1] - starts[k]) < 1e-9  # a rejected attempt restarts from the same time
            rejected += 1
    return accepted, rejected


@pytest.mark.parametrize("first_step", [None, 2.0])
def test_dopri5_statistics_count_calls(first_step):
    graph = random_graph(7, 0.4, 1)
    energy = graff_energy(3, seed=2)
    x0 = random_features(7, 3, 3)
    field = CountingField(cg.GradientFlow(energy).bind(graph, x0))
    options = {} if first_step is None else {"first_step": first_step}
    sol = cg.integrate(field, x0, 3.0, method="dopri5", rtol=1e-7, atol=1e-9, options=options)
    stats = sol.stats
    assert field.calls == stats.nfe_forward
    head = 2 if first_step is None else 1  # f(t0) plus the initial step-size probe unless first_step is given
    assert stats.nfe_forward == head + 6 * (stats.steps_accepted + stats.steps_rejected)
    accepted, rejected = count_dopri5_steps(field.times, first_step is not None)
    assert (stats.steps_accepted, stats.steps_rejected) == (accepted, rejected)
    assert accepted > 3
    if first_step is not None:
        assert rejected > 0  # a too-large first step is rejected
    assert stats.t_final >= 3.0 - 1e-12


def test_nfe_backward_counts_adjoint_calls():
    graph = random_graph(6, 0.4, 0)
    energy = graff_energy(3, seed=0)
    x0 = random_features(6, 3, 0).requires_grad_()
    field = CountingField(cg.GradientFlow(energy).bind(graph, x0))
    # The wrapper hides the bound field's captured source (its x0), so the adjoint refuses it until it is declared.
    with pytest.raises(ValueError, match=r"\['func.source'\]"):
        cg.integrate(field, x0, 1.0, method="rk4", num_steps=4, adjoint=True)
    sol = cg.integrate(field, x0, 1.0, method="rk4", num_steps=4, adjoint=True, adjoint_params=[x0])
    forward_calls = field.calls
    assert sol.stats.nfe_backward == 0
    sol.final.sum().backward()
    assert sol.stats.nfe_forward == forward_calls == 16
    assert sol.stats.nfe_backward == field.calls - forward_calls == 16
    assert sol.stats.steps_backward == 4
    assert sol.stats.nfe == 32

    direct = cg.integrate(field, x0, 1.0, method="rk4", num_steps=4)
    calls = field.calls
    direct.final.sum().backward()
    assert field.calls == calls and direct.stats.nfe_backward == 0


# --- failures -------------------------------------------------------------------------------------------------------


def test_max_nfe_on_stiff_problem():
    counter = CountingField(LinearField(1e6))
    started = time.perf_counter()
    with pytest.raises(IntegrationError, match="max nfe in dopri5.*raise max_nfe") as info:
        cg.integrate(counter, torch.ones(3, dtype=DTYPE), 10.0, method="dopri5", rtol=1e-4, atol=1e-6, max_nfe=200)
    assert time.perf_counter() - started < 5.0
    err = info.value
    assert err.reason == "max_nfe" and err.method == "dopri5" and err.nfe == 200
    assert counter.calls == 200
    assert err.rtol == 1e-4 and err.atol == 1e-6


def test_max_nfe_applies_to_the_adjoint_backward_solve():
    graph = random_graph(5, 0.4, 0)
    x0 = random_features(5, 2, 0).requires_grad_()
    sol = cg.integrate(cg.GradientFlow(graff_energy(2, seed=1)).bind(graph, x0), x0, 1.0, method="rk4",
                       num_steps=10, adjoint=True, adjoint_step_size=0.05, max_nfe=40)
    assert sol.stats.nfe_forward == 40  # the budget is per solve: the backward solve needs 80
    with pytest.raises(IntegrationError, match="adjoint backward solve") as info:
        sol.final.sum().backward()
    assert info.value.reason == "max_nfe"
    assert (info.value.method, info.value.rtol) == ("rk4", None) and "rtol=" not in str(info.value)


def test_max_steps_fixed_grid():
    with pytest.raises(IntegrationError, match="max steps") as info:
        cg.integrate(LinearField(1.0), torch.ones(2, dtype=DTYPE), 1.0, method="euler", step_size=0.1, max_steps=5)
    assert info.value.reason == "max_steps"


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom("inside the field"), AssertionError("user assertion"), ValueError("user")])
@pytest.mark.parametrize("method, solver", [("euler", {"step_size": 0.1}), ("dopri5", {})])
def test_user_exception_surfaces_unchanged(error, method, solver):
    calls = []

    def field(t, x):
        calls.append(t)
        if len(calls) == 3:
            raise error
        return -x

    with pytest.raises(type(error)) as info:
        cg.integrate(field, torch.ones(2, dtype=DTYPE), 1.0, method=method, **solver)
    assert info.value is error
    assert type(info.value) is type(error)


@pytest.mark.parametrize("method, solver", [("euler", {"step_size": 1.0}), ("dopri5", {})])
def test_non_finite_field(method, solver):
    with pytest.raises(IntegrationError, match="non finite") as info:
        cg.integrate(lambda t, x: x * float("nan"), torch.ones(2, dtype=DTYPE), 1.0, method=method, **solver)
    assert info.value.reason == "non_finite" and info.value.method == method
    # Blow-up after a few steps: 1 → 1e300 → inf.
    with pytest.raises(IntegrationError, match="smaller step size") as info:
        cg.integrate(lambda t, x: 1e300 * x, torch.ones(2, dtype=DTYPE), 3.0, method="euler", step_size=1.0)
    assert info.value.reason == "non_finite" and info.value.nfe == 2 and info.value.t == 1.0


def test_invalid_arguments():
    x0 = torch.ones(2, dtype=DTYPE)
    field = LinearField(1.0)
    with pytest.raises(ValueError, match="unknown method 'rk45'; valid names are: euler, .*dopri5"):
        cg.integrate(field, x0, 1.0, method="rk45")
    with pytest.raises(ValueError, match="rtol/atol apply to adaptive methods"):
        cg.integrate(field, x0, 1.0, method="euler", step_size=0.1, rtol=1e-3)
    with pytest.raises(ValueError, match="step_size/num_steps apply to fixed-grid methods"):
        cg.integrate(field, x0, 1.0, method="dopri5", step_size=0.1)
    with pytest.raises(ValueError, match="options .* do not apply to the fixed-grid method"):
        cg.integrate(field, x0, 1.0, method="euler", step_size=0.1, options={"first_step": 0.1})
    with pytest.raises(ValueError, match="seminorm only changes adaptive step-size control"):
        cg.integrate(field, x0, 1.0, method="euler", step_size=0.1, adjoint=True, seminorm=True)
    with pytest.raises(ValueError, match="seminorm"):
        cg.integrate(field, x0, 1.0, method="dopri5", adjoint=True, adjoint_method="rk4", adjoint_step_size=0.1,
                     seminorm=True)
    with pytest.raises(ValueError, match="unknown adjoint_method 'backsolve'"):
        cg.integrate(field, x0, 1.0, method="dopri5", adjoint=True, adjoint_method="backsolve")
    with pytest.raises(ValueError, match="exactly one of step_size or num_steps"):
        cg.integrate(field, x0, 1.0, method="euler")
    with pytest.raises(ValueError, match="t_end must be a positive finite time"):
        cg.integrate(field, x0, 0.0, method="euler", step_size=0.1)
    with pytest.raises(ValueError, match="x0 contains inf or nan"):
        cg.integrate(field, torch.tensor([1.0, float("inf")]), 1.0, method="euler", step_size=0.1)
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        cg.integrate(field, torch.ones(2, dtype=torch.long), 1.0, method="euler", step_size=0.1)
    with pytest.raises(ValueError, match="max_nfe must be a positive integer"):
        cg.integrate(field, x0, 1.0, method="dopri5", max_nfe=0)
    with pytest.raises(ValueError, match="not on the fixed grid"):
        cg.integrate(field, x0, 1.0, method="euler", step_size=0.25, save_at=[0.3])
    with pytest.raises(ValueError, match="outside"):
        cg.integrate(field, x0, 1.0, method="dopri5", save_at=[1.5])
    with pytest.raises(TypeError, match="func must be callable"):
        cg.integrate(3, x0, 1.0, method="euler", step_size=0.1)


def test_directed_graph_refused_unless_symmetrize():
    with pytest.raises(ValueError, match="to_undirected"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 2]]), 3)
    Graph.from_edge_index(torch.tensor([[0, 1], [1, 2]]), 3, symmetrize=True)


def test_adjoint_refuses_untracked_captured_tensors():
    x0 = torch.ones(3, dtype=DTYPE)
    rate = torch.tensor(0.5, dtype=DTYPE, requires_grad=True)

    def closure(t, x):
        return -rate * x

    with pytest.raises(ValueError, match=r"not adjoint parameters: \['rate'\]"):
        cg.integrate(closure, x0, 1.0, method="rk4", step_size=0.25, adjoint=True)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = rate * 2  # a tensor attribute that requires grad, not a Parameter

        def forward(self, t, x):
            return -self.scale * x

    with pytest.raises(ValueError, match=r"\['scale'\].*adjoint_params"):
        cg.integrate(Field(), x0, 1.0, method="rk4", step_size=0.25, adjoint=True)

    # Declared through adjoint_params it works and matches direct backprop.
    direct = torch.autograd.grad(cg.integrate(closure, x0, 1.0, method="rk4", step_size=0.125).final.sum(), rate)
    sol = cg.integrate(closure, x0, 1.0, method="rk4", step_size=0.125, adjoint=True, adjoint_params=[rate])
    adjoint = torch.autograd.grad(sol.final.sum(), rate)
    torch.testing.assert_close(adjoint[0], direct[0], rtol=1e-6, atol=0)
    # A partial's arguments and a callable object's attributes are captured tensors too.
    import functools

    def scaled(t, x, rate):
        return -rate * x

    with pytest.raises(ValueError, match=r"not adjoint parameters: \['rate'\]"):
        cg.integrate(functools.partial(scaled, rate=rate), x0, 1.0, method="rk4", step_size=0.25, adjoint=True)

    class Decay:
        def __init__(self):
            self.speed = rate

        def __call__(self, t, x):
            return -self.speed * x

    with pytest.raises(ValueError, match=r"not adjoint parameters: \['Decay.speed'\]"):
        cg.integrate(Decay(), x0, 1.0, method="rk4", step_size=0.25, adjoint=True)
    # The x0 captured by bind() is declared by the bound field, so no error.
    x0_leaf = random_features(4, 2, 0).requires_grad_()
    bound = cg.GradientFlow(graff_energy(2, seed=0)).bind(random_graph(4, 0.5, 0), x0_leaf)
    cg.integrate(bound, x0_leaf.detach(), 1.0, method="euler", step_size=0.5, adjoint=True)


def test_save_at_states_match_hand_loop():
    graph = random_graph(6, 0.4, 0)
    energy = graff_energy(3, seed=0)
    x0 = random_features(6, 3, 0)
    field = cg.GradientFlow(energy).bind(graph, x0)
    sol = cg.integrate(field, x0, 2.0, method="euler", step_size=0.25, save_at=[0.5, 1.25])
    assert sol.times.tolist() == [0.0, 0.5, 1.25, 2.0]
    # the states come back in save_at's order, so it must be that of time; 0 and T are the ends themselves
    for bad in ([1.25, 0.5], [0.5, 0.5]):
        with pytest.raises(ValueError, match=r"save_at must be strictly increasing, .* sort it and drop repeats"):
            cg.integrate(field, x0, 2.0, method="euler", step_size=0.25, save_at=bad)
    with pytest.raises(TypeError, match="save_at must be a sequence of times"):
        cg.integrate(field, x0, 2.0, method="euler", step_size=0.25, save_at=["0.5"])
    ends = cg.integrate(field, x0, 2.0, method="euler", step_size=0.25, save_at=[0.0, 0.5, 2.0])
    assert ends.times.tolist() == [0.0, 0.5, 2.0]
    assert sol.states.shape == (4, 6, 3)
    x, hand = x0, {0.0: x0}
    for k in range(8):
        x = x + 0.25 * field(torch.tensor(0.25 * k, dtype=DTYPE), x)
        hand[0.25 * (k + 1)] = x
    for t, state in zip(sol.times.tolist(), sol.states):
        assert torch.equal(state, hand[t])
    assert torch.equal(sol.final, sol.states[-1])


def test_on_step_reports_every_step_end_inside_the_interval():
    graph = random_graph(6, 0.4, 0)
    x0 = random_features(6, 3, 0)
    field = cg.GradientFlow(graff_energy(3, seed=0)).bind(graph, x0)
    # A fixed grid: its interior points, with the very states the solve holds there.
    seen = []
    sol = cg.integrate(field, x0, 2.1, method="rk4", step_size=0.5, on_step=lambda t, x: seen.append((t, x)))
    assert [t for t, _ in seen] == [0.5, 1.0, 1.5, 2.0]
    saved = cg.integrate(field, x0, 2.1, method="rk4", step_size=0.5, save_at=[0.5, 1.0, 1.5, 2.0])
    for (_, state), expected in zip(seen, saved.states[1:]):
        assert torch.equal(state, expected)
    assert sol.stats.steps_accepted == 5 and torch.equal(sol.final, saved.final)
    # An adaptive method: its accepted steps but the last, which may end past T; rejections are not reported.
    seen.clear()
    sol = cg.integrate(field, x0, 2.0, method="dopri5", rtol=1e-8, atol=1e-10, options={"first_step": 0.5},
                       on_step=lambda t, x: seen.append((t, x.clone())))
    times = [t for t, _ in seen]
    assert sol.stats.steps_rejected > 0 and len(times) == sol.stats.steps_accepted - 1
    assert all(0.0 < a < b < 2.0 for a, b in zip(times, times[1:]))
    at = cg.integrate(field, x0, 2.0, method="dopri5", rtol=1e-8, atol=1e-10, options={"first_step": 0.5}, save_at=times)
    assert at.stats.steps_accepted == sol.stats.steps_accepted  # output times do not move an adaptive step
    for (_, state), expected in zip(seen, at.states[1:-1]):
        torch.testing.assert_close(state, expected, rtol=1e-12, atol=1e-12)
    # Not reported: the adjoint's backward steps.
    seen.clear()
    leaf = x0.clone().requires_grad_()
    cg.integrate(field, leaf, 2.0, method="euler", step_size=0.5, adjoint=True,
                 on_step=lambda t, x: seen.append(t)).final.sum().backward()
    assert seen == [0.5, 1.0, 1.5]
    with pytest.raises(TypeError, match="on_step must be callable as on_step"):
        cg.integrate(field, x0, 2.0, method="euler", step_size=0.5, on_step=[])
    with pytest.raises(ValueError, match="on_step reports the solver's steps, which 'scipy_solver' does not"):
        cg.integrate(field, x0, 2.0, method="scipy_solver", options={"solver": "RK45"}, on_step=print)


# --- arguments that would otherwise be ignored, broadcast or run away -------------------------------------------------


@pytest.mark.parametrize("method, kwargs", [("euler", {"step_size": 0.5}), ("rk4", {"step_size": 0.5}),
                                            ("dopri5", {})])
@pytest.mark.parametrize("wrong", ["rows", "columns", "dtype", "none"])
def test_field_output_must_match_the_state(method, kwargs, wrong):
    x0 = torch.ones(3, 4, dtype=DTYPE)
    outputs = {"rows": lambda s: s[:1], "columns": lambda s: s[:, :1], "dtype": lambda s: s.float(),
               "none": lambda s: None}
    field = outputs[wrong]
    with pytest.raises(ValueError, match="f\\(t, x\\) must return a tensor of x's shape and dtype"):
        cg.integrate(lambda t, s: field(s), x0, 1.0, method=method, **kwargs)


def test_a_runaway_fixed_grid_is_refused_before_it_is_built():
    x0 = torch.ones(2, dtype=DTYPE)
    with pytest.raises(IntegrationError, match=r"T / step_size = 1 / 1e-09 gives 1e\+09 steps, more than the "
                                               r"1,000,000 a solve allows.*Fix: use a larger step_size"):
        cg.integrate(LinearField(1.0), x0, 1.0, method="euler", step_size=1e-9)
    with pytest.raises(IntegrationError, match="the grid has 1e\\+12 steps, more than the 1,000,000"):
        cg.integrate(LinearField(1.0), x0, 1.0, method="euler", num_steps=10**12)
    # The budget is max_steps when given: a grid of exactly that length runs, one step more does not.
    assert cg.integrate(LinearField(1.0), x0, 1.0, method="euler", num_steps=20, max_steps=20).stats.nfe == 20
    with pytest.raises(IntegrationError, match="21 steps, more than max_steps = 20.*or raise max_steps") as info:
        cg.integrate(LinearField(1.0), x0, 1.0, method="euler", num_steps=21, max_steps=20)
    assert info.value.reason == "max_steps" and info.value.nfe == 0
    assert DEFAULT_MAX_GRID_STEPS == 1_000_000


def test_a_fixed_grid_longer_than_max_nfe_is_refused_before_any_evaluation():
    x0 = torch.ones(2, dtype=DTYPE)
    calls = []

    def field(t, x):
        calls.append(t)
        return -x

    assert cg.integrate(field, x0, 1.0, method="euler", num_steps=10, max_nfe=10).stats.nfe == 10
    calls.clear()
    with pytest.raises(IntegrationError, match="gives 11 steps, more than the evaluation budget max_nfe = 10.*"
                                               "or raise max_nfe") as info:
        cg.integrate(field, x0, 1.1, method="euler", step_size=0.1, max_nfe=10)
    assert info.value.reason == "max_nfe" and calls == []


@pytest.mark.parametrize("name, value", [("adjoint_method", "rk4"), ("adjoint_step_size", 0.1),
                                         ("adjoint_rtol", 1e-3), ("adjoint_atol", 1e-5), ("seminorm", True)])
def test_adjoint_options_without_the_adjoint_are_refused(name, value):
    with pytest.raises(ValueError, match=f"{name} only apply with adjoint=True"):
        cg.integrate(LinearField(1.0), torch.ones(2, dtype=DTYPE), 1.0, method="dopri5", **{name: value})


def test_adjoint_params_must_be_tensors():
    field = LinearField(1.0)
    x0 = torch.ones(2, dtype=DTYPE)
    for bad in ([1.0], torch.ones(2, requires_grad=True)):
        with pytest.raises(TypeError, match="adjoint_params must be a list or tuple of tensors"):
            cg.integrate(field, x0, 1.0, method="euler", step_size=0.5, adjoint=True, adjoint_params=bad)


GLOBAL_WEIGHT = torch.randn(2, 2, dtype=DTYPE, requires_grad=True)


class _ListHolder(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weights = [weight]

    def forward(self, t, x):
        return x @ self.weights[0]


class _GlobalReader(nn.Module):
    def forward(self, t, x):
        return x @ GLOBAL_WEIGHT


@pytest.mark.parametrize("field", [lambda t, x: x @ GLOBAL_WEIGHT, _GlobalReader(), _ListHolder(GLOBAL_WEIGHT)],
                         ids=["lambda-global", "module-global", "list-attribute"])
def test_adjoint_refuses_tensors_it_would_not_differentiate(field):
    x0 = torch.ones(3, 2, dtype=DTYPE)
    with pytest.raises(ValueError, match="GLOBAL_WEIGHT|weights\\[0\\]"):
        cg.integrate(field, x0, 1.0, method="euler", step_size=0.5, adjoint=True)
    # Declared, the same tensor gets the direct-backprop gradient.
    solver = dict(method="dopri5", rtol=1e-9, atol=1e-11)
    sol = cg.integrate(field, x0, 1.0, **solver, adjoint=True, adjoint_params=[GLOBAL_WEIGHT])
    (adjoint,) = torch.autograd.grad(sol.final.sum(), GLOBAL_WEIGHT)
    (expected,) = torch.autograd.grad(cg.integrate(field, x0, 1.0, **solver).final.sum(), GLOBAL_WEIGHT)
    torch.testing.assert_close(adjoint, expected, rtol=1e-6, atol=1e-8)


def test_scalar_tensors_are_accepted_as_numbers_and_others_refused():
    x0 = torch.ones(2, dtype=DTYPE)
    sol = cg.integrate(LinearField(1.0), x0, torch.tensor(1.0), method="euler", step_size=torch.tensor(0.5))
    assert sol.stats.steps_accepted == 2
    with pytest.raises(ValueError, match="t_end must be a single number"):
        cg.integrate(LinearField(1.0), x0, torch.tensor([1.0, 2.0]), method="euler", step_size=0.5)
    with pytest.raises(ValueError, match="t_end must be a positive finite time"):
        cg.fixed_grid(-1.0, num_steps=2)
    with pytest.raises(TypeError, match="options must be a dict"):
        cg.integrate(LinearField(1.0), x0, 1.0, method="dopri5", options=[1])


def test_an_empty_state_and_a_learned_end_time_are_refused_up_front():
    with pytest.raises(ValueError, match=r"x0 is empty \(shape \(0, 3\)\): there is no state to integrate"):
        cg.integrate(lambda t, x: -x, torch.empty(0, 3, dtype=DTYPE), 1.0, method="dopri5")
    t_end = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="t_end is a tensor that requires grad, .* no gradient; pass t_end.item()"):
        cg.integrate(lambda t, x: -x, torch.ones(2, dtype=DTYPE), t_end, method="dopri5")
    assert cg.integrate(lambda t, x: -x, torch.ones(2, dtype=DTYPE), t_end.detach(), method="dopri5").final.shape == (2,)
    with pytest.raises(ValueError, match="rtol and atol must be finite and non-negative, got rtol=nan"):
        cg.grad_check(lambda **kw: torch.ones(1), params=[torch.ones(1, requires_grad=True)], rtol=float("nan"))


def test_a_scipy_solver_that_gives_up_is_an_error_not_a_short_solution():
    # x' = x² from 1 blows up at t = 1: scipy stops there, and torchdiffeq returned the times it had reached.
    for save_at in (None, [0.5, 2.0]):
        with pytest.raises(IntegrationError, match=r"incomplete in scipy_solver.*stopped between t=") as failed:
            cg.integrate(lambda t, x: x * x, torch.ones(3, dtype=DTYPE), 10.0, method="scipy_solver", save_at=save_at)
        assert failed.value.reason == "incomplete"
    solution = cg.integrate(lambda t, x: -x, torch.ones(3, dtype=DTYPE), 1.0, method="scipy_solver", save_at=[0.5])
    assert solution.states.shape[0] == len(solution.times) == 3


_GLOBAL_RATE = torch.tensor(0.5, dtype=DTYPE, requires_grad=True)


class _Holder:
    def __init__(self, rate):
        self.rate = rate


def _fields_with_hidden_rates(rate: torch.Tensor) -> dict[str, nn.Module]:
    """Fields that read a tensor requiring grad where the earlier scan did not look."""

    class Buffered(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("rate", rate)

        def forward(self, t, x):
            return -self.rate * x

    class Private(nn.Module):
        def __init__(self):
            super().__init__()
            self._rate = rate

        def forward(self, t, x):
            return -self._rate * x

    class Helper(nn.Module):  # read in a helper method, from an enclosing scope
        def forward(self, t, x):
            return -self.speed() * x

        def speed(self):
            return rate

    class Global(nn.Module):
        def forward(self, t, x):
            return -self.speed() * x

        def speed(self):
            return _GLOBAL_RATE

    class Held(nn.Module):  # inside a plain object the module holds
        def __init__(self):
            super().__init__()
            self.holder = _Holder(rate)

        def forward(self, t, x):
            return -self.holder.rate * x

    table = {"rate": rate}

    class Table(nn.Module):  # in a dict a method closes over
        def forward(self, t, x):
            return -table["rate"] * x

    return {"buffer": Buffered(), "private": Private(), "helper": Helper(), "global": Global(), "held": Held(),
            "table": Table()}


@pytest.mark.parametrize("name", list(_fields_with_hidden_rates(_GLOBAL_RATE)))
def test_the_adjoint_finds_captured_tensors_wherever_the_field_reads_them(name):
    rate = _GLOBAL_RATE if name == "global" else torch.tensor(0.5, dtype=DTYPE, requires_grad=True)
    field = _fields_with_hidden_rates(rate)[name]
    x0 = torch.ones(3, dtype=DTYPE)
    with pytest.raises(ValueError, match="not adjoint parameters"):  # before: no error, and no gradient for rate
        cg.integrate(field, x0, 1.0, method="rk4", step_size=0.25, adjoint=True)
    direct = torch.autograd.grad(cg.integrate(field, x0, 1.0, method="rk4", step_size=0.25).final.sum(), rate)[0]
    solution = cg.integrate(field, x0, 1.0, method="rk4", step_size=0.25, adjoint=True, adjoint_params=[rate])
    # Equal up to the discretisation: the backward solve integrates the adjoint on the same grid.
    torch.testing.assert_close(torch.autograd.grad(solution.final.sum(), rate)[0], direct, rtol=1e-4, atol=0)


def test_the_adjoint_does_not_read_a_constructor_closure_as_a_captured_tensor():
    rate = torch.tensor(0.5, dtype=DTYPE, requires_grad=True)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.rate = nn.Parameter(rate.detach().clone())  # rate is read only here, before the solve

        def forward(self, t, x):
            return -self.rate * x

    cg.integrate(Field(), torch.ones(3, dtype=DTYPE), 1.0, method="rk4", step_size=0.25, adjoint=True)


def test_parameters_given_again_as_adjoint_params_are_differentiated_once():
    class Decay(nn.Module):
        def __init__(self):
            super().__init__()
            self.rate = nn.Parameter(torch.tensor(0.7, dtype=DTYPE))

        def forward(self, t, x):
            return -self.rate * x

    field, x0 = Decay(), torch.ones(3, dtype=DTYPE)
    direct = torch.autograd.grad(cg.integrate(field, x0, 1.3, method="rk4", step_size=0.1).final.sum(), field.rate)
    solution = cg.integrate(field, x0, 1.3, method="rk4", step_size=0.1, adjoint=True,
                            adjoint_params=list(field.parameters()))  # as torchdiffeq's examples pass them
    adjoint = torch.autograd.grad(solution.final.sum(), field.rate)  # was twice the true gradient
    torch.testing.assert_close(adjoint[0], direct[0], rtol=1e-6, atol=0)


def test_an_infinite_stage_that_the_update_does_not_weigh_still_fails_the_solve():
    # midpoint's first stage enters its step only through the point of the second, where exp(-x) is finite
    # again: the final state is finite, and wrong. Every evaluation's flag has to be read, not the end alone.
    x0 = torch.tensor([-1000.0, 0.0], dtype=DTYPE)
    with pytest.raises(IntegrationError, match="vector field returned inf or nan") as info:
        cg.integrate(lambda t, x: torch.exp(-x), x0, 1.0, method="midpoint", step_size=1.0)
    assert info.value.reason == "non_finite" and info.value.nfe == 1 and info.value.t == 0.0


@pytest.mark.parametrize("method", list(FIXED_METHODS))
def test_a_fixed_grid_step_takes_at_least_its_listed_evaluations_and_the_budget_counts_them(method):
    from continuous_gnn.ode.methods import EVALUATIONS_PER_STEP

    per_step = EVALUATIONS_PER_STEP[method]
    solution = cg.integrate(lambda t, x: -x, torch.ones(3, dtype=DTYPE), 4.0, method=method, step_size=0.5)
    assert solution.stats.nfe_forward >= 8 * per_step
    if method in ("euler", "midpoint", "heun2", "heun3", "rk4"):
        assert solution.stats.nfe_forward == 8 * per_step
    # The grid's evaluations are counted against max_nfe up front: rk4's 8 steps need 32 (it was 8).
    solver = cg.FixedGrid(method, step_size=0.5, max_nfe=8 * per_step - 1)
    assert solver.overrun(4.0)[0] == "max_nfe"
    assert cg.FixedGrid(method, step_size=0.5, max_nfe=8 * per_step).overrun(4.0) is None


def test_a_fixed_grid_out_of_evaluations_is_told_to_change_its_grid_not_its_tolerances():
    # implicit_adams's corrector iterates past the one evaluation per step counted up front.
    with pytest.raises(IntegrationError, match="Fix: use a larger step_size, a method with fewer evaluations"):
        cg.integrate(lambda t, x: -x, torch.ones(3, dtype=DTYPE), 4.0, method="implicit_adams", step_size=0.5,
                     max_nfe=12)


def test_scipy_solver_refuses_a_step_budget_it_would_ignore():
    # A stiff solve with max_steps=100 ran 210,158 evaluations: the budget is counted in step callbacks that
    # torchdiffeq's SciPy wrapper never calls.
    with pytest.raises(ValueError, match="max_steps=100 would be ignored; bound the solve with max_nfe"):
        cg.Adaptive("scipy_solver", max_steps=100)
    with pytest.raises(ValueError, match="max_steps=100 would be ignored"):
        cg.integrate(lambda t, x: -x, torch.ones(2, dtype=DTYPE), 1.0, method="scipy_solver", max_steps=100)
    assert cg.Adaptive("scipy_solver").max_steps is None
    from continuous_gnn.ode.settings import DEFAULT_MAX_STEPS

    assert cg.Adaptive("dopri5").max_steps == DEFAULT_MAX_STEPS
    assert cg.Adaptive("dopri5").replace(method="scipy_solver").max_steps is None
    assert cg.Adaptive("dopri5", max_steps=50).replace(rtol=1e-4).max_steps == 50
    with pytest.raises(IntegrationError, match="max nfe"):
        cg.integrate(lambda t, x: -1e5 * x, torch.ones(2, dtype=DTYPE), 1.0, method="scipy_solver", max_nfe=500)


def test_solver_options_are_part_of_the_settings_and_cannot_change_after_their_check():
    # Options were left out of equality and hash, and `solver.options["max_step"] = -1` passed every check.
    import copy
    import pickle

    perturbed = cg.FixedGrid(step_size=0.5, options={"perturb": True})
    assert perturbed != cg.FixedGrid(step_size=0.5) and perturbed == cg.FixedGrid(step_size=0.5, options={"perturb": True})
    assert len({perturbed, cg.FixedGrid(step_size=0.5), cg.FixedGrid(step_size=0.5, options={"perturb": True})}) == 2
    assert "options={'perturb': True}" in repr(perturbed)
    adaptive = cg.Adaptive(options={"max_step": 0.5})
    with pytest.raises(TypeError, match="solver options cannot change once the settings are made"):
        adaptive.options["max_step"] = -1.0
    with pytest.raises(TypeError, match="cannot change"):
        adaptive.options.update(first_step=0.1)
    norm = lambda tensor: tensor.abs().max()  # noqa: E731 - a callable option compares by identity
    assert cg.Adaptive(options={"norm": norm}) == cg.Adaptive(options={"norm": norm}) != cg.Adaptive()
    for copied in (pickle.loads(pickle.dumps(adaptive)), copy.deepcopy(adaptive)):
        assert copied == adaptive and copied.options["max_step"] == 0.5
    assert cg.Adaptive("scipy_solver").options == {"solver": "RK45"}
    assert cg.Adaptive("scipy_solver").replace(method="dopri5") == cg.Adaptive("dopri5")  # defaults follow the method
    assert cg.Adaptive("dopri5").replace(method="scipy_solver") == cg.Adaptive("scipy_solver")


def test_the_adjoints_own_backward_grid_keeps_to_the_solvers_step_budget():
    x0 = torch.ones(2, dtype=DTYPE, requires_grad=True)
    with pytest.raises(ValueError, match="the adjoint's backward grid: T / step_size = 2 / 0.25 gives 8 steps, more "
                                         "than the 3 allowed.*Adjoint\\(step_size=...\\)"):
        cg.integrate(lambda t, x: -x, x0, 2.0, solver=cg.FixedGrid("euler", step_size=1.0, max_steps=3),
                     adjoint=cg.Adjoint(step_size=0.25))
    solution = cg.integrate(lambda t, x: -x, x0, 2.0, solver=cg.FixedGrid("euler", step_size=1.0, max_steps=8),
                            adjoint=cg.Adjoint(step_size=0.25))
    solution.final.sum().backward()
    assert solution.stats.steps_backward == 8
