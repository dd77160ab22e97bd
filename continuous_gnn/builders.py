r"""From a :class:`~continuous_gnn.config.RunConfig` to the objects of a run: graph operator, energy, model.

These functions only construct; they never touch the random seed (the caller seeds parameter initialisation,
see :func:`continuous_gnn.training.train_split`).

One performance measure lives here, an exact reformulation of the same model (the other, a symmetric
backward for the graph product, lives in :meth:`continuous_gnn.Graph.propagate`):

* **Sparse input features.** The benchmarks' bag-of-words features are 0.5–1.3% non-zero. Dropout on the
  dense ``(n, p)`` input and the dense product with the encoder were about half of an epoch (e.g. Squirrel:
  200 ms of 430 ms). :func:`prepare_features` stores sparse features as CSR and
  :class:`SparseInputLinear` applies dropout to the stored non-zeros only and multiplies sparsely.
  Dropping a zero entry changes nothing, so the output has the same distribution as
  ``Linear(dropout(x))`` (the random draws differ, so the numbers are not bitwise the dense path's).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.data import Data

from .config import RunConfig
from .energies import ChannelDirichletEnergy, DirichletEnergy, Energy, GRAFFEnergy
from .flow import EnergySchedule
from .graph import Graph
from .integrate import fixed_grid
from .models import ContinuousGNN

__all__ = [
    "build_graph",
    "prepare_features",
    "SparseInputLinear",
    "build_energy",
    "solver_options",
    "num_steps",
    "time_pieces",
    "build_model",
]

#: Features with at most this fraction of non-zeros are stored sparse by :func:`prepare_features`.
SPARSE_FEATURE_DENSITY = 0.1


def build_graph(data: Data, config: RunConfig, device: torch.device | str | None = None) -> Graph:
    r"""The normalised operator :math:`\bar A` of ``data``, built once per dataset and reused by every split.

    ``config.self_loops=True`` gives the paper's :math:`\tilde D^{-1/2}(A+I)\tilde D^{-1/2}`; ``False`` gives
    :math:`D^{-1/2} A D^{-1/2}` (which fails on graphs with isolated nodes, e.g. CiteSeer).
    """
    graph = Graph.from_data(data, self_loops=config.self_loops)
    if device is not None:
        graph = graph.to(device)
    return graph


def prepare_features(x: Tensor, device: torch.device | str | None = None,
                     max_density: float = SPARSE_FEATURE_DENSITY) -> Tensor:
    """Move features to ``device``; store them as sparse CSR when at most ``max_density`` of them are non-zero.

    Only models built by :func:`build_model` (whose encoder is a :class:`SparseInputLinear`) accept the
    sparse form.
    """
    x = x.to(device) if device is not None else x
    if x.layout != torch.strided or x.dim() != 2 or x.numel() == 0:
        return x
    density = float((x != 0).sum()) / x.numel()
    if density > max_density:
        return x
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return x.to_sparse_csr()


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


def _transpose_pattern(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For CSR ``x``: the permutation of its values into ``xᵀ``'s CSR order, and ``xᵀ``'s crow/col indices."""
    crow, col = x.crow_indices(), x.col_indices()
    rows, cols = x.shape
    row = torch.repeat_interleave(torch.arange(rows, device=crow.device), crow.diff())
    perm = (col * rows + row).argsort()
    t_crow = torch.zeros(cols + 1, dtype=crow.dtype, device=crow.device)
    t_crow[1:] = torch.bincount(col, minlength=cols).cumsum(0)
    return perm, t_crow, row[perm].to(col.dtype)


class SparseInputLinear(nn.Linear):
    r"""``Linear(dropout(x))`` that also takes sparse CSR input, dropping only its stored entries.

    .. math::
        y = \operatorname{dropout}_p(x)\, W^\top + b

    Dense input takes the ordinary path. For CSR input each stored value is kept with probability
    :math:`1 - p` and scaled by :math:`1/(1-p)`; zeros are unaffected by dropout anyway, so the output has the
    same distribution as the dense path. The sparsity pattern's transpose is computed once per input and
    cached (a pure function of the input's index tensors, not state).

    Args:
        in_features (int): ``p``.
        out_features (int): ``d``.
        dropout (float): :math:`p` (default: ``0.0``).
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        super().__init__(in_features, out_features)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self._pattern: tuple[tuple, tuple[Tensor, Tensor, Tensor]] | None = None

    def _transpose(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        crow, col = x.crow_indices(), x.col_indices()
        key = (crow.data_ptr(), col.data_ptr(), crow.numel(), col.numel(), tuple(x.shape), str(x.device))
        if self._pattern is None or self._pattern[0] != key:
            self._pattern = (key, _transpose_pattern(x))
        return self._pattern[1]

    def forward(self, x: Tensor) -> Tensor:
        if x.layout != torch.sparse_csr:
            return F.linear(F.dropout(x, self.dropout, self.training), self.weight, self.bias)
        values = x.values()
        if self.training and self.dropout > 0:
            keep = torch.rand_like(values) >= self.dropout
            values = values * keep / (1.0 - self.dropout)
            x = _csr(x.crow_indices(), x.col_indices(), values, tuple(x.shape))
        if torch.is_grad_enabled() and self.weight.requires_grad:
            perm, t_crow, t_col = self._transpose(x)
            x_t = _csr(t_crow, t_col, values[perm], (x.size(1), x.size(0)))
            out = _SparseMatmul.apply(x, x_t, self.weight)
        else:
            out = x @ self.weight.t()
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dropout={self.dropout}"


def num_steps(config: RunConfig) -> int | None:
    r"""Number of steps of a fixed-grid solve: :math:`\lceil T/τ \rceil` (the last one shorter when τ does not
    divide T); ``None`` for adaptive methods."""
    if not config.fixed_grid:
        return None
    return len(fixed_grid(config.time, step_size=config.step_size)) - 1


def _one_energy(config: RunConfig) -> Energy:
    if config.energy == "graff":
        return GRAFFEnergy(config.hidden, w=config.w, omega=config.omega, source=config.source,
                           w_learnable=config.w_learnable, allow_asymmetric=config.w == "asymm")
    if config.energy == "dirichlet":
        return DirichletEnergy()
    if config.energy == "channel_dirichlet":
        return ChannelDirichletEnergy(config.hidden)
    raise ValueError(f"unknown energy {config.energy!r}")  # pragma: no cover - RunConfig checks it


def time_pieces(config: RunConfig) -> int | None:
    """Number of pieces of time-dependent weights: ``config.time_pieces``, else one per fixed-grid step;
    ``None`` without ``time_dependent``."""
    if not config.time_dependent:
        return None
    if config.time_pieces is not None:
        return config.time_pieces
    steps = num_steps(config)
    if steps is None:  # pragma: no cover - RunConfig requires time_pieces with adaptive methods
        raise ValueError("time_dependent weights with an adaptive method need time_pieces")
    return steps


def build_energy(config: RunConfig) -> Energy | EnergySchedule:
    """The energy on ``config.hidden`` channels; with ``time_dependent`` an :class:`EnergySchedule` of
    :func:`time_pieces` independent energies over ``[0, config.time]`` (piece ``k`` of ``K`` active on
    ``[kT/K, (k+1)T/K)``; by default one per fixed-grid step, so step ``k`` uses piece ``k``).

    Adaptive solvers stop at the piece boundaries (see :func:`~continuous_gnn.integrate`).
    ``w="asymm"`` is accepted here as an explicit request: its flow is not a gradient flow.
    """
    pieces = time_pieces(config)
    if pieces is None:
        return _one_energy(config)
    return EnergySchedule([_one_energy(config) for _ in range(pieces)], t_end=config.time)


def solver_options(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`~continuous_gnn.integrate` for the config's solver settings."""
    options: dict[str, Any] = {"method": config.method}
    if config.fixed_grid:
        options["step_size"] = config.step_size
    else:
        if config.rtol is not None:
            options["rtol"] = config.rtol
        if config.atol is not None:
            options["atol"] = config.atol
    if config.adjoint:
        options["adjoint"] = True
        if config.adjoint_method is not None:
            options["adjoint_method"] = config.adjoint_method
        if config.seminorm:
            options["seminorm"] = True
    if config.max_nfe is not None:
        options["max_nfe"] = config.max_nfe
    return options


def build_model(config: RunConfig, num_features: int, num_classes: int) -> ContinuousGNN:
    """Encoder → flow of :func:`build_energy` over ``[0, config.time]`` → decoder.

    The input dropout and the first linear map of the encoder are one :class:`SparseInputLinear`, so the
    model takes dense features or the sparse ones of :func:`prepare_features`. The parameters, the computed
    function and the distribution of the initial values are those of ``ContinuousGNN(..., input_dropout=p)``;
    under the same seed the initial values agree except for that first linear map, which is drawn after the
    energy and the decoder (so it agrees in distribution only).
    """
    model = ContinuousGNN(
        num_features,
        config.hidden,
        num_classes,
        build_energy(config),
        t_end=config.time,
        solver=solver_options(config),
        activation=config.activation,
        normalize_field=config.normalize_field,
        input_dropout=0.0,  # applied by the SparseInputLinear below
        dropout=config.dropout,
        encoder=config.encoder,
        detach_source=config.detach_source,
    )
    first = SparseInputLinear(num_features, config.hidden, config.input_dropout)
    if config.encoder == "linear":
        model.encoder = first
    else:
        model.encoder.input = first
    return model
