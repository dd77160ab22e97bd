r"""A damped second-order flow over any energy, in the style of GraphCON (no gradient flow)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_bool
from ..energies.base import Energy
from ..graph import Graph
from .base import Field

__all__ = ["SecondOrderFlow"]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class SecondOrderFlow(Field):
    r"""Damped oscillations in an energy landscape: :math:`\ddot X = -\nabla E(X) - \gamma \dot X`.

    In the spirit of GraphCON ("Graph-Coupled Oscillator Networks", Rusch et al., ICML 2022,
    https://arxiv.org/abs/2202.02296), with the force taken from any :class:`~continuous_gnn.energies.Energy`.
    As a first-order system on the state :math:`Z = (X, V)`, stacked along the nodes (shape ``(2|V|, d)``):

    .. math::
        \dot X = V, \qquad \dot V = -\nabla E(X) - \gamma V, \qquad X(0) = X_0,\; V(0) = 0.

    This is **not a gradient flow** (``is_gradient_flow`` is ``False``): :math:`E` alone may rise as the
    state swings. What never increases, for :math:`\gamma \ge 0`, is the total energy

    .. math::
        H(X, V) = E(X) + \tfrac12 \|V\|^2, \qquad \frac{dH}{dt} = -\gamma \|V\|^2 \le 0.

    :meth:`initial_state` builds :math:`Z(0)` from :math:`X(0)`, :meth:`readout` returns the :math:`X` half.

    Args:
        energy (Energy): the potential :math:`E`.
        damping (float): :math:`\gamma \ge 0` (default: ``1.0``).
        learnable (bool): learn :math:`\gamma`, kept positive by a softplus (default: ``False``).
    """

    is_gradient_flow = False

    def __init__(self, energy: Energy, *, damping: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        check_bool(learnable, "learnable")
        if not isinstance(energy, Energy):
            raise TypeError(f"SecondOrderFlow takes an Energy, got {type(energy).__name__}")
        if isinstance(damping, bool) or not isinstance(damping, numbers.Real) or not 0 <= damping < math.inf:
            raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
        if learnable and damping == 0:
            raise ValueError("a learnable damping starts positive (a softplus); give damping > 0")
        self.energy = energy
        self.channels = energy.channels
        self.learnable = learnable
        self.initial_damping = float(damping)
        if learnable:
            self.raw_damping = nn.Parameter(torch.tensor(_inverse_softplus(self.initial_damping)))
        else:
            self.register_buffer("raw_damping", torch.tensor(self.initial_damping))

    def reset_parameters(self) -> None:
        """Re-initialise the energy, and a learnable damping to its initial value."""
        self.energy.reset_parameters()
        if self.learnable:
            with torch.no_grad():
                self.raw_damping.fill_(_inverse_softplus(self.initial_damping))

    def damping(self) -> Tensor:
        r""":math:`\gamma`, a 0-dim tensor."""
        return F.softplus(self.raw_damping) if self.learnable else self.raw_damping

    def check(self, graph: Graph, x0: Tensor | None) -> None:
        self.energy.check_graph(graph)
        if x0 is not None:
            self.energy.check_input(x0, graph, label="x0")

    def prepare(self, graph: Graph, x0: Tensor | None) -> Any:
        return _Context(graph.num_nodes, self.energy.prepare(graph, x0))

    def initial_state(self, x0: Tensor) -> Tensor:
        """:math:`Z(0) = (X(0), 0)`, shape ``(2|V|, d)``."""
        return torch.cat([x0, torch.zeros_like(x0)])

    def readout(self, state: Tensor) -> Tensor:
        """The :math:`X` half of a state ``(2|V|, d)``, or of a stack of states ``(k, 2|V|, d)``."""
        return state[..., : state.size(-2) // 2, :]

    def total_energy(self, state: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        r""":math:`H = E(X) + \tfrac12\|V\|^2` of a state ``(2|V|, d)``."""
        n = graph.num_nodes
        return self.energy.energy(state[:n], graph, x0) + 0.5 * state[n:].square().sum()

    def forward(self, t: Tensor, z: Tensor, context: Any, x0: Tensor | None = None) -> Tensor:
        r""":math:`\dot Z = (V, -\nabla E(X) - \gamma V)` for the stacked state :math:`Z = (X, V)`."""
        n = context.num_nodes
        prepared = context.prepared if isinstance(context, _Context) else context
        if z.dim() != 2 or z.size(0) != 2 * n:
            raise ValueError(f"SecondOrderFlow's state stacks positions and velocities: expected ({2 * n}, d), got "
                             f"{tuple(z.shape)}; build it with initial_state(x0)")
        x, v = z[:n], z[n:]
        return torch.cat([v, self.energy.negative_gradient(x, prepared, x0) - self.damping() * v])

    def extra_repr(self) -> str:
        return f"learnable={self.learnable}"


class _Context:
    """The node count and the energy's prepared context, for one solve."""

    __slots__ = ("num_nodes", "prepared")

    def __init__(self, num_nodes: int, prepared: Any) -> None:
        self.num_nodes = num_nodes
        self.prepared = prepared
