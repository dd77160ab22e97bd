r"""One training epoch of the package's GRAFF model against a PyG stack of GCNConv layers of the same size.

Both models are encoder → L graph layers of width d → decoder, with the same dropouts and Adam; one epoch is a
full-batch forward, the cross-entropy on split 0's training nodes, backward and an Adam step.

* the package: :class:`~continuous_gnn.ContinuousGNN` with the GRAFF energy (dense :math:`W`), Euler with step 1
  and :math:`T = L`, so L residual layers that share their weights, on a :class:`~continuous_gnn.Graph` built
  once, given the dense features as the PyG stack is;
* the same package model as ``continuous-gnn train`` builds and feeds it: the same weights, with the input
  dropout and the first linear map in one :class:`~continuous_gnn.nn.SparseInputLinear`, and the features
  stored as sparse CSR when at most :data:`~continuous_gnn.training.build.SPARSE_FEATURE_DENSITY` of them are
  non-zero (:func:`~continuous_gnn.training.build.prepare_features`), so that dropout draws one number per stored
  entry instead of one per entry of the dense ``(n, p)`` input;
* :class:`GCNStack`: L ``torch_geometric.nn.GCNConv`` layers with ReLU, in two forms: PyG's fastest on CPU,
  ``cached=True`` with a torch CSR ``adj_t`` (normalised once, one fused sparse product per layer), and PyG's
  default, an ``edge_index`` that every layer normalises again and aggregates by gather/scatter.

PyG's ``EdgeIndex`` is not a third form: ``GCNConv`` does not declare ``SUPPORTS_FUSED_EDGE_INDEX``, so it
runs the same gather/scatter path as a plain ``edge_index`` (the page records the flag as read at run time).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import GCNConv
from torch_geometric.utils import to_torch_csr_tensor

from ..data import NodeDataset
from ..energies import GRAFFEnergy
from ..graph import Graph
from ..models import ContinuousGNN
from ..nn import SparseInputLinear
from ..ode import FixedGrid
from ..training.build import prepare_features
from .timing import Comparison, compare, synchronizer

__all__ = ["EpochSettings", "EpochResult", "GCNStack", "epoch_comparison", "fused_edge_index", "CONTESTANTS", "OFFICIAL_EPOCH_MS",
           "OFFICIAL_SOURCE"]

#: The contestants, in the order of the comparison (the first is the ratios' baseline).
CONTESTANTS = ("package GRAFF", "package GRAFF, as trained", "PyG GCNConv, cached CSR adj_t",
               "PyG GCNConv, edge_index")

#: Epoch times of the official GRAFF code, quoted (not measured by this benchmark): milliseconds per epoch.
OFFICIAL_EPOCH_MS = {"cora": 85.0, "squirrel": 1040.0}
OFFICIAL_SOURCE = ("measured elsewhere, quoted from the project's GRAFF reference notes (graff-notes §15, "
                   "2026-11-24): the official code (JRowbottomGit/graff at 97ea6b5) with hidden 64, 4 Euler steps, "
                   "forward + backward + Adam, median of 30 epochs, on a 2-core CPU with torch 2.13 and PyG 2.8.1; "
                   "it propagates by edge-list scatter and renormalises at every evaluation")


@dataclass(frozen=True)
class EpochSettings:
    """The models and the protocol of the epoch comparison (chosen by the command)."""

    hidden: int = 64
    layers: int = 4
    dropout: float = 0.5
    input_dropout: float = 0.5
    lr: float = 0.01
    repeats: int = 10
    warmup: int = 2

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("hidden, layers and repeats must be >= 1 and warmup >= 0")
        if not (0 <= self.dropout < 1 and 0 <= self.input_dropout < 1):
            raise ValueError("dropout and input_dropout must lie in [0, 1)")


@dataclass(frozen=True)
class EpochResult:
    """The comparison on one dataset."""

    dataset: str
    nodes: int
    edges: int
    features: int
    sparse_features: bool  # whether the trained form stored the features as sparse CSR
    comparison: Comparison


class GCNStack(nn.Module):
    """dropout → Linear(p, d) → L × (GCNConv(d, d), ReLU) → dropout → Linear(d, k): the package model's layout with
    GCN layers in place of the flow."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, layers: int, *, cached: bool,
                 dropout: float, input_dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Linear(in_channels, hidden)
        self.convs = nn.ModuleList(GCNConv(hidden, hidden, cached=cached) for _ in range(layers))
        self.decoder = nn.Linear(hidden, out_channels)
        self.dropout, self.input_dropout = dropout, input_dropout

    def forward(self, x: Tensor, adj) -> Tensor:
        h = self.encoder(F.dropout(x, self.input_dropout, self.training))
        for conv in self.convs:
            h = F.relu(conv(h, adj))
        return self.decoder(F.dropout(h, self.dropout, self.training))


def epoch_comparison(dataset: NodeDataset, settings: EpochSettings, device: str = "cpu", seed: int = 0) -> EpochResult:
    """Time one training epoch of each contestant, interleaved (:func:`~continuous_gnn.benchmarks.timing.compare`).

    Raises:
        ValueError: when the two PyG forms give different outputs with the same weights (they would not be the
            same model).
    """
    data = dataset.data
    n = dataset.num_nodes
    x, y = data.x.to(device), data.y.to(device)
    train = dataset.split(0)[0].to(device)
    edge_index = data.edge_index.to(device)
    with warnings.catch_warnings():  # torch's notes that CSR is in beta and unchecked
        warnings.simplefilter("ignore", UserWarning)
        adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(n, n))  # adj_t: row = target
    graph = Graph.from_edge_index(edge_index, n)
    torch.manual_seed(seed)
    package = ContinuousGNN(dataset.num_features, settings.hidden, dataset.num_classes, GRAFFEnergy(settings.hidden),
                            t_end=float(settings.layers), solver=FixedGrid("euler", step_size=1.0),
                            dropout=settings.dropout, input_dropout=settings.input_dropout).to(device)
    fast = GCNStack(dataset.num_features, settings.hidden, dataset.num_classes, settings.layers, cached=True,
                    dropout=settings.dropout, input_dropout=settings.input_dropout).to(device)
    default = copy.deepcopy(fast)
    for conv in default.convs:
        conv.cached = False
    with torch.no_grad():
        fast.eval(), default.eval()
        if not torch.allclose(fast(x, adj_t), default(x, edge_index), rtol=1e-4, atol=1e-5):
            raise ValueError(f"{dataset.name}: GCNConv gives different outputs on adj_t and edge_index")
        for conv in fast.convs:
            conv._cached_adj_t = None  # cached at the check; the timed runs rebuild it once in warm-up
    trained = _as_trained(package, settings.input_dropout)
    features = prepare_features(x)
    with torch.no_grad():
        package.eval(), trained.eval()
        if not torch.allclose(package(x, graph), trained(features, graph), rtol=1e-4, atol=1e-5):
            raise ValueError(f"{dataset.name}: the package model gives different outputs on dense and stored features")
    models = {CONTESTANTS[0]: (package, graph, x), CONTESTANTS[1]: (trained, graph, features),
              CONTESTANTS[2]: (fast, adj_t, x), CONTESTANTS[3]: (default, edge_index, x)}
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=settings.lr) for name, (model, *_) in models.items()}

    def epoch(name: str):
        model, adjacency, inputs = models[name]

        def run() -> None:
            model.train()
            optimizers[name].zero_grad()
            F.cross_entropy(model(inputs, adjacency)[train], y[train]).backward()
            optimizers[name].step()

        return run

    comparison = compare({name: epoch(name) for name in CONTESTANTS}, repeats=settings.repeats,
                         warmup=settings.warmup, synchronize=synchronizer(device))
    return EpochResult(dataset.name, n, int(edge_index.size(1)), dataset.num_features,
                       features.layout == torch.sparse_csr, comparison)


def _as_trained(model: ContinuousGNN, input_dropout: float) -> ContinuousGNN:
    """A copy of ``model`` whose input dropout and encoder are one :class:`SparseInputLinear` with the same weights,
    as :func:`~continuous_gnn.training.build.build_model` builds it: the same function of dense input, and it also
    takes the sparse features of :func:`~continuous_gnn.training.build.prepare_features`."""
    trained = copy.deepcopy(model)
    encoder = trained.encoder
    if not isinstance(encoder, nn.Linear):
        raise TypeError(f"the epoch benchmark's model has a linear encoder, got {type(encoder).__name__}")
    first = SparseInputLinear(encoder.in_features, encoder.out_features, input_dropout).to(encoder.weight.device)
    first.load_state_dict(encoder.state_dict())
    trained.encoder, trained.input_dropout = first, 0.0
    return trained


def fused_edge_index() -> bool:
    """Whether PyG's ``GCNConv`` fuses message passing on an ``EdgeIndex`` (read from the installed PyG)."""
    return bool(getattr(GCNConv, "SUPPORTS_FUSED_EDGE_INDEX", False))
