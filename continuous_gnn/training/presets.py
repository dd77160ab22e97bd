"""The configurations that ship with the package: run presets, search spaces and the models of studies.

They are TOML files under ``continuous_gnn/presets/`` (package data, so a wheel carries them):

=================================  ===================================================================
``<preset>/<dataset>.toml``        run presets for ``--preset NAME``: ``graff`` and ``graff_nl`` (the
                                   official code's hyperparameters), ``graff_tuned`` (GRAFF from our own
                                   searches, also on datasets the paper did not run), ``graff_nl_tuned``
                                   (GRAFF-NL with per-step weights from our own searches),
                                   ``graff_nl_shared_tuned`` (the paper's GRAFF-NL, one set of weights for
                                   the whole flow, from our own searches), ``graff_omega_tuned``,
                                   ``graff_nl_omega_tuned`` and ``graff_nl_shared_omega_tuned`` (presets
                                   searched again with a full Ω), ``grand_l``, ``grand_l_row`` and
                                   ``grand_nl`` (GRAND from our own searches)
``search/<name>.toml``             search spaces of ``continuous-gnn tune`` (``graff``: the default)
``studies/<name>.toml``            the models of ``continuous-gnn study``: ``fresh`` (the depth sweep's
                                   spectral-filter model), ``homophily`` (the homophily sweep's)
``suites/<name>.toml``             the suites of ``continuous-gnn suite``
=================================  ===================================================================

Every folder except ``search``, ``studies`` and ``suites`` is a run preset.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .config import RunConfig
from .config_io import load_config

__all__ = ["presets_dir", "available_presets", "preset_file", "preset_path", "search_space_path",
           "study_config"]

#: Folders of ``presets/`` that hold other configurations than run presets.
_NOT_PRESETS = ("search", "studies", "suites")


def presets_dir() -> Path:
    """The folder of packaged configurations (installed beside the modules)."""
    return Path(resources.files("continuous_gnn") / "presets")


def available_presets() -> list[str]:
    """The names ``--preset`` accepts, sorted."""
    return sorted(p.name for p in presets_dir().iterdir()
                  if p.is_dir() and p.name not in _NOT_PRESETS and not p.name.startswith(("_", ".")))


def preset_file(preset: str, dataset: str) -> Path:
    """Where ``<preset>/<dataset>.toml`` is or would be; :func:`preset_path` checks that it exists."""
    return presets_dir() / preset / f"{dataset}.toml"


def preset_path(preset: str, dataset: str) -> Path:
    """The file of a run preset for a dataset (given by any of its names, e.g. ``Actor`` for ``film``).

    Raises:
        ValueError: for an unknown preset or dataset, or a preset without a file for the dataset; the message
            names what exists.
    """
    from ..data import canonical_name  # imports torch_geometric, which nothing else here needs

    presets = available_presets()
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(presets) or 'none'}")
    path = preset_file(preset, canonical_name(dataset))
    if not path.is_file():
        have = sorted(p.stem for p in (presets_dir() / preset).glob("*.toml"))
        raise ValueError(f"preset {preset!r} has no config for dataset {dataset!r}; it covers: {', '.join(have)}")
    return path


def _packaged(folder: str, name: str, what: str) -> Path:
    """``<folder>/<name>.toml``; a ``ValueError`` names the files there are when it does not exist."""
    path = presets_dir() / folder / f"{name}.toml"
    if not path.is_file():
        have = sorted(p.stem for p in (presets_dir() / folder).glob("*.toml"))
        raise ValueError(f"no packaged {what} {name!r}; available: {', '.join(have)}")
    return path


def search_space_path(name: str = "graff") -> Path:
    """The packaged search space ``search/<name>.toml`` (see :mod:`continuous_gnn.training.search`).

    Raises:
        ValueError: if there is none of that name; the message names those there are.
    """
    return _packaged("search", name, "search space")


def study_config(name: str) -> RunConfig:
    """The packaged model of a study, ``studies/<name>.toml``: ``"fresh"`` or ``"homophily"``.

    Raises:
        ValueError: if there is none of that name; the message names those there are.
    """
    return load_config(_packaged("studies", name, "study config"))
