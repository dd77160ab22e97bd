"""PyG layers: one explicit step of each energy's flow, the whole flow as one layer, and the models' encoders.

The step layers follow PyG's ``GCN2Conv`` (``forward(x, x_0, edge_index, edge_weight=None)``), the flow layer
``GCNConv`` (``forward(x, edge_index, edge_weight=None)``); both take any PyG ``Adj``.
"""

from .encoders import ResidualMLPEncoder
from .energy_conv import ACMPConv, DirichletConv, EnergyConv, GRANDConv, PLaplacianConv
from .flow_conv import FlowConv
from .graff_conv import GRAFFConv
from .sparse_linear import SparseInputLinear

__all__ = [
    "EnergyConv",
    "GRAFFConv",
    "GRANDConv",
    "ACMPConv",
    "PLaplacianConv",
    "DirichletConv",
    "FlowConv",
    "ResidualMLPEncoder",
    "SparseInputLinear",
]
