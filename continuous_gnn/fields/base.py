r"""Fields on node features: :math:`f(t, X; \text{graph}, X(0))`, and the bound field a solver integrates.

A :class:`Field` holds parameters and hyperparameters only. :meth:`Field.bind` fixes the graph and
:math:`X(0)` for one solve and returns a :class:`BoundField` whose ``forward(t, x)`` is the ODE's right-hand
side; nothing is stored on the field itself. Fields whose state is not the node features (a second-order flow
carries velocities too) say how to build the state from :math:`X(0)` (:meth:`Field.initial_state`) and how to
read the features back (:meth:`Field.readout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..graph import Graph
from ..ode.field import VectorField

__all__ = ["Field", "BoundField"]


class Field(nn.Module):
    """Base class of vector fields on the node features of a graph.

    A subclass implements ``forward(t, x, context, x0)``, where ``context`` is what :meth:`prepare` returned
    for the graph (the graph itself by default), and may override the other hooks.

    Attributes:
        is_gradient_flow (bool): whether :math:`f = -\\nabla E` for an energy :math:`E` (default: ``False``).
        channels (int or None): the feature width the field is defined for (``None``: any).
    """

    is_gradient_flow: bool = False
    channels: int | None = None

    def forward(self, t: Tensor, x: Tensor, context: Any, x0: Tensor | None = None) -> Tensor:  # pragma: no cover
        """:math:`f(t, x)`, of ``x``'s shape, on the graph of ``context`` (what :meth:`prepare` returned) from the
        initial state ``x0``: what a subclass implements."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(t, x, context, x0)")

    def reset_parameters(self) -> None:
        """Re-initialise the parameters (default: the ``reset_parameters`` of every direct submodule that has one,
        such as a gradient flow's energy; a field with parameters of its own overrides this)."""
        for module in self.children():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()

    def check(self, graph: Graph, x0: Tensor | None) -> None:
        """Raise ``TypeError``/``ValueError`` if the field cannot run on ``graph`` from ``x0`` (default: accept)."""

    def prepare(self, graph: Graph, x0: Tensor | None) -> Any:
        """What the field computes once per solve, passed to :meth:`forward` as ``context`` (default: the graph)."""
        return graph

    def jump_times(self) -> Sequence[float]:
        """Times where the field jumps (default: none)."""
        return ()

    def initial_state(self, x0: Tensor) -> Tensor:
        """The ODE state at :math:`t = 0` for features :math:`X(0)` (default: :math:`X(0)` itself)."""
        return x0

    def readout(self, state: Tensor) -> Tensor:
        """The node features of a state, or of a stack of states along the first dimension (default: the state)."""
        return state

    def bind(self, graph: Graph, x0: Tensor | None = None, *, source: Tensor | None = None) -> BoundField:
        """A vector field ``f(t, x)`` with ``graph`` and ``x0`` fixed for one solve.

        ``source`` is the :math:`X(0)` that :meth:`forward` reads (a source term) when it differs from the one
        :meth:`prepare` reads (attention computed once): a detached copy of ``x0`` cuts the gradient through
        the source term only, as GRAND's code does (default: ``x0`` for both).
        """
        self.check(graph, x0)
        if source is not None and (x0 is None or source.shape != x0.shape):
            raise ValueError(f"source must have the shape of x0, {None if x0 is None else tuple(x0.shape)}; got "
                             f"{tuple(source.shape)} (pass source=x0.detach() to cut the gradient through it)")
        return BoundField(self, graph, self.prepare(graph, x0), x0, source=source)


class BoundField(VectorField):
    """A :class:`Field` bound to one graph and one initial state; ``forward(t, x)`` is the ODE's right-hand side.

    The field is a submodule, so its parameters are found by ``odeint_adjoint``. The bound :math:`X(0)` is
    listed by :meth:`captured_tensors`, so that :func:`~continuous_gnn.integrate` also sends adjoint gradients
    to an ``x0`` that requires grad (nothing is detached silently); what :meth:`Field.prepare` computed from it
    (e.g. attention weights) is differentiated through that graph. A separate ``source`` is what ``forward``
    reads instead of ``x0``. A time-dependent field declares its jumps through :meth:`jump_times`.

    Attributes:
        flow (Field): the field.
        graph (Graph): the graph.
        context: what ``flow.prepare(graph, x0)`` returned.
        x0 (Tensor or None): :math:`X(0)` as :meth:`Field.prepare` read it (``source`` where ``prepare``
            returned the graph itself).
        source (Tensor or None): :math:`X(0)` as the field's ``forward`` reads it (``x0`` unless bound with
            another ``source``).
    """

    def __init__(self, flow: Field, graph: Graph, context: Any, x0: Tensor | None,
                 source: Tensor | None = None) -> None:
        super().__init__()
        self.flow = flow
        self.graph = graph
        self.context = context
        self.source = x0 if source is None else source
        # X(0) itself stays bound only where prepare computed something from it: elsewhere nothing reads it
        # again, and an attached copy would be a captured tensor that the adjoint differentiates for nothing.
        self.x0 = x0 if context is not graph else self.source

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.flow(t, x, self.context, self.source)

    def jump_times(self) -> list[float]:
        """Times where the field jumps: the piece boundaries of a time-dependent energy, else none."""
        return list(self.flow.jump_times())

    def captured_tensors(self) -> tuple[Tensor, ...]:
        """The bound source, and :math:`X(0)` when :meth:`Field.prepare` computed something from it (the
        adjoint's gradients reach it through that), each when there is one."""
        tensors = (self.source,) if self.x0 is self.source else (self.source, self.x0)
        return tuple(t for t in tensors if t is not None)
