"""What a solve returns: the states at the saved times and the statistics of the solve."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from torch import Tensor

__all__ = ["Solution", "SolveStats"]


@dataclass
class SolveStats:
    """Statistics of one :func:`~continuous_gnn.integrate` call; a fresh record per call, so there is nothing to reset.

    Counts come from a wrapper around the vector field (evaluations) and from torchdiffeq's public step
    callbacks (steps), so they are exact, not estimates.

    Attributes:
        method (str): the forward solver.
        adjoint (bool): whether gradients come from the adjoint method.
        nfe_forward (int): vector-field evaluations of the forward solve.
        nfe_backward (int): evaluations of the adjoint's backward solve; filled in when ``backward()`` runs and
            always 0 with direct backprop (autograd replays the stored graph instead).
        steps_accepted (int): steps of the forward solve (every step for a fixed grid).
        steps_rejected (int): steps an adaptive method tried and rejected (each costs evaluations too).
        steps_backward (int): accepted steps of the adjoint's backward solve.
        last_dt (float or None): the last accepted forward step size.
        t_final (float or None): the time the forward solve reached. For a fixed grid this is ``t_end``. An
            adaptive method takes its last step past ``t_end`` when that step is the one its error control
            chooses, and returns ``x(t_end)`` by interpolating inside that step (dense output), so
            ``t_final >= t_end`` there.
        wall_time (float): seconds spent in the forward solve (the backward solve is not timed here); NaN
            when the solve was traced by ``torch.compile``.
        steps_backward_rejected (int): rejected steps of an adaptive adjoint backward solve.
    """

    method: str
    adjoint: bool = False
    nfe_forward: int = 0
    nfe_backward: int = 0
    steps_accepted: int = 0
    steps_rejected: int = 0
    steps_backward: int = 0
    last_dt: float | None = None
    t_final: float | None = None
    wall_time: float = 0.0
    steps_backward_rejected: int = 0

    @property
    def nfe(self) -> int:
        """Forward plus backward evaluations."""
        return self.nfe_forward + self.nfe_backward

    def as_dict(self) -> dict:
        """The fields as a plain ``dict`` (for logging), plus ``nfe``."""
        return {**asdict(self), "nfe": self.nfe}


@dataclass(frozen=True)
class Solution:
    """The result of :func:`~continuous_gnn.integrate`.

    Attributes:
        final (Tensor): the state at ``t_end``, shape like ``x0``.
        times (Tensor): the times of ``states``, always starting at 0 and ending at ``t_end`` (float64).
        states (Tensor): the states at ``times``, shape ``(len(times), *x0.shape)``.
        stats (SolveStats): solve statistics.
        integrals (dict[str, Tensor]): quantities integrated alongside the state, by name: the regularisers of
            :func:`~continuous_gnn.integrate_regularized` (empty for a plain solve).
    """

    final: Tensor
    times: Tensor
    states: Tensor
    stats: SolveStats = field(repr=False)
    integrals: Mapping[str, Tensor] = field(default_factory=dict, repr=False)
