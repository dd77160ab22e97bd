r"""The graph operator, built once per graph and reused at every function evaluation.

The default operator is the GCN renormalised adjacency

.. math::
    \bar A = \tilde D^{-1/2} (A + I) \tilde D^{-1/2}, \qquad \tilde D = \operatorname{diag}((A + I)\mathbf 1),

(a node that already has a self-loop keeps its weight in place of the added 1, as in PyG's ``GCNConv``)

stored as a sparse CSR matrix so that one product :math:`\bar A X` costs :math:`O(|E| d)` and never
recomputes the normalisation. The normalised Laplacian is :math:`\Delta = I - \bar A`.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
from torch import Tensor
from torch_geometric.utils import add_remaining_self_loops, coalesce, is_undirected
from torch_geometric.utils import to_undirected as _to_undirected

from ._checks import check_bool
from .edge_product import EdgePattern, sparse_product

Normalization = Literal["sym", "rw"]
_NORMALIZATIONS = ("sym", "rw")
_DTYPES = (torch.float32, torch.float64)


def _csr(edge_index: Tensor, values: Tensor, num_nodes: int) -> Tensor:
    """Sparse CSR matrix from a COO edge list (sorted here, duplicates must already be merged)."""
    order = (edge_index[0] * num_nodes + edge_index[1]).argsort()
    row, col = edge_index[0, order], edge_index[1, order]
    crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=row.device)
    crow[1:] = torch.bincount(row, minlength=num_nodes).cumsum(0)
    with warnings.catch_warnings():
        # torch flags CSR as "beta" on every construction; products and their gradients are what we use.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values[order], (num_nodes, num_nodes),
                                       check_invariants=False)


class _SymmetricProduct(torch.autograd.Function):
    """``A @ X`` for a constant symmetric sparse ``A``, whose gradient ``Aᵀ G = A G`` reuses the forward kernel.

    Autograd's default backward of a CSR product goes through a transposed product that is several times slower
    than the forward one. The backward is itself an ordinary product, so double backward still works.
    """

    @staticmethod
    def forward(ctx, operator: Tensor, x: Tensor) -> Tensor:
        ctx.operator = operator
        return sparse_product(operator, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        if torch.is_grad_enabled() and grad.requires_grad:  # double backward records the product
            return None, ctx.operator @ grad
        return None, sparse_product(ctx.operator, grad)


@dataclass(frozen=True, eq=False)
class Graph:
    r"""A normalised graph operator :math:`\bar A` with its degrees.

    Build it with :meth:`from_edge_index` or :meth:`from_data`; the constructor takes already-normalised
    tensors and is mostly internal.

    Attributes:
        operator (Tensor): sparse CSR matrix :math:`\bar A` of shape ``(n, n)``.
        edge_index (Tensor): the non-zero pattern of :math:`\bar A`, shape ``(2, |E'|)``.
        edge_weight (Tensor): the entries of :math:`\bar A` on ``edge_index``, shape ``(|E'|,)``.
        degree (Tensor): :math:`\tilde d`, the (weighted) degrees the operator was normalised with,
            self-loops included when they were added, shape ``(n,)``.
        num_nodes (int): ``n``.
        normalization (str): ``"sym"`` for :math:`\tilde D^{-1/2}\tilde A\tilde D^{-1/2}` or ``"rw"`` for
            :math:`\tilde D^{-1}\tilde A`.
        self_loops (bool): whether :math:`I` was added to :math:`A` (a node's own self-loop in the edge list
            keeps its weight in place of the 1, as in PyG's ``GCNConv``).
        symmetric (bool): whether the normalisation is the symmetric one (``"sym"``), which makes
            :math:`\bar A = \bar A^\top` for the undirected graphs the constructor accepts. Energies require it;
            ``"rw"`` gives ``False`` even where :math:`\tilde D^{-1}\tilde A` happens to be symmetric (a regular
            graph).
    """

    operator: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    degree: Tensor
    num_nodes: int
    normalization: str
    self_loops: bool
    symmetric: bool

    @classmethod
    def from_edge_index(
        cls,
        edge_index: Tensor,
        num_nodes: int | None = None,
        edge_weight: Tensor | None = None,
        *,
        self_loops: bool = True,
        normalization: Normalization = "sym",
        symmetrize: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> Graph:
        r"""Normalise a graph given as an edge list.

        Args:
            edge_index (Tensor): edges as ``(source, target)`` pairs, shape ``(2, |E|)``, integer dtype.
            num_nodes (int, optional): number of nodes (default: ``edge_index.max() + 1``).
            edge_weight (Tensor, optional): non-negative edge weights, shape ``(|E|,)`` (default: ones).
            self_loops (bool): add :math:`I` before normalising, keeping existing self-loops (default: ``True``).
            normalization (str): ``"sym"`` or ``"rw"`` (default: ``"sym"``).
            symmetrize (bool): make a directed graph undirected with
                :func:`torch_geometric.utils.to_undirected` instead of raising; an edge present in both
                directions with different weights keeps the larger one (default: ``False``).
            dtype (torch.dtype): ``torch.float32`` or ``torch.float64``, the operator's dtype (default:
                ``torch.float32``).

        Raises:
            TypeError: if ``edge_index`` is not an integer tensor of shape ``(2, |E|)``.
            ValueError: if the graph is directed and ``symmetrize`` is false (energies need a symmetric
                :math:`\bar A`), on an unknown normalisation, a node index out of range or negative weights.
        """
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise TypeError(
                "edge_index must be a tensor of shape (2, num_edges); got "
                f"{type(edge_index).__name__} of shape {tuple(getattr(edge_index, 'shape', ()))}"
            )
        if edge_index.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"edge_index must hold integer node indices, got dtype {edge_index.dtype}")
        check_bool(self_loops, "self_loops")
        check_bool(symmetrize, "symmetrize")
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of {_NORMALIZATIONS}")
        if dtype not in _DTYPES:
            raise TypeError(f"dtype must be torch.float32 or torch.float64 (the sparse product's types), got {dtype!r}")
        edge_index = edge_index.long()
        given = num_nodes
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        elif not isinstance(num_nodes, int) or isinstance(num_nodes, bool):
            raise TypeError(f"num_nodes must be an integer, got {type(num_nodes).__name__} {num_nodes!r}")
        if num_nodes <= 0:
            raise ValueError("a graph needs at least one node; pass num_nodes for a graph without edges" if given is None
                             else f"a graph needs at least one node, got num_nodes={num_nodes} (node features with "
                                  "no rows?)")
        if edge_index.numel():
            low, high = int(edge_index.min()), int(edge_index.max())
            if low < 0 or high >= num_nodes:
                bad = low if low < 0 else high
                raise ValueError(f"edge_index refers to node {bad}, but num_nodes is {num_nodes} (valid: 0..{num_nodes - 1})")
        weighted = edge_weight is not None
        if edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
        else:
            if not isinstance(edge_weight, Tensor) or edge_weight.shape != (edge_index.size(1),):
                raise TypeError(f"edge_weight must be a tensor of shape ({edge_index.size(1)},) matching edge_index")
            if edge_weight.is_complex() or not bool(torch.isfinite(edge_weight).all()):
                raise ValueError("edge weights must be finite real numbers; drop or fix the inf/nan/complex entries")
            if bool((edge_weight < 0).any()):
                raise ValueError("edge weights must be non-negative for a normalised adjacency")
            positive = edge_weight > 0
            edge_weight = edge_weight.to(dtype)
            if not bool(torch.isfinite(edge_weight).all()):
                raise ValueError(f"edge weights overflow {dtype} (largest {torch.finfo(dtype).max:.3g}); rescale them "
                                 "or pass dtype=torch.float64")
            if bool((positive & (edge_weight == 0)).any()):  # the edge would vanish from the operator unnoticed
                raise ValueError(f"positive edge weights underflow to 0 in {dtype} (smallest positive "
                                 f"{torch.finfo(dtype).tiny:.3g}); rescale them or pass dtype=torch.float64")

        # Duplicate edges are merged by summing their weights, as the sparse product would.
        listed = edge_index.size(1)
        edge_index, edge_weight = coalesce(edge_index, edge_weight, num_nodes, reduce="sum")
        if not is_undirected(edge_index, edge_weight, num_nodes=num_nodes):
            if not symmetrize:
                if not is_undirected(edge_index, num_nodes=num_nodes):
                    what = "the graph is directed"
                elif not weighted:  # all weights 1 as listed: only a repeated edge, summed, makes them differ
                    what = (f"{listed - edge_index.size(1)} edge(s) are listed more than once, in one direction "
                            "only, and a repeated edge's weights are summed, so some edge and its reverse differ")
                else:
                    what = "the edge weights are not symmetric (some edge and its reverse differ)"
                raise ValueError(
                    f"{what}, but energies need a symmetric operator. Make it undirected first "
                    "(torch_geometric.utils.to_undirected or transforms.ToUndirected), or build the graph with "
                    "Graph.from_edge_index(edge_index, num_nodes, edge_weight, symmetrize=True), which keeps the "
                    "larger weight of an edge's two directions (a layer or model takes that Graph in place of "
                    "edge_index)."
                )
            edge_index, edge_weight = _to_undirected(edge_index, edge_weight, num_nodes=num_nodes, reduce="max")

        if self_loops:
            edge_index, edge_weight = add_remaining_self_loops(edge_index, edge_weight, 1.0, num_nodes)
        degree = torch.zeros(num_nodes, dtype=dtype, device=edge_index.device)
        degree.scatter_add_(0, edge_index[0], edge_weight)
        if not bool(torch.isfinite(degree).all()):
            raise ValueError(f"a node's degree (the sum of its edge weights) overflows {dtype} (largest "
                             f"{torch.finfo(dtype).max:.3g}); rescale the edge weights or pass dtype=torch.float64")
        if bool((degree == 0).any()):
            fix = ("give their edges (their self-loops included) a positive weight, or remove those nodes"
                   if self_loops else "keep self_loops=True or remove those nodes")
            first = (degree == 0).nonzero().view(-1)[:3].tolist()
            raise ValueError(f"the graph has nodes with zero degree (e.g. {first}), so the normalisation divides by "
                             f"zero; {fix}")
        row, col = edge_index
        if normalization == "sym":
            inv_sqrt = degree.rsqrt()
            values = inv_sqrt[row] * edge_weight * inv_sqrt[col]
        else:
            values = edge_weight / degree[row]
        operator = _csr(edge_index, values, num_nodes)
        return cls(
            operator=operator,
            edge_index=edge_index,
            edge_weight=values,
            degree=degree,
            num_nodes=num_nodes,
            normalization=normalization,
            self_loops=self_loops,
            symmetric=normalization == "sym",
        )

    @classmethod
    def from_data(cls, data, **kwargs) -> Graph:
        """Normalise the graph of a :class:`torch_geometric.data.Data` object.

        Uses ``data.edge_index``, ``data.num_nodes`` and, when present, ``data.edge_weight`` (a 1-D
        ``data.edge_attr`` is not read: pass it as ``edge_weight`` explicitly if it holds weights). Keyword
        arguments are those of :meth:`from_edge_index`.
        """
        edge_index = getattr(data, "edge_index", None)
        if edge_index is None:
            raise TypeError("data must have an edge_index attribute (a torch_geometric.data.Data object)")
        return cls.from_edge_index(
            edge_index, data.num_nodes, getattr(data, "edge_weight", None), **kwargs
        )

    def propagate(self, x: Tensor) -> Tensor:
        r""":math:`\bar A X` for node features ``x`` of shape ``(n, d)``."""
        if not isinstance(x, Tensor):
            raise TypeError(f"node features must be a tensor of shape ({self.num_nodes}, channels), got "
                            f"{type(x).__name__}")
        if x.dim() != 2 or x.size(0) != self.num_nodes:
            raise ValueError(
                f"node features must have shape ({self.num_nodes}, channels) for this graph; got {tuple(x.shape)}"
            )
        if x.dtype != self.operator.dtype:
            raise TypeError(
                f"features are {x.dtype} but the graph operator is {self.operator.dtype}; "
                "build the graph with the same dtype (Graph.from_edge_index(..., dtype=...)) or call graph.to(dtype=...)"
            )
        if self.operator.requires_grad:
            return self.operator @ x
        if self.symmetric:
            return _SymmetricProduct.apply(self.operator, x)
        if torch.is_grad_enabled() and x.requires_grad:
            return self.operator @ x
        return sparse_product(self.operator, x)

    @cached_property
    def pattern(self) -> EdgePattern:
        """The edge list in CSR order with each edge's reverse, for products with edge values that change
        (attention); built on first use and kept with the graph."""
        # Outside inference mode even when first asked for inside it: the products save these indices for their
        # backward pass, which an inference tensor would make fail in every later training step.
        with torch.inference_mode(False):
            return EdgePattern.from_edge_index(self.edge_index, self.num_nodes)

    def laplacian(self, x: Tensor) -> Tensor:
        r""":math:`\Delta X = X - \bar A X`."""
        return x - self.propagate(x)

    def to_dense(self) -> Tensor:
        r"""Dense :math:`\bar A` (for small graphs and tests)."""
        return self.operator.to_dense()

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Graph:
        """A copy on another device and/or with another floating dtype (``torch.float32`` or ``torch.float64``)."""
        dtype = dtype or self.operator.dtype
        if dtype not in _DTYPES:
            raise TypeError(f"dtype must be torch.float32 or torch.float64 (the sparse product's types), got {dtype!r}")

        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)

        operator = _csr(self.edge_index.to(device), move(self.edge_weight), self.num_nodes)
        return Graph(
            operator=operator,
            edge_index=self.edge_index.to(device),
            edge_weight=move(self.edge_weight),
            degree=move(self.degree),
            num_nodes=self.num_nodes,
            normalization=self.normalization,
            self_loops=self.self_loops,
            symmetric=self.symmetric,
        )

    def __deepcopy__(self, memo: dict) -> Graph:
        # torch cannot deep-copy a sparse CSR tensor (it has no storage to copy), so the copy's operator is built
        # from the copied edge list and values, as to() builds it.
        edge_index, edge_weight, degree = (copy.deepcopy(t, memo) for t in (self.edge_index, self.edge_weight,
                                                                             self.degree))
        copied = Graph(operator=_csr(edge_index, edge_weight, self.num_nodes), edge_index=edge_index,
                       edge_weight=edge_weight, degree=degree, num_nodes=self.num_nodes,
                       normalization=self.normalization, self_loops=self.self_loops, symmetric=self.symmetric)
        memo[id(self)] = copied
        return copied

    @property
    def device(self) -> torch.device:
        """The device of the operator."""
        return self.operator.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the operator (features must match it)."""
        return self.operator.dtype

    def __repr__(self) -> str:
        return (
            f"Graph(num_nodes={self.num_nodes}, nnz={self.edge_index.size(1)}, "
            f"normalization={self.normalization!r}, self_loops={self.self_loops}, dtype={self.dtype})"
        )
