"""The split of GRAND's code: the largest connected component, a development set and a fixed per-class budget.

GRAND (Chamberlain et al., ICML 2021) reports its Cora and CiteSeer numbers with ``use_lcc`` set, and its code then
never uses the public Planetoid split. It keeps the largest connected component, numbered in the order of the
original node ids, and draws one split from a seed (its ``set_train_val_test_split``, seed 12345, in the
``src/data.py`` of twitter-research/graph-neural-pde):

1. a development set of ``num_development`` nodes, ``RandomState(seed).choice(N, num_development, replace=False)``;
   every other node is a test node;
2. from a fresh ``RandomState(seed)``, for each class in turn, ``num_per_class`` training nodes drawn from the
   development nodes of that class (in development-set order), without replacement;
3. the development nodes that are not training nodes are the validation set.

:func:`development_split` draws exactly this, with numpy's legacy ``RandomState``, whose streams numpy keeps stable
across versions, so that the ``cora-lcc`` and ``citeseer-lcc`` datasets hold the split of GRAND's data loader.
Later versions of GRAND's ``run_GNN.py`` (at commit 642678c, for one) redraw it before every run with the seed
``np.random.randint(0, 1000)``, unseeded; with those, GRAND's runs used random splits of this kind
(``development_split(y, seed=s)`` for some ``s`` below 1000), not this one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["GRAND_SPLIT_SEED", "development_split"]

#: The seed of GRAND's ``set_train_val_test_split`` call for the Planetoid datasets.
GRAND_SPLIT_SEED = 12345


def development_split(y: Tensor, *, seed: int = GRAND_SPLIT_SEED, num_development: int = 1500,
                      num_per_class: int = 20) -> tuple[Tensor, Tensor, Tensor]:
    """The ``(train, val, test)`` boolean masks of GRAND's split of a graph with labels ``y``.

    Args:
        y: ``[N]`` class indices ``0 .. C - 1``.
        seed: the seed of both random draws (default: GRAND's 12345).
        num_development: nodes in the development set (training plus validation; default 1500).
        num_per_class: training nodes per class, drawn from the development set (default 20).

    Returns:
        Three disjoint ``[N]`` boolean masks that cover every node: ``num_per_class`` training nodes per class,
        ``num_development - C * num_per_class`` validation nodes, ``N - num_development`` test nodes.

    Raises:
        TypeError: If ``y`` is not an integer tensor.
        ValueError: If ``y`` is not 1-D, a count is out of range, or a class has fewer than ``num_per_class``
            nodes in the development set (the message names the class).
    """
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"y must be an integer tensor of class indices, got {type(y).__name__}"
                        + (f" of dtype {y.dtype}" if isinstance(y, Tensor) else ""))
    if y.dim() != 1:
        raise ValueError(f"y must be 1-D [num_nodes], got shape {list(y.shape)}")
    num_nodes = int(y.numel())
    if not 0 < num_development <= num_nodes:
        raise ValueError(f"num_development must be in 1..{num_nodes} (the node count), got {num_development}")
    if num_per_class < 1:
        raise ValueError(f"num_per_class must be >= 1, got {num_per_class}")
    labels = y.cpu().numpy()
    development = np.random.RandomState(seed).choice(num_nodes, num_development, replace=False)
    draws = np.random.RandomState(seed)
    train_nodes = []
    for c in range(int(labels.max()) + 1):
        candidates = development[labels[development] == c]
        if candidates.size < num_per_class:
            raise ValueError(
                f"class {c} has {candidates.size} nodes in the development set, fewer than num_per_class = "
                f"{num_per_class}; lower num_per_class or raise num_development"
            )
        train_nodes.append(draws.choice(candidates, num_per_class, replace=False))
    train = torch.zeros(num_nodes, dtype=torch.bool)
    train[torch.from_numpy(np.concatenate(train_nodes))] = True
    val = torch.zeros(num_nodes, dtype=torch.bool)
    val[torch.from_numpy(development)] = True
    val &= ~train
    test = torch.ones(num_nodes, dtype=torch.bool)
    test[torch.from_numpy(development)] = False
    return train, val, test
