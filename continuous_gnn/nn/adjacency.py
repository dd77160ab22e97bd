r"""PyG's adjacency inputs as a normalised :class:`~continuous_gnn.Graph`, with an identity-keyed cache.

PyG layers take an ``Adj``: an ``edge_index`` tensor of shape ``(2, |E|)`` (also PyG's ``EdgeIndex``), a
torch sparse COO or CSR matrix ``adj_t``, or torch-sparse's ``SparseTensor``. A sparse ``adj_t`` is the
*transposed* adjacency in PyG's convention (row = target, column = source); the energies need a symmetric
graph, so both orientations give the same operator, but the conversion still reads it the PyG way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.data.data import BaseData
from torch_geometric.typing import SparseTensor

from ..graph import Graph

__all__ = ["GraphCache", "to_graph", "check_adjoint_weights"]


def _check_size(size: tuple[int, ...], num_nodes: int) -> None:
    if tuple(size) != (num_nodes, num_nodes):
        raise ValueError(f"adj_t has size {tuple(size)} but x has {num_nodes} rows; pass the ({num_nodes}, "
                         f"{num_nodes}) adjacency of these nodes")


def _edges(adj: Any, edge_weight: Tensor | None, num_nodes: int) -> tuple[Tensor, Tensor | None]:
    """``(edge_index, edge_weight)`` of any ``Adj``; ``edge_weight`` may only accompany an ``edge_index``."""
    if isinstance(adj, Tensor) and adj.layout in (torch.sparse_coo, torch.sparse_csr):
        if edge_weight is not None:
            raise ValueError("edge_weight is given by the values of a sparse adj_t; pass only adj_t")
        _check_size(adj.shape, num_nodes)
        coo = adj.to_sparse_coo().coalesce()
        target, source = coo.indices()
        return torch.stack([source, target]), coo.values()
    if isinstance(adj, Tensor):
        if isinstance(adj, EdgeIndex):  # an edge_index with cached metadata; its indexing returns PyG Index types
            sizes = [size for size in adj.sparse_size() if size is not None]
            if any(size != num_nodes for size in sizes):
                raise ValueError(f"the EdgeIndex has sparse_size {tuple(adj.sparse_size())} but x has {num_nodes} "
                                 f"rows; build it with sparse_size=({num_nodes}, {num_nodes})")
            return adj.as_tensor(), edge_weight
        return adj, edge_weight
    if isinstance(adj, SparseTensor):
        if edge_weight is not None:
            raise ValueError("edge_weight is given by the values of a SparseTensor adj_t; pass only adj_t")
        _check_size(adj.sizes(), num_nodes)
        target, source, values = adj.coo()
        return torch.stack([source, target]), values
    hint = ("; pass data.edge_index (a ContinuousGNN model also takes the Data alone: model(data))"
            if isinstance(adj, BaseData) else "")
    raise TypeError(f"expected an edge_index tensor, a torch sparse adj_t, an EdgeIndex or a SparseTensor, got "
                    f"{type(adj).__name__}{hint}")


def to_graph(adj: Any, num_nodes: int, edge_weight: Tensor | None = None, *, dtype: torch.dtype = torch.float32,
             self_loops: bool = True) -> Graph:
    r"""The normalised operator :math:`\bar A` of a PyG adjacency input (a :class:`~continuous_gnn.Graph` is
    returned as it is).

    Args:
        adj: ``edge_index`` ``(2, |E|)``, ``EdgeIndex``, a torch sparse COO/CSR ``adj_t`` or a ``SparseTensor``.
        num_nodes (int): :math:`|V|`.
        edge_weight (Tensor, optional): weights ``(|E|,)`` of an ``edge_index``.
        dtype (torch.dtype): the operator's dtype (default: ``torch.float32``).
        self_loops (bool): add :math:`I` before normalising (default: ``True``).
    """
    if isinstance(adj, Graph):
        if edge_weight is not None:
            raise ValueError("a Graph carries its own weights; edge_weight applies to an edge_index")
        return adj
    edge_index, weight = _edges(adj, edge_weight, num_nodes)
    return Graph.from_edge_index(edge_index, num_nodes, weight, self_loops=self_loops, dtype=dtype)


def check_adjoint_weights(graph: Graph, adjoint: Any, owner: str) -> None:
    """Raise ``ValueError`` when a solve with ``adjoint`` settings would read edge weights that require grad: the
    adjoint of a layer or model differentiates its parameters only, so the weights would get no gradient."""
    if adjoint is not None and torch.is_grad_enabled() and graph.edge_weight.requires_grad:
        raise ValueError(f"{owner} is given edge weights that require grad, which get no gradient through the "
                         "adjoint: train them with direct backprop (adjoint=None), or pass edge_weight.detach()")


class GraphCache:
    """Remembers the graph built from one adjacency input, keyed by the identity of the input tensors and their
    version counters.

    The cache holds the input tensors themselves, so that their identity cannot be reused by other tensors
    while the entry lives; a different tensor (even with equal contents) builds a new graph, and so does the same
    tensor changed in place (``edge_index.copy_(...)`` bumps its version). It is therefore never stale, unlike a
    cache keyed by memory addresses or by "the first call", with one exception that torch shares: a change
    made through ``tensor.data``, which no version counter sees. (A ``SparseTensor`` has no version counter;
    only its identity is compared.)

    A copy of the cache (``copy.deepcopy`` of a model, or pickling it) starts empty: its key would hold copies of
    the input tensors, which no later call could pass again.

    Edge weights that require grad are never cached: the graph built from them carries their autograd history,
    which one backward pass frees, and a graph built under ``torch.no_grad`` has none, so reusing it would either
    fail in the next backward pass or leave the weights without a gradient. Nor are inputs made under
    ``torch.inference_mode`` (they have no version counter to tell an in-place change by). The graph of other
    inputs is built outside inference mode even when the call is inside it: inference tensors could be neither
    differentiated through by an energy whose gradient comes from autograd nor saved by a later training step,
    so the graph of a first call under ``torch.inference_mode`` is cached and reused like any other.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._graph: Graph | None = None

    def get(self, adj: Any, num_nodes: int, edge_weight: Tensor | None, dtype: torch.dtype,
            self_loops: bool = True) -> Graph:
        if isinstance(adj, Graph):
            return to_graph(adj, num_nodes, edge_weight)
        if _requires_grad(adj) or _requires_grad(edge_weight):
            self.clear()
            return to_graph(adj, num_nodes, edge_weight, dtype=dtype, self_loops=self_loops)
        if _is_inference(adj) or _is_inference(edge_weight):
            return to_graph(adj, num_nodes, edge_weight, dtype=dtype, self_loops=self_loops)
        key = (adj, edge_weight, num_nodes, dtype, self_loops, _version(adj), _version(edge_weight))
        if self._key is not None and self._key[0] is adj and self._key[1] is edge_weight and self._key[2:] == key[2:]:
            return self._graph
        with torch.inference_mode(False):
            graph = to_graph(adj, num_nodes, edge_weight, dtype=dtype, self_loops=self_loops)
        self._key, self._graph = key, graph
        return graph

    def clear(self) -> None:
        self._key = self._graph = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_key": None, "_graph": None}


def _requires_grad(adj: Any) -> bool:
    """Whether an adjacency input or edge weight carries values that require grad."""
    if isinstance(adj, Tensor):
        return adj.requires_grad
    if isinstance(adj, SparseTensor):
        return adj.requires_grad()
    return False


def _is_inference(tensor: Any) -> bool:
    """Whether ``tensor`` was made under ``torch.inference_mode`` (such a tensor has no version counter)."""
    return isinstance(tensor, Tensor) and tensor.is_inference()


def _version(tensor: Any) -> int | None:
    """The in-place version counter of a tensor (``None`` for a ``SparseTensor``, an input without one)."""
    return getattr(tensor, "_version", None) if isinstance(tensor, Tensor) else None
