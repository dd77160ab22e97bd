r"""Integrate a vector field with torchdiffeq: explicit grids, typed settings, solve statistics, typed failures."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchdiffeq import odeint, odeint_adjoint

from ..errors import IntegrationError
from .adjoint import adjoint_parameters, backward_arguments
from .field import jump_times
from .grid import as_float, inside, save_times, segment_grid, snap
from .guarded import GuardedField, all_finite
from .methods import IMPLICIT_METHODS, SCIPY_METHODS, is_fixed
from .settings import DEFAULT_MAX_STEPS, Adaptive, Adjoint, FixedGrid, Solver, settings_from_keywords
from .solution import Solution, SolveStats

__all__ = ["integrate", "resolve_settings", "layer_settings", "LAYER_SOLVER_KEYS"]

_SHORTHAND = ("method", "step_size", "num_steps", "rtol", "atol", "max_nfe", "max_steps", "options")
_ADJOINT_SHORTHAND = ("adjoint_method", "adjoint_step_size", "adjoint_rtol", "adjoint_atol", "seminorm")


def _clock() -> float:
    """``time.perf_counter()``, or NaN while Dynamo traces (``torch.compile``): it cannot trace the clock, which
    cost a graph break and a warning that asks the user to report it, and a clock read while tracing would not
    time the compiled solve anyway."""
    return math.nan if torch.compiler.is_compiling() else time.perf_counter()


def resolve_settings(solver: Solver | None, adjoint: Adjoint | bool | None,
                     keywords: Mapping[str, Any]) -> tuple[Solver, Adjoint | None]:
    """The typed settings of a call: ``solver``/``adjoint`` objects, or torchdiffeq-style ``keywords``.

    ``keywords`` holds only the keywords actually given (see :func:`integrate`). With ``solver=None`` they
    build the settings (:func:`~continuous_gnn.ode.settings.settings_from_keywords`); with a solver object
    they are an error, as are ``adjoint_*`` keywords beside an :class:`Adjoint` object. The adjoint is
    returned resolved for the solver (:meth:`Adjoint.for_solver`).

    Raises:
        TypeError: on a mix of objects and keywords, or a ``solver``/``adjoint`` of the wrong type.
        ValueError: on bad settings or an incompatible pair.
    """
    if adjoint is not None and not isinstance(adjoint, (bool, Adjoint)):
        raise TypeError(f"adjoint must be True, False or an Adjoint(...), got {type(adjoint).__name__}")
    given_adjoint_keywords = [k for k in _ADJOINT_SHORTHAND if k in keywords]
    if solver is None and not isinstance(adjoint, Adjoint):
        return settings_from_keywords(**keywords, adjoint=bool(adjoint))
    if solver is None:
        given = {k: v for k, v in keywords.items() if k not in _ADJOINT_SHORTHAND}
        solver, _ = settings_from_keywords(**given)
    elif not isinstance(solver, (FixedGrid, Adaptive)):
        raise TypeError(f"solver must be FixedGrid(...) or Adaptive(...), got {type(solver).__name__}; "
                        "or give torchdiffeq-style keywords (method=..., step_size=...) instead")
    else:
        mixed = [k for k in _SHORTHAND if k in keywords]
        if mixed:
            raise TypeError(f"give the solver settings either as solver={type(solver).__name__}(...) or as "
                            f"keywords, not both: drop {', '.join(mixed)} or put them into the solver object")
    if isinstance(adjoint, Adjoint):
        if given_adjoint_keywords:
            raise TypeError(f"give the adjoint settings either as adjoint=Adjoint(...) or as keywords, not both: "
                            f"drop {', '.join(given_adjoint_keywords)} or put them into the Adjoint object")
        return solver, adjoint.for_solver(solver)
    if not adjoint:
        if given_adjoint_keywords:
            raise ValueError(f"{', '.join(given_adjoint_keywords)} only apply with adjoint=True; "
                             "pass adjoint=True or drop them")
        return solver, None
    return solver, _keyword_adjoint(keywords).for_solver(solver)


def _keyword_adjoint(keywords: Mapping[str, Any]) -> Adjoint:
    """The :class:`Adjoint` of the ``adjoint_*`` keywords and ``seminorm``, not yet resolved for a solver."""
    return Adjoint(keywords.get("adjoint_method"), step_size=keywords.get("adjoint_step_size"),
                   rtol=keywords.get("adjoint_rtol"), atol=keywords.get("adjoint_atol"),
                   seminorm=keywords.get("seminorm", False))


#: The keys of a layer's solver dict that choose or configure the adjoint.
LAYER_ADJOINT_KEYS = frozenset(("adjoint",) + _ADJOINT_SHORTHAND)
#: The keys of a layer's solver given as a dict: the torchdiffeq-style keywords of :func:`integrate`.
LAYER_SOLVER_KEYS = frozenset(_SHORTHAND) | LAYER_ADJOINT_KEYS


def layer_settings(solver: Solver | Mapping[str, Any] | None,
                   adjoint: Adjoint | bool | None) -> tuple[Solver, Adjoint | None]:
    """The solver and adjoint a layer or model keeps: ``solver`` as a :class:`FixedGrid`/:class:`Adaptive` or a
    dict of :func:`integrate`'s keywords (default: Euler with step 1), ``adjoint`` as given (``True`` becomes
    ``Adjoint()``), both checked together now rather than at the first solve. The adjoint is kept unresolved, so
    that a later override of the solver resolves it afresh.

    Raises:
        TypeError: on a solver or adjoint of the wrong type, or an adjoint given twice.
        ValueError: on an unknown dict key, bad settings or an incompatible pair.
    """
    if solver is None:
        solver = FixedGrid("euler", step_size=1.0)
    if isinstance(solver, Mapping):
        unknown = sorted(set(solver) - LAYER_SOLVER_KEYS)
        if unknown:
            raise ValueError(f"unknown solver argument(s) {unknown}; choose from {sorted(LAYER_SOLVER_KEYS)}")
        keywords = dict(solver)
        if "adjoint" in keywords:
            if adjoint is not None:
                raise TypeError("give the adjoint either in the solver dict or as adjoint=..., not both")
            adjoint = keywords.pop("adjoint")
        solver, resolved = resolve_settings(None, adjoint, keywords)
        if resolved is None:
            return solver, None
        return solver, adjoint if isinstance(adjoint, Adjoint) else _keyword_adjoint(keywords)
    if not isinstance(solver, (FixedGrid, Adaptive)):
        raise TypeError(f"solver must be FixedGrid(...), Adaptive(...) or a dict of integrate keywords, "
                        f"got {type(solver).__name__}")
    resolve_settings(solver, adjoint, {})  # refuses a pair that cannot work, and an adjoint of the wrong type
    return solver, (Adjoint() if adjoint is True else adjoint or None)


def integrate(
    func: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    t_end: float,
    *,
    solver: Solver | None = None,
    adjoint: Adjoint | bool | None = None,
    save_at: Sequence[float] | Tensor | None = None,
    adjoint_params: Sequence[Tensor] | None = None,
    on_step: Callable[[float, Tensor], None] | None = None,
    **keywords: Any,
) -> Solution:
    r"""Solve :math:`\dot x = f(t, x)` on :math:`[0, T]` from :math:`x(0) = x_0` with a torchdiffeq method.

    The settings are typed objects (:mod:`continuous_gnn.ode.settings`):

    * ``solver=FixedGrid("euler", step_size=τ)`` (or ``num_steps=L``) steps on an explicit grid
      (:func:`~continuous_gnn.fixed_grid`): :math:`T = Lτ` means exactly ``L`` steps, and a ``T`` that is not a
      multiple of τ ends with one shorter step. ``implicit_adams`` is fixed-grid too; its ``rtol``/``atol``
      are the convergence tolerances of the Adams–Moulton corrector iteration.
    * ``solver=Adaptive("dopri5", rtol=..., atol=...)`` uses torchdiffeq's error control: the RMS norm of the
      embedded error estimate relative to ``atol + rtol * |x|``.
    * ``adjoint=Adjoint(...)`` (or ``adjoint=True``) takes gradients from torchdiffeq's ``odeint_adjoint``:
      memory does not grow with the number of steps, but gradients are only as accurate as the backward solve
      (direct backprop is exact for the discretised forward pass and is the default).

    torchdiffeq-style keywords build the same objects, so ``integrate(f, x0, T, method="rk4",
    step_size=0.1)`` is ``integrate(f, x0, T, solver=FixedGrid("rk4", step_size=0.1))``: ``method``
    (default ``"euler"``), ``step_size``, ``num_steps``, ``rtol``, ``atol``, ``max_nfe``, ``max_steps``,
    ``options``, and with ``adjoint=True`` also ``adjoint_method``, ``adjoint_step_size``, ``adjoint_rtol``,
    ``adjoint_atol`` and ``seminorm`` (see :func:`~continuous_gnn.ode.settings.settings_from_keywords`).

    The adjoint parameters are the module's parameters plus any tensor it declares through
    :meth:`~continuous_gnn.ode.VectorField.captured_tensors` (a bound :class:`~continuous_gnn.GradientFlow`
    declares its ``x0``), plus ``adjoint_params``. Any other captured tensor that requires grad would silently
    get no gradient, so it raises ``ValueError``.

    A vector field that jumps in time (a :class:`~continuous_gnn.ode.VectorField` whose
    :meth:`~continuous_gnn.ode.VectorField.jump_times` returns times, such as a bound
    :class:`~continuous_gnn.EnergySchedule`) gets those times as torchdiffeq's ``jump_t`` with adaptive
    methods, so that steps end exactly on the jumps instead of being rejected around them. On a fixed grid,
    grid points within rounding of a jump are snapped onto it and ``perturb=True`` is set, so each stage of a
    step is evaluated strictly inside that step (a step ending on a jump does not see the next piece).

    Args:
        func: the vector field ``f(t, x)``; an ``nn.Module`` for the adjoint.
        x0 (Tensor): the initial state.
        t_end (float): :math:`T > 0`.
        solver (FixedGrid or Adaptive, optional): how to step (default: built from the keywords, i.e.
            ``FixedGrid("euler", ...)`` when no ``method`` is given).
        adjoint (Adjoint or bool, optional): how to differentiate: ``None``/``False`` for direct backprop,
            ``True`` or an :class:`~continuous_gnn.ode.settings.Adjoint` for the adjoint method (default:
            ``None``).
        save_at (sequence of float, optional): extra times in :math:`(0, T)`, strictly increasing, at which to
            return the state; for a fixed grid they must be grid points.
        adjoint_params (sequence of Tensor, optional): extra tensors that need adjoint gradients.
        on_step (callable, optional): called as ``on_step(t, x)`` with every point inside :math:`(0, T)` where
            a step of the forward solve ends, in order: the points of a fixed grid, the steps an adaptive
            method accepted (its own choice, which ``save_at`` cannot ask for). The step that reaches
            :math:`T` is not reported (an adaptive method may end it past :math:`T`; the solution holds
            :math:`x(T)`). ``scipy_solver`` reports no steps, so it is refused.
        **keywords: the torchdiffeq-style shorthand above.

    Returns:
        Solution: the final state, the saved states and :class:`~continuous_gnn.SolveStats`.

    Raises:
        ValueError / TypeError: on invalid arguments, each naming the fix (an option that the method would
            ignore is an error, never a warning).
        IntegrationError: when the solve fails (non-finite state, step underflow, budgets, or a fixed grid
            longer than ``max_steps``), with the reason, method, tolerances, time reached, evaluations and
            advice. An exception raised inside ``func`` reaches the caller unchanged.
    """
    unknown = sorted(set(keywords) - set(_SHORTHAND) - set(_ADJOINT_SHORTHAND))
    if unknown:
        raise TypeError(f"integrate() got unexpected keyword argument(s) {unknown}; the solver keywords are "
                        f"{', '.join(_SHORTHAND + _ADJOINT_SHORTHAND)}")
    solver, adjoint = resolve_settings(solver, adjoint, keywords)
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise TypeError("x0 must be a floating-point tensor")
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, x), got {type(func).__name__}")
    t_end = as_float(t_end, "t_end")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if x0.numel() == 0:  # an adaptive method would shrink its step to nothing and blame stiffness
        raise ValueError(f"x0 is empty (shape {tuple(x0.shape)}): there is no state to integrate; check the graph "
                         "and the features")
    if not all_finite(x0):
        raise ValueError("x0 contains inf or nan; check the encoder output and the input features")
    if x0.dtype == torch.float16 and not isinstance(solver, FixedGrid):
        raise TypeError(f"the adaptive method {solver.method!r} cannot step a float16 state: torchdiffeq's step "
                        "control turns the time to nan in float16; use x0.float() (or bfloat16), or a fixed-grid "
                        "method")
    min_step = solver.options.get("min_step")
    if min_step is not None and min_step >= t_end:
        raise ValueError(f"options['min_step'] = {min_step:g} is not below t_end = {t_end:g}: it would force steps "
                         "past the end, outside the error control; lower min_step or leave it out")
    if adjoint is None and adjoint_params is not None:
        raise ValueError("adjoint_params only apply with adjoint=True; pass adjoint=True or drop them")
    if on_step is not None and not callable(on_step):
        raise TypeError(f"on_step must be callable as on_step(t, x), got {type(on_step).__name__}")
    if on_step is not None and solver.method in SCIPY_METHODS:
        raise ValueError(f"on_step reports the solver's steps, which {solver.method!r} does not report; use a "
                         "torchdiffeq method such as dopri5, or save_at for chosen times")

    method = solver.method
    options = dict(solver.options)
    jumps = inside(jump_times(func), t_end)
    grid = None
    if isinstance(solver, FixedGrid):
        overrun = solver.overrun(t_end)
        if overrun is not None:
            budget, why = overrun
            raise IntegrationError(budget, method=method, rtol=solver.rtol, atol=solver.atol, t=0.0, nfe=0,
                                   detail=why, advice=f"use a larger step_size or a smaller T, or raise {budget}")
        grid = solver.grid(t_end)
        if jumps:
            # Grid points within rounding of a jump are the jump itself, and every stage of a step is
            # evaluated just inside it (torchdiffeq's perturb), so step k sees only the field of its piece.
            grid = snap(grid, jumps, t_end)
            options.setdefault("perturb", True)
        options["grid_constructor"] = segment_grid(grid)
        # implicit_adams: corrector tolerances; other fixed-grid methods ignore rtol/atol entirely.
        solver_kwargs = {"rtol": solver.rtol, "atol": solver.atol} if method in IMPLICIT_METHODS else {}
        forward = "fixed"
    else:
        if jumps and method not in SCIPY_METHODS and "jump_t" not in options:
            options["jump_t"] = torch.tensor(jumps, dtype=torch.float64)
        solver_kwargs = {"rtol": solver.rtol, "atol": solver.atol}
        forward = "none" if method in SCIPY_METHODS else "adaptive"

    times = save_times(save_at, t_end, grid)
    stats = SolveStats(method=method, adjoint=adjoint is not None)
    backward = None
    backward_budget = None
    if adjoint is not None:
        backward = "fixed" if is_fixed(adjoint.method) else "adaptive"
        backward_budget = solver.max_steps if solver.max_steps is not None else (
            None if backward == "fixed" else DEFAULT_MAX_STEPS)
    guarded = GuardedField(func, stats, forward=forward, backward=backward, max_nfe=solver.max_nfe,
                           max_steps=(solver.max_steps, backward_budget), rtol=solver_kwargs.get("rtol"),
                           atol=solver_kwargs.get("atol"), grid=grid, on_step=on_step,
                           backward_solver=None if adjoint is None else (adjoint.method, adjoint.rtol, adjoint.atol))
    t = times.to(x0.device)

    started = _clock()
    try:
        if adjoint is not None:
            params = adjoint_parameters(func, adjoint_params)
            backward_kwargs = backward_arguments(func, adjoint, grid, t_end, options, solver.max_steps)
            states = odeint_adjoint(guarded, x0, t, method=method, options=options, **solver_kwargs,
                                    **backward_kwargs, adjoint_params=params)
        elif method in SCIPY_METHODS:
            with warnings.catch_warnings():
                # torchdiffeq always hands scipy min_step=0, which every scipy solver but LSODA flags as unused.
                warnings.filterwarnings("ignore", message=r"The following arguments have no effect.*`min_step`")
                states = odeint(guarded, x0, t, method=method, options=options, **solver_kwargs)
        else:
            states = odeint(guarded, x0, t, method=method, options=options, **solver_kwargs)
    except AssertionError as err:
        if err is guarded.user_error:
            raise
        raise guarded.translate(err) from err
    stats.wall_time = _clock() - started
    if states.size(0) != t.numel():  # torchdiffeq's SciPy wrapper returns only the times its solver reached
        reached = states.size(0)
        raise guarded.fail("incomplete", None, stats.nfe_forward,
                           f"it returned the states of {reached} of the {t.numel()} requested times and stopped "
                           f"between t={float(times[reached - 1]):g} and t={float(times[reached]):g}")
    stats.t_final = guarded.t_reached if guarded.t_reached is not None else t_end
    if not guarded.solve_finite(states):
        raise guarded.non_finite_solve(stats.t_final)
    guarded.finite_flags.clear()
    guarded.backward_phase = True
    return Solution(final=states[-1], times=times, states=states, stats=stats)
