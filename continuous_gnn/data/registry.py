"""The dataset registry: which benchmarks exist, which raw files each needs and how each is built.

One ``_Spec`` per canonical name holds the raw-file list (relative to the
data root, laid out as the ``torch_geometric.datasets`` classes expect), the
builder that turns the staged raw files into a graph, where the files come
from (in words, and as the URL of each file), and how the dataset is scored. :data:`DATASETS` and :data:`NUM_SPLITS`
answer questions about a dataset without reading any file;
:func:`canonical_name` resolves case-insensitive spellings and aliases.

The builders wrap the ``torch_geometric`` classes so that their ``download()``
raises :class:`~continuous_gnn.data.raw_files.DatasetUnavailableError`
instead of touching the network: :mod:`~continuous_gnn.data.download` fetches
and checks the raw files before any class runs. The URL of each raw file is
the one the class's own ``download()`` uses, built from the class attribute
(``Planetoid.url``, ``Planetoid.geom_gcn_url``, ``WebKB.url``, ``Actor.url``,
``WikipediaNetwork.processed_url``, ``HeterophilousGraphDataset.url``) when it
is asked for, so that a mirror set on the class, as ``torch_geometric``
allows, is followed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from continuous_gnn.data.development_split import GRAND_SPLIT_SEED, development_split
from continuous_gnn.data.raw_files import DatasetUnavailableError

__all__ = ["DATASETS", "NUM_SPLITS", "canonical_name"]

_PLANETOID_SOURCE = (
    "the data/ folder of the kimiyoung/planetoid GitHub repository "
    "(https://github.com/kimiyoung/planetoid/tree/master/data); the "
    "*_split_0.6_0.2_*.npz files come from the splits/ folder of "
    "graphdml-uiuc-jlu/geom-gcn"
)
_GEOM_GCN_SOURCE = (
    "the graphdml-uiuc-jlu/geom-gcn GitHub repository (new_data/<name>/ for the "
    "out1_*.txt files, splits/ for the *_split_0.6_0.2_*.npz files)"
)
_WIKI_SOURCE = _GEOM_GCN_SOURCE + (
    " at commit f1fc0d14b3b019c562737240d06ec83b07d16a8f (the one torch_geometric pins)"
)
_PLATONOV_SOURCE = (
    "the data/ folder of the yandex-research/heterophilous-graphs GitHub repository"
)


@dataclass(frozen=True)
class _Spec:
    """How to find, build and describe one dataset."""

    name: str
    description: str
    files: tuple[str, ...]  # raw files, relative to the data root
    build: Callable[[Path], Data]  # staging root -> raw Data (any graph form)
    source: str
    homophilous: bool
    remote: Callable[[str], str]  # raw file (relative to the data root) -> its URL
    metric: str = "accuracy"
    normalize_default: bool = True
    note: str = ""  # extra advice for the missing-files message
    num_splits: int = 10  # mask columns the raw files hold


def _geom_split_files(directory: str, prefix: str) -> tuple[str, ...]:
    return tuple(f"{directory}/{prefix}_split_0.6_0.2_{i}.npz" for i in range(10))


def _planetoid_files(pyg_name: str, split: str) -> tuple[str, ...]:
    stem = pyg_name.lower()
    sub = "geom-gcn/raw" if split == "geom-gcn" else "raw"
    directory = f"Planetoid/{pyg_name}/{sub}"
    suffixes = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    files = tuple(f"{directory}/ind.{stem}.{s}" for s in suffixes)
    return files + (_geom_split_files(directory, stem) if split == "geom-gcn" else ())


def _geom_gcn_text_files(directory: str, prefix: str) -> tuple[str, ...]:
    texts = (f"{directory}/out1_node_feature_label.txt", f"{directory}/out1_graph_edges.txt")
    return texts + _geom_split_files(directory, prefix)


def _file_name(rel: str) -> str:
    return rel.rpartition("/")[2]


def _planetoid_remote(rel: str) -> str:
    """Where ``Planetoid.download()`` gets a file: ``ind.*`` from ``url``, splits from ``geom_gcn_url``."""
    from torch_geometric.datasets import Planetoid

    name = _file_name(rel)
    if name.endswith(".npz"):
        return f"{Planetoid.geom_gcn_url}/splits/{name}"
    return f"{Planetoid.url}/{name}"


def _geom_gcn_remote(class_name: str, attribute: str, folder: str) -> Callable[[str], str]:
    """Where a Geom-GCN style class downloads from: ``out1_*.txt`` under ``new_data/<folder>/``, splits under ``splits/``."""

    def remote(rel: str) -> str:
        import torch_geometric.datasets

        base = getattr(getattr(torch_geometric.datasets, class_name), attribute)
        name = _file_name(rel)
        return f"{base}/{'splits' if name.endswith('.npz') else 'new_data/' + folder}/{name}"

    return remote


def _platonov_remote(rel: str) -> str:
    """The data/ folder that ``HeterophilousGraphDataset`` downloads from (it also holds the filtered files)."""
    from torch_geometric.datasets import HeterophilousGraphDataset

    return f"{HeterophilousGraphDataset.url}/{_file_name(rel)}"


def _offline(cls: type) -> type:
    """Subclass of a ``torch_geometric`` dataset class that cannot download.

    It also silences the class's "Processing..." messages: the library must
    not print, and these classes do not forward ``log`` to their base class.
    """

    def download(self) -> None:  # noqa: ANN001 - self is a torch_geometric Dataset
        raise DatasetUnavailableError(
            f"{cls.__name__} found raw files missing in {self.raw_dir} "
            f"(expects {self.raw_file_names}); continuous_gnn never downloads data through "
            "torch_geometric (it fetches and checks the raw files itself, before processing)"
        )

    # A data descriptor wins over the instance attribute that Dataset.__init__
    # sets, so ``log`` stays False.
    silent = property(lambda self: False, lambda self, value: None)
    return type(f"Offline{cls.__name__}", (cls,), {"download": download, "log": silent})


def _build_planetoid(pyg_name: str, split: str) -> Callable[[Path], Data]:
    def build(stage: Path) -> Data:
        from torch_geometric.datasets import Planetoid

        return _offline(Planetoid)(str(stage / "Planetoid"), pyg_name, split=split)[0]

    return build


def _build_webkb(name: str) -> Callable[[Path], Data]:
    def build(stage: Path) -> Data:
        from torch_geometric.datasets import WebKB

        return _offline(WebKB)(str(stage / "WebKB"), name)[0]

    return build


def _build_actor(stage: Path) -> Data:
    from torch_geometric.datasets import Actor

    return _offline(Actor)(str(stage / "Actor"))[0]


def _build_wikipedia(name: str) -> Callable[[Path], Data]:
    def build(stage: Path) -> Data:
        from torch_geometric.datasets import WikipediaNetwork

        root = str(stage / "WikipediaNetwork")
        return _offline(WikipediaNetwork)(root, name, geom_gcn_preprocess=True)[0]

    return build


def _build_heterophilous(name: str) -> Callable[[Path], Data]:
    def build(stage: Path) -> Data:
        from torch_geometric.datasets import HeterophilousGraphDataset

        root = str(stage / "HeterophilousGraphDataset")
        return _offline(HeterophilousGraphDataset)(root, name)[0]

    return build


def _build_filtered(name: str) -> Callable[[Path], Data]:
    def build(stage: Path) -> Data:
        with np.load(stage / "HeterophilousFiltered" / f"{name}_filtered.npz") as z:
            # Edges are stored [E, 2], once per pair; masks are stored [10, N].
            return Data(
                x=torch.from_numpy(z["node_features"]),
                y=torch.from_numpy(z["node_labels"]),
                edge_index=torch.from_numpy(z["edges"]).t(),
                train_mask=torch.from_numpy(z["train_masks"]).t(),
                val_mask=torch.from_numpy(z["val_masks"]).t(),
                test_mask=torch.from_numpy(z["test_masks"]).t(),
            )

    return build


def _planetoid_spec(name: str, pyg_name: str, public: bool, description: str) -> _Spec:
    split = "public" if public else "geom-gcn"
    note = (
        f"Planetoid keeps one copy of the ind.{pyg_name.lower()}.* files per split "
        f"layout: put them into both <root>/Planetoid/{pyg_name}/raw/ (used by "
        f"'{pyg_name.lower()}-public', '{pyg_name.lower()}-lcc' and '{pyg_name.lower()}-lcc-random') and "
        f"<root>/Planetoid/{pyg_name}/geom-gcn/raw/ (used by '{pyg_name.lower()}')."
    )
    return _Spec(
        name=name,
        description=description,
        files=_planetoid_files(pyg_name, split),
        build=_build_planetoid(pyg_name, split),
        source=_PLANETOID_SOURCE,
        homophilous=True,
        remote=_planetoid_remote,
        note=note,
        num_splits=1 if public else 10,
    )


#: The seeds of the splits of the ``-lcc-random`` datasets: one split of GRAND's kind per seed.
RANDOM_LCC_SEEDS = tuple(range(20))


def _build_lcc(pyg_name: str, seeds: tuple[int, ...]) -> Callable[[Path], Data]:
    """The largest connected component of the Planetoid graph, with one split of GRAND's kind per seed (a mask
    column each)."""
    public = _build_planetoid(pyg_name, "public")

    def build(stage: Path) -> Data:
        from torch_geometric.transforms import LargestConnectedComponents

        graph = LargestConnectedComponents()(public(stage))  # keeps the original id order, as GRAND's code
        train, val, test = (torch.stack(masks, dim=1)
                            for masks in zip(*(development_split(graph.y, seed=seed) for seed in seeds)))
        return Data(x=graph.x, y=graph.y, edge_index=graph.edge_index,
                    train_mask=train, val_mask=val, test_mask=test)

    return build


def _lcc_spec(name: str, pyg_name: str, description: str, seeds: tuple[int, ...] = (GRAND_SPLIT_SEED,)) -> _Spec:
    """The public variant's spec (its raw files, source and advice) with the largest component's builder: GRAND's
    split by default, or one split of its kind per seed."""
    return replace(_planetoid_spec(name, pyg_name, True, description), build=_build_lcc(pyg_name, seeds),
                   num_splits=len(seeds))


def _webkb_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=name,
        description=description,
        files=_geom_gcn_text_files(f"WebKB/{name}/raw", name),
        build=_build_webkb(name),
        source=_GEOM_GCN_SOURCE,
        homophilous=False,
        remote=_geom_gcn_remote("WebKB", "url", name),
    )


def _wikipedia_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=name,
        description=description,
        files=_geom_gcn_text_files(f"WikipediaNetwork/{name}/geom_gcn/raw", name),
        build=_build_wikipedia(name),
        source=_WIKI_SOURCE,
        homophilous=False,
        remote=_geom_gcn_remote("WikipediaNetwork", "processed_url", name),
    )


def _filtered_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=f"{name}-filtered",
        description=description,
        files=(f"HeterophilousFiltered/{name}_filtered.npz",),
        build=_build_filtered(name),
        source=_PLATONOV_SOURCE,
        homophilous=False,
        remote=_platonov_remote,
    )


def _heterophilous_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=name,
        description=description,
        files=(f"HeterophilousGraphDataset/{name}/raw/{name}.npz",),
        build=_build_heterophilous(name),
        source=_PLATONOV_SOURCE,
        homophilous=False,
        remote=_platonov_remote,
        metric="roc_auc",
        normalize_default=False,
    )


_SPECS: dict[str, _Spec] = {
    s.name: s
    for s in (
        _planetoid_spec("cora", "Cora", False, "Cora citation graph, 10 Geom-GCN splits"),
        _planetoid_spec("citeseer", "CiteSeer", False, "CiteSeer citation graph, 10 Geom-GCN splits"),
        _planetoid_spec("pubmed", "PubMed", False, "PubMed citation graph, 10 Geom-GCN splits"),
        _planetoid_spec("cora-public", "Cora", True, "Cora, public Planetoid split (140/500/1000)"),
        _planetoid_spec(
            "citeseer-public", "CiteSeer", True, "CiteSeer, public Planetoid split (120/500/1000)"
        ),
        _planetoid_spec(
            "pubmed-public", "PubMed", True, "PubMed, public Planetoid split (60/500/1000)"
        ),
        _lcc_spec(
            "cora-lcc", "Cora",
            "Cora's largest connected component with the split of GRAND's code (seed 12345; 140/1360/985)",
        ),
        _lcc_spec(
            "citeseer-lcc", "CiteSeer",
            "CiteSeer's largest connected component with the split of GRAND's code (seed 12345; 120/1380/620)",
        ),
        _lcc_spec(
            "cora-lcc-random", "Cora",
            "cora-lcc's graph with 20 random splits of GRAND's kind (seeds 0 to 19; 140/1360/985 each)",
            RANDOM_LCC_SEEDS,
        ),
        _lcc_spec(
            "citeseer-lcc-random", "CiteSeer",
            "citeseer-lcc's graph with 20 random splits of GRAND's kind (seeds 0 to 19; 120/1380/620 each)",
            RANDOM_LCC_SEEDS,
        ),
        _webkb_spec("texas", "WebKB Texas web-page graph, 10 Geom-GCN splits"),
        _webkb_spec("wisconsin", "WebKB Wisconsin web-page graph, 10 Geom-GCN splits"),
        _webkb_spec("cornell", "WebKB Cornell web-page graph, 10 Geom-GCN splits"),
        _Spec(
            name="film",
            description="Actor co-occurrence graph (alias 'actor'), 10 Geom-GCN splits",
            files=_geom_gcn_text_files("Actor/raw", "film"),
            build=_build_actor,
            source=_GEOM_GCN_SOURCE.replace("<name>", "film"),
            homophilous=False,
            remote=_geom_gcn_remote("Actor", "url", "film"),
        ),
        _wikipedia_spec("chameleon", "Wikipedia chameleon pages, 10 Geom-GCN splits"),
        _wikipedia_spec("squirrel", "Wikipedia squirrel pages, 10 Geom-GCN splits"),
        _filtered_spec("chameleon", "chameleon without duplicate nodes (Platonov et al.)"),
        _filtered_spec("squirrel", "squirrel without duplicate nodes (Platonov et al.)"),
        _heterophilous_spec("minesweeper", "Minesweeper grid graph, binary, ROC-AUC"),
        _heterophilous_spec("tolokers", "Tolokers crowd-worker graph, binary, ROC-AUC"),
    )
}

_ALIASES = {"actor": "film"}

#: Canonical dataset name -> short description.
DATASETS: dict[str, str] = {name: spec.description for name, spec in _SPECS.items()}
#: Canonical dataset name -> number of train/val/test splits (known without reading any file).
NUM_SPLITS: dict[str, int] = {name: spec.num_splits for name, spec in _SPECS.items()}


def canonical_name(name: str) -> str:
    """The canonical name of a dataset given case-insensitively or by alias (``Actor`` is ``film``).

    Raises:
        TypeError: If ``name`` is no str.
        ValueError: If ``name`` is unknown (the message lists valid names).
    """
    return _lookup(name).name


def _lookup(name: str) -> _Spec:
    """Find a spec by case-insensitive name or alias (``_`` counts as ``-``)."""
    if not isinstance(name, str):
        raise TypeError(f"a dataset name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        aliases = ", ".join(f"{a} -> {c}" for a, c in _ALIASES.items())
        close = difflib.get_close_matches(key, [*_SPECS, *_ALIASES], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown dataset {name!r}{hint}; valid names: {', '.join(_SPECS)} (aliases: {aliases})"
        )
    return _SPECS[key]
