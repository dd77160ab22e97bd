r"""GRAND-nl: diffusion with attention recomputed from the current features (no gradient flow)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._checks import check_positive_int
from ..energies.attention import EdgeAttention
from ..graph import Graph
from .base import Field

__all__ = ["AttentionDiffusion"]


class AttentionDiffusion(Field):
    r"""Non-linear GRAND diffusion (GRAND-nl): attention recomputed from :math:`X(t)` at every evaluation.

    From "GRAND: Graph Neural Diffusion" (Chamberlain et al., ICML 2021, https://arxiv.org/abs/2106.10934):

    .. math::
        \dot X = \big(A(X) - I\big) X, \qquad
        \dot x_i = \sum_{j \in \mathcal N(i)} a_{ij}(X)\,(x_j - x_i),

    with the row-stochastic attention :math:`A(X)` of :class:`~continuous_gnn.energies.EdgeAttention`. The
    attention changes with :math:`X` and is not symmetric, so this is **not a gradient flow**
    (:attr:`is_gradient_flow` is ``False``): no energy is guaranteed to decrease. What holds instead is a
    maximum principle: every :math:`\dot x_i` points into the convex hull of :math:`x_i`'s neighbours, so each
    channel stays within its initial minimum and maximum (exactly along the flow, and for explicit Euler with
    :math:`\tau \le 1`, whose step :math:`x_i + \tau\sum_j a_{ij}(x_j - x_i)` is a convex combination).

    Args:
        channels (int): ``d``.
        key_channels (int, optional): :math:`d_k` of the attention (default: ``channels``).
        heads (int): attention heads, averaged (default: ``1``).
    """

    is_gradient_flow = False

    def __init__(self, channels: int, *, key_channels: int | None = None, heads: int = 1) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        self.channels = channels
        self.attention = EdgeAttention(channels, key_channels, heads)

    def reset_parameters(self) -> None:
        self.attention.reset_parameters()

    def check(self, graph: Graph, x0: Tensor | None) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"expected a continuous_gnn.Graph, got {type(graph).__name__}; build one with "
                            "Graph.from_data(data)")
        if x0 is not None and (x0.dim() != 2 or x0.size(1) != self.channels or x0.size(0) != graph.num_nodes):
            raise ValueError(f"AttentionDiffusion takes features of shape ({graph.num_nodes}, {self.channels}), "
                             f"got {tuple(x0.shape)}")

    def forward(self, t: Tensor, x: Tensor, context: Any, x0: Tensor | None = None) -> Tensor:
        pattern = context.pattern
        attention = self.attention(x, pattern)
        return pattern.propagate(attention, x) - x

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
