r"""Typed solver settings: how a solve steps (:class:`FixedGrid`, :class:`Adaptive`) and how it is differentiated
(:class:`Adjoint`).

Each object is frozen and checks itself when it is built, so a bad value or an option the method would ignore
fails at the line that wrote it, not deep inside a solve. :meth:`Adjoint.for_solver` checks a forward solver
and an adjoint together (the pairs that cannot work, such as a fixed-grid backward solve after an adaptive
forward solve without a step size) and fills in the defaults the backward solve inherits.

.. code-block:: python

    FixedGrid("euler", step_size=0.5)                 # exactly T / 0.5 steps
    FixedGrid("rk4", num_steps=8)
    Adaptive("dopri5", rtol=1e-4, atol=1e-6)
    Adjoint(seminorm=True)                            # backward solve with the forward method and tolerances

:func:`settings_from_keywords` turns torchdiffeq-style keywords (``method=``, ``step_size=``, ``rtol=``,
``adjoint=True``, ``adjoint_method=``, ...) into the same objects; :func:`~continuous_gnn.integrate` accepts
either form.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .grid import DEFAULT_MAX_GRID_STEPS, as_float, count_steps, fixed_grid, shown_steps
from .methods import (
    ADAPTIVE_METHODS,
    EVALUATIONS_PER_STEP,
    IMPLICIT_METHODS,
    SCIPY_METHODS,
    check_method,
    checked_options,
    is_fixed,
)

__all__ = [
    "DEFAULT_RTOL",
    "DEFAULT_ATOL",
    "DEFAULT_MAX_STEPS",
    "DEFAULT_MAX_GRID_STEPS",
    "FixedGrid",
    "Adaptive",
    "Adjoint",
    "Solver",
    "settings_from_keywords",
]

#: The relative tolerance of an adaptive method (and of ``implicit_adams``'s corrector) when none is given.
DEFAULT_RTOL = 1e-3
#: The absolute tolerance when none is given.
DEFAULT_ATOL = 1e-5
#: Step budget of each adaptive solve (forward and adjoint backward, rejected steps included) when
#: ``max_steps`` is not given: a stiff problem fails with :class:`~continuous_gnn.IntegrationError` instead of
#: running for hours.
DEFAULT_MAX_STEPS = 10_000


def _budget(value: Any, name: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return value


def _tolerances(rtol: Any, atol: Any, default_rtol: float, default_atol: float, what: str = "") -> tuple[float, float]:
    rtol = default_rtol if rtol is None else as_float(rtol, what + "rtol")
    atol = default_atol if atol is None else as_float(atol, what + "atol")
    if not (rtol > 0 and atol >= 0 and math.isfinite(rtol) and math.isfinite(atol)):
        raise ValueError(f"tolerances must be rtol > 0 and atol >= 0, got {what}rtol={rtol}, {what}atol={atol}")
    return rtol, atol


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass's own field in __post_init__


@dataclass(frozen=True)
class FixedGrid:
    r"""A fixed-grid solve (``euler``, ``midpoint``, ``heun2``, ``heun3``, ``rk4``, the Adams methods).

    The grid is explicit (:func:`~continuous_gnn.ode.grid.fixed_grid`): ``num_steps=L`` or ``step_size=τ`` with
    :math:`T = Lτ` means exactly ``L`` steps, and a :math:`T` that is not a multiple of τ ends with one
    shorter step. Explicit Euler with step τ is a residual layer per step.

    Args:
        method (str): a fixed-grid torchdiffeq method (default: ``"euler"``).
        step_size (float, optional): τ; exactly one of ``step_size`` and ``num_steps``.
        num_steps (int, optional): ``L``.
        rtol, atol (float, optional): convergence tolerances of ``implicit_adams``'s Adams–Moulton corrector
            (default: ``1e-3`` and ``1e-5`` for that method); other fixed-grid methods take none.
        max_steps (int, optional): the longest grid a solve may build (default: ``None``, i.e.
            :data:`DEFAULT_MAX_GRID_STEPS` = 1 000 000).
        max_nfe (int, optional): raise :class:`~continuous_gnn.IntegrationError` past this many evaluations in
            either solve (default: unlimited).
        options (dict, optional): ``perturb``, or for the Adams methods also ``max_iters`` and ``max_order``.

    Raises:
        ValueError: on an adaptive or unknown method, neither or both of ``step_size``/``num_steps``, a bad
            number, tolerances for a method that takes none, or an option the method would ignore.
    """

    method: str = "euler"
    step_size: float | None = field(default=None, kw_only=True)
    num_steps: int | None = field(default=None, kw_only=True)
    rtol: float | None = field(default=None, kw_only=True)
    atol: float | None = field(default=None, kw_only=True)
    max_steps: int | None = field(default=None, kw_only=True)
    max_nfe: int | None = field(default=None, kw_only=True)
    options: Mapping[str, Any] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        method = check_method(self.method)
        if not is_fixed(method):
            raise ValueError(f"{method!r} is an adaptive method, not a fixed-grid one; use "
                             f"Adaptive({method!r}, rtol=..., atol=...)")
        if method in IMPLICIT_METHODS:
            rtol, atol = _tolerances(self.rtol, self.atol, DEFAULT_RTOL, DEFAULT_ATOL)
            _set(self, "rtol", rtol)
            _set(self, "atol", atol)
        elif self.rtol is not None or self.atol is not None:
            raise ValueError(f"rtol/atol apply to adaptive methods, not to the fixed-grid method {method!r}; "
                             "give step_size or num_steps")
        if (self.step_size is None) == (self.num_steps is None):
            given = "neither" if self.step_size is None else "both"
            raise ValueError(f"the fixed-grid method {method!r} needs exactly one of step_size or num_steps, got "
                             f"{given}; give one (for an adaptive solve, give an adaptive method such as "
                             "'dopri5' with rtol/atol instead)")
        if self.num_steps is not None and (not isinstance(self.num_steps, int) or isinstance(self.num_steps, bool)
                                           or self.num_steps < 1):
            raise ValueError(f"num_steps must be a positive integer, got {self.num_steps!r}")
        if self.step_size is not None:
            step = as_float(self.step_size, "step_size")
            if not (step > 0 and math.isfinite(step)):
                raise ValueError(f"step_size must be positive and finite, got {step}")
            _set(self, "step_size", step)
        _budget(self.max_steps, "max_steps")
        _budget(self.max_nfe, "max_nfe")
        _set(self, "options", checked_options(self.options, method))

    @property
    def fixed(self) -> bool:
        """``True``: the method steps on a fixed grid."""
        return True

    def count_steps(self, t_end: float) -> int | float:
        """The number of steps over :math:`[0, T]` (``math.inf`` if τ is so small that :math:`T/τ` overflows)."""
        return self.num_steps if self.num_steps is not None else count_steps(t_end, self.step_size)

    def overrun(self, t_end: float) -> tuple[str, str] | None:
        """The budget that a solve over :math:`[0, T]` would overrun, found from the step count alone, before any
        grid exists (for a mistyped step size the grid itself would take the memory first).

        Returns:
            ``("max_steps", why)`` when the grid has more steps than ``max_steps`` (or than
            :data:`DEFAULT_MAX_GRID_STEPS` when that is unset), ``("max_nfe", why)`` when its steps need more
            evaluations than ``max_nfe`` (at least :data:`~continuous_gnn.ode.methods.EVALUATIONS_PER_STEP` of
            the method per step: 4 for ``rk4``), else ``None``.
        """
        steps = self.count_steps(t_end)
        shown = shown_steps(steps)
        where = f"T / step_size = {t_end:g} / {self.step_size:g} gives" if self.num_steps is None else "the grid has"
        if self.max_steps is None and steps > DEFAULT_MAX_GRID_STEPS:
            return "max_steps", f"{where} {shown} steps, more than the {DEFAULT_MAX_GRID_STEPS:,} a solve allows"
        if self.max_steps is not None and steps > self.max_steps:
            return "max_steps", f"{where} {shown} steps, more than max_steps = {self.max_steps:,}"
        per_step = EVALUATIONS_PER_STEP[self.method]
        if self.max_nfe is not None and steps * per_step > self.max_nfe:
            each = "at least once per step" if per_step == 1 else f"{per_step} times per step: {steps * per_step:,}"
            return "max_nfe", (f"{where} {shown} steps, more than the evaluation budget max_nfe = {self.max_nfe:,} "
                               f"allows ({self.method!r} evaluates the field {each})")
        return None

    def grid(self, t_end: float) -> Any:
        """The grid over :math:`[0, T]` (float64), of length ``count_steps(t_end) + 1``."""
        return fixed_grid(t_end, step_size=self.step_size, num_steps=self.num_steps, max_steps=self.max_steps)

    def replace(self, **changes: Any) -> FixedGrid:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Adaptive:
    """An adaptive-step solve (``dopri5``, ``dopri8``, ``bosh3``, ``fehlberg2``, ``adaptive_heun``, ``scipy_solver``).

    Error control is torchdiffeq's: the RMS norm of the embedded error estimate relative to
    ``atol + rtol * |x|``.

    Args:
        method (str): an adaptive torchdiffeq method (default: ``"dopri5"``).
        rtol (float): relative tolerance (default: ``1e-3``).
        atol (float): absolute tolerance (default: ``1e-5``).
        max_steps (int, optional): budget of attempted steps (accepted plus rejected) of each solve, forward and
            adjoint backward (default: :data:`DEFAULT_MAX_STEPS` = 10 000). ``scipy_solver`` takes none: its
            steps are invisible, so a budget would be ignored; bound it with ``max_nfe``.
        max_nfe (int, optional): raise :class:`~continuous_gnn.IntegrationError` past this many evaluations in
            either solve (default: unlimited).
        options (dict, optional): ``first_step``, ``min_step``, ``max_step``, ``safety``, ``ifactor``,
            ``dfactor``, ``step_t``, ``jump_t``, ``dtype``, ``norm``; for ``scipy_solver``: ``solver`` (default
            ``"RK45"``), ``min_step`` (``LSODA`` only), ``max_step``.

    Raises:
        ValueError: on a fixed-grid or unknown method, bad tolerances or an option the method would ignore.
    """

    method: str = "dopri5"
    rtol: float = field(default=DEFAULT_RTOL, kw_only=True)
    atol: float = field(default=DEFAULT_ATOL, kw_only=True)
    max_steps: int | None = field(default=None, kw_only=True)
    max_nfe: int | None = field(default=None, kw_only=True)
    options: Mapping[str, Any] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        method = check_method(self.method)
        if is_fixed(method):
            raise ValueError(f"{method!r} is a fixed-grid method; use FixedGrid({method!r}, step_size=...)")
        rtol, atol = _tolerances(self.rtol, self.atol, DEFAULT_RTOL, DEFAULT_ATOL)
        _set(self, "rtol", rtol)
        _set(self, "atol", atol)
        if method in SCIPY_METHODS and self.max_steps is not None:
            raise ValueError(f"scipy_solver steps out of torchdiffeq's sight, so max_steps={self.max_steps} would be "
                             "ignored; bound the solve with max_nfe=... instead")
        if method not in SCIPY_METHODS:
            _set(self, "max_steps", DEFAULT_MAX_STEPS if self.max_steps is None else self.max_steps)
        _budget(self.max_steps, "max_steps")
        _budget(self.max_nfe, "max_nfe")
        options = checked_options(self.options, method, {"solver": "RK45"} if method in SCIPY_METHODS else None)
        if method in SCIPY_METHODS and "min_step" in options and options["solver"] != "LSODA":
            raise ValueError(f"min_step applies to scipy's 'LSODA' only, not to solver={options['solver']!r}")
        _set(self, "options", options)

    @property
    def fixed(self) -> bool:
        """``False``: the method chooses its steps."""
        return False

    def replace(self, **changes: Any) -> Adaptive:
        """A copy with some fields changed (checked again); a step budget and options that were only the defaults
        follow the method (``scipy_solver`` takes no step budget, and its ``solver`` option is its own)."""
        if "method" in changes and "max_steps" not in changes and self.max_steps in (None, DEFAULT_MAX_STEPS):
            changes["max_steps"] = None
        if "method" in changes and "options" not in changes and self.options == {"solver": "RK45"}:
            changes["options"] = {}
        return dataclasses.replace(self, **changes)


#: Either kind of forward solver settings.
Solver = FixedGrid | Adaptive


@dataclass(frozen=True)
class Adjoint:
    """Gradients by the adjoint method (torchdiffeq's ``odeint_adjoint``) instead of direct backprop.

    Memory does not grow with the number of steps, but gradients are only as accurate as the backward solve;
    direct backprop is exact for the discretised forward pass and is the default.

    Args:
        method (str, optional): method of the backward solve (default: the forward method).
        step_size (float, optional): its step if it is fixed-grid (default: the forward grid; required after
            an adaptive forward solve).
        rtol, atol (float, optional): its tolerances if it is adaptive or ``implicit_adams`` (default: the
            forward solve's when it is of the same kind, else ``1e-3`` and ``1e-5``).
        seminorm (bool): measure the adaptive backward error without the parameter adjoints, which usually
            needs fewer steps (Kidger et al. 2021) (default: ``False``).

    Raises:
        ValueError: on an unknown or non-differentiable method, or a setting that its kind of method would
            ignore (``seminorm`` or tolerances with a fixed grid, ``step_size`` with an adaptive method).
    """

    method: str | None = None
    step_size: float | None = field(default=None, kw_only=True)
    rtol: float | None = field(default=None, kw_only=True)
    atol: float | None = field(default=None, kw_only=True)
    seminorm: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.method is not None:
            check_method(self.method, "adjoint_method")
            if self.method in SCIPY_METHODS:
                raise ValueError("scipy_solver cannot be differentiated; use a torchdiffeq method with adjoint=True")
        if not isinstance(self.seminorm, bool):
            raise TypeError(f"seminorm must be True or False, got {self.seminorm!r}")
        if self.step_size is not None:
            step = as_float(self.step_size, "the adjoint's step_size")
            if not (step > 0 and math.isfinite(step)):
                raise ValueError(f"the adjoint's step_size must be positive and finite, got {step}")
            _set(self, "step_size", step)
        if self.rtol is not None or self.atol is not None:
            _tolerances(self.rtol, self.atol, DEFAULT_RTOL, DEFAULT_ATOL, "adjoint_")
        if self.method is not None:
            self._check_kind(self.method)

    def _check_kind(self, method: str) -> None:
        if is_fixed(method):
            if self.seminorm:
                raise ValueError("seminorm only changes adaptive step-size control; "
                                 "use an adaptive adjoint_method such as 'dopri5'")
            if method not in IMPLICIT_METHODS and (self.rtol is not None or self.atol is not None):
                raise ValueError(f"the adjoint's rtol/atol (Adjoint(rtol=..., atol=...), or the keywords "
                                 f"adjoint_rtol/adjoint_atol) do not apply to its fixed-grid method {method!r}; "
                                 "drop them, or choose an adaptive adjoint method such as 'dopri5'")
        elif self.step_size is not None:
            raise ValueError(f"the adjoint's step_size (Adjoint(step_size=...), or the keyword adjoint_step_size) "
                             f"applies to fixed-grid adjoint methods, not to {method!r}; drop it, or choose a "
                             "fixed-grid adjoint method such as 'rk4'")

    def for_solver(self, solver: Solver) -> Adjoint:
        """This adjoint with every default taken from the forward ``solver``, after checking the pair.

        Raises:
            ValueError: if the forward method cannot be differentiated (``scipy_solver``), or the backward
                solve is fixed-grid without a grid (after an adaptive forward solve, give ``step_size``).
        """
        if solver.method in SCIPY_METHODS:
            raise ValueError("scipy_solver cannot be differentiated; use a torchdiffeq method with adjoint=True")
        method = self.method or solver.method
        self._check_kind(method)
        rtol, atol = self.rtol, self.atol
        if is_fixed(method):
            if self.step_size is None and not solver.fixed:
                raise ValueError(f"the fixed-grid adjoint method {method!r} needs a step size after an adaptive "
                                 "forward solve, which has no grid to share: give Adjoint(step_size=...) (the "
                                 "keyword adjoint_step_size)")
            if method in IMPLICIT_METHODS:
                same_kind = solver.method in IMPLICIT_METHODS
                rtol, atol = _tolerances(rtol, atol, *((solver.rtol, solver.atol) if same_kind else
                                                       (DEFAULT_RTOL, DEFAULT_ATOL)), "adjoint_")
        else:
            same_kind = solver.method in ADAPTIVE_METHODS
            rtol, atol = _tolerances(rtol, atol, *((solver.rtol, solver.atol) if same_kind else
                                                   (DEFAULT_RTOL, DEFAULT_ATOL)), "adjoint_")
        return dataclasses.replace(self, method=method, rtol=rtol, atol=atol)

    def replace(self, **changes: Any) -> Adjoint:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)


def settings_from_keywords(
    *,
    method: str = "euler",
    step_size: float | None = None,
    num_steps: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_nfe: int | None = None,
    max_steps: int | None = None,
    options: Mapping[str, Any] | None = None,
    adjoint: bool = False,
    adjoint_method: str | None = None,
    adjoint_step_size: float | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    seminorm: bool = False,
) -> tuple[Solver, Adjoint | None]:
    """The typed settings of torchdiffeq-style keywords (the shorthand :func:`~continuous_gnn.integrate` accepts).

    A fixed-grid ``method`` gives a :class:`FixedGrid`, an adaptive one an :class:`Adaptive`; ``adjoint=True``
    gives an :class:`Adjoint` from the ``adjoint_*`` keywords and ``seminorm``, checked against the solver.

    Raises:
        ValueError: on the same mistakes as the objects themselves, plus ``step_size``/``num_steps`` for an
            adaptive method, and ``adjoint_*`` keywords or ``seminorm`` without ``adjoint=True``.
    """
    method = check_method(method)
    _budget(max_nfe, "max_nfe")
    _budget(max_steps, "max_steps")
    if not isinstance(adjoint, bool):
        raise TypeError(f"adjoint must be True, False or an Adjoint(...), got {type(adjoint).__name__}")
    if not adjoint:
        ignored = [name for name, value in (
            ("adjoint_method", adjoint_method), ("adjoint_step_size", adjoint_step_size),
            ("adjoint_rtol", adjoint_rtol), ("adjoint_atol", adjoint_atol),
        ) if value is not None] + (["seminorm"] if seminorm else [])
        if ignored:
            raise ValueError(f"{', '.join(ignored)} only apply with adjoint=True; pass adjoint=True or drop them")
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of torchdiffeq options, got {type(options).__name__}")
    solver: Solver
    if is_fixed(method):
        solver = FixedGrid(method, step_size=step_size, num_steps=num_steps, rtol=rtol, atol=atol,
                           max_steps=max_steps, max_nfe=max_nfe, options=options or {})
    else:
        if step_size is not None or num_steps is not None:
            raise ValueError(f"step_size/num_steps apply to fixed-grid methods, not to the adaptive method "
                             f"{method!r}; give rtol/atol")
        solver = Adaptive(method, rtol=DEFAULT_RTOL if rtol is None else rtol,
                          atol=DEFAULT_ATOL if atol is None else atol, max_steps=max_steps, max_nfe=max_nfe,
                          options=options or {})
    if not adjoint:
        return solver, None
    return solver, Adjoint(adjoint_method, step_size=adjoint_step_size, rtol=adjoint_rtol, atol=adjoint_atol,
                           seminorm=seminorm).for_solver(solver)
