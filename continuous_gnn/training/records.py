"""The JSON record of a run: per-split results, the aggregate, the resolved config, seeds and versions."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_text
from .config import RunConfig
from .metrics import population_mean_std

__all__ = ["RECORD_FORMAT", "EpochInfo", "KeptModel", "SplitResult", "RunResult", "dataset_summary", "environment",
           "save_record", "load_record", "read_json_object", "RUN_RECORD_KEYS", "settings_key", "record_key",
           "run_record_key", "finished_records"]

#: Version of the JSON record layout written by :meth:`RunResult.to_record`.
RECORD_FORMAT = 1


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
class KeptModel:
    """A model kept by the training loop (``train_split(..., keep="best" | "last")``), in eval mode.

    Attributes:
        model (torch.nn.Module): the model with the parameters of :attr:`epoch`.
        epoch (int): the 1-based epoch whose parameters it holds: the best validation epoch (first on ties)
            for ``keep="best"``, the last epoch run for ``keep="last"``.
        train, val, test (float): its metrics after that epoch.
        loss (float): the training loss of that epoch.
    """

    model: torch.nn.Module
    epoch: int
    train: float
    val: float
    test: float
    loss: float


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
        eval_time: the integration time each epoch's evaluation chose on validation (``eval_time_multiple``,
            :mod:`~continuous_gnn.training.time_selection`); empty when evaluation integrates to T.
        kept (KeptModel or None): the trained model, when the loop was asked to keep it (never written to a
            record).
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
    eval_time: list[float] = field(default_factory=list, repr=False)
    kept: KeptModel | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible fields (everything but :attr:`kept`)."""
        out = asdict(replace(self, kept=None))
        del out["kept"]
        return out


@dataclass
class RunResult:
    """The outcome of :func:`run`: the config, dataset facts and one :class:`SplitResult` per split."""

    config: RunConfig
    dataset: dict[str, Any]
    metric: str
    splits: list[SplitResult]
    wall_time: float
    date: str
    #: Where a resumed run continued from: the checkpoint, and the versions and machine of the process that wrote
    #: it (``None`` for a run that was not resumed).
    resumed_from: dict[str, Any] | None = None

    @property
    def test_metrics(self) -> list[float]:
        return [s.test_metric for s in self.splits]

    def aggregate(self) -> dict[str, Any]:
        """Mean and population std (ddof=0) over splits of the test, validation and train metrics, and of the
        integration time chosen at the best epoch when evaluation chose one (``eval_time_mean``/``_std``)."""
        out: dict[str, Any] = {"metric": self.metric, "std": "population (ddof=0)", "num_splits": len(self.splits)}
        for key in ("test", "val", "train"):
            mean, std = population_mean_std([getattr(s, f"{key}_metric") for s in self.splits])
            out[f"{key}_mean"], out[f"{key}_std"] = mean, std
        out["wall_time"] = self.wall_time
        out["epoch_time_mean"] = population_mean_std([s.epoch_time for s in self.splits])[0]
        chosen = [s.eval_time[s.best_epoch - 1] for s in self.splits if s.eval_time]
        if chosen:  # the integration time chosen at each split's best epoch (eval_time_multiple)
            out["eval_time_mean"], out["eval_time_std"] = population_mean_std(chosen)
        return out

    @classmethod
    def from_parts(cls, config: RunConfig, parts: Sequence[Mapping[str, Any]]) -> RunResult:
        """The run of ``config`` from the records of runs that each trained some of its splits, as a suite run
        split over processes does; the splits are those of a run over all of theirs, since each split trains from
        its own seed.

        The splits come in index order. ``date`` is the earliest part's start and ``wall_time`` the time from it
        to the latest part's end: the run's span on the clock, during which other work may also have run.

        Raises:
            ValueError: if ``parts`` is empty, a part's config differs from ``config`` in more than its splits, a
                split comes twice, or the parts' splits are not ``config.splits`` (when that is set).
        """
        if not parts:
            raise ValueError("no part records to merge")
        splits = sorted((SplitResult(**s) for part in parts for s in part["splits"]), key=lambda s: s.split)
        for part in parts:
            part_config = RunConfig.from_dict(part["config"])
            if part_config.replace(splits=config.splits) != config:
                raise ValueError(f"a part record of {part_config.dataset} seed {part_config.seed} is of another "
                                 "run: its config differs from the merged run's in more than its splits")
        indices = [s.split for s in splits]
        if len(set(indices)) != len(indices):
            raise ValueError(f"the part records hold a split twice: {indices}")
        if config.splits is not None and indices != sorted(config.splits):
            raise ValueError(f"the part records hold splits {indices}, the run asks for {sorted(config.splits)}")
        starts = [_dt.datetime.fromisoformat(part["date"]) for part in parts]
        ends = [start + _dt.timedelta(seconds=part["aggregate"]["wall_time"]) for start, part in zip(starts, parts)]
        return cls(config=config, dataset=parts[0]["dataset"], metric=parts[0]["aggregate"]["metric"],
                   splits=splits, wall_time=(max(ends) - min(starts)).total_seconds(),
                   date=min(starts).isoformat(timespec="seconds"))

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
        if self.resumed_from is not None:  # the record's versions and machine are this process's
            record["resumed_from"] = self.resumed_from
        for key, value in extra.items():
            if key in record:
                raise ValueError(f"extra record key {key!r} would overwrite a standard entry")
            record[key] = value
        return record


def environment() -> dict[str, Any]:
    """Package versions and machine facts for a record."""
    import torch_geometric
    import torchdiffeq

    from .. import __version__
    from ..allocator import current_allocator

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
            "allocator": current_allocator(),
        },
    }


def save_record(record: dict[str, Any], path: str | os.PathLike[str], *, numbered: bool = False) -> Path:
    """Write a JSON record atomically (temporary file in the same folder, then :func:`os.replace`) and return the
    path written.

    Args:
        record (dict): the JSON object.
        path: the destination.
        numbered (bool): never replace a file; write to the first free name of ``path``, ``<stem>-1.json``, ...
            (:func:`continuous_gnn.atomic.atomic_write_text`) (default: ``False``).

    Raises:
        TypeError: if ``record`` is not a dict (a record is a JSON object, e.g. :meth:`RunResult.to_record`).
    """
    if not isinstance(record, dict):
        raise TypeError(f"record must be a dict (a JSON object such as RunResult.to_record()), got {type(record).__name__}")
    return atomic_write_text(path, json.dumps(record, indent=1, allow_nan=True) + "\n", numbered=numbered)


#: The keys every run record has since the first format (:meth:`RunResult.to_record`).
RUN_RECORD_KEYS = ("format", "config", "aggregate", "splits")
#: The entries of a run record's aggregate that the pages of ``reproduce`` and ``suite`` read.
AGGREGATE_KEYS = ("metric", "num_splits", "test_mean", "test_std", "val_mean", "wall_time", "epoch_time_mean")
#: The entries a run record must have besides :data:`RUN_RECORD_KEYS` for its run to be reused (a suite merges
#: the records of its splits from their dates and dataset facts).
REUSE_KEYS = ("date", "dataset")


def _required_split_fields() -> tuple[str, ...]:
    """The entries of a per-split result that :class:`SplitResult` cannot do without."""
    return tuple(field.name for field in dataclasses.fields(SplitResult)
                 if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING)


def _run_record_problem(record: Mapping[str, Any]) -> str | None:
    """What keeps ``record`` from being a whole run record, in words, or ``None``."""
    missing = [key for key in RUN_RECORD_KEYS if key not in record]
    if missing:
        return f"it lacks {missing} (a run record has {list(RUN_RECORD_KEYS)}, as written by RunResult.to_record)"
    aggregate, splits = record["aggregate"], record["splits"]
    if not isinstance(aggregate, dict) or (gaps := [key for key in AGGREGATE_KEYS if key not in aggregate]):
        return f"its aggregate lacks {gaps if isinstance(aggregate, dict) else list(AGGREGATE_KEYS)}"
    fields = _required_split_fields()
    if not isinstance(splits, list) or not all(isinstance(s, dict) and all(f in s for f in fields) for s in splits):
        return f"its splits are not a list of per-split results with {list(fields)}"
    if missing := [key for key in REUSE_KEYS if key not in record]:
        return f"it lacks {missing}"
    return None


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``, as written by :func:`save_record` (a run record or a unit of other work).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not UTF-8 JSON, is empty, or holds something other than a JSON object; the
            message names the path.
    """
    return _read_object(path, "record")


def _read_object(path: str | os.PathLike[str], what: str, shape: str = "a JSON object") -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{str(path)!r} is not a JSON {what}: it is not UTF-8 text ({err})") from err
    if not text.strip():
        raise ValueError(f"{str(path)!r} is empty, not a JSON {what} written by save_record")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); expected a {what} written by save_record") from err
    if not isinstance(record, dict):
        raise ValueError(f"{str(path)!r} holds a JSON {type(record).__name__}, not a continuous_gnn {what} "
                         f"({shape})")
    return record


def load_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run record written by :func:`save_record` from :meth:`RunResult.to_record`.

    Only the keys every run record has since the first format are required (:data:`RUN_RECORD_KEYS`, with the
    aggregate's :data:`AGGREGATE_KEYS`, each split's :class:`SplitResult` entries and :data:`REUSE_KEYS`); other
    records written by :func:`save_record` (e.g. the ``tune`` summary) are not run records and are rejected.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not UTF-8 JSON, is empty, or is not a continuous_gnn run record (not a JSON
            object, or lacking one of the keys above); the message names the path.
    """
    record = _read_object(path, "run record", f"a JSON object with keys {list(RUN_RECORD_KEYS)}")
    problem = _run_record_problem(record)
    if problem is not None:
        raise ValueError(f"{str(path)!r} is not a continuous_gnn run record: {problem}")
    return record


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


def settings_key(settings: Mapping[str, Any]) -> str:
    """What identifies a unit of work: its resolved settings (seed included), as canonical JSON.

    Two settings give the same key exactly when they are equal as JSON values, whatever the order of their keys.
    """
    return json.dumps(settings, sort_keys=True)


def record_key(config: RunConfig) -> str:
    """What identifies a run's record: :func:`settings_key` of its resolved config (seed included)."""
    return settings_key(config.to_dict())


def run_record_key(record: Mapping[str, Any]) -> str:
    """:func:`record_key` of a run record's config (the default identity of :func:`finished_records`).

    Raises:
        ValueError: if ``record`` is not a whole run record (as :func:`load_record` checks), or its config is not
            valid; so :func:`finished_records` skips a damaged record, and its run trains again.
    """
    problem = _run_record_problem(record)
    if problem is not None:
        raise ValueError(f"not a run record: {problem}")
    return record_key(RunConfig.from_dict(record["config"]))


def finished_records(folder: str | os.PathLike[str],
                     key_of: Callable[[Mapping[str, Any]], str] = run_record_key) -> dict[str, Path]:
    """The finished records in ``folder``, by their identity ``key_of(record)``.

    The default identifies run records by :func:`record_key` of their config; a command whose units of work are
    not runs passes its own ``key_of`` (e.g. :func:`settings_key` of the settings the unit stored), which raises
    ValueError, TypeError or KeyError for a record that is not one of its units.

    A record is written once its unit of work has finished, atomically (:func:`save_record`), so one that loads is
    complete; a file that does not load or is not identified (not a record, a foreign JSON) is skipped. Matching
    goes by identity, never by file name, so a renamed record is still found and a record of other settings is
    never taken for this one. When two files hold the same identity the first in name order is kept.
    """
    found: dict[str, Path] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            key = key_of(read_json_object(path))
        except (OSError, ValueError, TypeError, KeyError):
            continue
        found.setdefault(key, path)
    return found

