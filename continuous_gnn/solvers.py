"""Names of torchdiffeq's public solvers, and the rules that tell them apart."""

from __future__ import annotations

#: Fixed-grid methods and their order of accuracy. ``fixed_adams`` is torchdiffeq's old name of ``implicit_adams``.
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
METHODS = tuple(FIXED_METHODS) + tuple(ADAPTIVE_METHODS) + SCIPY_METHODS


def check_method(method: str, role: str = "method") -> str:
    """Return ``method`` if torchdiffeq knows it, else raise a ``ValueError`` listing the valid names."""
    if not isinstance(method, str):
        raise TypeError(f"{role} must be a solver name (str), got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown {role} {method!r}; valid names are: {', '.join(METHODS)}")
    return method


def is_fixed(method: str) -> bool:
    return method in FIXED_METHODS
