"""Tidy records as CSV: written atomically with full float precision, read back with their types."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_open

__all__ = ["write_csv", "read_csv"]


def _columns(records: Iterable[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for record in records:
        for key in record:
            columns.setdefault(key, None)
    return list(columns)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records as CSV atomically (temporary file in the same folder, then :func:`os.replace`).

    Columns are the union of the records' keys in order of first appearance; ``None`` is an empty cell and
    floats keep full precision (``repr``).

    Raises:
        ValueError: if ``records`` is empty.
    """
    if not records:
        raise ValueError("no records to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = _columns(records)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(c)) for c in columns])
    with atomic_open(path, "w", newline="") as fh:
        fh.write(buffer.getvalue())
    return path


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read records written by :func:`write_csv` (numbers, booleans and empty cells converted back)."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]
