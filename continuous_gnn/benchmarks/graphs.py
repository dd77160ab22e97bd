r"""The synthetic graphs of the benchmark: a community graph with shuffled node ids, and a uniformly random graph.

Both are the graphs of :func:`~continuous_gnn.data.synthetic.sbm_edges` (block-wise sampling, so 10⁶ nodes take seconds and
no dense matrix):

* ``"sbm"``, the target: :data:`COMMUNITIES` communities with a fraction :data:`INSIDE` of the edges inside
  them. The generator assigns communities to node ids in random order, so the ids are shuffled: a node's
  neighbours are scattered over the whole feature matrix, as in a graph whose ids carry no locality.
* ``"uniform"``, the worst case: two blocks with equal edge probability inside and across, i.e. the
  Erdős–Rényi graph :math:`G(n, p)` with :math:`p = n\bar d / (2\binom n2)`.

The expected mean degree is ``degree`` (each undirected edge counted at both ends).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ..atomic import atomic_open
from ..data.synthetic import sbm_edges

__all__ = ["KINDS", "COMMUNITIES", "INSIDE", "benchmark_edges", "uniform_homophily"]

#: The graphs: communities with shuffled ids (``sbm``, the target) and uniformly random edges (the worst case).
KINDS = ("sbm", "uniform")
#: The number of communities of the ``sbm`` graph.
COMMUNITIES = 32
#: The fraction of the ``sbm`` graph's edges that join two nodes of one community.
INSIDE = 0.9


def uniform_homophily(num_nodes: int) -> float:
    """The within-block edge fraction of two balanced blocks that makes inside and across equally likely."""
    large, small = -(-num_nodes // 2), num_nodes // 2
    return (math.comb(large, 2) + math.comb(small, 2)) / math.comb(num_nodes, 2)


def benchmark_edges(kind: str, num_nodes: int, degree: float, seed: int = 0, cache: str | None = None) -> Tensor:
    """The undirected ``edge_index`` (both directions, no self-loops) of a benchmark graph.

    Args:
        kind (str): ``"sbm"`` or ``"uniform"`` (module docstring).
        num_nodes (int): at least ``2 * COMMUNITIES``.
        degree (float): expected mean degree.
        seed (int): the graph's seed (default: 0).
        cache (str, optional): a file: read the edges from it when it exists, else write them to it.

    Raises:
        ValueError: on an unknown kind or too few nodes.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown graph kind {kind!r}; choose one of {KINDS}")
    if num_nodes < 2 * COMMUNITIES:
        raise ValueError(f"benchmark graphs need at least {2 * COMMUNITIES} nodes, got {num_nodes}")
    if cache is not None and Path(cache).is_file():
        return torch.load(cache)
    if kind == "sbm":
        edges, _ = sbm_edges(num_nodes, COMMUNITIES, INSIDE, degree, seed=seed)
    else:
        edges, _ = sbm_edges(num_nodes, 2, uniform_homophily(num_nodes), degree, seed=seed)
    if cache is not None:
        with atomic_open(cache, "wb") as handle:
            torch.save(edges, handle)
    return edges
