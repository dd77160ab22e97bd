"""One rank of the data-parallel test (``tests/test_distributed.py`` starts two under torchrun on loopback).

Trains ``CONFIG`` on split 0 of ``dataset()`` with DDP and saves this rank's final parameters and curves to
``<out>/rank<r>.pt``. Importable without side effects, so the test builds its single-process reference from the
same dataset and config.

With a third argument ``pieces``, it trains :data:`PIECES` instead. With ``stop``, it runs with checkpoints in
``<out>/ck`` and a stop request that only rank 1 sets, during its second epoch, and saves what each rank's
:class:`RunStopped` says to ``<out>/stopped<r>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from continuous_gnn.data import NodeDataset
from continuous_gnn.data.synthetic import contextual_sbm
from continuous_gnn.training import Checkpointing, RunConfig, RunStopped, StopRequest, run, train_split
from continuous_gnn.training.distributed import join, leave

#: Two random parts per epoch: one per rank. No dropout, so the ranks' random streams do not enter.
CONFIG = RunConfig(batching="random", num_parts=2, epochs=1, hidden=8, time=1.0, step_size=0.5, lr=0.01,
                   weight_decay=5e-4, dropout=0.0, input_dropout=0.0, seed=7)
#: Time-dependent weights in four pieces over two Euler steps (t = 0 and 0.5): pieces 1 and 3 get no gradient.
PIECES = CONFIG.replace(time_dependent=True, time_pieces=4)


def dataset() -> NodeDataset:
    data = contextual_sbm(60, num_classes=3, homophily=0.8, avg_degree=5.0, num_features=6, snr=2.0, seed=1)
    return NodeDataset(name="csbm", data=data, num_classes=3, num_splits=1, metric="accuracy", homophilous=True)


def main(out: Path, epochs: int, config: RunConfig = CONFIG) -> None:
    world = join("cpu", int(os.environ["LOCAL_RANK"]))
    try:
        result = train_split(config.replace(epochs=epochs), dataset(), 0, keep="last", world=world)
        torch.save({"state": result.kept.model.state_dict(), "train_loss": result.train_loss,
                    "val_curve": result.val_curve, "nfe_forward": result.nfe_forward, "world_size": world.size},
                   out / f"rank{world.rank}.pt")
    finally:
        leave()


def stop(out: Path, epochs: int) -> None:
    world = join("cpu", int(os.environ["LOCAL_RANK"]))
    request = StopRequest()

    def progress(info) -> None:
        if world.rank == 1 and info.epoch == 2:
            request.set("rank 1's signal")

    try:
        run(CONFIG.replace(epochs=epochs, splits=(0,)), dataset(), world=world, progress=progress, stop=request,
            checkpointing=Checkpointing(out / "ck"))
    except RunStopped as stopped:
        (out / f"stopped{world.rank}.json").write_text(json.dumps(
            {"reason": stopped.reason, "split": stopped.split, "epochs_done": stopped.epochs_done,
             "checkpoint": str(stopped.checkpoint)}))
    finally:
        leave()


if __name__ == "__main__":
    if sys.argv[3:] == ["stop"]:
        stop(Path(sys.argv[1]), int(sys.argv[2]))
    else:
        main(Path(sys.argv[1]), int(sys.argv[2]), PIECES if sys.argv[3:] == ["pieces"] else CONFIG)
