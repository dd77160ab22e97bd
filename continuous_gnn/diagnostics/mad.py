r"""Mean average distance (MAD) of node representations, Chen et al. 2020 (AAAI, "Measuring and relieving
the over-smoothing problem for graph neural networks from the topological view").
"""

from __future__ import annotations

import torch
from torch import Tensor

from continuous_gnn.diagnostics._checks import as_node_features
from continuous_gnn.graph import Graph

__all__ = ["mean_average_distance"]


def _pair_index(graph: Graph | Tensor, num_nodes: int) -> Tensor:
    """Edge list of ``graph`` without self-loops, shape ``(2, |E|)``."""
    edge_index = graph.edge_index if isinstance(graph, Graph) else graph
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise TypeError("graph must be a Graph or an edge_index tensor of shape (2, num_edges)")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"edge_index must hold integer node indices, got dtype {edge_index.dtype}")
    if edge_index.numel() and int(edge_index.min()) < 0:
        raise ValueError(f"edge_index refers to node {int(edge_index.min())}; node indices start at 0")
    if edge_index.numel() and int(edge_index.max()) >= num_nodes:
        raise ValueError(f"the graph refers to node {int(edge_index.max())} but x has only {num_nodes} rows")
    keep = edge_index[0] != edge_index[1]
    return edge_index[:, keep].long()


@torch.no_grad()
def mean_average_distance(x: Tensor, graph: Graph | Tensor | None = None) -> Tensor:
    r"""Mean average cosine distance between node representations.

    With :math:`D_{ij} = 1 - \cos(x_i, x_j)` and a set :math:`P_i` of partners of node :math:`i`,

    .. math::
        \bar D_i = \frac1{|P_i|}\sum_{j\in P_i} D_{ij}, \qquad
        \mathrm{MAD} = \frac1{|V'|}\sum_{i\in V'} \bar D_i, \quad V' = \{i : P_i \neq \emptyset\},

    i.e. Chen et al.'s two-level average (first per node, then over nodes). The partners are

    * ``graph`` given: the neighbours of :math:`i` (``graph.edge_index`` **without self-loops**; edge
      weights ignored; a neighbour listed twice counts twice);
    * ``graph`` is ``None``: every other node :math:`j \neq i` (all ordered pairs), computed in
      :math:`O(nd)` from :math:`\sum_{j\neq i}\cos(x_i, x_j) = \hat x_i^\top \sum_j \hat x_j - 1`.

    Nodes whose feature row is zero have no defined cosine and are dropped, both as :math:`i` and as
    partners. Unlike the authors' reference code we do not drop pairs at distance exactly 0 from the
    average, so identical rows give MAD = 0 and the value is an unbiased mean over pairs.
    :math:`\mathrm{MAD} \in [0, 2]`; it tends to 0 under over-smoothing.

    Args:
        x (Tensor): node features, shape ``(n, d)``.
        graph (Graph or Tensor, optional): a :class:`Graph` or an undirected ``edge_index``
            (default: all pairs).

    Returns:
        Tensor: 0-dim, in ``x``'s dtype; ``nan`` when no node has a partner with a non-zero row.

    Raises:
        TypeError: if ``x`` is not a floating-point tensor, or ``graph`` is neither a :class:`Graph` nor an
            ``edge_index``.
        ValueError: if ``x`` is not 2-D, contains ``inf`` or ``nan``, has a row count other than
            ``graph.num_nodes``, or ``edge_index`` refers to a node beyond its rows.
    """
    # A nan row has no positive norm and would be dropped like a zero row, biasing MAD without a trace.
    x = as_node_features(x, graph.num_nodes if isinstance(graph, Graph) else None, allow_vector=False, finite=True)
    n = x.size(0)
    # Each row over its largest magnitude first: the norm of a finite row of 1e160s would overflow to inf (and
    # make every cosine 0), that of a row of 1e-170s underflow to 0 (and drop the row as a zero row).
    peaks = x.abs().amax(dim=1, keepdim=True) if x.size(1) else torch.zeros(n, 1, dtype=x.dtype, device=x.device)
    valid = peaks.squeeze(1) > 0
    unit = torch.zeros_like(x)
    scaled = x[valid] / peaks[valid]
    unit[valid] = scaled / scaled.norm(dim=1, keepdim=True)
    nan = torch.full((), float("nan"), dtype=x.dtype, device=x.device)

    if graph is None:
        m = int(valid.sum())
        if m < 2:
            return nan
        total = unit.sum(dim=0)
        # Subtract each node's cosine with itself (exactly 1 for a unit vector).
        mean_cos = (unit[valid] @ total - 1.0) / (m - 1)
        # In [0, 2], as every distance is; rounding in the sum over all pairs takes identical rows below 0.
        return (1.0 - mean_cos).mean().clamp(0.0, 2.0)

    row, col = _pair_index(graph, n)
    keep = valid[row] & valid[col]
    row, col = row[keep], col[keep]
    if row.numel() == 0:
        return nan
    # In [0, 2], as every cosine distance is; rounding takes identical rows below 0 and opposite ones above 2.
    distance = (1.0 - (unit[row] * unit[col]).sum(dim=1)).clamp_(0.0, 2.0)
    per_node_sum = torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, row, distance)
    per_node_count = torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, row, torch.ones_like(distance))
    has_partner = per_node_count > 0
    return (per_node_sum[has_partner] / per_node_count[has_partner]).mean()
