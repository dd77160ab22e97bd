r"""The training loop: full-batch node classification with the GRAFF protocol, one model per split.

Protocol (as in the paper's code, ``run_GNN.py``): one model per split, trained full-batch with Adam for
``epochs`` epochs (no early stopping unless ``patience`` is set). After every epoch one forward pass in eval mode
under ``torch.no_grad()`` scores the train, validation and test nodes; the reported test metric is the one at the
epoch with the **best validation metric** (the first such epoch on ties). Over splits the result is the mean and
the **population** standard deviation (``ddof=0``, as the paper's code computes it).

Seeds: split ``i`` is trained with seed ``config.seed + i`` (the split *index*, so re-running one split alone
reproduces it). That seed drives parameter initialisation and every dropout mask. It is set with
``torch.manual_seed`` (every device) inside :func:`torch.random.fork_rng`, so the caller's global random state is
restored afterwards. The Geom-GCN splits are fixed files, so no randomness enters the split itself.

Regularisers (``kinetic_weight``, ``jacobian_weight`` > 0): the training step integrates the kinetic energy
:math:`\int_0^T \|f\|^2 dt` and/or the Jacobian Frobenius norm :math:`\int_0^T \|\partial_x f\|_F^2 dt` alongside
the flow (:func:`~continuous_gnn.regularized_forward`) and minimises
``cross_entropy + kinetic_weight * kinetic + jacobian_weight * jacobian``. The Hutchinson probe of the Jacobian
term is drawn from a ``torch.Generator`` seeded with the split seed (one probe per epoch), so the dropout
masks are the same draws as without regularisers. Evaluation is never regularised. With both weights 0 the
training step is the plain ``model.forward_with_solution``.

The metric is accuracy, or ROC-AUC for binary datasets (``dataset.metric == "roc_auc"``), computed with torch.

Nothing here prints: progress goes to a callback receiving :class:`~continuous_gnn.training.records.EpochInfo`
after every epoch (the command line draws a bar with it).
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..errors import TrainingDivergedError
from ..graph import Graph
from ..ode.regularizers import regularized_forward
from .build import build_graph, build_model, prepare_features
from .config import RunConfig
from .metrics import metrics
from .records import EpochInfo, KeptModel, RunResult, SplitResult, dataset_summary

__all__ = ["KEEP_CHOICES", "split_seed", "train_split", "check_run", "run"]

#: What :func:`train_split` can keep of the trained model: nothing, the best-validation epoch's or the last.
KEEP_CHOICES = (None, "best", "last")

Progress = Callable[[EpochInfo], None]


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


def _check_finite(model: torch.nn.Module, loss: Tensor, config: RunConfig, split: int, epoch: int) -> None:
    """Raise :class:`TrainingDivergedError` when the loss or a parameter is inf or nan after an update.

    One fused sum per epoch; without it a diverged update surfaces at the next forward pass as an encoder
    output full of nan, which reads like bad input features.
    """
    sums = torch.stack([loss.detach().reshape(()).float(), *(p.detach().sum().float() for p in model.parameters())])
    if bool(torch.isfinite(sums).all()):
        return
    raise _diverged(config, split, epoch, "the training loss" if not bool(torch.isfinite(sums[0])) else "a parameter")


def _diverged(config: RunConfig, split: int, epoch: int, what: str) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged on split {split} at epoch {epoch}: {what} became inf or nan (lr={config.lr:g}, "
        f"weight_decay={config.weight_decay:g}). Fix: lower the learning rate, or the step size or T of the flow",
        split=split, epoch=epoch)


def train_split(
    config: RunConfig,
    dataset: Any,
    split: int,
    *,
    graph: Graph | None = None,
    features: Tensor | None = None,
    progress: Progress | None = None,
    keep: str | None = None,
) -> SplitResult:
    """Train and evaluate one model on one split (see the module docstring for the protocol).

    Args:
        config: the run configuration.
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        split: split index.
        graph: the operator from :func:`~continuous_gnn.training.build.build_graph` on the config's device;
            built here when not given (pass it to reuse one graph for every split).
        features: the features from :func:`~continuous_gnn.training.build.prepare_features` on the device;
            prepared here when not given.
        progress: called with an :class:`~continuous_gnn.training.records.EpochInfo` after every epoch.
        keep: ``"best"`` to return the model with the parameters of the best validation epoch (first on
            ties), ``"last"`` with those after the last epoch, in ``result.kept``; ``None`` keeps nothing
            (default: ``None``).

    Returns:
        SplitResult.

    Raises:
        ValueError: on an invalid split index, device or ``keep``.
        IntegrationError: if a solve fails (e.g. the state blows up).
        TrainingDivergedError: if the loss or a parameter becomes inf or nan (a learning rate too large).
    """
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
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

    losses: list[float] = []
    train_curve: list[float] = []
    val_curve: list[float] = []
    nfe_forward: list[int] = []
    nfe_backward: list[int] = []
    kinetic_values: list[float] = []
    jacobian_values: list[float] = []
    use_kinetic, use_jacobian = config.kinetic_weight > 0, config.jacobian_weight > 0
    best_val, best_epoch, best = -math.inf, 0, (math.nan, math.nan, math.nan)
    kept_state: dict[str, Tensor] | None = None
    kept_info: tuple[int, float, float, float, float] | None = None
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
            try:
                optimizer.step()
            except RuntimeError as err:
                if "overflow" not in str(err):
                    raise
                # A learning rate beyond float32 overflows inside Adam before any parameter turns inf.
                raise _diverged(config, split, epoch, "the update") from err
            _check_finite(model, loss, config, split, epoch)
            nfe_forward.append(solution.stats.nfe_forward)
            nfe_backward.append(solution.stats.nfe_backward)

            model.eval()
            with torch.no_grad():
                scores = metrics(model(features, graph), y, masks, dataset.metric)
                loss_value, train_value, val_value, test_value = torch.cat(
                    [loss.detach().reshape(1).to(scores.dtype), scores]
                ).tolist()
            losses.append(loss_value)
            train_curve.append(train_value)
            val_curve.append(val_value)
            improved = val_value > best_val
            if improved:
                best_val, best_epoch, best = val_value, epoch, (train_value, val_value, test_value)
            if (keep == "best" and improved) or keep == "last":
                kept_info = (epoch, train_value, val_value, test_value, loss_value)
                if keep == "best":
                    kept_state = copy.deepcopy(model.state_dict())
            if progress is not None:
                progress(EpochInfo(split, epoch, config.epochs, loss_value, train_value, val_value,
                                   best_val, best_epoch))
            if config.patience is not None and epoch - best_epoch >= config.patience:
                break
        loop_time = time.perf_counter() - loop_started
    if best_epoch == 0:  # the validation metric was nan throughout (e.g. a one-class validation set)
        best_epoch = len(val_curve)
    kept = None
    if keep is not None and kept_info is not None:
        if kept_state is not None:
            model.load_state_dict(kept_state)
        kept = KeptModel(model.eval(), *kept_info)
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
        kept=kept,
    )


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


def run(config: RunConfig, dataset: Any, *, progress: Progress | None = None,
        on_split: Callable[[SplitResult], None] | None = None) -> RunResult:
    """Train one model per split of ``config.splits`` (default: every split of the dataset).

    The graph operator and the device features are built once and shared by all splits.

    Args:
        config: the run configuration; ``config.dataset`` is informational here (``dataset`` is used).
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        progress: called with an :class:`~continuous_gnn.training.records.EpochInfo` after every epoch.
        on_split: called with each finished :class:`~continuous_gnn.training.records.SplitResult`.

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
