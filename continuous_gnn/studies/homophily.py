"""Accuracy against homophily: small GRAFF models trained on contextual SBMs of chosen edge homophily."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..data import edge_homophily
from ..training.config import RunConfig
from ..training.loop import train_split
from .sweep import W_FAMILIES
from .synthetic import synthetic_dataset
from .units import StudyUnit

__all__ = ["HOMOPHILY_COLUMNS", "homophily_min_nodes", "homophily_units", "homophily_sweep"]

#: Columns of :func:`homophily_sweep`.
HOMOPHILY_COLUMNS: tuple[str, ...] = (
    "homophily", "edge_homophily", "w_family", "seed", "acc_train", "acc_val", "acc_test", "best_epoch",
    "epochs", "wall_time",
)


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
    if isinstance(homophilies, (str, bytes)) or not hasattr(homophilies, "__iter__"):
        raise TypeError(f"homophilies must be a sequence of levels, e.g. [0.2, 0.8], got {type(homophilies).__name__}")
    if isinstance(avg_degree, bool) or not isinstance(avg_degree, (int, float)):
        raise TypeError(f"avg_degree must be a number, got {type(avg_degree).__name__}")
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

    # The probabilities fall like 1/n, so feasibility holds from some n on: double to pass it, then bisect
    # (stepping n by one would take about C * avg_degree steps).
    low = high = 2 * num_classes
    while not feasible(high):
        low, high = high + 1, 2 * high
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if feasible(middle) else (middle + 1, high)
    return high


def homophily_units(
    homophilies: Sequence[float],
    w_families: Sequence[str] = W_FAMILIES,
    *,
    seeds: Sequence[int] = (0,),
    config: RunConfig,
    nodes: int = 500,
    num_classes: int = 5,
    num_features: int = 16,
    snr: float = 1.5,
    avg_degree: float = 8.0,
) -> list[StudyUnit]:
    """The units of :func:`homophily_sweep` (same arguments, but no callback), one per seed, level and family,
    in its order; each computes one row.

    Raises:
        ValueError: if a list is empty, or ``nodes`` is below :func:`homophily_min_nodes` for these levels.
    """
    for name, values in (("homophilies", homophilies), ("w_families", w_families), ("seeds", seeds)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a sequence, got {type(values).__name__}")
        if len(values) == 0:
            raise ValueError(f"{name} is empty: the sweep would train nothing; give at least one")
    need = homophily_min_nodes(homophilies, num_classes=num_classes, avg_degree=avg_degree)
    if nodes < need:
        raise ValueError(
            f"nodes={nodes} is too few for homophily levels {[float(h) for h in homophilies]}: {num_classes}-class "
            f"SBMs with mean degree {avg_degree:g} need at least {need} nodes at these levels"
        )
    units = []
    latest: dict[str, Any] = {}  # the SBM of the last level, shared by its families (units run in order)
    for seed in seeds:
        for h in homophilies:
            sbm = {"nodes": nodes, "homophily": float(h), "seed": seed, "num_classes": num_classes,
                   "num_features": num_features, "snr": snr, "avg_degree": avg_degree}
            for family in w_families:
                model = config.replace(w=family, seed=seed)
                units.append(StudyUnit(f"h{float(h):g}-{family}-seed{seed}",
                                       {"study": "homophily", "sbm": sbm, "config": model.to_dict()},
                                       partial(_homophily_row, sbm, model, latest)))
    return units


def _homophily_row(sbm: dict[str, Any], config: RunConfig, latest: dict[str, Any]) -> list[dict[str, Any]]:
    if latest.get("sbm") != sbm:  # the SBM is a function of its settings: build it once per level and seed
        dataset = synthetic_dataset("sbm", **sbm)
        latest.update(sbm=sbm, dataset=dataset, edge_homophily=edge_homophily(dataset.data.edge_index, dataset.data.y))
    dataset = latest["dataset"]
    result = train_split(config, dataset, 0)
    return [{
        "homophily": sbm["homophily"], "edge_homophily": latest["edge_homophily"],
        "w_family": config.w, "seed": sbm["seed"], "acc_train": result.train_metric, "acc_val": result.val_metric,
        "acc_test": result.test_metric, "best_epoch": result.best_epoch, "epochs": result.epochs_run,
        "wall_time": result.wall_time,
    }]


def homophily_sweep(
    homophilies: Sequence[float],
    w_families: Sequence[str] = W_FAMILIES,
    *,
    seeds: Sequence[int] = (0,),
    config: RunConfig,
    nodes: int = 500,
    num_classes: int = 5,
    num_features: int = 16,
    snr: float = 1.5,
    avg_degree: float = 8.0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    r"""Test accuracy against homophily: contextual SBMs × W families × seeds, one small GRAFF model each.

    For each seed and target homophily :math:`h` a :func:`~continuous_gnn.data.contextual_sbm` graph is drawn
    (graph seed = ``seed``), and a model with ``config`` (e.g. the packaged study config ``homophily``,
    :func:`~continuous_gnn.training.presets.study_config`), its ``w`` set to the family and its ``seed`` to
    ``seed``, is trained with :func:`~continuous_gnn.training.train_split`
    on split 0; the record holds the accuracies at the best validation epoch. The records are those of the
    units of :func:`homophily_units`, run in order.

    Args:
        homophilies (sequence of float): target edge homophilies in [0, 1].
        w_families (sequence of str): W styles (default: :data:`W_FAMILIES`).
        seeds (sequence of int): seeds (default: ``(0,)``).
        config (RunConfig): the model and its training.
        nodes, num_classes, num_features, snr, avg_degree: SBM parameters (defaults: 500, 5, 16, 1.5, 8).
        on_result (callable, optional): called with each record as it is produced.

    Returns:
        list[dict]: records with :data:`HOMOPHILY_COLUMNS`.

    Raises:
        ValueError: if ``nodes`` is below :func:`homophily_min_nodes` for these levels (checked before any
            training).
    """
    units = homophily_units(homophilies, w_families, seeds=seeds, config=config, nodes=nodes,
                            num_classes=num_classes, num_features=num_features, snr=snr, avg_degree=avg_degree)
    records = []
    for unit in units:
        for record in unit.compute():
            records.append(record)
            if on_result is not None:
                on_result(record)
    return records
