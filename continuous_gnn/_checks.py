"""Argument checks shared by the layers, energies and models, so that each rejects bad numbers the same way."""

from __future__ import annotations

import math


def check_positive_int(value: object, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive ``int`` (``True`` and ``2.0`` are not)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_finite(value: object, name: str) -> float:
    """``value`` as a float; ``TypeError`` unless it is a real number, ``ValueError`` unless it is in (0, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a ``bool``; otherwise ``TypeError`` (a string such as ``"no"`` is truthy and would turn
    the option on)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value
