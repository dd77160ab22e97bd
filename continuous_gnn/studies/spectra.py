r"""Spectra for depth studies: the eigenvalues of a model's :math:`W` and the spectral radius of :math:`\Delta`."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_positive_int
from ..diagnostics import rayleigh_quotient, w_spectrum
from ..energies import EnergySchedule, GRAFFEnergy
from ..graph import Graph
from ..models import ContinuousGNN

__all__ = ["w_eigenvalues", "w_spectrum_records", "laplacian_radius", "EulerFrequencies", "euler_frequencies"]


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


#: Up to this many nodes :func:`laplacian_radius` takes the dense eigenvalues (a few seconds at 3000 nodes).
EXACT_RADIUS_NODES = 3000


def laplacian_radius(graph: Graph, *, iterations: int = 500, seed: int = 0) -> float:
    r""":math:`\rho_\Delta`, the largest eigenvalue of :math:`\Delta = I - \bar A`.

    Exact (the dense eigenvalues, float64) on graphs of at most :data:`EXACT_RADIUS_NODES` nodes; on larger
    ones estimated by power iteration, as the Rayleigh quotient of the last iterate, a lower bound that
    converges to :math:`\rho_\Delta` (slowly where the largest eigenvalues crowd together, as on a long path).
    0 for a graph whose :math:`\Delta` is 0 (one node, or self-loops only).

    Args:
        graph (Graph): a symmetric operator.
        iterations (int): power iterations on a large graph (default: ``500``).
        seed (int): seed of the random start of the power iteration (default: ``0``).
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a continuous_gnn.Graph, got {type(graph).__name__}; build one with "
                        "Graph.from_edge_index(edge_index, num_nodes)")
    iterations = check_positive_int(iterations, "iterations")
    graph = graph.to(dtype=torch.float64)
    if graph.num_nodes <= EXACT_RADIUS_NODES:
        laplacian = graph.laplacian(torch.eye(graph.num_nodes, dtype=torch.float64))
        return float(torch.linalg.eigvalsh(0.5 * (laplacian + laplacian.T))[-1].clamp(min=0.0))
    v = torch.randn(graph.num_nodes, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for _ in range(iterations):
        v = graph.laplacian(v)
        norm = v.norm()
        if norm == 0:  # Δv = 0 for a random v: Δ is 0
            return 0.0
        v = v / norm
    return float(rayleigh_quotient(v, graph))


@dataclass(frozen=True)
class EulerFrequencies:
    r"""What the extreme eigenvalues of a symmetric :math:`W` predict for the residual Euler flow
    :math:`F \leftarrow F + \tau \bar A F W` (Di Giovanni et al., Prop. 3.1 and Theorem 4.3, eq. 14).

    Attributes:
        rho_minus (float): :math:`\rho_- = |\lambda_-|(\rho_\Delta - 1)`, the growth rate of the top graph
            frequency along the most negative eigenvector of :math:`W`.
        high_frequency_dominant (bool): Prop. 3.1's condition :math:`\rho_- > \lambda_+` (HFD for the continuous
            flow; LFD otherwise).
        step_bound (bool): the step bound of eq. 14, :math:`|\lambda_-| < 2/(\tau(2 - \rho_\Delta))`.
        eq14 (bool): all of eq. 14, :math:`\lambda_+/(\rho_\Delta - 1) < |\lambda_-| < 2/(\tau(2 - \rho_\Delta))`:
            both conditions above.
        margin (float): the per-step growth :math:`1 + \tau\rho_-` of the top frequency along the most negative
            eigenvector over the larger of its competitors, :math:`1 + \tau\lambda_+` (the lowest frequency along
            the most positive eigenvector) and :math:`|1 - \tau|\lambda_-||` (the lowest frequency along the most
            negative one). It exceeds 1 exactly when eq. 14 holds.
    """

    rho_minus: float
    high_frequency_dominant: bool
    step_bound: bool
    eq14: bool
    margin: float


def euler_frequencies(lam_min: float, lam_max: float, rho: float, tau: float) -> EulerFrequencies:
    r"""Prop. 3.1 and eq. 14 for a :math:`W` with extreme eigenvalues ``lam_min`` and ``lam_max``, a graph with
    :math:`\rho_\Delta` = ``rho`` and the Euler step ``tau`` (see :class:`EulerFrequencies`).

    :math:`\lambda_+ = \max(\lambda_{max}, 0)` and :math:`|\lambda_-| = \max(-\lambda_{min}, 0)`. Each eigenvector
    of :math:`W` with eigenvalue :math:`\lambda` multiplies graph frequency :math:`\mu` by
    :math:`1 + \tau\lambda(1 - \mu)` per step, which gives the three growth rates of ``margin``.

    Raises:
        TypeError: unless every argument is a real number.
        ValueError: unless the arguments are finite, ``lam_min <= lam_max``, ``1 < rho < 2`` (eq. 14 needs
            :math:`\rho_\Delta > 1`, and :math:`\rho_\Delta = 2` only on a bipartite graph, where the step
            bound is void) and ``tau > 0``.
    """
    for name, value in (("lam_min", lam_min), ("lam_max", lam_max), ("rho", rho), ("tau", tau)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if lam_min > lam_max:
        raise ValueError(f"lam_min = {lam_min} exceeds lam_max = {lam_max}; pass the smallest eigenvalue first")
    if not 1.0 < rho < 2.0:
        raise ValueError(f"rho must lie in (1, 2) for eq. 14, got {rho}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    lam_plus, lam_minus = max(float(lam_max), 0.0), max(-float(lam_min), 0.0)
    rho_minus = lam_minus * (rho - 1.0)
    step_bound = lam_minus < 2.0 / (tau * (2.0 - rho))
    high = 1.0 + tau * rho_minus
    low = max(1.0 + tau * lam_plus, abs(1.0 - tau * lam_minus))
    hfd = rho_minus > lam_plus
    return EulerFrequencies(rho_minus=rho_minus, high_frequency_dominant=hfd, step_bound=step_bound,
                            eq14=hfd and step_bound, margin=high / low)
