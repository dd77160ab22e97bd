"""Offline loaders for the node-classification benchmarks.

:func:`load_dataset` reads the raw files of one benchmark from a read-only data
root (laid out as the ``torch_geometric.datasets`` classes expect, see
``docs/datasets.md``) and returns a :class:`NodeDataset`.

Preprocessing, the same for every dataset:

* **Undirected graph.** ``edge_index`` is symmetrised with
  :func:`torch_geometric.utils.to_undirected` (which also removes duplicate
  edges and sorts them). WebKB, Actor and the Wikipedia graphs are stored
  directed; the other graphs are already symmetric.
* **No self-loops.** They are removed with
  :func:`torch_geometric.utils.remove_self_loops`; the model's graph operator
  adds them back uniformly as ``Ā = D̃^{-1/2} (A + I) D̃^{-1/2}``, so keeping
  the few stored loops would give those nodes a double weight.
* **Row-normalised features** by
  :class:`torch_geometric.transforms.NormalizeFeatures`: the global minimum is
  subtracted, then each row is divided by ``max(row sum, 1)``. Every dataset
  held here has features in ``[0, 1]`` and no row summing to less than 1
  (other than 0), so each non-zero row sums to 1 and all-zero rows stay zero. On by default for the
  bag-of-words datasets (Planetoid, WebKB, Actor, Wikipedia, filtered
  Wikipedia), off by default for minesweeper and tolokers, whose few features
  are not counts. ``normalize_features=True/False`` overrides the default.
* **2-D boolean masks** ``[num_nodes, num_splits]``; column ``i`` is split
  ``i``. Single-split datasets (the Planetoid public split) get ``[N, 1]``.

Safety and caching:

* The data root is never written to. Each dataset is processed once in a
  private temporary directory inside ``cache_dir`` (raw files copied there,
  the ``torch_geometric`` class run there), and only the final tensors are
  published with an atomic :func:`os.replace`. Concurrent or interrupted runs
  therefore never leave a half-written cache entry. Later calls load that file
  (milliseconds). The cache key covers the raw files' names, sizes and
  modification times, so replacing raw files triggers reprocessing.
* Feature normalisation is applied after loading the cache, so switching it
  never reuses a stale processed file.
* Nothing is ever downloaded: before a ``torch_geometric`` class is called,
  every raw file it needs is checked, and a missing file raises
  :class:`DatasetUnavailableError` saying which file, where it must go and
  where to get it. As a second guard, the classes are wrapped so that their
  ``download()`` raises the same error instead of touching the network.
* A raw file that is present but truncated or corrupt (an unreadable ``.npz``
  or pickle, malformed text, features, labels, edges or masks that do not fit
  together) also raises :class:`DatasetUnavailableError`, naming the dataset,
  its raw folder and the cause, and pointing to the ``SHA256SUMS`` file of the
  data root; when that file lists the raw files, the ones whose checksum
  differs are named. Nothing is cached for a failed build, so the next call
  after the files are repaired processes them afresh.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import pickle
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch_geometric
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import NormalizeFeatures
from torch_geometric.utils import remove_self_loops, to_undirected

from continuous_gnn.data.root import DATA_ROOT_ENV, default_cache_dir

__all__ = ["DATASETS", "NUM_SPLITS", "DatasetUnavailableError", "NodeDataset", "canonical_name", "load_dataset"]

#: Bumped whenever the layout or content of cache files changes.
_CACHE_FORMAT = 2
#: Temporary build directories older than this are leftovers of killed runs.
_STALE_BUILD_SECONDS = 24 * 3600
_BUILD_PREFIX = ".build-"
_METRICS = ("accuracy", "roc_auc")
#: Checksum file of a data root (``sha256sum`` format, paths relative to the root).
_CHECKSUMS = "SHA256SUMS"
#: Longest excerpt of the underlying error quoted in a corrupt-file message.
_CAUSE_CHARS = 200


class DatasetUnavailableError(FileNotFoundError):
    """Raw files of a dataset are missing from the data root, or present but unreadable.

    The message names the missing files, the directory they belong in and
    where to obtain them; for files that are present but truncated or corrupt,
    it names the dataset, its raw folder and the underlying error, and says how
    to check the files against the data root's ``SHA256SUMS``. Nothing is ever
    downloaded.
    """


# ----------------------------------------------------------------------------
# Result type
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeDataset:
    """A preprocessed node-classification benchmark.

    Attributes:
        name: Canonical lower-case name, e.g. ``"texas"``.
        data: Graph with ``x`` float32 ``[N, F]``, ``y`` long ``[N]``,
            ``edge_index`` long ``[2, E]`` (undirected, no self-loops) and
            boolean masks ``train_mask``, ``val_mask``, ``test_mask`` of shape
            ``[N, num_splits]``.
        num_classes: Number of classes.
        num_splits: Number of train/val/test splits (mask columns).
        metric: ``"accuracy"``, or ``"roc_auc"`` for the binary datasets.
        homophilous: Whether the graph is conventionally classed homophilous.
        features_normalized: Whether the feature rows were normalised.
    """

    name: str
    data: Data
    num_classes: int
    num_splits: int
    metric: str
    homophilous: bool
    features_normalized: bool = False

    def __post_init__(self) -> None:
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        num_nodes = self.data.num_nodes
        for key in ("train_mask", "val_mask", "test_mask"):
            mask = getattr(self.data, key, None)
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                raise ValueError(f"data.{key} must be a boolean tensor")
            if tuple(mask.shape) != (num_nodes, self.num_splits):
                raise ValueError(
                    f"data.{key} must have shape [num_nodes, num_splits] = "
                    f"[{num_nodes}, {self.num_splits}], got {list(mask.shape)}"
                )

    @property
    def num_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.data.num_nodes)

    @property
    def num_features(self) -> int:
        """Number of input features ``F``."""
        return int(self.data.x.size(1))

    def split(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        """Return the 1-D ``(train, val, test)`` boolean masks of split ``i``.

        Args:
            i: Split index in ``0 .. num_splits - 1``.

        Returns:
            Three boolean tensors of shape ``[num_nodes]`` (copies, so callers
            may modify them).

        Raises:
            TypeError: If ``i`` is not an integer.
            ValueError: If ``i`` is out of range.
        """
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"split index must be an int, got {type(i).__name__}")
        i = int(i)
        if not 0 <= i < self.num_splits:
            raise ValueError(
                f"split index {i} is out of range for dataset {self.name!r}: "
                f"valid splits are 0..{self.num_splits - 1} ({self.num_splits} in total)"
            )
        d = self.data
        return d.train_mask[:, i].clone(), d.val_mask[:, i].clone(), d.test_mask[:, i].clone()


# ----------------------------------------------------------------------------
# Dataset registry
# ----------------------------------------------------------------------------

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


def _offline(cls: type) -> type:
    """Subclass of a ``torch_geometric`` dataset class that cannot download.

    It also silences the class's "Processing..." messages: the library must
    not print, and these classes do not forward ``log`` to their base class.
    """

    def download(self) -> None:  # noqa: ANN001 - self is a torch_geometric Dataset
        raise DatasetUnavailableError(
            f"{cls.__name__} found raw files missing in {self.raw_dir} "
            f"(expects {self.raw_file_names}); continuous_gnn never downloads data"
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
        f"'{pyg_name.lower()}-public') and <root>/Planetoid/{pyg_name}/geom-gcn/raw/ "
        f"(used by '{pyg_name.lower()}')."
    )
    return _Spec(
        name=name,
        description=description,
        files=_planetoid_files(pyg_name, split),
        build=_build_planetoid(pyg_name, split),
        source=_PLANETOID_SOURCE,
        homophilous=True,
        note=note,
        num_splits=1 if public else 10,
    )


def _webkb_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=name,
        description=description,
        files=_geom_gcn_text_files(f"WebKB/{name}/raw", name),
        build=_build_webkb(name),
        source=_GEOM_GCN_SOURCE,
        homophilous=False,
    )


def _wikipedia_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=name,
        description=description,
        files=_geom_gcn_text_files(f"WikipediaNetwork/{name}/geom_gcn/raw", name),
        build=_build_wikipedia(name),
        source=_WIKI_SOURCE,
        homophilous=False,
    )


def _filtered_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=f"{name}-filtered",
        description=description,
        files=(f"HeterophilousFiltered/{name}_filtered.npz",),
        build=_build_filtered(name),
        source=_PLATONOV_SOURCE,
        homophilous=False,
    )


def _heterophilous_spec(name: str, description: str) -> _Spec:
    return _Spec(
        name=name,
        description=description,
        files=(f"HeterophilousGraphDataset/{name}/raw/{name}.npz",),
        build=_build_heterophilous(name),
        source=_PLATONOV_SOURCE,
        homophilous=False,
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
        ValueError: If ``name`` is unknown (the message lists valid names).
    """
    return _lookup(name).name


def _lookup(name: str) -> _Spec:
    """Find a spec by case-insensitive name or alias (``_`` counts as ``-``)."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        aliases = ", ".join(f"{a} -> {c}" for a, c in _ALIASES.items())
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(_SPECS)} (aliases: {aliases})"
        )
    return _SPECS[key]


# ----------------------------------------------------------------------------
# Raw-file checks
# ----------------------------------------------------------------------------


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise DatasetUnavailableError(
            f"data root {str(root)!r} does not exist or is not a directory; set "
            f"--data-root or the {DATA_ROOT_ENV} environment variable to the folder "
            "that holds Planetoid/, WebKB/, Actor/, WikipediaNetwork/, "
            "HeterophilousGraphDataset/ and HeterophilousFiltered/"
        )


def _source(spec: _Spec) -> str:
    """Where the raw files come from, with the dataset's folder name filled in."""
    return spec.source.replace("<name>", spec.name)


def _check_raw_files(spec: _Spec, root: Path) -> None:
    """Raise :class:`DatasetUnavailableError` unless every raw file exists."""
    missing = [f for f in spec.files if not (root / f).is_file()]
    if not missing:
        return
    by_dir: dict[str, list[str]] = {}
    for rel in missing:
        directory, _, filename = rel.rpartition("/")
        by_dir.setdefault(directory, []).append(filename)
    where = "; ".join(f"{', '.join(names)} into {root / d}{os.sep}" for d, names in by_dir.items())
    note = f" {spec.note.replace('<root>', str(root))}" if spec.note else ""
    raise DatasetUnavailableError(
        f"dataset {spec.name!r} is incomplete under data root {str(root)!r}: "
        f"{len(missing)} raw file(s) missing. Copy {where}. Get them from "
        f"{_source(spec)}.{note} Nothing is downloaded automatically; set --data-root "
        f"or {DATA_ROOT_ENV} if the data lives elsewhere."
    )


# ----------------------------------------------------------------------------
# Processing cache
# ----------------------------------------------------------------------------


def _fingerprint(spec: _Spec, root: Path) -> str:
    """Cache key from the raw files' names, sizes and mtimes (cheap: stat only)."""
    h = hashlib.sha256(f"{_CACHE_FORMAT}|{torch_geometric.__version__}|{spec.name}".encode())
    for rel in spec.files:
        st = (root / rel).stat()
        h.update(f"|{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _canonicalize(data: Data, spec: _Spec) -> dict[str, Tensor]:
    """Undirected graph without self-loops, fixed dtypes and 2-D boolean masks.

    Raises:
        ValueError: If the tensors read from the raw files do not fit together
            (a sign of a truncated or corrupt file).
    """
    x = getattr(data, "x", None)
    if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) == 0:
        shape = list(x.shape) if isinstance(x, Tensor) else None
        raise ValueError(f"the features must be a non-empty [num_nodes, num_features] matrix, got shape {shape}")
    num_nodes = int(x.size(0))
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the features contain nan or inf values")
    y = data.y.long().view(-1)
    if y.numel() != num_nodes:
        raise ValueError(f"there are {y.numel()} labels for {num_nodes} feature rows; each node needs one")
    if int(y.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices, got {int(y.min())}")
    edge_index = data.edge_index
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, num_edges], got {list(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(
            f"edges refer to nodes {int(edge_index.min())}..{int(edge_index.max())}, but there are "
            f"{num_nodes} nodes (0..{num_nodes - 1})"
        )
    edge_index, _ = remove_self_loops(edge_index.long())
    edge_index = to_undirected(edge_index, num_nodes=num_nodes)
    out = {
        **_pack_features(x.float()),
        "y": y,
        "edge_index": edge_index.contiguous(),
        "num_classes": torch.tensor(int(y.max()) + 1),
    }
    for key in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(data, key).bool()  # Geom-GCN Planetoid masks load as uint8
        mask = mask.unsqueeze(1) if mask.dim() == 1 else mask
        if tuple(mask.shape) != (num_nodes, spec.num_splits):
            raise ValueError(
                f"{key} must have shape [num_nodes, num_splits] = [{num_nodes}, {spec.num_splits}], "
                f"got {list(mask.shape)}"
            )
        out[key] = mask.contiguous()
    return out


def _pack_features(x: Tensor) -> dict[str, Tensor]:
    """Store features as coordinates and values.

    The bag-of-words matrices are over 98% zeros; dense files would take about
    280 MB of cache for all datasets, this takes a few MB.
    """
    index = x.nonzero().t().contiguous()
    return {"x_index": index, "x_values": x[index[0], index[1]], "x_shape": torch.tensor(x.shape)}


def _unpack_features(tensors: dict[str, Tensor]) -> Tensor:
    num_rows, num_cols = (int(v) for v in tensors["x_shape"])
    x = torch.zeros(num_rows, num_cols, dtype=torch.float32)
    x[tensors["x_index"][0], tensors["x_index"][1]] = tensors["x_values"]
    return x


def _remove_stale_builds(cache_dir: Path) -> None:
    """Delete build directories left behind by killed processes."""
    cutoff = time.time() - _STALE_BUILD_SECONDS
    for path in cache_dir.glob(f"{_BUILD_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:  # another process removed it first
            pass


#: What reading a truncated or corrupt raw file raises inside numpy, pickle,
#: torch and the torch_geometric classes (UnicodeDecodeError is a ValueError).
#: OSError counts only without an errno (numpy's "Failed to interpret file"):
#: one with an errno is a real system error (disk full, permissions).
_CORRUPT_FILE_ERRORS = (
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    RuntimeError,
    OSError,
)


def _read_checksums(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` from the data root's ``SHA256SUMS`` (empty if absent or unreadable)."""
    try:
        text = (root / _CHECKSUMS).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    sums = {}
    for line in text.splitlines():
        digest, _, rel = line.strip().partition(" ")
        rel = rel.strip().lstrip("*")  # "*" marks binary mode in sha256sum's format
        if len(digest) == 64 and rel:
            sums[rel.removeprefix("./")] = digest.lower()
    return sums


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksum_advice(spec: _Spec, root: Path) -> str:
    """What the data root's ``SHA256SUMS`` says about the dataset's raw files."""
    sums = _read_checksums(root)
    listed = [rel for rel in spec.files if rel in sums]
    if not listed:
        return (
            f"Check the files against the {_CHECKSUMS} file of the data root "
            f"(cd {root} && sha256sum -c {_CHECKSUMS}) or copy them again from {_source(spec)}."
        )
    try:
        bad = [rel for rel in listed if _sha256(root / rel) != sums[rel]]
    except OSError:  # unreadable now: say nothing more specific
        bad = []
    if bad:
        names = ", ".join(str(root / rel) for rel in bad)
        return (
            f"These differ from their entry in {root / _CHECKSUMS}: {names}. "
            f"Copy them again from {_source(spec)}."
        )
    unlisted = len(spec.files) - len(listed)
    if unlisted:
        return (
            f"The {len(listed)} file(s) listed in {root / _CHECKSUMS} match it; check the other {unlisted} "
            f"or copy them again from {_source(spec)}."
        )
    return (
        f"All of them match {root / _CHECKSUMS}, so the files are intact: the installed torch_geometric "
        f"{torch_geometric.__version__} may read them differently; please report this."
    )


def _corrupt_error(spec: _Spec, root: Path, stage: Path, err: BaseException) -> DatasetUnavailableError:
    folders = sorted({str(root / rel.rpartition("/")[0]) for rel in spec.files})
    # Name the data root, not the private copy the files were processed in; keep the message on one line.
    cause = " ".join(str(err).replace(str(stage), str(root)).split())
    if len(cause) > _CAUSE_CHARS:
        cause = cause[: _CAUSE_CHARS - 3] + "..."
    cause = f"{type(err).__name__}: {cause}" if cause else type(err).__name__
    return DatasetUnavailableError(
        f"dataset {spec.name!r}: the raw files in {', '.join(folders)} could not be read ({cause}); "
        f"one of them is probably truncated or corrupt. {_checksum_advice(spec, root)}"
    )


def _process(spec: _Spec, root: Path, stage: Path) -> dict[str, Tensor]:
    """Run the dataset's builder on the staged raw files and canonicalise the result.

    Raises:
        DatasetUnavailableError: If a raw file is missing, truncated or corrupt.
    """
    try:
        return _canonicalize(spec.build(stage), spec)
    except DatasetUnavailableError:
        raise
    except OSError as err:
        if err.errno is not None:  # a system error (disk full, permissions), not the files' content
            raise
        raise _corrupt_error(spec, root, stage, err) from err
    except _CORRUPT_FILE_ERRORS as err:
        raise _corrupt_error(spec, root, stage, err) from err


def _build_cache_file(spec: _Spec, root: Path, cache_dir: Path, target: Path) -> None:
    """Process ``spec`` in a private temporary directory and publish ``target`` atomically."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{spec.name}-", dir=cache_dir))
    except OSError as err:
        raise PermissionError(
            f"cannot create a processing directory in cache_dir {str(cache_dir)!r} ({err}); "
            "pass a writable cache_dir"
        ) from err
    try:
        # Copy the raw files so that torch_geometric writes its processed/
        # folders here, never into the (possibly shared, read-only) data root.
        for rel in spec.files:
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dest)
        tensors = _process(spec, root, stage)
        partial = stage / "graph.pt"
        torch.save(tensors, partial)
        os.replace(partial, target)  # atomic: readers see all or nothing
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _remove_stale_builds(cache_dir)


def _read_cache_file(path: Path) -> dict[str, Tensor] | None:
    """Load a cache file, or return ``None`` if it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable cache entry is rebuilt
        return None
    expected = {"x_index", "x_values", "x_shape", "y", "edge_index", "num_classes", "train_mask", "val_mask", "test_mask"}
    return tensors if isinstance(tensors, dict) and expected <= tensors.keys() else None


def _load_tensors(spec: _Spec, root: Path, cache_dir: Path) -> dict[str, Tensor]:
    target = cache_dir / f"{spec.name}-{_fingerprint(spec, root)}.pt"
    tensors = _read_cache_file(target)
    if tensors is None:
        _build_cache_file(spec, root, cache_dir, target)
        tensors = _read_cache_file(target)
        if tensors is None:  # pragma: no cover - only on a broken file system
            raise OSError(f"processed cache file {str(target)!r} could not be read back")
    return tensors


# ----------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------


def _row_normalize(x: Tensor) -> Tensor:
    """:class:`torch_geometric.transforms.NormalizeFeatures` on a feature matrix."""
    return NormalizeFeatures()(Data(x=x.clone())).x


def _check_path_arg(value: object, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        hint = " (use resolve_data_root() to get one)" if what == "root" else ""
        raise TypeError(f"{what} must be a str or os.PathLike, got {type(value).__name__}{hint}")
    return Path(value)


def load_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    normalize_features: bool | None = None,
) -> NodeDataset:
    """Load a preprocessed benchmark (see the module docstring for the preprocessing).

    Args:
        name: Dataset name, case-insensitive; one of :data:`DATASETS` or the
            alias ``"actor"`` (for ``"film"``).
        root: Raw data root, e.g. from
            :func:`~continuous_gnn.data.resolve_data_root`. Never written to.
        cache_dir: Writable directory for processed files; defaults to
            ``default_cache_dir({})``, i.e. ``~/.cache/continuous_gnn/processed``
            (pass ``default_cache_dir(os.environ)`` to honour ``XDG_CACHE_HOME``).
        normalize_features: Row-normalise the features. ``None`` uses the
            dataset's default (on, except for minesweeper and tolokers).

    Returns:
        The dataset. Its tensors are fresh copies owned by the caller.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``name`` is unknown (the message lists valid names).
        DatasetUnavailableError: If the root or a raw file is missing, or a raw
            file is truncated or corrupt (the message names the dataset, its raw
            folder and the cause, and how to check the files against SHA256SUMS).
        PermissionError: If ``cache_dir`` is not writable and the dataset is
            not cached yet.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    root_path = _check_path_arg(root, "root")
    cache_path = (
        default_cache_dir({}) if cache_dir is None else _check_path_arg(cache_dir, "cache_dir")
    )
    if normalize_features is not None and not isinstance(normalize_features, bool):
        raise TypeError(
            f"normalize_features must be a bool or None, got {type(normalize_features).__name__}"
        )

    spec = _lookup(name)
    _check_root(root_path)
    _check_raw_files(spec, root_path)
    tensors = _load_tensors(spec, root_path, cache_path)

    normalize = spec.normalize_default if normalize_features is None else normalize_features
    x = _unpack_features(tensors)
    x = _row_normalize(x) if normalize else x
    data = Data(
        x=x,
        y=tensors["y"],
        edge_index=tensors["edge_index"],
        train_mask=tensors["train_mask"],
        val_mask=tensors["val_mask"],
        test_mask=tensors["test_mask"],
    )
    return NodeDataset(
        name=spec.name,
        data=data,
        num_classes=int(tensors["num_classes"]),
        num_splits=int(tensors["train_mask"].size(1)),
        metric=spec.metric,
        homophilous=spec.homophilous,
        features_normalized=normalize,
    )
