r"""Dirichlet energy and Rayleigh quotient of node features on a normalised graph.

Notation (see ``graph.py``): :math:`\tilde A = A + I` when the graph was built with ``self_loops=True``
(:math:`\tilde A = A` otherwise; a self-loop of the edge list keeps its own weight in place of the 1),
:math:`\tilde d_i = \sum_j \tilde a_{ij}` (``graph.degree``),
:math:`\bar A = \tilde D^{-1/2}\tilde A\tilde D^{-1/2}` and :math:`\Delta = I - \bar A`.

Every function here runs without building an autograd graph and returns **detached tensors** (0-dim for
scalars) with the dtype and device of ``x``; call ``float(...)`` for a Python number. ``x`` must have the
graph's dtype (build the graph with ``dtype=torch.float64`` for float64 features); a 1-D ``x`` of shape
``(n,)`` is treated as a single channel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from continuous_gnn.diagnostics._checks import as_node_features, channel_scales
from continuous_gnn.graph import Graph

__all__ = ["channel_dirichlet_energies", "dirichlet_energy", "rayleigh_quotient"]


def _as_matrix(x: Tensor, graph: Graph) -> Tensor:
    """Validate ``x`` against ``graph`` and return it as a detached ``(n, d)`` matrix."""
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a continuous_gnn.graph.Graph, got {type(graph).__name__}")
    if not graph.symmetric:
        # Only a symmetric Delta defines a quadratic form whose gradient is Delta X.
        raise ValueError(
            f"energies need a symmetric operator, but this graph uses normalization={graph.normalization!r}; "
            "build it with normalization='sym'"
        )
    return as_node_features(x, graph.num_nodes)


def _channel_quadratic_forms(x: Tensor, graph: Graph) -> Tensor:
    r"""Per-channel :math:`x_r^\top \Delta x_r` for a validated ``(n, d)`` matrix."""
    return (x * graph.laplacian(x)).sum(dim=0)


@torch.no_grad()
def dirichlet_energy(x: Tensor, graph: Graph) -> Tensor:
    r"""Dirichlet energy of node features, the paper's normalisation.

    .. math::
        E^{\mathrm{Dir}}(X) = \tfrac12 \operatorname{tr}(X^\top \Delta X)
        = \tfrac14 \sum_{i,j} \tilde a_{ij}
          \Big\| \frac{x_i}{\sqrt{\tilde d_i}} - \frac{x_j}{\sqrt{\tilde d_j}} \Big\|^2 ,

    the sum running over **ordered** pairs (each undirected edge counted twice, self-loops included; a
    self-loop term is zero). It vanishes exactly on multiples of :math:`\tilde D^{1/2}\mathbf 1`
    (:math:`\sqrt{\tilde d_i}`, ``graph.degree.sqrt()``) for a connected graph, **not** on constant
    vectors unless the graph is regular.

    Relation to the official GRAFF code: its "DE" is :math:`\operatorname{tr}(X^\top L X)` with
    :math:`L` from ``torch_geometric.utils.get_laplacian(normalization="sym")``. That function **drops
    self-loops** before normalising, so :math:`E^{\mathrm{Dir}} = \tfrac12\operatorname{tr}(X^\top L X)`
    holds for a graph built with ``self_loops=False`` from an edge list without self-loops; for a self-looped
    graph (the default here, or an edge list that lists some) the official "DE" is the energy of the loop-free
    Laplacian, a different quantity.

    Args:
        x (Tensor): node features, shape ``(n, d)`` or ``(n,)``, same dtype as ``graph``.
        graph (Graph): a graph with ``normalization="sym"``.

    Returns:
        Tensor: 0-dim, non-negative; ``inf`` where the energy exceeds the dtype's range, ``nan``
        where ``x`` has a non-finite entry (a blown-up state of a trajectory is recorded, not refused).

    Raises:
        ValueError: on a shape mismatch or a non-symmetric (``"rw"``) graph.
        TypeError: on a dtype mismatch between ``x`` and ``graph``.
    """
    return channel_dirichlet_energies(x, graph).sum()


@torch.no_grad()
def channel_dirichlet_energies(x: Tensor, graph: Graph) -> Tensor:
    r"""Dirichlet energy of each channel separately.

    .. math::
        E_r = \tfrac12\, x_r^\top \Delta x_r, \qquad \sum_r E_r = E^{\mathrm{Dir}}(X),

    where :math:`x_r` is column ``r`` of ``X``.

    Args:
        x (Tensor): node features, shape ``(n, d)`` or ``(n,)``.
        graph (Graph): a graph with ``normalization="sym"``.

    Returns:
        Tensor: shape ``(d,)``.
    """
    x = _as_matrix(x, graph)
    scale = channel_scales(x)
    forms = _channel_quadratic_forms(x / scale, graph)
    # Δ is positive semidefinite: a form that rounds to 0 or below (a channel along its kernel) is 0 whatever the
    # scale, where scaled back by a square that overflows it would be -inf or nan, and the total nan.
    return torch.where(forms > 0, 0.5 * forms * scale.squeeze(0).square(), forms.clamp(min=0))


@torch.no_grad()
def rayleigh_quotient(x: Tensor, graph: Graph) -> Tensor:
    r"""Rayleigh quotient of :math:`I_d \otimes \Delta`, the LFD/HFD indicator.

    .. math::
        \mathrm{RQ}(X) = \frac{\operatorname{tr}(X^\top \Delta X)}{\|X\|_F^2}
        = 2\,E^{\mathrm{Dir}}\!\Big(\frac{X}{\|X\|_F}\Big) \in [0, \rho_\Delta],

    with :math:`\rho_\Delta` the largest eigenvalue of :math:`\Delta` (:math:`< 2` when every node has a
    self-loop of positive weight, as ``self_loops=True`` adds unless the edge list gives a node one of weight 0).
    RQ :math:`\to 0` along a low-frequency-dominated flow and :math:`\to \rho_\Delta` along a
    high-frequency-dominated one.

    Args:
        x (Tensor): node features, shape ``(n, d)`` or ``(n,)``.
        graph (Graph): a graph with ``normalization="sym"``.

    Returns:
        Tensor: 0-dim; ``nan`` when ``X = 0`` (the quotient is undefined), so that recording a
        trajectory that collapses to zero does not raise. It depends on the direction of :math:`X` only, and
        is computed on :math:`X / \max_{ir} |x_{ir}|`, so that a finite state of any magnitude gives it.
    """
    x = _as_matrix(x, graph)
    scale = x.abs().max() if x.numel() else torch.zeros((), dtype=x.dtype, device=x.device)
    if scale == 0:
        return torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    x = x / scale
    # Clamped at 0, the bound the forms have in exact arithmetic: rounding takes a state in the bottom eigenspace
    # (a multiple of sqrt(d)) a few ulps below it.
    return (_channel_quadratic_forms(x, graph).sum() / x.pow(2).sum()).clamp(min=0)
