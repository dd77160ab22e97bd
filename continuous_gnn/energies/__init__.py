r"""Learnable energies on node features; their negative gradients are GNN vector fields.

=================================  ==================================================================
energy                             flow :math:`\dot X = -\nabla E`
=================================  ==================================================================
:class:`DirichletEnergy`           heat equation :math:`-\Delta X` (linear GRAND without attention)
:class:`ChannelDirichletEnergy`    :math:`-\Delta X K^\top K`
:class:`GRAFFEnergy`               GRAFF: :math:`-X\Omega + \bar A X W + \beta X(0)`
:class:`AttentionDirichletEnergy`  GRAND-l: :math:`(\bar S - I)X`, normalised symmetrised attention from :math:`X(0)`
:class:`AllenCahnEnergy`           ACMP: attraction, repulsion from the mean, double well
:class:`PLaplacianEnergy`          p-Laplacian / smoothed total variation
:class:`EnergySum`                 :math:`-\sum_k w_k \nabla E_k` (``e1 + 0.1 * e2``)
=================================  ==================================================================
"""

from .allen_cahn import AllenCahnEnergy
from .attention import AttentionDirichletEnergy, AttentionGraph, EdgeAttention
from .base import Energy
from .composite import EnergySum
from .dirichlet import ChannelDirichletEnergy, DirichletEnergy
from .graff import GRAFFEnergy
from .p_laplacian import PLaplacianEnergy
from .parametrizations import OMEGA_STYLES, W_STYLES, ChannelMixing, ExternalField
from .schedule import EnergySchedule

__all__ = [
    "Energy",
    "DirichletEnergy",
    "ChannelDirichletEnergy",
    "GRAFFEnergy",
    "AttentionDirichletEnergy",
    "AttentionGraph",
    "EdgeAttention",
    "AllenCahnEnergy",
    "PLaplacianEnergy",
    "EnergySum",
    "EnergySchedule",
    "ChannelMixing",
    "ExternalField",
    "W_STYLES",
    "OMEGA_STYLES",
]
