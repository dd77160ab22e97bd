r"""Training across processes and machines: ``torch.distributed`` with DistributedDataParallel (DDP).

A run is launched with ``torchrun``, which starts the processes ("ranks"; on GPUs one per GPU)::

    torchrun --nproc-per-node 2 -m continuous_gnn train --distributed --batching metis --num-parts 8 ...

Every rank loads the whole dataset and draws the same batches of each epoch
(:class:`~continuous_gnn.training.batches.EpochBatches`); rank ``r`` of ``W`` trains on batches
``r, r + W, ...``. DDP all-reduces the gradients after every backward pass and divides them by ``W``, so each
optimiser step uses the average of the ranks' gradients and all ranks keep the same parameters (DDP also copies
rank 0's initial parameters to every rank). One step with ``W`` ranks therefore equals one step of a single
process on the average of the gradients of the same ``W`` batches.

Every rank evaluates after each epoch (the full graph, or the same fixed subgraphs with ``evaluation =
"batches"``): with the same parameters the metrics agree, so the best epoch and early stopping agree without
further communication. The epoch's loss, solver statistics and
regularisers are summed over the ranks (:meth:`World.sum`) before they are recorded.

The process group is initialised from torchrun's environment (``env://``): backend ``gloo`` on CPU and ``nccl``
on CUDA, where each rank uses the GPU ``cuda:LOCAL_RANK``. Nothing here reads the environment itself: the command
line checks it and passes ``LOCAL_RANK`` on.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["World", "backend_for", "join", "leave", "process_group_failed"]

#: How long a collective waits for the other ranks before failing (a rank that died mid-run).
DEFAULT_TIMEOUT_S = 600.0


def backend_for(device: torch.device | str) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run.

    Attributes:
        rank (int): this process, ``0 .. size - 1``; rank 0 alone prints and writes records.
        size (int): the number of processes ``W``.
        local_rank (int): this process among those on its machine (its GPU index) (default: 0).

    Raises:
        ValueError: unless ``0 <= rank < size`` and ``local_rank >= 0``.
    """

    rank: int
    size: int
    local_rank: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.rank < self.size) or self.local_rank < 0:
            raise ValueError(f"need 0 <= rank < size and local_rank >= 0, got rank={self.rank}, size={self.size}, "
                             f"local_rank={self.local_rank}")

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA device, else ``device``."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def wrap(self, module: nn.Module, *, find_unused_parameters: bool = False) -> nn.Module:
        """``module`` under DDP: its gradients are averaged over the ranks in every backward pass.

        ``device_ids`` stays ``None`` (allowed for a module on one device): DDP then passes the inputs as they
        are, already on the rank's device, instead of copying the graph operator for every step.

        ``find_unused_parameters`` is DDP's: needed when a backward pass may leave some parameters without a
        gradient (without it DDP fails at the next step), at the cost of one walk over the autograd graph per step.
        A parameter that no rank used keeps no gradient, as in a single process, so the optimiser leaves it alone.
        """
        return DistributedDataParallel(module, device_ids=None, find_unused_parameters=find_unused_parameters)

    def sum(self, values: Tensor) -> Tensor:
        """The sum of ``values`` over all ranks (a new tensor; every rank gets it)."""
        total = values.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def gather(self, values: Tensor) -> list[Tensor]:
        """``values`` of every rank, in rank order, on the CPU (every rank gets them; all must have the same shape
        and dtype). Checkpoints gather the ranks' random states with it."""
        device = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        local = values.detach().to(device)
        everyone = [torch.empty_like(local) for _ in range(self.size)]
        dist.all_gather(everyone, local)
        return [value.cpu() for value in everyone]


def join(device: str, local_rank: int, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
    """Initialise the process group from torchrun's environment and return this process's :class:`World`.

    Args:
        device: the run's device (``config.device``): picks the backend.
        local_rank: torchrun's ``LOCAL_RANK``.
        timeout_s: how long a collective waits for the other ranks (default: 600).

    Raises:
        ValueError: if a process group is already initialised, or CUDA is asked for but not available.
    """
    if dist.is_initialized():
        raise ValueError("a torch.distributed process group is already initialised in this process")
    target = torch.device(device)
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available; use --device cpu (gloo)")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend_for(target), timeout=_dt.timedelta(seconds=timeout_s))
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def leave() -> None:
    """Destroy the process group of :func:`join` (nothing when none is initialised)."""
    if dist.is_initialized():
        dist.destroy_process_group()


#: What the backends say when a peer is gone (gloo raises a plain RuntimeError that quotes its transport).
_PEER_FAILURES = ("gloo/transport", "Connection reset by peer", "Connection closed by peer", "NCCL error")


def process_group_failed(err: BaseException) -> bool:
    """Whether ``err`` is the process group failing (a peer gone, a broken connection), not an error of the run."""
    dist_error = getattr(dist, "DistError", None)
    return (dist_error is not None and isinstance(err, dist_error)) or any(mark in str(err) for mark in _PEER_FAILURES)
