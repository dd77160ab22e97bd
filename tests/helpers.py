"""Seeded factories for the core tests: random connected graphs, features, energies and dense references.

Everything is float64 unless a test asks otherwise, and every random draw comes from an explicit
``torch.Generator`` (no global seeding), so a failing case can be reproduced from its seed.
Imported by the test modules as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from continuous_gnn import Graph
from continuous_gnn.energies import Energy, GRAFFEnergy

DTYPE = torch.float64
#: W styles whose flow is a gradient flow (every style except ``asymm``).
SYMMETRIC_W = ("diag_dom", "diag", "sum", "prod", "neg_prod", "identity")
OMEGAS = ("diag", "zero", "const", "sum")  # the styles with a symmetric Ω


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_edge_index(n: int, p: float = 0.3, seed: int = 0) -> Tensor:
    """Undirected Erdős–Rényi edges (both directions, no self-loops) plus the path 0-1-…-(n-1), so connected."""
    g = generator(seed)
    upper = torch.triu(torch.rand(n, n, generator=g) < p, diagonal=1)
    idx = torch.arange(n - 1)
    upper[idx, idx + 1] = True
    row, col = upper.nonzero(as_tuple=True)
    return torch.stack([torch.cat([row, col]), torch.cat([col, row])])


def random_graph(n: int = 8, p: float = 0.3, seed: int = 0, dtype: torch.dtype = DTYPE, **kwargs) -> Graph:
    """A connected undirected random graph with the GCN operator (keyword arguments go to ``from_edge_index``)."""
    return Graph.from_edge_index(random_edge_index(n, p, seed), n, dtype=dtype, **kwargs)


def random_features(n: int, d: int, seed: int = 0, dtype: torch.dtype = DTYPE) -> Tensor:
    return torch.randn(n, d, generator=generator(seed), dtype=dtype)


def dense_adjacency(edge_index: Tensor, n: int, edge_weight: Tensor | None = None, dtype=DTYPE) -> Tensor:
    """Dense A (summing duplicate entries), built with plain indexing."""
    a = torch.zeros(n, n, dtype=dtype)
    w = torch.ones(edge_index.size(1), dtype=dtype) if edge_weight is None else edge_weight.to(dtype)
    a.index_put_((edge_index[0], edge_index[1]), w, accumulate=True)
    return a


def gcn_dense(edge_index: Tensor, n: int, edge_weight: Tensor | None = None, dtype=DTYPE) -> Tensor:
    """D̃^{-1/2}(A+I)D̃^{-1/2} by hand (for a loop-free A)."""
    a = dense_adjacency(edge_index, n, edge_weight, dtype) + torch.eye(n, dtype=dtype)
    d = a.sum(1)
    return a / torch.sqrt(d[:, None] * d[None, :])


def permute_edge_index(edge_index: Tensor, perm: Tensor) -> Tensor:
    """Relabel edges for features permuted as ``x[perm]`` (new node i is old node ``perm[i]``)."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    return inverse[edge_index]


def randomize_(module: nn.Module, seed: int, scale: float = 1.0) -> nn.Module:
    """Overwrite every parameter and floating buffer (except identity matrices) with seeded N(0, scale²)."""
    g = generator(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith("eye") or not tensor.is_floating_point():
                continue
            tensor.copy_(scale * torch.randn(tensor.shape, generator=g, dtype=tensor.dtype))
    return module


def graff_energy(d: int, w: str = "diag_dom", omega: str = "diag", source: bool = True, seed: int = 0,
                 scale: float = 0.5, **kwargs) -> GRAFFEnergy:
    """A float64 GRAFFEnergy with seeded random parameters (β ≠ 0 when there is a source)."""
    const = {"omega_value": 0.7} if omega == "const" else {}
    energy = GRAFFEnergy(d, w=w, omega=omega, source=source, **const, **kwargs).double()
    return randomize_(energy, seed, scale)


def hessian_graff(energy: GRAFFEnergy, graph: Graph) -> Tensor:
    r"""Dense Hessian of the GRAFF energy in row-major vec(X): :math:`I_n \otimes \Omega - \bar A \otimes W`."""
    like = torch.zeros(1, dtype=DTYPE)
    with torch.no_grad():
        omega = energy.Omega(like)
        w = energy.W()
    return torch.kron(torch.eye(graph.num_nodes, dtype=DTYPE), omega) - torch.kron(graph.to_dense(), w)


def lipschitz(hessian: Tensor) -> float:
    """Spectral norm of a symmetric matrix."""
    return float(torch.linalg.eigvalsh(hessian).abs().max())


class QuarticEnergy(Energy):
    r"""An energy defined only by :meth:`energy` (its gradient comes from the base class's autograd).

    .. math::
        E(X) = \tfrac12\operatorname{tr}(X^\top \Delta X K^\top K) + \tfrac{\alpha}{4}\sum x^4
               - \beta\langle X, X(0)\rangle,

    written by hand (``x - graph.propagate(x)`` for ΔX) so it does not reuse the library's energies.
    Its closed-form gradient is :math:`\Delta X K^\top K + \alpha X^3 - \beta X(0)` (see :meth:`reference_gradient`).
    """

    def __init__(self, d: int, seed: int = 0, source: bool = True) -> None:
        super().__init__()
        g = generator(seed)
        self.kernel = nn.Parameter(0.5 * torch.randn(d, d, generator=g, dtype=DTYPE))
        self.alpha = nn.Parameter(torch.tensor(0.3, dtype=DTYPE))
        self.beta = nn.Parameter(torch.tensor(0.4, dtype=DTYPE)) if source else None

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        metric = self.kernel.T @ self.kernel
        lap = x - graph.propagate(x)
        value = 0.5 * (lap * (x @ metric)).sum() + 0.25 * self.alpha * (x**4).sum()
        if self.beta is not None:
            value = value - self.beta * (x * x0).sum()
        return value

    def reference_gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        metric = self.kernel.T @ self.kernel
        grad = (x - graph.propagate(x)) @ metric + self.alpha * x**3
        if self.beta is not None:
            grad = grad - self.beta * x0
        return grad


class CountingField(nn.Module):
    """Wraps ``f(t, x)``, counting calls and recording the times at which it was called."""

    def __init__(self, func) -> None:
        super().__init__()
        self.func = func
        self.calls = 0
        self.times: list[float] = []

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.calls += 1
        self.times.append(float(t.detach()))
        return self.func(t, x)


class LinearField(nn.Module):
    """``f(t, x) = -rate * x`` (no parameters)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return -self.rate * x


def run_record(config=None) -> dict:
    """A whole run record of one split with made-up results, as ``RunResult.to_record`` writes it."""
    from continuous_gnn.training import RunConfig
    from continuous_gnn.training.records import RunResult, SplitResult

    split = SplitResult(split=0, seed=0, best_epoch=1, epochs_run=1, train_metric=0.5, val_metric=0.5,
                        test_metric=0.5, wall_time=1.0, epoch_time=1.0, num_parameters=1, train_loss=[1.0],
                        train_curve=[0.5], val_curve=[0.5], nfe_forward=[1.0], nfe_backward=[0.0])
    return RunResult(config=config or RunConfig(), dataset={"name": "made-up", "num_splits": 1}, metric="accuracy",
                     splits=[split], wall_time=1.0, date="2026-01-01T00:00:00+00:00").to_record()
