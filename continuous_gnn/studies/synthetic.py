"""Synthetic graphs wrapped as datasets, for studies that need no benchmark data."""

from __future__ import annotations

import math

from ..data import complete_bipartite, contextual_sbm, grid_graph, path_graph, ring_graph
from ..data.datasets import NodeDataset

__all__ = ["SYNTHETIC_KINDS", "synthetic_dataset"]

#: The synthetic graphs of :func:`synthetic_dataset`.
SYNTHETIC_KINDS: tuple[str, ...] = ("sbm", "bipartite", "ring", "path", "grid")


def synthetic_dataset(kind: str, *, nodes: int = 200, homophily: float = 0.5, seed: int = 0, num_classes: int = 2,
                      num_features: int = 16, snr: float = 1.0, avg_degree: float = 5.0) -> NodeDataset:
    r"""A synthetic graph wrapped as a one-split :class:`~continuous_gnn.data.NodeDataset`.

    ==============  ===========================================================================================
    kind            graph
    ==============  ===========================================================================================
    ``sbm``         :func:`~continuous_gnn.data.contextual_sbm` with ``nodes``, ``num_classes``,
                    ``homophily``, ``avg_degree``, ``num_features``, ``snr``; split 0.5/0.25/0.25
    ``bipartite``   :math:`K_{n,n}` with :math:`n` = ``nodes // 2``, 2-d Gaussian features without class signal,
                    label = side (the GRAFF toy); split 0.8/0.1/0.1 as in the official code
    ``ring``        the cycle :math:`C_n`; labels all 0
    ``path``        the path :math:`P_n`; labels all 0
    ``grid``        the open :math:`r \times r` grid, :math:`r = \operatorname{round}(\sqrt{n})`; labels all 0
    ==============  ===========================================================================================

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
