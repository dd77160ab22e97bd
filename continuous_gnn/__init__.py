"""continuous_gnn: continuous-depth graph neural networks as gradient flows of learnable energies."""

from . import energies, nn
from .errors import IntegrationError, TrainingDivergedError
from .flow import BoundField, EnergySchedule, GradientFlow
from .gradcheck import GradCheckReport, grad_check
from .graph import Graph
from .integrate import Solution, SolveStats, fixed_grid, integrate
from .models import ContinuousGNN
from .regularizers import integrate_regularized, regularized_forward
from .solvers import ADAPTIVE_METHODS, FIXED_METHODS, METHODS

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "GradientFlow",
    "BoundField",
    "EnergySchedule",
    "integrate",
    "fixed_grid",
    "Solution",
    "SolveStats",
    "IntegrationError",
    "TrainingDivergedError",
    "ContinuousGNN",
    "integrate_regularized",
    "regularized_forward",
    "grad_check",
    "GradCheckReport",
    "METHODS",
    "FIXED_METHODS",
    "ADAPTIVE_METHODS",
    "energies",
    "nn",
    "__version__",
]
