"""Keeping freed memory for reuse: glibc's malloc told, at run time, not to map and unmap large blocks.

On large graphs most intermediates are hundreds of megabytes. glibc's default serves every block above its
mmap threshold with a fresh ``mmap`` and unmaps it on ``free``, so each such tensor page-faults on first touch
and elementwise work runs several times slower than on reused memory (``docs/performance.md``, section f).
:func:`keep_freed_memory` switches that off for the running process with ``mallopt``: every block comes from
the heap, and freed memory stays there for the next tensor. It needs no restart and nothing installed, unlike
the environment settings (``GLIBC_TUNABLES``, a preloaded jemalloc) that must be present when the process
starts. The cost is resident memory: what a peak allocated is kept until the process ends.

Huge pages are a setting for the start of the process: ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch's own variable)
makes PyTorch ask the kernel for transparent huge pages under every CPU tensor of 2 MiB and more. A sparse
product reads the rows of a feature matrix of gigabytes in random order; with 4 KiB pages most of those reads
also miss the TLB, with 2 MiB pages far fewer do, and a new tensor takes one page fault per 2 MiB instead of 512
(``docs/performance.md``, section f). PyTorch reads the variable once, at its first CPU allocation, and importing
this package already allocates, so the package cannot switch it on for a running process;
:func:`huge_pages_in_effect` says whether it applies.

The ``continuous-gnn`` commands that train (``train``, ``tune``, ``study``, ``reproduce``, ``suite``) call
:func:`arrange_from_environment` with ``"keep"`` as the default; ``CONTINUOUS_GNN_ALLOCATOR=system`` keeps the
C library's own behaviour, and allocator variables already in the environment are always left to rule.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["ALLOCATOR_ENV", "ALLOCATOR_VARIABLES", "ALLOCATOR_CHOICES", "HUGE_PAGES_ENV", "keep_freed_memory",
           "release_freed_memory", "huge_pages_in_effect", "arrange_from_environment", "current_allocator"]

#: The environment variable that chooses between ``keep`` and ``system``.
ALLOCATOR_ENV = "CONTINUOUS_GNN_ALLOCATOR"
#: The values of :data:`ALLOCATOR_ENV`: keep freed memory for reuse, or the C library's own behaviour.
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

#: PyTorch's switch for transparent huge pages under CPU tensors of 2 MiB and more, read at its first allocation.
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"
#: The smallest CPU tensor PyTorch asks huge pages for, in bytes (c10's ``alloc_cpu``).
HUGE_PAGE_BYTES = 2 * 1024 * 1024
_KERNEL_HUGE_PAGES = "/sys/kernel/mm/transparent_hugepage/enabled"

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


def _advised_huge(address: int, smaps: str) -> bool:
    """Whether the mapping of ``/proc/<pid>/smaps`` text ``smaps`` that holds ``address`` is advised to use huge
    pages (``hg`` among its ``VmFlags``)."""
    inside = False
    for line in smaps.splitlines():
        head = line.split(maxsplit=1)[0] if line else ""
        if "-" in head and not head.endswith(":"):
            start, _, end = head.partition("-")
            try:
                inside = int(start, 16) <= address < int(end, 16)
            except ValueError:
                inside = False
        elif inside and head == "VmFlags:":
            return "hg" in line.split()[1:]
    return False


def huge_pages_in_effect() -> bool:
    """Whether PyTorch backs this process's large CPU tensors with transparent huge pages.

    It allocates one tensor of 2 MiB and reads, from ``/proc/self/smaps``, whether PyTorch advised the kernel to
    use huge pages for it: ``THP_MEM_ALLOC_ENABLE=1`` was in the environment before PyTorch's first allocation.
    The kernel must offer them: ``False`` where ``/sys/kernel/mm/transparent_hugepage/enabled`` says
    ``[never]``.

    Returns:
        bool: ``False`` also where ``/proc`` cannot be read (not Linux).
    """
    import torch

    try:
        if "[never]" in Path(_KERNEL_HUGE_PAGES).read_text():
            return False
    except OSError:
        return False
    probe = torch.empty(HUGE_PAGE_BYTES, dtype=torch.uint8)
    try:
        with open("/proc/self/smaps") as handle:
            smaps = handle.read()
    except OSError:
        return False
    return _advised_huge(probe.data_ptr(), smaps)


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
    words = ", ".join(given) if given else (
        "glibc, freed memory kept (mallopt)" if _kept else "system default (no allocator variables set)")
    wanted = environ.get(HUGE_PAGES_ENV, "").strip().lower() not in ("", "0", "false", "off")
    if wanted:
        words += (", huge pages for tensors of 2 MiB and more" if huge_pages_in_effect() else
                  f", {HUGE_PAGES_ENV}={environ[HUGE_PAGES_ENV]} without effect (set after PyTorch's first "
                  "allocation, or no huge pages from the kernel)")
    return words
