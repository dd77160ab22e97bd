"""Wall-time comparisons: contestants run interleaved in one process, medians of repeats, ratios to a baseline.

Every timed comparison of ``continuous-gnn bench`` goes through :func:`compare`. Running the contestants in
rounds (each round runs every contestant once, in an order that rotates from round to round) exposes them to the
same drift of a shared machine, which back-to-back blocks of repeats would not; the median of each contestant's
repeats resists the occasional stall, and ratios are taken between medians of the same session.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

__all__ = ["Timing", "Comparison", "compare", "synchronizer"]


@dataclass(frozen=True)
class Timing:
    """The repeats of one contestant, in seconds, in the order they ran."""

    name: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)


@dataclass(frozen=True)
class Comparison:
    """The timings of one comparison; the first contestant is the baseline of :meth:`ratio`."""

    timings: tuple[Timing, ...]
    #: The order in which the contestants ran, warm-up rounds included (for checking the interleaving).
    order: tuple[str, ...] = ()

    @property
    def baseline(self) -> str:
        return self.timings[0].name

    def __getitem__(self, name: str) -> Timing:
        for timing in self.timings:
            if timing.name == name:
                return timing
        raise KeyError(f"no contestant {name!r}; the contestants are {[t.name for t in self.timings]}")

    def median(self, name: str) -> float:
        return self[name].median

    def ratio(self, name: str, baseline: str | None = None) -> float:
        """Median of ``name`` over the median of ``baseline`` (default: the first contestant)."""
        return self[name].median / self[baseline or self.baseline].median


def synchronizer(device: torch.device | str) -> Callable[[], None] | None:
    """What waits for queued work before a clock is read: ``torch.cuda.synchronize`` on CUDA, nothing on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


def compare(contestants: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1,
            synchronize: Callable[[], None] | None = None,
            clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Time each contestant ``repeats`` times, interleaved, after ``warmup`` untimed rounds.

    Round ``r`` runs every contestant once, starting with contestant ``r mod k`` of the ``k`` given and going
    round in their order, so no contestant always runs first or always follows the same one. Each run is timed
    alone, between two calls of ``synchronize`` (see :func:`synchronizer`).

    Args:
        contestants: names and zero-argument callables; the first is the baseline of the ratios.
        repeats (int): timed rounds, at least 1.
        warmup (int): untimed rounds first (lazy initialisation, allocator growth), at least 0 (default: 1).
        synchronize (callable, optional): called before each clock reading (default: none).
        clock (callable): seconds (default: :func:`time.perf_counter`).

    Raises:
        ValueError: without contestants, or with ``repeats < 1`` or ``warmup < 0``.
    """
    names = list(contestants)
    if not names:
        raise ValueError("compare() needs at least one contestant")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    wait = synchronize or (lambda: None)
    samples: dict[str, list[float]] = {name: [] for name in names}
    order: list[str] = []
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wait()
            started = clock()
            contestants[name]()
            wait()
            elapsed = clock() - started
            order.append(name)
            if round_index >= warmup:
                samples[name].append(elapsed)
    return Comparison(tuple(Timing(name, tuple(samples[name])) for name in names), tuple(order))
