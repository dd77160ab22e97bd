"""The ODE layer: typed solver settings, explicit grids, ``integrate`` over torchdiffeq, trajectory regularisers
and the adjoint-versus-backprop check.

=====================  ======================================================================================
module                 concept
=====================  ======================================================================================
``methods``            torchdiffeq's method names, their kinds and the options each accepts
``settings``           :class:`FixedGrid`, :class:`Adaptive`, :class:`Adjoint`: frozen, validated settings
``grid``               the one step count (:func:`count_steps`) and the explicit fixed grid
``field``              :class:`VectorField`, the base class whose hooks ``integrate`` reads
``guarded``            the wrapper that counts evaluations and steps and types the failures
``adjoint``            the adjoint's parameters (and the check for tensors it would miss)
``solution``           :class:`Solution` and :class:`SolveStats`
``integrate``          :func:`integrate`
``regularizers``       kinetic energy and Jacobian norm integrated alongside the state
``gradcheck``          :func:`grad_check`: adjoint gradients against direct backprop
=====================  ======================================================================================
"""

from .field import VectorField
from .grid import count_steps, fixed_grid
from .integrate import integrate
from .methods import ADAPTIVE_METHODS, FIXED_METHODS, METHODS
from .settings import Adaptive, Adjoint, FixedGrid, Solver, settings_from_keywords
from .solution import Solution, SolveStats

__all__ = [
    "ADAPTIVE_METHODS",
    "FIXED_METHODS",
    "METHODS",
    "Adaptive",
    "Adjoint",
    "FixedGrid",
    "Solution",
    "SolveStats",
    "Solver",
    "VectorField",
    "count_steps",
    "fixed_grid",
    "integrate",
    "settings_from_keywords",
]
