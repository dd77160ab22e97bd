r"""From a :class:`~continuous_gnn.training.RunConfig` to the objects of a run: graph operator, energy, model.

These functions only construct; they never touch the random seed (the caller seeds parameter initialisation,
see :func:`continuous_gnn.training.train_split`).

Sparse input features (0.5–1.3% non-zero on the benchmarks) are stored as CSR by :func:`prepare_features`
and read by the model's :class:`~continuous_gnn.nn.SparseInputLinear` encoder.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..energies import Energy, EnergySchedule, GRAFFEnergy
from ..fields import Field
from ..fields.registry import build_named
from ..graph import Graph
from ..models import ContinuousGNN
from ..nn.sparse_linear import SparseInputLinear
from ..ode.settings import FixedGrid
from .config import RunConfig

__all__ = [
    "build_graph",
    "prepare_features",
    "build_energy",
    "num_steps",
    "time_pieces",
    "may_leave_parameters_unused",
    "build_model",
    "load_run_dataset",
]

#: Features with at most this fraction of non-zeros are stored sparse by :func:`prepare_features`.
SPARSE_FEATURE_DENSITY = 0.1


def build_graph(data: Data, config: RunConfig, device: torch.device | str | None = None) -> Graph:
    r"""The normalised operator :math:`\bar A` of ``data``, built once per dataset and reused by every split.

    ``config.self_loops=True`` gives the paper's :math:`\tilde D^{-1/2}(A+I)\tilde D^{-1/2}`; ``False`` gives
    :math:`D^{-1/2} A D^{-1/2}` (which fails on graphs with isolated nodes, e.g. CiteSeer).
    """
    graph = Graph.from_data(data, self_loops=config.self_loops)
    if device is not None:
        graph = graph.to(device)
    return graph


def prepare_features(x: Tensor, device: torch.device | str | None = None,
                     max_density: float = SPARSE_FEATURE_DENSITY) -> Tensor:
    """Move features to ``device``; store them as sparse CSR when at most ``max_density`` of them are non-zero.

    Only models built by :func:`build_model` (whose encoder is a :class:`SparseInputLinear`) accept the
    sparse form.
    """
    x = x.to(device) if device is not None else x
    if x.layout != torch.strided or x.dim() != 2 or x.numel() == 0:
        return x
    density = float((x != 0).sum()) / x.numel()
    if density > max_density:
        return x
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return x.to_sparse_csr()


def num_steps(config: RunConfig) -> int | None:
    """Number of steps of the config's fixed-grid solve (:func:`~continuous_gnn.count_steps`: the last step is
    shorter when τ does not divide T); ``None`` for adaptive methods."""
    solver, _ = config.solver_settings()
    return solver.count_steps(config.time) if isinstance(solver, FixedGrid) else None


def _graff(config: RunConfig, options: dict[str, Any]) -> GRAFFEnergy:
    return GRAFFEnergy(config.hidden, w=config.w, omega=config.omega, source=config.source,
                       w_learnable=config.w_learnable, allow_asymmetric="asymm" in (config.w, config.omega), **options)


def _one_energy(config: RunConfig) -> Energy | Field:
    """The energy or field ``config.energy`` names, with ``config.energy_options`` (the GRAFF energy also takes
    its top-level fields ``w``, ``omega``, ``source`` and ``w_learnable``, also as a second-order flow's inner
    energy)."""
    options = dict(config.energy_options)
    if config.energy == "graff":
        return _graff(config, options)
    return build_named(config.energy, config.hidden, options,
                       inner=lambda name: _graff(config, {}) if name == "graff" else build_named(name, config.hidden))


def time_pieces(config: RunConfig) -> int | None:
    """Number of pieces of time-dependent weights: ``config.time_pieces``, else one per fixed-grid step;
    ``None`` without ``time_dependent``."""
    if not config.time_dependent:
        return None
    if config.time_pieces is not None:
        return config.time_pieces
    steps = num_steps(config)
    if steps is None:  # pragma: no cover - RunConfig requires time_pieces with adaptive methods
        raise ValueError("time_dependent weights with an adaptive method need time_pieces")
    return steps


def may_leave_parameters_unused(config: RunConfig) -> bool:
    """Whether a training step of ``config``'s model may leave parameters without a gradient: pieces of
    time-dependent weights that no evaluation reaches (``time_pieces`` set to more pieces than the solver's
    evaluations fall in; the default, one piece per fixed-grid step, reaches each), or a user's energy class,
    which the package cannot inspect. Distributed training must then be told
    (:meth:`~continuous_gnn.training.distributed.World.wrap`)."""
    return (config.time_dependent and config.time_pieces is not None) or ":" in config.energy


def build_energy(config: RunConfig) -> Energy | EnergySchedule | Field:
    """The energy (or field) on ``config.hidden`` channels; with ``time_dependent`` an :class:`EnergySchedule` of
    :func:`time_pieces` independent energies over ``[0, config.time]`` (piece ``k`` of ``K`` active on
    ``[kT/K, (k+1)T/K)``; by default one per fixed-grid step, so step ``k`` uses piece ``k``).

    Adaptive solvers stop at the piece boundaries (see :func:`~continuous_gnn.integrate`).
    ``w="asymm"`` and ``omega="asymm"`` are accepted here as an explicit request: their flow is not a gradient
    flow.
    """
    pieces = time_pieces(config)
    if pieces is None:
        return _one_energy(config)
    return EnergySchedule([_one_energy(config) for _ in range(pieces)], t_end=config.time)


def build_model(config: RunConfig, num_features: int, num_classes: int) -> ContinuousGNN:
    """Encoder → flow of :func:`build_energy` over ``[0, config.time]`` → decoder.

    The input dropout and the first linear map of the encoder are one :class:`SparseInputLinear`, so the
    model takes dense features or the sparse ones of :func:`prepare_features`. The parameters, the computed
    function and the distribution of the initial values are those of ``ContinuousGNN(..., input_dropout=p)``;
    under the same seed the initial values agree except for that first linear map, which is drawn after the
    energy and the decoder (so it agrees in distribution only).
    """
    solver, adjoint = config.solver_settings()
    model = ContinuousGNN(
        num_features,
        config.hidden,
        num_classes,
        build_energy(config),
        t_end=config.time,
        solver=solver,
        adjoint=adjoint,
        activation=config.activation,
        normalize_field=config.normalize_field,
        input_dropout=0.0,  # applied by the SparseInputLinear below
        dropout=config.dropout,
        encoder=config.encoder,
        decoder=config.decoder,
        detach_source=config.detach_source,
        self_loops=config.self_loops,
    )
    first = SparseInputLinear(num_features, config.hidden, config.input_dropout)
    if config.encoder == "linear":
        model.encoder = first
    else:
        model.encoder.input = first
    return model


def load_run_dataset(config: RunConfig, root: str | os.PathLike[str], *,
                     cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """Load ``config.dataset`` from the data root with the config's feature normalisation.

    Raises:
        ValueError: if the config names no dataset, or an unknown one.
        DatasetUnavailableError: if its raw files are missing.
    """
    from ..data import load_dataset

    if config.dataset is None:
        raise ValueError("the config names no dataset; set dataset (on the command line: --dataset NAME)")
    return load_dataset(config.dataset, root, cache_dir=cache_dir, normalize_features=config.normalize_features)


def apply_node_order(config: RunConfig, dataset: Any) -> Any:
    """``dataset`` with its nodes relabelled by ``config.node_order``
    (:func:`~continuous_gnn.node_order.locality_order`, METIS seed 0, so every seed of a config trains on one
    order), or ``dataset`` itself with ``node_order = "none"``. Masks, labels and features move with their nodes,
    so every metric is one of the same nodes.

    Raises:
        MissingPackageError: for ``"metis"`` without pymetis installed.
    """
    from ..node_order import locality_order
    from .batches import MissingPackageError

    if config.node_order == "none":
        return dataset
    data = dataset.data
    try:
        order = locality_order(data.edge_index, int(data.num_nodes), config.node_order)
    except ImportError as err:
        raise MissingPackageError(str(err), name="pymetis") from None
    return dataclasses.replace(dataset, data=order.apply(data))
