"""The C memory allocator behind torch's CPU tensors: which one is in use, and the settings the benchmark compares.

On large graphs most intermediates are hundreds of megabytes. glibc's default serves blocks that large with a
fresh ``mmap`` and returns them on ``free``, so every such tensor page-faults on first touch, and elementwise
work runs several times slower than on reused memory. Two settings keep freed memory for reuse instead:
glibc tunables that raise the mmap and trim thresholds out of reach, and jemalloc (preloaded) told to retain
and never decay its dirty pages; both must be in the environment when the process starts. The third,
``CONTINUOUS_GNN_ALLOCATOR=keep``, is what the package's training commands do by default: glibc told the same
at run time with ``mallopt`` (:func:`continuous_gnn.allocator.keep_freed_memory`). The fourth adds transparent huge
pages under large tensors (PyTorch's ``THP_MEM_ALLOC_ENABLE=1``, set when the process starts) to the third.
"""

from __future__ import annotations

import ctypes.util
from collections.abc import Mapping
from dataclasses import dataclass

from ..allocator import ALLOCATOR_ENV, HUGE_PAGES_ENV
from ..allocator import ALLOCATOR_VARIABLES as _START_VARIABLES

__all__ = ["Allocator", "ALLOCATOR_VARIABLES", "GLIBC_DEFAULT", "GLIBC_TUNED", "GLIBC_KEPT", "GLIBC_KEPT_HUGE",
           "GLIBC_TRACKING", "jemalloc",
           "describe",
           "variants", "loaded_allocator", "ISSUE_SECONDS", "ISSUE_SOURCE", "child_environment"]

#: Environment variables that change the allocator or its behaviour: those read when a process starts, PyTorch's
#: huge-page switch, and the package's own choice (read by the measuring processes of
#: :mod:`~continuous_gnn.benchmarks.isolated`).
ALLOCATOR_VARIABLES = (*_START_VARIABLES, HUGE_PAGES_ENV, ALLOCATOR_ENV)


@dataclass(frozen=True)
class Allocator:
    """An allocator setting: a name and the environment variables that select it (all others unset)."""

    name: str
    variables: tuple[tuple[str, str], ...] = ()

    def shell(self) -> str:
        """The setting as shell assignments, e.g. ``GLIBC_TUNABLES=...``, or ``(none)``."""
        return " ".join(f"{key}={value}" for key, value in self.variables) or "(none)"


GLIBC_DEFAULT = Allocator("glibc default")
_NEVER = "4294967295"
GLIBC_TUNED = Allocator("glibc, no mmap/trim", (
    ("GLIBC_TUNABLES", f"glibc.malloc.mmap_threshold={_NEVER}:glibc.malloc.trim_threshold={_NEVER}"),))
#: glibc told at run time to keep freed memory (``mallopt``), as the package's training commands do by default.
GLIBC_KEPT = Allocator("glibc, kept at run time", ((ALLOCATOR_ENV, "keep"),))
#: The same, with PyTorch asking for transparent huge pages under every CPU tensor of 2 MiB and more.
GLIBC_KEPT_HUGE = Allocator("glibc, kept at run time, huge pages", ((HUGE_PAGES_ENV, "1"), (ALLOCATOR_ENV, "keep")))
#: glibc with every block above 64 KiB mapped and unmapped on its own, so that resident memory follows the live
#: tensors: the setting under which a peak of resident memory measures what the work needed.
GLIBC_TRACKING = Allocator("glibc, 64 KiB mmap threshold", (("MALLOC_MMAP_THRESHOLD_", "65536"),))
_JEMALLOC_CONF = "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"


#: Seconds of one forward + backward of the GRAFF model (T = 4) on a 10⁶-node random graph of mean degree 10, on
#: a 2-core CPU, per allocator setting: quoted from the project's performance-and-scale issue, not measured here.
ISSUE_SECONDS = {"glibc default": 17.2, "glibc, no mmap/trim": 6.9, "jemalloc": 5.0}
ISSUE_SOURCE = ("one forward + backward of the GRAFF model with T = 4 on a random graph of 10⁶ nodes and mean degree "
                "10, on a 2-core CPU")


def jemalloc(library: str | None = None) -> Allocator | None:
    """jemalloc preloaded with retained, never-decaying pages; ``None`` when the library is not installed.

    Args:
        library (str, optional): the shared library to preload (default: the system's ``libjemalloc``, found
            with :func:`ctypes.util.find_library`; Debian's package is ``libjemalloc2``).
    """
    library = library or ctypes.util.find_library("jemalloc")
    if not library:
        return None
    return Allocator("jemalloc", (("LD_PRELOAD", library), ("MALLOC_CONF", _JEMALLOC_CONF)))


def variants(jemalloc_library: str | None = None) -> list[Allocator]:
    """The settings the benchmark compares: glibc's default, glibc tuned at start and at run time, the latter
    also with huge pages, and jemalloc where installed."""
    found = jemalloc(jemalloc_library)
    return [GLIBC_DEFAULT, GLIBC_TUNED, GLIBC_KEPT, GLIBC_KEPT_HUGE] + ([found] if found else [])


def describe(environ: Mapping[str, str]) -> str:
    """The allocator setting an environment selects, in words, e.g. ``glibc default`` or ``LD_PRELOAD=...``."""
    given = [f"{key}={environ[key]}" for key in ALLOCATOR_VARIABLES if environ.get(key)]
    return "glibc default (no allocator variables set)" if not given else ", ".join(given)


def child_environment(environ: Mapping[str, str], allocator: Allocator | None = None, *,
                      threads: int | None = None) -> dict[str, str]:
    """A child's environment: ``environ`` with the allocator variables replaced by ``allocator``'s.

    With ``allocator=None`` the allocator variables of ``environ`` pass through unchanged. ``threads`` sets the
    OpenMP/MKL thread counts.
    """
    env = dict(environ)
    if allocator is not None:
        for key in ALLOCATOR_VARIABLES:
            env.pop(key, None)
        env.update(allocator.variables)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def loaded_allocator() -> str:
    """Which malloc this process actually runs: ``jemalloc`` or ``tcmalloc`` when mapped, else ``glibc``."""
    try:
        with open("/proc/self/maps") as handle:
            maps = handle.read()
    except OSError:
        return "unknown"
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if name in maps:
            return name
    return "glibc"
