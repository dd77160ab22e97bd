r"""Time-dependent energies: a piecewise-constant schedule of energies over :math:`[0, T]`."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from torch import Tensor, nn

from .._checks import check_positive_finite
from .base import Energy


class EnergySchedule(nn.Module):
    r"""Piecewise-constant energies over :math:`[0, T]`: time-dependent weights that any solver can use.

    Piece ``k`` of ``K`` is active on :math:`[kT/K, (k+1)T/K)`; times beyond :math:`T` use the last piece.
    With explicit Euler and ``K`` steps of size :math:`T/K`, step ``k`` uses piece ``k``: one set of weights
    per layer. Adaptive solvers see a vector field with jumps at the piece boundaries.

    Args:
        energies (Sequence[Energy]): the pieces, in time order.
        t_end (float): :math:`T`.
    """

    def __init__(self, energies: Sequence[Energy], t_end: float) -> None:
        super().__init__()
        if isinstance(energies, Energy) or not isinstance(energies, (list, tuple, nn.ModuleList)):
            raise TypeError(f"EnergySchedule takes a list of energies, one per piece, got {type(energies).__name__}")
        if len(energies) == 0:
            raise ValueError("EnergySchedule needs at least one energy")
        for energy in energies:
            if not isinstance(energy, Energy):
                raise TypeError(f"EnergySchedule takes Energy modules, got {type(energy).__name__}")
        channels = {energy.channels for energy in energies} - {None}
        if len(channels) > 1:
            raise ValueError(f"the energies of a schedule must have the same channels, got {sorted(channels)}")
        self.t_end = check_positive_finite(t_end, "t_end")
        self.energies = nn.ModuleList(energies)
        self.channels = next(iter(channels), None)

    def reset_parameters(self) -> None:
        """Re-initialise every piece."""
        for energy in self.energies:
            energy.reset_parameters()

    def boundaries(self) -> list[float]:
        """The jump times :math:`kT/K`, ``k = 1, ..., K-1``."""
        pieces = len(self.energies)
        return [k * self.t_end / pieces for k in range(1, pieces)]

    def index(self, t: Tensor | float) -> int:
        """The index of the piece active at time ``t``: a boundary belongs to the piece that starts there."""
        # No slack: integrate snaps fixed grids onto the boundaries and evaluates just inside each piece
        # (torchdiffeq's perturb), and adaptive solvers stop at the boundaries (jump_t), so an evaluation
        # a rounding error before a boundary must still see the earlier piece.
        return bisect.bisect_right(self.boundaries(), float(t.detach() if isinstance(t, Tensor) else t))

    def at(self, t: Tensor | float) -> Energy:
        """The energy active at time ``t``."""
        return self.energies[self.index(t)]
