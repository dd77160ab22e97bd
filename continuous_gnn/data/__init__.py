"""Benchmark datasets for continuous-depth GNNs (downloaded on request, cached, preprocessed).

Typical use from a command-line entry point::

    import os
    from continuous_gnn.data import Download, default_cache_dir, load_dataset, resolve_data_root

    root = resolve_data_root(args.data_root, os.environ)
    # download=None (the default) never uses the network: missing files are an error.
    ds = load_dataset("texas", root, cache_dir=default_cache_dir(os.environ), download=Download(timeout=30))
    train, val, test = ds.split(0)

Modules, from the bottom up:

* :mod:`~continuous_gnn.data.root`: where the data root and the cache live.
* :mod:`~continuous_gnn.data.raw_files`: missing or corrupt raw files, reported
  as :class:`DatasetUnavailableError`.
* :mod:`~continuous_gnn.data.development_split`: the split of GRAND's code,
  used by the ``-lcc`` datasets.
* :mod:`~continuous_gnn.data.registry`: which datasets exist, their raw files,
  URLs and builders.
* :mod:`~continuous_gnn.data.download`: fetch the raw files a data root lacks,
  checked, when the caller passes a :class:`Download`.
* :mod:`~continuous_gnn.data.cache`: process a dataset once, store it, read it
  back.
* :mod:`~continuous_gnn.data.datasets`: :func:`load_dataset` and
  :class:`NodeDataset`, with the preprocessing described.
* :mod:`~continuous_gnn.data.synthetic`: the contextual SBM, generated
  graphs for controlled studies;
* :mod:`~continuous_gnn.data.fixed_graphs`: complete bipartite, ring, path
  and grid graphs.

See ``docs/datasets.md`` for the data layout.
"""

from continuous_gnn.data.datasets import NodeDataset, check_dataset_files, load_dataset
from continuous_gnn.data.development_split import development_split
from continuous_gnn.data.download import Download, DownloadError, DownloadProgress, download_dataset
from continuous_gnn.data.fixed_graphs import complete_bipartite, grid_graph, path_graph, ring_graph
from continuous_gnn.data.raw_files import DatasetUnavailableError
from continuous_gnn.data.registry import DATASETS, NUM_SPLITS, canonical_name
from continuous_gnn.data.root import default_cache_dir, default_data_root, resolve_data_root
from continuous_gnn.data.synthetic import contextual_sbm, edge_homophily

__all__ = [
    "DATASETS",
    "NUM_SPLITS",
    "DatasetUnavailableError",
    "Download",
    "DownloadError",
    "DownloadProgress",
    "NodeDataset",
    "canonical_name",
    "check_dataset_files",
    "default_cache_dir",
    "default_data_root",
    "development_split",
    "download_dataset",
    "load_dataset",
    "resolve_data_root",
    "complete_bipartite",
    "contextual_sbm",
    "edge_homophily",
    "grid_graph",
    "path_graph",
    "ring_graph",
]
