r"""The metrics of a run: accuracy and ROC-AUC on node sets, and the mean and population std over splits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["accuracy", "roc_auc", "metrics", "population_mean_std"]


def accuracy(logits: Tensor, y: Tensor, masks: Tensor) -> Tensor:
    """Accuracy on each mask in one pass.

    Args:
        logits: ``(n, k)``.
        y: labels ``(n,)``.
        masks: boolean ``(m, n)``, one row per node set.

    Returns:
        ``(m,)`` accuracies (nan for an empty mask).
    """
    correct = (logits.argmax(dim=1) == y).to(logits.dtype)
    weights = masks.to(logits.dtype)
    return (weights @ correct) / weights.sum(dim=1)


def _average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values`` with ties sharing their average rank, float64."""
    order = values.argsort()
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1) / 2  # mean of start+1 .. end
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    r"""Area under the ROC curve of ``scores`` for binary ``labels`` (Mann–Whitney U, ties count one half).

    .. math::
        \mathrm{AUC} = P(s^+ > s^-) + \tfrac12 P(s^+ = s^-)

    Returns nan when only one class is present.
    """
    labels = labels.bool()
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(scores.detach().reshape(-1))
    u = float(ranks[labels].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def metrics(logits: Tensor, y: Tensor, masks: Tensor, metric: str) -> Tensor:
    """The dataset's ``metric`` (``"accuracy"`` or ``"roc_auc"``) of ``logits`` on each node mask of ``masks``
    (one row per mask): a tensor of one value per mask.

    Raises:
        ValueError: on another metric, or ``roc_auc`` for a model without exactly two outputs.
    """
    if metric == "accuracy":
        return accuracy(logits, y, masks)
    if metric == "roc_auc":
        if logits.size(1) != 2:
            raise ValueError(f"roc_auc needs a binary task, but the model has {logits.size(1)} outputs")
        score = logits[:, 1] - logits[:, 0]  # monotone in softmax(logits)[:, 1], without saturation ties
        return torch.tensor([roc_auc(score[m], y[m] == 1) for m in masks], dtype=torch.float64)
    raise ValueError(f"unknown metric {metric!r}; expected 'accuracy' or 'roc_auc'")


def population_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (``ddof=0``) of ``values``."""
    if len(values) == 0:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
