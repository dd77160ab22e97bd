r"""The Allen–Cahn energy of ACMP: Dirichlet attraction, repulsion from the mean and a double-well potential."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_bool, check_positive_int
from ..graph import Graph
from .base import Energy

__all__ = ["AllenCahnEnergy"]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class AllenCahnEnergy(Energy):
    r"""Attraction along edges, repulsion from the mean and a double well: the energy of ACMP.

    From "ACMP: Allen-Cahn Message Passing with Attractive and Repulsive Forces for Graph Neural Networks"
    (Wang et al., ICLR 2023, https://arxiv.org/abs/2206.05437), on the package's operator
    :math:`\Delta = I - \bar A`, per channel :math:`c`:

    .. math::
        E(X) = \tfrac12 \operatorname{tr}(X^\top \Delta X)
             - \sum_c \frac{\beta_c}{2} \sum_i (x_{ic} - \bar x_c)^2
             + \sum_c \frac{\delta_c}{4} \sum_i \big(1 - x_{ic}^2\big)^2,

    .. math::
        \nabla E(X) = \Delta X - (X - \mathbf 1 \bar x^\top)\operatorname{diag}(\beta)
                      - X \odot (1 - X \odot X)\operatorname{diag}(\delta),

    with :math:`\bar x` the mean over nodes. The flow :math:`\dot X = -\nabla E` attracts neighbours,
    repels every node from the mean with strength :math:`\beta_c \ge 0`, and pulls each entry towards the wells
    :math:`\pm 1` of the Allen–Cahn term with strength :math:`\delta_c > 0`. Repulsion alone would make the
    energy unbounded below; the quartic well keeps it bounded: :math:`E(X) \ge` :meth:`lower_bound`.

    Unlike the heat flow, this flow does not over-smooth: on a connected graph the heat flow
    (:class:`~continuous_gnn.energies.DirichletEnergy`) drives the Dirichlet energy :math:`\tfrac12
    \operatorname{tr}(X^\top\Delta X)` to 0, while here the entries settle near the wells, not all in the same
    one, and repulsion spreads them further, so the Dirichlet energy stays away from 0 (the paper's claim;
    tested on a contextual SBM).

    Args:
        channels (int): ``d``.
        repulsion (float): initial :math:`\beta \ge 0`, for every channel (default: ``1.0``).
        well (float): initial :math:`\delta > 0`, for every channel (default: ``1.0``).
        learnable (bool): learn :math:`\beta` and :math:`\delta` per channel (kept positive by a softplus)
            (default: ``True``).
    """

    def __init__(self, channels: int, *, repulsion: float = 1.0, well: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        check_bool(learnable, "learnable")
        channels = check_positive_int(channels, "channels")
        # Held in float32: a larger value would overflow when the parameters are filled.
        largest = float(torch.finfo(torch.float32).max)
        if isinstance(repulsion, bool) or not isinstance(repulsion, numbers.Real) or not 0 <= repulsion <= largest:
            raise ValueError(f"repulsion must be a finite number >= 0, got {repulsion!r}")
        if isinstance(well, bool) or not isinstance(well, numbers.Real) or not 0 < well <= largest:
            raise ValueError(f"well must be a finite number > 0 (the double well keeps the energy bounded below), "
                             f"got {well!r}")
        self.channels = channels
        self.learnable = learnable
        self.initial = (float(repulsion), float(well))
        raw = torch.empty(2, channels)
        if learnable:
            self.raw = nn.Parameter(raw)
        else:
            self.register_buffer("raw", raw)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.learnable:
                # softplus(raw) starts at the given values; a zero repulsion starts at a tiny positive one.
                for row, value in enumerate(self.initial):
                    self.raw[row].fill_(_inverse_softplus(max(value, 1e-6)))
            else:
                self.raw.copy_(torch.tensor(self.initial).unsqueeze(1).expand(2, self.channels))

    def coefficients(self) -> tuple[Tensor, Tensor]:
        r""":math:`\beta` and :math:`\delta`, each of shape ``(d,)``."""
        values = F.softplus(self.raw) if self.learnable else self.raw
        return values[0], values[1]

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph)
        beta, delta = self.coefficients()
        centred = x - x.mean(dim=0, keepdim=True)
        return (0.5 * (x * graph.laplacian(x)).sum() - 0.5 * (beta * centred.square()).sum()
                + 0.25 * (delta * (1 - x.square()).square()).sum())

    def gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph)
        beta, delta = self.coefficients()
        centred = x - x.mean(dim=0, keepdim=True)
        return graph.laplacian(x) - centred * beta - x * (1 - x.square()) * delta

    def lower_bound(self, num_nodes: int) -> Tensor:
        r"""A lower bound of :math:`E` on ``num_nodes`` nodes:
        :math:`n \sum_c \big(\tfrac{\delta_c}{4} - \tfrac{(\delta_c + \beta_c)^2}{4\delta_c}\big)`.

        The Dirichlet term is non-negative, :math:`\sum_i (x_{ic} - \bar x_c)^2 \le \sum_i x_{ic}^2`, and
        :math:`\tfrac{\delta}{4}(1 - x^2)^2 - \tfrac{\beta}{2} x^2` is smallest at :math:`x^2 = (\delta+\beta)/\delta`.
        """
        beta, delta = self.coefficients()
        return num_nodes * (0.25 * delta - (delta + beta).square() / (4 * delta)).sum()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, learnable={self.learnable}"
