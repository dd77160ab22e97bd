r"""Node classification with a continuous-depth GNN: encoder → gradient flow over :math:`[0, T]` → decoder."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_positive_finite, check_positive_int
from ..energies.base import Energy
from ..flow import EnergySchedule, GradientFlow
from ..graph import Graph
from ..integrate import Solution, integrate

#: Keyword arguments of :func:`~continuous_gnn.integrate` that a model's ``solver`` may set.
_SOLVER_KEYS = frozenset(inspect.signature(integrate).parameters) - {"func", "x0", "t_end", "save_at"}


class ResidualMLPEncoder(nn.Module):
    """``dropout(Linear(p→d))`` followed by residual blocks ``x ← dropout(x + Linear(relu(x)))``.

    This is the encoder of the official GRAFF (and GRAND) code with ``use_mlp``, dropout after the first layer
    included.
    """

    def __init__(self, in_channels: int, hidden: int, blocks: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.input = nn.Linear(in_channels, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        x = F.dropout(self.input(x), self.dropout, self.training)
        for block in self.blocks:
            x = F.dropout(x + block(F.relu(x)), self.dropout, self.training)
        return x


class ContinuousGNN(nn.Module):
    r"""Encoder → :math:`\dot F = \sigma(-\nabla E_\theta(F))` on :math:`[0, T]` → decoder.

    .. math::
        F(0) = \psi_{EN}(\operatorname{dropout}(X)), \qquad
        F(T) = F(0) + \int_0^T \sigma(-\nabla E_\theta(F(t)))\,dt, \qquad
        Y = \psi_{DE}(\operatorname{dropout}(\operatorname{relu}(F(T)))).

    With ``solver={"method": "euler", "step_size": τ}`` and :math:`T = Lτ` this is an ``L``-layer residual
    GNN whose layers share the energy's weights (see :class:`~continuous_gnn.nn.GRAFFConv`).

    Args:
        in_channels (int): input feature dimension ``p``.
        hidden (int): ``d``.
        out_channels (int): number of classes ``k``.
        energy (Energy or EnergySchedule): the energy on ``d`` channels (a schedule for time-dependent weights).
        t_end (float): :math:`T` (default: ``1.0``).
        solver (Mapping, optional): keyword arguments of :func:`~continuous_gnn.integrate` (``method``,
            ``step_size``, ``rtol``, ``adjoint``, ...) (default: ``{"method": "euler", "step_size": 1.0}``).
        activation (str or callable, optional): σ for GRAFF-NL (default: ``None``).
        normalize_field (bool): standardise the field per channel over the nodes, see
            :class:`~continuous_gnn.GradientFlow` (no longer a gradient flow) (default: ``False``).
        input_dropout (float): dropout on the input features (default: ``0.0``).
        dropout (float): dropout before the decoder (default: ``0.0``).
        encoder (str): ``"linear"`` or ``"mlp"`` (default: ``"linear"``).
        detach_source (bool): feed the source term a detached copy of :math:`F(0)`, as the official code
            does; by default gradients flow into the encoder through it (default: ``False``).

    Shapes:
        - **input:** node features ``(|V|, p)`` and a :class:`~continuous_gnn.Graph`
        - **output:** logits ``(|V|, k)``
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, energy: Energy | EnergySchedule, *,
                 t_end: float = 1.0, solver: Mapping[str, Any] | None = None,
                 activation: str | Callable[[Tensor], Tensor] | None = None, input_dropout: float = 0.0,
                 dropout: float = 0.0, encoder: str = "linear", detach_source: bool = False,
                 normalize_field: bool = False) -> None:
        super().__init__()
        for name, p in (("input_dropout", input_dropout), ("dropout", dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {p}")
        if encoder not in ("linear", "mlp"):
            raise ValueError(f"unknown encoder {encoder!r}; choose 'linear' or 'mlp'")
        for name, size in (("in_channels", in_channels), ("hidden", hidden), ("out_channels", out_channels)):
            check_positive_int(size, name)
        check_positive_finite(t_end, "t_end")
        pieces = energy.energies if isinstance(energy, EnergySchedule) else [energy]
        channels = getattr(pieces[0], "channels", hidden)
        if channels != hidden:
            raise ValueError(f"the energy has {channels} channels but hidden={hidden}; build it with {hidden} channels")
        if isinstance(energy, EnergySchedule) and energy.t_end != float(t_end):
            raise ValueError(f"the EnergySchedule spans [0, {energy.t_end}] but t_end={t_end}; give both the same "
                             "T, or the pieces would not match the integration interval")
        unknown = sorted(set(solver or {}) - _SOLVER_KEYS)
        if unknown:
            raise ValueError(f"unknown solver argument(s) {unknown}; choose from {sorted(_SOLVER_KEYS)}")
        self.encoder = nn.Linear(in_channels, hidden) if encoder == "linear" else ResidualMLPEncoder(in_channels, hidden, dropout=dropout)
        self.flow = GradientFlow(energy, activation, normalize=normalize_field)
        self.decoder = nn.Linear(hidden, out_channels)
        self.t_end = float(t_end)
        self.solver = dict(solver or {"method": "euler", "step_size": 1.0})
        self.input_dropout = input_dropout
        self.dropout = dropout
        self.detach_source = detach_source

    @property
    def energy(self) -> Energy | EnergySchedule:
        return self.flow.energy

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(F.dropout(x, self.input_dropout, self.training))

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(F.dropout(F.relu(h), self.dropout, self.training))

    def solve(self, x: Tensor, graph: Graph, **overrides: Any) -> tuple[Tensor, Solution]:
        """Encode and integrate; returns :math:`F(0)` and the :class:`~continuous_gnn.integrate.Solution`.

        ``overrides`` replace solver arguments for this call (e.g. ``t_end=64.0, save_at=[...]`` to
        extrapolate a trained model).
        """
        h0 = self.encode(x)
        source = h0.detach() if self.detach_source else h0
        kwargs = {**self.solver, **overrides}
        t_end = kwargs.pop("t_end", self.t_end)
        return h0, integrate(self.flow.bind(graph, source), h0, t_end, **kwargs)

    def forward_with_solution(self, x: Tensor, graph: Graph) -> tuple[Tensor, Solution]:
        """Logits and the solution of the flow (for its :class:`~continuous_gnn.integrate.SolveStats`)."""
        _, solution = self.solve(x, graph)
        return self.decode(solution.final), solution

    def forward(self, x: Tensor, graph: Graph) -> Tensor:
        return self.forward_with_solution(x, graph)[0]
