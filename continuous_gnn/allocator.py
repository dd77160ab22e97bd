"""Keeping freed memory for reuse: glibc's malloc told, at run time, not to map and unmap large blocks.

On large graphs most intermediates are hundreds of megabytes. glibc's default serves every block above its
mmap threshold with a fresh ``mmap`` and unmaps it on ``free``, so each such tensor page-faults on first touch
and elementwise work runs several times slower than on reused memory (``docs/performance.md``, section f).
:func:`keep_freed_memory` switches that off for the running process with ``mallopt``: every block comes from
the heap, and freed memory stays there for the next tensor. It needs no restart and nothing installed, unlike
the environment settings (``GLIBC_TUNABLES``, a preloaded jemalloc) that must be present when the process
starts. The cost is resident memory: what a peak allocated is kept until the process ends.

The ``continuous-gnn`` commands that train (``train``, ``tune``, ``study``, ``reproduce``, ``suite``) call
:func:`arrange_from_environment` with ``"keep"`` as the default; ``CONTINUOUS_GNN_ALLOCATOR=system`` keeps the
C library's own behaviour, and allocator variables already in the environment are always left to rule.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable, Mapping

__all__ = ["ALLOCATOR_ENV", "ALLOCATOR_VARIABLES", "ALLOCATOR_CHOICES", "keep_freed_memory", "release_freed_memory",
           "arrange_from_environment", "current_allocator"]

#: The environment variable that chooses between ``keep`` and ``system``.
ALLOCATOR_ENV = "CONTINUOUS_GNN_ALLOCATOR"
ALLOCATOR_CHOICES = ("keep", "system")
#: Environment variables that select the C allocator or its behaviour when a process starts; when one is set,
#: the package leaves the allocator alone.
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF", "MALLOC_MMAP_THRESHOLD_",
                       "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely" (a positive int stops at 2 GiB,
#: which a graph of 10⁶ nodes frees at once, so the heap top was handed back and page-faulted again).
_NEVER_TRIM = -1

_kept = False


def _glibc(name: str, argtypes: tuple) -> Callable[..., int] | None:
    """glibc's function ``name`` with its C signature, or ``None`` under another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve every block from its heap and keep freed memory there, for this process.

    Returns:
        bool: ``True`` when glibc accepted both settings; ``False`` on another C library (musl, macOS, Windows),
        where nothing is changed.
    """
    global _kept
    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int))
    if mallopt is None:
        return False
    # No block is mmapped, so large tensors reuse heap pages; freed memory at the top of the heap is never trimmed.
    _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
    return _kept


def release_freed_memory() -> bool:
    """Hand the memory glibc keeps for reuse back to the system now (``malloc_trim``), e.g. after building a large
    graph, whose temporaries would otherwise stay resident, scattered in holes that the solve's larger tensors
    cannot reuse.

    Returns:
        bool: ``True`` when glibc released memory; ``False`` when there was none to release, or on another C
        library, where nothing is done.
    """
    trim = _glibc("malloc_trim", (ctypes.c_size_t,))
    return trim is not None and bool(trim(0))


def arrange_from_environment(default: str = "system", environ: Mapping[str, str] | None = None) -> str:
    """Apply the allocator choice of ``$CONTINUOUS_GNN_ALLOCATOR`` (``default`` when unset); returns what is in
    effect, in words (:func:`current_allocator`).

    Allocator variables already in the environment (:data:`ALLOCATOR_VARIABLES`) win over ``keep``: the
    process was started with the allocator its user chose.

    Raises:
        ValueError: on a value other than ``keep`` or ``system``.
    """
    environ = os.environ if environ is None else environ
    if default not in ALLOCATOR_CHOICES:
        raise ValueError(f"default must be one of {ALLOCATOR_CHOICES}, got {default!r}")
    choice = environ.get(ALLOCATOR_ENV, "").strip().lower() or default
    if choice not in ALLOCATOR_CHOICES:
        raise ValueError(f"{ALLOCATOR_ENV}={choice!r}: set it to 'keep' (reuse freed memory, faster on large graphs) "
                         "or 'system' (the C library's own behaviour)")
    if choice == "keep" and not any(environ.get(key) for key in ALLOCATOR_VARIABLES):
        keep_freed_memory()
    return current_allocator(environ)


def current_allocator(environ: Mapping[str, str] | None = None) -> str:
    """The allocator setting of this process, in words, for records and pages."""
    environ = os.environ if environ is None else environ
    given = [f"{key}={environ[key]}" for key in ALLOCATOR_VARIABLES if environ.get(key)]
    if given:
        return ", ".join(given)
    return "glibc, freed memory kept (mallopt)" if _kept else "system default (no allocator variables set)"
