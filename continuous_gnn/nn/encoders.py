"""Encoders: the map from input features to the initial state :math:`F(0)` of a flow."""

from __future__ import annotations

import numbers

from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_positive_int

__all__ = ["ResidualMLPEncoder"]


class ResidualMLPEncoder(nn.Module):
    """``dropout(Linear(p→d))`` followed by residual blocks ``x ← dropout(x + Linear(relu(x)))``.

    This is the encoder of the official GRAFF (and GRAND) code with ``use_mlp``, dropout after the first layer
    included.

    Args:
        in_channels (int): ``p``.
        hidden (int): ``d``.
        blocks (int): residual blocks (default: ``2``).
        dropout (float): dropout after the first layer and after each block (default: ``0.0``).
    """

    def __init__(self, in_channels: int, hidden: int, blocks: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        in_channels = check_positive_int(in_channels, "in_channels")
        hidden = check_positive_int(hidden, "hidden")
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
            raise ValueError(f"blocks must be an integer >= 0, got {blocks!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.input = nn.Linear(in_channels, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.dropout = float(dropout)

    def reset_parameters(self) -> None:
        """Re-initialise every linear layer."""
        for layer in (self.input, *self.blocks):
            layer.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = F.dropout(self.input(x), self.dropout, self.training)
        for block in self.blocks:
            x = F.dropout(x + block(F.relu(x)), self.dropout, self.training)
        return x
