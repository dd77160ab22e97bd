r"""What a node order for locality (:mod:`continuous_gnn.node_order`) saves on the benchmark's community graph.

The community graph of :mod:`~continuous_gnn.benchmarks.graphs` numbers its nodes at random, as real data files
do. For each size, one forward + backward evaluation of the GRAFF field :math:`f(X) = -X\Omega + \bar A X W +
\beta X(0)` (dense :math:`W`, width ``hidden``) is timed on the graph as numbered (the baseline) and relabelled
by each order, with the same features moved with their nodes. The contestants run interleaved, each size in a
process of its own (:mod:`~continuous_gnn.benchmarks.isolated`), so that no earlier measurement's heap is in the
way. Each order's build time (from the edge list, once) is reported beside it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch

from ..energies import GRAFFEnergy
from ..fields import GradientFlow
from ..graph import Graph
from ..node_order import NODE_ORDERS, NodeOrder, locality_order
from .allocators import child_environment
from .graphs import benchmark_edges
from .isolated import run_isolated
from .timing import Comparison, Timing, compare, synchronizer

__all__ = ["LocalitySettings", "LocalityRow", "BASELINE", "ORDER_PACKAGES", "available_orders", "locality_comparison",
           "locality_point", "locality_rows"]

#: The contestant of the graph as numbered.
BASELINE = "as numbered (shuffled)"
#: The optional package each order needs (the orders not named need nothing beyond the requirements).
ORDER_PACKAGES = {"metis": "pymetis"}


def available_orders() -> tuple[str, ...]:
    """The orders of :data:`~continuous_gnn.node_order.NODE_ORDERS` whose package is installed here; the others are
    left out of the comparison instead of failing every size with them."""
    return tuple(method for method in NODE_ORDERS
                 if method not in ORDER_PACKAGES or importlib.util.find_spec(ORDER_PACKAGES[method]) is not None)


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
    comparison: Comparison | None
    failed: str | None = None


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
    :func:`available_orders`, in this process."""
    from ..allocator import release_freed_memory

    torch.manual_seed(seed)
    edges = benchmark_edges("sbm", nodes, settings.degree, seed)
    orders = {BASELINE: NodeOrder(torch.arange(nodes))}
    build_seconds = {}
    for method in available_orders():
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
    release_freed_memory()  # the builds' temporaries, which a kept heap would hold in holes between the tensors
    comparison = compare(contestants, repeats=settings.repeats, warmup=settings.warmup,
                         synchronize=synchronizer(device))
    nnz = nodes + int(edges.size(1))  # Ā holds the self-loops too
    return LocalityRow(nodes, nnz, build_seconds, comparison)


def locality_point(nodes: int, degree: float, hidden: int, repeats: int, warmup: int, device: str, threads: int,
                   seed: int = 0) -> dict:
    """One size of :func:`locality_rows`, in the child process: :func:`locality_comparison` as a JSON-able dict."""
    torch.set_num_threads(threads)
    settings = LocalitySettings((nodes,), degree=degree, hidden=hidden, repeats=repeats, warmup=warmup)
    row = locality_comparison(nodes, settings, device, seed)
    return {"nnz": row.nnz, "build_seconds": row.build_seconds,
            "timings": [{"name": t.name, "samples": list(t.samples)} for t in row.comparison.timings],
            "order": list(row.comparison.order)}


def locality_rows(settings: LocalitySettings, *, device: str, threads: int, environ: Mapping[str, str],
                  timeout: float, progress: Callable[[LocalityRow], None] = lambda row: None) -> list[LocalityRow]:
    """:func:`locality_comparison` for each size of ``settings``, each in a process of its own under ``environ``
    (its allocator included); a size whose process fails is a row with ``failed`` set."""
    rows: list[LocalityRow] = []

    def collect(index: int, result: dict) -> None:
        nodes = settings.sizes[index]
        if result.get("failed"):
            row = LocalityRow(nodes, 0, {}, None, failed=result["failed"])
        else:
            timings = tuple(Timing(t["name"], tuple(t["samples"])) for t in result["timings"])
            row = LocalityRow(nodes, result["nnz"], result["build_seconds"], Comparison(timings, tuple(result["order"])))
        rows.append(row)
        progress(row)

    fields = {key: value for key, value in asdict(settings).items() if key != "sizes"}
    specs = [dict(nodes=nodes, device=device, threads=threads, **fields) for nodes in settings.sizes]
    run_isolated(f"{__name__}:locality_point", specs, env=child_environment(environ, threads=threads), timeout=timeout,
                 on_result=collect)
    return rows
