r"""The vector-field base class: :math:`f(t, x)` plus the hooks :func:`~continuous_gnn.integrate` reads.

Any callable ``f(t, x)`` can be integrated. A field that subclasses :class:`VectorField` can also declare

* :meth:`~VectorField.jump_times`: times where it jumps (a piecewise-constant schedule of energies), which
  become step boundaries, and
* :meth:`~VectorField.captured_tensors`: tensors it closes over that need gradients under the adjoint method
  (a bound initial state :math:`X(0)`), which become adjoint parameters.

Both default to none, so a subclass overrides only what it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["VectorField", "captured_tensors", "jump_times"]


class VectorField(nn.Module):
    """Base class of vector fields ``forward(t, x) -> dx/dt`` with optional solver hooks."""

    def forward(self, t: Tensor, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(t, x)")

    def jump_times(self) -> Sequence[float]:
        """Times where the field jumps in :math:`t` (default: none)."""
        return ()

    def captured_tensors(self) -> tuple[Tensor, ...]:
        """Tensors the field closes over that are not its parameters but may need gradients (default: none)."""
        return ()


def jump_times(func: Callable) -> list[float]:
    """``func.jump_times()`` for a :class:`VectorField`, sorted; none for any other callable."""
    return sorted(float(t) for t in func.jump_times()) if isinstance(func, VectorField) else []


def captured_tensors(func: Callable) -> tuple[Tensor, ...]:
    """``func.captured_tensors()`` for a :class:`VectorField`; none for any other callable."""
    return tuple(func.captured_tensors()) if isinstance(func, VectorField) else ()
