r"""The package's own cost: ``integrate`` against a hand-written Euler loop, and one field evaluation against the
products it cannot avoid.

Both comparisons use the GRAFF flow :math:`f(X) = -X\Omega + \bar A X W + \beta X(0)` (dense :math:`W` of width
``hidden``) on the community graph of :mod:`~continuous_gnn.benchmarks.graphs`, in this process.

* **Solver overhead**: ``steps`` Euler steps of size 1, forward and backward of :math:`\langle X(T), G\rangle`,
  four ways: the hand-written loop :math:`X \leftarrow X + \bar A (X W) - X\Omega + \beta X(0)` with :math:`W`,
  :math:`\Omega`, :math:`\beta` read once (the baseline); the same loop calling the bound field (so the
  field's own cost is added); torchdiffeq's ``odeint`` stepping the bound field by itself (so torchdiffeq's
  Euler stepping is added); and :func:`~continuous_gnn.integrate` with ``FixedGrid("euler", step_size=1)`` (so
  the package's grid, guards and bookkeeping are added on top of that). All four are checked to give the same
  :math:`X(T)` first.
* **Field against its lower bound**: one field evaluation against the two products every evaluation needs,
  each timed alone: the sparse product :math:`\bar A Y` and the dense :math:`XW`. The lower bound is the sum
  of their medians; the elementwise terms, :math:`W`'s assembly from its parameters and Python are the rest.
  Forward only (under ``torch.no_grad``) and forward + backward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchdiffeq import odeint

from ..energies import GRAFFEnergy
from ..fields import GradientFlow
from ..graph import Graph
from ..ode import FixedGrid, integrate
from .graphs import benchmark_edges
from .timing import Comparison, compare, synchronizer

__all__ = ["OverheadSettings", "SolverOverhead", "FieldBound", "solver_overhead", "field_bound",
           "SOLVER_CONTESTANTS", "FIELD_CONTESTANTS"]

SOLVER_CONTESTANTS = ("hand-written loop", "loop over the bound field", "torchdiffeq odeint", "integrate")
FIELD_CONTESTANTS = ("field evaluation", "sparse product ĀY", "dense product XW")


@dataclass(frozen=True)
class OverheadSettings:
    """What the overhead sections measure (chosen by the command)."""

    sizes: tuple[int, ...]
    degree: float = 10.0
    hidden: int = 64
    steps: int = 4
    repeats: int = 10
    warmup: int = 2
    field_repeats: int = 50  # one evaluation is short and its ratio is read against a target: more rounds

    def __post_init__(self) -> None:
        if (not self.sizes or self.steps < 1 or self.hidden < 1 or self.repeats < 1 or self.field_repeats < 1
                or self.warmup < 0):
            raise ValueError("sizes must be non-empty; steps, hidden, repeats and field_repeats >= 1; warmup >= 0")


@dataclass(frozen=True)
class SolverOverhead:
    r"""The four Euler loops' timings on a ``nodes``-node graph with ``nnz`` entries in :math:`\bar A`."""

    nodes: int
    nnz: int
    comparison: Comparison


@dataclass(frozen=True)
class FieldBound:
    """One field evaluation's timings against its two products, in ``mode`` (forward, or forward + backward)."""

    nodes: int
    nnz: int
    mode: str
    comparison: Comparison

    @property
    def lower_bound(self) -> float:
        """Seconds: the median sparse product plus the median dense product."""
        return self.comparison.median(FIELD_CONTESTANTS[1]) + self.comparison.median(FIELD_CONTESTANTS[2])

    @property
    def ratio(self) -> float:
        """The field's median over :attr:`lower_bound`."""
        return self.comparison.median(FIELD_CONTESTANTS[0]) / self.lower_bound


def _setup(nodes: int, settings: OverheadSettings, device: str, seed: int):
    torch.manual_seed(seed)
    graph = Graph.from_edge_index(benchmark_edges("sbm", nodes, settings.degree, seed).to(device), nodes)
    energy = GRAFFEnergy(settings.hidden).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x0 = torch.randn(nodes, settings.hidden, device=device, generator=generator).requires_grad_()
    upstream = torch.randn(nodes, settings.hidden, device=device, generator=generator)
    return graph, energy, x0, upstream


def _backward_of(x0: torch.Tensor, parameters: list[torch.Tensor], upstream: torch.Tensor,
                 final: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        x0.grad = None
        for parameter in parameters:
            parameter.grad = None
        (final() * upstream).sum().backward()
    return run


def solver_overhead(nodes: int, settings: OverheadSettings, device: str = "cpu", seed: int = 0) -> SolverOverhead:
    """Compare the four Euler loops of the module docstring on a ``nodes``-node graph.

    Raises:
        ValueError: when the four do not give the same :math:`X(T)` (they would not be the same computation).
    """
    graph, energy, x0, upstream = _setup(nodes, settings, device, seed)
    flow = GradientFlow(energy)
    steps = settings.steps
    times = [torch.tensor(float(k), device=device) for k in range(steps)]

    def hand_written() -> torch.Tensor:
        w, omega = energy.W(), energy.Omega.diagonal(x0)
        source = energy.beta * x0
        x = x0
        for _ in range(steps):
            x = x + graph.propagate(x @ w) - x * omega + source
        return x

    def field_loop() -> torch.Tensor:
        bound = flow.bind(graph, x0)
        x = x0
        for t in times:
            x = x + bound(t, x)
        return x

    ends = torch.tensor([0.0, float(steps)], dtype=torch.float64, device=device)

    def torchdiffeq_alone() -> torch.Tensor:
        return odeint(flow.bind(graph, x0), x0, ends, method="euler", options={"step_size": 1.0})[-1]

    def package() -> torch.Tensor:
        return integrate(flow.bind(graph, x0), x0, float(steps), solver=FixedGrid("euler", step_size=1.0)).final

    loops = (hand_written, field_loop, torchdiffeq_alone, package)
    with torch.no_grad():
        energy.beta.fill_(0.5)  # β starts at 0; a non-zero β lets the check see the source term
        finals = [fn().detach() for fn in loops]
    for name, final in zip(SOLVER_CONTESTANTS[1:], finals[1:]):
        if not torch.allclose(final, finals[0], rtol=1e-4, atol=1e-4):
            raise ValueError(f"{name} and the hand-written loop disagree on {nodes} nodes")
    parameters = list(energy.parameters())
    contestants = {name: _backward_of(x0, parameters, upstream, fn)
                   for name, fn in zip(SOLVER_CONTESTANTS, loops)}
    comparison = compare(contestants, repeats=settings.repeats, warmup=settings.warmup,
                         synchronize=synchronizer(device))
    return SolverOverhead(nodes, int(graph.edge_index.size(1)), comparison)


def field_bound(nodes: int, settings: OverheadSettings, device: str = "cpu", seed: int = 0) -> list[FieldBound]:
    """One field evaluation against its sparse and dense products, forward only and forward + backward."""
    graph, energy, x0, upstream = _setup(nodes, settings, device, seed)
    bound = GradientFlow(energy).bind(graph, x0.detach())  # as in the products it is timed against: no X(0) gradient
    t = torch.zeros((), device=device)
    x = x0.detach().clone().requires_grad_()
    mixed = (x @ energy.W()).detach().requires_grad_()
    w = energy.W().detach().requires_grad_()
    parameters = [x, mixed, w, *energy.parameters()]

    def backward(output: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            for tensor in parameters:
                tensor.grad = None
            output().backward(upstream)
        return run

    def forward(output: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                output()
        return run

    outputs = (lambda: bound(t, x), lambda: graph.propagate(mixed), lambda: x @ w)
    results = []
    for mode, wrap in (("forward", forward), ("forward + backward", backward)):
        comparison = compare({name: wrap(fn) for name, fn in zip(FIELD_CONTESTANTS, outputs)},
                             repeats=settings.field_repeats, warmup=settings.warmup,
                             synchronize=synchronizer(device))
        results.append(FieldBound(nodes, int(graph.edge_index.size(1)), mode, comparison))
    return results
