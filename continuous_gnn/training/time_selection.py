r"""Choosing a trained model's integration time on validation: GRAND's early-stopping evaluation.

A model trained to :math:`T` need not classify best at :math:`T`. GRAND's code (``src/early_stop_solver.py`` of
twitter-research/graph-neural-pde, used whenever its ``no_early`` flag is unset) therefore evaluates by integrating
to :math:`cT` (its ``earlystopxT``, 3 by default), decoding the state after every solver step and reporting the
metrics of the step with the best validation metric. The choice reads the validation nodes only, so the test
metric it reports is chosen as honestly as the best epoch is.

:func:`scores_along_flow` gives the metrics after every step of the model's own solver over :math:`[0, cT]`: a
fixed grid's steps τ, 2τ, ..., and one shorter last step when τ does not divide :math:`cT`, as torchdiffeq's grid
and GRAND's ``EarlyStopRK4`` have them; an adaptive method's accepted steps, as GRAND's ``EarlyStopDopri5`` scores
them, except that the last is scored at :math:`cT` itself (GRAND's scores the end of the step that passes
:math:`cT`). :func:`best_step` picks the first step of best validation metric, as GRAND's strict ``>`` does. The
training loop uses both when ``RunConfig.eval_time_multiple`` is set.

The states of every step are held at once: ``(steps + 1) × |V| × d`` numbers (Cora at ``d = 80`` and 55 steps:
about 45 MB in float32).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
from torch import Tensor

from .._checks import check_positive_finite
from ..ode.integrate import integrate
from ..ode.methods import SCIPY_METHODS
from ..ode.settings import FixedGrid
from .metrics import metrics

__all__ = ["VALIDATION_ROW", "scores_along_flow", "best_step"]

#: The row of the validation nodes in the ``masks`` of the training loop (train, validation, test).
VALIDATION_ROW = 1


def scores_along_flow(model: torch.nn.Module, x: Tensor, graph: object, y: Tensor, masks: Tensor, metric: str, *,
                      t_end: float) -> tuple[Tensor, Tensor]:
    r"""The metrics of ``model``'s prediction after every solver step of its flow over :math:`[0, T_{end}]`.

    The model (a :class:`~continuous_gnn.ContinuousGNN`) encodes ``x`` and integrates with its own solver: a
    fixed grid with its step size τ (``num_steps = L`` reads as τ = T/L, the model's own T), or an adaptive
    method with its tolerances, whose accepted steps are scored (:func:`~continuous_gnn.integrate`'s
    ``on_step``). Each state is decoded as the model decodes :math:`F(T)`. Call it under ``torch.no_grad()`` in
    eval mode, as an evaluation.

    Args:
        model: the model.
        x: node features.
        graph: the graph, in any form ``model`` accepts.
        y: labels ``(|V|,)``.
        masks: boolean ``(m, |V|)``, one row per node set.
        metric: ``"accuracy"`` or ``"roc_auc"`` (:func:`~continuous_gnn.training.metrics.metrics`).
        t_end: where to stop, e.g. three times the model's T.

    Returns:
        tuple: the end time of each step ``(K,)`` (float64, the last is ``t_end``) and the metrics after it
        ``(K, m)``; the initial state is not scored.

    Raises:
        ValueError: if ``t_end`` is not a positive finite time, or the model's method is ``scipy_solver``, whose
            steps are not reported.
    """
    t_end = check_positive_finite(t_end, "t_end")
    solver = model.solver
    if isinstance(solver, FixedGrid):
        step = solver.step_size if solver.step_size is not None else model.t_end / solver.num_steps
        solver = dataclasses.replace(solver, step_size=step, num_steps=None)
    elif solver.method in SCIPY_METHODS:
        raise ValueError(f"choosing the integration time at evaluation scores the solver's steps, which "
                         f"{solver.method!r} does not report: use a torchdiffeq method such as dopri5 or rk4")
    times: list[float] = []
    states: list[Tensor] = []

    def record(t: float, state: Tensor) -> None:
        times.append(t)
        states.append(state)

    _, solution = model.solve(x, graph, t_end=t_end, solver=solver,
                              integrator=functools.partial(integrate, on_step=record))
    states = [model.flow.readout(state) for state in states] + [solution.final]
    scores = torch.stack([metrics(model.decode(state), y, masks, metric) for state in states])
    return torch.tensor([*times, t_end], dtype=torch.float64), scores


def best_step(scores: Tensor, row: int = VALIDATION_ROW) -> int:
    """The index of the first step whose metric in ``row`` is the largest (NaN never wins; the last step when
    every value is NaN).

    Args:
        scores: ``(K, m)`` metrics, as :func:`scores_along_flow` returns them.
        row: the column of the metric to choose by (default: the validation nodes').
    """
    values = scores[:, row].tolist()
    best, best_value = len(values) - 1, -math.inf
    for index, value in enumerate(values):
        if value > best_value:  # strict: the first on ties; NaN compares false
            best, best_value = index, value
    return best
