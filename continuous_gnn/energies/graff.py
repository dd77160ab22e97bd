r"""The GRAFF energy: external field, pairwise attraction/repulsion and a source term."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_positive_int
from ..graph import Graph
from .base import Energy
from .parametrizations import ChannelMixing, ExternalField


class GRAFFEnergy(Energy):
    r"""The GRAFF energy of Di Giovanni et al. ([v1] eqs. 7 and 10).

    .. math::
        E(F) = \tfrac12 \sum_i \langle f_i, \Omega f_i \rangle
               - \tfrac12 \sum_{i,j} \bar a_{ij} \langle f_i, W f_j \rangle
               - \beta \langle F, F(0) \rangle
             = \tfrac12 \operatorname{tr}(F \Omega F^\top) - \tfrac12 \operatorname{tr}(F^\top \bar A F W)
               - \beta \langle F, F(0) \rangle,

    .. math::
        \nabla E(F) = F\Omega - \bar A F W - \beta F(0), \qquad
        \dot F = -\nabla E(F) = -F\Omega + \bar A F W + \beta F(0).

    **Sign convention for β:** the source enters the flow as :math:`+\beta F(0)` (as in [v1] eq. 12 and the
    official code), so the energy carries :math:`-\beta\langle F, F(0)\rangle`. β is a learned scalar
    initialised to 0. Positive eigenvalues of :math:`W` attract neighbours (smoothing), negative ones repel
    them (sharpening).

    Args:
        channels (int): ``d``.
        w (str): parametrisation of :math:`W`, see :mod:`~continuous_gnn.energies.parametrizations`
            (default: ``"diag_dom"``).
        omega (str): parametrisation of :math:`\Omega`, one of
            :data:`~continuous_gnn.energies.parametrizations.OMEGA_STYLES`: diagonal (``"diag"``, ``"zero"``,
            ``"const"``) or full (``"sum"``, symmetric; ``"asymm"``) (default: ``"diag"``).
        source (bool): include the source term :math:`-\beta\langle F, F(0)\rangle` (default: ``True``).
        w_learnable (bool): train :math:`W`'s parameters (default: ``True``).
        omega_value (float, optional): :math:`c` of ``omega="const"`` (default: ``1.0``; an error with another
            ``omega``, which would ignore it).
        allow_asymmetric (bool): permit ``w="asymm"`` and ``omega="asymm"``; the flow is then no gradient flow
            and ``is_gradient_flow`` is ``False`` (default: ``False``).
    """

    def __init__(self, channels: int, *, w: str = "diag_dom", omega: str = "diag", source: bool = True,
                 w_learnable: bool = True, omega_value: float | None = None, allow_asymmetric: bool = False) -> None:
        super().__init__()
        channels = check_positive_int(channels, "channels")
        check_bool(source, "source")
        check_bool(w_learnable, "w_learnable")
        check_bool(allow_asymmetric, "allow_asymmetric")
        self.channels = channels
        self.W = ChannelMixing(channels, w, learnable=w_learnable, allow_asymmetric=allow_asymmetric)
        self.Omega = ExternalField(channels, omega, value=omega_value, allow_asymmetric=allow_asymmetric)
        self.source = source
        self.beta = nn.Parameter(torch.zeros(())) if source else None
        self.is_gradient_flow = self.W.is_symmetric and self.Omega.is_symmetric

    def reset_parameters(self) -> None:
        self.W.reset_parameters()
        self.Omega.reset_parameters()
        if self.beta is not None:
            with torch.no_grad():
                self.beta.zero_()

    def _source(self, x0: Tensor | None, out: Tensor | None = None) -> Tensor | None:
        if self.beta is None:
            return None
        if x0 is None:
            raise ValueError("GRAFFEnergy(source=True) needs the initial state: pass x0=F(0)")
        return self.beta * x0 if out is None else torch.mul(x0, self.beta, out=out)

    def _mix(self, x: Tensor) -> Tensor:
        diagonal = self.W.diagonal_or_none()
        return x * diagonal if diagonal is not None else x @ self.W()

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph, x0)
        value = -0.5 * (x * graph.propagate(self._mix(x))).sum()
        if not self.Omega.is_diagonal:
            value = value + 0.5 * (x * (x @ self.Omega(x))).sum()
        elif (omega := self.Omega.diagonal(x)) is not None:
            value = value + 0.5 * (x * x * omega).sum()
        source = self._source(x0)
        if source is not None:
            value = value - (x * source).sum()
        return value

    def gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        # The flows call negative_gradient; negating it reproduces ∇E = -ĀXW + XΩ - βX(0) bit for bit, since
        # IEEE rounding is symmetric under a change of sign.
        return -self.negative_gradient(x, graph, x0)

    def negative_gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        self.check_input(x, graph, x0)
        # In place on the fresh product: the same operations and rounding, without a new N × d tensor for each
        # term (the sparse product's backward does not read its output, so autograd allows it).
        mixed = self._mix(x)
        velocity = graph.propagate(mixed)
        # With autograd off, XW is spent once multiplied, so the Ω and source terms are formed in it: the evaluation
        # then allocates no N × d tensor besides XW and ĀXW, so its peak does not depend on whether the heap can
        # reuse a freed block (a kept heap could not, now and then, and held one N × d tensor more).
        scratch = mixed if not torch.is_grad_enabled() and mixed.dtype == x.dtype else None
        external = self.Omega.negated_product(x, out=scratch)
        if external is not None:
            velocity.add_(external)
        source = self._source(x0, out=scratch)
        if source is not None:
            velocity.add_(source)
        return velocity

    def extra_repr(self) -> str:
        return f"channels={self.channels}, source={self.source}"
