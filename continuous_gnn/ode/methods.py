"""Names of torchdiffeq's public solvers, the options each accepts, and the rules that tell them apart."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

#: Fixed-grid methods and their nominal order of accuracy. ``fixed_adams`` is torchdiffeq's old name of
#: ``implicit_adams``. torchdiffeq 0.2.5's ``explicit_adams`` does not reach its order: on the heat flow its error
#: grows as the step shrinks (``experiments/convergence_order.py``; tested).
FIXED_METHODS: dict[str, int] = {
    "euler": 1,
    "midpoint": 2,
    "heun2": 2,
    "heun3": 3,
    "rk4": 4,
    "explicit_adams": 4,
    "implicit_adams": 4,
    "fixed_adams": 4,
}
#: The fewest evaluations of the field that one step of each fixed-grid method takes (the Adams methods start with
#: Runge–Kutta steps, and the implicit corrector iterates, so they take more on some steps; tested).
EVALUATIONS_PER_STEP: dict[str, int] = {
    "euler": 1,
    "midpoint": 2,
    "heun2": 2,
    "heun3": 3,
    "rk4": 4,
    "explicit_adams": 1,
    "implicit_adams": 1,
    "fixed_adams": 1,
}
#: Adaptive-step methods (embedded Runge–Kutta pairs), with the order of the propagated solution.
ADAPTIVE_METHODS: dict[str, int] = {
    "dopri5": 5,
    "dopri8": 8,
    "bosh3": 3,
    "fehlberg2": 2,
    "adaptive_heun": 2,
}
#: SciPy's integrators through torchdiffeq's wrapper: adaptive, without step callbacks or autograd.
SCIPY_METHODS = ("scipy_solver",)
#: Every method ``integrate`` accepts: the fixed-grid ones, the adaptive ones and SciPy's.
METHODS = tuple(FIXED_METHODS) + tuple(ADAPTIVE_METHODS) + SCIPY_METHODS
#: Fixed-grid methods with an implicit Adams–Moulton corrector, whose iteration takes ``rtol``/``atol``.
IMPLICIT_METHODS = ("implicit_adams", "fixed_adams")

#: torchdiffeq options accepted in ``integrate(..., options=...)``, by family. Everything else raises ``ValueError``
#: (torchdiffeq itself would only warn "Unexpected arguments" and ignore it).
_RK_OPTIONS = frozenset({"first_step", "min_step", "max_step", "safety", "ifactor", "dfactor", "step_t", "jump_t",
                         "dtype", "norm"})
_FIXED_OPTIONS = frozenset({"perturb"})
_ADAMS_OPTIONS = frozenset({"perturb", "max_iters", "max_order"})
_SCIPY_OPTIONS = frozenset({"solver", "min_step", "max_step"})
#: The orders torchdiffeq's Adams methods support.
MAX_ADAMS_ORDER = 12
#: The integrators of ``scipy.integrate.solve_ivp``, the ``solver`` option of ``scipy_solver``.
SCIPY_SOLVERS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
#: Options that ``integrate`` sets itself, with the argument to use instead.
RESERVED_OPTIONS: dict[str, str] = {
    "max_num_steps": "max_steps=...",
    "step_size": "step_size=... (an argument of integrate, not an option)",
    "grid_constructor": "step_size=... or num_steps=...",
    "interp": "save_at=[...] with grid points (the grid always lands on the saved times)",
    "rtol": "rtol=...",
    "atol": "atol=...",
}


def check_method(method: str, role: str = "method") -> str:
    """Return ``method`` if torchdiffeq knows it, else raise a ``ValueError`` listing the valid names."""
    if not isinstance(method, str):
        raise TypeError(f"{role} must be a solver name (str), got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown {role} {method!r}; valid names are: {', '.join(METHODS)}")
    return method


def is_fixed(method: str) -> bool:
    """Whether ``method`` steps on a fixed grid (``step_size``/``num_steps``) rather than by tolerances."""
    return method in FIXED_METHODS


def valid_options(method: str) -> frozenset[str]:
    """The keys of ``options`` that ``method`` understands (``integrate`` raises ``ValueError`` on any other).

    * adaptive Runge–Kutta methods: ``first_step``, ``min_step``, ``max_step``, ``safety``, ``ifactor``,
      ``dfactor``, ``step_t``, ``jump_t``, ``dtype``, ``norm``;
    * ``explicit_adams``/``implicit_adams``: ``max_iters``, ``max_order``, ``perturb``;
    * other fixed-grid methods: ``perturb``;
    * ``scipy_solver``: ``solver``, ``min_step``, ``max_step``.
    """
    method = check_method(method)
    if method in ADAPTIVE_METHODS:
        return _RK_OPTIONS
    if method in SCIPY_METHODS:
        return _SCIPY_OPTIONS
    if method in ("explicit_adams", *IMPLICIT_METHODS):
        return _ADAMS_OPTIONS
    return _FIXED_OPTIONS


def check_options(method: str, options: dict) -> None:
    """Raise ``ValueError`` naming the fix for every key of ``options`` that ``method`` would not use, and for a
    value outside what the option allows (a ``safety`` outside (0, 1], an ``ifactor`` below 1, a ``norm`` that is
    not callable, an Adams ``max_order`` outside 1..12, ``min_step`` above ``max_step``, ...)."""
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    reserved = sorted(k for k in options if k in RESERVED_OPTIONS)
    if reserved:
        fixes = "; ".join(f"{k!r}: use {RESERVED_OPTIONS[k]}" for k in reserved)
        raise ValueError(f"options {reserved} are set by integrate itself ({fixes})")
    unknown = sorted(set(options) - valid_options(method))
    if unknown:
        kind = "fixed-grid method" if is_fixed(method) else "method"
        valid = ", ".join(sorted(valid_options(method)))
        raise ValueError(f"options {unknown} do not apply to the {kind} {method!r}; valid options are: {valid}")
    for key, value in options.items():
        check = _VALUE_CHECKS.get(key)
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ValueError(f"options[{key!r}] {problem}, got {value!r}")
    low, high = options.get("min_step"), options.get("max_step")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        raise ValueError(f"options['min_step'] = {low} exceeds options['max_step'] = {high}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _in(low: float, high: float, *, low_open: bool = True, high_open: bool = False,
        finite: bool = True) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not _number(value) or not (above and below) or (finite and math.isinf(value)):
            closing = ")" if high_open or (finite and math.isinf(high)) else "]"
            return f"must be a number in {'(' if low_open else '['}{low:g}, {high:g}{closing}"
        return None
    return check


def _integer(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"must be an integer in [{low}, {high}]"
        return None
    return check


#: What each option's value must be: a step-size control whose values make torchdiffeq's step shrink to nothing
#: (an ``ifactor`` below 1, a ``safety`` of nan) ends in a "dt underflow" that blames the problem, and a
#: ``min_step`` past the end forces steps past the error control; the others fail deep inside the solver.
_VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "first_step": _in(0.0, math.inf),
    "min_step": _in(0.0, math.inf, low_open=False),
    "max_step": _in(0.0, math.inf, finite=False),
    "safety": _in(0.0, 1.0),
    "ifactor": _in(1.0, math.inf, low_open=False),
    "dfactor": _in(0.0, 1.0),
    "norm": lambda value: None if callable(value) else "must be a callable norm(tensor) -> scalar tensor",
    "perturb": lambda value: None if isinstance(value, bool) else "must be True or False",
    "max_order": _integer(1, MAX_ADAMS_ORDER),
    "max_iters": _integer(1, 10**6),
    "solver": lambda value: None if value in SCIPY_SOLVERS else f"must be one of {', '.join(SCIPY_SOLVERS)}",
}


def checked_options(options: Any, method: str, defaults: Mapping[str, Any] | None = None) -> SolverOptions:
    """A read-only copy of ``options`` (``None`` for none) over ``defaults``, checked by :func:`check_options`
    (the caller's dict may change later, the settings may not)."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of torchdiffeq options, got {type(options).__name__}")
    merged = {**(defaults or {}), **options}
    check_options(method, merged)
    return SolverOptions(merged)


class SolverOptions(dict):
    """The checked options of a solver's settings: a ``dict`` that cannot change, so that settings checked once
    stay valid, and that compares and hashes by its contents, so that two settings that solve differently never
    compare equal. A value other than a number, string, bool or ``None`` (a tensor, a list, a callable) counts by
    identity: two equal lists are two options, and a list's own items are not frozen."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("solver options cannot change once the settings are made (they were checked then); make "
                        "new settings, e.g. solver.replace(options={...})")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def _key(self) -> tuple:
        plain = (int, float, str, bool, type(None))
        return tuple(sorted((key, value if isinstance(value, plain) else ("object", id(value)))
                            for key, value in self.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict):
            return NotImplemented
        return self._key() == SolverOptions(other)._key()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._key())

    def __reduce__(self) -> tuple:
        return type(self), (dict(self),)
