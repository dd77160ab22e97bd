"""Hyperparameter search: the search space, and the lines a search leaves in the header of the config it found.

A search space is a TOML file with two tables of :class:`~continuous_gnn.training.RunConfig` fields::

    [search]                                  # searched unless tune --fix keeps a key at its value
    hidden = { categorical = [32, 64] }       # the choices, values of the field's type
    time = { uniform = [0.5, 5.0] }           # the bounds of a float field, low < high

    [also]                                    # searched only when tune --also names the key
    epochs = { categorical = [150, 300] }

The package ships the official GRAFF random search as ``presets/search/graff.toml``
(:func:`~continuous_gnn.training.presets.search_space_path`), the default of ``continuous-gnn tune``.

A search writes the best config with a header whose "Selection:" line names the splits and seeds it trained
with (:func:`selection_scope`); :func:`search_seeds` reads them back, so that a run can refuse a seed at which
the validation metric is a maximum over trials.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig, check_overrides, field_type
from .config_io import read_config_file, read_toml, resolve_config

__all__ = ["KINDS", "SearchSpace", "load_search_space", "config_header", "selection_scope", "search_seeds",
           "largest_draw", "suggest"]

#: How a key is searched: a choice among listed values, or a float drawn uniformly between two bounds.
KINDS = ("categorical", "uniform")
#: Fields that say what to run on, not how: the data, the splits, the device, and the seed (``tune --seeds``).
_NOT_SEARCHABLE = ("dataset", "splits", "device", "seed")

_CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(RunConfig) if f.metadata.get("choices")}

Entry = tuple[str, tuple]


def _check_entry(name: Any, entry: Any, source: str) -> Entry:
    fields = RunConfig.field_names()
    if name not in fields:
        close = difflib.get_close_matches(str(name).replace("-", "_"), fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{source}: unknown key {name!r}{hint}; a key is a config field such as hidden or lr")
    if name in _NOT_SEARCHABLE:
        raise ValueError(f"{source}: {name} cannot be searched (searchable: every config field but "
                         f"{', '.join(_NOT_SEARCHABLE)}; tune --seeds sets the seeds)")
    pair = (tuple(entry.items())[0] if len(entry) == 1 else None) if isinstance(entry, Mapping) else entry
    if not (isinstance(pair, tuple) and len(pair) == 2 and pair[0] in KINDS):
        raise ValueError(f"{source}: {name} must be {{ categorical = [choices] }} or {{ uniform = [low, high] }}, "
                         f"got {entry!r}")
    kind, values = pair
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{source}: {name}: {kind} needs a non-empty list, got {values!r}")
    where = f"{source}: {name}"
    if kind == "categorical":
        checked = tuple(check_overrides({name: value}, source=where)[name] for value in values)
        valid = _CHOICES.get(name)
        unknown = [value for value in checked if valid is not None and value not in valid]
        if unknown:
            shown = ", ".join("none" if c is None else str(c) for c in valid)
            raise ValueError(f"{where}: unknown choice(s) {unknown}; choose from {shown}")
        if len(set(map(repr, checked))) != len(checked):
            raise ValueError(f"{where}: a choice is listed twice in {list(values)}")
        return kind, checked
    if field_type(name)[0] is not float:
        raise ValueError(f"{where}: uniform applies to float fields; use {{ categorical = [...] }}")
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise ValueError(f"{where}: uniform needs two numbers [low, high], got {list(values)}")
    low, high = (float(v) for v in values)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{where}: the range [{low:g}, {high:g}] is empty; uniform needs finite low < high")
    return kind, (low, high)


@dataclass(frozen=True)
class SearchSpace:
    """The keys a search varies, each ``(kind, values)``: ``("categorical", choices)`` or ``("uniform", (low, high))``.

    Attributes:
        search: keys searched by default.
        also: keys searched only when asked for (``tune --also``).
        source: where the space came from, for messages.

    Raises:
        ValueError: on an unknown or unsearchable key, a bad kind, an empty range or list, a value of the wrong
            type, or a key in both tables.
    """

    search: Mapping[str, Entry]
    also: Mapping[str, Entry]
    source: str = "search space"

    def __post_init__(self) -> None:
        both = sorted(set(self.search) & set(self.also))
        if both:
            raise ValueError(f"{self.source}: {', '.join(both)} in both [search] and [also]; keep each key in one")
        for table in ("search", "also"):
            entries = {name: _check_entry(name, entry, f"{self.source} [{table}]")
                       for name, entry in getattr(self, table).items()}
            object.__setattr__(self, table, entries)

    def widen(self, base: RunConfig, names: Iterable[str]) -> dict[str, Entry]:
        """The entries of ``names`` widened so that ``base``'s own values lie in them.

        A categorical gains the configured value as an extra choice; a uniform range is stretched to reach it.
        Trial 0 can then be the configured config itself, so the best trial is never worse on validation than
        the starting point.
        """
        space = {}
        for name in names:
            kind, values = self.search[name] if name in self.search else self.also[name]
            current = getattr(base, name)
            if kind == "categorical":
                values = values if current in values else (*values, current)
            else:
                values = (min(values[0], current), max(values[1], current))
            space[name] = (kind, values)
        self.check_values(base, space)
        return space

    def check_values(self, base: RunConfig, space: dict[str, Entry]) -> None:
        """Raise ``ValueError`` naming the key and value when a choice, or an end of a range, of ``space`` makes
        ``base`` an invalid config (e.g. a negative learning rate, or a dropout of 1): without this check each
        trial that draws it fails, and the search reports a best config that ignored the space."""
        for name, (kind, values) in space.items():
            for value in values:
                try:
                    base.replace(**{name: value})
                except ValueError as err:
                    what = "choice" if kind == "categorical" else "end of the uniform range"
                    keep_out = f"tune --fix {name}" if name in self.search else f"leave {name} out of --also"
                    raise ValueError(f"{self.source}: {name}: the {what} {value!r} makes no valid config from the "
                                     f"starting one ({err}); change the space, or keep {name} out of the search "
                                     f"({keep_out})") from None


def load_search_space(path: str | os.PathLike[str]) -> SearchSpace:
    """Read a search space file (the format is in this module's docstring).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not valid TOML or not a valid space (the message names the key and the fix).
    """
    path = Path(path)
    source = f"search space {str(path)!r}"
    tables = read_toml(path, source)
    other = [key for key in tables if key not in ("search", "also")]
    if other or not isinstance(tables.get("search"), dict) or not isinstance(tables.get("also", {}), dict):
        raise ValueError(f"{source}: expected a [search] table and an optional [also] table, got keys "
                         f"{list(tables)}")
    return SearchSpace(tables["search"], tables.get("also", {}), source)


# ---------------------------------------------------------------------- a tuned config's header


def config_header(path: str | os.PathLike[str]) -> list[str]:
    """The comment lines at the top of a TOML config file, each without its leading ``#`` and one space.

    A search that starts from a tuned file (``tune --config``) copies that file's header into its own, so a
    chain of searches keeps every step's selection line back to the preset it started from.
    """
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return lines


def selection_scope(splits: Sequence[int], seeds: Sequence[int]) -> str:
    """The "over splits ... at seed(s) ..." part of a search's "Selection:" header line (read by search_seeds)."""
    return f"over splits {','.join(map(str, splits))} at seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}"


_SELECTION = re.compile(r"Selection: mean validation \w+ over splits [\d,]+(?: at seeds? ([\d,]+))? = ")


def search_seeds(config_file: str | os.PathLike[str]) -> set[int]:
    """The base seeds that every search in a tuned config file's header trained with.

    ``tune`` names them on each "Selection:" line ("at seeds 0,1000"), and a chained search quotes the earlier
    lines; lines written before ``--seeds`` existed trained with the configuration's own seed, which the file keeps.

    Raises:
        ValueError: if the header has no "Selection:" line.
    """
    text = Path(config_file).read_text(encoding="utf-8")
    matches = _SELECTION.findall(text)
    if not matches:
        raise ValueError(f"{config_file}: no 'Selection:' line from continuous-gnn tune in its header")
    config_seed = resolve_config(read_config_file(config_file)).seed
    return {int(seed) for group in matches for seed in (group.split(",") if group else [config_seed])}


def largest_draw(base: RunConfig, space: Mapping[str, Entry]) -> tuple[RunConfig, dict[str, Any]]:
    """The config with the most flow parameters that a trial of ``space`` (the form :meth:`SearchSpace.widen` gives:
    key → ``(kind, values)``) can draw from ``base``, and the values that make it, so that a search can check
    before its first trial that its largest model fits in memory.

    It is found one key at a time (each categorical choice, each end of a uniform range), twice over, since a key
    such as ``time_pieces`` adds parameters only once another (``time_dependent``) allows it. A draw that cannot
    be built counts as no parameters: that trial fails on its own and allocates nothing.
    """
    from .preflight import flow_parameters

    def parameters(config: RunConfig) -> int:
        try:
            return flow_parameters(config)
        except (ValueError, TypeError, RuntimeError, NotImplementedError):
            return -1  # a draw that cannot build: the trial fails on its own, it allocates nothing

    largest, most, drawn = base, parameters(base), {}
    for _ in range(2):
        before = dict(drawn)
        for name, (_, values) in space.items():
            for value in values:
                try:
                    candidate = largest.replace(**{name: value})
                except (ValueError, TypeError):
                    continue
                count = parameters(candidate)
                if count > most:
                    largest, most, drawn[name] = candidate, count, value
        if drawn == before:
            break
    return largest, drawn


def suggest(trial: Any, name: str, space: Mapping[str, Entry]) -> Any:
    """An Optuna ``trial``'s value of key ``name`` of ``space``: a categorical choice, or a float drawn uniformly
    between the bounds."""
    kind, values = space[name]
    if kind == "categorical":
        return trial.suggest_categorical(name, list(values))
    return trial.suggest_float(name, *values)
