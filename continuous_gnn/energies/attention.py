r"""Attention on the edges of a graph, and the attention-weighted Dirichlet energy of GRAND-l.

GRAND (Chamberlain et al., "GRAND: Graph Neural Diffusion", ICML 2021, https://arxiv.org/abs/2106.10934)
diffuses features with learned attention weights :math:`a(x_i, x_j)`. Its "linear" variant, GRAND-l, computes
them once from :math:`X(0)` and holds them fixed during the solve. Attention is row- (or column-) stochastic, not
symmetric, so :math:`\dot X = (A - I)X` is no gradient flow; symmetrising it, :math:`S = \tfrac12(A + A^\top)`,
makes it the gradient flow of an energy, which is what :class:`AttentionDirichletEnergy` is.

Products with the attention matrix go through :meth:`~continuous_gnn.edge_product.EdgePattern.propagate`:
CSR products forward and backward, whose values' gradient costs :math:`O(|E| d)` time and memory (autograd's
own CSR backward would ask for a dense :math:`N \times N` gradient, about 115 GB at ogbn-arxiv's size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from .._checks import check_bool, check_choice, check_positive_int
from ..edge_product import EdgePattern
from ..graph import Graph
from .base import Energy

__all__ = ["EdgeAttention", "AttentionGraph", "AttentionDirichletEnergy", "ATTENTION_NORMALIZATIONS",
           "SCORE_MAPS", "squareplus"]

#: How :class:`EdgeAttention` normalises: over each node's neighbours (rows) or over each node's recipients (columns).
ATTENTION_NORMALIZATIONS = ("row", "column")
#: The positive maps of the scores that :class:`EdgeAttention` normalises: ``exp`` (a softmax) or ``squareplus``.
SCORE_MAPS = ("exp", "squareplus")


def squareplus(s: Tensor) -> Tensor:
    r""":math:`(s + \sqrt{s^2 + 4})/2`, a smooth positive map that grows like :math:`\max(s, 0)`; computed as
    :math:`2/(\sqrt{s^2 + 4} - s)` for :math:`s < 0`, the same value without the cancellation of
    :math:`s + \sqrt{s^2 + 4}` there."""
    root = torch.sqrt(s * s + 4)
    return torch.where(s >= 0, (s + root) / 2, 2 / (root - s))


class EdgeAttention(nn.Module):
    r"""Scaled dot-product attention over the edges of a graph, normalised over each node's neighbours (GRAND):

    .. math::
        a_{ij} = \frac{1}{H}\sum_{h=1}^{H} \operatorname{softmax}_{j \in \mathcal N(i)}
                 \frac{(W_Q^h x_i)^\top (W_K^h x_j)}{\sqrt{d_k}},

    so that :math:`\sum_j a_{ij} = 1` for every node :math:`i` with at least one edge: :math:`A` is
    row-stochastic, and :math:`(AX)_i` is a weighted mean of :math:`x_i`'s neighbours.

    With ``normalization="column"`` the softmax runs over the other end of each edge instead,
    :math:`a_{ij} = \frac1H\sum_h \operatorname{softmax}_{i \in \mathcal N(j)}(\cdots)`, so that
    :math:`\sum_i a_{ij} = 1` for every node :math:`j` with at least one edge: :math:`A` is column-stochastic, and
    each node hands all of its value on to its neighbours. This is GRAND's ``attention_norm_idx = 1``, which its
    published configurations for Cora and CiteSeer set (its code multiplies by the attention with
    ``torch_sparse.spmm``, whose output row is the edge's first node, and normalises over the edge's second node).
    Those configurations also set ``square_plus``, with which later versions of GRAND's code normalise
    :func:`squareplus` of each score :math:`s`, :math:`(s + \sqrt{s^2 + 4})/2`, in place of :math:`e^s`:
    ``score_map="squareplus"`` does so, with the same normalisation by rows or columns.

    With ``uniform_start=True`` the query and key weights :math:`W_Q, W_K` start at zero (their biases keep
    ``nn.Linear``'s random start): every score of a node is then the same, and the attention starts uniform over
    its neighbours, :math:`a_{ij} = 1/\deg(i)` (by columns :math:`1/\deg(j)`). GRAND's code starts these
    weights at the constant :math:`10^{-5}`, which gives nearly the same start. From there the key weights get
    gradients at once; the query weights and both biases shift every score of a node by the same amount, which
    keeps that node's scores equal to each other and so its attention uniform, whatever the score map: they get
    none until the keys differ between neighbours, after the first update (by columns the query and key weights
    trade places).

    Args:
        channels (int): feature width ``d``.
        key_channels (int, optional): :math:`d_k` per head (default: ``channels``).
        heads (int): :math:`H` (default: ``1``).
        uniform_start (bool): start the attention uniform over each node's neighbours (default: ``False``,
            ``nn.Linear``'s random start).
        normalization (str): ``"row"`` (:math:`\sum_j a_{ij} = 1`) or ``"column"`` (:math:`\sum_i a_{ij} = 1`)
            (default: ``"row"``).
        score_map (str): the positive map of the scores before they are normalised: ``"exp"`` (a softmax) or
            ``"squareplus"`` (default: ``"exp"``).

    Shapes:
        - **input:** features ``(|V|, d)``, the graph's :class:`~continuous_gnn.edge_product.EdgePattern`
          (``graph.pattern``)
        - **output:** attention ``(|E|,)`` on the pattern's edges, in its CSR order
    """

    def __init__(self, channels: int, key_channels: int | None = None, heads: int = 1, *,
                 uniform_start: bool = False, normalization: str = "row", score_map: str = "exp") -> None:
        super().__init__()
        channels = check_positive_int(channels, "channels")
        key_channels = channels if key_channels is None else key_channels
        key_channels = check_positive_int(key_channels, "key_channels")
        heads = check_positive_int(heads, "heads")
        if not isinstance(uniform_start, bool):
            raise ValueError(f"uniform_start must be true or false, got {uniform_start!r}")
        check_choice(normalization, "normalization", ATTENTION_NORMALIZATIONS)
        check_choice(score_map, "score_map", SCORE_MAPS)
        self.channels, self.key_channels, self.heads = channels, key_channels, heads
        self.uniform_start = uniform_start
        self.normalization = normalization
        self.score_map = score_map
        self.query = nn.Linear(channels, heads * key_channels)
        self.key = nn.Linear(channels, heads * key_channels)
        self._start_uniform()

    def _start_uniform(self) -> None:
        if self.uniform_start:
            with torch.no_grad():
                self.query.weight.zero_()
                self.key.weight.zero_()

    def reset_parameters(self) -> None:
        self.query.reset_parameters()
        self.key.reset_parameters()
        self._start_uniform()

    def forward(self, x: Tensor, pattern: EdgePattern) -> Tensor:
        q = self.query(x).view(-1, self.heads, self.key_channels)
        k = self.key(x).view(-1, self.heads, self.key_channels)
        scores = pattern.edge_dot(q, k) / math.sqrt(self.key_channels)  # (|E|, H)
        over = pattern.row if self.normalization == "row" else pattern.col
        if self.score_map == "exp":
            return softmax(scores, over, num_nodes=pattern.num_nodes).mean(dim=1)
        weights = squareplus(scores)
        totals = scatter(weights, over, dim=0, dim_size=pattern.num_nodes, reduce="sum")
        return (weights / totals[over]).mean(dim=1)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, key_channels={self.key_channels}, heads={self.heads}"
                + (", uniform_start=True" if self.uniform_start else "")
                + (f", normalization={self.normalization!r}" if self.normalization != "row" else "")
                + (f", score_map={self.score_map!r}" if self.score_map != "exp" else ""))


@dataclass(frozen=True, eq=False)
class AttentionGraph:
    r"""A graph with row-stochastic attention :math:`A` on its edges, used through its symmetrised, normalised form

    .. math::
        S = \tfrac12(A + A^\top), \qquad D_S = \operatorname{diag}(S\mathbf 1), \qquad
        \bar S = D_S^{-1/2} S D_S^{-1/2},

    whose spectrum lies in :math:`[-1, 1]` like that of the GCN operator :math:`\bar A` (so explicit steps of
    the flow are as stable as on :math:`\bar A`). :math:`\bar S` is built once, when the attention is computed,
    and every evaluation of the flow costs one sparse product with it.

    Attributes:
        graph (Graph): the underlying graph (its edge list).
        values (Tensor): :math:`a_{ij}` on the edges of ``graph.pattern``, in its CSR order, shape ``(|E|,)``;
            may require grad.
        inv_sqrt_degree (Tensor): :math:`(D_S)_{ii}^{-1/2}`, shape ``(|V|,)``.
        normalized (Tensor): the entries of :math:`\bar S` on the same edges, shape ``(|E|,)``.
    """

    graph: Graph
    values: Tensor
    inv_sqrt_degree: Tensor
    normalized: Tensor

    @classmethod
    def from_attention(cls, graph: Graph, values: Tensor) -> AttentionGraph:
        r"""The symmetrised, normalised operator :math:`\bar S` of attention ``values`` on ``graph.pattern``'s edges."""
        pattern = graph.pattern
        symmetric = 0.5 * (values + values[pattern.reverse])
        # A Graph has no isolated node (it refuses them), and attention is positive, so every row sum is > 0.
        inv_sqrt_degree = symmetric.new_zeros(graph.num_nodes).index_add(0, pattern.row, symmetric).rsqrt()
        normalized = inv_sqrt_degree[pattern.row] * symmetric * inv_sqrt_degree[pattern.col]
        return cls(graph=graph, values=values, inv_sqrt_degree=inv_sqrt_degree, normalized=normalized)

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    def propagate(self, x: Tensor) -> Tensor:
        r""":math:`\bar S X = D_S^{-1/2} \tfrac12(A + A^\top) D_S^{-1/2} X`."""
        return self.graph.pattern.propagate(self.normalized, x)

    def laplacian(self, x: Tensor) -> Tensor:
        r""":math:`(I - \bar S) X`."""
        return x - self.propagate(x)


class AttentionDirichletEnergy(Energy):
    r"""The attention-weighted Dirichlet energy; its gradient flow is GRAND-l with symmetrised attention.

    From "GRAND: Graph Neural Diffusion" (Chamberlain et al., ICML 2021, https://arxiv.org/abs/2106.10934),
    with the attention of :class:`EdgeAttention` computed from :math:`X(0)` and symmetrised:

    .. math::
        S = \tfrac12\big(A(X(0)) + A(X(0))^\top\big), \qquad \bar S = D_S^{-1/2} S D_S^{-1/2}, \qquad
        E(X) = \tfrac14 \sum_{i,j} s_{ij}\, \Big\|\frac{x_i}{\sqrt{d^S_i}} - \frac{x_j}{\sqrt{d^S_j}}\Big\|^2
             = \tfrac12 \operatorname{tr}\big(X^\top (I - \bar S) X\big),

    .. math::
        \nabla E(X) = (I - \bar S) X, \qquad \dot X = -\nabla E(X) = (\bar S - I) X,

    with :math:`D_S = \operatorname{diag}(S\mathbf 1)`: GRAND-l's :math:`(A - I)X` with the attention
    symmetrised and normalised like the GCN operator (the spectrum of :math:`\bar S` lies in :math:`[-1, 1]`,
    so explicit steps are as stable as on :math:`\bar A`). :math:`E \ge 0`, and along the flow it never
    increases.

    As in GRAND's code, two terms can be switched on: a learned diffusion rate :math:`\alpha = \sigma(a) \in
    (0, 1)` (``rate=True``, :math:`E \to \alpha E`) and a source term (``source=True``,
    :math:`E \to E - \beta\langle X, X(0)\rangle`, so :math:`\dot X` gains :math:`+\beta X(0)`; β learned,
    starting at 0). Both keep it a gradient flow.
    The attention is held fixed during a solve: :meth:`prepare` computes it once per forward pass (a bound
    :class:`~continuous_gnn.GradientFlow` calls it), and its parameters get gradients through it, with direct
    backprop and with the adjoint method. Called with a plain :class:`~continuous_gnn.Graph`, the energy
    computes the attention from ``x0`` itself. The attention takes the place of the graph's edge weights,
    which it does not read (as in GRAND): the graph gives only which pairs of nodes are neighbours.

    Args:
        channels (int): ``d``.
        key_channels (int, optional): :math:`d_k` of the attention (default: ``channels``).
        heads (int): attention heads, averaged (default: ``1``).
        rate (bool): learn the diffusion rate α (default: ``False``, α = 1).
        source (bool): add the source term :math:`-\beta\langle X, X(0)\rangle` (default: ``False``).
        uniform_start (bool): start the attention uniform over each node's neighbours, as GRAND's code does
            (:class:`EdgeAttention`) (default: ``False``).
    """

    def __init__(self, channels: int, *, key_channels: int | None = None, heads: int = 1, rate: bool = False,
                 source: bool = False, uniform_start: bool = False) -> None:
        super().__init__()
        check_bool(rate, "rate")
        check_bool(source, "source")
        check_bool(uniform_start, "uniform_start")
        self.channels = channels
        self.attention = EdgeAttention(channels, key_channels, heads, uniform_start=uniform_start)
        self.rate_logit = nn.Parameter(torch.zeros(())) if rate else None
        self.beta = nn.Parameter(torch.zeros(())) if source else None

    def reset_parameters(self) -> None:
        self.attention.reset_parameters()
        with torch.no_grad():
            for parameter in (self.rate_logit, self.beta):
                if parameter is not None:
                    parameter.zero_()

    def _scaled(self, value: Tensor) -> Tensor:
        return value if self.rate_logit is None else torch.sigmoid(self.rate_logit) * value

    def _source(self, x0: Tensor | None) -> Tensor | None:
        if self.beta is None:
            return None
        if x0 is None:
            raise ValueError("AttentionDirichletEnergy(source=True) needs the initial state: pass x0=F(0)")
        return self.beta * x0

    def prepare(self, graph: Graph, x0: Tensor | None) -> AttentionGraph:
        """The graph with the attention of ``x0`` on its edges (computed once, held fixed during a solve)."""
        if isinstance(graph, AttentionGraph):
            return graph
        Energy.check_graph(self, graph)
        if x0 is None:
            raise ValueError("AttentionDirichletEnergy computes its attention from the initial state: pass x0=F(0)")
        self.check_input(x0, graph, label="x0")
        return AttentionGraph.from_attention(graph, self.attention(x0, graph.pattern))

    def check_graph(self, graph: Graph | AttentionGraph) -> None:
        Energy.check_graph(self, graph.graph if isinstance(graph, AttentionGraph) else graph)

    def energy(self, x: Tensor, graph: Graph | AttentionGraph, x0: Tensor | None = None) -> Tensor:
        attended = self.prepare(graph, x0)
        self.check_input(x, attended.graph)
        value = self._scaled(0.5 * (x * attended.laplacian(x)).sum())
        source = self._source(x0)
        return value if source is None else value - (x * source).sum()

    def gradient(self, x: Tensor, graph: Graph | AttentionGraph, x0: Tensor | None = None) -> Tensor:
        attended = self.prepare(graph, x0)
        self.check_input(x, attended.graph)
        grad = self._scaled(attended.laplacian(x))
        source = self._source(x0)
        return grad if source is None else grad - source

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rate={self.rate_logit is not None}, source={self.beta is not None}"

