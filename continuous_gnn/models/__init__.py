"""Models built on gradient flows."""

from .node_classifier import ContinuousGNN, ResidualMLPEncoder

__all__ = ["ContinuousGNN", "ResidualMLPEncoder"]
