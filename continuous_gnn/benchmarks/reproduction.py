"""The reproduction's runs: each preset's config with the run's overrides, its outcome, and the validation choice.

Each preset runs once, as configured; which linear-GRAFF run is held against the target is decided by the mean
validation metric alone (:func:`select_by_validation`), never by the test metric.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..data import NUM_SPLITS
from ..training.config import RunConfig
from ..training.config_io import read_config_file, resolve_config
from ..training.preflight import missing_splits
from .reference import LINEAR

__all__ = ["Outcome", "preset_config", "check_splits", "select_by_validation"]


@dataclass
class Outcome:
    """What one preset's run on one dataset gave; metrics in %, means over its splits."""

    dataset: str
    model: str
    status: str  # "ok", "unavailable", "failed", "absent" (no preset file for an optional model)
    reason: str = ""
    test_mean: float = float("nan")
    test_std: float = float("nan")
    val_mean: float = float("nan")
    splits: int = 0
    wall_time: float = 0.0
    epoch_time: float = 0.0
    best_epochs: list[int] = field(default_factory=list)
    epochs: int = 0
    record: str = ""
    test_nodes: int = 0  # summed over the splits that ran


def preset_config(path: str | os.PathLike[str], *, splits: Iterable[int] | None = None, epochs: int | None = None,
                  seed: int | None = None) -> RunConfig:
    """A preset file's config with the run's ``splits``, ``epochs`` and ``seed`` where they are given.

    Raises:
        ValueError: on a bad value (the message names the file or the flag).
    """
    overrides: dict = {}
    if splits is not None:
        overrides["splits"] = list(splits)
    if epochs is not None:
        overrides["epochs"] = epochs
    if seed is not None:
        overrides["seed"] = seed
    return resolve_config(read_config_file(path), overrides, sources=[str(path), "command-line flags"])


def check_splits(datasets: Iterable[str], splits: Iterable[int] | None) -> None:
    """Raise ValueError unless every selected split exists in every selected dataset (known without its files)."""
    if splits is None:
        return
    for name in datasets:
        missing = missing_splits(splits, NUM_SPLITS[name])
        if missing is not None:
            raise ValueError(f"--splits: split(s) {missing} do not exist: {name} has splits "
                             f"0..{NUM_SPLITS[name] - 1}")


def select_by_validation(outcomes: Mapping[tuple[str, str], Outcome], name: str) -> Outcome | None:
    """The linear-GRAFF run held against the target: the highest mean validation metric, the paper preset on ties."""
    runs = [o for model in LINEAR if (o := outcomes.get((name, model))) is not None and o.status == "ok"]
    return max(runs, key=lambda o: o.val_mean, default=None)
