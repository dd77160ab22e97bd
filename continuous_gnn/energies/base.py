r"""The energy abstraction: a scalar :math:`E_\theta(X)` whose negative gradient is a GNN's vector field."""

from __future__ import annotations

import itertools
import numbers
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_sparse_dtype
from ..graph import Graph


class Energy(nn.Module):
    r"""Base class of learnable energies on node features.

    A subclass implements :meth:`energy`, a scalar :math:`E_\theta(X)`. :meth:`gradient` then defaults to
    :math:`\nabla_X E_\theta(X)` by autograd, so writing an energy is enough to get a gradient-flow GNN;
    subclasses with a closed form override :meth:`gradient` for speed, and may override
    :meth:`negative_gradient`, which the flows call, to skip a negation.

    The autograd default works under ``torch.no_grad()``, inside ``odeint_adjoint`` (which runs its forward
    solve without grad) and in its backward pass: it differentiates inside ``torch.enable_grad()``, detaches
    the input only when it does not already require grad (detaching a tracked input would cut the solver's
    autograd graph), and builds a graph of the gradient only when grad mode was on at entry. Under
    ``torch.inference_mode()``, where autograd records nothing, it differentiates outside inference mode, from
    copies of the state; a graph built under inference mode cannot be differentiated through, and says so.

    Attributes:
        is_gradient_flow (bool): ``True`` when :math:`-\nabla E` is an exact gradient field. Energies with a
            non-symmetric parametrisation set it to ``False``.
        channels (int or None): the feature width ``d`` the energy is defined for, or ``None`` when it takes
            any width (the Dirichlet energy). Inputs of another width are refused.
    """

    is_gradient_flow: bool = True
    channels: int | None = None

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        """The energy, a 0-dim tensor.

        Args:
            x (Tensor): node features :math:`X`, shape ``(n, d)``.
            graph (Graph): the normalised graph operator.
            x0 (Tensor, optional): the initial state :math:`X(0)` for energies with a source term.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement energy(x, graph, x0=None)")

    def gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        r""":math:`\nabla_X E(X)`, shape ``(n, d)``; autograd unless a subclass gives a closed form. ``graph`` is a
        :class:`~continuous_gnn.Graph`, checked with the input, or what :meth:`prepare` made of one (checked when
        the flow was bound)."""
        if isinstance(graph, Graph):
            self.check_input(x, graph, x0)
        if not torch.is_inference_mode_enabled():
            return self._autograd_gradient(x, graph, x0)
        # enable_grad does not leave inference mode, where autograd records nothing and the gradient would be
        # zero: it is computed outside, from normal copies of x and x0. Other tensors that the energy's backward
        # saves (the graph's, say) must not have been made under inference mode.
        with torch.inference_mode(False):
            try:
                return self._autograd_gradient(x.clone(), graph, None if x0 is None else x0.clone()).detach()
            except RuntimeError as err:
                if "Inference tensors cannot be saved for backward" not in str(err):
                    raise
                raise RuntimeError(
                    f"{type(self).__name__} computes its gradient by autograd, which cannot differentiate through "
                    "tensors made under torch.inference_mode() (here the graph or a prepared context); evaluate "
                    "under torch.no_grad() instead, build the graph outside inference mode, or give the energy "
                    "a closed-form gradient()"
                ) from err

    def _autograd_gradient(self, x: Tensor, graph: Graph, x0: Tensor | None) -> Tensor:
        r""":math:`\nabla_X E` by autograd, with a graph of it only when grad mode is on."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            # A tracked input gets a fresh view (not itself): the graph stays connected, and when x is the
            # very tensor passed as x0 (the first solver step) the source term is not differentiated too.
            leaf = x.view_as(x) if x.requires_grad else x.detach().requires_grad_()
            value = self.energy(leaf, graph, x0)
            if not isinstance(value, Tensor) or value.dim() != 0:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise TypeError(f"{type(self).__name__}.energy must return a 0-dim tensor, got {shape}")
            grad = (torch.autograd.grad(value, leaf, create_graph=create_graph, allow_unused=True)[0]
                    if value.requires_grad else None)
        if grad is None:
            # Correct (a constant energy has gradient zero), but nearly always a detached x in energy().
            warnings.warn(f"{type(self).__name__}.energy() does not depend on x, so its gradient is zero and the flow "
                          "does not move; compute it from the x it is given (no x.detach(), torch.no_grad() or "
                          ".item() on the way)", UserWarning, stacklevel=3)
            return torch.zeros_like(x)
        return grad

    def negative_gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        r""":math:`-\nabla_X E(X)`, the velocity of the gradient flow; ``-gradient(x, graph, x0)`` unless a
        subclass computes it directly (saving the negation of every evaluation and of its backward pass)."""
        return -self.gradient(x, graph, x0)

    def check_input(self, x: Tensor, graph: Graph, x0: Tensor | None = None, *, label: str = "x") -> None:
        """Raise ``TypeError``/``ValueError`` unless ``x`` (and ``x0``) are features this energy accepts on
        ``graph``: a floating ``(n, d)`` tensor of the parameters' and the graph's dtype, ``d`` the energy's
        :attr:`channels` unless that is ``None``, on a symmetric operator. ``label`` names ``x`` in the messages
        (``"x0"`` when the initial state is checked alone)."""
        self.check_graph(graph)
        name = type(self).__name__
        for what, value in ((label, x), ("x0", x0)):
            if value is None:
                continue
            if not isinstance(value, Tensor) or not value.is_floating_point() or value.dim() != 2:
                got = f"{value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise TypeError(f"{name}: {what} must be a floating-point tensor of shape (num_nodes, channels), got {got}")
            channels = self.channels
            if channels is not None and value.size(1) != channels:
                raise ValueError(f"{name} has {channels} channels but {what} has {value.size(1)}; "
                                 f"build the energy with channels={value.size(1)} or project the features")
            if value.size(0) != graph.num_nodes:
                raise ValueError(f"{what} has {value.size(0)} rows but the graph has {graph.num_nodes} nodes")
        check_sparse_dtype(x, name)
        # Buffers count too: an energy whose weights are all fixed (w_learnable=False, no source) has only those.
        parameter = next((t for t in itertools.chain(self.parameters(), self.buffers()) if t.is_floating_point()),
                         None)
        if parameter is not None and parameter.dtype != x.dtype:
            raise TypeError(f"the features are {x.dtype} but {name}'s parameters are {parameter.dtype}; "
                            f"convert one of them, e.g. energy.to({x.dtype}) or model.double()")
        if x.dtype != graph.dtype:
            raise TypeError(f"the features are {x.dtype} but the graph operator is {graph.dtype}; build the graph "
                            "with the same dtype (Graph.from_edge_index(..., dtype=...)) or call graph.to(dtype=...)")
        if x0 is not None and x0.dtype != x.dtype:
            raise TypeError(f"x0 is {x0.dtype} but x is {x.dtype}; give both the same dtype")

    def check_graph(self, graph: Graph) -> None:
        """Raise ``ValueError`` if the energy is undefined on ``graph`` (it needs a symmetric operator)."""
        if not isinstance(graph, Graph):
            raise TypeError(f"expected a continuous_gnn.Graph, got {type(graph).__name__}; build one with Graph.from_data(data)")
        if not graph.symmetric:
            raise ValueError(
                f"{type(self).__name__} needs a symmetric operator, but this graph uses "
                f"normalization={graph.normalization!r}; build it with normalization='sym'"
            )

    def reset_parameters(self) -> None:
        """Re-initialise the parameters (default: the ``reset_parameters`` of every direct submodule that has
        one; an energy with parameters of its own overrides this)."""
        for module in self.children():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()

    def prepare(self, graph: Graph, x0: Tensor | None) -> Any:
        """What the energy computes once per solve from the graph and :math:`X(0)`, passed to :meth:`energy`
        and :meth:`gradient` in place of ``graph`` (default: the graph itself).

        A bound :class:`~continuous_gnn.GradientFlow` calls it once, so that work that does not change along
        the flow (the attention of :class:`~continuous_gnn.energies.AttentionDirichletEnergy`) is not repeated
        at every evaluation.
        """
        return graph

    def forward(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        """``energy(x)`` is :meth:`energy`: a subclass implements that, never this."""
        return self.energy(x, graph, x0)

    def __add__(self, other: Energy) -> Energy:
        """``e1 + e2``: the :class:`~continuous_gnn.energies.EnergySum` of both."""
        from .composite import EnergySum

        if not isinstance(other, Energy):
            return NotImplemented
        return EnergySum.of(self, other)

    def __mul__(self, weight: float) -> Energy:
        """``w * e``: the energy scaled by a number (an :class:`~continuous_gnn.energies.EnergySum` of one part)."""
        from .composite import EnergySum

        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            return NotImplemented
        return EnergySum.of(self, weights=(weight,))

    __rmul__ = __mul__
