"""Argument checks shared by the layers, energies and models, so that each rejects bad numbers the same way."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is a positive integer (a NumPy integer is one; ``True``
    and ``2.0`` are not)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_finite(value: object, name: str) -> float:
    """``value`` as a float; ``TypeError`` unless it is a real number (a NumPy scalar is one), ``ValueError``
    unless it is in (0, inf)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; otherwise ``ValueError`` that lists them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_sparse_dtype(x: Tensor, owner: str, what: str = "the features") -> None:
    """``TypeError`` for half precision, which no graph operator takes (its sparse products are float32 or
    float64 only): one message with the fix, instead of a chain of dtype conversions that each fail next."""
    if x.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(f"{owner}: {what} are {x.dtype}, but the graph operator's sparse products take float32 or "
                        "float64 only, so half precision (and torch.autocast to it) is not supported; use x.float() "
                        "(or .double()) and run outside autocast")


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
