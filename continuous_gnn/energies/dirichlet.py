r"""Dirichlet energies: the heat flow (linear GRAND) and its channel-metric generalisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_positive_int
from ..graph import Graph
from .base import Energy


class DirichletEnergy(Energy):
    r"""The graph Dirichlet energy; its gradient flow is the heat equation (linear GRAND).

    .. math::
        E(X) = \tfrac12 \operatorname{tr}(X^\top \Delta X)
             = \tfrac14 \sum_{i,j} \tilde a_{ij} \Big\| \frac{x_i}{\sqrt{\tilde d_i}} - \frac{x_j}{\sqrt{\tilde d_j}} \Big\|^2,
        \qquad \nabla E(X) = \Delta X, \qquad \dot X = -\Delta X,

    with :math:`\Delta = I - \bar A` and the sum over ordered pairs. It has no parameters.
    """

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph)
        return 0.5 * (x * graph.laplacian(x)).sum()

    def gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph)
        return graph.laplacian(x)


class ChannelDirichletEnergy(Energy):
    r"""Dirichlet energy measured in a learnable channel metric :math:`K` ([v1] eq. 5).

    .. math::
        E(X) = \tfrac14 \sum_{i,j} \tilde a_{ij} \big\| K (\nabla X)_{ij} \big\|^2
             = \tfrac12 \operatorname{tr}(X^\top \Delta X K^\top K),
        \qquad \nabla E(X) = \Delta X K^\top K.

    Its flow always smooths: the Dirichlet energy :math:`E^{Dir}` tends to the part of :math:`X(0)` in the
    kernel of :math:`K^\top K` (Prop. 2.4), so it cannot sharpen features on heterophilic graphs.

    Args:
        channels (int): ``d``.
        init (str): ``"identity"`` or ``"glorot"`` initialisation of :math:`K` (default: ``"identity"``).
    """

    def __init__(self, channels: int, init: str = "identity") -> None:
        super().__init__()
        channels = check_positive_int(channels, "channels")
        if init not in ("identity", "glorot"):
            raise ValueError(f"unknown init {init!r}; choose 'identity' or 'glorot'")
        self.channels = channels
        self.init = init
        self.kernel = nn.Parameter(torch.empty(channels, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.init == "identity":
                self.kernel.copy_(torch.eye(self.channels))
            else:
                nn.init.xavier_uniform_(self.kernel)

    def metric(self) -> Tensor:
        r""":math:`K^\top K`, shape ``(d, d)``."""
        return self.kernel.T @ self.kernel

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph)
        return 0.5 * (graph.laplacian(x) * (x @ self.metric())).sum()

    def gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph)
        return graph.laplacian(x @ self.metric())
