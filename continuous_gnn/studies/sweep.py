r"""Depth sweeps: trajectories of fresh or trained models over W families, solvers and step sizes.

A fresh model in the spectral-filter setting (:math:`\Omega = 0`, no source, linear flow
:math:`\dot F = \bar A F W`; the packaged study config ``fresh``) filters graph frequency :math:`\mu` by
:math:`1 + \tau\lambda(1-\mu)` per Euler step along each eigenvector of :math:`W` with eigenvalue
:math:`\lambda` (graff-notes §8): low-pass for :math:`\lambda > 0`, high-pass for :math:`\lambda < 0`. The
sweep shows which one the flow and its discretisation keep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from ..data.datasets import NodeDataset
from ..graph import Graph
from ..models import ContinuousGNN
from ..ode.methods import check_method, is_fixed
from ..training.build import build_model
from ..training.config import RunConfig
from .trajectory import MAX_NFE, check_grid, check_times, trajectory_records
from .units import StudyUnit

__all__ = ["W_FAMILIES", "fresh_model", "model_family", "depth_units", "depth_sweep"]

#: The W parametrisations compared in the paper's analyses: attraction only (``prod``, :math:`W \succeq 0`),
#: repulsion only (``neg_prod``, :math:`W \preceq 0`), and the two that mix both signs.
W_FAMILIES: tuple[str, ...] = ("prod", "neg_prod", "sum", "diag_dom")


def fresh_model(config: RunConfig, num_features: int, num_classes: int, seed: int = 0) -> ContinuousGNN:
    """:func:`~continuous_gnn.training.build_model` initialised from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config, num_features, num_classes)
    return model.eval()


def model_family(config: RunConfig) -> str:
    """A short label of a config's energy: the W style for GRAFF (``"sum"``, ...), else the energy name."""
    if config.energy != "graff":
        return config.energy
    return config.w + ("_timedep" if config.time_dependent else "")


def depth_units(
    dataset: NodeDataset,
    *,
    step_sizes: Sequence[float] = (0.5,),
    times: Sequence[float] = (1.0, 4.0, 16.0),
    methods: Sequence[str] = ("euler",),
    w_families: Sequence[str] | None = None,
    model: ContinuousGNN | None = None,
    config: RunConfig | None = None,
    split: int = 0,
    seed: int = 0,
    max_points: int = 65,
    dtype: torch.dtype = torch.float64,
    source: str | None = None,
) -> list[StudyUnit]:
    """The units of :func:`depth_sweep` (same arguments, but no callback), one trajectory each, in its order.

    A unit's settings hold its labels, method, step size, the model's config and the readouts; they do not
    describe the dataset or a trained model's weights, which the caller adds when it stores them.

    Raises:
        ValueError: on bad arguments (the message says which).
    """
    for name, value, example in (("times", times, "[1.0, 4.0]"), ("step_sizes", step_sizes, "[0.5, 1.0]"),
                                 ("methods", methods, '["euler", "rk4"]'), ("w_families", w_families, '["prod"]')):
        optional = name == "w_families" and value is None
        if not optional and (isinstance(value, (str, bytes)) or not hasattr(value, "__iter__")):
            raise TypeError(f"{name} must be a sequence, e.g. {example}, got {type(value).__name__} {value!r}")
    if not times:
        raise ValueError("times must name at least one readout time")
    t_max = max(float(t) for t in times)
    if not methods:
        raise ValueError("methods must name at least one solver")
    methods = [check_method(m) for m in methods]
    if any(is_fixed(m) for m in methods) and not step_sizes:
        raise ValueError("fixed-grid methods need at least one step size")
    for tau in step_sizes:
        if not (float(tau) > 0 and math.isfinite(float(tau))):
            raise ValueError(f"step sizes must be positive, got {tau}")
    solvers: list[tuple[str, float | None]] = []
    for method in methods:
        if is_fixed(method):
            for tau in step_sizes:
                check_times(times, t_max, float(tau))
                check_grid(t_max, float(tau), MAX_NFE)
                solvers.append((method, float(tau)))
        else:
            solvers.append((method, None))

    entries: list[tuple[str, str, ContinuousGNN, RunConfig]] = []
    if model is None:
        if config is None:
            raise ValueError("fresh models need a config, e.g. the packaged one: "
                             "continuous_gnn.training.presets.study_config('fresh')")
        families = W_FAMILIES if w_families is None else tuple(w_families)
        if not families:
            raise ValueError("w_families must name at least one W style")
        for family in families:
            cfg = config.replace(w=family)
            entries.append(("fresh", family, fresh_model(cfg, dataset.num_features, dataset.num_classes, seed), cfg))
    else:
        if config is None:
            raise ValueError("a trained model needs its config (e.g. Checkpoint.config)")
        if w_families is not None:
            raise ValueError("w_families applies to fresh models; a trained model keeps its own W")
        entries.append(("trained", model_family(config), model, config))
        seed = config.seed

    graphs: dict[bool, Graph] = {}

    def trajectory(net: ContinuousGNN, cfg: RunConfig, method: str, tau: float | None,
                   labels: dict[str, Any]) -> list[dict[str, Any]]:
        if cfg.self_loops not in graphs:  # one graph per normalisation, built when a unit first needs it
            graphs[cfg.self_loops] = Graph.from_data(dataset.data, self_loops=cfg.self_loops, dtype=dtype)
        return trajectory_records(net, dataset, t_end=t_max, split=split, graph=graphs[cfg.self_loops],
                                  method=method, step_size=tau, times=times, max_points=max_points, dtype=dtype,
                                  labels=labels)

    units = []
    for kind, family, net, cfg in entries:
        for method, tau in solvers:
            labels = {"source": source or dataset.name, "model": kind, "w_family": family, "seed": seed}
            settings = {"study": "depth", **labels, "method": method, "step_size": tau, "config": cfg.to_dict(),
                        "times": [float(t) for t in times], "split": split, "max_points": max_points,
                        "dtype": str(dtype)}
            name = f"{kind}-{family}-{method}" + ("" if tau is None else f"-tau{tau:g}")
            units.append(StudyUnit(name, settings, partial(trajectory, net, cfg, method, tau, labels)))
    return units


def depth_sweep(
    dataset: NodeDataset,
    *,
    step_sizes: Sequence[float] = (0.5,),
    times: Sequence[float] = (1.0, 4.0, 16.0),
    methods: Sequence[str] = ("euler",),
    w_families: Sequence[str] | None = None,
    model: ContinuousGNN | None = None,
    config: RunConfig | None = None,
    split: int = 0,
    seed: int = 0,
    max_points: int = 65,
    dtype: torch.dtype = torch.float64,
    source: str | None = None,
    on_config: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    r"""Sweep W family × solver method × step size τ, integrating to :math:`\max(\text{times})`.

    Fresh models (``model=None``): one model per W family, ``config`` with its ``w`` set to the family (e.g. the
    packaged study config ``fresh``, :func:`~continuous_gnn.training.presets.study_config`), built by
    :func:`fresh_model` with ``seed``, so every family starts from the same seed. A trained model (e.g. from
    :func:`~continuous_gnn.training.load_checkpoint`) is swept over methods and step sizes only; ``config`` is then
    its config (for its W family and graph normalisation) and ``w_families`` must be omitted. Adaptive methods
    ignore ``step_sizes`` (one trajectory each).

    The trajectories are the units of :func:`depth_units`, run in order. Each is one solve to
    :math:`T_{\max}`; a time :math:`T` in ``times`` is read from it. With weights shared over time (the default)
    that is the solve to :math:`T` (bit for bit when the grid times are exact binary fractions, to rounding
    otherwise); with time-dependent weights the schedule of the model is used as it
    is (its last piece beyond its own :math:`T`).

    Args:
        dataset (NodeDataset): the graph, features and masks.
        step_sizes (sequence of float): τ values for fixed-grid methods (default: ``(0.5,)``).
        times (sequence of float): readout times; with a fixed-grid method each must be a multiple of
            every τ (default: ``(1, 4, 16)``).
        methods (sequence of str): solver names (default: ``("euler",)``).
        w_families (sequence of str, optional): W styles for fresh models (default: :data:`W_FAMILIES`).
        model (ContinuousGNN, optional): a trained model instead of fresh ones.
        config (RunConfig): the trained model's config, or the config of fresh models (required).
        split (int): split for the accuracy columns (default: ``0``).
        seed (int): initialisation seed of fresh models (default: ``0``).
        max_points (int): readouts per trajectory (default: ``65``).
        dtype (torch.dtype): evaluation precision (default: ``torch.float64``).
        source (str, optional): the ``source`` column (default: ``dataset.name``).
        on_config (callable, optional): called with the labels of each configuration before it runs.

    Returns:
        list[dict]: records with columns ``source, model, w_family, seed`` then :data:`TRAJECTORY_COLUMNS`.

    Raises:
        ValueError: on bad arguments (the message says which).
    """
    units = depth_units(dataset, step_sizes=step_sizes, times=times, methods=methods, w_families=w_families,
                        model=model, config=config, split=split, seed=seed, max_points=max_points, dtype=dtype,
                        source=source)
    records: list[dict[str, Any]] = []
    for unit in units:
        if on_config is not None:
            on_config({key: unit.settings[key] for key in ("source", "model", "w_family", "seed", "method",
                                                           "step_size")})
        records += unit.compute()
    return records
