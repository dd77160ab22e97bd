"""A fixed-grid solve reads nothing back from the device per step or per evaluation.

On a GPU every read of a device value (``float(t)``, ``bool(x)``, ``.item()``) waits for all queued work, so a
guard that reads once per evaluation serialises the whole solve. The profiler counts these reads on the CPU too
(``aten::_local_scalar_dense``), so the property is tested here, against torchdiffeq's own ``odeint`` on the same
field: the package may add a fixed number of reads per solve (the checks of ``x0`` and of the final state), never
one per step.
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torchdiffeq import odeint

import continuous_gnn as cg
from continuous_gnn.energies import GRAFFEnergy
from continuous_gnn.fields import GradientFlow

READ = "aten::_local_scalar_dense"


def _reads(run) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return sum(event.count for event in prof.key_averages() if event.key == READ)


@pytest.fixture()
def bound_field():
    torch.manual_seed(0)
    nodes = 30
    ring = torch.stack([torch.arange(nodes), torch.arange(nodes).roll(1)])
    graph = cg.Graph.from_edge_index(torch.cat([ring, ring.flip(0)], dim=1), nodes)
    x0 = torch.randn(nodes, 4)
    return GradientFlow(GRAFFEnergy(4)).bind(graph, x0), x0


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_a_fixed_grid_solve_adds_no_read_back_per_step(bound_field, method):
    field, x0 = bound_field

    def package(steps):
        return lambda: cg.integrate(field, x0, float(steps), method=method, step_size=1.0).final.sum().backward()

    def torchdiffeq_alone(steps):
        ends = torch.tensor([0.0, float(steps)], dtype=torch.float64)
        return lambda: odeint(field, x0, ends, method=method, options={"step_size": 1.0})[-1].sum().backward()

    per_step = (_reads(package(8)) - _reads(package(4))) / 4
    assert per_step == (_reads(torchdiffeq_alone(8)) - _reads(torchdiffeq_alone(4))) / 4
    assert _reads(package(4)) - _reads(torchdiffeq_alone(4)) <= 2
    assert _reads(lambda: field(torch.zeros(()), x0)) == 0


def test_the_failure_still_names_the_first_evaluation_that_was_not_finite():
    calls = []

    def field(t, x):
        calls.append(float(t))
        return x * (float("inf") if len(calls) == 3 else 1.0)

    with pytest.raises(cg.IntegrationError, match="non finite") as info:
        cg.integrate(field, torch.ones(3), 6.0, method="euler", step_size=1.0)
    assert info.value.nfe == 3 and info.value.t == 2.0 and len(calls) == 6  # the grid runs out, then it is read


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_finite_flag_is_exact_where_a_plain_sum_would_overflow(dtype):
    from continuous_gnn.ode.guarded import finite_flag

    largest = torch.finfo(dtype).max
    assert bool(finite_flag(torch.full((4,), largest, dtype=dtype)))  # finite, though its plain sum is inf
    for bad in (float("inf"), float("-inf"), float("nan")):
        assert not bool(finite_flag(torch.tensor([1.0, bad, -1.0], dtype=dtype)))
    assert bool(finite_flag(torch.ones(0, 3, dtype=dtype)))
    assert not bool(finite_flag(torch.tensor([1 + 1j, complex(0, float("nan"))])))
