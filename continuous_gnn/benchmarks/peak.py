"""Peak memory of one piece of work: resident memory of this process on CPU, allocated memory on CUDA.

CPU method: the kernel's peak-RSS counter of the process is reset (``/proc/self/clear_refs`` ← 5 resets
``VmHWM``), the current RSS (``VmRSS``) is read, the work runs, and the peak is ``VmHWM - VmRSS_before``: the
extra resident memory the work needed. Where the counter cannot be reset (not Linux, or no permission), the
growth of ``ru_maxrss`` is used instead, which is only a lower bound once the process has peaked higher before.
What RSS means depends on the allocator: glibc returns a freed block larger than its mmap threshold to the
kernel, so with ``MALLOC_MMAP_THRESHOLD_`` pinned low RSS follows the live tensors; an allocator that keeps freed
memory (jemalloc with ``retain``, glibc with a huge threshold) reports what the process really holds.

CUDA method: ``torch.cuda.reset_peak_memory_stats``, then ``max_memory_allocated`` after the work minus
``memory_allocated`` before it (bytes handed out by the caching allocator, not what it reserved).
"""

from __future__ import annotations

import gc
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Peak", "measure_peak", "resident_bytes", "reset_peak", "METHODS"]

#: The peak-memory methods, by the name :class:`Peak` records.
METHODS = {
    "VmHWM reset": "extra resident memory: VmHWM after the work minus VmRSS before it, VmHWM reset first",
    "ru_maxrss delta": "growth of ru_maxrss during the work (a lower bound: the VmHWM counter could not be reset)",
    "cuda max_memory_allocated": "torch.cuda.max_memory_allocated after the work minus memory_allocated before",
}


@dataclass(frozen=True)
class Peak:
    """The extra memory one piece of work needed, with the method that measured it (a key of :data:`METHODS`)."""

    bytes: int
    method: str
    #: Resident (CPU) or allocated (CUDA) bytes when the work started.
    before: int


def resident_bytes() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in bytes (empty where ``/proc`` is unavailable)."""
    values = {}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def reset_peak() -> bool:
    """Reset this process's peak-RSS counter ``VmHWM`` to its current RSS; ``False`` where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_peak(work: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[Any, Peak]:
    """Run ``work()`` and return its result with the extra memory it needed on ``device`` (module docstring)."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = work()
        torch.cuda.synchronize(device)
        return result, Peak(torch.cuda.max_memory_allocated(device) - before, "cuda max_memory_allocated", before)
    if reset_peak() and "VmRSS" in (status := resident_bytes()):
        before = status["VmRSS"]
        result = work()
        return result, Peak(resident_bytes()["VmHWM"] - before, "VmHWM reset", before)
    before = _max_rss()
    result = work()
    return result, Peak(_max_rss() - before, "ru_maxrss delta", before)
