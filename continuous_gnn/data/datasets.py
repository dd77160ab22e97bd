"""Loaders for the node-classification benchmarks.

:func:`load_dataset` reads the raw files of one benchmark from a data root
(laid out as the ``torch_geometric.datasets`` classes expect, see
``docs/datasets.md``) and returns a :class:`NodeDataset`. It reads only the
files at hand unless given ``download=Download(...)``; then it first fetches
the raw files the root lacks (:mod:`~continuous_gnn.data.download`).

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
  It is applied after reading the cache, so switching it never reuses a stale
  processed file.
* **2-D boolean masks** ``[num_nodes, num_splits]``; column ``i`` is split
  ``i``. Single-split datasets (the Planetoid public split) get ``[N, 1]``.

The steps before the result live in their own modules:
:mod:`~continuous_gnn.data.registry` (which datasets exist, their raw files and
builders), :mod:`~continuous_gnn.data.raw_files` (missing or corrupt raw files,
reported as :class:`DatasetUnavailableError`), :mod:`~continuous_gnn.data.download`
(missing raw files fetched and checked, when allowed) and
:mod:`~continuous_gnn.data.cache` (process once in a private folder inside
``cache_dir``, publish atomically, read back later; the data root is never
written to).
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import NormalizeFeatures

from continuous_gnn.data.cache import _load_tensors, _unpack_features
from continuous_gnn.data.download import Download, download_dataset
from continuous_gnn.data.raw_files import DatasetUnavailableError, _check_raw_files, _check_root
from continuous_gnn.data.registry import DATASETS, NUM_SPLITS, _lookup, canonical_name
from continuous_gnn.data.root import default_cache_dir

__all__ = ["DATASETS", "NUM_SPLITS", "DatasetUnavailableError", "NodeDataset", "canonical_name", "load_dataset",
           "check_dataset_files"]

_METRICS = ("accuracy", "roc_auc")


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


def _row_normalize(x: Tensor) -> Tensor:
    """:class:`torch_geometric.transforms.NormalizeFeatures` on a feature matrix."""
    return NormalizeFeatures()(Data(x=x.clone())).x


def _check_path_arg(value: object, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        hint = " (use resolve_data_root() to get one)" if what == "root" else ""
        raise TypeError(f"{what} must be a str or os.PathLike, got {type(value).__name__}{hint}")
    # ~ as a shell would (it does not in --cache-dir=~/x), and as torch_geometric does inside: the package and
    # the classes it calls must name the same folder.
    return Path(value).expanduser()


def load_dataset(
    name: str,
    root: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    normalize_features: bool | None = None,
    download: Download | None = None,
) -> NodeDataset:
    """Load a preprocessed benchmark (see the module docstring for the preprocessing).

    Args:
        name: Dataset name, case-insensitive; one of :data:`DATASETS` or the
            alias ``"actor"`` (for ``"film"``).
        root: Raw data root, e.g. from
            :func:`~continuous_gnn.data.resolve_data_root`. Written to only
            when ``download`` is given and raw files are missing.
        cache_dir: Writable directory for processed files; defaults to
            ``default_cache_dir({})``, i.e. ``~/.cache/continuous_gnn/processed``
            (pass ``default_cache_dir(os.environ)`` to honour ``XDG_CACHE_HOME``).
        normalize_features: Row-normalise the features. ``None`` uses the
            dataset's default (on, except for minesweeper and tolokers).
        download: ``None`` (the default) reads only the files present and never
            uses the network. A :class:`~continuous_gnn.data.Download` first
            downloads the raw files the root lacks into it, checked
            (:func:`~continuous_gnn.data.download_dataset`).

    Returns:
        The dataset. Its tensors are fresh copies owned by the caller.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``name`` is unknown (the message lists valid names).
        DatasetUnavailableError: If the root or a raw file is missing, or a raw
            file is truncated or corrupt (the message names the dataset, its raw
            folder and the cause, and how to check the files against SHA256SUMS);
            its subclass :class:`~continuous_gnn.data.DownloadError` if a
            download was allowed and failed.
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

    if download is not None and not isinstance(download, Download):
        raise TypeError(f"download must be a Download or None, got {type(download).__name__}")

    spec = _lookup(name)
    if download is not None:
        download_dataset(spec.name, root_path, download)
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


def check_dataset_files(name: str, root: str | os.PathLike[str]) -> None:
    """Check, before any long work, that the data root holds every raw file of dataset ``name`` (their presence
    only: :func:`load_dataset` checks their content when it reads them).

    Raises:
        ValueError: on an unknown dataset name (listing the valid ones).
        DatasetUnavailableError: if the root is missing or a raw file is not there (naming them and where to get
            them).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    spec = _lookup(name)
    root_path = _check_path_arg(root, "root")
    _check_root(root_path)
    _check_raw_files(spec, root_path)
