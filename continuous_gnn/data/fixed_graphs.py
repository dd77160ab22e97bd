r"""Graphs of fixed structure for controlled studies: complete bipartite, ring, path and grid.

They follow the conventions of :mod:`~continuous_gnn.data.synthetic` (undirected coalesced ``edge_index``
without self-loops, ``x``, ``y``, split masks of shape ``(n, num_splits)``, randomness only from ``seed``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from continuous_gnn.data.synthetic import (
    Seed,
    _check_fits,
    _check_int,
    _check_non_negative,
    _finish,
    _gaussian_features,
    _generator,
    _undirected,
)

__all__ = ["complete_bipartite", "grid_graph", "path_graph", "ring_graph"]


def complete_bipartite(
    n: int,
    num_features: int = 2,
    snr: float = 0.0,
    *,
    seed: Seed = 0,
    num_splits: int = 1,
    train_frac: float = 0.5,
    val_frac: float = 0.25,
    test_frac: float = 0.25,
) -> Data:
    r"""The complete bipartite graph :math:`K_{n,n}`, labelled by side: the GRAFF over-sharpening toy.

    Nodes ``0..n-1`` form side 0 and ``n..2n-1`` side 1 (``y``); every cross pair is an edge, no pair
    within a side is, so the edge homophily is 0. Features are Gaussian,
    :math:`x_i = m_{y_i} + \varepsilon_i`, :math:`\varepsilon_i\sim\mathcal N(0, I)`, with the class means
    of :func:`contextual_sbm` for two classes (:math:`\pm\mu`, :math:`\|2\mu\| = \mathrm{snr}`). The
    default ``snr=0`` reproduces the official toy (``create_bipartite_graph`` in the GRAFF code draws
    ``x = randn(2n, d)`` independently of the side, ``d = 2``), where only the graph carries the label.
    (The official code splits 0.8/0.1/0.1; pass ``train_frac=0.8, val_frac=0.1, test_frac=0.1`` for that.)

    Spectral facts (graff-notes §14): without self-loops :math:`\rho_\Delta = 2` with eigenvector the
    :math:`\pm 1` side indicator; with self-loops :math:`\rho_\Delta = 2n/(n+1)`.

    Args:
        n (int): nodes per side, :math:`\ge 1`.
        num_features (int): feature width, :math:`\ge 1` (:math:`\ge 2` when ``snr > 0``).
        snr (float): distance between the two class means over noise std, :math:`\ge 0` (default: 0).
        seed, num_splits, train_frac, val_frac, test_frac: as in :func:`contextual_sbm`.

    Returns:
        Data: with ``2n`` nodes and :math:`2n^2` directed edge entries.
    """
    _check_int("n", n, 1)
    snr = _check_non_negative("snr", snr)
    _check_int("num_features", num_features, 2 if snr > 0 else 1)
    _check_fits("complete_bipartite", 2 * n, 2 * n * n, num_features, num_splits)
    generator = _generator(seed)
    left = torch.arange(n).repeat_interleave(n)
    right = torch.arange(n, 2 * n).repeat(n)
    edge_index = _undirected(torch.stack([left, right]), 2 * n)
    y = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    x = _gaussian_features(y, 2, num_features, snr, generator)
    return _finish(edge_index, x, y, num_splits, (train_frac, val_frac, test_frac), generator)


def _plain_graph(
    pairs: Tensor,
    num_nodes: int,
    num_features: int,
    seed: Seed,
    num_splits: int,
    fractions: tuple[float, float, float],
) -> Data:
    """Unlabelled graph (``y = 0``) with standard-normal features."""
    _check_int("num_features", num_features, 1)
    generator = _generator(seed)
    edge_index = _undirected(pairs, num_nodes)
    x = torch.randn(num_nodes, num_features, generator=generator)
    y = torch.zeros(num_nodes, dtype=torch.long)
    return _finish(edge_index, x, y, num_splits, fractions, generator)


def ring_graph(
    n: int,
    num_features: int = 1,
    *,
    seed: Seed = 0,
    num_splits: int = 1,
    train_frac: float = 0.5,
    val_frac: float = 0.25,
    test_frac: float = 0.25,
) -> Data:
    r"""The cycle :math:`C_n`: node ``i`` joined to ``i+1 mod n``.

    2-regular, so without self-loops :math:`\Delta = I - A/2` has eigenvalues
    :math:`1 - \cos(2\pi k/n)`, :math:`k = 0,\dots,n-1`. Features are standard normal
    ``(n, num_features)`` drawn from ``seed``; labels are all 0.

    Args:
        n (int): number of nodes, :math:`\ge 3` (smaller cycles would need duplicate edges).
        num_features (int): feature width, :math:`\ge 1`.
        seed, num_splits, train_frac, val_frac, test_frac: as in :func:`contextual_sbm`.
    """
    _check_int("n", n, 3)
    _check_fits("ring_graph", n, 2 * n, num_features, num_splits)
    nodes = torch.arange(n)
    pairs = torch.stack([nodes, (nodes + 1) % n])
    return _plain_graph(pairs, n, num_features, seed, num_splits, (train_frac, val_frac, test_frac))


def path_graph(
    n: int,
    num_features: int = 1,
    *,
    seed: Seed = 0,
    num_splits: int = 1,
    train_frac: float = 0.5,
    val_frac: float = 0.25,
    test_frac: float = 0.25,
) -> Data:
    r"""The path :math:`P_n`: node ``i`` joined to ``i+1``.

    Without self-loops its normalised Laplacian has eigenvalues :math:`1 - \cos(\pi k/(n-1))`,
    :math:`k = 0,\dots,n-1` (:math:`n \ge 2`). A single node has no edges. Features and labels as in
    :func:`ring_graph`.

    Args:
        n (int): number of nodes, :math:`\ge 1`.
        num_features (int): feature width, :math:`\ge 1`.
        seed, num_splits, train_frac, val_frac, test_frac: as in :func:`contextual_sbm`.
    """
    _check_int("n", n, 1)
    _check_fits("path_graph", n, 2 * n, num_features, num_splits)
    nodes = torch.arange(n - 1)
    pairs = torch.stack([nodes, nodes + 1])
    return _plain_graph(pairs, n, num_features, seed, num_splits, (train_frac, val_frac, test_frac))


def grid_graph(
    rows: int,
    cols: int,
    num_features: int = 1,
    *,
    periodic: bool = False,
    seed: Seed = 0,
    num_splits: int = 1,
    train_frac: float = 0.5,
    val_frac: float = 0.25,
    test_frac: float = 0.25,
) -> Data:
    r"""The ``rows x cols`` 4-neighbour grid; node ``r * cols + c`` sits at row ``r``, column ``c``.

    With ``periodic=True`` it is the torus :math:`C_{\text{rows}} \times C_{\text{cols}}`, 4-regular, so
    without self-loops :math:`\Delta = I - A/4` has eigenvalues
    :math:`1 - \tfrac12\big(\cos(2\pi j/\text{rows}) + \cos(2\pi k/\text{cols})\big)`. The open grid is
    bipartite (checkerboard), so without self-loops its largest eigenvalue is exactly 2, with eigenvector
    :math:`(-1)^{r+c}\sqrt{d_{rc}}` (normalised). Features and labels as in :func:`ring_graph`.

    Args:
        rows, cols (int): grid size, :math:`\ge 1` (:math:`\ge 3` when ``periodic``, to avoid duplicate
            edges).
        num_features (int): feature width, :math:`\ge 1`.
        periodic (bool): wrap around both directions (default: ``False``).
        seed, num_splits, train_frac, val_frac, test_frac: as in :func:`contextual_sbm`.
    """
    minimum = 3 if periodic else 1
    _check_int("rows", rows, minimum)
    _check_int("cols", cols, minimum)
    _check_fits("grid_graph", rows * cols, 4 * rows * cols, num_features, num_splits)
    index = torch.arange(rows * cols).view(rows, cols)
    if periodic:
        horizontal = torch.stack([index.flatten(), index.roll(-1, dims=1).flatten()])
        vertical = torch.stack([index.flatten(), index.roll(-1, dims=0).flatten()])
    else:
        horizontal = torch.stack([index[:, :-1].flatten(), index[:, 1:].flatten()])
        vertical = torch.stack([index[:-1, :].flatten(), index[1:, :].flatten()])
    pairs = torch.cat([horizontal, vertical], dim=1)
    return _plain_graph(pairs, rows * cols, num_features, seed, num_splits, (train_frac, val_frac, test_frac))
