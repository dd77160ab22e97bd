"""continuous_gnn: continuous-depth graph neural networks as gradient flows of learnable energies."""

from . import energies, fields, nn
from .energies import EnergySchedule
from .errors import DistributedError, IntegrationError, TrainingDivergedError
from .fields import AttentionDiffusion, BoundField, Field, FixedAttentionDiffusion, GradientFlow, SecondOrderFlow
from .graph import Graph
from .models import ContinuousGNN
from .ode import (
    ADAPTIVE_METHODS,
    FIXED_METHODS,
    METHODS,
    Adaptive,
    Adjoint,
    FixedGrid,
    Solution,
    SolveStats,
    VectorField,
    count_steps,
    fixed_grid,
    integrate,
)
from .ode.gradcheck import GradCheckReport, grad_check
from .ode.regularizers import integrate_regularized, regularized_forward

__version__ = "0.1.0"

__all__ = [
    "Graph",
    "GradientFlow",
    "BoundField",
    "Field",
    "AttentionDiffusion",
    "FixedAttentionDiffusion",
    "SecondOrderFlow",
    "EnergySchedule",
    "VectorField",
    "integrate",
    "FixedGrid",
    "Adaptive",
    "Adjoint",
    "fixed_grid",
    "count_steps",
    "Solution",
    "SolveStats",
    "IntegrationError",
    "TrainingDivergedError",
    "DistributedError",
    "ContinuousGNN",
    "integrate_regularized",
    "regularized_forward",
    "grad_check",
    "GradCheckReport",
    "METHODS",
    "FIXED_METHODS",
    "ADAPTIVE_METHODS",
    "energies",
    "fields",
    "nn",
    "__version__",
]
