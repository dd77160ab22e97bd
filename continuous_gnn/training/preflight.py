"""What a run's config can be checked for before its dataset loads: splits the dataset has, an energy that builds
from its options, and parameters that fit in memory.

:func:`~continuous_gnn.training.check_run` checks the rest once the dataset is there. The energy is built on
PyTorch's ``meta`` device, which records shapes without allocating, so that a typo such as ``--hidden 60000``
(a 14 GiB weight matrix, four times that with its gradient and Adam's moments) is a ``ValueError`` in a second,
not a process the kernel kills minutes later without a message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch

from .batches import require_batching_package
from .build import build_energy
from .config import RunConfig

__all__ = ["check_before_loading", "check_splits", "missing_splits", "flow_parameters", "training_bytes",
           "available_memory"]

#: Tensors of a parameter's size that training holds per parameter: the value, its gradient and the two moments
#: of Adam or Adamax, in float32.
COPIES_PER_PARAMETER = 4
BYTES_PER_FLOAT = 4


def flow_parameters(config: RunConfig) -> int:
    """The number of parameters of the config's energy or field (all pieces of time-dependent weights),
    counted on the ``meta`` device without allocating them.

    Raises:
        ValueError, TypeError: the energy's own checks of its options (e.g. ``heads`` that do not divide
            ``hidden``).
        RuntimeError, NotImplementedError: a user class whose constructor needs real tensors (it reads a value,
            say); its options are then checked when the model is built.
    """
    with torch.device("meta"):
        flow = build_energy(config)
    return sum(parameter.numel() for parameter in flow.parameters())


def training_bytes(parameters: int, copies: int = COPIES_PER_PARAMETER) -> int:
    """A lower bound on the memory that ``copies`` float32 tensors of ``parameters`` entries hold; by default
    training with Adam (:data:`COPIES_PER_PARAMETER`). Activations, features and the graph come on top."""
    return parameters * copies * BYTES_PER_FLOAT


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    """What the process's cgroup (v2) still lets it allocate, where it sets a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def training_device(config: RunConfig) -> torch.device:
    """The config's device, once this machine is known to have it.

    Raises:
        ValueError: a CUDA or MPS device on a machine without one.
    """
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} was requested but CUDA is not available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {config.device!r} was requested but MPS is not available; use --device cpu")
    return device


def available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation on ``device`` can take now: the GPU's free memory, or the host's available
    memory within the process's cgroup limit; ``None`` where neither can be read."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    known = [value for value in (_meminfo_available(), _cgroup_headroom()) if value is not None]
    return min(known) if known else None


def missing_splits(splits: Iterable[int], num_splits: int) -> str | None:
    """The requested splits a dataset of ``num_splits`` lacks, as a message names them (``[10]``, or
    ``10..50`` for a long run of them); ``None`` if there are none."""
    missing = [split for split in splits if split >= num_splits]
    if not missing:
        return None
    if len(missing) > 5 and missing == list(range(missing[0], missing[-1] + 1)):
        return f"{missing[0]}..{missing[-1]}"
    return str(missing)


def check_splits(dataset: str | None, splits: Iterable[int], num_splits: int) -> None:
    """Raise ``ValueError`` unless every split of ``splits`` is one of the dataset's ``0..num_splits - 1``."""
    missing = missing_splits(splits, num_splits)
    if missing is not None:
        raise ValueError(f"dataset {dataset!r} has splits 0..{num_splits - 1}; split(s) {missing} do not exist")


def _size(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def check_before_loading(config: RunConfig, num_splits: int | None = None, *,
                         copies: int = COPIES_PER_PARAMETER) -> None:
    """Check what ``config`` asks of a run that is known before its dataset loads.

    Args:
        config: the run's configuration.
        num_splits: how many splits the dataset has, where the caller knows it without reading files
            (:data:`continuous_gnn.data.registry.NUM_SPLITS`).
        copies: float32 tensors of the parameters' size that the work holds at once (default: training with
            Adam, :data:`COPIES_PER_PARAMETER`; a model that is only evaluated holds fewer).

    Raises:
        ValueError: a device this machine lacks; a split the dataset lacks; an energy option its class refuses
            (by value or type); or an energy whose parameters, with their gradients and the optimiser's moments,
            exceed the memory available on the config's device.
        MissingPackageError: a batching whose optional package is not installed.
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a positive int, got {copies!r}")
    device = training_device(config)
    if num_splits is not None and config.splits is not None:
        check_splits(config.dataset, config.splits, num_splits)
    require_batching_package(config)
    try:
        parameters = flow_parameters(config)
    except (RuntimeError, NotImplementedError):
        return  # a user class that needs real tensors to build: the model's build checks it
    except TypeError as err:  # an option of a type the class refuses: a bad value, as the command line sees it
        named = str(err).startswith(f"energy {config.energy!r}")  # a user's class, named by the registry
        raise ValueError(str(err) if named else f"energy {config.energy!r}: {err}") from None
    needed = training_bytes(parameters, copies)
    available = available_memory(device)
    if available is not None and needed > available:
        size = _size(needed)
        held = (f"training them holds at least {size} (weights, gradients and the optimiser's two moments, in "
                "float32)" if copies == COPIES_PER_PARAMETER else f"the work holds at least {size} ({copies} "
                "float32 copies)")
        raise ValueError(
            f"the {config.energy} flow of width hidden = {config.hidden} has {parameters:,} parameters, and "
            f"{held}, but {_size(available)} of memory is available on {config.device}; "
            "lower hidden" + (" or time_pieces" if config.time_dependent else ""))
