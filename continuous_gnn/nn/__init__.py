"""PyG-style layers: the discrete twins of the continuous flows."""

from .graff_conv import GRAFFConv

__all__ = ["GRAFFConv"]
