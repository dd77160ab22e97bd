r"""Memory and time of direct backprop against the adjoint as the horizon T, and so the number of steps, grows.

Each point runs in a process of its own (:mod:`~continuous_gnn.benchmarks.isolated`) on the community graph of
:mod:`~continuous_gnn.benchmarks.graphs`: the GRAFF-NL flow :math:`\dot X = \tanh(-X\Omega + \bar A X W + \beta X(0))`
(dense :math:`W`; tanh keeps 64 unit steps finite from a random start) is integrated with Euler, step 1, from a
random :math:`X(0)` that requires grad, and :math:`\langle X(T), G\rangle` is differentiated. Direct backprop
stores every step; the adjoint (:class:`~continuous_gnn.Adjoint`) stores none and solves backwards instead.

Peak memory (:func:`~continuous_gnn.benchmarks.peak.measure_peak`) is taken on the second forward + backward,
after one warm-up, in a child whose glibc maps every block above 64 KiB on its own
(:data:`~continuous_gnn.benchmarks.allocators.GLIBC_TRACKING`), so resident memory follows the live tensors. Time
is the median of the forward + backward passes after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .allocators import GLIBC_TRACKING, child_environment
from .isolated import run_isolated

__all__ = ["MemorySettings", "MemoryPoint", "memory_point", "memory_vs_t", "TARGET_RATIO"]

#: The adjoint's goal: its peak at the largest T at most this many times its peak at the smallest.
TARGET_RATIO = 1.2


@dataclass(frozen=True)
class MemorySettings:
    """What the memory section measures (chosen by the command).

    Attributes:
        nodes: size of the community graph.
        horizons: the values of T (Euler steps of size 1), increasing.
        degree: expected mean degree.
        hidden: feature width.
        repeats: timed passes per point after the measured one.
        timeout: seconds per point.
    """

    nodes: int
    horizons: tuple[int, ...] = (4, 8, 16, 32, 64)
    degree: float = 10.0
    hidden: int = 64
    repeats: int = 3
    timeout: float = 600.0

    def __post_init__(self) -> None:
        if len(self.horizons) < 2 or list(self.horizons) != sorted(set(self.horizons)) or self.horizons[0] < 1:
            raise ValueError(f"horizons must be at least two distinct, increasing, positive integers, "
                             f"got {self.horizons}")
        if self.repeats < 1 or self.hidden < 1 or not self.degree > 0 or not self.timeout > 0:
            raise ValueError("repeats and hidden must be >= 1, degree and timeout > 0")


@dataclass(frozen=True)
class MemoryPoint:
    """One (backprop, T) point; ``failed`` says why a point has no numbers."""

    backprop: str
    t_end: int
    failed: str | None = None
    peak_bytes: int = 0
    peak_method: str = ""
    median_s: float = math.nan
    nfe_forward: int = 0
    nfe_backward: int = 0


def memory_point(nodes: int, degree: float, hidden: int, t_end: int, adjoint: bool, repeats: int, device: str,
                 threads: int, seed: int = 0, cache: str | None = None) -> dict:
    """Measure one point (runs in the child process; see the module docstring)."""
    import torch

    from ..energies import GRAFFEnergy
    from ..fields import GradientFlow
    from ..graph import Graph
    from ..ode import Adjoint, FixedGrid, integrate
    from .graphs import benchmark_edges
    from .peak import measure_peak
    from .timing import compare, synchronizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    graph = Graph.from_edge_index(benchmark_edges("sbm", nodes, degree, seed, cache).to(device), nodes)
    flow = GradientFlow(GRAFFEnergy(hidden), "tanh").to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x0 = torch.randn(nodes, hidden, device=device, generator=generator).requires_grad_()
    upstream = torch.randn(nodes, hidden, device=device, generator=generator)
    solver = FixedGrid("euler", step_size=1.0)
    stats = {}

    def step() -> None:
        x0.grad = None
        for parameter in flow.parameters():
            parameter.grad = None
        solution = integrate(flow.bind(graph, x0), x0, float(t_end), solver=solver,
                             adjoint=Adjoint() if adjoint else None)
        (solution.final * upstream).sum().backward()
        stats.update(forward=solution.stats.nfe_forward, backward=solution.stats.nfe_backward)

    step()
    _, peak = measure_peak(step, device)
    comparison = compare({"step": step}, repeats=repeats, warmup=0, synchronize=synchronizer(device))
    return {"peak_bytes": peak.bytes, "peak_method": peak.method, "median_s": comparison.median("step"),
            "nfe_forward": stats["forward"], "nfe_backward": stats["backward"]}


def memory_vs_t(settings: MemorySettings, *, device: str, threads: int, environ: Mapping[str, str],
                cache_dir: str | None = None, progress: Callable[[str], None] = lambda line: None) -> list[MemoryPoint]:
    """Every (direct/adjoint, T) point, each in a process of its own; direct and adjoint alternate at each T."""
    cache = str(Path(cache_dir) / f"sbm-{settings.nodes}-{settings.degree:g}.pt") if cache_dir else None
    env = child_environment(environ, GLIBC_TRACKING, threads=threads)
    wanted = [(backprop, t_end) for t_end in settings.horizons for backprop in ("direct", "adjoint")]
    specs = [dict(nodes=settings.nodes, degree=settings.degree, hidden=settings.hidden, t_end=t_end,
                  adjoint=backprop == "adjoint", repeats=settings.repeats, device=device, threads=threads, cache=cache)
             for backprop, t_end in wanted]
    points: list[MemoryPoint] = []

    def collect(index: int, result: dict) -> None:
        result.pop("elapsed_s", None)
        point = MemoryPoint(*wanted[index], **result)
        points.append(point)
        progress(f"{len(points)}/{len(wanted)} {point.backprop} T={point.t_end}: " + (
            f"FAILED {point.failed}" if point.failed else
            f"peak {point.peak_bytes / 2**20:.1f} MiB, {1000 * point.median_s:.0f} ms"))

    run_isolated(f"{__name__}:memory_point", specs, env=env, timeout=settings.timeout, on_result=collect)
    return points
