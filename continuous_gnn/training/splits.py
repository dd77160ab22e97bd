"""Split selections: ``"0-9"``, ``"0,3,5"``, ``"all"``, parsed in linear time with bounded indices."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable

__all__ = ["MAX_SPLITS", "parse_splits"]

#: No dataset has more splits than this; a larger index in a split specification is a typo, refused before
#: a range of that length is built.
MAX_SPLITS = 1000
_NONE_STRINGS = ("none", "null")


def parse_splits(spec: str | int | Iterable[int] | None) -> tuple[int, ...] | None:
    """Parse a split selection: ``"0-9"``, ``"0,3,5"``, ``"0-2,7"``, ``"all"`` (→ ``None``), an int or a list.

    Returns the split indices in the given order, or ``None`` for all splits.

    Raises:
        ValueError: on malformed text, a negative index, an empty or reversed range, or a repeated index.
    """
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise TypeError(f"splits must be a split specification, got the bool {spec}")
    if isinstance(spec, int):
        items: list[int] = [spec]
    elif isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("all", *_NONE_STRINGS):
            return None
        if not text:
            raise ValueError("empty split specification; use e.g. '0', '0-9', '0,3,5' or 'all'")
        items = []
        for part in text.split(","):
            part = part.strip()
            match = re.fullmatch(r"([0-9]+)\s*(?:-\s*([0-9]+))?", part)
            if not match:
                raise ValueError(
                    f"bad split specification {spec!r} (at {part!r}); use e.g. '0', '0-9', '0,3,5' or 'all'"
                )
            lo = int(match.group(1))
            hi = int(match.group(2)) if match.group(2) is not None else lo
            if hi < lo:
                raise ValueError(f"bad split range {part!r} in {spec!r}: the end is before the start")
            if hi >= MAX_SPLITS:
                raise ValueError(f"split {hi} in {spec!r} is beyond any dataset (they have at most "
                                 f"{MAX_SPLITS} splits); use e.g. '0-9' or 'all'")
            items.extend(range(lo, hi + 1))
    elif isinstance(spec, Iterable):
        items = []
        for value in spec:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"split indices must be integers, got {value!r} in {spec!r}")
            items.append(value)
        if not items:
            raise ValueError("splits must not be empty; omit it (or use 'all') for every split")
    else:
        raise TypeError(f"splits must be a string like '0-9', an int or a list of ints, got {type(spec).__name__}")
    for value in items:
        if value < 0:
            raise ValueError(f"split indices must be non-negative, got {value}")
        if value >= MAX_SPLITS:
            raise ValueError(f"split {value} is beyond any dataset (they have at most {MAX_SPLITS} splits)")
    counts = collections.Counter(items)
    repeated = sorted(v for v, n in counts.items() if n > 1)
    if repeated:
        raise ValueError(f"split(s) {repeated} listed more than once in {spec!r}")
    return tuple(items)
