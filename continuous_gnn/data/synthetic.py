r"""Synthetic graphs with known structure: the contextual SBM here, and the shared conventions of every generator
(the fixed families, complete bipartite, ring, path and grid, are in :mod:`~continuous_gnn.data.fixed_graphs`).

Every generator returns a :class:`torch_geometric.data.Data` with

* ``edge_index``: undirected (both directions stored), no self-loops, no duplicate edges, coalesced
  (sorted by source, then target);
* ``x`` (float32), ``y`` (int64);
* ``train_mask``, ``val_mask``, ``test_mask``: bool tensors of shape ``(n, num_splits)``; split ``s`` is
  a fresh random permutation with the first ``round(train_frac * n)`` nodes in train, the next
  ``round(val_frac * n)`` in validation and the rest in test (or ``round(test_frac * n)`` of the rest
  when the fractions sum to less than 1). Splits are not stratified.

Randomness comes only from the ``seed`` argument: an ``int`` (a fresh :class:`torch.Generator` seeded
with it, so equal seeds give identical graphs) or a CPU :class:`torch.Generator` (used and advanced in
place). The global RNG is never touched.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce
from torch_geometric.utils import homophily as _pyg_homophily

__all__ = ["contextual_sbm", "sbm_edges", "edge_homophily"]

Seed = int | torch.Generator

# Above this many candidate pairs a block is sampled by rejection instead of enumerating its pairs.
_ENUMERATION_LIMIT = 4_000_000


# ---------------------------------------------------------------------------------------------------
# validation and shared helpers
# ---------------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_unit_interval(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def _check_non_negative(name: str, value: float) -> float:
    value = float(value)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_fits(what: str, num_nodes: int, directed_edges: float, num_features: int = 0, num_splits: int = 0) -> None:
    """Refuse a graph whose tensors, while it is built, cannot fit in the memory available now. The estimate is a
    lower bound, so that no graph that would fit is refused: the edge list (int64 pairs, three copies at once while
    it is made undirected and sorted; building one takes more), the float32 features, the labels and the masks.
    Where the available memory cannot be read, nothing is checked.

    Raises:
        ValueError: naming the estimate, what is available and what to lower.
    """
    from ..training.preflight import available_memory  # the one reading of the host's and cgroup's memory

    _check_int("num_features", num_features, 0)  # a str would be repeated by the products below, not refused
    _check_int("num_splits", num_splits, 0)
    needed = 48 * directed_edges + 4 * num_nodes * num_features + (16 + 3 * num_splits) * num_nodes
    available = available_memory(torch.device("cpu"))
    if available is not None and needed > available:
        raise ValueError(f"{what} needs at least {needed / 2**30:.3g} GiB to build ({num_nodes:.3g} nodes, "
                         f"{directed_edges:.3g} directed edges), but {available / 2**30:.3g} GiB is available; "
                         "ask for a smaller graph")


def _generator(seed: Seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _split_masks(
    num_nodes: int,
    num_splits: int,
    train_frac: float,
    val_frac: float,
    test_frac: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random train/val/test masks of shape ``(num_nodes, num_splits)``."""
    _check_int("num_splits", num_splits, 1)
    fractions = {"train_frac": train_frac, "val_frac": val_frac, "test_frac": test_frac}
    for name, value in fractions.items():
        _check_unit_interval(name, value)
    total = train_frac + val_frac + test_frac
    if total > 1.0 + 1e-9:
        raise ValueError(f"train_frac + val_frac + test_frac must be <= 1, got {total}")
    num_train = round(train_frac * num_nodes)
    num_val = min(round(val_frac * num_nodes), num_nodes - num_train)
    rest = num_nodes - num_train - num_val
    # Fractions summing to 1 put every remaining node in test, whatever the rounding did.
    num_test = rest if total >= 1.0 - 1e-9 else min(round(test_frac * num_nodes), rest)
    masks = torch.zeros(3, num_nodes, num_splits, dtype=torch.bool)
    for split in range(num_splits):
        order = torch.randperm(num_nodes, generator=generator)
        masks[0, order[:num_train], split] = True
        masks[1, order[num_train : num_train + num_val], split] = True
        masks[2, order[num_train + num_val : num_train + num_val + num_test], split] = True
    return masks[0], masks[1], masks[2]


def _undirected(edges: Tensor, num_nodes: int) -> Tensor:
    """Both directions of the (self-loop-free) pairs in ``edges``, coalesced."""
    both = torch.cat([edges, edges.flip(0)], dim=1)
    return coalesce(both, num_nodes=num_nodes)


def _class_means(num_classes: int, num_features: int, snr: float) -> Tensor:
    r"""Class means :math:`m_c = \frac{snr}{\sqrt2}(e_c - \frac1C\sum_{c'} e_{c'})`, pairwise distance ``snr``."""
    means = torch.zeros(num_classes, num_features)
    means[:, :num_classes] = torch.eye(num_classes) - 1.0 / num_classes
    return means * (snr / math.sqrt(2.0))


def _gaussian_features(y: Tensor, num_classes: int, num_features: int, snr: float, generator: torch.Generator) -> Tensor:
    noise = torch.randn(y.numel(), num_features, generator=generator)
    return noise + _class_means(num_classes, num_features, snr)[y]


def _finish(
    edge_index: Tensor,
    x: Tensor,
    y: Tensor,
    num_splits: int,
    fractions: tuple[float, float, float],
    generator: torch.Generator,
) -> Data:
    num_nodes = y.numel()
    train, val, test = _split_masks(num_nodes, num_splits, *fractions, generator)
    return Data(
        x=x, y=y, edge_index=edge_index, train_mask=train, val_mask=val, test_mask=test, num_nodes=num_nodes
    )


def edge_homophily(edge_index: Tensor, y: Tensor) -> float:
    r"""Edge homophily: the fraction of edges whose endpoints share a label.

    .. math::
        h = \frac{|\{(i, j) \in E : y_i = y_j\}|}{|E|},

    over the entries of ``edge_index`` (an undirected edge stored in both directions counts twice, which
    leaves the fraction unchanged). Self-loops, if present, count as homophilous edges, so pass a
    loop-free edge list. Uses :func:`torch_geometric.utils.homophily` with ``method="edge"``.

    Args:
        edge_index (Tensor): shape ``(2, |E|)``, at least one edge.
        y (Tensor): integer labels, shape ``(n,)``.

    Returns:
        float: in ``[0, 1]``.

    Raises:
        TypeError: unless both are integer tensors.
        ValueError: if there are no edges, or an edge names a node without a label.
    """
    for name, value in (("edge_index", edge_index), ("y", y)):
        if not isinstance(value, Tensor) or value.is_floating_point() or value.is_complex():
            raise TypeError(f"{name} must be an integer tensor, got {getattr(value, 'dtype', type(value).__name__)}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2 or y.dim() != 1:
        raise ValueError(f"edge_index must have shape (2, num_edges) and y shape (num_nodes,); got "
                         f"{tuple(edge_index.shape)} and {tuple(y.shape)}")
    if edge_index.size(1) == 0:
        raise ValueError("edge homophily is undefined for a graph without edges")
    if int(edge_index.min()) < 0 or int(edge_index.max()) >= y.numel():
        raise ValueError(f"edge_index names nodes in {int(edge_index.min())}..{int(edge_index.max())}, but y labels "
                         f"nodes 0..{y.numel() - 1}; pass the labels of every node")
    return float(_pyg_homophily(edge_index, y, method="edge"))


# ---------------------------------------------------------------------------------------------------
# contextual stochastic block model
# ---------------------------------------------------------------------------------------------------


def _sample_block(
    nodes_a: Tensor, nodes_b: Tensor, same: bool, probability: float, generator: torch.Generator
) -> Tensor:
    """Each possible pair of the block independently with ``probability``, as a ``(2, k)`` edge list.

    Within one class (``same``) the pairs are the unordered pairs of distinct nodes of ``nodes_a``;
    between two classes, all of ``nodes_a x nodes_b``. The number of edges is drawn from the binomial
    law first, then that many distinct pairs uniformly; this is the same law as independent Bernoulli
    trials but costs O(k) instead of O(#pairs) for sparse blocks.
    """
    size_a, size_b = nodes_a.numel(), nodes_b.numel()
    num_pairs = size_a * (size_a - 1) // 2 if same else size_a * size_b
    if num_pairs == 0 or probability == 0.0:
        return torch.empty(2, 0, dtype=torch.long)
    count = int(
        torch.binomial(
            torch.tensor(float(num_pairs), dtype=torch.float64),
            torch.tensor(probability, dtype=torch.float64),
            generator=generator,
        )
    )
    if count == 0:
        return torch.empty(2, 0, dtype=torch.long)
    if num_pairs <= _ENUMERATION_LIMIT:
        codes = torch.randperm(num_pairs, generator=generator)[:count]
        if same:
            pairs = torch.triu_indices(size_a, size_a, offset=1)[:, codes]
        else:
            pairs = torch.stack([codes // size_b, codes % size_b])
    elif 2 * count <= num_pairs:
        pairs = _rejection_pairs(size_a, size_b, same, count, generator)
    else:
        # A dense block: rejection would need ever more passes for the last missing pairs (at p = 1, about as many
        # as there are pairs). The complement of a uniform set of the non-edges is a uniform set of the edges, and
        # it holds at least half of the pairs, so listing them all costs no more memory than the edges.
        absent = _rejection_pairs(size_a, size_b, same, num_pairs - count, generator)
        pairs = torch.triu_indices(size_a, size_a, offset=1) if same else torch.cartesian_prod(
            torch.arange(size_a), torch.arange(size_b)).T
        keep = torch.ones(size_a * size_b, dtype=torch.bool)
        keep[absent[0] * size_b + absent[1]] = False
        pairs = pairs[:, keep[pairs[0] * size_b + pairs[1]]]
    return torch.stack([nodes_a[pairs[0]], nodes_b[pairs[1]]])


def _rejection_pairs(size_a: int, size_b: int, same: bool, count: int, generator: torch.Generator) -> Tensor:
    """``count`` distinct uniform pairs out of a large block, by sampling with replacement and deduplicating
    (quick while ``count`` is at most half of the pairs: each pass then finds at least half of those missing)."""
    distinct = torch.empty(0, dtype=torch.long)
    while distinct.numel() < count:
        draws = 2 * (count - distinct.numel()) + 16
        a = torch.randint(size_a, (draws,), generator=generator)
        b = torch.randint(size_b, (draws,), generator=generator)
        if same:
            keep = a != b
            a, b = torch.minimum(a[keep], b[keep]), torch.maximum(a[keep], b[keep])
        distinct = torch.unique(torch.cat([distinct, a * size_b + b]))
    # Given its size, the distinct set is a uniform subset; a uniform sub-subset of it stays uniform.
    codes = distinct[torch.randperm(distinct.numel(), generator=generator)[:count]]
    return torch.stack([codes // size_b, codes % size_b])


def _balanced_labels(num_nodes: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """Class sizes differing by at most one, in random node order."""
    labels = torch.arange(num_nodes) % num_classes
    return labels[torch.randperm(num_nodes, generator=generator)]


def _sbm_edges(num_nodes: int, num_classes: int, homophily: float, avg_degree: float,
               generator: torch.Generator) -> tuple[Tensor, Tensor]:
    y = _balanced_labels(num_nodes, num_classes, generator)
    sizes = torch.bincount(y, minlength=num_classes).tolist()
    pairs_in = sum(s * (s - 1) // 2 for s in sizes)
    pairs_out = num_nodes * (num_nodes - 1) // 2 - pairs_in
    target_edges = num_nodes * avg_degree / 2.0
    p_in = homophily * target_edges / pairs_in
    p_out = (1.0 - homophily) * target_edges / pairs_out
    if p_in > 1.0 or p_out > 1.0:
        raise ValueError(
            f"avg_degree={avg_degree} is too large for homophily={homophily} on {num_nodes} nodes: it needs edge "
            f"probabilities p_in={p_in:.3g}, p_out={p_out:.3g}, which must be <= 1"
        )

    members = [torch.nonzero(y == c).flatten() for c in range(num_classes)]
    blocks = []
    for c in range(num_classes):
        blocks.append(_sample_block(members[c], members[c], True, p_in, generator))
        for c2 in range(c + 1, num_classes):
            blocks.append(_sample_block(members[c], members[c2], False, p_out, generator))
    edge_index = _undirected(torch.cat(blocks, dim=1), num_nodes)
    return edge_index, y


def sbm_edges(num_nodes: int, num_classes: int = 2, homophily: float = 0.5, avg_degree: float = 5.0, *,
              seed: Seed = 0) -> tuple[Tensor, Tensor]:
    """The graph of :func:`contextual_sbm` without its features and splits: the undirected ``edge_index`` (both
    directions, no self-loops) and the labels ``y``. With the same arguments and seed, the edges are those of
    :func:`contextual_sbm` (which draws its features after them); for graphs too large to hold features.

    Raises:
        ValueError: on an argument outside its range (those of :func:`contextual_sbm`).
    """
    _check_int("num_classes", num_classes, 2)
    _check_int("num_nodes", num_nodes, 2 * num_classes)
    homophily = _check_unit_interval("homophily", homophily)
    avg_degree = _check_non_negative("avg_degree", avg_degree)
    _check_fits("sbm_edges", num_nodes, num_nodes * avg_degree)
    return _sbm_edges(num_nodes, num_classes, homophily, avg_degree, _generator(seed))


def contextual_sbm(
    num_nodes: int,
    num_classes: int = 2,
    homophily: float = 0.5,
    avg_degree: float = 5.0,
    num_features: int = 16,
    snr: float = 1.0,
    *,
    seed: Seed = 0,
    num_splits: int = 1,
    train_frac: float = 0.5,
    val_frac: float = 0.25,
    test_frac: float = 0.25,
) -> Data:
    r"""Contextual stochastic block model with a target edge homophily and feature signal-to-noise ratio.

    **Labels.** ``num_classes`` classes of sizes differing by at most one, assigned in random order.

    **Graph.** A stochastic block model: each unordered pair of distinct nodes is an edge independently,
    with probability :math:`p_{\text{in}}` inside a class and :math:`p_{\text{out}}` across classes,

    .. math::
        p_{\text{in}} = \frac{h\,m}{N_{\text{in}}}, \qquad p_{\text{out}} = \frac{(1-h)\,m}{N_{\text{out}}},
        \qquad m = \frac{n\,\bar d}{2},

    where :math:`N_{\text{in}} = \sum_c \binom{n_c}{2}` and :math:`N_{\text{out}} = \sum_{c<c'} n_c n_{c'}`
    count the possible pairs, :math:`h` = ``homophily`` and :math:`\bar d` = ``avg_degree``. So the expected
    number of edges is :math:`m` (expected mean degree :math:`\bar d`), of which :math:`h\,m` join
    same-class nodes: the edge homophily (:func:`edge_homophily`) concentrates at :math:`h`, with
    fluctuations of order :math:`\sqrt{h(1-h)/m}`. The graph may be disconnected and may have isolated
    nodes.

    **Features.** :math:`x_i = m_{y_i} + \varepsilon_i`, :math:`\varepsilon_i \sim \mathcal N(0, I)` in
    :math:`\mathbb R^{F}`, :math:`F` = ``num_features``, with class means

    .. math::
        m_c = \frac{\mathrm{snr}}{\sqrt2}\Big(e_c - \frac1C \sum_{c'=1}^{C} e_{c'}\Big),

    (:math:`e_c` the standard basis vectors, so the signal sits in the first :math:`C` coordinates),
    hence :math:`\|m_c - m_{c'}\| = \mathrm{snr}` for every pair of classes: **snr is the distance between
    class means in units of the noise standard deviation.** For two classes :math:`m_{0,1} = \pm\mu` with
    :math:`\|\mu\| = \mathrm{snr}/2`, and the best classifier from features alone errs with probability
    :math:`\Phi(-\mathrm{snr}/2)`.

    Args:
        num_nodes (int): :math:`n \ge 2C`.
        num_classes (int): :math:`C \ge 2`.
        homophily (float): target edge homophily :math:`h \in [0, 1]`.
        avg_degree (float): expected mean degree :math:`\bar d \ge 0`; must keep both probabilities
            :math:`\le 1`.
        num_features (int): :math:`F \ge C`.
        snr (float): distance between class means over noise std, :math:`\ge 0`.
        seed (int or torch.Generator): source of randomness (default: 0).
        num_splits (int): number of random splits (columns of the masks).
        train_frac, val_frac, test_frac (float): split fractions.

    Returns:
        Data: see the module docstring.

    Raises:
        ValueError: on an argument outside its range (the message names it and the range), or a graph too
            large for the memory available, before any of it is drawn.
    """
    _check_int("num_classes", num_classes, 2)
    _check_int("num_nodes", num_nodes, 2 * num_classes)
    _check_int("num_features", num_features, num_classes)
    homophily = _check_unit_interval("homophily", homophily)
    avg_degree = _check_non_negative("avg_degree", avg_degree)
    snr = _check_non_negative("snr", snr)
    _check_fits("contextual_sbm", num_nodes, num_nodes * avg_degree, num_features, num_splits)
    generator = _generator(seed)
    edge_index, y = _sbm_edges(num_nodes, num_classes, homophily, avg_degree, generator)

    x = _gaussian_features(y, num_classes, num_features, snr, generator)
    return _finish(edge_index, x, y, num_splits, (train_frac, val_frac, test_frac), generator)
