"""Solvers done right: statistics by hand count, typed failures, option checks, adjoint, grad_check, schedules."""

from __future__ import annotations

import time
import warnings

import pytest
import torch
import torchdiffeq
from helpers import DTYPE, CountingField, graff_energy, random_features, random_graph
from torch import nn

import continuous_gnn as cg
from continuous_gnn import IntegrationError
from continuous_gnn.energies import EnergySchedule, GRAFFEnergy
from continuous_gnn.fields import GradientFlow
from continuous_gnn.ode.gradcheck import GradCheckReport, grad_check
from continuous_gnn.ode.methods import RESERVED_OPTIONS, valid_options
from continuous_gnn.ode.settings import DEFAULT_MAX_STEPS

#: New evaluations per attempted step of each adaptive method (FSAL stages excluded); 2 more start a solve
#: (f(t0) and the initial step-size probe).
STAGES = {"dopri5": 6, "bosh3": 3, "adaptive_heun": 1, "fehlberg2": 2, "dopri8": 13}


class Pulse(nn.Module):
    """dx/dt = -x + 30 exp(-400 (t-1)²): a sharp pulse at t = 1 that adaptive methods step into and reject."""

    def forward(self, t, x):
        return -x + 30.0 * torch.exp(-400.0 * (t - 1.0) ** 2) * torch.ones_like(x)


class StepLog(nn.Module):
    """A hand-instrumented field for torchdiffeq's own odeint: counts calls, accepted and rejected steps."""

    def __init__(self, func):
        super().__init__()
        self.func = func
        self.calls = self.accepted = self.rejected = self.attempts = 0

    def forward(self, t, x):
        self.calls += 1
        return self.func(t, x)

    def callback_step(self, t0, y0, dt):
        self.attempts += 1

    def callback_accept_step(self, t0, y0, dt):
        self.accepted += 1

    def callback_reject_step(self, t0, y0, dt):
        self.rejected += 1


# --- statistics ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, per_step", [("euler", 1), ("rk4", 4)])
def test_fixed_statistics_equal_hand_count(method, per_step):
    graph = random_graph(6, 0.4, 0)
    x0 = random_features(6, 3, 1)
    field = CountingField(GradientFlow(graff_energy(3, seed=2)).bind(graph, x0))
    sol = cg.integrate(field, x0, 3.0, method=method, step_size=0.5)
    stats = sol.stats
    assert field.calls == stats.nfe_forward == per_step * 6
    assert (stats.steps_accepted, stats.steps_rejected, stats.steps_backward) == (6, 0, 0)
    assert stats.nfe_backward == 0 and stats.nfe == stats.nfe_forward
    assert stats.last_dt == pytest.approx(0.5) and stats.t_final == pytest.approx(3.0)
    assert stats.wall_time > 0
    assert stats.as_dict()["nfe"] == stats.nfe


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "adaptive_heun", "fehlberg2"])
def test_adaptive_statistics_equal_hand_count_with_rejections(method):
    x0 = torch.ones(3, dtype=DTYPE)
    field = CountingField(Pulse())
    sol = cg.integrate(field, x0, 2.0, method=method, rtol=1e-5, atol=1e-7)
    stats = sol.stats
    # The same solve through torchdiffeq's public API with a hand-instrumented field.
    log = StepLog(Pulse())
    reference = torchdiffeq.odeint(log, x0, torch.tensor([0.0, 2.0], dtype=DTYPE), method=method, rtol=1e-5,
                                   atol=1e-7)
    assert torch.equal(reference[-1], sol.final)
    assert field.calls == log.calls == stats.nfe_forward
    assert (stats.steps_accepted, stats.steps_rejected) == (log.accepted, log.rejected)
    assert stats.steps_rejected > 0  # the pulse is stepped into and rejected
    assert stats.nfe_forward == 2 + STAGES[method] * (stats.steps_accepted + stats.steps_rejected)
    # The last step ends at or past T, and x(T) comes from interpolation inside it.
    assert stats.t_final >= 2.0 and stats.last_dt > 0
    assert stats.t_final - stats.last_dt < 2.0


def test_adaptive_steps_past_t_end_and_interpolates():
    sol = cg.integrate(Pulse(), torch.ones(2, dtype=DTYPE), 2.0, method="dopri5", rtol=1e-5, atol=1e-7)
    assert sol.stats.t_final > 2.0 + 1e-3  # the controller's last step overshoots T ...
    exact = cg.integrate(Pulse(), torch.ones(2, dtype=DTYPE), 2.0, method="rk4", step_size=1e-3).final
    torch.testing.assert_close(sol.final, exact, rtol=1e-4, atol=1e-6)  # ... and x(T) is interpolated


@pytest.mark.parametrize("method, per_step", [("euler", 1), ("rk4", 4)])
def test_adjoint_backward_nfe_fixed_hand_count(method, per_step):
    graph = random_graph(5, 0.4, 0)
    x0 = random_features(5, 2, 0).requires_grad_()
    field = CountingField(GradientFlow(graff_energy(2, seed=1)).bind(graph, x0))
    sol = cg.integrate(field, x0, 2.0, method=method, step_size=0.25, save_at=[1.0], adjoint=True,
                       adjoint_params=[x0])
    before = field.calls
    sol.states.sum().backward()
    assert sol.stats.nfe_backward == field.calls - before == per_step * 8
    assert sol.stats.steps_backward == 8 and sol.stats.steps_backward_rejected == 0


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_adjoint_backward_nfe_adaptive_hand_count(method):
    graph = random_graph(6, 0.4, 3)
    energy = graff_energy(3, seed=4)
    x0 = random_features(6, 3, 5).requires_grad_()
    field = CountingField(GradientFlow(energy).bind(graph, x0))
    sol = cg.integrate(field, x0, 2.0, method=method, rtol=1e-6, atol=1e-8, save_at=[0.5, 1.0], adjoint=True,
                       adjoint_params=[x0])
    before = field.calls
    (sol.states ** 2).sum().backward()
    stats = sol.stats
    assert stats.nfe_backward == field.calls - before > 0
    intervals = len(sol.times) - 1  # one backward solve per interval between saved times
    attempts = stats.steps_backward + stats.steps_backward_rejected
    assert stats.nfe_backward == 2 * intervals + STAGES[method] * attempts


# --- failures --------------------------------------------------------------------------------------------------------


def test_stiff_problem_hits_max_nfe_quickly():
    def stiff(t, x):  # dx/dt = -1e6 (x - cos t): explicit methods need dt ~ 1e-6
        return -1e6 * (x - torch.cos(t))

    started = time.perf_counter()
    with pytest.raises(IntegrationError) as info:
        cg.integrate(stiff, torch.zeros(4, dtype=DTYPE), 10.0, method="dopri5", max_nfe=200)
    assert time.perf_counter() - started < 5.0  # a sanity bound, not a benchmark
    err = info.value
    assert (err.reason, err.method, err.rtol, err.atol, err.nfe) == ("max_nfe", "dopri5", 1e-3, 1e-5, 200)
    assert 0 <= err.t < 1e-3
    message = str(err)
    for part in ("max nfe", "dopri5", "rtol=0.001", "atol=1e-05", "at t=", "200 function evaluations", "Fix:"):
        assert part in message


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "adaptive_heun"])
def test_finite_time_blow_up_is_dt_underflow(method):
    # dx/dt = x², x(0) = 1: x = 1/(1-t) blows up at t = 1; adaptive steps shrink to zero there.
    started = time.perf_counter()
    with pytest.raises(IntegrationError, match="dt underflow.*Fix: .*stiff") as info:
        cg.integrate(lambda t, x: x * x, torch.ones(1, dtype=DTYPE), 2.0, method=method)
    assert time.perf_counter() - started < 5.0
    err = info.value
    assert err.reason == "dt_underflow" and err.method == method
    assert 0.99 < err.t < 1.01 and err.nfe > 0


def test_fixed_grid_blow_up_is_non_finite():
    with pytest.raises(IntegrationError, match="non finite in rk4") as info:
        cg.integrate(lambda t, x: x * x, torch.ones(1, dtype=DTYPE), 2.0, method="rk4", step_size=0.25)
    assert info.value.reason == "non_finite" and 1.0 <= info.value.t <= 2.0


def test_non_finite_final_state_after_last_evaluation():
    # Every evaluation is finite, but the last update x + τ f overflows float32.
    x0 = torch.full((2,), 3e38)
    with pytest.raises(IntegrationError, match="final state is inf or nan") as info:
        cg.integrate(lambda t, x: x, x0, 1.0, method="euler", num_steps=1)
    assert info.value.reason == "non_finite" and info.value.t == pytest.approx(1.0)


def test_max_steps_adaptive_counts_attempts():
    counter = CountingField(Pulse())
    with pytest.raises(IntegrationError, match="max steps in dopri5.*max_steps=5 reached in the forward") as info:
        cg.integrate(counter, torch.ones(2, dtype=DTYPE), 2.0, method="dopri5", rtol=1e-8, atol=1e-10, max_steps=5)
    assert info.value.reason == "max_steps"
    assert counter.calls == 2 + 6 * 5  # five attempts were made, the sixth was refused


def test_adaptive_settings_carry_the_default_step_budget():
    assert cg.Adaptive("adaptive_heun").max_steps == DEFAULT_MAX_STEPS
    assert cg.Adaptive("adaptive_heun", max_steps=None).max_steps == DEFAULT_MAX_STEPS


@pytest.mark.slow  # ten thousand steps of torchdiffeq's adaptive Heun: about 13 s
def test_default_step_budget_stops_adaptive_solves():
    # Without max_steps an adaptive solve still has a finite budget (torchdiffeq's default is 2**31 - 1).
    counter = CountingField(Pulse())
    with pytest.raises(IntegrationError, match="max_steps") as info:
        cg.integrate(counter, torch.ones(1, dtype=DTYPE), 1000.0, method="adaptive_heun", rtol=1e-9, atol=1e-12)
    assert info.value.reason == "max_steps"
    assert counter.calls == 2 + DEFAULT_MAX_STEPS


def test_max_steps_applies_to_adjoint_backward_solve():
    graph = random_graph(5, 0.4, 0)
    x0 = random_features(5, 2, 0).requires_grad_()
    field = GradientFlow(graff_energy(2, seed=1)).bind(graph, x0)
    sol = cg.integrate(field, x0, 1.0, method="euler", step_size=0.5, adjoint=True, adjoint_method="dopri5",
                       adjoint_rtol=1e-10, adjoint_atol=1e-12, max_steps=3)
    with pytest.raises(IntegrationError, match="adjoint backward solve") as info:
        sol.final.sum().backward()
    assert info.value.reason == "max_steps"
    # named by the backward solve's own method and tolerances, not the forward Euler's
    assert (info.value.method, info.value.rtol, info.value.atol) == ("dopri5", 1e-10, 1e-12)
    assert "in dopri5, rtol=1e-10, atol=1e-12" in str(info.value)


class Boom(Exception):
    pass


def test_user_exception_in_adjoint_backward_surfaces_unchanged():
    error = Boom("raised in the backward solve")

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.rate = nn.Parameter(torch.tensor(0.5, dtype=DTYPE))
            self.calls = 0

        def forward(self, t, x):
            self.calls += 1
            if self.calls == 6:  # the forward solve makes 4 calls
                raise error
            return -self.rate * x

    sol = cg.integrate(Field(), torch.ones(2, dtype=DTYPE), 1.0, method="euler", num_steps=4, adjoint=True)
    with pytest.raises(Boom) as info:
        sol.final.sum().backward()
    assert info.value is error


# --- options: errors, never torchdiffeq warnings ---------------------------------------------------------------------


def _solver_args(method):
    if cg.ode.methods.is_fixed(method):
        return {"step_size": 0.25}
    return {"rtol": 1e-4, "atol": 1e-6}


@pytest.mark.parametrize("method", [m for m in cg.METHODS if m != "scipy_solver"])
def test_no_torchdiffeq_warnings_for_any_method_direct_and_adjoint(method):
    graph = random_graph(5, 0.4, 0)
    x0 = random_features(5, 2, 0).requires_grad_()
    field = GradientFlow(graff_energy(2, seed=1)).bind(graph, x0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Unexpected arguments", "does not support callbacks", non-convergence
        for adjoint in (False, True):
            sol = cg.integrate(field, x0, 1.0, method=method, adjoint=adjoint, **_solver_args(method))
            sol.final.sum().backward()
            assert sol.stats.nfe_forward > 0 and (sol.stats.nfe_backward > 0) == adjoint


def test_no_warnings_with_every_valid_option():
    x0 = torch.ones(3, dtype=DTYPE)
    field = Pulse()
    every = {
        "dopri5": {"first_step": 0.01, "min_step": 1e-8, "max_step": 0.5, "safety": 0.8, "ifactor": 5.0,
                   "dfactor": 0.3, "step_t": torch.tensor([0.5], dtype=DTYPE),
                   "jump_t": torch.tensor([1.5], dtype=DTYPE), "dtype": torch.float64,
                   "norm": lambda y: y.abs().max()},
        "implicit_adams": {"max_iters": 6, "max_order": 5, "perturb": True},
        "explicit_adams": {"max_order": 4},
        "rk4": {"perturb": True},
        "scipy_solver": {"solver": "LSODA", "min_step": 0.0, "max_step": 0.5},
    }
    assert set(every["dopri5"]) == valid_options("dopri5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method, options in every.items():
            sol = cg.integrate(field, x0, 2.0, method=method, options=options, **_solver_args(method))
            assert torch.isfinite(sol.final).all()
        # scipy's RK45 (the default) is not handed torchdiffeq's min_step=0 warning either
        cg.integrate(field, x0, 2.0, method="scipy_solver", options={"max_step": 0.5}, **_solver_args("dopri5"))
    with pytest.raises(ValueError, match="min_step applies to scipy's 'LSODA' only"):
        cg.integrate(field, x0, 2.0, method="scipy_solver", options={"min_step": 0.1}, **_solver_args("dopri5"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # adaptive options also steer an adaptive backward solve
        rate = torch.tensor(0.5, dtype=DTYPE, requires_grad=True)
        sol = cg.integrate(lambda t, x: -rate * x, x0, 1.0, method="dopri5", adjoint=True, adjoint_params=[rate],
                           options={"max_step": 0.1, "jump_t": torch.tensor([0.5], dtype=DTYPE)})
        sol.final.sum().backward()
        assert sol.stats.steps_backward >= 10


@pytest.mark.parametrize("method, options, match", [
    ("dopri5", {"step_size": 0.1}, "set by integrate itself.*step_size"),
    ("dopri5", {"max_num_steps": 10}, "set by integrate itself.*max_steps="),
    ("euler", {"grid_constructor": None}, "set by integrate itself"),
    ("dopri5", {"frist_step": 0.1}, r"options \['frist_step'\] do not apply to the method 'dopri5'; valid options"),
    ("rk4", {"max_iters": 3}, "do not apply to the fixed-grid method 'rk4'"),
    ("implicit_adams", {"first_step": 0.1}, "do not apply to the fixed-grid method 'implicit_adams'"),
    ("scipy_solver", {"safety": 0.9}, "do not apply to the method 'scipy_solver'"),
])
def test_inapplicable_options_raise(method, options, match):
    with pytest.raises(ValueError, match=match):
        cg.integrate(Pulse(), torch.ones(1, dtype=DTYPE), 1.0, method=method, options=options, **_solver_args(method))
    assert set(RESERVED_OPTIONS) >= {"max_num_steps", "step_size", "grid_constructor"}


def test_implicit_adams_tolerances_are_corrector_tolerances():
    graph = random_graph(6, 0.4, 0)
    x0 = random_features(6, 3, 0)
    field = CountingField(GradientFlow(graff_energy(3, seed=1)).bind(graph, x0))
    loose = cg.integrate(field, x0, 2.0, method="implicit_adams", step_size=0.1, rtol=1e-2, atol=1e-2)
    calls_loose = field.calls
    tight = cg.integrate(field, x0, 2.0, method="implicit_adams", step_size=0.1, rtol=1e-10, atol=1e-12,
                         options={"max_iters": 20})
    assert field.calls - calls_loose > calls_loose  # tighter corrector tolerance: more iterations
    reference = cg.integrate(field, x0, 2.0, method="rk4", step_size=0.01).final
    assert (tight.final - reference).abs().max() <= (loose.final - reference).abs().max()
    with pytest.raises(ValueError, match="rtol/atol apply to adaptive methods"):
        cg.integrate(field, x0, 2.0, method="explicit_adams", step_size=0.1, rtol=1e-3)


# --- adjoint ---------------------------------------------------------------------------------------------------------


def test_adjoint_refuses_captured_tensor_in_wrapped_closure():
    rate = torch.tensor(0.3, dtype=DTYPE, requires_grad=True)

    def inner(t, x):
        return -rate * x

    class Wrapper(nn.Module):  # holds a plain function, whose closure captures `rate`
        def __init__(self, func):
            super().__init__()
            self.func = func

        def forward(self, t, x):
            return self.func(t, x)

    with pytest.raises(ValueError, match=r"\['func.rate'\]"):
        cg.integrate(Wrapper(inner), torch.ones(2, dtype=DTYPE), 1.0, method="rk4", step_size=0.5, adjoint=True)
    sol = cg.integrate(Wrapper(inner), torch.ones(2, dtype=DTYPE), 1.0, method="rk4", step_size=0.5, adjoint=True,
                       adjoint_params=[rate])
    (grad,) = torch.autograd.grad(sol.final.sum(), rate)
    assert float(grad) < 0


def test_adjoint_params_collected_automatically():
    # Parameters of the module and of every submodule, plus the bound x0, without listing anything.
    graph = random_graph(6, 0.4, 1)
    encoder = nn.Linear(4, 3).double()
    energy = graff_energy(3, seed=2)
    x_in = random_features(6, 4, 3)
    h0 = encoder(x_in)
    sol = cg.integrate(GradientFlow(energy).bind(graph, h0), h0, 1.0, method="dopri5", rtol=1e-8, atol=1e-10,
                       adjoint=True)
    leaves = [*encoder.parameters(), *energy.parameters()]
    grads = torch.autograd.grad(sol.final.square().sum(), leaves)
    assert all(float(g.norm()) > 0 for g in grads)


def _graff_problem(d=16, n=30, seed=0):
    graph = random_graph(n, 0.2, seed)
    energy = graff_energy(d, seed=seed + 1, scale=0.3)
    x0 = random_features(n, d, seed + 2).requires_grad_()
    field = GradientFlow(energy).bind(graph, x0)
    target = random_features(n, d, seed + 3)

    def loss(**kwargs):
        sol = cg.integrate(field, x0, 2.0, method="dopri5", rtol=1e-6, atol=1e-8, **kwargs)
        return ((sol.final - target) ** 2).sum() + torch.sin(sol.final).sum(), sol

    return energy, x0, loss


@pytest.mark.parametrize("seminorm", [False, True])
def test_adjoint_gradients_match_direct_within_tolerance(seminorm):
    energy, x0, loss = _graff_problem()
    params = {"x0": x0, **dict(energy.named_parameters())}
    report = grad_check(loss, params=params, rtol=1e-4, seminorm=seminorm)
    assert isinstance(report, GradCheckReport)
    assert report.passed, str(report)
    assert set(report.parameters) == set(params)
    assert 0 < report.max_rel < 1e-4
    assert report.nfe_backward > 0
    # A far looser backward tolerance is visibly less accurate, and the report says so.
    loose = grad_check(loss, params=params, rtol=1e-6, seminorm=seminorm, adjoint_rtol=1e-2, adjoint_atol=1e-3)
    assert loose.max_rel > report.max_rel and not loose.passed
    assert "FAILED" in str(loose)


def test_seminorm_needs_fewer_backward_evaluations():
    # GRAFF d=16 (289 parameters): the parameter adjoints no longer steer the backward step size.
    energy, x0, loss = _graff_problem()
    nfe = {}
    for seminorm in (False, True):
        value, sol = loss(adjoint=True, seminorm=seminorm)
        value.backward()
        nfe[seminorm] = (sol.stats.nfe_forward, sol.stats.nfe_backward)
    assert nfe[True][0] == nfe[False][0]  # the forward solve is untouched
    assert nfe[True][1] < 0.85 * nfe[False][1], nfe


def test_separate_adjoint_method_and_tolerances():
    energy, x0, loss = _graff_problem(d=4, n=10)
    value, sol = loss(adjoint=True, adjoint_method="rk4", adjoint_step_size=0.1)
    value.backward()
    assert sol.stats.nfe_backward == 4 * 20 and sol.stats.steps_backward == 20
    nfe = []
    for adjoint_rtol in (1e-3, 1e-9):
        value, sol = loss(adjoint=True, adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_rtol * 1e-2)
        value.backward()
        nfe.append(sol.stats.nfe_backward)
    assert nfe[1] > nfe[0]


def test_grad_check_on_model_leaves_the_model_unchanged():
    torch.manual_seed(0)
    graph = random_graph(12, 0.3, 0, dtype=torch.float32)
    x = torch.randn(12, 5)
    model = cg.ContinuousGNN(5, 8, 3, GRAFFEnergy(8), t_end=1.0, dropout=0.3,
                             solver={"method": "rk4", "step_size": 0.1})
    report = grad_check(model, x, graph, rtol=1e-3, atol=1e-6)
    assert report.passed, str(report)
    assert set(report.parameters) == {n for n, _ in model.named_parameters()}
    assert report.nfe_backward == 40
    assert model.solver == cg.FixedGrid("rk4", step_size=0.1) and model.adjoint is None
    # Coarse Euler: the adjoint's backward Euler is O(τ) away from backprop through forward Euler.
    model.solver = cg.FixedGrid("euler", step_size=0.5)
    coarse = grad_check(model, x, graph, rtol=1e-3)
    assert not coarse.passed and coarse.max_rel > 1e-3
    with pytest.raises(ValueError, match="needs params"):
        grad_check(lambda **kw: torch.zeros(()))


def test_grad_check_flags_a_parameter_that_gets_no_gradient():
    torch.manual_seed(0)
    graph = random_graph(12, 0.3, 0, dtype=torch.float32)
    x = torch.randn(12, 5)
    model = cg.ContinuousGNN(5, 8, 3, GRAFFEnergy(8), t_end=1.0, solver={"method": "rk4", "step_size": 0.1})
    stray = torch.ones(1, requires_grad=True)
    # Both runs give no gradient for it; compared as zeros it used to pass vacuously.
    report = grad_check(model, x, graph, params={"decoder.weight": model.decoder.weight, "stray": stray})
    assert not report.passed and report.unused == ["stray"]
    assert report.parameters["stray"].unused and not report.parameters["stray"].passed
    assert report.parameters["decoder.weight"].passed and not report.parameters["decoder.weight"].unused
    assert "NO (unused)" in str(report)
    assert grad_check(model, x, graph, params=[stray]).passed is False
    # A parameter inside the flow that the energy does not read: the adjoint gives it zeros, backprop nothing.
    model.flow.energy.extra = torch.nn.Parameter(torch.ones(2))
    inside = grad_check(model, x, graph, params={"decoder.weight": model.decoder.weight,
                                                 "extra": model.flow.energy.extra})
    assert not inside.passed and inside.unused == ["extra"]


# --- time-dependent weights: EnergySchedule with any solver ----------------------------------------------------------


def _schedule(dtype=DTYPE, pieces=3, t_end=1.5):
    energies = [graff_energy(3, seed=10 + k).to(dtype) for k in range(pieces)]
    return energies, EnergySchedule(energies, t_end)


def test_schedule_piece_selection_at_boundaries():
    _, schedule = _schedule(pieces=3, t_end=1.5)
    times = (0.0, 0.25, 0.4999, 0.5, 0.75, 1.0, 1.2, 1.5, 2.0)
    assert [schedule.index(t) for t in times] == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert schedule.index(torch.tensor(0.5, dtype=DTYPE)) == 1
    # Grid points of the explicit fixed grid land in the piece that starts there.
    grid = cg.fixed_grid(1.5, step_size=0.1)
    assert [schedule.index(t) for t in grid[:-1]] == [k // 5 for k in range(15)]
    # float32 times just below a boundary (torchdiffeq's perturbed evaluations) stay in the earlier piece.
    below = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    assert schedule.index(below) == 1


def _piecewise_reference(energies, graph, x0, t_end, steps_per_piece=100):
    """Solve piece by piece with a constant energy each: no jump inside any solve."""
    x = x0
    duration = t_end / len(energies)
    for energy in energies:
        x = cg.integrate(GradientFlow(energy).bind(graph, x0), x, duration, method="rk4",
                         num_steps=steps_per_piece).final
    return x


def test_schedule_adaptive_solve_matches_piecewise_rk4():
    energies, schedule = _schedule()
    graph = random_graph(8, 0.4, 0)
    x0 = random_features(8, 3, 1)
    reference = _piecewise_reference(energies, graph, x0, 1.5)
    sol = cg.integrate(GradientFlow(schedule).bind(graph, x0), x0, 1.5, method="dopri5", rtol=1e-8, atol=1e-10)
    assert torch.isfinite(sol.final).all()
    torch.testing.assert_close(sol.final, reference, rtol=1e-5, atol=1e-6)
    # The pieces differ, so ignoring the schedule would be visibly wrong.
    assert (reference - _piecewise_reference([energies[0]] * 3, graph, x0, 1.5)).abs().max() > 1e-2


def test_schedule_jumps_become_jump_times_for_adaptive_methods():
    energies, schedule = _schedule(dtype=torch.float32)
    graph = random_graph(8, 0.4, 0, dtype=torch.float32)
    x0 = random_features(8, 3, 1, dtype=torch.float32)
    field = GradientFlow(schedule).bind(graph, x0)
    from continuous_gnn.ode.field import jump_times
    from continuous_gnn.ode.grid import inside

    assert inside(jump_times(field), 1.5) == pytest.approx([0.5, 1.0])
    auto = cg.integrate(field, x0, 1.5, method="dopri5", rtol=1e-6, atol=1e-8)
    # Jumps declared outside (0, T) are ignored by torchdiffeq: the controller then has to find them itself.
    blind = cg.integrate(field, x0, 1.5, method="dopri5", rtol=1e-6, atol=1e-8,
                         options={"jump_t": torch.tensor([5.0], dtype=torch.float64)})
    assert auto.stats.steps_rejected < blind.stats.steps_rejected
    assert auto.stats.nfe_forward < blind.stats.nfe_forward
    reference = _piecewise_reference(energies, graph, x0, 1.5)
    assert (auto.final - reference).abs().max() <= (blind.final - reference).abs().max() + 1e-6


SCHEDULE_SOLVERS = [{"method": "dopri5", "rtol": 1e-6, "atol": 1e-8}, {"method": "rk4", "step_size": 0.05}]


@pytest.mark.parametrize("solver", SCHEDULE_SOLVERS, ids=["dopri5", "rk4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_schedule_adjoint_gradients_reach_every_piece(solver, dtype):
    energies = [graff_energy(3, seed=10 + k).to(dtype) for k in range(3)]
    schedule = EnergySchedule(energies, 1.5)
    graph = random_graph(8, 0.4, 2, dtype=dtype)
    x0 = random_features(8, 3, 3, dtype=dtype).requires_grad_()
    field = GradientFlow(schedule).bind(graph, x0)
    leaves = [x0, *schedule.parameters()]

    def loss(**kwargs):
        sol = cg.integrate(field, x0, 1.5, **solver, **kwargs)
        return (sol.final ** 2).sum()

    direct = torch.autograd.grad(loss(), leaves)
    adjoint = torch.autograd.grad(loss(adjoint=True), leaves)
    for energy in energies:  # every piece's parameters get a gradient
        grads = torch.autograd.grad(loss(adjoint=True), list(energy.parameters()))
        assert all(float(g.norm()) > 0 for g in grads)
    # With the jumps handed to the solver (jump_t, perturb) both gradients see the same piecewise field.
    gap = max(float((a - d).abs().max() / d.abs().max()) for a, d in zip(adjoint, direct))
    assert gap < 2e-5


def test_finiteness_check_is_exact_when_the_fast_sum_overflows():
    from continuous_gnn.ode.guarded import all_finite as _all_finite

    assert _all_finite(torch.full((4,), 3e38))  # the float32 sum overflows, every entry is finite
    assert not _all_finite(torch.tensor([1.0, float("nan")]))
    assert not _all_finite(torch.tensor([float("inf"), -float("inf")]))  # the sum is nan
    # A solve whose state is huge but finite is not a failure.
    sol = cg.integrate(lambda t, x: torch.zeros_like(x), torch.full((3,), 3e38), 1.0, method="euler", num_steps=2)
    assert torch.equal(sol.final, torch.full((3,), 3e38))
