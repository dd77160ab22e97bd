r"""Node orders for memory locality: relabel a graph's nodes once so that neighbours sit near each other in memory.

Every evaluation of a flow multiplies :math:`\bar A` by the node features, reading the feature rows of each node's
neighbours. Real data files (and the shuffled community graph of :mod:`continuous_gnn.benchmarks.graphs`) number
the nodes with no regard to the graph, so on graphs whose features outgrow the CPU caches almost every neighbour's
row is a cache miss. Numbering the nodes cluster by cluster keeps the rows a node reads close together.

* ``"metis"``: nodes sorted by their METIS cluster (``pymetis``, an optional extra), in their old order within a
  cluster. It recovers the communities of a community-structured graph.
* ``"rcm"``: reverse Cuthill–McKee (``scipy``), which narrows the band of :math:`\bar A`; cheaper, and weaker on
  graphs with communities.

A relabelling changes no model's output beyond rounding (the order of sums): every layer acts on each node's row,
or on the graph through :math:`\bar A`, which is relabelled with the rows. A trained run is another draw, not the
same numbers: dropout draws its masks row by row, so relabelled nodes get other masks. ``docs/performance.md``
(section h) measures what each order saves. :class:`NodeOrder` applies an order to a PyG ``Data`` and restores the
rows of a per-node output; :func:`~continuous_gnn.training.run` applies one to the dataset with the config's
``node_order``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["NODE_ORDERS", "NodeOrder", "locality_order", "metis_parts_for", "neighbour_lists"]

#: The orders :func:`locality_order` builds.
NODE_ORDERS = ("rcm", "metis")
#: Nodes per METIS cluster that :func:`metis_parts_for` aims at: a cluster's 64-channel float rows (8 MiB) then fit
#: in a server CPU's last-level cache.
NODES_PER_CLUSTER = 32768
_MAX_CLUSTERS = 256


@dataclass(frozen=True)
class NodeOrder:
    """A relabelling of ``n`` nodes: new node ``i`` is old node ``order[i]``.

    Attributes:
        order (Tensor): a permutation of ``0 .. n-1`` (long).
    """

    order: Tensor

    def __post_init__(self) -> None:
        order = self.order
        if not isinstance(order, Tensor) or order.dtype != torch.long or order.dim() != 1:
            raise TypeError("order must be a 1-D long tensor")
        if not torch.equal(torch.sort(order).values, torch.arange(order.numel(), device=order.device)):
            raise ValueError("order must be a permutation of 0 .. n-1 (each node exactly once)")

    @property
    def num_nodes(self) -> int:
        return int(self.order.numel())

    @property
    def inverse(self) -> Tensor:
        """``inverse[old] = new``."""
        inverse = torch.empty_like(self.order)
        inverse[self.order] = torch.arange(self.num_nodes, device=self.order.device)
        return inverse

    def apply(self, data: Data) -> Data:
        """A copy of ``data`` with its nodes relabelled: every node attribute's rows reordered, ``edge_index``
        relabelled (edge attributes keep their edges)."""
        if int(data.num_nodes) != self.num_nodes:
            raise ValueError(f"the order has {self.num_nodes} nodes but the graph has {data.num_nodes}")
        out = data.clone()
        order = self.order.to(data.edge_index.device)
        for key, value in data.items():
            if key != "edge_index" and isinstance(value, Tensor) and data.is_node_attr(key):
                out[key] = value[order.to(value.device)]
        out.edge_index = self.inverse.to(data.edge_index.device)[data.edge_index]
        return out

    def restore(self, rows: Tensor) -> Tensor:
        """Rows of a per-node output in the relabelled order, back in the original order."""
        if rows.size(0) != self.num_nodes:
            raise ValueError(f"expected {self.num_nodes} rows (one per node), got {rows.size(0)}")
        return rows[self.inverse.to(rows.device)]


def neighbour_lists(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """The graph as METIS and scipy take it: CSR ``(starts, neighbours)`` on the CPU with both directions of every
    edge and no self-loops (node ``i``'s neighbours are ``neighbours[starts[i]:starts[i + 1]]``)."""
    row, col = edge_index.cpu().long()
    keep = row != col
    row, col = row[keep], col[keep]
    # One key per directed edge, both directions, deduplicated and sorted by (row, col): what PyG's
    # to_undirected gives, in a few E-long tensors rather than its many (about half its peak memory).
    keys = torch.unique(torch.cat([row * num_nodes + col, col * num_nodes + row]), sorted=True)
    del row, col, keep
    row = torch.div(keys, num_nodes, rounding_mode="floor")
    col = keys.sub_(row * num_nodes)
    starts = torch.zeros(num_nodes + 1, dtype=torch.long)
    starts[1:] = torch.bincount(row, minlength=num_nodes).cumsum(0)
    return starts, col


def metis_parts_for(num_nodes: int) -> int:
    """Clusters of the ``"metis"`` order: about :data:`NODES_PER_CLUSTER` nodes each, at least 2 and at most 256."""
    return max(2, min(_MAX_CLUSTERS, math.ceil(num_nodes / NODES_PER_CLUSTER)))


def locality_order(edge_index: Tensor, num_nodes: int, method: str = "metis", *, parts: int | None = None,
                   seed: int = 0) -> NodeOrder:
    """The node order ``method`` (module docstring) of the graph ``edge_index``.

    Args:
        edge_index (Tensor): the edges, ``(2, E)``; either direction of an edge is enough.
        num_nodes (int): ``n``.
        method (str): ``"metis"`` or ``"rcm"`` (default: ``"metis"``).
        parts (int, optional): METIS clusters (default: :func:`metis_parts_for`).
        seed (int): METIS's seed (default: 0).

    Raises:
        ValueError: on an unknown method, no nodes, edges that name a node outside ``0..num_nodes - 1``, or more
            parts than nodes.
        ImportError: when ``"metis"`` is asked for without ``pymetis`` installed (the message names the fix).
    """
    if method not in NODE_ORDERS:
        raise ValueError(f"unknown node order {method!r}; choose one of {', '.join(NODE_ORDERS)}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        # Such an id would fold into another node's neighbour list: an order of some other graph, without a word.
        raise ValueError(f"edge_index names nodes {int(edge_index.min())}..{int(edge_index.max())}, outside "
                         f"0..{num_nodes - 1}; pass the graph's num_nodes")
    if parts is not None and not 2 <= parts <= num_nodes:
        raise ValueError(f"parts must be between 2 and the {num_nodes} nodes, got {parts}")
    starts, col = neighbour_lists(edge_index, num_nodes)
    if method == "rcm":
        import numpy as np
        import scipy.sparse as sp
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        adjacency = sp.csr_matrix((np.ones(col.numel(), dtype=np.int8), col.numpy(), starts.numpy()),
                                  shape=(num_nodes, num_nodes))
        return NodeOrder(torch.from_numpy(reverse_cuthill_mckee(adjacency, symmetric_mode=True).astype("int64")))
    try:
        import pymetis
    except ImportError:
        raise ImportError("node order 'metis' needs pymetis: pip install pymetis (or the extra: pip install 'continuous_gnn[metis]'); "
                          "node order 'rcm' needs nothing extra", name="pymetis") from None
    count = parts if parts is not None else metis_parts_for(num_nodes)
    adjacency = pymetis.CSRAdjacency(adj_starts=starts.numpy(), adjacent=col.numpy())
    _, membership = pymetis.part_graph(count, adjacency=adjacency, options=pymetis.Options(seed=seed))
    return NodeOrder(torch.argsort(torch.as_tensor(membership, dtype=torch.long), stable=True))
