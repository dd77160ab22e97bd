r"""GRAND's attention diffusion with row- or column-stochastic attention (no gradient flow): GRAND-nl, whose
attention follows :math:`X(t)`, and GRAND-l as GRAND's code runs it, with the attention of :math:`X(0)` held
fixed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_positive_int, check_sparse_dtype
from ..edge_product import EdgePattern
from ..energies.attention import EdgeAttention
from ..graph import Graph
from .base import Field

__all__ = ["AttentionDiffusion", "FixedAttention", "FixedAttentionDiffusion"]


class AttentionDiffusion(Field):
    r"""Non-linear GRAND diffusion (GRAND-nl): attention recomputed from :math:`X(t)` at every evaluation.

    From "GRAND: Graph Neural Diffusion" (Chamberlain et al., ICML 2021, https://arxiv.org/abs/2106.10934):

    .. math::
        \dot X = \alpha\big(A(X) - I\big) X + \beta X(0), \qquad
        \dot x_i = \alpha\sum_{j \in \mathcal N(i)} a_{ij}(X)\,(x_j - x_i) + \beta x_i(0),

    with the row-stochastic attention :math:`A(X)` of :class:`~continuous_gnn.energies.EdgeAttention`, and, as
    in GRAND's code, an optional learned diffusion rate :math:`\alpha = \sigma(a) \in (0, 1)` (``rate=True``;
    otherwise :math:`\alpha = 1`) and an optional source term (``source=True``, β learned from 0; otherwise
    :math:`\beta = 0`). The attention takes the place of the graph's edge weights, which it does not read (as in
    GRAND). The attention changes with :math:`X` and is not symmetric, so this is **not a gradient
    flow** (``is_gradient_flow`` is ``False``): no energy is guaranteed to decrease. What holds instead,
    without the source term, is a maximum principle: every :math:`\dot x_i` points into the convex hull of
    :math:`x_i`'s neighbours, so each channel stays within its initial minimum and maximum (exactly along the
    flow, and for explicit Euler with :math:`\alpha\tau \le 1`, whose step
    :math:`x_i + \alpha\tau\sum_j a_{ij}(x_j - x_i)` is a convex combination).

    With ``normalization="column"`` (GRAND's ``attention_norm_idx = 1``, see
    :class:`~continuous_gnn.energies.EdgeAttention`) :math:`A` is column-stochastic instead, and the maximum
    principle no longer holds: a node with many neighbours gathers more than a mean of them. What holds then,
    without the source term and when every node has at least one edge (self-loops ensure it), is conservation:
    :math:`\mathbf 1^\top \dot X = \alpha(\mathbf 1^\top A - \mathbf 1^\top) X = 0`, so each channel's sum
    over the nodes stays at its initial value, along the flow and through every Runge–Kutta step (a step adds a
    combination of evaluations of the field, each of which sums to zero).

    Args:
        channels (int): ``d``.
        key_channels (int, optional): :math:`d_k` of the attention (default: ``channels``).
        heads (int): attention heads, averaged (default: ``1``).
        rate (bool): learn the diffusion rate α (default: ``False``, α = 1).
        source (bool): add the source term :math:`+\beta X(0)` (default: ``False``).
        uniform_start (bool): start the attention uniform over each node's neighbours, as GRAND's code does
            (:class:`~continuous_gnn.energies.EdgeAttention`) (default: ``False``).
        normalization (str): ``"row"`` or ``"column"``: what the attention sums to one over
            (:class:`~continuous_gnn.energies.EdgeAttention`) (default: ``"row"``).
        score_map (str): ``"exp"`` (a softmax) or ``"squareplus"`` (GRAND's ``square_plus``), the map of the
            scores before they are normalised (default: ``"exp"``).
    """

    is_gradient_flow = False

    def __init__(self, channels: int, *, key_channels: int | None = None, heads: int = 1, rate: bool = False,
                 source: bool = False, uniform_start: bool = False, normalization: str = "row",
                 score_map: str = "exp") -> None:
        super().__init__()
        check_bool(rate, "rate")
        check_bool(source, "source")
        check_bool(uniform_start, "uniform_start")
        channels = check_positive_int(channels, "channels")
        self.channels = channels
        self.attention = EdgeAttention(channels, key_channels, heads, uniform_start=uniform_start,
                                       normalization=normalization, score_map=score_map)
        self.rate_logit = nn.Parameter(torch.zeros(())) if rate else None
        self.beta = nn.Parameter(torch.zeros(())) if source else None

    def reset_parameters(self) -> None:
        self.attention.reset_parameters()
        with torch.no_grad():
            for parameter in (self.rate_logit, self.beta):
                if parameter is not None:
                    parameter.zero_()

    def check(self, graph: Graph, x0: Tensor | None) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"expected a continuous_gnn.Graph, got {type(graph).__name__}; build one with "
                            "Graph.from_data(data)")
        if x0 is None and self.beta is not None:
            raise ValueError(f"{type(self).__name__}(source=True) needs the initial state: pass x0=F(0)")
        if x0 is not None and (x0.dim() != 2 or x0.size(1) != self.channels or x0.size(0) != graph.num_nodes):
            raise ValueError(f"{type(self).__name__} takes features of shape ({graph.num_nodes}, {self.channels}), "
                             f"got {tuple(x0.shape)}")
        if x0 is not None:
            check_sparse_dtype(x0, type(self).__name__)
        if x0 is not None and x0.dtype != self.attention.query.weight.dtype:
            raise TypeError(f"the features are {x0.dtype} but {type(self).__name__}'s parameters are "
                            f"{self.attention.query.weight.dtype}; convert one of them, e.g. field.to({x0.dtype})")

    def _check_state(self, x: Tensor) -> None:
        # GradientFlow names a state of the wrong width; here it would fail inside a matrix product.
        if x.dim() != 2 or x.size(1) != self.channels:
            raise ValueError(f"{type(self).__name__} takes states of shape (num_nodes, {self.channels}), got "
                             f"{tuple(x.shape)}")

    def _diffuse(self, attention: Tensor, pattern: EdgePattern, x: Tensor, x0: Tensor | None) -> Tensor:
        velocity = pattern.propagate(attention, x) - x
        if self.rate_logit is not None:
            velocity = torch.sigmoid(self.rate_logit) * velocity
        return velocity if self.beta is None else velocity + self.beta * x0

    def forward(self, t: Tensor, x: Tensor, context: Any, x0: Tensor | None = None) -> Tensor:
        self._check_state(x)
        pattern = context.pattern
        return self._diffuse(self.attention(x, pattern), pattern, x, x0)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, rate={self.rate_logit is not None}, source={self.beta is not None}, "
                f"normalization={self.attention.normalization!r}, score_map={self.attention.score_map!r}")


@dataclass(frozen=True, eq=False)
class FixedAttention:
    """The attention of :math:`X(0)` on a graph's edges, computed once per solve.

    Attributes:
        pattern (EdgePattern): the graph's edges (``graph.pattern``).
        values (Tensor): :math:`a_{ij}` on the pattern's edges, in its CSR order, shape ``(|E|,)``; may require
            grad.
    """

    pattern: EdgePattern
    values: Tensor


class FixedAttentionDiffusion(AttentionDiffusion):
    r"""GRAND-l as GRAND's code runs it: attention from :math:`X(0)`, held fixed during the solve.

    .. math::
        \dot X = \alpha\big(A(X(0)) - I\big) X + \beta X(0),

    with :math:`A`, α and β as in :class:`AttentionDiffusion`. The attention is computed once per solve, when
    the field is bound (:meth:`prepare`), and its parameters get gradients through it, under direct backprop
    and under the adjoint. The flow is linear in :math:`X`, but :math:`A - I` is not symmetric, so it is
    **not a gradient flow**; :class:`~continuous_gnn.energies.AttentionDirichletEnergy` is its symmetrised
    counterpart, which is one. The maximum principle of :class:`AttentionDiffusion` holds here too (without
    the source term), and with ``normalization="column"`` its conservation of each channel's sum instead.

    Args: as :class:`AttentionDiffusion`; binding needs ``x0``.
    """

    def check(self, graph: Graph, x0: Tensor | None) -> None:
        if x0 is None:
            raise ValueError("FixedAttentionDiffusion computes its attention from the initial state: pass x0=F(0)")
        super().check(graph, x0)

    def prepare(self, graph: Graph, x0: Tensor | None) -> FixedAttention:
        """The attention of ``x0`` on the edges of ``graph``."""
        return FixedAttention(graph.pattern, self.attention(x0, graph.pattern))

    def forward(self, t: Tensor, x: Tensor, context: FixedAttention, x0: Tensor | None = None) -> Tensor:
        self._check_state(x)
        return self._diffuse(context.values, context.pattern, x, x0)
