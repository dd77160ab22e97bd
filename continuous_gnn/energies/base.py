r"""The energy abstraction: a scalar :math:`E_\theta(X)` whose negative gradient is a GNN's vector field."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..graph import Graph


class Energy(nn.Module):
    r"""Base class of learnable energies on node features.

    A subclass implements :meth:`energy`, a scalar :math:`E_\theta(X)`. :meth:`gradient` then defaults to
    :math:`\nabla_X E_\theta(X)` by autograd, so writing an energy is enough to get a gradient-flow GNN;
    subclasses with a closed form override :meth:`gradient` for speed.

    The autograd default works under ``torch.no_grad()``, inside ``odeint_adjoint`` (which runs its forward
    solve without grad) and in its backward pass: it differentiates inside ``torch.enable_grad()``, detaches
    the input only when it does not already require grad (detaching a tracked input would cut the solver's
    autograd graph), and builds a graph of the gradient only when grad mode was on at entry.

    Attributes:
        is_gradient_flow (bool): ``True`` when :math:`-\nabla E` is an exact gradient field. Energies with a
            non-symmetric parametrisation set it to ``False``.
    """

    is_gradient_flow: bool = True

    def energy(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        """The energy, a 0-dim tensor.

        Args:
            x (Tensor): node features :math:`X`, shape ``(n, d)``.
            graph (Graph): the normalised graph operator.
            x0 (Tensor, optional): the initial state :math:`X(0)` for energies with a source term.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement energy(x, graph, x0=None)")

    def gradient(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        r""":math:`\nabla_X E(X)`, shape ``(n, d)``; autograd unless a subclass gives a closed form."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            # A tracked input gets a fresh view (not itself): the graph stays connected, and when x is the
            # very tensor passed as x0 (the first solver step) the source term is not differentiated too.
            leaf = x.view_as(x) if x.requires_grad else x.detach().requires_grad_()
            value = self.energy(leaf, graph, x0)
            (grad,) = torch.autograd.grad(value, leaf, create_graph=create_graph)
        return grad

    def check_graph(self, graph: Graph) -> None:
        """Raise ``ValueError`` if the energy is undefined on ``graph`` (it needs a symmetric operator)."""
        if not isinstance(graph, Graph):
            raise TypeError(f"expected a continuous_gnn.Graph, got {type(graph).__name__}; build one with Graph.from_data(data)")
        if not graph.symmetric:
            raise ValueError(
                f"{type(self).__name__} needs a symmetric operator, but this graph uses "
                f"normalization={graph.normalization!r}; build it with normalization='sym'"
            )

    def forward(self, x: Tensor, graph: Graph, x0: Tensor | None = None) -> Tensor:
        return self.energy(x, graph, x0)
