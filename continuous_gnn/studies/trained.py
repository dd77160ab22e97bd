"""Train a model for a study with the package's one training loop, then record its trajectory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.datasets import NodeDataset
from ..graph import Graph
from ..models import ContinuousGNN
from ..training.config import RunConfig
from ..training.loop import train_split
from .sweep import model_family
from .trajectory import trajectory_records

__all__ = ["TrainedTrace", "trained_trajectory"]


@dataclass
class TrainedTrace:
    """A model trained for a study and its trajectory.

    Attributes:
        model (ContinuousGNN): the selected model, in eval mode.
        config (RunConfig): its configuration.
        metrics (dict): ``epoch`` (selected, 1-based), ``acc_train``, ``acc_val``, ``acc_test`` of the selected
            model at its training time, ``select``, ``seed``, ``epochs``, ``wall_time``.
        records (list[dict]): :func:`trajectory_records` of the selected model.
    """

    model: ContinuousGNN
    config: RunConfig
    metrics: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)


def trained_trajectory(config: RunConfig, dataset: NodeDataset, *, split: int = 0, t_end: float | None = None,
                       times: Sequence[float] = (), select: str = "best_val", max_points: int = 65,
                       source: str | None = None, dtype: torch.dtype = torch.float64) -> TrainedTrace:
    r"""Train one model with ``config`` on one split, then record its trajectory to ``t_end``.

    Training is the package's one training loop (:func:`~continuous_gnn.training.train_split`: full batch,
    the config's optimiser, seed ``config.seed + split``, the config's regularisers, patience and divergence
    check, evaluation after every epoch). ``select="best_val"`` keeps the parameters of the epoch with the best
    validation accuracy (first on ties), ``"last"`` those after the last epoch.
    The trajectory uses the config's solver; ``t_end > config.time`` runs the trained flow beyond its
    training depth (extrapolation; time-dependent weights then keep their last piece).

    Args:
        config (RunConfig): model, solver and optimiser settings (a fixed-grid method).
        dataset (NodeDataset): the data.
        split (int): split index (default: ``0``).
        t_end (float, optional): end of the recorded trajectory (default: ``config.time``).
        times (sequence of float): readout times to mark (default: ``config.time`` and ``t_end``).
        select (str): ``"best_val"`` or ``"last"`` (default: ``"best_val"``).
        max_points (int): readouts along the trajectory (default: ``65``).
        source (str, optional): ``source`` column (default: ``dataset.name``).
        dtype (torch.dtype): evaluation precision (default: ``torch.float64``).
    """
    if not config.fixed_grid:
        raise ValueError("trained_trajectory records fixed-grid flows; use method='euler' (or another fixed-grid one)")
    if select not in ("best_val", "last"):
        raise ValueError(f"select must be 'best_val' or 'last', got {select!r}")
    result = train_split(config, dataset, split, keep="best" if select == "best_val" else "last")
    kept = result.kept
    model = kept.model
    metrics = {"epoch": kept.epoch, "acc_train": kept.train, "acc_val": kept.val, "acc_test": kept.test,
               "loss": kept.loss, "select": select, "seed": result.seed, "epochs": config.epochs,
               "wall_time": result.wall_time}
    t_end = float(config.time if t_end is None else t_end)
    marks = tuple(times) if times else tuple(sorted({config.time, t_end}))
    labels = {"source": source or dataset.name, "model": "trained", "w_family": model_family(config),
              "seed": metrics["seed"]}
    graph = Graph.from_data(dataset.data, self_loops=config.self_loops, dtype=dtype)
    records = trajectory_records(model, dataset, t_end=t_end, split=split, graph=graph, method=config.method,
                                 step_size=config.step_size, times=marks, max_points=max_points, dtype=dtype,
                                 labels=labels)
    return TrainedTrace(model=model, config=config, metrics=metrics, records=records)
