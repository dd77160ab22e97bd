"""Suites: a set of models run on a set of datasets under one protocol, beside published anchors.

A suite is a TOML file (the packaged ones are ``continuous_gnn/presets/suites/<name>.toml``)::

    title = "GRAND on the Planetoid public splits"
    page = "docs/grand.md"                 # where `continuous-gnn suite` writes its page (relative to the
                                           # project for a packaged suite, else to the suite file's folder)
    seeds = [5000, 5001]                   # base seeds; split i of a run uses seed + i
    notes = ["..."]                        # paragraphs printed under the table

    [[models]]
    label = "GRAND-l"
    preset = "grand_l"                     # a packaged preset, or
    # base = "graff"                       # a packaged preset whose dataset's config is the starting point,
    overrides = { energy = "attention_dirichlet" }   # with these config fields changed
    # base_dataset = "cora-lcc"            # optional, with base: read the base preset of this dataset instead
    datasets = ["cora-public", "citeseer-public"]
    # seeds = [5000]                       # optional: this model's own base seeds instead of the suite's

    [[anchors]]                            # published numbers shown beside ours
    model = "GRAND-l"                      # a model label of this suite, or any other name
    dataset = "cora-public"
    mean = 84.7
    std = 0.6
    source = "Chamberlain et al., ICML 2021, Table 1"
    target = "mean - std"                  # optional: hold our number against mean, or mean - std

Every (model, dataset, seed) is one :func:`~continuous_gnn.training.run` over the dataset's splits, with the
config fixed by the suite file alone: nothing is chosen on test metrics. Aggregates are means and
population standard deviations over every split of every seed.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training.config import RunConfig
from ..training.config_io import read_config_file, read_toml, resolve_config
from ..training.presets import preset_path, presets_dir

__all__ = ["Anchor", "SuiteModel", "Suite", "load_suite", "suite_path", "available_suites", "run_config"]

_TARGETS = ("mean", "mean - std")


@dataclass(frozen=True)
class SuiteModel:
    """One model of a suite: a packaged preset (or a base preset with overrides) on some datasets."""

    label: str
    datasets: tuple[str, ...]
    preset: str | None = None
    base: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict, hash=False)
    #: With ``base``: the dataset whose preset is the starting point on every dataset of the model (the preset of
    #: ``cora-lcc`` on ``cora-lcc-random``, say); ``None`` reads each dataset's own.
    base_dataset: str | None = None
    #: This model's base seeds, when they differ from the suite's (e.g. fewer for a costly model).
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Anchor:
    """A published number: ``mean ± std`` (in %) of ``model`` on ``dataset``, from ``source``."""

    model: str
    dataset: str
    mean: float
    std: float | None
    source: str
    target: str | None = None

    @property
    def bar(self) -> float | None:
        """The number our run is held against, when this anchor is a target."""
        if self.target is None:
            return None
        return self.mean - (self.std or 0.0) if self.target == "mean - std" else self.mean


@dataclass(frozen=True)
class Suite:
    """A loaded suite file."""

    name: str
    title: str
    page: str
    seeds: tuple[int, ...]
    models: tuple[SuiteModel, ...]
    anchors: tuple[Anchor, ...]
    notes: tuple[str, ...] = ()

    def model(self, label: str) -> SuiteModel:
        for model in self.models:
            if model.label == label:
                return model
        raise ValueError(f"suite {self.name!r} has no model {label!r}; it has {[m.label for m in self.models]}")

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every dataset of the suite, in the order the models first name them."""
        return tuple(dict.fromkeys(d for m in self.models for d in m.datasets))


def _require(condition: bool, source: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{source}: {message}")


def _model(table: Any, source: str) -> SuiteModel:
    _require(isinstance(table, dict), source, f"each [[models]] entry must be a table, got {table!r}")
    unknown = sorted(set(table) - {"label", "preset", "base", "base_dataset", "overrides", "datasets", "seeds"})
    _require(not unknown, source, f"[[models]] has unknown keys {unknown}; use label, preset or base, base_dataset, "
                                  "overrides, datasets, seeds")
    label, preset, base = table.get("label"), table.get("preset"), table.get("base")
    _require(isinstance(label, str) and label.strip() != "", source, "every model needs a label")
    _require((preset is None) != (base is None), source, f"model {label!r} needs exactly one of preset or base")
    datasets = table.get("datasets")
    _require(isinstance(datasets, list) and datasets and all(isinstance(d, str) for d in datasets), source,
             f"model {label!r} needs datasets = [\"name\", ...]")
    datasets = [_dataset(name, source, f"model {label!r}") for name in datasets]
    _require(len(set(datasets)) == len(datasets), source, f"model {label!r} names a dataset twice")
    overrides = table.get("overrides", {})
    _require(isinstance(overrides, dict), source, f"model {label!r}: overrides must be a table")
    _require(preset is None or not overrides, source, f"model {label!r}: overrides apply to a base preset; a "
                                                      "preset is run as it is")
    base_dataset = table.get("base_dataset")
    if base_dataset is not None:
        _require(base is not None, source, f"model {label!r}: base_dataset names the dataset of a base preset; "
                                           "give base = \"<preset>\" with it")
        _require(isinstance(base_dataset, str), source, f"model {label!r}: base_dataset must be a dataset name")
        base_dataset = _dataset(base_dataset, source, f"model {label!r}")
    seeds = table.get("seeds")
    if seeds is not None:
        _check_seeds(seeds, source, f"model {label!r}: ")
    return SuiteModel(label=label, datasets=tuple(datasets), preset=preset, base=base, overrides=dict(overrides),
                      base_dataset=base_dataset, seeds=None if seeds is None else tuple(seeds))


def _dataset(name: str, source: str, where: str) -> str:
    """The canonical name of a dataset of the suite (``Texas`` and ``actor`` are ``texas`` and ``film``), so that
    a model's runs, their record names and the anchors all meet on one name."""
    from ..data import canonical_name

    try:
        return canonical_name(name)
    except ValueError as err:
        raise ValueError(f"{source}: {where}: {err}") from None


def _check_seeds(seeds: Any, source: str, where: str = "") -> None:
    _require(isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                     for s in seeds), source,
             f"{where}seeds must be a list of integers >= 0")
    _require(len(set(seeds)) == len(seeds), source, f"{where}seeds must be distinct")


def _anchor(table: Any, source: str) -> Anchor:
    _require(isinstance(table, dict), source, f"each [[anchors]] entry must be a table, got {table!r}")
    unknown = sorted(set(table) - {"model", "dataset", "mean", "std", "source", "target"})
    _require(not unknown, source, f"[[anchors]] has unknown keys {unknown}")
    for key in ("model", "dataset", "source"):
        _require(isinstance(table.get(key), str), source, f"every anchor needs a {key} (a string)")
    mean, std = table.get("mean"), table.get("std")
    _require(isinstance(mean, (int, float)) and not isinstance(mean, bool), source, "every anchor needs a mean")
    _require(std is None or isinstance(std, (int, float)) and not isinstance(std, bool) and std >= 0, source,
             "an anchor's std must be a number >= 0")
    target = table.get("target")
    _require(target is None or target in _TARGETS, source, f"an anchor's target must be one of {_TARGETS}")
    return Anchor(table["model"], _dataset(table["dataset"], source, f"the anchor of {table['model']!r}"),
                  float(mean), None if std is None else float(std), table["source"], target)


def _check_anchors(anchors: tuple[Anchor, ...], models: tuple[SuiteModel, ...], source: str) -> None:
    """Every anchor must show on the page: next to a model of the suite on a dataset it runs, or (a published
    number of another model, never a target) on a dataset of the suite."""
    labels = {model.label: model for model in models}
    datasets = {name for model in models for name in model.datasets}
    for anchor in anchors:
        where = f"the anchor of {anchor.model!r} on {anchor.dataset!r}"
        model = labels.get(anchor.model)
        if model is not None:
            _require(anchor.dataset in model.datasets, source, f"{where}: model {anchor.model!r} does not run "
                     f"{anchor.dataset!r} (it runs {', '.join(model.datasets)}), so the anchor would show nowhere")
            continue
        close = ([label for label in labels if label.casefold() == anchor.model.casefold()]
                 or difflib.get_close_matches(anchor.model, labels, n=1))
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _require(anchor.target is None, source, f"{where} is a target, but no model of the suite is labelled "
                 f"{anchor.model!r}{hint}; a target holds a model of the suite against the number")
        _require(anchor.dataset in datasets, source, f"{where}: no model of the suite runs {anchor.dataset!r}, so "
                 "the anchor would show nowhere")


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Read and check a suite file.

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: on invalid TOML or a malformed suite (the message names the key and the fix).
    """
    path = Path(path)
    source = f"suite {str(path)!r}"
    tables = read_toml(path, source)
    unknown = sorted(set(tables) - {"title", "page", "seeds", "models", "anchors", "notes"})
    _require(not unknown, source, f"unknown keys {unknown}")
    seeds = tables.get("seeds", [5000])
    _check_seeds(seeds, source)
    models = tuple(_model(t, source) for t in tables.get("models", []))
    _require(len(models) > 0, source, "a suite needs at least one [[models]] entry")
    _require(len({m.label for m in models}) == len(models), source, "model labels must be distinct")
    notes = tables.get("notes", [])
    _require(isinstance(notes, list) and all(isinstance(n, str) for n in notes), source, "notes must be strings")
    for key in ("title", "page"):
        _require(isinstance(tables.get(key, ""), str), source, f"{key} must be a string")
    anchors = tuple(_anchor(t, source) for t in tables.get("anchors", []))
    _check_anchors(anchors, models, source)
    return Suite(name=path.stem, title=tables.get("title", path.stem), page=tables.get("page", ""),
                 seeds=tuple(seeds), models=models, anchors=anchors, notes=tuple(notes))


def suite_path(name: str) -> Path:
    """The packaged suite ``suites/<name>.toml``, or ``name`` itself when it is a TOML file's path.

    Raises:
        ValueError: if neither exists; the message names the packaged suites.
    """
    given = Path(name)
    if given.suffix == ".toml" and given.is_file():
        return given
    path = presets_dir() / "suites" / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"no suite {name!r}; packaged suites: {', '.join(available_suites())}, or pass a .toml file")
    return path


def available_suites() -> list[str]:
    """The names of the suites that ship with the package (``continuous-gnn suite NAME``), sorted."""
    return sorted(p.stem for p in (presets_dir() / "suites").glob("*.toml"))


def run_config(model: SuiteModel, dataset: str, seed: int, *, epochs: int | None = None,
               splits: tuple[int, ...] | None = None) -> RunConfig:
    """The config of one run of a suite: the model's preset (or base preset with its overrides) for ``dataset``
    (the base preset of ``model.base_dataset`` when it is set, with ``dataset`` in place of its own), with
    ``seed`` and, for a quick check, ``epochs``/``splits``.

    Raises:
        ValueError: on a missing preset file or a bad override (the message names the file).
    """
    path = preset_path(model.preset or model.base, model.base_dataset or dataset)
    layers = [read_config_file(path), dict(model.overrides), {"seed": seed, "dataset": dataset}]
    extra = {}
    if epochs is not None:
        extra["epochs"] = epochs
    if splits is not None:
        extra["splits"] = list(splits)
    return resolve_config(*layers, extra, sources=[str(path), f"overrides of {model.label!r}", "suite", "flags"])

