r"""Products with values that change on a fixed symmetric sparsity pattern: attention on the edges of a graph.

Attention recomputes the entries of a sparse matrix at every forward pass (GRAND-l) or at every evaluation
(GRAND-nl), and those entries require grad. Neither a gather/scatter over the edge list nor autograd's CSR
product fits:

* gather/scatter (``index_add`` of ``a_e x_{col(e)}``) is correct in :math:`O(|E| d)` memory, but its backward
  scatters with an atomic-style ``index_put`` that took over half of a GRAND-l epoch on Cora;
* autograd's backward of a CSR product whose values require grad asks for a dense :math:`N \times N` gradient
  (about 115 GB at ogbn-arxiv's size).

:func:`EdgePattern.propagate` runs the forward as one CSR product with the values detached, and its backward as
one CSR product with the transposed matrix (the same pattern, since the graph is undirected, with the values
permuted by :attr:`EdgePattern.reverse`) plus one sampled product
(``torch.sparse.sampled_addmm``, :math:`O(|E| d)`) for the values' gradient
:math:`\partial L / \partial a_{ij} = \langle G_i, X_j \rangle`. Under ``create_graph=True`` both backward
terms are computed differentiably, so double backward works.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["EdgePattern", "sparse_product"]


def _csr(crow: Tensor, col: Tensor, values: Tensor, num_nodes: int) -> Tensor:
    with warnings.catch_warnings():
        # torch flags CSR as "beta" on every construction; products are what we use.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, (num_nodes, num_nodes), check_invariants=False)


def sparse_product(operator: Tensor, x: Tensor) -> Tensor:
    """``operator @ x`` for a constant sparse CSR ``operator``, with autograd off.

    ``operator @ x`` zero-fills a result and copies it into another before the sparse kernel overwrites it;
    ``addmm`` into its own output with ``beta = 0`` runs the same kernel on a fresh tensor without those two
    passes over an n × d tensor, and gives the same bits (``tests/test_graph.py``, ``tests/test_edge_product.py``).
    Other layouts and devices keep ``@``.
    """
    if operator.layout != torch.sparse_csr or x.device.type not in ("cpu", "cuda"):
        return operator @ x
    out = torch.empty(operator.size(0), x.size(1), dtype=x.dtype, device=x.device)
    return torch.addmm(out, operator, x, beta=0, out=out)


class _EdgeValueProduct(torch.autograd.Function):
    """``A @ X`` with ``A``'s entries ``values`` (CSR order) on the pattern, differentiable in both."""

    @staticmethod
    def forward(ctx, values: Tensor, x: Tensor, pattern: EdgePattern) -> Tensor:
        ctx.save_for_backward(values, x)
        ctx.pattern = pattern
        return sparse_product(_csr(pattern.crow, pattern.col, values.detach(), pattern.num_nodes), x.detach())

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        values, x = ctx.saved_tensors
        pattern = ctx.pattern
        grad_values = grad_x = None
        if ctx.needs_input_grad[0]:
            if torch.is_grad_enabled():  # double backward: the gathered form is differentiable
                grad_values = (grad[pattern.row] * x[pattern.col]).sum(dim=1)
            else:  # G Xᵀ sampled on the pattern: one kernel, no |E| x d intermediates
                sampled = torch.sparse.sampled_addmm(
                    _csr(pattern.crow, pattern.col, values.detach(), pattern.num_nodes), grad, x.detach().T, beta=0.0)
                grad_values = sampled.values()
        if ctx.needs_input_grad[1]:
            grad_x = _EdgeValueProduct.apply(values[pattern.reverse], grad, pattern)  # Aᵀ G
        return grad_values, grad_x, None


class _EdgeDot(torch.autograd.Function):
    """Per-head scores ``<q_i^h, k_j^h>`` on the pattern's edges, ``(|E|, H)``, from ``q, k`` of shape ``(n, H, d)``."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, pattern: EdgePattern) -> Tensor:
        ctx.save_for_backward(q, k)
        ctx.pattern = pattern
        template = _csr(pattern.crow, pattern.col, q.new_zeros(pattern.col.numel()), pattern.num_nodes)
        heads = [torch.sparse.sampled_addmm(template, q[:, h].detach(), k[:, h].detach().T, beta=0.0).values()
                 for h in range(q.size(1))]
        return torch.stack(heads, dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        q, k = ctx.saved_tensors
        pattern = ctx.pattern
        grad_q = grad_k = None
        # d score_e / d q_row(e) = k_col(e): a product with the edge values G; for k, with Gᵀ.
        if ctx.needs_input_grad[0]:
            grad_q = torch.stack([pattern.propagate(grad[:, h], k[:, h]) for h in range(q.size(1))], dim=1)
        if ctx.needs_input_grad[1]:
            transposed = grad[pattern.reverse]
            grad_k = torch.stack([pattern.propagate(transposed[:, h], q[:, h]) for h in range(q.size(1))], dim=1)
        return grad_q, grad_k, None


@dataclass(frozen=True, eq=False)
class EdgePattern:
    r"""The non-zero pattern of a symmetric sparse matrix in CSR order, for products with changing edge values.

    Attributes:
        num_nodes (int): :math:`|V|`.
        crow (Tensor): CSR row pointers, shape ``(|V| + 1,)``.
        edge_index (Tensor): the edges in CSR order, shape ``(2, |E|)``: row (target) ``row`` and column
            (source) ``col``.
        reverse (Tensor): for each edge :math:`(i, j)` in CSR order, the CSR position of :math:`(j, i)`; so
            ``values[reverse]`` are the entries of the transpose.
    """

    num_nodes: int
    crow: Tensor
    edge_index: Tensor
    reverse: Tensor

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> EdgePattern:
        """The pattern of an undirected ``edge_index`` without duplicates (that of a
        :class:`~continuous_gnn.Graph`).

        Raises:
            ValueError: if the pattern is not symmetric (some edge lacks its reverse) or lists an edge twice.
        """
        row, col = edge_index
        keys = row * num_nodes + col
        order = keys.argsort()
        keys = keys[order]
        row, col = row[order], col[order]
        if keys.numel() > 1 and bool((keys[1:] == keys[:-1]).any()):  # the transpose would map both to one copy
            raise ValueError("the edge pattern lists an edge twice; coalesce it first (torch_geometric.utils.coalesce, "
                             "summing the values of the copies)")
        reverse = torch.searchsorted(keys, col * num_nodes + row)
        found = reverse < keys.numel()
        if not bool(found.all()) or not bool((keys[reverse] == col * num_nodes + row).all()):
            raise ValueError("the edge pattern is not symmetric: some edge (i, j) has no (j, i); make the graph "
                             "undirected first (torch_geometric.utils.to_undirected)")
        crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=row.device)
        crow[1:] = torch.bincount(row, minlength=num_nodes).cumsum(0)
        return cls(num_nodes=num_nodes, crow=crow, edge_index=torch.stack([row, col]), reverse=reverse)

    @property
    def row(self) -> Tensor:
        return self.edge_index[0]

    @property
    def col(self) -> Tensor:
        return self.edge_index[1]

    def propagate(self, values: Tensor, x: Tensor) -> Tensor:
        r""":math:`(AX)_i = \sum_j a_{ij} x_j` for ``values`` :math:`a` in CSR order, shape ``(|E|,)``; both may
        require grad (the values' gradient costs :math:`O(|E| d)`, never a dense matrix)."""
        if values.shape != self.row.shape:
            raise ValueError(f"values must have shape ({self.row.numel()},), one per edge of the pattern; got "
                             f"{tuple(values.shape)}")
        if x.dim() != 2 or x.size(0) != self.num_nodes:
            raise ValueError(f"features must have shape ({self.num_nodes}, channels); got {tuple(x.shape)}")
        if values.dtype != x.dtype:
            raise TypeError(f"values are {values.dtype} but the features {x.dtype}; give both one dtype")
        if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16):
            raise TypeError(f"the sparse product has no {x.dtype} kernel on the CPU; use float32 there")
        return _EdgeValueProduct.apply(values, x, self)

    def edge_dot(self, query: Tensor, key: Tensor) -> Tensor:
        r"""Scores :math:`s_{ij}^h = \langle q_i^h, k_j^h \rangle` on the edges in CSR order, shape ``(|E|, H)``,
        for ``query`` and ``key`` of shape ``(|V|, H, d)`` (sampled products, forward and backward)."""
        if query.shape != key.shape or query.dim() != 3 or query.size(0) != self.num_nodes:
            raise ValueError(f"query and key must both have shape ({self.num_nodes}, heads, channels); got "
                             f"{tuple(query.shape)} and {tuple(key.shape)}")
        return _EdgeDot.apply(query, key, self)
