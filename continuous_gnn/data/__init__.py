"""Benchmark datasets for continuous-depth GNNs (offline, cached, preprocessed).

Typical use from a command-line entry point::

    import os
    from continuous_gnn.data import default_cache_dir, load_dataset, resolve_data_root

    root = resolve_data_root(args.data_root, os.environ)
    ds = load_dataset("texas", root, cache_dir=default_cache_dir(os.environ))
    train, val, test = ds.split(0)

See :mod:`continuous_gnn.data.datasets` and ``docs/datasets.md`` for the
preprocessing and the data layout.
"""

from continuous_gnn.data.datasets import (
    DATASETS,
    NUM_SPLITS,
    DatasetUnavailableError,
    NodeDataset,
    canonical_name,
    load_dataset,
)
from continuous_gnn.data.root import default_cache_dir, default_data_root, resolve_data_root
from continuous_gnn.data.synthetic import (
    complete_bipartite,
    contextual_sbm,
    edge_homophily,
    grid_graph,
    path_graph,
    ring_graph,
)

__all__ = [
    "DATASETS",
    "NUM_SPLITS",
    "DatasetUnavailableError",
    "NodeDataset",
    "canonical_name",
    "default_cache_dir",
    "default_data_root",
    "load_dataset",
    "resolve_data_root",
    "complete_bipartite",
    "contextual_sbm",
    "edge_homophily",
    "grid_graph",
    "path_graph",
    "ring_graph",
]
