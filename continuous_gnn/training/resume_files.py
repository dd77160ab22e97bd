"""The files of a resumable run (:mod:`~continuous_gnn.training.resume`): their names and order, what a readable
one holds, and finding the newest readable one.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, UnsafeCheckpointError, read_plain
from .history import SplitHistory
from .records import SplitResult

__all__ = ["RESUME_FORMAT", "STATE_KIND", "ResumeWarning", "checkpoint_files", "newest_checkpoint"]

#: Version of the training-state layout; bumped on incompatible changes.
RESUME_FORMAT = 1
#: The ``kind`` entry of a training-state checkpoint (a saved model's is another).
STATE_KIND = "continuous_gnn.training_state"
_KEYS = ("format", "kind", "config", "versions", "environment", "world_size", "splits", "position", "finished",
         "run_time", "current")
_CURRENT_KEYS = ("split", "model", "optimizer", "history", "random")
_NAME = re.compile(r"checkpoint-(\d{4,})-(\d{7,})\.pt")
_WRITER = "a training run with checkpoints"


class ResumeWarning(UserWarning):
    """A resume that goes on, but not as asked: an unreadable newest checkpoint was passed over, or the
    environment differs from the one that wrote the checkpoint."""


def checkpoint_files(directory: Path) -> list[Path]:
    """The checkpoint files in ``directory``, oldest first (by split position, then epoch; not by file time)."""
    if not directory.is_dir():
        return []
    found = [(match, path) for path in directory.iterdir() if (match := _NAME.fullmatch(path.name))]
    return [path for match, path in sorted(found, key=lambda item: (int(item[0][1]), int(item[0][2])))]


def _structure(payload: Any) -> str | None:
    """What is missing or malformed in a loaded payload (``None`` when it has the layout of a checkpoint, or of
    another format, which :class:`RunCheckpoints` refuses by name)."""
    if not isinstance(payload, dict) or payload.get("kind") != STATE_KIND:
        return "it is not a training checkpoint of continuous_gnn"
    if payload.get("format") != RESUME_FORMAT:
        return None
    missing = [key for key in _KEYS if key not in payload]
    if missing:
        return f"it lacks {missing}"
    types = {"config": dict, "versions": dict, "environment": dict, "world_size": int, "splits": list,
             "position": int, "finished": list, "run_time": float, "current": (dict, type(None))}
    wrong = [key for key, kind in types.items() if not isinstance(payload[key], kind)]
    if wrong:
        return f"its entries {wrong} have the wrong type"
    current = payload["current"]
    if current is not None and any(key not in current for key in _CURRENT_KEYS):
        return f"its split in progress lacks some of {list(_CURRENT_KEYS)}"
    try:
        if current is not None:
            SplitHistory.from_state_dict(current["history"])
        [SplitResult(**result) for result in payload["finished"]]
    except (TypeError, ValueError) as err:
        return f"its results are malformed ({err})"
    return None


def _read(path: Path) -> dict[str, Any]:
    """A checkpoint's payload; :class:`CheckpointError` if it is unreadable or malformed (cut short, corrupt)."""
    payload = read_plain(path, map_location="cpu", writer=_WRITER, fix="delete it, or resume from another folder")
    problem = _structure(payload)
    if problem is not None:
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint: {problem}")
    return payload


def newest_checkpoint(directory: Path, set_aside: bool) -> tuple[Path, dict[str, Any]]:
    """The newest readable checkpoint, warning about the newer ones passed over. With ``set_aside`` those are
    renamed ``<name>.unreadable``: kept for a look, but no longer the newest checkpoints, which the run's next
    checkpoints would otherwise be pruned in favour of."""
    skipped: list[tuple[Path, str]] = []
    for path in reversed(checkpoint_files(directory)):
        try:
            payload = _read(path)
        except UnsafeCheckpointError:
            raise  # a crafted or foreign file is not passed over silently
        except (CheckpointError, OSError) as err:
            skipped.append((path, str(err)))
            continue
        if skipped:
            aside = ""
            if set_aside:
                for unreadable, _ in skipped:
                    unreadable.replace(unreadable.with_name(unreadable.name + ".unreadable"))
                aside = "; set aside with the suffix .unreadable"
            warnings.warn(f"resuming from {str(path)!r}: the newer "
                          + "; ".join(f"{str(p)!r} cannot be read ({reason})" for p, reason in skipped) + aside,
                          ResumeWarning, stacklevel=2)
        return path, payload
    raise CheckpointError(f"no checkpoint in {str(directory)!r} can be read: "
                          + "; ".join(f"{p.name}: {reason}" for p, reason in skipped))
