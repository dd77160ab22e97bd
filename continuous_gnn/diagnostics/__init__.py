"""Diagnostics of node-feature trajectories: energies, spectra, over-smoothing measures.

All functions run without building an autograd graph and return detached tensors (0-dim for scalars),
except :func:`trajectory_diagnostics`, which returns plain Python floats.
"""

from continuous_gnn.diagnostics.energy import channel_dirichlet_energies, dirichlet_energy, rayleigh_quotient
from continuous_gnn.diagnostics.mad import mean_average_distance
from continuous_gnn.diagnostics.spectral import (
    Spectrum,
    eigvec_cosines,
    laplacian_spectrum,
    negative_mass,
    w_spectrum,
)
from continuous_gnn.diagnostics.trajectory import DEFAULT_METRICS, DIAGNOSTICS, trajectory_diagnostics

__all__ = [
    "DEFAULT_METRICS",
    "DIAGNOSTICS",
    "Spectrum",
    "channel_dirichlet_energies",
    "dirichlet_energy",
    "eigvec_cosines",
    "laplacian_spectrum",
    "mean_average_distance",
    "negative_mass",
    "rayleigh_quotient",
    "trajectory_diagnostics",
    "w_spectrum",
]
