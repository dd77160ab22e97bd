r"""One explicit Euler step of an energy's gradient flow, as a PyG layer; a layer per energy of the family.

Every layer here follows PyG's ``GCN2Conv`` convention for layers that need the initial features:
``forward(x, x_0, edge_index, edge_weight=None)``, with ``edge_index`` any PyG ``Adj`` (an ``edge_index``, a
torch sparse ``adj_t``, an ``EdgeIndex``, a ``SparseTensor``) or a :class:`~continuous_gnn.Graph`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_node_features, check_positive_finite
from ..energies import AllenCahnEnergy, AttentionDirichletEnergy, DirichletEnergy, Energy, PLaplacianEnergy
from ..fields import GradientFlow
from ..graph import Graph
from .adjacency import GraphCache, to_graph

__all__ = ["EnergyConv", "DirichletConv", "GRANDConv", "ACMPConv", "PLaplacianConv"]


class EnergyConv(nn.Module):
    r"""One explicit Euler step of the gradient flow of an energy:

    .. math::
        X' = X + \tau\, \sigma\big(-\nabla E(X; X_0)\big),

    with :math:`\sigma` the identity unless ``activation`` is given. Applying the same layer ``L`` times
    (weights shared) is ``integrate(GradientFlow(energy, activation).bind(graph, x_0), x_0,
    L * step_size, solver=FixedGrid("euler", step_size=step_size))``, so a stack of these layers is a
    discretised continuous GNN: bit for bit when ``step_size`` is a binary fraction such as 0.5 or 0.25, and to
    rounding otherwise (the solver steps by the differences of its grid times, which round when ``k * step_size``
    does).

    Args:
        energy (Energy): the energy :math:`E`.
        step_size (float): :math:`\tau` (default: ``1.0``).
        activation (str or callable, optional): :math:`\sigma`, e.g. ``"relu"`` (default: ``None``).
        cached (bool): normalise the graph on the first call and reuse it while the same adjacency tensors come
            back, as PyG's ``GCNConv`` does for a fixed graph (transductive learning). Unlike ``GCNConv``'s
            cache, another graph, the same one changed in place, another dtype or edge weights that require grad
            build a fresh operator instead of reusing a stale one (:class:`~continuous_gnn.nn.adjacency.GraphCache`).
            :meth:`reset_parameters` clears it (default: ``False``).

    Shapes:
        - **input:** node features ``(|V|, d)``, initial features ``(|V|, d)`` (or ``None`` for an energy
          without a source or attention), an ``Adj`` or a :class:`~continuous_gnn.Graph`, optional edge weights
          ``(|E|,)``
        - **output:** node features ``(|V|, d)``
    """

    def __init__(self, energy: Energy, step_size: float = 1.0,
                 activation: str | Callable[[Tensor], Tensor] | None = None, cached: bool = False) -> None:
        super().__init__()
        step_size = check_positive_finite(step_size, "step_size")
        check_bool(cached, "cached")
        if not isinstance(energy, Energy):
            raise TypeError(f"{type(self).__name__} takes an Energy, got {type(energy).__name__}")
        self.step_size = float(step_size)
        # The energy is registered once, inside the flow, so that the state dict holds each parameter once.
        self.flow = GradientFlow(energy, activation)
        self.cached = cached
        self._graphs = GraphCache()

    @property
    def energy(self) -> Energy:
        """The energy :math:`E` (its parameters appear in the state dict under ``flow.energy.``)."""
        return self.flow.energy

    @property
    def channels(self) -> int | None:
        return self.energy.channels

    def reset_parameters(self) -> None:
        """Re-initialise the energy and clear the cached graph."""
        self.energy.reset_parameters()
        self._graphs.clear()

    def graph(self, x: Tensor, adj: Any, edge_weight: Tensor | None = None) -> Graph:
        """The normalised graph of ``adj`` (with ``cached=True``, the one built for the same inputs before)."""
        if self.cached:
            return self._graphs.get(adj, x.size(0), edge_weight, x.dtype)
        return to_graph(adj, x.size(0), edge_weight, dtype=x.dtype)

    def forward(self, x: Tensor, x_0: Tensor | None, edge_index: Any = None,
                edge_weight: Tensor | None = None) -> Tensor:
        check_node_features(x)
        if isinstance(x_0, Tensor) and not x_0.is_floating_point():
            raise TypeError(f"{type(self).__name__}.forward(x, x_0, edge_index, edge_weight=None) takes the "
                            "initial features second, as PyG's GCN2Conv does; got integer indices for x_0. Call "
                            "it as conv(x, x_0, edge_index) (x_0=None for an energy that does not read X(0))")
        if x_0 is not None:
            check_node_features(x_0, "x_0", like=x)
        if edge_index is None:
            raise TypeError(f"{type(self).__name__}.forward needs edge_index (an Adj or a Graph): "
                            "conv(x, x_0, edge_index, edge_weight=None)")
        graph = self.graph(x, edge_index, edge_weight)
        field = self.flow.bind(graph, x_0)
        # The energy does not depend on time (an EnergySchedule is refused), so any time will do.
        return x + self.step_size * field(torch.zeros((), dtype=torch.float64), x)

    def __repr__(self) -> str:
        channels = "" if self.channels is None else f"{self.channels}, "
        return f"{type(self).__name__}({channels}step_size={self.step_size}, activation={self.flow.activation_name!r})"


class DirichletConv(EnergyConv):
    r"""One Euler step of the heat flow: :math:`X' = X - \tau \Delta X = (1-\tau)X + \tau \bar A X`
    (:class:`~continuous_gnn.energies.DirichletEnergy`; ``x_0`` is not read)."""

    def __init__(self, step_size: float = 1.0, cached: bool = False) -> None:
        super().__init__(DirichletEnergy(), step_size, cached=cached)


class GRANDConv(EnergyConv):
    r"""One Euler step of GRAND-l with symmetrised attention from :math:`X_0`:
    :math:`X' = X + \tau(\bar S - I)X`, :math:`\bar S = D_S^{-1/2}\tfrac12(A + A^\top)D_S^{-1/2}`
    (:class:`~continuous_gnn.energies.AttentionDirichletEnergy`).

    Args:
        channels (int): ``d``.
        step_size (float): :math:`\tau` (default: ``1.0``).
        key_channels (int, optional): attention width per head (default: ``channels``).
        heads (int): attention heads (default: ``1``).
        cached (bool): as :class:`EnergyConv` (default: ``False``).
    """

    def __init__(self, channels: int, step_size: float = 1.0, *, key_channels: int | None = None, heads: int = 1,
                 cached: bool = False) -> None:
        super().__init__(AttentionDirichletEnergy(channels, key_channels=key_channels, heads=heads), step_size,
                         cached=cached)


class ACMPConv(EnergyConv):
    r"""One Euler step of the Allen–Cahn flow of ACMP
    (:class:`~continuous_gnn.energies.AllenCahnEnergy`; ``x_0`` is not read).

    Args:
        channels (int): ``d``.
        step_size (float): :math:`\tau` (default: ``1.0``).
        repulsion (float): initial :math:`\beta` (default: ``1.0``).
        well (float): initial :math:`\delta` (default: ``1.0``).
        learnable (bool): learn :math:`\beta`, :math:`\delta` per channel (default: ``True``).
        cached (bool): as :class:`EnergyConv` (default: ``False``).
    """

    def __init__(self, channels: int, step_size: float = 1.0, *, repulsion: float = 1.0, well: float = 1.0,
                 learnable: bool = True, cached: bool = False) -> None:
        super().__init__(AllenCahnEnergy(channels, repulsion=repulsion, well=well, learnable=learnable), step_size,
                         cached=cached)


class PLaplacianConv(EnergyConv):
    r"""One Euler step of the smoothed p-Laplacian flow
    (:class:`~continuous_gnn.energies.PLaplacianEnergy`; ``x_0`` is not read).

    Args:
        step_size (float): :math:`\tau` (default: ``1.0``).
        p (float): :math:`p \in [1, 2]` (default: ``1.5``).
        eps (float): smoothing :math:`\varepsilon` (default: ``0.01``).
        cached (bool): as :class:`EnergyConv` (default: ``False``).
    """

    def __init__(self, step_size: float = 1.0, *, p: float = 1.5, eps: float = 0.01, cached: bool = False) -> None:
        super().__init__(PLaplacianEnergy(p=p, eps=eps), step_size, cached=cached)
