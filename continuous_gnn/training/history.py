"""What the training loop keeps of a split's epochs: the curves, the best validation epoch and the kept model.

One :class:`SplitHistory` per split. The loop adds each finished epoch with :meth:`SplitHistory.add_epoch` and
turns the history into the split's :class:`~continuous_gnn.training.records.SplitResult` at the end. A
checkpoint stores :meth:`SplitHistory.state_dict` (plain numbers, lists and tensors) and a resumed run
continues from :meth:`SplitHistory.from_state_dict`, so the finished result is the one of an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from torch import Tensor, nn

from .records import KeptModel, SplitResult

__all__ = ["SplitHistory", "late_splits", "still_improving"]

#: The per-epoch lists, by their :class:`SplitResult` field names.
_CURVES = ("train_loss", "train_curve", "val_curve", "nfe_forward", "nfe_backward", "kinetic", "jacobian", "eval_time")
#: The curves that are empty unless their option is on.
_OPTIONAL = ("kinetic", "jacobian", "eval_time")


@dataclass
class SplitHistory:
    """The epochs of one split so far.

    Attributes:
        train_loss, train_curve, val_curve, nfe_forward, nfe_backward, kinetic, jacobian, eval_time (list): one
            entry per epoch, as in :class:`~continuous_gnn.training.records.SplitResult` (``kinetic`` and
            ``jacobian`` only when their regulariser is on, ``eval_time`` only when evaluation chooses the time).
        best_val (float): the best validation metric so far (``-inf`` before the first improvement).
        best_epoch (int): its 1-based epoch, the first on ties (0 before the first improvement).
        best (tuple): train, validation and test metric at ``best_epoch``.
        kept (tuple or None): epoch, train, val, test and loss of the epoch whose model is kept.
        kept_state (dict or None): with ``keep="best"``, the model's state at the best epoch.
        wall_time (float): seconds spent on the split so far, in earlier processes too.
        loop_time (float): the part of ``wall_time`` spent in epochs.
    """

    train_loss: list[float] = field(default_factory=list)
    train_curve: list[float] = field(default_factory=list)
    val_curve: list[float] = field(default_factory=list)
    nfe_forward: list[int] = field(default_factory=list)
    nfe_backward: list[int] = field(default_factory=list)
    kinetic: list[float] = field(default_factory=list)
    jacobian: list[float] = field(default_factory=list)
    eval_time: list[float] = field(default_factory=list)
    best_val: float = -math.inf
    best_epoch: int = 0
    best: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    kept: tuple[int, float, float, float, float] | None = None
    kept_state: dict[str, Tensor] | None = None
    wall_time: float = 0.0
    loop_time: float = 0.0

    @property
    def epochs_run(self) -> int:
        """The epochs recorded so far."""
        return len(self.train_loss)

    def add_epoch(self, loss: float, train: float, val: float, test: float, nfe: tuple[int, int],
                  regularizers: dict[str, float], *, keep: str | None, model: nn.Module,
                  eval_time: float | None = None) -> None:
        """Record the next epoch: its loss and metrics, solver evaluations (forward, backward), regulariser values
        (those present are recorded) and the integration time its evaluation chose (when it chose one); with
        ``keep`` it also keeps ``model``'s state or the epoch's facts."""
        epoch = self.epochs_run + 1
        self.train_loss.append(loss)
        self.train_curve.append(train)
        self.val_curve.append(val)
        self.nfe_forward.append(nfe[0])
        self.nfe_backward.append(nfe[1])
        for name, value in regularizers.items():
            getattr(self, name).append(value)
        if eval_time is not None:
            self.eval_time.append(eval_time)
        improved = val > self.best_val
        if improved:
            self.best_val, self.best_epoch, self.best = val, epoch, (train, val, test)
        if (keep == "best" and improved) or keep == "last":
            self.kept = (epoch, train, val, test, loss)
            if keep == "best":
                self.kept_state = copy.deepcopy(model.state_dict())

    def result(self, *, split: int, seed: int, num_parameters: int, model: nn.Module | None) -> SplitResult:
        """The split's result; ``model`` (the trained one) is returned in ``kept`` when something was kept, with
        the kept state loaded."""
        best_epoch = self.best_epoch or self.epochs_run  # the validation metric was nan throughout
        kept = None
        if model is not None and self.kept is not None:
            if self.kept_state is not None:
                model.load_state_dict(self.kept_state)
            kept = KeptModel(model.eval(), *self.kept)
        return SplitResult(split=split, seed=seed, best_epoch=best_epoch, epochs_run=self.epochs_run,
                           train_metric=self.best[0], val_metric=self.best[1], test_metric=self.best[2],
                           wall_time=self.wall_time, epoch_time=self.loop_time / max(self.epochs_run, 1),
                           num_parameters=num_parameters, kept=kept,
                           **{name: list(getattr(self, name)) for name in _CURVES})

    def state_dict(self) -> dict[str, Any]:
        """Every attribute as plain lists, numbers and tensors (what ``torch.load(weights_only=True)`` reads)."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["best"], state["kept"] = list(self.best), None if self.kept is None else list(self.kept)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SplitHistory:
        """The history of :meth:`state_dict`.

        Raises:
            ValueError: if ``state`` lacks an attribute or names one that does not exist, or its curves are no
                lists of numbers of one length per epoch (a regulariser's may be empty), or its best epoch lies
                outside them.
        """
        names = {f.name for f in fields(cls)}
        state = {"eval_time": [], **state}  # written before evaluation could choose the time
        if set(state) != names:
            raise ValueError(f"a split history has the entries {sorted(names)}; got {sorted(state)}")
        for name in _CURVES:
            curve = state[name]
            if not isinstance(curve, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in curve):
                raise ValueError(f"a split history's {name} must be a list of numbers, got {type(curve).__name__}")
        epochs = len(state["train_loss"])
        uneven = [name for name in _CURVES if len(state[name]) != epochs
                  and not (name in _OPTIONAL and not state[name])]
        if uneven:
            raise ValueError(f"a split history's curves {uneven} do not have one entry per epoch ({epochs})")
        if not isinstance(state["best_epoch"], int) or not 0 <= state["best_epoch"] <= epochs:
            raise ValueError(f"a split history's best_epoch must lie in [0, {epochs}], got {state['best_epoch']!r}")
        kept = state["kept"]
        return cls(**{**state, "best": tuple(state["best"]), "kept": None if kept is None else tuple(kept),
                      **{name: list(state[name]) for name in _CURVES}})


def late_splits(best_epochs: Sequence[int], epochs: int) -> int:
    """How many splits had their best validation epoch (1-based) past 90 % of ``epochs``."""
    return sum(best > 0.9 * epochs for best in best_epochs)


def still_improving(best_epochs: Sequence[int], epochs: int) -> bool:
    """Whether training was still improving when it stopped: :func:`late_splits` covers at least half of the
    splits in ``best_epochs``. ``False`` for no splits."""
    return bool(best_epochs) and 2 * late_splits(best_epochs, epochs) >= len(best_epochs)
