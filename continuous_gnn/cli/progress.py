"""Progress bars for the command line: one tqdm bar per split, fed by the training loop's callback."""

from __future__ import annotations

import sys
from typing import Any

from ..training.records import EpochInfo

__all__ = ["EpochBars"]


class EpochBars:
    """A training-loop ``progress`` callback that draws one tqdm bar per split on stderr.

    A new bar starts when the split changes; ``close()`` (or leaving a ``with`` block) closes the last one.

    Args:
        label (str): shown before the split index, e.g. the dataset name.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.split: int | None = None
        self.bar: Any = None

    def __call__(self, info: EpochInfo) -> None:
        if info.split != self.split:
            self.close()
            from tqdm.auto import tqdm

            self.split = info.split
            self.bar = tqdm(total=info.epochs, desc=f"{self.label} split {info.split}", leave=False, file=sys.stderr,
                            dynamic_ncols=True, mininterval=0.25)
        self.bar.set_postfix_str(
            f"loss={info.loss:.3f} train={info.train:.3f} val={info.val:.3f} "
            f"best={info.best_val:.3f}@{info.best_epoch}",
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.split = None

    def __enter__(self) -> EpochBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
