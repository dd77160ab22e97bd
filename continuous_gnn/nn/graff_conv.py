r"""GRAFFConv: one explicit Euler step of a gradient flow, as a PyG-style layer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .._checks import check_positive_finite
from ..energies.base import Energy
from ..energies.graff import GRAFFEnergy
from ..flow import GradientFlow
from ..graph import Graph


class GRAFFConv(nn.Module):
    r"""The residual graph convolution of "Graph Neural Networks as Gradient Flows"
    (Di Giovanni et al., https://arxiv.org/abs/2206.10991):

    .. math::
        X' = X + \tau\, \sigma\big(-\nabla E(X)\big)
           = X + \tau\, \sigma\big(-X\Omega + \bar A X W + \beta X(0)\big)

    for the default :class:`~continuous_gnn.energies.GRAFFEnergy`, with
    :math:`\bar A = \tilde D^{-1/2}(A+I)\tilde D^{-1/2}` and :math:`\sigma` the identity unless ``activation``
    is given. Applying the same layer ``L`` times (weights shared across layers) is exactly
    ``integrate(GradientFlow(conv.energy, activation).bind(graph, x0), x0, L * step_size, method="euler",
    step_size=step_size)``.

    Args:
        channels (int): feature dimension ``d`` (input and output).
        step_size (float): τ (default: ``1.0``).
        energy (Energy, optional): the energy (default: ``GRAFFEnergy(channels, **energy_kwargs)``).
        activation (str or callable, optional): σ, e.g. ``"relu"`` for GRAFF-NL (default: ``None``).
        cached (bool): normalise the graph on the first call and reuse it; only for a fixed graph
            (default: ``False``).
        **energy_kwargs: passed to :class:`~continuous_gnn.energies.GRAFFEnergy` (``w``, ``omega``, ``source``...).

    Shapes:
        - **input:** node features ``(|V|, d)``, edge indices ``(2, |E|)`` or a :class:`~continuous_gnn.Graph`,
          initial features ``(|V|, d)``, optional edge weights ``(|E|)``
        - **output:** node features ``(|V|, d)``
    """

    def __init__(self, channels: int, step_size: float = 1.0, energy: Energy | None = None,
                 activation: str | Callable[[Tensor], Tensor] | None = None, cached: bool = False,
                 **energy_kwargs) -> None:
        super().__init__()
        check_positive_finite(step_size, "step_size")
        if energy is not None and energy_kwargs:
            raise ValueError("pass either an energy or GRAFFEnergy keyword arguments, not both")
        self.channels = channels
        self.step_size = float(step_size)
        self.energy = energy if energy is not None else GRAFFEnergy(channels, **energy_kwargs)
        self.flow = GradientFlow(self.energy, activation)
        self.cached = cached
        self._cached_graph: Graph | None = None

    def reset_parameters(self) -> None:
        """Re-initialise the energy and clear the cached graph."""
        if hasattr(self.energy, "reset_parameters"):
            self.energy.reset_parameters()
        self._cached_graph = None

    def _graph(self, x: Tensor, edge_index: Tensor | Graph, edge_weight: Tensor | None) -> Graph:
        if isinstance(edge_index, Graph):
            return edge_index
        if self.cached and self._cached_graph is not None:
            return self._cached_graph
        graph = Graph.from_edge_index(edge_index, x.size(0), edge_weight, dtype=x.dtype)
        if self.cached:
            self._cached_graph = graph
        return graph

    def forward(self, x: Tensor, edge_index: Tensor | Graph, x0: Tensor | None = None,
                edge_weight: Tensor | None = None, t: float = 0.0) -> Tensor:
        graph = self._graph(x, edge_index, edge_weight)
        time = torch.tensor(t, dtype=torch.float64)
        return x + self.step_size * self.flow(time, x, graph, x0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels}, step_size={self.step_size}, activation={self.flow.activation_name!r})"
