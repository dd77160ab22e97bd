r"""Depth studies: how energy, Rayleigh quotient and accuracy evolve along the flow of a continuous GNN.

A *trajectory* is the solution :math:`F(t)` of a model's flow, started from the encoder output
:math:`F(0) = \psi_{EN}(X)` and read out at saved times. At each saved time :math:`t` a record holds

* the Dirichlet energy :math:`E^{Dir}(F(t)) = \tfrac12\operatorname{tr}(F^\top\Delta F)` and the Rayleigh
  quotient :math:`\mathrm{RQ}(F(t)) = \operatorname{tr}(F^\top\Delta F)/\|F\|_F^2 \in [0, \rho_\Delta]`
  (with :math:`\Delta = I - \bar A`, self-loops included): RQ :math:`\to 0` is low-frequency dominance
  (LFD, over-smoothing), RQ :math:`\to \rho_\Delta` high-frequency dominance (HFD, over-sharpening);
* the accuracy of the decoder applied to :math:`F(t)` (accuracy against depth; for a model trained at
  :math:`T`, times :math:`t > T` extrapolate the flow beyond the training depth);
* the number of vector-field evaluations (NFE) needed to reach :math:`t`.

Functions return *tidy records*: a list of flat dicts, one per (configuration, time), ready for
:func:`write_csv` or the figures of :mod:`continuous_gnn.plots`. Nothing here prints, reads the
environment or seeds the global random generator: initialisation and dropout draw from
``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng`, so the caller's random state is untouched.

Trajectories are evaluated in float64 by default (a copy of the model is converted): linear flows grow or
decay exponentially (:math:`(1+\tau\lambda)^{t/\tau}`) and float32 overflows on long horizons. A solve that
still blows up is retried up to the last saved time before the failure, and its records carry
``failed_at``.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..atomic import atomic_open
from ..data import complete_bipartite, contextual_sbm, edge_homophily, grid_graph, path_graph, ring_graph
from ..data.datasets import NodeDataset
from ..diagnostics import dirichlet_energy, rayleigh_quotient, w_spectrum
from ..energies import EnergySchedule, GRAFFEnergy
from ..errors import IntegrationError
from ..graph import Graph
from ..models import ContinuousGNN
from ..ode.field import VectorField, captured_tensors, jump_times
from ..ode.grid import fixed_grid
from ..ode.integrate import integrate
from ..ode.methods import check_method, is_fixed
from ..ode.settings import Adaptive, FixedGrid
from ..training.build import build_model
from ..training.config import RunConfig
from ..training.loop import train_split
from ..training.metrics import accuracy

__all__ = [
    "W_FAMILIES",
    "SYNTHETIC_KINDS",
    "TRAJECTORY_COLUMNS",
    "HOMOPHILY_COLUMNS",
    "homophily_min_nodes",
    "TrainedTrace",
    "synthetic_dataset",
    "fresh_config",
    "fresh_model",
    "model_family",
    "trajectory_records",
    "depth_sweep",
    "trained_trajectory",
    "homophily_config",
    "homophily_sweep",
    "bipartite_configs",
    "extrapolation_config",
    "w_eigenvalues",
    "w_spectrum_records",
    "laplacian_radius",
    "write_csv",
    "read_csv",
]

#: The W parametrisations compared in the paper's analyses: attraction only (``prod``, :math:`W \succeq 0`),
#: repulsion only (``neg_prod``, :math:`W \preceq 0`), and the two that mix both signs.
W_FAMILIES: tuple[str, ...] = ("prod", "neg_prod", "sum", "diag_dom")
SYNTHETIC_KINDS: tuple[str, ...] = ("sbm", "bipartite", "ring", "path", "grid")

#: Columns of :func:`trajectory_records` (after any caller-supplied label columns).
TRAJECTORY_COLUMNS: tuple[str, ...] = (
    "method", "step_size", "t_end", "t", "steps", "nfe", "requested", "dirichlet", "rayleigh", "norm",
    "acc_train", "acc_val", "acc_test", "failed_at",
)
#: Columns of :func:`homophily_sweep`.
HOMOPHILY_COLUMNS: tuple[str, ...] = (
    "homophily", "edge_homophily", "w_family", "seed", "acc_train", "acc_val", "acc_test", "best_epoch",
    "epochs", "wall_time",
)

_SLACK = 1e-9


# ---------------------------------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------------------------------


def synthetic_dataset(kind: str, *, nodes: int = 200, homophily: float = 0.5, seed: int = 0, num_classes: int = 2,
                      num_features: int = 16, snr: float = 1.0, avg_degree: float = 5.0) -> NodeDataset:
    r"""A synthetic graph wrapped as a one-split :class:`~continuous_gnn.data.NodeDataset`.

    ============  ===========================================================================================
    kind          graph
    ============  ===========================================================================================
    ``sbm``       :func:`~continuous_gnn.data.contextual_sbm` with ``nodes``, ``num_classes``,
                  ``homophily``, ``avg_degree``, ``num_features``, ``snr``; split 0.5/0.25/0.25
    ``bipartite`` :math:`K_{n,n}` with :math:`n` = ``nodes // 2``, 2-d Gaussian features without class signal,
                  label = side (the GRAFF toy); split 0.8/0.1/0.1 as in the official code
    ``ring``      the cycle :math:`C_n`; labels all 0
    ``path``      the path :math:`P_n`; labels all 0
    ``grid``      the open :math:`r \times r` grid, :math:`r = \operatorname{round}(\sqrt{n})`; labels all 0
    ============  ===========================================================================================

    Args:
        kind (str): one of :data:`SYNTHETIC_KINDS`.
        nodes (int): number of nodes :math:`n` (default: ``200``).
        homophily (float): target edge homophily of ``sbm`` (default: ``0.5``).
        seed (int): seed of the graph, features and split (default: ``0``).
        num_classes, num_features, snr, avg_degree: ``sbm`` parameters; ``num_features`` is also the
            feature width of ``ring``/``path``/``grid`` (defaults: ``2``, ``16``, ``1.0``, ``5.0``).

    Raises:
        ValueError: on an unknown kind or out-of-range parameters.
    """
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"unknown synthetic graph {kind!r}; choose one of {', '.join(SYNTHETIC_KINDS)}")
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
        raise ValueError(f"nodes must be an integer >= 2, got {nodes!r}")
    if kind == "sbm":
        data = contextual_sbm(nodes, num_classes, homophily, avg_degree, num_features, snr, seed=seed)
        name, classes = f"sbm(n={nodes},h={homophily:g},seed={seed})", num_classes
    elif kind == "bipartite":
        if nodes < 4:
            raise ValueError(f"the bipartite graph needs nodes >= 4, got {nodes}")
        data = complete_bipartite(nodes // 2, num_features=2, snr=0.0, seed=seed, train_frac=0.8, val_frac=0.1,
                                  test_frac=0.1)
        name, classes = f"K_{{{nodes // 2},{nodes // 2}}}(seed={seed})", 2
    elif kind == "ring":
        if nodes < 3:
            raise ValueError(f"the ring needs nodes >= 3, got {nodes}")
        data, name, classes = ring_graph(nodes, num_features, seed=seed), f"ring(n={nodes})", 1
    elif kind == "path":
        data, name, classes = path_graph(nodes, num_features, seed=seed), f"path(n={nodes})", 1
    else:
        side = max(round(math.sqrt(nodes)), 1)
        data, name, classes = grid_graph(side, side, num_features, seed=seed), f"grid({side}x{side})", 1
    return NodeDataset(name=name, data=data, num_classes=classes, num_splits=int(data.train_mask.size(1)),
                       metric="accuracy", homophilous=kind == "sbm" and homophily >= 0.5)


def fresh_config(w: str = "sum", base: RunConfig | None = None, **changes: Any) -> RunConfig:
    r"""The config of a freshly initialised model for depth sweeps: the spectral-filter setting.

    Unless ``base`` says otherwise: GRAFF energy with :math:`\Omega = 0` and no source (:math:`\beta = 0`),
    linear flow, hidden 16, no dropout, Euler. Then :math:`\dot F = \bar A F W` and each eigenvector of
    :math:`W` with eigenvalue :math:`\lambda` filters graph frequency :math:`\mu` by
    :math:`1 + \tau\lambda(1-\mu)` per step (graff-notes §8): low-pass for :math:`\lambda > 0`, high-pass
    for :math:`\lambda < 0`.

    Args:
        w (str): the W parametrisation (default: ``"sum"``).
        base (RunConfig, optional): config to start from instead of the defaults above.
        **changes: further fields to change.
    """
    if base is None:
        base = RunConfig(hidden=16, omega="zero", source=False, dropout=0.0, input_dropout=0.0)
    return base.replace(w=w, **changes)


def fresh_model(config: RunConfig, num_features: int, num_classes: int, seed: int = 0) -> ContinuousGNN:
    """:func:`~continuous_gnn.builders.build_model` initialised from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config, num_features, num_classes)
    return model.eval()


def model_family(config: RunConfig) -> str:
    """A short label of a config's energy: the W style for GRAFF (``"sum"``, ...), else the energy name."""
    if config.energy != "graff":
        return config.energy
    return config.w + ("_timedep" if config.time_dependent else "")


# ---------------------------------------------------------------------------------------------------
# trajectories
# ---------------------------------------------------------------------------------------------------


class _EvaluationTimes(VectorField):
    """Wraps a vector field and appends the time of every evaluation to ``times`` (for NFE up to ``t``)."""

    def __init__(self, func: VectorField, times: list[float]) -> None:
        super().__init__()
        self.func = func
        self.times = times

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.times.append(float(t))
        return self.func(t, x)

    def jump_times(self) -> list[float]:
        return jump_times(self.func)

    def captured_tensors(self) -> tuple[Tensor, ...]:
        return captured_tensors(self.func)


def _count_until(times: list[float], t: float) -> int:
    return sum(1 for s in times if s <= t + _SLACK * max(1.0, t))


def _check_times(times: Sequence[float], t_end: float, step_size: float | None) -> list[float]:
    out = []
    for value in times:
        value = float(value)
        if not (0 < value <= t_end + _SLACK * max(1.0, t_end)) or not math.isfinite(value):
            raise ValueError(f"time {value:g} must lie in (0, t_end={t_end:g}]")
        if step_size is not None:
            ratio = value / step_size
            if abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio):
                raise ValueError(
                    f"time {value:g} is not a multiple of the step size {step_size:g}: a fixed-grid trajectory "
                    "is read out at its grid points; choose times that are multiples of every step size"
                )
        out.append(min(value, t_end))
    return out


def _save_times(t_end: float, step_size: float | None, requested: Sequence[float], max_points: int) -> list[float]:
    """Times at which a trajectory is read out: about ``max_points`` evenly spread ones plus ``requested``."""
    if step_size is not None:
        grid = fixed_grid(t_end, step_size=step_size)
        last = len(grid) - 1
        picks = {round(k * last / (max_points - 1)) for k in range(max_points)} if max_points > 1 else {last}
        picks |= {0, last}
        picks |= {int((grid - t).abs().argmin()) for t in requested}
        return [float(grid[k]) for k in sorted(picks)]
    points = {t_end * k / (max_points - 1) for k in range(max_points)} if max_points > 1 else {t_end}
    points |= {0.0, t_end, *requested}
    return sorted(points)


def _solve(model: ContinuousGNN, x: Tensor, graph: Graph, t_end: float, inner: list[float],
           solver: FixedGrid | Adaptive) -> tuple[Tensor, Tensor, list[float], Any]:
    """Solve the model's flow to ``t_end`` with ``solver``; the saved times, states, evaluation times and stats."""
    evaluations: list[float] = []

    def integrator(func, x0, t_end, **kwargs):
        return integrate(_EvaluationTimes(func, evaluations), x0, t_end, **kwargs)

    _, solution = model.solve(x, graph, t_end=t_end, solver=solver, adjoint=None, save_at=inner,
                              integrator=integrator)
    return solution.times, solution.states, evaluations, solution.stats


def trajectory_records(
    model: ContinuousGNN,
    dataset: NodeDataset,
    *,
    t_end: float,
    split: int = 0,
    graph: Graph | None = None,
    method: str = "euler",
    step_size: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    times: Sequence[float] = (),
    max_points: int = 65,
    max_nfe: int | None = 100_000,
    dtype: torch.dtype = torch.float64,
    labels: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    r"""Integrate a model's flow to ``t_end`` and record diagnostics and accuracy along :math:`t`.

    The state is saved at about ``max_points`` evenly spread times (grid points for a fixed-grid method)
    plus every time in ``times`` (those rows have ``requested=True``) and :math:`t = 0`. The model is not
    changed: a copy in ``dtype`` and eval mode is integrated under ``torch.no_grad()``.

    NFE to reach :math:`t`: for a fixed grid, the steps up to :math:`t` (column ``steps``) times the
    evaluations per step (exact); for an adaptive method, the evaluations made at times :math:`\le t` in the
    single solve to ``t_end`` (``steps`` is then empty).

    Args:
        model (ContinuousGNN): the model (fresh or trained).
        dataset (NodeDataset): features, labels and split masks.
        t_end (float): final time :math:`T` (may exceed the model's training time: extrapolation).
        split (int): split whose masks give ``acc_train``/``acc_val``/``acc_test`` (default: ``0``).
        graph (Graph, optional): the operator :math:`\bar A` (default: built from ``dataset`` with self-loops).
        method (str): solver (default: ``"euler"``).
        step_size (float, optional): τ of a fixed-grid method (required for it).
        rtol, atol (float, optional): tolerances of an adaptive method.
        times (sequence of float): times to mark as requested; for a fixed grid, multiples of τ.
        max_points (int): evenly spread readouts (default: ``65``).
        max_nfe (int, optional): evaluation budget of the solve (default: ``100000``).
        dtype (torch.dtype): precision of the evaluation (default: ``torch.float64``).
        labels (Mapping, optional): columns prepended to every record (e.g. ``{"source": "cora"}``).

    Returns:
        list[dict]: one record per saved time with :data:`TRAJECTORY_COLUMNS` after ``labels``.

    Raises:
        ValueError: on inconsistent solver arguments or times off the grid.
    """
    method = check_method(method)
    fixed = is_fixed(method)
    t_end = float(t_end)
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if fixed and step_size is None:
        raise ValueError(f"the fixed-grid method {method!r} needs a step_size")
    if not fixed and step_size is not None:
        raise ValueError(f"step_size applies to fixed-grid methods, not to the adaptive method {method!r}")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points!r}")
    requested = _check_times(times, t_end, step_size if fixed else None)
    saved = _save_times(t_end, step_size if fixed else None, requested, max_points)

    if fixed:
        solver: FixedGrid | Adaptive = FixedGrid(method, step_size=float(step_size), max_nfe=max_nfe)
    else:
        solver = Adaptive(method, **{k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None},
                          max_nfe=max_nfe)
    data = dataset.data
    graph = Graph.from_data(data, self_loops=True, dtype=dtype) if graph is None else graph.to(dtype=dtype)
    work = copy.deepcopy(model).to(dtype).eval()
    x = data.x.to(dtype)
    y = data.y
    masks = torch.stack(dataset.split(split))

    failed_at = math.nan
    end = t_end
    with torch.no_grad():
        try:
            times_t, states, evaluations, stats = _solve(work, x, graph, end, saved[1:-1], solver)
        except IntegrationError as err:
            failed_at = err.t if err.t is not None else math.nan
            limit = failed_at if math.isfinite(failed_at) else 0.0
            before = [s for s in saved if 0 < s < limit - _SLACK * max(1.0, limit)]
            if not before:
                raise
            end = before[-1]
            times_t, states, evaluations, stats = _solve(work, x, graph, end, before[:-1], solver)

        steps_total = max(stats.steps_accepted, 1)
        per_step = stats.nfe_forward / steps_total
        records = []
        for t_value, state in zip(times_t.tolist(), states.unbind(0)):
            if fixed:
                steps = int(round(t_value / step_size + 1e-9)) if t_value < end else stats.steps_accepted
                steps = min(steps, stats.steps_accepted)
                nfe = int(round(steps * per_step))
            else:
                steps = None
                nfe = _count_until(evaluations, t_value) if t_value > 0 else 0
            scores = accuracy(work.decode(state), y, masks).tolist()
            record = dict(labels or {})
            record.update({
                "method": method,
                "step_size": float(step_size) if fixed else None,
                "t_end": t_end,
                "t": t_value,
                "steps": steps,
                "nfe": nfe,
                "requested": any(abs(t_value - r) <= 1e-6 * max(1.0, r) for r in requested),
                "dirichlet": float(dirichlet_energy(state, graph)),
                "rayleigh": float(rayleigh_quotient(state, graph)),
                "norm": float(state.norm()),
                "acc_train": scores[0],
                "acc_val": scores[1],
                "acc_test": scores[2],
                "failed_at": failed_at,
            })
            records.append(record)
    return records


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

    Fresh models (``model=None``): one model per W family, from :func:`fresh_config` (``config`` as its
    base) and :func:`fresh_model` with ``seed``, so every family starts from the same seed. A trained model
    (e.g. from :func:`~continuous_gnn.checkpoint.load_checkpoint`) is swept over methods and step sizes
    only; its ``config`` is then required (for its W family and graph normalisation) and ``w_families``
    must be omitted. Adaptive methods ignore ``step_sizes`` (one trajectory each).

    Each trajectory is one solve to :math:`T_{\max}`; a time :math:`T` in ``times`` is read from it. With weights
    shared over time (the default) that is exactly the solve to :math:`T`; with time-dependent weights the
    schedule of the model is used as it is (its last piece beyond its own :math:`T`).

    Args:
        dataset (NodeDataset): the graph, features and masks.
        step_sizes (sequence of float): τ values for fixed-grid methods (default: ``(0.5,)``).
        times (sequence of float): readout times; with a fixed-grid method each must be a multiple of
            every τ (default: ``(1, 4, 16)``).
        methods (sequence of str): solver names (default: ``("euler",)``).
        w_families (sequence of str, optional): W styles for fresh models (default: :data:`W_FAMILIES`).
        model (ContinuousGNN, optional): a trained model instead of fresh ones.
        config (RunConfig, optional): the trained model's config, or the base of fresh configs.
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
                _check_times(times, t_max, float(tau))
                solvers.append((method, float(tau)))
        else:
            solvers.append((method, None))

    entries: list[tuple[str, str, ContinuousGNN, RunConfig]] = []
    if model is None:
        families = W_FAMILIES if w_families is None else tuple(w_families)
        if not families:
            raise ValueError("w_families must name at least one W style")
        for family in families:
            cfg = fresh_config(family, base=config)
            entries.append(("fresh", family, fresh_model(cfg, dataset.num_features, dataset.num_classes, seed), cfg))
    else:
        if config is None:
            raise ValueError("a trained model needs its config (e.g. Checkpoint.config)")
        if w_families is not None:
            raise ValueError("w_families applies to fresh models; a trained model keeps its own W")
        entries.append(("trained", model_family(config), model, config))
        seed = config.seed

    graphs: dict[bool, Graph] = {}
    records: list[dict[str, Any]] = []
    for kind, family, net, cfg in entries:
        if cfg.self_loops not in graphs:
            graphs[cfg.self_loops] = Graph.from_data(dataset.data, self_loops=cfg.self_loops, dtype=dtype)
        for method, tau in solvers:
            labels = {"source": source or dataset.name, "model": kind, "w_family": family, "seed": seed}
            if on_config is not None:
                on_config({**labels, "method": method, "step_size": tau})
            records += trajectory_records(net, dataset, t_end=t_max, split=split, graph=graphs[cfg.self_loops],
                                          method=method, step_size=tau, times=times, max_points=max_points,
                                          dtype=dtype, labels=labels)
    return records


# ---------------------------------------------------------------------------------------------------
# trained models
# ---------------------------------------------------------------------------------------------------


@dataclass
class TrainedTrace:
    """A model trained for a study and its trajectory.

    Attributes:
        model (ContinuousGNN): the selected model, in eval mode.
        config (RunConfig): its configuration.
        metrics (dict): ``epoch`` (selected, 1-based), ``acc_train``, ``acc_val``, ``acc_test`` of the selected
            model at its training time, ``select``, ``seed``, ``epochs``, ``wall_time``.
        records (list[dict]): :func:`trajectory_records` of the selected model.
    """

    model: ContinuousGNN
    config: RunConfig
    metrics: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)


def trained_trajectory(config: RunConfig, dataset: NodeDataset, *, split: int = 0, t_end: float | None = None,
                       times: Sequence[float] = (), select: str = "best_val", max_points: int = 65,
                       source: str | None = None, dtype: torch.dtype = torch.float64) -> TrainedTrace:
    r"""Train one model with ``config`` on one split, then record its trajectory to ``t_end``.

    Training is the package's one training loop (:func:`~continuous_gnn.training.train_split`: full batch,
    Adam, seed ``config.seed + split``, the config's regularisers, patience and divergence check, evaluation
    after every epoch). ``select="best_val"`` keeps the parameters of the epoch with the best validation
    accuracy (first on ties), ``"last"`` those after the last epoch.
    The trajectory uses the config's solver; ``t_end > config.time`` runs the trained flow beyond its
    training depth (extrapolation; time-dependent weights then keep their last piece).

    Args:
        config (RunConfig): model, solver and optimiser settings (a fixed-grid method).
        dataset (NodeDataset): the data.
        split (int): split index (default: ``0``).
        t_end (float, optional): end of the recorded trajectory (default: ``config.time``).
        times (sequence of float): readout times to mark (default: ``config.time`` and ``t_end``).
        select (str): ``"best_val"`` or ``"last"`` (default: ``"best_val"``).
        max_points (int): readouts along the trajectory (default: ``65``).
        source (str, optional): ``source`` column (default: ``dataset.name``).
        dtype (torch.dtype): evaluation precision (default: ``torch.float64``).
    """
    if not config.fixed_grid:
        raise ValueError("trained_trajectory records fixed-grid flows; use method='euler' (or another fixed-grid one)")
    if select not in ("best_val", "last"):
        raise ValueError(f"select must be 'best_val' or 'last', got {select!r}")
    result = train_split(config, dataset, split, keep="best" if select == "best_val" else "last")
    kept = result.kept
    model = kept.model
    metrics = {"epoch": kept.epoch, "acc_train": kept.train, "acc_val": kept.val, "acc_test": kept.test,
               "loss": kept.loss, "select": select, "seed": result.seed, "epochs": config.epochs,
               "wall_time": result.wall_time}
    t_end = float(config.time if t_end is None else t_end)
    marks = tuple(times) if times else tuple(sorted({config.time, t_end}))
    labels = {"source": source or dataset.name, "model": "trained", "w_family": model_family(config),
              "seed": metrics["seed"]}
    graph = Graph.from_data(dataset.data, self_loops=config.self_loops, dtype=dtype)
    records = trajectory_records(model, dataset, t_end=t_end, split=split, graph=graph, method=config.method,
                                 step_size=config.step_size, times=marks, max_points=max_points, dtype=dtype,
                                 labels=labels)
    return TrainedTrace(model=model, config=config, metrics=metrics, records=records)


def bipartite_configs(epochs: int = 60, lr: float = 0.05) -> dict[str, RunConfig]:
    r"""The two models of the :math:`K_{100,100}` over-sharpening toy (graff-notes §12(a)).

    * ``"graff"`` (SGCN_gf): :math:`F \leftarrow F + \tau\bar A F W`, shared symmetric
      :math:`W = (M + M^\top)/2`, :math:`\Omega = 0`, no source, linear, hidden 16, :math:`T = 8`,
      :math:`\tau = 0.1` (80 residual steps).
    * ``"non_residual"``: :math:`F \leftarrow \bar A F W`, same W family, 80 steps. It is the Euler
      scheme with :math:`\Omega = I` and :math:`\tau = 1` (:math:`F + (\bar A F W - F) = \bar A F W`) run
      to :math:`T = 80`, i.e. Theorem 4.3's :math:`F(t+\tau) = \tau\bar A F(t) W` up to the scalar
      :math:`\tau^m`, which the scale-invariant RQ ignores, with as many layers as ``"graff"``.

    Both: Adam, no dropout, weight decay 5e-4.
    """
    common = dict(energy="graff", w="sum", source=False, activation=None, hidden=16, dropout=0.0,
                  input_dropout=0.0, lr=lr, weight_decay=5e-4, epochs=epochs, method="euler")
    return {
        "graff": RunConfig(omega="zero", time=8.0, step_size=0.1, **common),
        "non_residual": RunConfig(omega="const", time=80.0, step_size=1.0, **common),
    }


def extrapolation_config(dataset: str, *, epochs: int = 100, lr: float = 0.005, weight_decay: float = 5e-4,
                         seed: int = 0) -> RunConfig:
    r"""SGCN_gf ("simple", graff-notes §11) for the extrapolation study: trained at :math:`T = 8`, τ = 0.5.

    Ω = 0, :math:`W = (M+M^\top)/2` shared, linear, no source, hidden 128, input dropout 0.5, dropout 0.35.
    """
    return RunConfig(dataset=dataset, energy="graff", w="sum", omega="zero", source=False, activation=None,
                     hidden=128, time=8.0, step_size=0.5, method="euler", input_dropout=0.5, dropout=0.35,
                     lr=lr, weight_decay=weight_decay, epochs=epochs, seed=seed)


# ---------------------------------------------------------------------------------------------------
# homophily
# ---------------------------------------------------------------------------------------------------


def homophily_config(**changes: Any) -> RunConfig:
    r"""Small GRAFF models for the homophily sweep: :math:`\Omega = 0`, :math:`\beta = 0` (the paper's
    syn-cora setting), linear, hidden 16, :math:`T = 3`, τ = 1, 100 epochs, lr 0.01, weight decay 5e-4,
    dropout 0.2 (input and decoder)."""
    base = dict(energy="graff", omega="zero", source=False, activation=None, hidden=16, time=3.0, step_size=1.0,
                method="euler", epochs=100, lr=0.01, weight_decay=5e-4, dropout=0.2, input_dropout=0.2)
    return RunConfig.from_dict({**base, **changes})


def homophily_min_nodes(homophilies: Sequence[float], *, num_classes: int = 5, avg_degree: float = 8.0) -> int:
    r"""The fewest nodes for which :func:`~continuous_gnn.data.contextual_sbm` can draw every level.

    A contextual SBM with :math:`n` nodes, mean degree :math:`\bar d` and homophily :math:`h` needs the edge
    probabilities :math:`p_{\text{in}} = h\,m/N_{\text{in}}` and :math:`p_{\text{out}} = (1-h)\,m/N_{\text{out}}`
    (:math:`m = n\bar d/2`) to be at most 1, so small graphs cannot reach high homophily. With the
    sweep's defaults (5 classes, :math:`\bar d = 8`) the minimum is 25 nodes for :math:`h = 0.5` and 45 for
    :math:`h = 1`.

    Args:
        homophilies (sequence of float): target edge homophilies in [0, 1].
        num_classes (int): classes of the SBM (default: ``5``).
        avg_degree (float): its expected mean degree (default: ``8.0``).

    Returns:
        int: the smallest :math:`n \ge 2C` that works for every level.

    Raises:
        ValueError: on a level outside [0, 1], fewer than 2 classes or a negative degree.
    """
    levels = [float(h) for h in homophilies]
    if any(not 0.0 <= h <= 1.0 for h in levels):
        raise ValueError(f"homophily levels must lie in [0, 1], got {levels}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not (avg_degree >= 0 and math.isfinite(avg_degree)):
        raise ValueError(f"avg_degree must be finite and >= 0, got {avg_degree!r}")

    def feasible(n: int) -> bool:
        # The same arithmetic as contextual_sbm: balanced classes whose sizes differ by at most one.
        q, r = divmod(n, num_classes)
        pairs_in = sum(s * (s - 1) // 2 for s in [q + 1] * r + [q] * (num_classes - r))
        pairs_out = n * (n - 1) // 2 - pairs_in
        target_edges = n * avg_degree / 2.0
        return all(h * target_edges / pairs_in <= 1.0 and (1.0 - h) * target_edges / pairs_out <= 1.0
                   for h in levels)

    n = 2 * num_classes
    while not feasible(n):  # the probabilities fall like 1/n, so this ends after about C * avg_degree steps
        n += 1
    return n


def homophily_sweep(
    homophilies: Sequence[float],
    w_families: Sequence[str] = W_FAMILIES,
    *,
    seeds: Sequence[int] = (0,),
    config: RunConfig | None = None,
    nodes: int = 500,
    num_classes: int = 5,
    num_features: int = 16,
    snr: float = 1.5,
    avg_degree: float = 8.0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    r"""Test accuracy against homophily: contextual SBMs × W families × seeds, one small GRAFF model each.

    For each seed and target homophily :math:`h` a :func:`~continuous_gnn.data.contextual_sbm` graph is drawn
    (graph seed = ``seed``), and a model with ``config`` (default :func:`homophily_config`), its ``w`` set to
    the family and its ``seed`` to ``seed``, is trained with :func:`~continuous_gnn.training.train_split`
    on split 0; the record holds the accuracies at the best validation epoch.

    Args:
        homophilies (sequence of float): target edge homophilies in [0, 1].
        w_families (sequence of str): W styles (default: :data:`W_FAMILIES`).
        seeds (sequence of int): seeds (default: ``(0,)``).
        config (RunConfig, optional): base config (default: :func:`homophily_config`).
        nodes, num_classes, num_features, snr, avg_degree: SBM parameters (defaults: 500, 5, 16, 1.5, 8).
        on_result (callable, optional): called with each record as it is produced.

    Returns:
        list[dict]: records with :data:`HOMOPHILY_COLUMNS`.

    Raises:
        ValueError: if ``nodes`` is below :func:`homophily_min_nodes` for these levels (checked before any
            training).
    """
    need = homophily_min_nodes(homophilies, num_classes=num_classes, avg_degree=avg_degree)
    if nodes < need:
        raise ValueError(
            f"nodes={nodes} is too few for homophily levels {[float(h) for h in homophilies]}: {num_classes}-class "
            f"SBMs with mean degree {avg_degree:g} need at least {need} nodes at these levels"
        )
    base = homophily_config() if config is None else config
    records = []
    for seed in seeds:
        for h in homophilies:
            dataset = synthetic_dataset("sbm", nodes=nodes, homophily=float(h), seed=seed, num_classes=num_classes,
                                        num_features=num_features, snr=snr, avg_degree=avg_degree)
            measured = edge_homophily(dataset.data.edge_index, dataset.data.y)
            for family in w_families:
                result = train_split(base.replace(w=family, seed=seed), dataset, 0)
                record = {
                    "homophily": float(h), "edge_homophily": measured, "w_family": family, "seed": seed,
                    "acc_train": result.train_metric, "acc_val": result.val_metric, "acc_test": result.test_metric,
                    "best_epoch": result.best_epoch, "epochs": result.epochs_run, "wall_time": result.wall_time,
                }
                records.append(record)
                if on_result is not None:
                    on_result(record)
    return records


# ---------------------------------------------------------------------------------------------------
# spectra
# ---------------------------------------------------------------------------------------------------


def w_eigenvalues(model: ContinuousGNN) -> Tensor:
    r"""Eigenvalues of the model's :math:`W` (ascending; concatenated over the pieces of time-dependent weights).

    Raises:
        ValueError: if the energy has no symmetric :math:`W` (Dirichlet energies, ``w="asymm"``).
    """
    energy = model.energy
    pieces = list(energy.energies) if isinstance(energy, EnergySchedule) else [energy]
    values = []
    for piece in pieces:
        if not isinstance(piece, GRAFFEnergy):
            raise ValueError(f"{type(piece).__name__} has no channel-mixing matrix W")
        if not piece.W.is_symmetric:
            raise ValueError("W is asymmetric (w='asymm'): its eigenvalues may be complex and carry no energy meaning")
        values.append(w_spectrum(piece.W().detach().to(torch.float64)))
    return torch.cat(values)


def w_spectrum_records(model: ContinuousGNN, label: str) -> list[dict[str, Any]]:
    """Records ``{"label", "index", "eigenvalue"}`` of :func:`w_eigenvalues`.

    They are the input of :func:`~continuous_gnn.plots.plot_w_spectrum`.
    """
    return [{"label": label, "index": i, "eigenvalue": float(v)} for i, v in enumerate(w_eigenvalues(model))]


def laplacian_radius(graph: Graph, *, iterations: int = 500, seed: int = 0) -> float:
    r"""Estimate :math:`\rho_\Delta`, the largest eigenvalue of :math:`\Delta = I - \bar A`, by power iteration.

    Returns the Rayleigh quotient of the last iterate (float64), a lower bound that converges to
    :math:`\rho_\Delta`; the dense :func:`~continuous_gnn.diagnostics.laplacian_spectrum` is exact but
    :math:`O(n^3)`.

    Args:
        graph (Graph): a symmetric operator.
        iterations (int): power iterations (default: ``500``).
        seed (int): seed of the random start (default: ``0``).
    """
    graph = graph.to(dtype=torch.float64)
    v = torch.randn(graph.num_nodes, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for _ in range(iterations):
        v = graph.laplacian(v)
        v = v / v.norm()
    return float(rayleigh_quotient(v, graph))


# ---------------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------------


def _columns(records: Iterable[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for record in records:
        for key in record:
            columns.setdefault(key, None)
    return list(columns)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records as CSV atomically (temporary file in the same folder, then :func:`os.replace`).

    Columns are the union of the records' keys in order of first appearance; ``None`` is an empty cell and
    floats keep full precision (``repr``).

    Raises:
        ValueError: if ``records`` is empty.
    """
    if not records:
        raise ValueError("no records to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = _columns(records)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(c)) for c in columns])
    with atomic_open(path, "w", newline="") as fh:
        fh.write(buffer.getvalue())
    return path


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read records written by :func:`write_csv` (numbers, booleans and empty cells converted back)."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]
