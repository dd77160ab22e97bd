r"""Full-batch node-classification training with the GRAFF protocol, and the JSON record of a run.

Protocol (as in the paper's code, ``run_GNN.py``): one model per split, trained full-batch with Adam for
``epochs`` epochs (no early stopping unless ``patience`` is set). After every epoch one forward pass in eval mode
under ``torch.no_grad()`` scores the train, validation and test nodes; the reported test metric is the one at the
epoch with the **best validation metric** (the first such epoch on ties). Over splits the result is the mean and
the **population** standard deviation (``ddof=0``, as the paper's code computes it).

Seeds: split ``i`` is trained with seed ``config.seed + i`` (the split *index*, so re-running one split alone
reproduces it). That seed drives parameter initialisation and every dropout mask. It is set with
``torch.manual_seed`` inside :func:`torch.random.fork_rng`, so the caller's global random state is restored
afterwards. The Geom-GCN splits are fixed files, so no randomness enters the split itself.

Regularisers (``kinetic_weight``, ``jacobian_weight`` > 0): the training step integrates the kinetic energy
:math:`\int_0^T \|f\|^2 dt` and/or the Jacobian Frobenius norm :math:`\int_0^T \|\partial_x f\|_F^2 dt` alongside
the flow (:func:`~continuous_gnn.regularizers.regularized_forward`) and minimises
``cross_entropy + kinetic_weight * kinetic + jacobian_weight * jacobian``. The Hutchinson probe of the Jacobian
term is drawn from a ``torch.Generator`` seeded with the split seed (one probe per epoch), so the dropout
masks are the same draws as without regularisers. Evaluation is never regularised. With both weights 0 the
training step is the plain ``model.forward_with_solution``, bitwise the same as before the option existed.

The metric is accuracy, or ROC-AUC for binary datasets (``dataset.metric == "roc_auc"``), computed with torch.

Nothing here prints: progress is a ``tqdm`` bar on stderr when ``progress=True`` (the command line decides
when), or a callback receiving :class:`EpochInfo`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from .atomic import atomic_write_text
from .builders import build_graph, build_model, prepare_features
from .config import RunConfig
from .errors import TrainingDivergedError
from .graph import Graph
from .regularizers import regularized_forward

__all__ = [
    "RECORD_FORMAT",
    "EpochInfo",
    "SplitResult",
    "RunResult",
    "accuracy",
    "roc_auc",
    "population_mean_std",
    "split_seed",
    "train_split",
    "run",
    "load_run_dataset",
    "dataset_summary",
    "environment",
    "save_record",
    "load_record",
]

#: Version of the JSON record layout written by :meth:`RunResult.to_record`.
RECORD_FORMAT = 1

Progress = bool | Callable[["EpochInfo"], None]


# ---------------------------------------------------------------------- metrics


def accuracy(logits: Tensor, y: Tensor, masks: Tensor) -> Tensor:
    """Accuracy on each mask in one pass.

    Args:
        logits: ``(n, k)``.
        y: labels ``(n,)``.
        masks: boolean ``(m, n)``, one row per node set.

    Returns:
        ``(m,)`` accuracies (nan for an empty mask).
    """
    correct = (logits.argmax(dim=1) == y).to(logits.dtype)
    weights = masks.to(logits.dtype)
    return (weights @ correct) / weights.sum(dim=1)


def _average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values`` with ties sharing their average rank, float64."""
    order = values.argsort()
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1) / 2  # mean of start+1 .. end
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    r"""Area under the ROC curve of ``scores`` for binary ``labels`` (Mann–Whitney U, ties count one half).

    .. math::
        \mathrm{AUC} = P(s^+ > s^-) + \tfrac12 P(s^+ = s^-)

    Returns nan when only one class is present.
    """
    labels = labels.bool()
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(scores.detach().reshape(-1))
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _metrics(logits: Tensor, y: Tensor, masks: Tensor, metric: str) -> Tensor:
    if metric == "accuracy":
        return accuracy(logits, y, masks)
    if metric == "roc_auc":
        if logits.size(1) != 2:
            raise ValueError(f"roc_auc needs a binary task, but the model has {logits.size(1)} outputs")
        score = logits[:, 1] - logits[:, 0]  # monotone in softmax(logits)[:, 1], without saturation ties
        return torch.tensor([roc_auc(score[m], y[m] == 1) for m in masks], dtype=torch.float64)
    raise ValueError(f"unknown metric {metric!r}; expected 'accuracy' or 'roc_auc'")


def population_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (``ddof=0``) of ``values``."""
    if len(values) == 0:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# ---------------------------------------------------------------------- records


@dataclass(frozen=True)
class EpochInfo:
    """What a progress callback receives after every epoch (metrics as fractions)."""

    split: int
    epoch: int
    epochs: int
    loss: float
    train: float
    val: float
    best_val: float
    best_epoch: int


@dataclass
class SplitResult:
    """One split's outcome. Metrics are fractions in [0, 1]; curves have one entry per epoch run.

    Attributes:
        split: split index.
        seed: the seed it was trained with (``config.seed + split``).
        best_epoch: 1-based epoch of the best validation metric (first on ties).
        epochs_run: epochs trained (fewer than ``config.epochs`` only with ``patience``).
        train_metric, val_metric, test_metric: the metrics at ``best_epoch``.
        wall_time: seconds for the split (model construction included).
        epoch_time: mean seconds per epoch (training step plus evaluation).
        num_parameters: trainable parameters.
        train_loss: training loss per epoch (the minimised objective: cross-entropy plus the weighted
            regularisers when they are on).
        train_curve, val_curve: train and validation metric per epoch (the test metric is only kept at the
            best epoch).
        nfe_forward, nfe_backward: vector-field evaluations of the training step's forward solve and of the
            adjoint backward solve, per epoch (backward is 0 with direct backprop).
        kinetic, jacobian: the unweighted regulariser integrals of the training step per epoch (kinetic
            energy; Hutchinson estimate of the Jacobian Frobenius norm); empty when the weight is 0.
    """

    split: int
    seed: int
    best_epoch: int
    epochs_run: int
    train_metric: float
    val_metric: float
    test_metric: float
    wall_time: float
    epoch_time: float
    num_parameters: int
    train_loss: list[float] = field(repr=False)
    train_curve: list[float] = field(repr=False)
    val_curve: list[float] = field(repr=False)
    nfe_forward: list[int] = field(repr=False)
    nfe_backward: list[int] = field(repr=False)
    kinetic: list[float] = field(default_factory=list, repr=False)
    jacobian: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """The outcome of :func:`run`: the config, dataset facts and one :class:`SplitResult` per split."""

    config: RunConfig
    dataset: dict[str, Any]
    metric: str
    splits: list[SplitResult]
    wall_time: float
    date: str

    @property
    def test_metrics(self) -> list[float]:
        return [s.test_metric for s in self.splits]

    def aggregate(self) -> dict[str, Any]:
        """Mean and population std (ddof=0) over splits of the test, validation and train metrics."""
        out: dict[str, Any] = {"metric": self.metric, "std": "population (ddof=0)", "num_splits": len(self.splits)}
        for key in ("test", "val", "train"):
            mean, std = population_mean_std([getattr(s, f"{key}_metric") for s in self.splits])
            out[f"{key}_mean"], out[f"{key}_std"] = mean, std
        out["wall_time"] = self.wall_time
        out["epoch_time_mean"] = population_mean_std([s.epoch_time for s in self.splits])[0]
        return out

    def to_record(self, **extra: Any) -> dict[str, Any]:
        """The JSON record: resolved config, seeds, environment, per-split results and the aggregate.

        ``extra`` entries (e.g. ``preset``, ``config_file``, ``command``) are added at the top level.
        ``RunConfig.from_dict(record["config"]) == result.config``.
        """
        record = {
            "format": RECORD_FORMAT,
            "date": self.date,
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "split_seeds": {str(s.split): s.seed for s in self.splits},
            "dataset": self.dataset,
            "aggregate": self.aggregate(),
            "splits": [s.to_dict() for s in self.splits],
            **environment(),
        }
        for key, value in extra.items():
            if key in record:
                raise ValueError(f"extra record key {key!r} would overwrite a standard entry")
            record[key] = value
        return record


def environment() -> dict[str, Any]:
    """Package versions and machine facts for a record."""
    import torch_geometric
    import torchdiffeq

    from . import __version__

    return {
        "versions": {
            "continuous_gnn": __version__,
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
            "torchdiffeq": getattr(torchdiffeq, "__version__", "unknown"),
            "python": platform.python_version(),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }


def save_record(record: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a JSON record atomically (temporary file in the same folder, then :func:`os.replace`).

    Raises:
        TypeError: if ``record`` is not a dict (a record is a JSON object, e.g. :meth:`RunResult.to_record`).
    """
    if not isinstance(record, dict):
        raise TypeError(f"record must be a dict (a JSON object such as RunResult.to_record()), got {type(record).__name__}")
    return atomic_write_text(path, json.dumps(record, indent=1, allow_nan=True) + "\n")


def load_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run record written by :func:`save_record` from :meth:`RunResult.to_record`.

    Only the keys every run record has since the first format are required (``format``, ``config``,
    ``aggregate``, ``splits``); other records written by :func:`save_record` (e.g. the ``tune`` summary) are
    not run records and are rejected.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not UTF-8 JSON, is empty, or is not a continuous_gnn run record (not a JSON
            object, or lacking one of the keys above); the message names the path.
    """
    required = ("format", "config", "aggregate", "splits")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{str(path)!r} is not a JSON run record: it is not UTF-8 text ({err})") from err
    if not text.strip():
        raise ValueError(f"{str(path)!r} is empty, not a JSON run record written by save_record")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); expected a run record written by save_record") from err
    if not isinstance(record, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(record).__name__}, not a continuous_gnn run record "
                         f"(a JSON object with keys {list(required)})")
    missing = [key for key in required if key not in record]
    if missing:
        raise ValueError(f"{str(path)!r} is not a continuous_gnn run record: it lacks {missing} (a run record has "
                         f"{list(required)}, as written by RunResult.to_record)")
    return record


# ---------------------------------------------------------------------- training


def split_seed(config: RunConfig, split: int) -> int:
    """The seed of split ``split``: ``config.seed + split``."""
    return config.seed + split


def _device(config: RunConfig) -> torch.device:
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} was requested but CUDA is not available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {config.device!r} was requested but MPS is not available; use --device cpu")
    return device


def _fork_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def _adam(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """Adam with L2 weight decay (``torch.optim.Adam``), using the multi-tensor kernel (same update, faster)."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)


class _Bar:
    """A tqdm bar per split (imported lazily; stderr)."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.25)

    def __call__(self, info: EpochInfo) -> None:
        self.bar.set_postfix_str(
            f"loss={info.loss:.3f} train={info.train:.3f} val={info.val:.3f} "
            f"best={info.best_val:.3f}@{info.best_epoch}",
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def train_split(
    config: RunConfig,
    dataset: Any,
    split: int,
    *,
    graph: Graph | None = None,
    features: Tensor | None = None,
    progress: Progress = False,
) -> SplitResult:
    """Train and evaluate one model on one split (see the module docstring for the protocol).

    Args:
        config: the run configuration.
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        split: split index.
        graph: the operator from :func:`~continuous_gnn.builders.build_graph` on the config's device; built
            here when not given (pass it to reuse one graph for every split).
        features: the features from :func:`~continuous_gnn.builders.prepare_features` on the device; prepared
            here when not given.
        progress: ``True`` for a tqdm bar on stderr, or a callback called after every epoch.

    Returns:
        SplitResult.

    Raises:
        ValueError: on an invalid split index or device.
        IntegrationError: if a solve fails (e.g. the state blows up).
        TrainingDivergedError: if the loss or a parameter becomes inf or nan (a learning rate too large).
    """
    started = time.perf_counter()
    device = _device(config)
    train_mask, val_mask, test_mask = dataset.split(split)
    data = dataset.data
    if graph is None:
        graph = build_graph(data, config, device)
    if features is None:
        features = prepare_features(data.x, device)
    y = data.y.to(device)
    masks = torch.stack([train_mask, val_mask, test_mask]).to(device)
    train_index = train_mask.nonzero().view(-1).to(device)
    y_train = y[train_index]
    seed = split_seed(config, split)
    metric = dataset.metric

    callback: Callable[[EpochInfo], None] | None
    bar = None
    if progress is True:
        bar = callback = _Bar(config.epochs, f"{dataset.name} split {split}")
    elif callable(progress):
        callback = progress
    else:
        callback = None

    losses: list[float] = []
    train_curve: list[float] = []
    val_curve: list[float] = []
    nfe_forward: list[int] = []
    nfe_backward: list[int] = []
    kinetic_values: list[float] = []
    jacobian_values: list[float] = []
    use_kinetic, use_jacobian = config.kinetic_weight > 0, config.jacobian_weight > 0
    best_val, best_epoch, best = -math.inf, 0, (math.nan, math.nan, math.nan)
    try:
        with torch.random.fork_rng(devices=_fork_devices(device)):
            torch.manual_seed(seed)
            model = build_model(config, dataset.num_features, dataset.num_classes).to(device)
            optimizer = _adam(model, config)
            num_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
            # The probe has its own generator, so the global stream (init, dropout) is that of a plain run.
            probes = torch.Generator().manual_seed(seed) if use_jacobian else None
            loop_started = time.perf_counter()
            for epoch in range(1, config.epochs + 1):
                model.train()
                optimizer.zero_grad(set_to_none=True)
                if use_kinetic or use_jacobian:
                    logits, solution, regs = regularized_forward(model, features, graph, kinetic=use_kinetic,
                                                                 jacobian=use_jacobian, generator=probes)
                    loss = F.cross_entropy(logits[train_index], y_train)
                    if use_kinetic:
                        loss = loss + config.kinetic_weight * regs["kinetic"]
                        kinetic_values.append(float(regs["kinetic"].detach()))
                    if use_jacobian:
                        loss = loss + config.jacobian_weight * regs["jacobian"]
                        jacobian_values.append(float(regs["jacobian"].detach()))
                else:
                    logits, solution = model.forward_with_solution(features, graph)
                    loss = F.cross_entropy(logits[train_index], y_train)
                loss.backward()
                optimizer.step()
                _check_finite(model, loss, config, split, epoch)
                nfe_forward.append(solution.stats.nfe_forward)
                nfe_backward.append(solution.stats.nfe_backward)

                model.eval()
                with torch.no_grad():
                    scores = _metrics(model(features, graph), y, masks, metric)
                    loss_value, train_value, val_value, test_value = torch.cat(
                        [loss.detach().reshape(1).to(scores.dtype), scores]
                    ).tolist()
                losses.append(loss_value)
                train_curve.append(train_value)
                val_curve.append(val_value)
                if val_value > best_val:
                    best_val, best_epoch, best = val_value, epoch, (train_value, val_value, test_value)
                if callback is not None:
                    callback(EpochInfo(split, epoch, config.epochs, loss_value, train_value, val_value,
                                       best_val, best_epoch))
                if config.patience is not None and epoch - best_epoch >= config.patience:
                    break
            loop_time = time.perf_counter() - loop_started
    finally:
        if bar is not None:
            bar.close()
    if best_epoch == 0:  # the validation metric was nan throughout (e.g. a one-class validation set)
        best_epoch = len(val_curve)
    epochs_run = len(losses)
    return SplitResult(
        split=split,
        seed=seed,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        train_metric=best[0],
        val_metric=best[1],
        test_metric=best[2],
        wall_time=time.perf_counter() - started,
        epoch_time=loop_time / max(epochs_run, 1),
        num_parameters=num_parameters,
        train_loss=losses,
        train_curve=train_curve,
        val_curve=val_curve,
        nfe_forward=nfe_forward,
        nfe_backward=nfe_backward,
        kinetic=kinetic_values,
        jacobian=jacobian_values,
    )


def dataset_summary(dataset: Any) -> dict[str, Any]:
    """The dataset facts stored in a record."""
    data = dataset.data
    return {
        "name": dataset.name,
        "num_nodes": int(data.num_nodes),
        "num_edges": int(data.edge_index.size(1)),
        "num_features": int(dataset.num_features),
        "num_classes": int(dataset.num_classes),
        "num_splits": int(dataset.num_splits),
        "metric": dataset.metric,
        "features_normalized": bool(getattr(dataset, "features_normalized", False)),
    }


def load_run_dataset(config: RunConfig, root: str | os.PathLike[str], *,
                     cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """Load ``config.dataset`` from the data root with the config's feature normalisation.

    Raises:
        ValueError: if the config names no dataset, or an unknown one.
        DatasetUnavailableError: if its raw files are missing.
    """
    from .data import load_dataset

    if config.dataset is None:
        raise ValueError("the config names no dataset; set dataset (on the command line: --dataset NAME)")
    return load_dataset(config.dataset, root, cache_dir=cache_dir, normalize_features=config.normalize_features)


def _check_finite(model: torch.nn.Module, loss: Tensor, config: RunConfig, split: int, epoch: int) -> None:
    """Raise :class:`TrainingDivergedError` when the loss or a parameter is inf or nan after an update.

    One fused sum per epoch; without it a diverged update surfaces at the next forward pass as an encoder
    output full of nan, which reads like bad input features.
    """
    sums = torch.stack([loss.detach().reshape(()).float(), *(p.detach().sum().float() for p in model.parameters())])
    if bool(torch.isfinite(sums).all()):
        return
    what = "the training loss" if not bool(torch.isfinite(sums[0])) else "a parameter"
    raise TrainingDivergedError(
        f"training diverged on split {split} at epoch {epoch}: {what} became inf or nan (lr={config.lr:g}, "
        f"weight_decay={config.weight_decay:g}). Fix: lower the learning rate, or the step size or T of the flow",
        split=split, epoch=epoch)


def check_run(config: RunConfig, dataset: Any) -> tuple[list[int], torch.device]:
    """The splits and device :func:`run` would use, after the checks it makes before training anything.

    Raises:
        ValueError: if a requested split does not exist, the device is unavailable, or the dataset was
            loaded with another feature normalisation than the config asks for.
    """
    normalized = getattr(dataset, "features_normalized", None)
    if config.normalize_features is not None and normalized is not None and normalized != config.normalize_features:
        raise ValueError(
            f"config.normalize_features={config.normalize_features} but the dataset was loaded with "
            f"features_normalized={normalized}; load it with load_run_dataset(config, ...)"
        )
    splits = list(config.splits) if config.splits is not None else list(range(dataset.num_splits))
    missing = [s for s in splits if s >= dataset.num_splits]
    if missing:
        raise ValueError(
            f"dataset {dataset.name!r} has splits 0..{dataset.num_splits - 1}; split(s) {missing} do not exist"
        )
    return splits, _device(config)


def run(config: RunConfig, dataset: Any, *, progress: Progress = False,
        on_split: Callable[[SplitResult], None] | None = None) -> RunResult:
    """Train one model per split of ``config.splits`` (default: every split of the dataset).

    The graph operator and the device features are built once and shared by all splits.

    Args:
        config: the run configuration; ``config.dataset`` is informational here (``dataset`` is used).
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        progress: ``True`` for a tqdm bar per split on stderr, or a per-epoch callback.
        on_split: called with each finished :class:`SplitResult`.

    Raises:
        ValueError: if a requested split does not exist.
    """
    started = time.perf_counter()
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    splits, device = check_run(config, dataset)
    graph = build_graph(dataset.data, config, device)
    features = prepare_features(dataset.data.x, device)
    results = []
    for split in splits:
        result = train_split(config, dataset, split, graph=graph, features=features, progress=progress)
        results.append(result)
        if on_split is not None:
            on_split(result)
    return RunResult(
        config=config,
        dataset=dataset_summary(dataset),
        metric=dataset.metric,
        splits=results,
        wall_time=time.perf_counter() - started,
        date=date,
    )
