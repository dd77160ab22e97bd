"""Input checks shared by the diagnostics, so that every function rejects the same bad types and shapes the same way,
and the scaling that keeps their squares in range."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["as_node_features", "channel_scales", "frobenius_norm"]


def as_node_features(x: Tensor, num_nodes: int | None = None, *, allow_vector: bool = True,
                     finite: bool = False) -> Tensor:
    """Validate node features and return them detached as an ``(n, d)`` matrix.

    Args:
        x (Tensor): node features, shape ``(n, d)`` (or ``(n,)`` when ``allow_vector``).
        num_nodes (int, optional): the required number of rows (default: any).
        allow_vector (bool): accept a 1-D ``x`` as a single channel (default: ``True``).
        finite (bool): reject ``inf`` and ``nan`` entries (default: ``False``).

    Returns:
        Tensor: ``x`` detached, with a channel dimension added to a 1-D input.

    Raises:
        TypeError: if ``x`` is not a real floating-point tensor.
        ValueError: on a wrong shape or row count, or (with ``finite``) a non-finite entry.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of node features (num_nodes, channels), got {type(x).__name__}; "
                        "convert it with torch.as_tensor(x, dtype=torch.float64)")
    if not x.is_floating_point():
        # Integer and complex features would otherwise fail deep inside torch (finfo, vector_norm) or drop the
        # imaginary part silently.
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}; convert it with x.double()")
    x = x.detach()
    if allow_vector and x.dim() == 1:
        x = x.unsqueeze(1)
    if x.dim() != 2 or (num_nodes is not None and x.size(0) != num_nodes):
        rows = "num_nodes" if num_nodes is None else str(num_nodes)
        shapes = f"({rows}, channels)" + (f" or ({rows},)" if allow_vector else "")
        graph = "" if num_nodes is None else f" for a graph of {num_nodes} nodes"
        raise ValueError(f"x must have shape {shapes}{graph}; got {tuple(x.shape)}")
    if finite and not bool(x.isfinite().all()):
        raise ValueError("x contains inf or nan; the diagnostic would silently skip those rows. Check the solve for "
                         "a blow-up (smaller step size or T) or drop the affected states")
    return x


def channel_scales(x: Tensor) -> Tensor:
    """The largest magnitude of each channel, 1 for a zero channel, shape ``(1, d)``: the quadratic forms are
    taken of ``x`` divided by it, whose entries lie in [-1, 1], so that no square overflows or underflows on
    the way to a result the dtype can hold (a finite state 1e160 times a unit one, or 1e-170 times it, in
    float64)."""
    scale = x.abs().amax(dim=0, keepdim=True) if x.size(0) else torch.ones(1, x.size(1), dtype=x.dtype, device=x.device)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def frobenius_norm(x: Tensor) -> Tensor:
    """The Frobenius norm of ``x``, taken of ``x`` over its largest magnitude and scaled back, so that a finite
    state whose squares overflow (or underflow) still has its norm wherever the dtype holds it."""
    x = x.detach()
    peak = x.abs().max() if x.numel() else x.new_zeros(())
    return peak * (x / peak).norm() if peak > 0 and bool(peak.isfinite()) else x.norm()
