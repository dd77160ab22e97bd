"""Models built on gradient flows."""

from .continuous_gnn import ContinuousGNN

__all__ = ["ContinuousGNN"]
