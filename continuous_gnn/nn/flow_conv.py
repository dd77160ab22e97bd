r"""FlowConv: a whole continuous flow over :math:`[0, T]` as one PyG layer, with any solver."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from .._checks import check_bool, check_node_features, check_positive_finite
from ..energies.base import Energy
from ..energies.schedule import EnergySchedule
from ..fields import Field, GradientFlow
from ..ode.integrate import integrate, layer_settings
from ..ode.settings import Adaptive, Adjoint, FixedGrid
from .adjacency import GraphCache, check_adjoint_weights, to_graph

__all__ = ["FlowConv"]


class FlowConv(nn.Module):
    r"""Integrate a flow from the input features: :math:`X' = X(T)` with :math:`X(0) = X`.

    .. math::
        X(T) = X + \int_0^T f\big(t, X(t); X(0) = X\big)\, dt, \qquad
        f = -\nabla E \text{ (an energy) or any } \texttt{Field}.

    The whole continuous GNN block in one layer, for PyG models: ``forward(x, edge_index, edge_weight=None)``
    like ``GCNConv`` (the input is also :math:`X(0)`, the source term's and the attention's initial state).
    With ``FixedGrid("euler", step_size=τ)`` and :math:`T = L\tau` it equals ``L`` layers of
    :class:`EnergyConv` with shared weights (bit for bit when τ is a binary fraction such as 0.5, to rounding
    otherwise).

    Args:
        energy (Energy, EnergySchedule or Field): the energy (integrated as its gradient flow) or a field.
        t_end (float): :math:`T` (default: ``1.0``).
        solver (FixedGrid, Adaptive or dict, optional): how to integrate, as settings or as a dict of
            :func:`~continuous_gnn.integrate`'s keywords, as :class:`~continuous_gnn.models.ContinuousGNN` takes it
            (default: ``FixedGrid("euler", step_size=1.0)``).
        adjoint (Adjoint or bool, optional): gradients by the adjoint method (default: ``None``).
        activation (str or callable, optional): :math:`\sigma` of the energy's flow (default: ``None``).
        cached (bool): normalise the graph on the first call and reuse it while the same adjacency tensors come
            back, as ``GCNConv`` does; never stale, as :class:`EnergyConv`'s (default: ``False``).

    Shapes:
        - **input:** node features ``(|V|, d)``, an ``Adj`` or a :class:`~continuous_gnn.Graph`, optional edge
          weights ``(|E|,)``
        - **output:** node features ``(|V|, d)``
    """

    def __init__(self, energy: Energy | EnergySchedule | Field, t_end: float = 1.0, *,
                 solver: FixedGrid | Adaptive | Mapping[str, Any] | None = None, adjoint: Adjoint | bool | None = None,
                 activation: str | Callable[[Tensor], Tensor] | None = None, cached: bool = False) -> None:
        super().__init__()
        check_bool(cached, "cached")
        self.t_end = check_positive_finite(t_end, "t_end")
        if isinstance(energy, Field):
            if activation is not None:
                raise ValueError("activation applies to an energy's gradient flow; a Field is used as it is")
            self.flow = energy
        else:
            self.flow = GradientFlow(energy, activation)
        if isinstance(energy, EnergySchedule) and energy.t_end != self.t_end:
            raise ValueError(f"the EnergySchedule spans [0, {energy.t_end}] but t_end={t_end}; give both the same "
                             "T, or the pieces would not match the integration interval")
        self.solver, self.adjoint = layer_settings(solver, adjoint)
        self.cached = cached
        self._graphs = GraphCache()

    def reset_parameters(self) -> None:
        """Re-initialise the energy's or field's parameters and clear the cached graph."""
        self.flow.reset_parameters()
        self._graphs.clear()

    def forward(self, x: Tensor, edge_index: Any, edge_weight: Tensor | None = None) -> Tensor:
        check_node_features(x)
        if self.cached:
            graph = self._graphs.get(edge_index, x.size(0), edge_weight, x.dtype)
        else:
            graph = to_graph(edge_index, x.size(0), edge_weight, dtype=x.dtype)
        check_adjoint_weights(graph, self.adjoint, type(self).__name__)
        state = self.flow.initial_state(x)
        solution = integrate(self.flow.bind(graph, x), state, self.t_end, solver=self.solver, adjoint=self.adjoint)
        return self.flow.readout(solution.final)

    def extra_repr(self) -> str:
        return f"t_end={self.t_end}, solver={self.solver}"
