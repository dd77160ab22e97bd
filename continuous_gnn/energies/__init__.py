"""Learnable energies on node features; their negative gradients are GNN vector fields."""

from .base import Energy
from .dirichlet import ChannelDirichletEnergy, DirichletEnergy
from .graff import GRAFFEnergy
from .parametrizations import OMEGA_STYLES, W_STYLES, ChannelMixing, ExternalField
from .schedule import EnergySchedule

__all__ = [
    "Energy",
    "DirichletEnergy",
    "ChannelDirichletEnergy",
    "GRAFFEnergy",
    "EnergySchedule",
    "ChannelMixing",
    "ExternalField",
    "W_STYLES",
    "OMEGA_STYLES",
]
