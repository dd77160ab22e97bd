r"""Sums of energies: :math:`E = \sum_k w_k E_k`, whose gradient is the weighted sum of the parts' gradients."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..graph import Graph
from .base import Energy

__all__ = ["EnergySum"]


@dataclass(frozen=True, eq=False)
class _PreparedParts:
    """What each part of a sum prepared for one solve, in order."""

    parts: tuple[Any, ...]


class EnergySum(Energy):
    r"""A weighted sum of energies on the same features.

    .. math::
        E(X) = \sum_k w_k E_k(X), \qquad \nabla E(X) = \sum_k w_k \nabla E_k(X).

    Each part keeps its closed-form gradient, so the sum costs what its parts cost. ``GRAFFEnergy(d) +
    0.1 * AllenCahnEnergy(d)`` builds one; nested sums are flattened. The sum is a gradient flow when every part
    is, and it takes the features of every part (their ``channels`` must agree).

    Args:
        energies (Sequence[Energy]): the parts.
        weights (Sequence[float], optional): :math:`w_k`, finite numbers (default: all ``1``).

    Raises:
        ValueError: on no parts, a weight count that does not match, a non-finite weight, or parts of different
            widths.
    """

    def __init__(self, energies: Sequence[Energy], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if isinstance(energies, Energy) or not isinstance(energies, (list, tuple, nn.ModuleList)):
            raise TypeError(f"EnergySum takes a list of energies, got {type(energies).__name__}; for one energy "
                            "write EnergySum([energy])")
        energies = list(energies)
        if not energies:
            raise ValueError("EnergySum needs at least one energy")
        for energy in energies:
            if not isinstance(energy, Energy):
                raise TypeError(f"EnergySum takes Energy modules, got {type(energy).__name__}")
        if weights is not None and (not isinstance(weights, (list, tuple)) or any(
                isinstance(w, bool) or not isinstance(w, numbers.Real) for w in weights)):
            raise TypeError(f"EnergySum weights must be a list of numbers, one per energy, got {weights!r}")
        weights = [1.0] * len(energies) if weights is None else [float(w) for w in weights]
        if len(weights) != len(energies):
            raise ValueError(f"EnergySum got {len(energies)} energies but {len(weights)} weights")
        if not all(math.isfinite(w) for w in weights):
            raise ValueError(f"EnergySum weights must be finite numbers, got {weights}")
        channels = {energy.channels for energy in energies} - {None}
        if len(channels) > 1:
            raise ValueError(f"the energies of a sum must have the same channels, got {sorted(channels)}")
        self.parts = nn.ModuleList(energies)
        self.weights = tuple(weights)
        self.channels = next(iter(channels), None)
        self.is_gradient_flow = all(energy.is_gradient_flow for energy in energies)

    @classmethod
    def of(cls, *energies: Energy, weights: Sequence[float] | None = None) -> EnergySum:
        """The sum of ``energies`` (scaled by ``weights``), with the parts of nested sums taken apart."""
        weights = [1.0] * len(energies) if weights is None else list(weights)
        if len(weights) != len(energies):
            raise ValueError(f"EnergySum.of got {len(energies)} energies but {len(weights)} weights")
        parts: list[Energy] = []
        flat: list[float] = []
        for energy, weight in zip(energies, weights, strict=True):
            if isinstance(energy, EnergySum):
                parts.extend(energy.parts)
                flat.extend(weight * w for w in energy.weights)
            else:
                parts.append(energy)
                flat.append(weight)
        return cls(parts, flat)

    def prepare(self, graph: Graph, x0: Tensor | None) -> _PreparedParts:
        if isinstance(graph, _PreparedParts):
            return graph
        return _PreparedParts(tuple(part.prepare(graph, x0) for part in self.parts))

    def check_graph(self, graph: Any) -> None:
        for part, prepared in zip(self.parts, self._contexts(graph)):
            part.check_graph(prepared)

    def _contexts(self, graph: Any) -> tuple[Any, ...]:
        return graph.parts if isinstance(graph, _PreparedParts) else (graph,) * len(self.parts)

    def _weighted_sum(self, quantity: str, x: Tensor, graph: Any, x0: Tensor | None) -> Tensor:
        """``Σ_i w_i · part_i.<quantity>(x, context_i, x0)``, in the parts' order."""
        terms = [w * getattr(part, quantity)(x, g, x0)
                 for w, part, g in zip(self.weights, self.parts, self._contexts(graph))]
        return sum(terms[1:], terms[0])

    def energy(self, x: Tensor, graph: Any, x0: Tensor | None = None) -> Tensor:
        return self._weighted_sum("energy", x, graph, x0)

    def gradient(self, x: Tensor, graph: Any, x0: Tensor | None = None) -> Tensor:
        return self._weighted_sum("gradient", x, graph, x0)

    def negative_gradient(self, x: Tensor, graph: Any, x0: Tensor | None = None) -> Tensor:
        return self._weighted_sum("negative_gradient", x, graph, x0)

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
