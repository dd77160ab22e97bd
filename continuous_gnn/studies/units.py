"""A study's units of work: what identifies each one, and the computation of its rows.

A sweep (:func:`~continuous_gnn.studies.depth_units`, :func:`~continuous_gnn.studies.homophily_units`) is a list
of units, each one trajectory or one trained model. The sweep functions run them in order; :func:`run_units` (the
``study`` command's runner) saves each unit's rows as soon as it finishes, under the unit's settings, and skips the
units whose rows it finds (:func:`~continuous_gnn.training.finished_records` with :func:`unit_key`), so a killed
study resumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training.records import finished_records, read_json_object, save_record, settings_key

__all__ = ["StudyUnit", "unit_key", "run_units"]


@dataclass(frozen=True)
class StudyUnit:
    """One unit of a study.

    Attributes:
        name (str): a short label, unique within its sweep, e.g. ``"prod-euler-tau0.5"``.
        settings (Mapping): what the unit computes, JSON-compatible: the resolved model config (seed included),
            the data it draws and the solver; two units with equal settings compute equal rows.
        compute (callable): the unit's rows (a list of flat dicts), computed when called.
    """

    name: str
    settings: Mapping[str, Any]
    compute: Callable[[], list[dict[str, Any]]]


def unit_key(record: Mapping[str, Any]) -> str:
    """The identity of a saved unit, a JSON object whose ``settings`` are its unit's (and whatever else the
    command adds to them): :func:`~continuous_gnn.training.settings_key` of them.

    Raises:
        KeyError: if ``record`` has no ``settings`` (it is not a saved unit).
        TypeError: if they are not a JSON object.
    """
    settings = record["settings"]
    if not isinstance(settings, Mapping):
        raise TypeError(f"a saved unit's settings are a JSON object, got {type(settings).__name__}")
    return settings_key(settings)


def run_units(units: Sequence[StudyUnit], folder: str | os.PathLike[str], context: Mapping[str, Any] | None = None, *,
              on_computed: Callable[[StudyUnit, list[dict[str, Any]]], None] | None = None,
              on_found: Callable[[StudyUnit, Path], None] | None = None) -> list[dict[str, Any]]:
    """The rows of every unit, in order. A unit whose rows an earlier run saved in ``folder`` under the same
    settings is read back, not computed; the others are computed and saved there (atomically) as each finishes,
    so that a study killed and run again continues where it stopped.

    Args:
        units: the sweep's units.
        folder: where the units' records live (created when missing).
        context: what else identifies every unit beyond its own settings (the data, a checkpoint's weights);
            joined to each unit's settings in its record and its key.
        on_computed, on_found: called after a unit is computed with its rows, or found with its record's path.
    """
    folder = Path(folder)
    done = finished_records(folder, key_of=unit_key)
    rows: list[dict[str, Any]] = []
    for unit in units:
        settings = {**unit.settings, **(context or {})}
        key = settings_key(settings)
        if key in done:
            found = read_json_object(done[key])["rows"]
            if on_found is not None:
                on_found(unit, done[key])
        else:
            found = unit.compute()
            done[key] = save_record({"settings": settings, "rows": found}, folder / f"{unit.name}.json", numbered=True)
            if on_computed is not None:
                on_computed(unit, found)
        rows += found
    return rows
