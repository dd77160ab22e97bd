r"""The training loop: node classification with the GRAFF protocol, one model per split, full batch by default.

Protocol (as in the paper's code, ``run_GNN.py``): one model per split, trained full-batch with Adam (or Adamax,
``optimizer``) for ``epochs`` epochs (no early stopping unless ``patience`` is set). After every epoch one forward
pass in eval mode under ``torch.no_grad()`` scores the train, validation and test nodes; the reported test metric is
the one at the epoch with the **best validation metric** (the first such epoch on ties). Over splits the result is
the mean and the **population** standard deviation (``ddof=0``, as the paper's code computes it).

With ``eval_time_multiple = c`` the evaluation also chooses the integration time: it integrates to :math:`cT`,
scores the prediction after every solver step, and keeps the step of best validation metric
(:mod:`~continuous_gnn.training.time_selection`, GRAND's early-stopping evaluation); the epoch's metrics are that
step's, and its time is recorded in the split's ``eval_time`` curve. Training still integrates to :math:`T`.

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

Mini-batches (``config.batching`` other than ``"none"``, :mod:`~continuous_gnn.training.batches`): an epoch is
one optimiser step per batch, each on a subgraph with its own normalised operator and the batch's training nodes
as loss nodes; batches without training nodes are skipped. The recorded loss of an epoch is the mean of the
batch losses weighted by their training nodes, the solver statistics are summed over the batches and the
regularisers averaged. Evaluation is one full-graph pass per epoch, or with ``evaluation = "batches"`` one pass per
fixed subgraph (:class:`~continuous_gnn.training.batches.EvaluationBatches`), in which case the full operator is
never built. With ``batching = "none"`` the epoch is the single full-batch step described above.

Across processes (``world``, :mod:`~continuous_gnn.training.distributed`): the training step runs under DDP, each
rank on its own batches, and the epoch's loss and statistics are summed over the ranks. A rank whose batch has no
training nodes still joins the step (its loss is exactly zero) so the ranks stay in step. Rank ``r > 0`` draws its
dropout masks from its own stream (seed ``split_seed + r·2³²``); rank 0's is that of a single process.

Checkpoints (:mod:`~continuous_gnn.training.resume`): with a
:class:`~continuous_gnn.training.resume.Checkpointing`, :func:`run` saves the whole state every ``every`` epochs
and at the end of each split, and a resumed run continues from it to the result of an uninterrupted one. With a
:class:`~continuous_gnn.training.stopping.StopRequest` beside them, a run asked to stop writes a checkpoint at the
end of the epoch in progress and raises :class:`~continuous_gnn.training.stopping.RunStopped`. The per-epoch
curves and the best epoch are kept by a :class:`~continuous_gnn.training.history.SplitHistory`.

Nothing here prints: progress goes to a callback receiving :class:`~continuous_gnn.training.records.EpochInfo`
after every epoch (the command line draws a bar with it).
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..graph import Graph
from .batches import Batch, EpochBatches, EvaluationBatches, check_batching, metis_parts
from .build import apply_node_order, build_graph, build_model, may_leave_parameters_unused, prepare_features
from .config import RunConfig
from .distributed import World
from .history import SplitHistory
from .metrics import metrics
from .preflight import check_splits, training_device
from .records import EpochInfo, RunResult, SplitResult, dataset_summary
from .resume import Checkpointing, RunCheckpoints
from .step import EpochTotals, TrainingStep, batch_loss, check_finite, diverged, make_optimizer, rank_seed
from .stopping import RunStopped, StopRequest
from .time_selection import best_step, scores_along_flow

__all__ = ["KEEP_CHOICES", "split_seed", "train_split", "check_run", "run"]

#: What :func:`train_split` can keep of the trained model: nothing, the best-validation epoch's or the last.
KEEP_CHOICES = (None, "best", "last")

Progress = Callable[[EpochInfo], None]


def split_seed(config: RunConfig, split: int) -> int:
    """The seed of split ``split``: ``config.seed + split``."""
    return config.seed + split


def _fork_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def train_split(
    config: RunConfig,
    dataset: Any,
    split: int,
    *,
    graph: Graph | None = None,
    features: Tensor | None = None,
    progress: Progress | None = None,
    keep: str | None = None,
    parts: list[Tensor] | None = None,
    world: World | None = None,
    checkpoints: RunCheckpoints | None = None,
    stop: StopRequest | None = None,
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
        parts: the METIS clusters of :func:`~continuous_gnn.training.batches.metis_parts` with
            ``batching = "metis"``; computed here when not given (pass them to reuse them for every split).
        world: this process's place in a data-parallel run (:func:`~continuous_gnn.training.distributed.join`);
            ``None`` trains in this process alone (default: ``None``).
        checkpoints: the run's checkpoints (:func:`run` makes them from a
            :class:`~continuous_gnn.training.resume.Checkpointing`), made with the same ``keep``: the split
            continues from their state when they hold some of it, and is checkpointed every ``every`` epochs
            (default: ``None``, none).
        stop: read after every epoch but the split's last; once set, the split is checkpointed and
            :class:`~continuous_gnn.training.stopping.RunStopped` raised (needs ``checkpoints``; default: ``None``).

    Returns:
        SplitResult.

    Raises:
        ValueError: on an invalid split index, device or ``keep`` (or one that ``checkpoints`` were not made with),
            or batching that does not fit the dataset or the processes
            (:func:`~continuous_gnn.training.batches.check_batching`).
        MissingPackageError: if the package of ``config.batching`` is not installed.
        IntegrationError: if a solve fails (e.g. the state blows up).
        TrainingDivergedError: if the loss or a parameter becomes inf or nan (a learning rate too large).
        RunStopped: when ``stop`` is set, after the checkpoint of the epoch in progress is written.
    """
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
    if checkpoints is not None and checkpoints.keep != keep:
        raise ValueError(f"keep={keep!r} but the checkpoints were made with keep={checkpoints.keep!r}: give "
                         "RunCheckpoints(..., keep=...) the same keep, which its checkpoints record")
    _check_stop(stop, checkpoints is not None, "checkpoints=RunCheckpoints(...)")
    started = time.perf_counter()
    device = training_device(config) if world is None else world.device(training_device(config))
    check_batching(config, dataset, [split], world_size=1 if world is None else world.size)
    train_mask, val_mask, test_mask = dataset.split(split)
    data = dataset.data
    if _needs_full_graph(config):
        graph = build_graph(data, config, device) if graph is None else graph
        features = prepare_features(data.x, device) if features is None else features
    y = data.y.to(device)
    masks = torch.stack([train_mask, val_mask, test_mask]).to(device)
    train_index = train_mask.nonzero().view(-1).to(device)
    y_train = y[train_index]
    seed = split_seed(config, split)
    evaluation = (EvaluationBatches(config, dataset, seed, device, parts=parts) if config.evaluation == "batches"
                  else None)
    use_kinetic, use_jacobian = config.kinetic_weight > 0, config.jacobian_weight > 0
    with torch.random.fork_rng(devices=_fork_devices(device)):
        torch.manual_seed(seed)
        model = build_model(config, dataset.num_features, dataset.num_classes).to(device)
        optimizer = make_optimizer(model, config)
        num_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
        # The probe has its own generator, so the global stream (init, dropout) is that of a plain run.
        probes = torch.Generator().manual_seed(seed) if use_jacobian else None
        step: nn.Module = TrainingStep(model, use_kinetic, use_jacobian)
        if world is not None:
            step = world.wrap(step, find_unused_parameters=may_leave_parameters_unused(config))
            if not world.is_main:
                torch.manual_seed(rank_seed(seed, world.rank))
        batches: EpochBatches | list[Batch]
        if config.batching == "none":
            batches = [Batch(features, graph, train_index, y_train)]
        else:
            batches = EpochBatches(config, dataset, split, seed, device, parts=parts,
                                   rank=0 if world is None else world.rank, world_size=1 if world is None else world.size)
        generators = {"probes": probes, "batches": batches.generator if isinstance(batches, EpochBatches) else None}
        restored = None if checkpoints is None else checkpoints.restore_split(split, model, optimizer, generators)
        history = restored or SplitHistory()
        earlier_wall, earlier_loop = history.wall_time, history.loop_time
        loop_started = time.perf_counter()
        for epoch in range(history.epochs_run + 1, config.epochs + 1):
            step.train()
            totals = EpochTotals()
            for batch in batches:
                if world is None and batch.train_index.numel() == 0:
                    continue
                optimizer.zero_grad(set_to_none=True)
                logits, solution, regs = step(batch.features, batch.graph, probes)
                loss = batch_loss(logits, batch)
                if use_kinetic:
                    loss = loss + config.kinetic_weight * regs["kinetic"]
                if use_jacobian:
                    loss = loss + config.jacobian_weight * regs["jacobian"]
                loss.backward()
                try:
                    optimizer.step()
                except RuntimeError as err:
                    if "overflow" not in str(err):
                        raise
                    # A learning rate beyond float32 overflows inside Adam before any parameter turns inf.
                    raise diverged(config, split, epoch, "the update") from err
                check_finite(model, loss, config, split, epoch)
                totals.add(loss, batch.train_index.numel(), solution, regs)
            epoch_loss, epoch_nfe_forward, epoch_nfe_backward, epoch_regs = totals.summary(world, device)
            regularizers = {name: epoch_regs.get(name, math.nan)
                            for name, used in (("kinetic", use_kinetic), ("jacobian", use_jacobian)) if used}

            model.eval()
            eval_time = None
            with torch.no_grad():
                if config.eval_time_multiple is not None:
                    times, step_scores = scores_along_flow(model, features, graph, y, masks, dataset.metric,
                                                           t_end=config.eval_time_multiple * config.time)
                    chosen = best_step(step_scores)
                    scores, eval_time = step_scores[chosen], float(times[chosen])
                else:
                    logits = model(features, graph) if evaluation is None else evaluation.logits(model)
                    scores = metrics(logits, y, masks, dataset.metric)
                loss_value, train_value, val_value, test_value = torch.cat(
                    [epoch_loss.reshape(1).to(scores.device, scores.dtype), scores]
                ).tolist()
            history.add_epoch(loss_value, train_value, val_value, test_value, (epoch_nfe_forward, epoch_nfe_backward),
                              regularizers, keep=keep, model=model, eval_time=eval_time)
            if progress is not None:
                progress(EpochInfo(split, epoch, config.epochs, loss_value, train_value, val_value,
                                   history.best_val, history.best_epoch))
            if config.patience is not None and epoch - history.best_epoch >= config.patience:
                break
            # Not at the split's end, which the caller checkpoints and where it reads the request itself.
            stopping = stop.agreed(world, device) if stop is not None and epoch < config.epochs else None
            if checkpoints is not None and (stopping is not None or checkpoints.due(epoch)):
                history.wall_time = earlier_wall + time.perf_counter() - started
                history.loop_time = earlier_loop + time.perf_counter() - loop_started
                checkpoints.save_epoch(split, history, model, optimizer, generators)
            if stopping is not None:
                raise RunStopped(stopping, split=split, epochs_done=epoch, checkpoint=checkpoints.last_written)
        history.loop_time = earlier_loop + time.perf_counter() - loop_started
    history.wall_time = earlier_wall + time.perf_counter() - started
    return history.result(split=split, seed=seed, num_parameters=num_parameters, model=model)


def _check_stop(stop: StopRequest | None, checkpointed: bool, argument: str) -> None:
    if stop is None:
        return
    if not isinstance(stop, StopRequest):
        raise TypeError(f"stop must be a StopRequest, got {type(stop).__name__}")
    if not checkpointed:
        raise ValueError(f"stopping a run early needs checkpoints to stop into, or its training is lost: pass {argument} "
                         "beside stop")


def _needs_full_graph(config: RunConfig) -> bool:
    """Whether a run uses the whole graph's operator: to train full batch, or to evaluate in one pass."""
    return config.batching == "none" or config.evaluation == "full"


def _benchmark(name: Any) -> str | None:
    """The canonical name of a registered benchmark, ``None`` for any other name."""
    from ..data import canonical_name

    try:
        return canonical_name(name) if isinstance(name, str) else None
    except ValueError:
        return None


def check_run(config: RunConfig, dataset: Any, *, world: World | None = None) -> tuple[list[int], torch.device]:
    """The splits and device :func:`run` would use, after the checks it makes before training anything.

    Raises:
        ValueError: if a requested split does not exist, the device is unavailable, the dataset is another
            benchmark than ``config.dataset`` names (a dataset of the user's own is taken whatever the config
            names), the dataset was loaded with another feature normalisation than the config asks for, or the
            batching does not fit the dataset or the processes
            (:func:`~continuous_gnn.training.batches.check_batching`).
        MissingPackageError: if the package of ``config.batching`` is not installed.
    """
    named, given = _benchmark(config.dataset), _benchmark(getattr(dataset, "name", None))
    if named is not None and given is not None and named != given:
        # The record would file a run on one benchmark under another's name.
        raise ValueError(f"config.dataset is {config.dataset!r} but the dataset given is {dataset.name!r}; load the "
                         "one the config names (load_run_dataset(config, ...)) or set config.dataset to this one")
    normalized = getattr(dataset, "features_normalized", None)
    if config.normalize_features is not None and normalized is not None and normalized != config.normalize_features:
        raise ValueError(
            f"config.normalize_features={config.normalize_features} but the dataset was loaded with "
            f"features_normalized={normalized}; load it with load_run_dataset(config, ...)"
        )
    splits = list(config.splits) if config.splits is not None else list(range(dataset.num_splits))
    check_splits(dataset.name, splits, dataset.num_splits)
    device = training_device(config)
    check_batching(config, dataset, splits, world_size=1 if world is None else world.size)
    return splits, device if world is None else world.device(device)


def _train_splits(config: RunConfig, dataset: Any, splits: list[int], device: torch.device,
                  progress: Progress | None, on_split: Callable[[SplitResult], None] | None,
                  world: World | None, checkpoints: RunCheckpoints | None,
                  stop: StopRequest | None, keep: str | None) -> list[SplitResult]:
    """Train the splits of :func:`run` one after another, the finished ones of a resumed run first reported."""
    graph = features = None
    if _needs_full_graph(config):
        graph, features = build_graph(dataset.data, config, device), prepare_features(dataset.data.x, device)
    parts = metis_parts(config, dataset.data) if config.batching == "metis" else None
    results = [] if checkpoints is None else list(checkpoints.finished)
    if on_split is not None:
        for result in results:
            on_split(result)
    for split in splits[len(results):]:
        result = train_split(config, dataset, split, graph=graph, features=features, progress=progress, parts=parts,
                             world=world, checkpoints=checkpoints, stop=stop, keep=keep)
        results.append(result)
        if checkpoints is not None:
            checkpoints.finish_split(result)
        if on_split is not None:
            on_split(result)
        if stop is not None and len(results) < len(splits) and (reason := stop.agreed(world, device)) is not None:
            raise RunStopped(reason, split=split, epochs_done=result.epochs_run, checkpoint=checkpoints.last_written)
    return results


def run(config: RunConfig, dataset: Any, *, progress: Progress | None = None,
        on_split: Callable[[SplitResult], None] | None = None, world: World | None = None,
        checkpointing: Checkpointing | None = None, stop: StopRequest | None = None,
        keep: str | None = None) -> RunResult:
    """Train one model per split of ``config.splits`` (default: every split of the dataset).

    The graph operator, the device features and the METIS clusters (``batching = "metis"``) are built once and
    shared by all splits.

    Args:
        config: the run configuration; ``config.dataset`` names the dataset in the record (``dataset`` is used,
            and must be that benchmark when both are benchmarks, :func:`check_run`).
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        progress: called with an :class:`~continuous_gnn.training.records.EpochInfo` after every epoch.
        on_split: called with each finished :class:`~continuous_gnn.training.records.SplitResult` (when resuming,
            first with those the checkpoint holds).
        world: this process's place in a data-parallel run; every rank returns the same result (default:
            ``None``, one process).
        checkpointing: where and how often to write checkpoints, and whether to resume from the newest one
            (:mod:`~continuous_gnn.training.resume`); the result of a resumed run is that of an uninterrupted one
            (default: ``None``, no checkpoints).
        stop: a :class:`~continuous_gnn.training.stopping.StopRequest` read after every epoch: once it is set, the
            run writes a checkpoint and stops (:mod:`~continuous_gnn.training.stopping`; needs ``checkpointing``;
            across processes every rank passes one; default: ``None``).
        keep: what each split's result keeps of its model, as in :func:`train_split` (``"best"``, ``"last"`` or
            ``None``); the splits a resumed run finished in an earlier process keep none (default: ``None``).

    Raises:
        ValueError: if a requested split does not exist, or on the other errors of :func:`check_run`.
        CheckpointError: if resuming finds no readable checkpoint, or one of another run (the message names the
            differences); see :class:`~continuous_gnn.training.resume.RunCheckpoints`.
        RunStopped: when ``stop`` is set before the last epoch of the last split, after the checkpoint it names
            is written.
    """
    _check_stop(stop, checkpointing is not None, "checkpointing=Checkpointing(folder)")
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
    started = time.perf_counter()
    date = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    splits, device = check_run(config, dataset, world=world)
    dataset = apply_node_order(config, dataset)
    checkpoints = None if checkpointing is None else RunCheckpoints(checkpointing, config, splits, device, world, keep)
    try:
        results = _train_splits(config, dataset, splits, device, progress, on_split, world, checkpoints, stop, keep)
    finally:  # a failed or interrupted run gives its folder up too, so that another process can resume it
        if checkpoints is not None:
            checkpoints.close()
    return RunResult(
        config=config,
        dataset=dataset_summary(dataset),
        metric=dataset.metric,
        splits=results,
        wall_time=time.perf_counter() - started if checkpoints is None else checkpoints.run_time(),
        date=date,
        resumed_from=None if checkpoints is None else checkpoints.resumed_from,
    )
