r"""Mini-batch training against full batch: accuracy, time per epoch and memory, on a real graph and on synthetic
graphs up to :math:`10^7` nodes.

Every point trains one model in a process of its own (:mod:`~continuous_gnn.benchmarks.isolated`), through the
package's one training loop (:func:`~continuous_gnn.training.run`), with the same model and settings
(:data:`BASE`); only ``batching`` changes (:data:`BATCHINGS`). The flow of a mini-batch runs on the batch's
subgraph with the batch's own normalisation, so a mini-batch model is an approximation of the full-batch one;
evaluation is one full-graph pass, except on the largest graph (:data:`LARGE_BATCHING`), which is also evaluated
in batches (``evaluation = "batches"``) so that no pass holds the whole graph. Reported per point: the validation
and test metric at the best validation epoch (mean over the splits run), the mean time per epoch (training step
plus the evaluation), the peak of resident memory of the training
(:func:`~continuous_gnn.benchmarks.peak.measure_peak`) and the process's peak resident memory from its start
(graph generation and loading included: what the machine must hold).

Graphs: a benchmark dataset (tolokers by default, with its fixed splits), and contextual SBMs
(:func:`~continuous_gnn.data.contextual_sbm`: :data:`SYNTHETIC_CLASSES` classes, edge homophily
:data:`SYNTHETIC_HOMOPHILY`, mean degree 10, features of width :data:`SYNTHETIC_FEATURES` at signal-to-noise
ratio 1, one random 50/25/25 split). The largest graph trains one epoch with random batches only: its full-batch
run is what mini-batches exist to avoid.
"""

from __future__ import annotations

import importlib.util
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MinibatchSettings", "BASE", "BATCHINGS", "minibatch_point", "minibatch_comparison",
           "SYNTHETIC_CLASSES", "SYNTHETIC_HOMOPHILY", "SYNTHETIC_FEATURES"]

#: The model and training settings of every point (GRAFF, Euler with step 1 over T = 3, width 64).
BASE: dict[str, Any] = {"energy": "graff", "w": "diag", "method": "euler", "step_size": 1.0, "time": 3.0,
                        "hidden": 64, "lr": 0.01, "weight_decay": 0.0, "dropout": 0.2, "input_dropout": 0.0}
#: The batching settings compared, by label; METIS needs pymetis (skipped without it).
BATCHINGS: dict[str, dict[str, Any]] = {
    "full batch": {},
    "random, 4 parts": {"batching": "random", "num_parts": 4},
    "METIS, 16 clusters, 4 per batch": {"batching": "metis", "num_parts": 16, "parts_per_batch": 4},
}
#: The batching of the largest synthetic graph (one epoch), evaluated in batches too: a full-graph pass over
#: 10^7 nodes holds several 10^7 x 64 tensors at once, more than the training step on a tenth of the graph.
LARGE_BATCHING = ("random, 10 parts, evaluated in batches",
                  {"batching": "random", "num_parts": 10, "evaluation": "batches"})
#: Classes of the synthetic graph's contextual SBM.
SYNTHETIC_CLASSES = 4
#: Its edge homophily (the fraction of edges inside a class).
SYNTHETIC_HOMOPHILY = 0.7
#: Its node features per node.
SYNTHETIC_FEATURES = 16


@dataclass(frozen=True)
class MinibatchSettings:
    """What the mini-batch section measures (chosen by the command).

    Attributes:
        dataset: a benchmark dataset name, or ``None`` for none.
        splits: the dataset's splits to train.
        synthetic_nodes: sizes of the synthetic graphs compared across every batching.
        large_nodes: the synthetic graph that trains one random-batch epoch only (``None``: none).
        epochs: epochs of the dataset's points.
        synthetic_epochs: epochs of the synthetic graphs compared across every batching (a full-batch epoch of
            the 10^6-node graph takes tens of seconds on two cores, so they train fewer).
        degree: mean degree of the synthetic graphs.
        timeout: seconds per point.
    """

    dataset: str | None = "tolokers"
    splits: tuple[int, ...] = (0,)
    synthetic_nodes: tuple[int, ...] = (1_000_000,)
    large_nodes: int | None = 10_000_000
    epochs: int = 20
    synthetic_epochs: int = 3
    degree: float = 10.0
    timeout: float = 1800.0
    batchings: tuple[str, ...] = field(default_factory=lambda: tuple(BATCHINGS))

    def __post_init__(self) -> None:
        unknown = [b for b in self.batchings if b not in BATCHINGS]
        if unknown or not self.batchings:
            raise ValueError(f"batchings must be a non-empty selection of {list(BATCHINGS)}, got {self.batchings}")
        if min(self.epochs, self.synthetic_epochs) < 1 or not self.degree > 0 or not self.timeout > 0 or not self.splits:
            raise ValueError("epochs and synthetic_epochs must be >= 1, degree and timeout > 0, and splits non-empty")


def _synthetic(nodes: int, degree: float) -> Any:
    from ..data import contextual_sbm
    from ..data.datasets import NodeDataset

    data = contextual_sbm(nodes, SYNTHETIC_CLASSES, SYNTHETIC_HOMOPHILY, degree, SYNTHETIC_FEATURES, 1.0, seed=0)
    return NodeDataset(name=f"sbm(n={nodes})", data=data, num_classes=SYNTHETIC_CLASSES, num_splits=1,
                       metric="accuracy", homophilous=True)


def minibatch_point(graph: str, batching: str, overrides: dict[str, Any], epochs: int, splits: list[int],
                    threads: int, device: str, degree: float = 10.0, nodes: int | None = None,
                    data_root: str | None = None, cache_dir: str | None = None) -> dict[str, Any]:
    """Train one model and report its metrics, epoch time and memory (runs in a measuring process).

    ``graph`` is ``"sbm"`` (with ``nodes``) or a dataset name (loaded from ``data_root``).
    """
    import torch

    from ..allocator import release_freed_memory
    from ..training import load_run_dataset, run
    from ..training.batches import batches_per_epoch
    from ..training.config_io import resolve_config
    from .peak import measure_peak

    torch.set_num_threads(threads)
    began = time.perf_counter()
    layers = [BASE, overrides, {"epochs": epochs, "splits": splits, "device": device, "seed": 0}]
    if graph == "sbm":
        dataset = _synthetic(int(nodes), degree)
        config = resolve_config(*layers)
    else:
        config = resolve_config(*layers, {"dataset": graph})
        dataset = load_run_dataset(config, data_root, cache_dir=cache_dir)
    ready = time.perf_counter() - began
    # A kept heap would hold the generation's temporaries (about 9 GB at 10⁷ nodes) beside the training's.
    release_freed_memory()
    result, peak = measure_peak(lambda: run(config, dataset), device)
    aggregate = result.aggregate()
    data = dataset.data
    return {"graph": dataset.name, "nodes": int(data.num_nodes), "edges": int(data.edge_index.size(1)),
            "batching": batching, "batches": batches_per_epoch(config, int(data.num_nodes)) if config.batching != "none"
            else 1, "metric": result.metric, "val": aggregate["val_mean"], "test": aggregate["test_mean"],
            "epochs": epochs, "splits": len(result.splits), "epoch_s": aggregate["epoch_time_mean"],
            "setup_s": ready, "peak_bytes": peak.bytes, "peak_method": peak.method,
            "process_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _specs(settings: MinibatchSettings, threads: int, device: str, data_root: str | None,
           cache_dir: str | None) -> list[dict[str, Any]]:
    batchings = [b for b in settings.batchings
                 if BATCHINGS[b].get("batching") != "metis" or importlib.util.find_spec("pymetis") is not None]
    common = {"threads": threads, "device": device, "degree": settings.degree}
    specs = []
    if settings.dataset is not None:
        specs += [{**common, "graph": settings.dataset, "batching": b, "overrides": BATCHINGS[b],
                   "epochs": settings.epochs, "splits": list(settings.splits), "data_root": data_root,
                   "cache_dir": cache_dir} for b in batchings]
    for nodes in settings.synthetic_nodes:
        specs += [{**common, "graph": "sbm", "nodes": nodes, "batching": b, "overrides": BATCHINGS[b],
                   "epochs": settings.synthetic_epochs, "splits": [0]} for b in batchings]
    if settings.large_nodes is not None:
        label, overrides = LARGE_BATCHING
        specs.append({**common, "graph": "sbm", "nodes": settings.large_nodes, "batching": label,
                      "overrides": overrides, "epochs": 1, "splits": [0]})
    return specs


def minibatch_comparison(settings: MinibatchSettings, *, device: str, threads: int, environ: Mapping[str, str],
                         data_root: str | None = None, cache_dir: str | None = None,
                         progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Every point of ``settings``, each in a process of its own under this run's allocator environment.

    Returns ``{"points": [...], "metis": bool}``: one dict per point (:func:`minibatch_point`'s, or one with the
    point's ``graph``, ``nodes``, ``batching`` and a ``failed`` reason), and whether METIS ran.
    """
    from .allocators import child_environment
    from .isolated import run_isolated

    specs = _specs(settings, threads, device, data_root, cache_dir)

    def report(index: int, result: dict) -> None:
        spec = specs[index]
        where = f"{spec['graph']}{'' if spec.get('nodes') is None else ' ' + str(spec['nodes'])}, {spec['batching']}"
        if "failed" in result:
            progress(f"{where}: failed: {result['failed']}")
        else:
            progress(f"{where}: test {result['test']:.4f}, {1000 * result['epoch_s']:.0f} ms per epoch, process "
                     f"peak {result['process_peak_bytes'] / 2**30:.2f} GiB")

    results = run_isolated("continuous_gnn.benchmarks.minibatch:minibatch_point", specs,
                           env=child_environment(environ, threads=threads), timeout=settings.timeout,
                           on_result=report)
    points = []
    for spec, result in zip(specs, results):
        if "failed" in result:
            result = {"graph": spec["graph"], "nodes": spec.get("nodes"), "batching": spec["batching"],
                      "failed": result["failed"]}
        points.append(result)
    return {"points": points, "metis": any(BATCHINGS[s["batching"]].get("batching") == "metis"
                                           for s in specs if s["batching"] in BATCHINGS)}
