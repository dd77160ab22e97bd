r"""What a node order for locality (:mod:`continuous_gnn.node_order`) saves on the benchmark's community graph.

The community graph of :mod:`~continuous_gnn.benchmarks.graphs` numbers its nodes at random, as real data files
do. For each size, one forward + backward evaluation of the GRAFF field :math:`f(X) = -X\Omega + \bar A X W +
\beta X(0)` (dense :math:`W`, width ``hidden``) is timed on the graph as numbered (the baseline) and relabelled
by each order, with the same features moved with their nodes; the contestants run interleaved in this process.
Each order's build time (from the edge list, once) is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..energies import GRAFFEnergy
from ..fields import GradientFlow
from ..graph import Graph
from ..node_order import NODE_ORDERS, NodeOrder, locality_order
from .graphs import benchmark_edges
from .timing import Comparison, compare, synchronizer

__all__ = ["LocalitySettings", "LocalityRow", "BASELINE", "locality_comparison"]

#: The contestant of the graph as numbered.
BASELINE = "as numbered (shuffled)"


@dataclass(frozen=True)
class LocalitySettings:
    """What the node-order section measures (chosen by the command)."""

    sizes: tuple[int, ...]
    degree: float = 10.0
    hidden: int = 64
    repeats: int = 5
    warmup: int = 1

    def __post_init__(self) -> None:
        if not self.sizes or self.hidden < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("sizes must be non-empty; hidden and repeats >= 1; warmup >= 0")


@dataclass(frozen=True)
class LocalityRow:
    nodes: int
    nnz: int
    #: seconds to build each order from the edge list
    build_seconds: dict[str, float]
    comparison: Comparison


def _evaluation(edges: torch.Tensor, order: NodeOrder, energy: GRAFFEnergy, x: torch.Tensor, upstream: torch.Tensor,
                device: str) -> Callable[[], None]:
    nodes = order.num_nodes
    graph = Graph.from_edge_index(order.inverse[edges].to(device), nodes)
    features = x[order.order].clone().requires_grad_()
    gradient = upstream[order.order].clone()
    bound = GradientFlow(energy).bind(graph, features.detach())
    t = torch.zeros((), device=device)

    def run() -> None:
        features.grad = None
        for parameter in energy.parameters():
            parameter.grad = None
        bound(t, features).backward(gradient)
    return run


def locality_comparison(nodes: int, settings: LocalitySettings, device: str = "cpu", seed: int = 0) -> LocalityRow:
    """Time the field on the ``nodes``-node community graph as numbered and under each order of
    :data:`~continuous_gnn.node_order.NODE_ORDERS`."""
    torch.manual_seed(seed)
    edges = benchmark_edges("sbm", nodes, settings.degree, seed)
    orders = {BASELINE: NodeOrder(torch.arange(nodes))}
    build_seconds = {}
    for method in NODE_ORDERS:
        began = time.perf_counter()
        orders[method] = locality_order(edges, nodes, method)
        build_seconds[method] = time.perf_counter() - began
    energy = GRAFFEnergy(settings.hidden).to(device)
    with torch.no_grad():
        energy.beta.fill_(0.5)
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(nodes, settings.hidden, device=device, generator=generator)
    upstream = torch.randn(nodes, settings.hidden, device=device, generator=generator)
    contestants = {name: _evaluation(edges, order, energy, x, upstream, device) for name, order in orders.items()}
    comparison = compare(contestants, repeats=settings.repeats, warmup=settings.warmup,
                         synchronize=synchronizer(device))
    nnz = nodes + int(edges.size(1))  # Ā holds the self-loops too
    return LocalityRow(nodes, nnz, build_seconds, comparison)
