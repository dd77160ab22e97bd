"""count_steps is the one step count: the grid, the run config, the model builder and a solve all agree with it."""

from __future__ import annotations

import math

import pytest
import torch

import continuous_gnn as cg
from continuous_gnn.ode.grid import GRID_SLACK, count_steps, fixed_grid
from continuous_gnn.training import RunConfig
from continuous_gnn.training.build import num_steps

#: Step sizes whose multiples are rarely exact in floating point.
AWKWARD_STEP_SIZES = (0.1, 0.03, 0.07, 1 / 3, 0.2, 0.25)

#: (T, τ, steps): a ratio just above a whole number, a non-multiple, and T shorter than one step.
NAMED_CASES = [(0.9, 0.03, 30), (3.194, 1.0, 4), (0.05, 0.1, 1)]

#: The agreement checks build a RunConfig and run a solve per case, so they take a sample of the sweep.
SAMPLED_CASES = NAMED_CASES + [(steps * tau, tau, steps) for tau in AWKWARD_STEP_SIZES for steps in (1, 30, 199)]


def test_ratio_just_above_a_whole_number_counts_that_number_not_one_more():
    assert 0.9 / 0.03 == 30.000000000000004  # the case in the docstring: a ceiling would give 31
    assert math.ceil(0.9 / 0.03) == 31
    assert cg.count_steps is count_steps
    assert count_steps(0.9, 0.03) == 30
    grid = fixed_grid(0.9, step_size=0.03)
    assert len(grid) - 1 == 30 and float(grid[-1]) == 0.9


def test_every_near_multiple_of_an_awkward_step_size_counts_its_multiple():
    for tau in AWKWARD_STEP_SIZES:
        for steps in range(1, 201):
            t_end = steps * tau
            assert count_steps(t_end, tau) == steps, (steps, tau)
            grid = fixed_grid(t_end, step_size=tau)
            assert len(grid) - 1 == steps, (steps, tau)
            assert float(grid[-1]) == t_end, (steps, tau)


def test_a_time_that_is_not_a_multiple_ends_with_one_shorter_step():
    assert count_steps(3.194, 1.0) == 4
    grid = fixed_grid(3.194, step_size=1.0)
    assert len(grid) - 1 == 4 and float(grid[-1]) == 3.194
    assert grid.diff()[-1].item() == pytest.approx(0.194, abs=1e-12)
    assert torch.equal(grid[:-1], torch.arange(4, dtype=torch.float64))


def test_a_time_shorter_than_one_step_is_one_short_step():
    assert count_steps(0.05, 0.1) == 1
    assert fixed_grid(0.05, step_size=0.1).tolist() == [0.0, 0.05]


def test_whole_number_slack_is_relative_and_tiny():
    # Within GRID_SLACK of L the ratio counts as L; beyond it, a time just above Lτ takes one more, short step.
    tau, steps = 0.07, 150
    assert count_steps(tau * steps * (1 + GRID_SLACK / 2), tau) == steps
    assert count_steps(tau * steps * (1 - GRID_SLACK / 2), tau) == steps
    assert count_steps(tau * steps * (1 + 10 * GRID_SLACK), tau) == steps + 1
    assert count_steps(tau * steps * (1 - 10 * GRID_SLACK), tau) == steps  # floor(L - ε) + 1, last step short


def test_a_ratio_that_overflows_counts_infinitely_many_steps():
    assert count_steps(1.0, 5e-324) == math.inf  # τ subnormal: T / τ is inf


@pytest.mark.parametrize(("t_end", "tau", "steps"), SAMPLED_CASES)
def test_run_config_model_builder_and_solve_agree_with_count_steps(t_end: float, tau: float, steps: int):
    assert count_steps(t_end, tau) == steps
    config = RunConfig(time=t_end, step_size=tau)
    assert num_steps(config) == steps
    solver, _ = config.solver_settings()
    assert solver.count_steps(config.time) == steps
    x0 = torch.ones(3, dtype=torch.float64)
    solution = cg.integrate(lambda t, x: -x, x0, t_end, method="euler", step_size=tau)
    assert solution.stats.steps_accepted == steps


def test_the_exported_grid_helpers_check_their_arguments_as_the_settings_do():
    # count_steps(-1, 0.5) was -1, count_steps(0, 0.5) was 1, nan gave inf, and fixed_grid(1, step_size=1e-12)
    # tried to allocate 8 TB.
    from continuous_gnn.ode.grid import DEFAULT_MAX_GRID_STEPS

    for t_end in (-1.0, 0.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="t_end must be a positive finite time"):
            count_steps(t_end, 0.5)
    with pytest.raises(TypeError, match="t_end must be a number, got str"):
        count_steps("1", 0.5)
    with pytest.raises(ValueError, match="gives 1e\\+12 steps, more than the 1,000,000 allowed"):
        fixed_grid(1.0, step_size=1e-12)
    assert len(fixed_grid(1.0, step_size=1.0 / DEFAULT_MAX_GRID_STEPS)) == DEFAULT_MAX_GRID_STEPS + 1
    assert len(fixed_grid(1.0, step_size=0.5e-6, max_steps=2_000_000)) == 2_000_001
