r"""Mini-batches of the training step: subgraphs from random node partitions, METIS clusters or sampled neighbourhoods.

With ``batching = "none"`` (the default) an epoch is one full-batch step. Otherwise an epoch is one optimiser
step per batch, and each batch is a subgraph of the dataset's graph with

* its own **normalised operator**: the flow on batch :math:`B` runs with
  :math:`\bar A_B = \tilde D_B^{-1/2}(A_B + I)\tilde D_B^{-1/2}`, where :math:`A_B` is the adjacency of the
  subgraph and :math:`\tilde D_B` its degrees *within the batch* (:func:`~continuous_gnn.training.build.build_graph`
  on the subgraph). This is an approximation: :math:`\bar A_B` is not the full :math:`\bar A` restricted to
  :math:`B` (a node that lost neighbours to other batches gets larger weights on the ones it kept), and features
  cannot flow along edges that leave the batch. ``docs/training.md`` measures what it costs in accuracy;
* its own **loss nodes**: the cross-entropy is the mean over the batch's training nodes (for ``neighbor``, over
  its seed nodes only, whose sampled neighbourhoods are the complete ones).

Evaluation after every epoch is one forward pass on the full graph with the full operator (``evaluation =
"full"``, the default), or, with ``evaluation = "batches"``, one pass per subgraph of :class:`EvaluationBatches`:
the nodes are cut **once per split** into the kind of batches training uses (for ``random``, a random partition
into ``num_parts`` parts drawn with the split seed; for ``metis``, the clusters joined ``parts_per_batch`` at a
time in cluster order), and each node is scored by the flow on its own subgraph. Memory then stays that of a
batch, so a graph too large for one full pass can be trained and scored; the scores carry the batches'
approximation (a node sees only the neighbours in its part), and they are the same subgraphs at every epoch, so
the curves compare across epochs.

Sources, all drawn from a ``torch.Generator`` seeded with the split seed, so a run repeats exactly:

* ``random``: PyG's :class:`~torch_geometric.loader.RandomNodeLoader`. Every epoch a fresh random partition of
  the nodes into parts of :math:`\lceil N/\text{num\_parts}\rceil` nodes (so at most ``num_parts`` parts, and
  exactly ``num_parts`` when :math:`\text{num\_parts}\,(\text{num\_parts} - 1) < N`), each batch the induced
  subgraph of one part. Redrawing the partition is one ``randperm``, and it lets every edge take part in some
  epochs.
* ``metis``: ClusterGCN. The graph is cut into ``num_parts`` METIS clusters (``pymetis``, seeded with the run's
  ``seed``) **once per run** (:func:`metis_parts`, shared by all splits); every epoch the clusters are shuffled
  and joined ``parts_per_batch`` at a time, each batch the induced subgraph of its clusters, which restores the
  edges between the joined clusters (ClusterGCN's "stochastic multiple partitions"). With one cluster per batch
  (the default) the batches are the same subgraphs every epoch, so each is built once per split.
* ``neighbor``: PyG's :class:`~torch_geometric.loader.NeighborLoader` (needs ``pyg-lib`` or ``torch-sparse``).
  Every epoch the split's training nodes are shuffled into ``num_parts`` seed batches; each batch is the
  neighbourhood sampled from its seeds with ``num_neighbors`` per hop, made undirected. The sampling itself draws
  from the sampling library's random state, so these runs are not bit-reproducible.

Across processes (:mod:`~continuous_gnn.training.distributed`) every rank draws the same batches, and rank
``r`` of ``W`` trains on batches ``r, r + W, r + 2W, ...`` of each epoch, in lock step (the batch count must be a
multiple of ``W``, :func:`check_batching`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from ..graph import Graph
from ..node_order import neighbour_lists
from .build import build_graph, prepare_features
from .config import RunConfig
from .config_rules import parse_fanout

__all__ = ["MissingPackageError", "Batch", "batches_per_epoch", "check_batching", "metis_parts", "EpochBatches",
           "EvaluationBatches"]

#: METIS takes a C ``int`` seed.
_METIS_SEEDS = 2**31 - 1


class MissingPackageError(ImportError, ValueError):
    """An optional package a setting needs is not installed; the message names the ``pip install`` that fixes it.

    A ``ValueError`` too, because a setting asked for it: the command line reports it as a usage error.
    """


@dataclass(frozen=True)
class Batch:
    """The input of one training step.

    Attributes:
        features (Tensor): node features of the batch on the device, ``(n_B, p)``, dense or sparse CSR.
        graph (Graph): the batch's own normalised operator.
        train_index (Tensor): positions of the loss nodes within the batch, ``(m,)``.
        targets (Tensor): their labels, ``(m,)``.
    """

    features: Tensor
    graph: Graph
    train_index: Tensor
    targets: Tensor


def batches_per_epoch(config: RunConfig, num_nodes: int, num_parts: int | None = None) -> int:
    """The number of batches of an epoch over all processes (1 without batching), with ``num_parts`` in place
    of ``config.num_parts`` when given."""
    parts = config.num_parts if num_parts is None else num_parts
    if config.batching == "none":
        return 1
    if config.batching == "random":  # RandomNodeLoader's parts hold ceil(N / num_parts) nodes
        return math.ceil(num_nodes / math.ceil(num_nodes / parts))
    if config.batching == "metis":
        return math.ceil(parts / (config.parts_per_batch or 1))
    return parts


def _pymetis() -> Any:
    try:
        import pymetis
    except ImportError:
        raise MissingPackageError("batching = metis needs pymetis: pip install pymetis (or the extra: "
                                  "pip install 'continuous_gnn[metis]'); batching = random needs nothing extra",
                                  name="pymetis") from None
    return pymetis


def _require_sampler() -> None:
    import torch_geometric.typing as pyg_typing

    if not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE):
        raise MissingPackageError(
            "batching = neighbor needs pyg-lib or torch-sparse for PyG's NeighborLoader: pip install torch-sparse "
            "(builds from source), or pyg-lib from https://data.pyg.org/whl/; batching = random or metis needs "
            "neither", name="torch_sparse")


def require_batching_package(config: RunConfig) -> None:
    """Refuse a batching whose optional package is missing (known before any data loads).

    Raises:
        MissingPackageError: naming what to install.
    """
    if config.batching == "metis":
        _pymetis()
    elif config.batching == "neighbor":
        _require_sampler()


def check_batching(config: RunConfig, dataset: Any, splits: Sequence[int], *, world_size: int = 1) -> None:
    """The checks of a run's batching against its dataset and process count, before anything is trained.

    Raises:
        ValueError: if ``num_parts`` exceeds the nodes (or, for ``neighbor``, a split's training nodes), if the
            batches of an epoch cannot be shared evenly by ``world_size`` processes, or if processes were asked
            for without batching.
        MissingPackageError: if the package of the batching is not installed.
    """
    if config.batching == "none":
        if world_size > 1:
            raise ValueError(f"training across {world_size} processes gives each its own batches; set batching "
                             f"(e.g. --batching random --num-parts {2 * world_size})")
        return
    num_nodes = dataset.num_nodes
    if config.num_parts > num_nodes:
        raise ValueError(f"num_parts = {config.num_parts} is more than the {num_nodes} nodes of {dataset.name}; "
                         f"choose at most {num_nodes} parts")
    require_batching_package(config)
    if config.batching == "neighbor":
        for split in splits:
            count = int(dataset.split(split)[0].sum())
            if config.num_parts > count:
                raise ValueError(f"num_parts = {config.num_parts} seed batches, but split {split} of {dataset.name} "
                                 f"has {count} training nodes; choose at most {count}")
    count = batches_per_epoch(config, num_nodes)
    if count % world_size:
        fits = _nearest_shared_num_parts(config, num_nodes, world_size)
        raise ValueError(f"an epoch has {count} batches, which {world_size} processes cannot share evenly (they step "
                         f"together); choose num_parts so that the batch count is a multiple of {world_size}"
                         + (f" (random parts hold ceil({num_nodes} / num_parts) nodes)" if config.batching == "random"
                            else "")
                         + (f", such as num_parts = {fits}" if fits is not None else ""))


def _nearest_shared_num_parts(config: RunConfig, num_nodes: int, world_size: int) -> int | None:
    """The ``num_parts`` nearest ``config.num_parts`` (the larger of two as near) whose batches ``world_size``
    processes share evenly, looking at most 1000 values away; ``None`` if none is."""
    for distance in range(1, 1001):
        for parts in (config.num_parts + distance, config.num_parts - distance):
            if (max(1, config.parts_per_batch or 1) <= parts <= num_nodes
                    and not batches_per_epoch(config, num_nodes, parts) % world_size):
                return parts
    return None


def _node_data(data: Data) -> Data:
    """Only what a batch needs (the split masks are not copied into every subgraph)."""
    return Data(x=data.x, y=data.y, edge_index=data.edge_index, num_nodes=data.num_nodes)


def metis_parts(config: RunConfig, data: Data) -> list[Tensor]:
    """The ``config.num_parts`` METIS clusters of ``data``'s graph as node index tensors, seeded with ``config.seed``.

    Computed once per run and shared by its splits (the clusters do not depend on a split).

    Raises:
        MissingPackageError: if pymetis is not installed.
        ValueError: if METIS leaves a cluster empty (too many parts for the graph).
    """
    pymetis = _pymetis()
    num_nodes = int(data.num_nodes)
    starts, col = neighbour_lists(data.edge_index, num_nodes)  # METIS wants both directions, no loops
    adjacency = pymetis.CSRAdjacency(adj_starts=starts.numpy(), adjacent=col.numpy())
    options = pymetis.Options(seed=config.seed % _METIS_SEEDS)
    assignment = torch.as_tensor(pymetis.part_graph(config.num_parts, adjacency, options=options).vertex_part)
    sizes = torch.bincount(assignment, minlength=config.num_parts)
    if bool((sizes == 0).any()):
        raise ValueError(f"METIS left {int((sizes == 0).sum())} of the {config.num_parts} clusters empty; lower num_parts")
    by_cluster = assignment.argsort(stable=True)
    return list(by_cluster.split(sizes.tolist()))


class EpochBatches:
    """This process's batches of every epoch of one split (see the module docstring).

    Args:
        config: the run configuration (``batching`` other than ``"none"``).
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        split: the split whose training nodes carry the loss.
        seed: the seed of the per-epoch draws (the split seed).
        device: where the batches go.
        parts: the clusters of :func:`metis_parts` (``metis`` only; computed here when not given).
        rank: this process's rank (default: 0).
        world_size: the number of processes that share each epoch's batches (default: 1).
    """

    def __init__(self, config: RunConfig, dataset: Any, split: int, seed: int, device: torch.device, *,
                 parts: list[Tensor] | None = None, rank: int = 0, world_size: int = 1) -> None:
        if config.batching == "none":
            raise ValueError("EpochBatches needs a config with batching; batching = none trains full batch")
        self.config, self.device, self.rank, self.world_size = config, device, rank, world_size
        self.data = _node_data(dataset.data)
        self.train_mask = dataset.split(split)[0]
        self.generator = torch.Generator().manual_seed(seed)
        self.parts = parts if parts is not None or config.batching != "metis" else metis_parts(config, dataset.data)
        # One cluster per batch: the same subgraphs every epoch, so each is built once. Keyed by the identity of
        # the cluster tensors, which this object holds for its whole life.
        self._cluster_index = ({id(part): index for index, part in enumerate(self.parts)}
                               if config.batching == "metis" and (config.parts_per_batch or 1) == 1 else {})
        self._built: dict[int, Batch] = {}
        if config.batching == "random":
            from torch_geometric.loader import RandomNodeLoader

            self.loader: Any = RandomNodeLoader(self.data, config.num_parts, shuffle=True, generator=self.generator)
        elif config.batching == "neighbor":
            _require_sampler()
            from torch_geometric.loader import NeighborLoader

            self.loader = NeighborLoader(self.data, num_neighbors=list(parse_fanout(config.num_neighbors)),
                                         input_nodes=self.train_mask.nonzero().view(-1), batch_size=1)

    def groups(self) -> list[Tensor]:
        """The next epoch's batches over all processes: node ids (``random``, ``metis``) or positions among the
        training nodes (``neighbor``, the seeds)."""
        if self.config.batching == "random":
            return [torch.as_tensor(index) for index in self.loader.batch_sampler]
        if self.config.batching == "metis":
            order = torch.randperm(len(self.parts), generator=self.generator).tolist()
            step = self.config.parts_per_batch or 1
            if step == 1:
                return [self.parts[i] for i in order]
            return [torch.cat([self.parts[i] for i in order[start:start + step]]) for start in range(0, len(order), step)]
        count = int(self.train_mask.sum())
        return list(torch.randperm(count, generator=self.generator).tensor_split(self.config.num_parts))

    def materialise(self, group: Tensor) -> Batch:
        """The subgraph, operator and loss nodes of one group of :meth:`groups`."""
        cluster = self._cluster_index.get(id(group))
        if cluster is not None:
            if cluster not in self._built:
                self._built[cluster] = self._build(group)
            return self._built[cluster]
        return self._build(group)

    def _build(self, group: Tensor) -> Batch:
        if self.config.batching == "neighbor":
            sample = self.loader(group)
            sample.edge_index = to_undirected(sample.edge_index, num_nodes=sample.num_nodes)
            loss_nodes = torch.arange(int(sample.batch_size))  # NeighborLoader puts the seeds first
        else:
            sample = self.data.subgraph(group)
            loss_nodes = self.train_mask[group].nonzero().view(-1)
        return Batch(prepare_features(sample.x, self.device), build_graph(sample, self.config, self.device),
                     loss_nodes.to(self.device), sample.y[loss_nodes].to(self.device))

    def __iter__(self) -> Iterator[Batch]:
        """The batches of the next epoch that belong to this process, in order."""
        for group in self.groups()[self.rank::self.world_size]:
            yield self.materialise(group)


class EvaluationBatches:
    r"""The fixed subgraphs that score every node of a split after each epoch (``evaluation = "batches"``).

    Built once: ``random`` cuts a permutation drawn from ``torch.Generator().manual_seed(seed)`` into parts of
    :math:`\lceil N/\text{num\_parts}\rceil` nodes; ``metis`` joins the clusters of :func:`metis_parts`
    ``parts_per_batch`` at a time, in cluster order. Every node lies in exactly one subgraph.

    Args:
        config: the run configuration (``evaluation = "batches"``, ``batching`` random or metis).
        dataset: a :class:`~continuous_gnn.data.NodeDataset`.
        seed: the seed of the random partition (the split seed).
        device: where the subgraphs go.
        parts: the clusters of :func:`metis_parts` (``metis`` only; computed here when not given).
    """

    def __init__(self, config: RunConfig, dataset: Any, seed: int, device: torch.device, *,
                 parts: list[Tensor] | None = None) -> None:
        if config.evaluation != "batches" or config.batching not in ("random", "metis"):
            raise ValueError("EvaluationBatches needs evaluation = batches with batching random or metis, got "
                             f"evaluation = {config.evaluation}, batching = {config.batching}")
        data = _node_data(dataset.data)
        self.num_nodes = int(data.num_nodes)
        if config.batching == "metis":
            clusters = parts if parts is not None else metis_parts(config, dataset.data)
            step = config.parts_per_batch or 1
            self.groups = [torch.cat(clusters[start:start + step]) for start in range(0, len(clusters), step)]
        else:
            order = torch.randperm(self.num_nodes, generator=torch.Generator().manual_seed(seed))
            self.groups = list(order.split(math.ceil(self.num_nodes / config.num_parts)))
        self.batches = []
        for group in self.groups:
            sample = data.subgraph(group)
            self.batches.append((group.to(device), prepare_features(sample.x, device),
                                 build_graph(sample, config, device)))

    def logits(self, model: torch.nn.Module) -> Tensor:
        """``model``'s outputs for every node, ``(N, C)``, each from its own subgraph (call under ``no_grad``)."""
        scored = [(index, model(features, graph)) for index, features, graph in self.batches]
        out = scored[0][1].new_empty((self.num_nodes, scored[0][1].size(1)))
        for index, logits in scored:
            out[index] = logits
        return out
