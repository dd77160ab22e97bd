r"""GRAFFConv: one explicit Euler step of the GRAFF gradient flow, as a PyG layer."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..energies.base import Energy
from ..energies.graff import GRAFFEnergy
from .energy_conv import EnergyConv

__all__ = ["GRAFFConv"]


class GRAFFConv(EnergyConv):
    r"""The residual graph convolution of "Graph Neural Networks as Gradient Flows"
    (Di Giovanni et al., https://arxiv.org/abs/2206.10991):

    .. math::
        X' = X + \tau\, \sigma\big(-\nabla E(X)\big)
           = X + \tau\, \sigma\big(-X\Omega + \bar A X W + \beta X_0\big)

    for the default :class:`~continuous_gnn.energies.GRAFFEnergy`, with
    :math:`\bar A = \tilde D^{-1/2}(A+I)\tilde D^{-1/2}` and :math:`\sigma` the identity unless ``activation``
    is given. Applying the same layer ``L`` times (weights shared across layers) is
    ``integrate(GradientFlow(conv.energy, activation).bind(graph, x_0), x_0, L * step_size, method="euler",
    step_size=step_size)``: bit for bit when ``step_size`` is a binary fraction such as 0.5 or 0.25, and to
    rounding otherwise (the solver steps by the differences of its grid times).
    ``forward(x, x_0, edge_index, edge_weight=None)`` follows PyG's ``GCN2Conv``.

    Args:
        channels (int): feature dimension ``d`` (input and output).
        step_size (float): τ (default: ``1.0``).
        energy (Energy, optional): the energy (default: ``GRAFFEnergy(channels, **energy_kwargs)``).
        activation (str or callable, optional): σ, e.g. ``"relu"`` for GRAFF-NL (default: ``None``).
        cached (bool): normalise the graph on the first call and reuse it, as ``GCNConv`` does; only for a
            fixed graph (default: ``False``).
        **energy_kwargs: passed to :class:`~continuous_gnn.energies.GRAFFEnergy` (``w``, ``omega``, ``source``...).

    Shapes:
        - **input:** node features ``(|V|, d)``, initial features ``(|V|, d)``, edge indices ``(2, |E|)`` (or any
          PyG ``Adj``, or a :class:`~continuous_gnn.Graph`), optional edge weights ``(|E|,)``
        - **output:** node features ``(|V|, d)``
    """

    def __init__(self, channels: int, step_size: float = 1.0, energy: Energy | None = None,
                 activation: str | Callable[[Tensor], Tensor] | None = None, cached: bool = False,
                 **energy_kwargs) -> None:
        if energy is not None and energy_kwargs:
            raise ValueError("pass either an energy or GRAFFEnergy keyword arguments, not both")
        if energy is not None and getattr(energy, "channels", None) not in (None, channels):
            raise ValueError(f"the energy has {energy.channels} channels but channels={channels}; build it with "
                             f"{channels} channels")
        super().__init__(energy if energy is not None else GRAFFEnergy(channels, **energy_kwargs), step_size,
                         activation, cached)
        self._channels = channels

    @property
    def channels(self) -> int:
        return self._channels
