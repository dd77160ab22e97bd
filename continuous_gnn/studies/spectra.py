r"""Spectra for depth studies: the eigenvalues of a model's :math:`W` and the spectral radius of :math:`\Delta`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..diagnostics import rayleigh_quotient, w_spectrum
from ..energies import EnergySchedule, GRAFFEnergy
from ..graph import Graph
from ..models import ContinuousGNN

__all__ = ["w_eigenvalues", "w_spectrum_records", "laplacian_radius"]


def w_eigenvalues(model: ContinuousGNN) -> Tensor:
    r"""Eigenvalues of the model's :math:`W` (ascending; concatenated over the pieces of time-dependent weights).

    Raises:
        ValueError: if the energy has no symmetric :math:`W` (Dirichlet energies, ``w="asymm"``).
    """
    energy = model.energy
    pieces = list(energy.energies) if isinstance(energy, EnergySchedule) else [energy]
    values = []
    for piece in pieces:
        if not isinstance(piece, GRAFFEnergy):
            raise ValueError(f"{type(piece).__name__} has no channel-mixing matrix W")
        if not piece.W.is_symmetric:
            raise ValueError("W is asymmetric (w='asymm'): its eigenvalues may be complex and carry no energy meaning")
        values.append(w_spectrum(piece.W().detach().to(torch.float64)))
    return torch.cat(values)


def w_spectrum_records(model: ContinuousGNN, label: str) -> list[dict[str, Any]]:
    """Records ``{"label", "index", "eigenvalue"}`` of :func:`w_eigenvalues`.

    They are the input of :func:`~continuous_gnn.studies.plot_w_spectrum`.
    """
    return [{"label": label, "index": i, "eigenvalue": float(v)} for i, v in enumerate(w_eigenvalues(model))]


def laplacian_radius(graph: Graph, *, iterations: int = 500, seed: int = 0) -> float:
    r"""Estimate :math:`\rho_\Delta`, the largest eigenvalue of :math:`\Delta = I - \bar A`, by power iteration.

    Returns the Rayleigh quotient of the last iterate (float64), a lower bound that converges to
    :math:`\rho_\Delta`; the dense :func:`~continuous_gnn.diagnostics.laplacian_spectrum` is exact but
    :math:`O(n^3)`.

    Args:
        graph (Graph): a symmetric operator.
        iterations (int): power iterations (default: ``500``).
        seed (int): seed of the random start (default: ``0``).
    """
    graph = graph.to(dtype=torch.float64)
    v = torch.randn(graph.num_nodes, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for _ in range(iterations):
        v = graph.laplacian(v)
        v = v / v.norm()
    return float(rayleigh_quotient(v, graph))
