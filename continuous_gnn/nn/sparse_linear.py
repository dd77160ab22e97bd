r"""``Linear(dropout(x))`` for sparse CSR input features: dropout on the stored entries, a sparse product.

The benchmarks' bag-of-words features are 0.5–1.3% non-zero. Dropout on the dense ``(n, p)`` input and the
dense product with the encoder were about half of an epoch (e.g. Squirrel: 200 ms of 430 ms).
:func:`~continuous_gnn.training.build.prepare_features` stores sparse features as CSR and
:class:`SparseInputLinear` applies dropout to the stored non-zeros only and multiplies sparsely. Dropping a
zero entry changes nothing, so the output has the same distribution as ``Linear(dropout(x))`` (the random
draws differ, so the numbers are not bitwise the dense path's).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_positive_int

__all__ = ["SparseInputLinear", "dropout_stored"]


class _SparseMatmul(torch.autograd.Function):
    """``X @ Wᵀ`` for a constant sparse CSR ``X`` whose transpose ``Xᵀ`` is given as CSR too.

    The weight gradient ``Gᵀ X = (Xᵀ G)ᵀ`` then uses the fast CSR-times-dense kernel; autograd's default
    transposes ``X`` and re-sorts it on every backward pass.
    """

    @staticmethod
    def forward(ctx, x: Tensor, x_t: Tensor, weight: Tensor) -> Tensor:  # noqa: ANN001
        ctx.x_t = x_t
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, None, Tensor]:  # noqa: ANN001
        return None, None, (ctx.x_t @ grad).t()


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def dropout_stored(x: Tensor, p: float, training: bool) -> Tensor:
    """``dropout(x)`` for dense, sparse CSR or sparse COO features. On a sparse tensor only the stored entries are
    dropped (each kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``), which gives the same distribution
    as dropout on its dense form, since a dropped zero stays zero.

    Raises:
        TypeError: for another sparse layout (CSC, BSR, ...).
    """
    if x.layout == torch.strided:
        return F.dropout(x, p, training)
    if x.layout not in (torch.sparse_csr, torch.sparse_coo):
        raise TypeError(f"features in layout {x.layout} are not supported; pass them dense or as sparse CSR "
                        "(x.to_sparse_csr())")
    if not training or p == 0:
        return x
    if x.layout == torch.sparse_coo:
        x = x.coalesce()
    values = x.values()
    keep = torch.rand_like(values) >= p
    values = values * keep / (1.0 - p)
    if x.layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(x.indices(), values, x.shape, is_coalesced=True, check_invariants=False)
    return _csr(x.crow_indices(), x.col_indices(), values, tuple(x.shape))


def _transpose_pattern(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For CSR ``x``: the permutation of its values into ``xᵀ``'s CSR order, and ``xᵀ``'s crow/col indices."""
    crow, col = x.crow_indices(), x.col_indices()
    rows, cols = x.shape
    row = torch.repeat_interleave(torch.arange(rows, device=crow.device), crow.diff())
    perm = (col * rows + row).argsort()
    t_crow = torch.zeros(cols + 1, dtype=crow.dtype, device=crow.device)
    t_crow[1:] = torch.bincount(col, minlength=cols).cumsum(0)
    return perm, t_crow, row[perm].to(col.dtype)


def _same_tensor_values(a: Tensor, b: Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device and a.shape == b.shape and torch.equal(a, b)


@dataclass(frozen=True)
class _CachedTranspose:
    """The transpose pattern of a CSR input, with a private copy of the shape and indices it was computed from."""

    shape: tuple[int, ...]
    crow: Tensor
    col: Tensor
    pattern: tuple[Tensor, Tensor, Tensor]

    def computed_from(self, x: Tensor) -> bool:
        """Whether ``x`` has this shape and these indices, so that :attr:`pattern` is its transpose pattern."""
        return (
            tuple(x.shape) == self.shape
            and _same_tensor_values(x.crow_indices(), self.crow)
            and _same_tensor_values(x.col_indices(), self.col)
        )


class SparseInputLinear(nn.Linear):
    r"""``Linear(dropout(x))`` that also takes sparse CSR input, dropping only its stored entries.

    .. math::
        y = \operatorname{dropout}_p(x)\, W^\top + b

    Dense input takes the ordinary path. For CSR input each stored value is kept with probability
    :math:`1 - p` and scaled by :math:`1/(1-p)` (:func:`dropout_stored`); zeros are unaffected by dropout anyway,
    so the output has the same distribution as the dense path. Sparse COO input is dropped the same way and
    multiplied by the dense kernel.

    The transpose of the sparsity pattern, which the weight gradient needs, is cached: computing it sorts the
    stored entries, and the features passed every epoch keep one pattern. It is a pure function of the input's
    shape and index tensors, and the module keeps its own copy of the indices it was computed from, so it is
    reused only for an input whose shape and indices equal that copy. Freeing the input, reusing its memory
    for another input or editing its indices in place therefore cannot make it stale, and a hit costs one
    comparison of the index tensors instead of the sort.

    Args:
        in_features (int): ``p``.
        out_features (int): ``d``.
        dropout (float): :math:`p` (default: ``0.0``).
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        in_features = check_positive_int(in_features, "in_features")
        out_features = check_positive_int(out_features, "out_features")
        super().__init__(in_features, out_features)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self._pattern: _CachedTranspose | None = None

    def _transpose(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cached = self._pattern
        if cached is None or not cached.computed_from(x):
            # Copies, not the input's own index tensors: those may later be edited or their memory reused.
            crow, col = x.crow_indices().clone(), x.col_indices().clone()
            cached = self._pattern = _CachedTranspose(tuple(x.shape), crow, col, _transpose_pattern(x))
        return cached.pattern

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_features:
            raise ValueError(f"{type(self).__name__} takes features of shape (num_nodes, {self.in_features}), got "
                             f"{tuple(x.shape)}")
        if x.layout != torch.sparse_csr:
            return F.linear(dropout_stored(x, self.dropout, self.training), self.weight, self.bias)
        x = dropout_stored(x, self.dropout, self.training)
        values = x.values()
        if torch.is_grad_enabled() and self.weight.requires_grad:
            perm, t_crow, t_col = self._transpose(x)
            x_t = _csr(t_crow, t_col, values[perm], (x.size(1), x.size(0)))
            out = _SparseMatmul.apply(x, x_t, self.weight)
        else:
            out = x @ self.weight.t()
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dropout={self.dropout}"
