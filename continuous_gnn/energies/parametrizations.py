r"""Parametrisations of the channel-mixing matrices :math:`W` and :math:`\Omega` of the GRAFF energy.

Every ``W`` except ``asymm`` is symmetric by construction, which is what makes
:math:`\dot F = -F\Omega + \bar A F W` the gradient flow of an energy.

=============  ============================================================================================  ===================
name           definition                                                                                    spectrum
=============  ============================================================================================  ===================
``diag_dom``   :math:`W = \operatorname{diag}(q \odot \textstyle\sum_\beta|W^0_{\alpha\beta}| + r) + W^0`,
               :math:`W^0` symmetric with zero diagonal                                                      Gershgorin discs
``diag``       :math:`W = \operatorname{diag}(w)`, learned or fixed                                          the entries of w
``sum``        :math:`W = (M + M^\top)/2`                                                                    any sign
``prod``       :math:`W = M^\top M`                                                                          :math:`W \succeq 0`
``neg_prod``   :math:`W = -M^\top M`                                                                         :math:`W \preceq 0`
``identity``   :math:`W = I`                                                                                 all ones
``asymm``      :math:`W = M` (only with ``allow_asymmetric=True``: no gradient flow)                         any
=============  ============================================================================================  ===================

:math:`\Omega` (:class:`ExternalField`, :data:`OMEGA_STYLES`) is diagonal in the paper's experiments
(``diag``: a learned :math:`\omega`; ``const``: :math:`cI`; ``zero``), and a full matrix in its energy
([v1] eq. 7): ``sum`` is the symmetric :math:`\Omega = (M + M^\top)/2`, which keeps the gradient flow, and
``asymm`` the unconstrained :math:`\Omega = M` (only with ``allow_asymmetric=True``): a learned linear map of
each node's own state beside the neighbours' :math:`W`, much as the "-sep" models of Platonov et al.
(ICLR 2023) keep a node's own embedding apart from its neighbours'.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_positive_int

#: The parametrisations of :math:`W` (:class:`ChannelMixing`), in the table above.
W_STYLES = ("diag_dom", "diag", "sum", "prod", "neg_prod", "identity", "asymm")
#: The parametrisations of :math:`\Omega` (:class:`ExternalField`): diagonal, then full.
OMEGA_STYLES = ("diag", "zero", "const", "sum", "asymm")
_FULL_OMEGA_STYLES = ("sum", "asymm")  # the styles whose Ω is a learned d × d matrix M


def _glorot_(t: Tensor) -> Tensor:
    bound = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    return nn.init.uniform_(t, -bound, bound)


class ChannelMixing(nn.Module):
    """A learnable ``d × d`` matrix :math:`W` in one of the styles of :data:`W_STYLES`.

    Args:
        channels (int): ``d``.
        style (str): one of :data:`W_STYLES` (default: ``"diag_dom"``).
        learnable (bool): train the parameters; ``False`` keeps the random initialisation fixed, as the
            paper's "D" variant does for ``diag`` (default: ``True``).
        allow_asymmetric (bool): required for ``style="asymm"``, whose flow is not a gradient flow
            (default: ``False``).
    """

    def __init__(self, channels: int, style: str = "diag_dom", *, learnable: bool = True,
                 allow_asymmetric: bool = False) -> None:
        super().__init__()
        check_bool(learnable, "learnable")
        check_bool(allow_asymmetric, "allow_asymmetric")
        channels = check_positive_int(channels, "channels")
        if style not in W_STYLES:
            raise ValueError(f"unknown W style {style!r}; choose one of {W_STYLES}")
        if style == "asymm" and not allow_asymmetric:
            raise ValueError(
                "style='asymm' gives a vector field that is not the gradient of any energy; "
                "pass allow_asymmetric=True to use it anyway"
            )
        self.channels = channels
        self.style = style
        self.learnable = learnable
        d = channels
        shapes = {
            "diag_dom": {"offdiag": (d, d - 1), "q": (d,), "r": (d,)},
            "diag": {"w": (d,)},
            "sum": {"m": (d, d)},
            "prod": {"m": (d, d)},
            "neg_prod": {"m": (d, d)},
            "identity": {"eye": (d, d)},
            "asymm": {"m": (d, d)},
        }[style]
        for name, shape in shapes.items():
            tensor = torch.empty(shape)
            if learnable and style != "identity":
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.reset_parameters()

    @property
    def is_symmetric(self) -> bool:
        r"""Whether :math:`W = W^\top`, as a gradient flow needs (every style but ``"asymm"``)."""
        return self.style != "asymm"

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.style == "diag_dom":
                if self.channels > 1:
                    _glorot_(self.offdiag)
                nn.init.uniform_(self.q, -1.0, 1.0)
                nn.init.uniform_(self.r, -1.0, 1.0)
            elif self.style == "diag":
                nn.init.uniform_(self.w, -1.0, 1.0)
            elif self.style in ("sum", "prod", "neg_prod", "asymm"):
                _glorot_(self.m)
            else:
                self.eye.copy_(torch.eye(self.channels))

    def offdiagonal(self) -> Tensor:
        r""":math:`W^0` of the ``diag_dom`` style: symmetric with a zero diagonal."""
        d = self.channels
        full = self.offdiag.new_zeros(d, d)
        mask = ~torch.eye(d, dtype=torch.bool, device=full.device)
        full = full.masked_scatter(mask, self.offdiag)
        return 0.5 * (full + full.T)

    def forward(self) -> Tensor:
        """The matrix :math:`W`, shape ``(d, d)``."""
        style = self.style
        if style == "diag_dom":
            w0 = self.offdiagonal()
            diagonal = self.q * w0.abs().sum(dim=1) + self.r
            return torch.diag(diagonal) + w0
        if style == "diag":
            return torch.diag(self.w)
        if style == "sum":
            return 0.5 * (self.m + self.m.T)
        if style == "prod":
            return self.m.T @ self.m
        if style == "neg_prod":
            return -(self.m.T @ self.m)
        if style == "identity":
            return self.eye
        return self.m

    def diagonal_or_none(self) -> Tensor | None:
        """The diagonal of :math:`W` when :math:`W` is diagonal, so products can skip the matmul."""
        if self.style == "diag":
            return self.w
        return None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, style={self.style!r}, learnable={self.learnable}"


class ExternalField(nn.Module):
    r"""The matrix :math:`\Omega` of the external-field term :math:`\tfrac12\sum_i\langle f_i,\Omega f_i\rangle`.

    Args:
        channels (int): ``d``.
        style (str): one of :data:`OMEGA_STYLES`: ``"diag"`` (learned :math:`\omega \sim U[-1, 1]`),
            ``"zero"`` (:math:`\Omega = 0`), ``"const"`` (fixed :math:`\Omega = cI`), ``"sum"`` (learned
            :math:`\Omega = (M + M^\top)/2`, :math:`M` Glorot-uniform) or ``"asymm"`` (learned :math:`\Omega = M`)
            (default: ``"diag"``).
        value (float, optional): ``c`` for ``"const"`` (default: ``1.0``); given with another style it is an
            error, since that style would ignore it.
        allow_asymmetric (bool): required for ``style="asymm"``, whose flow is not a gradient flow
            (default: ``False``).
    """

    def __init__(self, channels: int, style: str = "diag", *, value: float | None = None,
                 allow_asymmetric: bool = False) -> None:
        super().__init__()
        channels = check_positive_int(channels, "channels")
        check_bool(allow_asymmetric, "allow_asymmetric")
        if style not in OMEGA_STYLES:
            raise ValueError(f"unknown Omega style {style!r}; choose one of {OMEGA_STYLES}")
        if style == "asymm" and not allow_asymmetric:
            raise ValueError(
                "omega='asymm' gives a vector field that is not the gradient of any energy; "
                "pass allow_asymmetric=True to use it anyway, or omega='sum' for a symmetric full Omega"
            )
        if value is not None and style != "const":
            raise ValueError(f"an Omega value (omega_value) applies to the style 'const' (Omega = cI), not to "
                             f"{style!r}, which would ignore it; pass omega='const' or leave the value out")
        value = 1.0 if value is None else value
        if not math.isfinite(value):
            raise ValueError(f"the Omega value must be finite, got {value}")
        self.channels = channels
        self.style = style
        self.value = float(value)
        if style == "diag":
            self.omega = nn.Parameter(torch.empty(channels))
        elif style in _FULL_OMEGA_STYLES:
            self.m = nn.Parameter(torch.empty(channels, channels))
        self.reset_parameters()

    @property
    def is_symmetric(self) -> bool:
        r"""Whether :math:`\Omega = \Omega^\top`, as a gradient flow needs (every style but ``"asymm"``)."""
        return self.style != "asymm"

    @property
    def is_diagonal(self) -> bool:
        r"""Whether :math:`\Omega` is diagonal, so that :meth:`diagonal` holds all of it."""
        return self.style not in _FULL_OMEGA_STYLES

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.style == "diag":
                nn.init.uniform_(self.omega, -1.0, 1.0)
            elif self.style in _FULL_OMEGA_STYLES:
                _glorot_(self.m)

    def diagonal(self, like: Tensor) -> Tensor | None:
        r"""The diagonal :math:`\omega` of a diagonal :math:`\Omega` (``None`` when :math:`\Omega = 0`).

        Raises:
            ValueError: for the full styles ``"sum"`` and ``"asymm"``, whose matrix is :meth:`forward`'s.
        """
        if self.style == "diag":
            return self.omega
        if self.style == "const":
            return like.new_full((self.channels,), self.value)
        if self.style == "zero":
            return None
        raise ValueError(f"Omega of style {self.style!r} is a full matrix, not a diagonal; "
                         f"read it with Omega(like) (check is_diagonal first)")

    def negated_product(self, x: Tensor, out: Tensor | None = None) -> Tensor | None:
        r""":math:`-X\Omega`, the term of the vector field (``None`` when :math:`\Omega = 0`), into ``out`` if given.

        Formed as :math:`X(-\Omega)`, which is :math:`-(X\Omega)` bit for bit: the backward pass then negates the
        entries of :math:`\Omega` instead of the ``n × d`` gradient that a negated product hands back.
        """
        if not self.is_diagonal:
            return torch.matmul(x, self(x).neg(), out=out)
        diagonal = self.diagonal(x)
        if diagonal is None:
            return None
        return torch.mul(x, diagonal.neg(), out=out)

    def forward(self, like: Tensor) -> Tensor:
        r"""The matrix :math:`\Omega`, shape ``(d, d)``, with the dtype and device of ``like``."""
        if self.style == "sum":
            return 0.5 * (self.m + self.m.T)
        if self.style == "asymm":
            return self.m
        diagonal = self.diagonal(like)
        if diagonal is None:
            return like.new_zeros(self.channels, self.channels)
        return torch.diag(diagonal)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, style={self.style!r}" + (f", value={self.value}" if self.style == "const" else "")
