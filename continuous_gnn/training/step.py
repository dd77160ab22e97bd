"""One optimiser step of the training loop: the training forward pass, the batch loss, the epoch's totals over
steps and ranks, the optimiser, and the check that an update stayed finite.

:mod:`~continuous_gnn.training.loop` composes these into epochs and splits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import TrainingDivergedError
from ..graph import Graph
from ..ode.regularizers import regularized_forward
from ..ode.solution import Solution
from .batches import Batch
from .config import RunConfig
from .distributed import World

__all__ = ["OPTIMIZER_CLASSES", "make_optimizer", "check_finite", "diverged", "TrainingStep", "EpochTotals",
           "batch_loss", "rank_seed"]

#: The optimiser class of each name in :data:`~continuous_gnn.training.config.OPTIMIZERS`.
OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}


def make_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` with L2 weight decay, using the multi-tensor kernel (same update, faster)."""
    optimizer = OPTIMIZER_CLASSES[config.optimizer]
    return optimizer(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def check_finite(model: torch.nn.Module, loss: Tensor, config: RunConfig, split: int, epoch: int) -> None:
    """Raise :class:`TrainingDivergedError` when the loss or a parameter is inf or nan after an update.

    One fused sum per optimiser step; without it a diverged update surfaces at the next forward pass as an encoder
    output full of nan, which reads like bad input features.
    """
    sums = torch.stack([loss.detach().reshape(()).float(), *(p.detach().sum().float() for p in model.parameters())])
    if bool(torch.isfinite(sums).all()):
        return
    raise diverged(config, split, epoch, "the training loss" if not bool(torch.isfinite(sums[0])) else "a parameter")


def diverged(config: RunConfig, split: int, epoch: int, what: str) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged on split {split} at epoch {epoch}: {what} became inf or nan (lr={config.lr:g}, "
        f"weight_decay={config.weight_decay:g}). Fix: lower the learning rate, or the step size or T of the flow",
        split=split, epoch=epoch)


class TrainingStep(nn.Module):
    """The forward pass of a training step as a module of its own, so that DDP can wrap it (DDP averages the
    gradients only of passes through its ``forward``)."""

    def __init__(self, model: nn.Module, kinetic: bool, jacobian: bool) -> None:
        super().__init__()
        self.model, self.kinetic, self.jacobian = model, kinetic, jacobian

    def forward(self, features: Tensor, graph: Graph,
                probes: torch.Generator | None) -> tuple[Tensor, Solution, dict[str, Tensor]]:
        if self.kinetic or self.jacobian:
            return regularized_forward(self.model, features, graph, kinetic=self.kinetic, jacobian=self.jacobian,
                                       generator=probes)
        logits, solution = self.model.forward_with_solution(features, graph)
        return logits, solution, {}


class EpochTotals:
    """The loss, solver statistics and regularisers of an epoch's steps."""

    def __init__(self) -> None:
        self.steps: list[tuple[Tensor, int, int, int, dict[str, Tensor]]] = []

    def add(self, loss: Tensor, loss_nodes: int, solution: Solution, regs: dict[str, Tensor]) -> None:
        self.steps.append((loss.detach(), loss_nodes, solution.stats.nfe_forward, solution.stats.nfe_backward,
                           {name: value.detach() for name, value in regs.items()}))

    def summary(self, world: World | None, device: torch.device) -> tuple[Tensor, int, int, dict[str, float]]:
        """The epoch's loss (a tensor), forward and backward NFE, and mean regularisers, over all ranks."""
        if world is None and len(self.steps) == 1:  # the full-batch step, recorded as it is
            loss, _, nfe_forward, nfe_backward, regs = self.steps[0]
            return loss, nfe_forward, nfe_backward, {name: float(value) for name, value in regs.items()}
        names = sorted(self.steps[0][4]) if self.steps else []
        totals = torch.tensor([[float(loss) * nodes, nodes, nfe_f, nfe_b, 1, *(float(regs[n]) for n in names)]
                               for loss, nodes, nfe_f, nfe_b, regs in self.steps] or [[0.0] * 5],
                              dtype=torch.float64, device=device).sum(0)
        if world is not None:
            totals = world.sum(totals)
        loss_sum, nodes, nfe_forward, nfe_backward, steps, *reg_sums = totals.tolist()
        loss = torch.tensor(loss_sum / nodes if nodes else math.nan, dtype=torch.float32)
        return loss, int(nfe_forward), int(nfe_backward), {n: value / steps for n, value in zip(names, reg_sums)}


def batch_loss(logits: Tensor, batch: Batch) -> Tensor:
    if batch.train_index.numel() == 0:  # only across processes: this rank still joins the step's all-reduce
        return logits.sum() * 0.0
    return F.cross_entropy(logits[batch.train_index], batch.targets)


def rank_seed(seed: int, rank: int) -> int:
    """The dropout seed of rank ``rank`` (split seeds differ by less than 2³², so no two streams coincide)."""
    return (seed + rank * 2**32) % 2**64
