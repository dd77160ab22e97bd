"""Kinetic energy and Jacobian-Frobenius regularisers: exact references, Hutchinson expectation, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import DTYPE, graff_energy, random_features, random_graph, randomize_

import continuous_gnn as cg
from continuous_gnn.energies import DirichletEnergy, GRAFFEnergy
from continuous_gnn.fields import GradientFlow
from continuous_gnn.ode.regularizers import (
    RegularizedField,
    hutchinson_frobenius,
    integrate_regularized,
    regularized_forward,
    sample_probe,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_jacobian(field, t, x):
    n = x.numel()
    return torch.autograd.functional.jacobian(lambda y: field(t, y), x).reshape(n, n)


def heat_problem(n=6, d=2, seed=0):
    graph = random_graph(n, 0.4, seed)
    lap = torch.eye(n, dtype=DTYPE) - graph.to_dense()
    return graph, lap, GradientFlow(DirichletEnergy()).bind(graph), random_features(n, d, seed + 1)


def gauss_legendre(fn, t_end, points=40):
    nodes, weights = np.polynomial.legendre.leggauss(points)
    return sum(w * t_end / 2 * fn((x + 1) * t_end / 2) for x, w in zip(nodes, weights))


# --- Hutchinson: really the Frobenius norm ---------------------------------------------------------------------------


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_hutchinson_expectation_is_frobenius_not_trace(noise):
    graph = random_graph(5, 0.5, 0)
    x0 = random_features(5, 3, 2)
    field = GradientFlow(graff_energy(3, seed=1), activation="tanh").bind(graph, x0)  # a non-symmetric Jacobian
    x = random_features(5, 3, 3)
    t = torch.tensor(0.3, dtype=DTYPE)
    jac = exact_jacobian(field, t, x)
    frobenius, trace = float((jac ** 2).sum()), float(torch.trace(jac))
    assert abs(frobenius - trace) > 0.5 * frobenius  # the two quantities are far apart here
    generator, samples = gen(0), []
    for _ in range(3000):
        leaf = x.clone().requires_grad_()
        probe = sample_probe(x, noise, generator)
        samples.append(float(hutchinson_frobenius(field(t, leaf), leaf, probe).detach()))
    mean = float(np.mean(samples))
    assert mean == pytest.approx(frobenius, rel=0.05)
    # One sample is exactly ‖εᵀJ‖², computed from the dense Jacobian.
    probe = sample_probe(x, noise, gen(1))
    leaf = x.clone().requires_grad_()
    one = hutchinson_frobenius(field(t, leaf), leaf, probe)
    torch.testing.assert_close(one, ((probe.reshape(-1) @ jac) ** 2).sum())


def test_sample_probe_distributions():
    like = torch.zeros(200, 50, dtype=DTYPE)
    rademacher = sample_probe(like, "rademacher", gen(0))
    assert set(rademacher.unique().tolist()) == {-1.0, 1.0} and rademacher.dtype == DTYPE
    gaussian = sample_probe(like, "gaussian", gen(0))
    assert abs(float(gaussian.mean())) < 0.02 and abs(float(gaussian.var()) - 1) < 0.03
    assert torch.equal(sample_probe(like, "gaussian", gen(5)), sample_probe(like, "gaussian", gen(5)))
    with pytest.raises(ValueError, match="unknown noise"):
        sample_probe(like, "uniform")


def test_jacobian_regulariser_of_linear_flow_is_exact_per_probe():
    # Heat flow: J = -(Δ ⊗ I) is constant, so r_J(T) = T ‖εᵀJ‖² for the fixed probe, and its mean over
    # probes is T ‖J‖_F² = T d ‖Δ‖_F².
    graph, lap, field, x0 = heat_problem()
    t_end = 0.7
    probe = sample_probe(x0, "rademacher", gen(3))
    sol, regs = integrate_regularized(field, x0, t_end, kinetic=False, jacobian=True, probe=probe, method="rk4",
                                      step_size=0.1)
    assert set(regs) == {"jacobian"}
    torch.testing.assert_close(regs["jacobian"], t_end * ((lap @ probe) ** 2).sum(), rtol=1e-12, atol=0)
    values = [float(integrate_regularized(field, x0, t_end, kinetic=False, jacobian=True, generator=gen(s),
                                          method="euler", num_steps=1)[1]["jacobian"].detach()) for s in range(400)]
    expected = t_end * x0.shape[1] * float((lap ** 2).sum())
    assert float(np.mean(values)) == pytest.approx(expected, rel=0.05)


# --- kinetic energy --------------------------------------------------------------------------------------------------


def test_kinetic_energy_of_heat_flow_matches_quadrature_of_exact_solution():
    graph, lap, field, x0 = heat_problem()
    t_end = 1.3

    def speed(t):  # ‖ΔX(t)‖² with X(t) = exp(-tΔ) X0
        return float(((lap @ torch.linalg.matrix_exp(-t * lap) @ x0) ** 2).sum())

    reference = gauss_legendre(speed, t_end)
    sol, regs = integrate_regularized(field, x0, t_end, method="dopri5", rtol=1e-10, atol=1e-12)
    assert float(regs["kinetic"]) == pytest.approx(reference, rel=1e-8)
    torch.testing.assert_close(sol.final, torch.linalg.matrix_exp(-t_end * lap) @ x0, rtol=1e-8, atol=1e-10)
    # Fixed grid: rk4 integrates the extra channel to fourth order as well.
    _, coarse = integrate_regularized(field, x0, t_end, method="rk4", step_size=0.1)
    assert float(coarse["kinetic"]) == pytest.approx(reference, rel=1e-5)


def test_kinetic_energy_equals_energy_dissipated_by_gradient_flow():
    # d/dt E(x(t)) = -‖∇E‖² = -‖f‖², so ∫‖f‖² = E(x(0)) - E(x(T)).
    graph = random_graph(7, 0.4, 1)
    energy = graff_energy(3, w="sum", seed=4)
    x0 = random_features(7, 3, 5)
    sol, regs = integrate_regularized(GradientFlow(energy).bind(graph, x0), x0, 2.0, method="dopri5", rtol=1e-10,
                                      atol=1e-12)
    dissipated = energy.energy(x0, graph, x0) - energy.energy(sol.final, graph, x0)
    torch.testing.assert_close(regs["kinetic"], dissipated.detach(), rtol=1e-7, atol=1e-9)


def test_euler_regularisers_are_left_riemann_sums():
    graph = random_graph(6, 0.4, 2)
    x0 = random_features(6, 2, 3)
    field = GradientFlow(graff_energy(2, seed=6), activation="tanh").bind(graph, x0)
    probe = sample_probe(x0, "gaussian", gen(0))
    sol, regs = integrate_regularized(field, x0, 1.0, jacobian=True, probe=probe, method="euler", step_size=0.25)
    x, kinetic, jacobian = x0, 0.0, 0.0
    for k in range(4):
        t = torch.tensor(0.25 * k, dtype=DTYPE)
        leaf = x.clone().requires_grad_()
        f = field(t, leaf)
        kinetic += 0.25 * float((f ** 2).sum().detach())
        jacobian += 0.25 * float(hutchinson_frobenius(f, leaf, probe).detach())
        x = x + 0.25 * f.detach()
    torch.testing.assert_close(sol.final, x)
    assert float(regs["kinetic"].detach()) == pytest.approx(kinetic, rel=1e-12)
    assert float(regs["jacobian"].detach()) == pytest.approx(jacobian, rel=1e-12)
    # The state is unchanged by the extra channels.
    torch.testing.assert_close(sol.final, cg.integrate(field, x0, 1.0, method="euler", step_size=0.25).final)


# --- gradients, grad modes, models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", [{"method": "rk4", "step_size": 0.05},
                                    {"method": "dopri5", "rtol": 1e-8, "atol": 1e-10}], ids=["rk4", "dopri5"])
def test_regulariser_gradients_adjoint_match_direct(solver):
    graph = random_graph(6, 0.4, 0)
    energy = graff_energy(3, seed=1)
    x0 = random_features(6, 3, 2).requires_grad_()
    field = GradientFlow(energy, activation="tanh").bind(graph, x0)
    leaves = [x0, *energy.parameters()]

    def grads(adjoint):
        sol, regs = integrate_regularized(field, x0, 1.0, jacobian=True, generator=gen(7), adjoint=adjoint, **solver)
        loss = sol.final.square().sum() + 0.1 * regs["kinetic"] + 0.1 * regs["jacobian"]
        return torch.autograd.grad(loss, leaves)

    direct, adjoint = grads(False), grads(True)
    assert all(float(g.norm()) > 0 for g in direct)
    for a, d in zip(adjoint, direct):
        torch.testing.assert_close(a, d, rtol=1e-5, atol=1e-8)


def test_regulariser_gradient_matches_finite_differences():
    graph = random_graph(5, 0.4, 3)
    x0 = random_features(5, 2, 4)
    probe = sample_probe(x0, "gaussian", gen(2))
    energy = graff_energy(2, seed=5, source=False)

    field = GradientFlow(energy, activation="tanh").bind(graph)

    def value(weight):  # f_w = w · f: both regularisers depend on w through the field and the trajectory
        _, regs = integrate_regularized(lambda t, x: weight * field(t, x), x0, 0.5, jacobian=True, probe=probe,
                                        method="rk4", step_size=0.125)
        return regs["kinetic"] + regs["jacobian"]

    weight = torch.tensor(1.3, dtype=DTYPE, requires_grad=True)
    assert torch.autograd.gradcheck(value, (weight,))


def test_regularisers_under_no_grad():
    graph = random_graph(6, 0.4, 0)
    x0 = random_features(6, 3, 1)
    field = GradientFlow(graff_energy(3, seed=2), activation="relu").bind(graph, x0)
    sol, regs = integrate_regularized(field, x0, 1.0, jacobian=True, generator=gen(0), method="rk4", step_size=0.25)
    with torch.no_grad():
        sol_ng, regs_ng = integrate_regularized(field, x0, 1.0, jacobian=True, generator=gen(0), method="rk4",
                                                step_size=0.25)
    assert not regs_ng["jacobian"].requires_grad and not sol_ng.final.requires_grad
    torch.testing.assert_close(regs_ng["jacobian"], regs["jacobian"].detach())
    torch.testing.assert_close(regs_ng["kinetic"], regs["kinetic"].detach())
    torch.testing.assert_close(sol_ng.final, sol.final.detach())


def test_generator_makes_the_probe_reproducible():
    graph, _, field, x0 = heat_problem()

    def run(seed):
        return integrate_regularized(field, x0, 1.0, kinetic=False, jacobian=True, generator=gen(seed),
                                     method="euler", step_size=0.5)[1]["jacobian"]

    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))
    state = torch.random.get_rng_state()
    run(6)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched


def test_regularized_forward_matches_model_and_reports_stats():
    torch.manual_seed(0)
    graph = random_graph(10, 0.3, 0, dtype=torch.float32)
    x = torch.randn(10, 4)
    model = cg.ContinuousGNN(4, 6, 3, GRAFFEnergy(6), t_end=1.0, solver={"method": "rk4", "step_size": 0.25})
    model.eval()
    logits, sol, regs = regularized_forward(model, x, graph, kinetic=True, jacobian=True, generator=gen(0))
    torch.testing.assert_close(logits, model(x, graph), rtol=1e-5, atol=1e-6)
    assert sol.stats.nfe_forward == 16 and set(regs) == {"kinetic", "jacobian"}
    loss = logits.square().mean() + regs["kinetic"] + regs["jacobian"]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # With the adjoint the encoder still gets its gradient through the bound source term and x0.
    model.zero_grad()
    logits, sol, regs = regularized_forward(model, x, graph, jacobian=True, generator=gen(0), adjoint=True)
    (logits.square().mean() + regs["jacobian"]).backward()
    assert model.encoder.weight.grad is not None and sol.stats.nfe_backward == 16


def test_integrate_regularized_validation():
    graph, _, field, x0 = heat_problem()
    with pytest.raises(ValueError, match="at least one regulariser"):
        integrate_regularized(field, x0, 1.0, kinetic=False, method="euler", step_size=0.5)
    with pytest.raises(ValueError, match="probe must have the shape"):
        integrate_regularized(field, x0, 1.0, jacobian=True, probe=torch.ones(3), method="euler", step_size=0.5)
    with pytest.raises(ValueError, match="needs a probe"):
        RegularizedField(field, x0.shape, kinetic=False, jacobian=True)


@pytest.mark.parametrize("detach_source", [False, True])
@pytest.mark.parametrize("jacobian", [False, True])
def test_regularized_forward_is_the_model_forward_on_a_fixed_grid(detach_source, jacobian):
    # Logits bitwise; gradients to rounding. Ignoring detach_source would move the encoder gradient by O(1).
    graph = random_graph(9, 0.3, 4)
    x = random_features(9, 5, 5)
    weights = random_features(9, 3, 6)
    model = cg.ContinuousGNN(5, 4, 3, graff_energy(4, seed=3), t_end=1.0, solver={"method": "rk4", "step_size": 0.25},
                             detach_source=detach_source).double().train()
    randomize_(model.encoder, 7, scale=0.5)
    randomize_(model.decoder, 8, scale=0.5)
    assert abs(float(model.energy.beta.detach())) > 1e-2  # the source term is there to be detached or not
    results = []
    for forward in (lambda: model(x, graph),
                    lambda: regularized_forward(model, x, graph, kinetic=True, jacobian=jacobian, generator=gen(0))[0]):
        model.zero_grad()
        logits = forward()
        (logits * weights).sum().backward()
        results.append((logits.detach(), *(p.grad.clone() for p in model.parameters())))
    plain, regularized = results
    assert torch.equal(regularized[0], plain[0])
    assert plain[1].abs().max() > 1e-3
    for ours, theirs in zip(regularized[1:], plain[1:]):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-13)


def test_a_probe_that_is_no_tensor_is_a_type_error():
    x0 = torch.ones(3, 2, dtype=DTYPE)
    with pytest.raises(TypeError, match="probe must be a tensor shaped like the state, got list; draw one"):
        integrate_regularized(lambda t, x: -x, x0, 1.0, jacobian=True, probe=[[1.0, 1.0]] * 3, method="euler",
                              step_size=0.5)
