"""Argument checks shared by the layers, energies and models, so that each rejects bad numbers the same way."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_positive_int(value: object, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive ``int`` (``True`` and ``2.0`` are not)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_finite(value: object, name: str) -> float:
    """``value`` as a float; ``TypeError`` unless it is a real number, ``ValueError`` unless it is in (0, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is a ``bool``; otherwise ``TypeError`` (a string such as ``"no"`` is truthy and would turn
    the option on)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_node_features(x: object, name: str = "x", *, like: Tensor | None = None, like_name: str = "x") -> Tensor:
    """``x`` if it is a float32 or float64 tensor of node features ``(num_nodes, channels)``, of the shape and dtype
    of ``like`` when that is given; otherwise ``TypeError``/``ValueError`` naming ``name``. The layers read the node
    count from the features, so they check them before anything is built from that count."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a tensor of node features (num_nodes, channels), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be node features of shape (num_nodes, channels), got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} is {x.dtype}, but the layers compute in torch.float32 or torch.float64 (the sparse "
                        f"product's types); pass {name}.float() or {name}.double()")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but {like_name} has {tuple(like.shape)}; both hold "
                         "features of the same nodes and channels")
    if like is not None and x.dtype != like.dtype:
        raise TypeError(f"{name} is {x.dtype} but {like_name} is {like.dtype}; convert one of them")
    return x
