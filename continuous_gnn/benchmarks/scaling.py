r"""How one field evaluation scales with the graph, and how much the allocator changes it.

Each point runs in a process of its own (:mod:`~continuous_gnn.benchmarks.isolated`) on a synthetic graph
(:mod:`~continuous_gnn.benchmarks.graphs`): one evaluation of the GRAFF gradient-flow field
:math:`f(X) = -X\Omega + \bar A X W + \beta X(0)` (dense :math:`W`, width ``hidden``), timed alone (forward, under
``torch.no_grad``) and, on graphs of at most ``backward_max_nodes`` nodes, followed by its backward pass
(gradients for :math:`X` and the parameters). The backward pass holds several more ``N × hidden`` tensors at once,
so the largest graphs are measured forward only. The point's peak memory is the extra memory of the first
evaluation of the largest pass it runs (:func:`~continuous_gnn.benchmarks.peak.measure_peak`, reset before it, so
memory an allocator keeps from it is counted); its times are medians of the evaluations after it and one
warm-up round. A scaling exponent is the least-squares slope of :math:`\log t` against
:math:`\log \operatorname{nnz}(\bar A)`, fitted for each pass over the points that ran it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .allocators import Allocator, child_environment
from .graphs import KINDS
from .isolated import run_isolated

__all__ = ["ScalingSettings", "ScalingPoint", "PASSES", "TARGET_EXPONENT", "TARGET_KINDS", "MAX_REPEATS",
           "fit_exponent", "fitted_points", "scaling_point", "measure_points", "scaling", "allocator_comparison"]

#: The largest scaling exponent the project aims at from 10⁵ nodes up, on the community graph (``"sbm"``);
#: ``"uniform"``, the worst case, has no target.
TARGET_EXPONENT = 1.1
TARGET_KINDS = ("sbm",)
#: The most timed evaluations of one point (see ``ScalingSettings.min_seconds``).
MAX_REPEATS = 100


def fit_exponent(sizes: list[float], times: list[float]) -> float:
    r"""The least-squares slope :math:`b` of :math:`\log t = a + b \log n` over the given points.

    Raises:
        ValueError: with fewer than two distinct sizes, or a size or time that is not positive.
    """
    if len(sizes) != len(times):
        raise ValueError(f"sizes and times must have the same length, got {len(sizes)} and {len(times)}")
    if any(not (value > 0 and math.isfinite(value)) for value in [*sizes, *times]):
        raise ValueError("sizes and times must be positive and finite for a log-log fit")
    if len(set(sizes)) < 2:
        raise ValueError(f"a slope needs at least two distinct sizes, got {sorted(set(sizes))}")
    xs, ys = [math.log(s) for s in sizes], [math.log(t) for t in times]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)


@dataclass(frozen=True)
class ScalingSettings:
    """What the scaling section measures (chosen by the command).

    Attributes:
        sizes: node counts, increasing.
        kinds: graph kinds (``"sbm"``, ``"uniform"``).
        degree: expected mean degree.
        hidden: feature width.
        repeats: timed evaluations per point, at least, after the first (untimed, memory-measured) one and one
            untimed warm-up round.
        min_seconds: a point's timed evaluations last at least about this long: a graph whose first evaluation
            takes ``t`` seconds is timed ``ceil(min_seconds / t)`` times when that is more than ``repeats`` (at
            most :data:`MAX_REPEATS`), so that the medians of small graphs, whose evaluations take milliseconds,
            are not a few samples at the mercy of one stall.
        fit_from: the smallest size the exponent fit uses.
        backward_max_nodes: the largest graph whose points also run the backward pass.
        timeout: seconds per point.
    """

    sizes: tuple[int, ...]
    kinds: tuple[str, ...] = KINDS
    degree: float = 10.0
    hidden: int = 64
    repeats: int = 3
    min_seconds: float = 2.0
    fit_from: int = 100_000
    backward_max_nodes: int = 1_000_000
    timeout: float = 900.0

    def __post_init__(self) -> None:
        if not self.sizes or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"sizes must be distinct and increasing, got {self.sizes}")
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty selection of {KINDS}, got {self.kinds}")
        if self.repeats < 1 or self.hidden < 1 or not self.degree > 0 or not self.timeout > 0:
            raise ValueError("repeats and hidden must be >= 1, degree and timeout > 0")
        if not 0 <= self.min_seconds < math.inf:
            raise ValueError(f"min_seconds must be finite and >= 0, got {self.min_seconds}")
        if self.backward_max_nodes < self.sizes[0]:
            raise ValueError(f"backward_max_nodes={self.backward_max_nodes} is below the smallest size "
                             f"{self.sizes[0]}: no point would measure the backward pass")


@dataclass(frozen=True)
class ScalingPoint:
    """One measured point; ``failed`` says why a point has no numbers.

    ``forward_s`` is the median forward evaluation; ``median_s`` the median forward + backward, ``nan`` on a point
    measured forward only; ``timed`` how many evaluations of each pass were timed (``ScalingSettings.min_seconds``).
    """

    kind: str
    nodes: int
    allocator: str
    failed: str | None = None
    edges: int = 0
    nnz: int = 0
    graph_s: float = 0.0
    forward_s: float = math.nan
    median_s: float = math.nan
    samples: tuple[float, ...] = ()
    timed: int = 0
    peak_bytes: int = 0
    peak_method: str = ""
    process_peak_bytes: int = 0
    loaded: str = ""


#: The timed passes of a point, and the :class:`ScalingPoint` field holding each one's median.
PASSES: dict[str, str] = {"forward + backward": "median_s", "forward": "forward_s"}


def scaling_point(kind: str, nodes: int, degree: float, hidden: int, repeats: int, device: str, threads: int,
                  seed: int = 0, cache: str | None = None, backward: bool = True, min_seconds: float = 0.0) -> dict:
    """Measure one point (runs in the child process; see the module docstring); ``backward=False`` times the
    forward pass only; ``min_seconds`` as ``ScalingSettings.min_seconds``."""
    import torch

    from ..allocator import release_freed_memory
    from ..energies import GRAFFEnergy
    from ..fields import GradientFlow
    from ..graph import Graph
    from .allocators import loaded_allocator
    from .graphs import benchmark_edges
    from .peak import measure_peak, resident_bytes
    from .timing import compare, synchronizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    sync = synchronizer(device) or (lambda: None)
    clock = time.perf_counter()
    edges = benchmark_edges(kind, nodes, degree, seed, cache)
    release_freed_memory()  # the generator's temporaries, before the graph's own build needs room
    edge_count = int(edges.size(1))
    graph = Graph.from_edge_index(edges.to(device), nodes)
    sync()
    graph_s = time.perf_counter() - clock
    flow = GradientFlow(GRAFFEnergy(hidden)).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x0 = torch.randn(nodes, hidden, device=device, generator=generator)
    del edges  # the graph holds its own copy; at 10⁷ nodes the list of edges alone is 1.6 GB
    # Building the graph leaves gigabytes of temporaries that a kept heap holds in holes too small for the
    # evaluation's tensors; handing them back first lets a 10⁷-node evaluation fit (and is what a user should do).
    release_freed_memory()
    bound = flow.bind(graph, x0)
    t = torch.zeros((), device=device)

    def forward() -> None:
        with torch.no_grad():
            bound(t, x0)

    if backward:
        x = x0.clone().requires_grad_()
        upstream = torch.randn(nodes, hidden, device=device, generator=generator)

        def forward_backward() -> None:
            x.grad = None
            for parameter in flow.parameters():
                parameter.grad = None
            bound(t, x).backward(upstream)

        contestants = {"forward + backward": forward_backward, "forward": forward}
    else:
        contestants = {"forward": forward}
    largest = next(iter(contestants.values()))

    def timed_largest() -> float:
        began = time.perf_counter()
        largest()
        sync()
        return time.perf_counter() - began

    first_s, peak = measure_peak(timed_largest, device)
    rounds = max(repeats, min(MAX_REPEATS, math.ceil(min_seconds / first_s)))
    # One untimed round after the measured first evaluation: on the largest graphs one of the next evaluations
    # or two has run about twice as long as the rest, which a median of three cannot outvote.
    comparison = compare(contestants, repeats=rounds, warmup=1, synchronize=synchronizer(device))
    status = resident_bytes()
    process_peak = (torch.cuda.max_memory_allocated(device) if torch.device(device).type == "cuda"
                    else status.get("VmHWM", 0))
    timed = "forward + backward" if backward else "forward"
    return {"edges": edge_count, "nnz": int(graph.edge_index.size(1)), "graph_s": graph_s,
            "forward_s": comparison.median("forward"),
            "median_s": comparison.median("forward + backward") if backward else math.nan,
            "samples": list(comparison[timed].samples), "timed": rounds, "peak_bytes": peak.bytes, "peak_method": peak.method,
            "process_peak_bytes": int(process_peak), "loaded": loaded_allocator()}


def _spec(kind: str, nodes: int, settings: ScalingSettings, device: str, threads: int,
          cache_dir: str | None) -> dict:
    cache = str(Path(cache_dir) / f"{kind}-{nodes}-{settings.degree:g}.pt") if cache_dir else None
    return dict(kind=kind, nodes=nodes, degree=settings.degree, hidden=settings.hidden, repeats=settings.repeats,
                device=device, threads=threads, cache=cache, backward=nodes <= settings.backward_max_nodes,
                min_seconds=settings.min_seconds)


def measure_points(points: list[tuple[str, int]], settings: ScalingSettings, *, device: str, threads: int,
                   environ: Mapping[str, str], allocator: Allocator | None, cache_dir: str | None = None,
                   on_point: Callable[[ScalingPoint], None] = lambda point: None) -> list[ScalingPoint]:
    """The (kind, nodes) points, each in its own process, under ``environ`` with ``allocator``'s variables
    (``None``: ``environ``'s own)."""
    label = allocator.name if allocator is not None else "as configured"
    measured: list[ScalingPoint] = []

    def collect(index: int, result: dict) -> None:
        kind, nodes = points[index]
        result.pop("elapsed_s", None)
        if result.get("failed"):
            point = ScalingPoint(kind, nodes, label, failed=result["failed"])
        else:
            point = ScalingPoint(kind, nodes, label, **{**result, "samples": tuple(result["samples"])})
        measured.append(point)
        on_point(point)

    run_isolated(f"{__name__}:scaling_point", [_spec(k, n, settings, device, threads, cache_dir) for k, n in points],
                 env=child_environment(environ, allocator, threads=threads), timeout=settings.timeout,
                 on_result=collect)
    return measured


def scaling(settings: ScalingSettings, *, device: str, threads: int, environ: Mapping[str, str],
            cache_dir: str | None = None,
            progress: Callable[[str], None] = lambda line: None
            ) -> tuple[list[ScalingPoint], dict[str, dict[str, float | None]]]:
    """Every (kind, size) point under ``environ``'s allocator, and the fitted exponents of each kind: one per pass
    (:data:`PASSES`).

    An exponent is ``None`` when fewer than two of the kind's points at or above ``fit_from`` measured that pass.
    """
    wanted = [(kind, nodes) for kind in settings.kinds for nodes in settings.sizes]
    count = iter(range(1, len(wanted) + 1))
    points = measure_points(wanted, settings, device=device, threads=threads, environ=environ, allocator=None,
                            cache_dir=cache_dir, on_point=lambda point: progress(
                                f"{next(count)}/{len(wanted)} {point.kind} {point.nodes} nodes: " + (
                                    f"FAILED {point.failed}" if point.failed else
                                    f"{_times(point)}, peak {point.peak_bytes / 2**20:.0f} MiB")))
    exponents: dict[str, dict[str, float | None]] = {}
    for kind in settings.kinds:
        exponents[kind] = {}
        for name, field in PASSES.items():
            fitted = fitted_points(points, kind, settings.fit_from, name)
            exponents[kind][name] = (fit_exponent([p.nnz for p in fitted], [getattr(p, field) for p in fitted])
                                     if len({p.nnz for p in fitted}) >= 2 else None)
    return points, exponents


def fitted_points(points: list[ScalingPoint], kind: str, fit_from: int, name: str) -> list[ScalingPoint]:
    """The points of ``kind`` that the exponent of pass ``name`` is fitted over."""
    return [p for p in points if p.kind == kind and not p.failed and p.nodes >= fit_from
            and math.isfinite(getattr(p, PASSES[name]))]


def _times(point: ScalingPoint) -> str:
    passes = [f"{name} {1000 * getattr(point, field):.1f} ms" for name, field in PASSES.items()
              if math.isfinite(getattr(point, field))]
    return ", ".join(passes)


def allocator_comparison(settings: ScalingSettings, allocators: list[Allocator], *, nodes: int, kind: str,
                         device: str, threads: int, environ: Mapping[str, str], cache_dir: str | None = None,
                         progress: Callable[[str], None] = lambda line: None) -> list[ScalingPoint]:
    """One point per allocator setting, on the same graph (the first setting is the ratios' baseline)."""
    points = []
    for i, allocator in enumerate(allocators, 1):
        [point] = measure_points([(kind, nodes)], settings, device=device, threads=threads, environ=environ,
                                 allocator=allocator, cache_dir=cache_dir)
        points.append(point)
        progress(f"{i}/{len(allocators)} {allocator.name}: " + (
            f"FAILED {point.failed}" if point.failed else
            f"{1000 * point.median_s:.1f} ms, peak {point.peak_bytes / 2**20:.0f} MiB ({point.loaded} loaded)"))
    return points
