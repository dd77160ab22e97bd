"""A study's units of work: what identifies each one, and the computation of its rows.

A sweep (:func:`~continuous_gnn.studies.depth_units`, :func:`~continuous_gnn.studies.homophily_units`) is a list
of units, each one trajectory or one trained model. The sweep functions run them in order; the ``study`` command
saves each unit's rows as soon as it finishes, under the unit's settings, and skips the units whose rows it finds
(:func:`~continuous_gnn.training.finished_records` with :func:`unit_key`), so a killed study resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..training.records import settings_key

__all__ = ["StudyUnit", "unit_key"]


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
