r"""The trajectory of a model's flow: diagnostics and accuracy of :math:`F(t)` at saved times.

A trajectory is the solution :math:`F(t)` of a model's flow, started from the encoder output
:math:`F(0) = \psi_{EN}(X)` and read out at saved times. Each record holds the Dirichlet energy, the Rayleigh
quotient, the norm, the accuracy of the decoder applied to :math:`F(t)` and the number of vector-field
evaluations (NFE) needed to reach :math:`t`. Trajectories are evaluated in float64 by default (a copy of the
model is converted): linear flows grow or decay exponentially and float32 overflows on long horizons. A solve
that still blows up is retried up to the last saved time before the failure, and its records carry
``failed_at``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .._checks import check_positive_finite
from ..data.datasets import NodeDataset
from ..diagnostics import dirichlet_energy, rayleigh_quotient
from ..diagnostics._checks import frobenius_norm
from ..errors import IntegrationError
from ..graph import Graph
from ..models import ContinuousGNN
from ..ode.field import VectorField, captured_tensors, jump_times
from ..ode.grid import fixed_grid
from ..ode.integrate import integrate
from ..ode.methods import check_method, is_fixed
from ..ode.settings import Adaptive, FixedGrid
from ..training.metrics import accuracy

__all__ = ["TRAJECTORY_COLUMNS", "MAX_NFE", "trajectory_records", "check_times", "check_grid"]

#: The evaluation budget of a trajectory's solve (:func:`trajectory_records`'s default ``max_nfe``).
MAX_NFE = 100_000

#: Columns of :func:`trajectory_records` (after any caller-supplied label columns).
TRAJECTORY_COLUMNS: tuple[str, ...] = (
    "method", "step_size", "t_end", "t", "steps", "nfe", "requested", "dirichlet", "rayleigh", "norm",
    "acc_train", "acc_val", "acc_test", "failed_at",
)

_SLACK = 1e-9


class _EvaluationTimes(VectorField):
    """Wraps a vector field and appends the time of every evaluation to ``times`` (for NFE up to ``t``)."""

    def __init__(self, func: VectorField, times: list[float]) -> None:
        super().__init__()
        self.func = func
        self.times = times

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.times.append(float(t))
        return self.func(t, x)

    def jump_times(self) -> list[float]:
        return jump_times(self.func)

    def captured_tensors(self) -> tuple[Tensor, ...]:
        return captured_tensors(self.func)


def _count_until(times: list[float], t: float) -> int:
    return sum(1 for s in times if s <= t + _SLACK * max(1.0, t))


def _on_grid(value: float, step_size: float) -> bool:
    """Whether ``value`` is a whole number of steps of ``step_size``, up to rounding."""
    ratio = value / step_size
    return abs(ratio - round(ratio)) <= 1e-6 * max(1.0, ratio)


def check_times(times: Sequence[float], t_end: float, step_size: float | None) -> list[float]:
    """``times`` as floats in (0, t_end], each a multiple of ``step_size`` when one is given (a fixed grid)."""
    if isinstance(times, (str, bytes)) or not hasattr(times, "__iter__"):
        raise TypeError(f"times must be a sequence of times, e.g. [0.5, 1.0], got {type(times).__name__}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    out = []
    for value in times:
        value = float(value)
        if not (0 < value <= t_end + _SLACK * max(1.0, t_end)) or not math.isfinite(value):
            raise ValueError(f"time {value:g} must lie in (0, t_end={t_end:g}]")
        if step_size is not None:
            if not _on_grid(value, step_size):
                raise ValueError(
                    f"time {value:g} is not a multiple of the step size {step_size:g}: a fixed-grid trajectory "
                    "is read out at its grid points; choose times that are multiples of every step size"
                )
        out.append(min(value, t_end))
    return out


def check_grid(t_end: float, step_size: float, max_nfe: int | None) -> int:
    """The steps of a fixed grid of size ``step_size`` over ``[0, t_end]``, after checking that a solve can take
    them (:meth:`FixedGrid.overrun <continuous_gnn.ode.settings.FixedGrid.overrun>`: at most
    :data:`~continuous_gnn.ode.settings.DEFAULT_MAX_GRID_STEPS` steps, and no more than the evaluation budget
    ``max_nfe``). Checked before the grid is built, which for a tiny step would take the memory first.

    Raises:
        ValueError: naming the step count and what to change.
    """
    grid = FixedGrid("euler", step_size=step_size, max_nfe=max_nfe)
    overrun = grid.overrun(t_end)
    if overrun is not None:
        raise ValueError(f"{overrun[1]}; raise the step size or lower T")
    return grid.count_steps(t_end)


def _save_times(t_end: float, step_size: float | None, requested: Sequence[float], max_points: int) -> list[float]:
    """Times at which a trajectory is read out: about ``max_points`` evenly spread ones plus ``requested``."""
    if step_size is not None:
        grid = fixed_grid(t_end, step_size=step_size)
        last = len(grid) - 1
        picks = {round(k * last / (max_points - 1)) for k in range(max_points)} if max_points > 1 else {last}
        picks |= {0, last}
        picks |= {int((grid - t).abs().argmin()) for t in requested}
        return [float(grid[k]) for k in sorted(picks)]
    points = {t_end * k / (max_points - 1) for k in range(max_points)} if max_points > 1 else {t_end}
    points |= {0.0, t_end, *requested}
    return sorted(points)


def _solve(model: ContinuousGNN, x: Tensor, graph: Graph, t_end: float, inner: list[float],
           solver: FixedGrid | Adaptive) -> tuple[Tensor, Tensor, list[float], Any]:
    """Solve the model's flow to ``t_end`` with ``solver``; the saved times, states, evaluation times and stats."""
    evaluations: list[float] = []

    def integrator(func, x0, t_end, **kwargs):
        return integrate(_EvaluationTimes(func, evaluations), x0, t_end, **kwargs)

    _, solution = model.solve(x, graph, t_end=t_end, solver=solver, adjoint=None, save_at=inner,
                              integrator=integrator)
    return solution.times, solution.states, evaluations, solution.stats


def trajectory_records(
    model: ContinuousGNN,
    dataset: NodeDataset,
    *,
    t_end: float,
    split: int = 0,
    graph: Graph | None = None,
    method: str = "euler",
    step_size: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    times: Sequence[float] = (),
    max_points: int = 65,
    max_nfe: int | None = MAX_NFE,
    dtype: torch.dtype = torch.float64,
    labels: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    r"""Integrate a model's flow to ``t_end`` and record diagnostics and accuracy along :math:`t`.

    The state is saved at about ``max_points`` evenly spread times (grid points for a fixed-grid method)
    plus every time in ``times`` (those rows have ``requested=True``) and :math:`t = 0`. The model is not
    changed: a copy in ``dtype`` and eval mode is integrated under ``torch.no_grad()``.

    NFE to reach :math:`t`: for a fixed grid, the steps up to :math:`t` (column ``steps``) times the
    evaluations per step (exact); for an adaptive method, the evaluations made at times :math:`\le t` in the
    single solve to ``t_end`` (``steps`` is then empty).

    Args:
        model (ContinuousGNN): the model (fresh or trained).
        dataset (NodeDataset): features, labels and split masks.
        t_end (float): final time :math:`T` (may exceed the model's training time: extrapolation).
        split (int): split whose masks give ``acc_train``/``acc_val``/``acc_test`` (default: ``0``).
        graph (Graph, optional): the operator :math:`\bar A` (default: built from ``dataset`` as the model
            builds one, with self-loops unless ``model.self_loops`` is False).
        method (str): solver (default: ``"euler"``).
        step_size (float, optional): τ of a fixed-grid method (required for it).
        rtol, atol (float, optional): tolerances of an adaptive method.
        times (sequence of float): times to mark as requested; for a fixed grid, multiples of τ.
        max_points (int): evenly spread readouts (default: ``65``).
        max_nfe (int, optional): evaluation budget of the solve (default: ``100000``).
        dtype (torch.dtype): precision of the evaluation (default: ``torch.float64``).
        labels (Mapping, optional): columns prepended to every record (e.g. ``{"source": "cora"}``).

    Returns:
        list[dict]: one record per saved time with :data:`TRAJECTORY_COLUMNS` after ``labels``.

    Raises:
        ValueError: on inconsistent solver arguments or times off the grid.
    """
    method = check_method(method)
    fixed = is_fixed(method)
    t_end = float(t_end)
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if fixed and step_size is None:
        raise ValueError(f"the fixed-grid method {method!r} needs a step_size")
    if not fixed and step_size is not None:
        raise ValueError(f"step_size applies to fixed-grid methods, not to the adaptive method {method!r}")
    # Every record carries step_size; a shorter last step would be one it does not describe.
    if fixed and not (_on_grid(t_end, check_positive_finite(step_size, "step_size")) and round(t_end / step_size) >= 1):
        raise ValueError(f"t_end={t_end:g} is not a multiple of step_size={step_size:g}: the last step would be "
                         "shorter than the step size the records carry; choose t_end = k * step_size")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points!r}")
    requested = check_times(times, t_end, step_size if fixed else None)
    if fixed:
        check_grid(t_end, step_size, max_nfe)
    saved = _save_times(t_end, step_size if fixed else None, requested, max_points)

    if fixed:
        solver: FixedGrid | Adaptive = FixedGrid(method, step_size=float(step_size), max_nfe=max_nfe)
    else:
        solver = Adaptive(method, **{k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None},
                          max_nfe=max_nfe)
    data = dataset.data
    graph = (Graph.from_data(data, self_loops=model.self_loops, dtype=dtype) if graph is None
             else graph.to(dtype=dtype))
    work = copy.deepcopy(model).to(dtype).eval()
    x = data.x.to(dtype)
    y = data.y
    masks = torch.stack(dataset.split(split))

    failed_at = math.nan
    end = t_end
    with torch.no_grad():
        try:
            times_t, states, evaluations, stats = _solve(work, x, graph, end, saved[1:-1], solver)
        except IntegrationError as err:
            failed_at = err.t if err.t is not None else math.nan
            limit = failed_at if math.isfinite(failed_at) else 0.0
            before = [s for s in saved if 0 < s < limit - _SLACK * max(1.0, limit)]
            if not before:
                raise
            end = before[-1]
            times_t, states, evaluations, stats = _solve(work, x, graph, end, before[:-1], solver)

        steps_total = max(stats.steps_accepted, 1)
        per_step = stats.nfe_forward / steps_total
        records = []
        for t_value, state in zip(times_t.tolist(), states.unbind(0)):
            if fixed:
                steps = int(round(t_value / step_size + 1e-9)) if t_value < end else stats.steps_accepted
                steps = min(steps, stats.steps_accepted)
                nfe = int(round(steps * per_step))
            else:
                steps = None
                nfe = _count_until(evaluations, t_value) if t_value > 0 else 0
            scores = accuracy(work.decode(state), y, masks).tolist()
            record = dict(labels or {})
            record.update({
                "method": method,
                "step_size": float(step_size) if fixed else None,
                "t_end": t_end,
                "t": t_value,
                "steps": steps,
                "nfe": nfe,
                "requested": any(abs(t_value - r) <= 1e-6 * max(1.0, r) for r in requested),
                "dirichlet": float(dirichlet_energy(state, graph)),
                "rayleigh": float(rayleigh_quotient(state, graph)),
                "norm": float(frobenius_norm(state)),
                "acc_train": scores[0],
                "acc_val": scores[1],
                "acc_test": scores[2],
                "failed_at": failed_at,
            })
            records.append(record)
    return records
