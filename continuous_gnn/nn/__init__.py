"""PyG-style layers: the discrete twins of the continuous flows, and the encoders of the models."""

from .encoders import ResidualMLPEncoder
from .graff_conv import GRAFFConv
from .sparse_linear import SparseInputLinear

__all__ = ["GRAFFConv", "ResidualMLPEncoder", "SparseInputLinear"]
