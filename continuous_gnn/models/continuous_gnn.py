r"""Node classification with a continuous-depth GNN: encoder → gradient flow over :math:`[0, T]` → decoder."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.data import Data, HeteroData

from .._checks import check_bool, check_positive_finite, check_positive_int
from ..energies.base import Energy
from ..energies.schedule import EnergySchedule
from ..fields import Field, GradientFlow, SecondOrderFlow
from ..graph import Graph
from ..nn.adjacency import GraphCache, check_adjoint_weights
from ..nn.encoders import ResidualMLPEncoder
from ..nn.sparse_linear import dropout_stored
from ..ode.integrate import LAYER_ADJOINT_KEYS, integrate, layer_settings, resolve_settings
from ..ode.settings import Adjoint, Solver
from ..ode.solution import Solution

__all__ = ["ContinuousGNN", "KEEP", "ENCODERS", "DECODERS"]

#: The encoders a model can have (``encoder=``).
ENCODERS = ("linear", "mlp")
#: The decoders a model can have (``decoder=``).
DECODERS = ("linear", "mlp")

class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: Marks an override of :meth:`ContinuousGNN.solve` that was not given: the model's own setting is used.
KEEP: Any = _Keep()


def _reset(module: nn.Module) -> None:
    """``module.reset_parameters()``, or that of each of its children when it has none of its own."""
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
        return
    for child in module.children():
        _reset(child)


class ContinuousGNN(nn.Module):
    r"""Encoder → :math:`\dot F = \sigma(-\nabla E_\theta(F))` on :math:`[0, T]` → decoder.

    .. math::
        F(0) = \psi_{EN}(\operatorname{dropout}(X)), \qquad
        F(T) = F(0) + \int_0^T \sigma(-\nabla E_\theta(F(t)))\,dt, \qquad
        Y = \psi_{DE}(\operatorname{dropout}(\operatorname{relu}(F(T)))),

    where :math:`\psi_{DE}` is one linear map, or with ``decoder="mlp"`` a linear map of width ``d`` and a ReLU
    before it (:math:`Y = W_2\,\operatorname{dropout}(\operatorname{relu}(W_1\operatorname{relu}(F(T)) + b_1))
    + b_2`, the official GRAFF code's ``fc_out``).

    With ``solver=FixedGrid("euler", step_size=τ)`` and :math:`T = Lτ` this is an ``L``-layer residual GNN
    whose layers share the energy's weights (see :class:`~continuous_gnn.nn.GRAFFConv`).

    Args:
        in_channels (int): input feature dimension ``p``.
        hidden (int): ``d``.
        out_channels (int): number of classes ``k``.
        energy (Energy, EnergySchedule or Field): the energy on ``d`` channels (a schedule for time-dependent
            weights), integrated as its gradient flow; or a :class:`~continuous_gnn.fields.Field` used as it is
            (e.g. :class:`~continuous_gnn.AttentionDiffusion`, :class:`~continuous_gnn.SecondOrderFlow`).
        t_end (float): :math:`T` (default: ``1.0``).
        solver (FixedGrid, Adaptive or dict, optional): how the flow is integrated, or the torchdiffeq-style
            keywords of :func:`~continuous_gnn.integrate` as a dict (``{"method": "rk4", "step_size": 0.25}``)
            (default: ``FixedGrid("euler", step_size=1.0)``).
        adjoint (Adjoint or bool, optional): gradients by the adjoint method (default: ``None``, direct
            backprop).
        activation (str or callable, optional): σ for GRAFF-NL (default: ``None``).
        normalize_field (bool): standardise the field per channel over the nodes, see
            :class:`~continuous_gnn.GradientFlow` (no longer a gradient flow; the statistics are those of all the
            nodes passed, so the graphs of a PyG ``Batch`` influence each other) (default: ``False``).
        input_dropout (float): dropout on the input features (default: ``0.0``).
        dropout (float): dropout before the decoder, and inside the ``"mlp"`` encoder (default: ``0.0``).
        encoder (str): ``"linear"`` or ``"mlp"`` (default: ``"linear"``).
        decoder (str): ``"linear"`` or ``"mlp"`` (one hidden layer of width ``d`` with a ReLU) (default:
            ``"linear"``).
        detach_source (bool): feed the source term a detached copy of :math:`F(0)`, as the official GRAFF
            and GRAND code do; attention computed from :math:`F(0)` still reads it attached, as GRAND's does.
            By default gradients flow into the encoder through both (default: ``False``).
        self_loops (bool): add :math:`I` to the adjacency of an ``edge_index``, ``adj_t`` or ``Data`` input
            before normalising, as :class:`~continuous_gnn.Graph` does (default: ``True``); a
            :class:`~continuous_gnn.Graph` input is used as it was built.

    Attributes:
        solver (FixedGrid or Adaptive): the solver settings.
        adjoint (Adjoint or None): the adjoint settings (``None``: direct backprop); defaults the adjoint
            leaves open (its method, tolerances) come from the solver at each solve.

    Raises:
        ValueError: on bad sizes or rates, an energy of another width, a schedule over another interval, or
            solver settings that do not fit together.

    Shapes:
        - **input:** node features ``(|V|, p)`` and a :class:`~continuous_gnn.Graph`, an ``edge_index``
          ``(2, |E|)`` (with optional ``edge_weight`` ``(|E|,)``), a sparse ``adj_t`` ``(|V|, |V|)``, or a PyG
          ``Data`` alone
        - **output:** logits ``(|V|, k)``
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, energy: Energy | EnergySchedule, *,
                 t_end: float = 1.0, solver: Solver | Mapping[str, Any] | None = None,
                 adjoint: Adjoint | bool | None = None,
                 activation: str | Callable[[Tensor], Tensor] | None = None, input_dropout: float = 0.0,
                 dropout: float = 0.0, encoder: str = "linear", decoder: str = "linear",
                 detach_source: bool = False, normalize_field: bool = False, self_loops: bool = True) -> None:
        super().__init__()
        check_bool(detach_source, "detach_source")
        check_bool(self_loops, "self_loops")
        check_bool(normalize_field, "normalize_field")
        for name, p in (("input_dropout", input_dropout), ("dropout", dropout)):
            if isinstance(p, bool) or not isinstance(p, numbers.Real):
                raise TypeError(f"{name} must be a number in [0, 1), got {type(p).__name__} {p!r}")
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {p}")
        input_dropout, dropout = float(input_dropout), float(dropout)
        for name, value, choices in (("encoder", encoder, ENCODERS), ("decoder", decoder, DECODERS)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose " + " or ".join(map(repr, choices)))
        in_channels, hidden, out_channels = (check_positive_int(size, name) for name, size in (
            ("in_channels", in_channels), ("hidden", hidden), ("out_channels", out_channels)))
        t_end = check_positive_finite(t_end, "t_end")
        if isinstance(energy, Field):
            if activation is not None or normalize_field:
                raise ValueError("activation and normalize_field apply to an energy's gradient flow; a Field "
                                 "given as the energy is used as it is")
            flow = energy
        else:
            flow = GradientFlow(energy, activation, normalize=normalize_field)
        if flow.channels is not None and flow.channels != hidden:
            raise ValueError(f"the energy has {flow.channels} channels but hidden={hidden}; "
                             f"build it with {hidden} channels")
        if isinstance(energy, EnergySchedule) and energy.t_end != float(t_end):
            raise ValueError(f"the EnergySchedule spans [0, {energy.t_end}] but t_end={t_end}; give both the same "
                             "T, or the pieces would not match the integration interval")
        self.solver, self.adjoint = layer_settings(solver, adjoint)
        self.in_channels = in_channels
        self.encoder = nn.Linear(in_channels, hidden) if encoder == "linear" else ResidualMLPEncoder(in_channels, hidden, dropout=dropout)
        self.flow = flow
        self.decoder = nn.Linear(hidden, out_channels)
        self.decoder_hidden = nn.Linear(hidden, hidden) if decoder == "mlp" else None
        self.t_end = float(t_end)
        self.input_dropout = input_dropout
        self.dropout = dropout
        self.detach_source = detach_source
        self.self_loops = self_loops
        self._graphs = GraphCache()

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (encoder, flow and decoder), as PyG models do, and forget the cached graph."""
        for module in (self.encoder, self.flow, self.decoder, self.decoder_hidden):
            if module is not None:
                _reset(module)
        self._graphs.clear()

    @property
    def energy(self) -> Energy | EnergySchedule | None:
        """The energy of the flow (``None`` for a field without one, such as GRAND-nl)."""
        return self.flow.energy if isinstance(self.flow, (GradientFlow, SecondOrderFlow)) else None

    def graph(self, x: Tensor, adj: Any, edge_weight: Tensor | None = None) -> Graph:
        """The :class:`~continuous_gnn.Graph` of an adjacency input (a ``Graph``, an ``edge_index``, a sparse
        ``adj_t``, an ``EdgeIndex`` or a ``SparseTensor``), built once per input and then reused."""
        return self._graphs.get(adj, x.size(0), edge_weight, self.decoder.weight.dtype, self_loops=self.self_loops)

    def encode(self, x: Tensor) -> Tensor:
        r""":math:`F(0) = \psi_{EN}(\operatorname{dropout}(X))`; the dropout of sparse features drops their stored
        entries (:func:`~continuous_gnn.nn.sparse_linear.dropout_stored`)."""
        return self.encoder(dropout_stored(x, self.input_dropout, self.training))

    def decode(self, h: Tensor) -> Tensor:
        r""":math:`\psi_{DE}(\operatorname{dropout}(\operatorname{relu}(F)))`, with the hidden layer of
        ``decoder="mlp"`` between the ReLU and the dropout."""
        h = F.relu(h)
        if self.decoder_hidden is not None:
            h = F.relu(self.decoder_hidden(h))
        return self.decoder(F.dropout(h, self.dropout, self.training))

    def solve(self, x: Tensor, graph: Graph | Any, *, t_end: float | None = None,
              solver: Solver | Mapping[str, Any] | None = None,
              adjoint: Adjoint | bool | None = KEEP, save_at: Sequence[float] | None = None,
              integrator: Callable[..., Solution] = integrate) -> tuple[Tensor, Solution]:
        """Encode and integrate: the one path from features to the flow's solution.

        Every argument after ``graph`` overrides the model's own setting for this call only (nothing on the
        model changes), e.g. ``t_end=64.0, save_at=[...]`` to extrapolate a trained model, or
        ``adjoint=Adjoint(seminorm=True)`` to compare gradients.

        Args:
            x (Tensor): node features ``(|V|, p)``, dense or sparse CSR (with a
                :class:`~continuous_gnn.nn.SparseInputLinear` encoder).
            graph (Graph): the graph.
            t_end (float, optional): :math:`T` (default: the model's).
            solver (FixedGrid, Adaptive or dict, optional): the solver, or the keywords of
                :func:`~continuous_gnn.integrate` as a dict, as the constructor takes it (default: the model's).
            adjoint (Adjoint or bool, optional): the adjoint, ``None``/``False`` for direct backprop (default:
                the model's).
            save_at (sequence of float, optional): extra output times, as in :func:`~continuous_gnn.integrate`.
            integrator (callable): called as ``integrator(field, F0, T, solver=..., adjoint=..., save_at=...)``
                and returning a :class:`~continuous_gnn.Solution` (default: :func:`~continuous_gnn.integrate`;
                :func:`~continuous_gnn.regularized_forward` passes one that also integrates the regularisers).

        Returns:
            tuple: :math:`F(0)` and the :class:`~continuous_gnn.Solution` of the flow.
        """
        if isinstance(solver, Mapping):  # read as the constructor reads it, over the model's own adjoint
            keyed = not LAYER_ADJOINT_KEYS.isdisjoint(solver)
            solver, adjoint = layer_settings(solver, adjoint if adjoint is not KEEP else
                                             None if keyed else self.adjoint)
        solver = self.solver if solver is None else solver
        if adjoint is KEEP:
            adjoint = self.adjoint
        solver, adjoint = resolve_settings(solver, adjoint, {})
        self._check_features(x)
        graph = self.graph(x, graph)
        check_adjoint_weights(graph, adjoint, type(self).__name__)
        h0 = self.encode(x)
        t_end = self.t_end if t_end is None else t_end
        flow = self.flow
        bound = flow.bind(graph, h0, source=h0.detach() if self.detach_source else None)
        solution = integrator(bound, flow.initial_state(h0), t_end, solver=solver,
                              adjoint=adjoint, save_at=save_at)
        if type(flow).readout is not Field.readout:
            solution = dataclasses.replace(solution, final=flow.readout(solution.final),
                                           states=flow.readout(solution.states))
        return h0, solution

    def _check_features(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor of node features (num_nodes, {self.in_channels}), got "
                            f"{type(x).__name__}")
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"x must have shape (num_nodes, {self.in_channels}), the model's in_channels; got "
                             f"{tuple(x.shape)}")
        dtype = self.decoder.weight.dtype
        if x.dtype != dtype:
            either = f" or model.to({x.dtype})" if x.is_floating_point() else ""
            raise TypeError(f"x is {x.dtype} but the model's parameters are {dtype}; convert with x.to({dtype}){either}")

    def forward_with_solution(self, x: Tensor, graph: Graph | Any, **overrides: Any) -> tuple[Tensor, Solution]:
        """Logits and the solution of the flow (for its :class:`~continuous_gnn.SolveStats`); ``overrides`` as
        in :meth:`solve`."""
        _, solution = self.solve(x, graph, **overrides)
        return self.decode(solution.final), solution

    def forward(self, x: Tensor | Data, edge_index: Graph | Any = None, edge_weight: Tensor | None = None) -> Tensor:
        """Logits for ``(x, edge_index[, edge_weight])``, ``(x, adj_t)``, ``(x, graph)`` or a PyG ``Data``.

        The second argument is named ``edge_index``, as in PyG's models, and takes any of those adjacency forms
        (a :class:`~continuous_gnn.Graph`, an ``edge_index``, a sparse ``adj_t``, an ``EdgeIndex`` or a
        ``SparseTensor``).

        A ``Data`` gives ``data.x`` and ``data.adj_t`` when it has one (its values are the edge weights), else
        ``data.edge_index`` with ``data.edge_weight``; ``data.edge_attr`` is not read as weights (pass it as
        ``edge_weight`` when it holds them).

        The normalised operator of an adjacency input is built on the first call and reused while the same
        tensors come back (:meth:`graph`).
        """
        if isinstance(x, HeteroData):
            raise TypeError("ContinuousGNN takes a homogeneous graph, not HeteroData; convert it with "
                            "data.to_homogeneous() (its node types need features of one width)")
        if isinstance(x, Data):
            if edge_index is not None or edge_weight is not None:
                raise TypeError("pass either a Data object or (x, edge_index[, edge_weight]), not both")
            if getattr(x, "x", None) is None:
                raise ValueError("the Data object has no node features (data.x); ContinuousGNN(data) needs them")
            # A sparse adj_t carries the edge weights as its values (ToSparseTensor puts them there, and keeps
            # data.edge_weight too with remove_edge_index=False); data.edge_weight belongs to data.edge_index.
            if getattr(x, "adj_t", None) is not None:
                x, edge_index = x.x, x.adj_t
            else:
                x, edge_index, edge_weight = x.x, x.edge_index, getattr(x, "edge_weight", None)
        if edge_index is None:
            raise TypeError("ContinuousGNN needs a graph: model(x, graph), model(x, edge_index) or model(data)")
        self._check_features(x)  # before the graph is built from its row count
        if edge_weight is not None:
            edge_index = self.graph(x, edge_index, edge_weight)
        return self.forward_with_solution(x, edge_index)[0]

    def extra_repr(self) -> str:
        return f"t_end={self.t_end}, solver={self.solver}, adjoint={self.adjoint}"
