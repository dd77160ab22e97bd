r"""Vector fields from energies: :math:`f(t, X) = -\nabla E_\theta(X)` and its activated variant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from .._checks import check_bool
from ..energies.base import Energy
from ..energies.schedule import EnergySchedule
from ..graph import Graph
from .base import Field

_NORM_EPS = 1e-5  # BatchNorm's default

__all__ = ["ACTIVATIONS", "GradientFlow"]

#: Named activations, each with :math:`x\sigma(x) \ge 0` so that the energy still decreases along the flow.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda x: x,
    "relu": torch.relu,
    "tanh": torch.tanh,
}


def _resolve_activation(activation: str | Callable[[Tensor], Tensor] | None) -> tuple[str, Callable[[Tensor], Tensor] | None]:
    if activation is None:
        return "identity", None
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)} or pass a callable")
        return activation, (None if activation == "identity" else ACTIVATIONS[activation])
    if isinstance(activation, type):  # nn.ReLU: calling it would build a module, not apply one
        raise TypeError(f"activation={activation.__name__} is a class; pass an instance ({activation.__name__}()) or a "
                        f"name such as 'relu'")
    if callable(activation):
        return getattr(activation, "__name__", type(activation).__name__), activation
    raise TypeError(f"activation must be a name, a callable or None, got {type(activation).__name__}")


class GradientFlow(Field):
    r"""The vector field of an energy: :math:`f(t, X) = -\nabla E_\theta(X)`, or :math:`\sigma(-\nabla E_\theta(X))`.

    Without an activation this is an exact gradient flow, so :math:`\tfrac{d}{dt}E(X(t)) = -\|\nabla E\|^2 \le 0`.
    With a pointwise :math:`\sigma` satisfying :math:`x\sigma(x) \ge 0` (ReLU, tanh) the field is no longer a
    gradient, but the energy still does not increase:
    :math:`\tfrac{d}{dt}E = \langle \nabla E, \sigma(-\nabla E)\rangle \le 0` (GRAFF-NL).

    With ``normalize=True`` each channel of :math:`-\nabla E` is standardised over the nodes (zero mean, unit
    variance, before σ), as the official GRAFF code's untrained, always-in-training-mode BatchNorm does. That
    field is **no gradient flow** and carries no energy guarantee; it exists to reproduce the official
    configurations that use it.

    The graph and :math:`X(0)` are never stored on the module: call :meth:`bind` per forward pass, which returns
    a module ``f(t, x)`` that closes over them and can be handed to :func:`~continuous_gnn.integrate`. Work an
    energy does once per solve (:meth:`~continuous_gnn.energies.Energy.prepare`, e.g. attention from
    :math:`X(0)`) happens at :meth:`bind`.

    Args:
        energy (Energy or EnergySchedule): the energy, shared over time, or a schedule of energies
            (time-dependent weights).
        activation (str or callable, optional): ``"relu"``, ``"tanh"``, ``"identity"`` or a callable
            (default: ``None``, the exact gradient flow).
        normalize (bool): standardise each channel of the field over the nodes (default: ``False``).
    """

    def __init__(self, energy: Energy | EnergySchedule, activation: str | Callable[[Tensor], Tensor] | None = None,
                 normalize: bool = False) -> None:
        super().__init__()
        check_bool(normalize, "normalize")
        if not isinstance(energy, (Energy, EnergySchedule)):
            raise TypeError(f"energy must be an Energy or an EnergySchedule, got {type(energy).__name__}")
        self.energy = energy
        self.activation_name, self._activation = _resolve_activation(activation)
        self.normalize = bool(normalize)
        self.channels = energy.channels
        self.is_gradient_flow = energy_is_gradient(energy) and self._activation is None and not self.normalize

    def energy_at(self, t: Tensor | float) -> Energy:
        """The energy whose gradient drives the flow at time ``t`` (a schedule's piece, else the one energy)."""
        return self.energy.at(t) if isinstance(self.energy, EnergySchedule) else self.energy

    def _pieces(self) -> list[Energy]:
        return list(self.energy.energies) if isinstance(self.energy, EnergySchedule) else [self.energy]

    def forward(self, t: Tensor, x: Tensor, context: Any, x0: Tensor | None = None) -> Tensor:
        """:math:`f(t, X)`; ``context`` is a :class:`~continuous_gnn.Graph` or what :meth:`prepare` returned."""
        if isinstance(self.energy, EnergySchedule):
            index = self.energy.index(t)
            energy = self.energy.energies[index]
            context = context.pieces[index] if isinstance(context, _PieceContexts) else context
        else:
            energy = self.energy
        velocity = energy.negative_gradient(x, context, x0)
        if self.normalize:
            velocity = F.batch_norm(velocity, None, None, training=True, eps=_NORM_EPS)
        return velocity if self._activation is None else self._activation(velocity)

    def check(self, graph: Graph, x0: Tensor | None) -> None:
        for energy in self._pieces():
            energy.check_graph(graph)
            if x0 is not None:
                energy.check_input(x0, graph, label="x0")
        if self.normalize and graph.num_nodes < 2:
            raise ValueError("normalize=True standardises each channel over the nodes, which needs at least 2 nodes")

    def prepare(self, graph: Graph, x0: Tensor | None) -> Any:
        if isinstance(self.energy, EnergySchedule):
            return _PieceContexts(tuple(energy.prepare(graph, x0) for energy in self.energy.energies))
        return self.energy.prepare(graph, x0)

    def jump_times(self) -> list[float]:
        """The piece boundaries of a time-dependent energy, else none."""
        return self.energy.boundaries() if isinstance(self.energy, EnergySchedule) else []

    def extra_repr(self) -> str:
        return f"activation={self.activation_name!r}" + (", normalize=True" if self.normalize else "")


@dataclass(frozen=True, eq=False)
class _PieceContexts:
    """What each piece of an :class:`~continuous_gnn.EnergySchedule` prepared for one solve, in time order."""

    pieces: tuple[Any, ...]


def energy_is_gradient(energy: Energy | EnergySchedule) -> bool:
    pieces = energy.energies if isinstance(energy, EnergySchedule) else [energy]
    return all(piece.is_gradient_flow for piece in pieces)
