"""One process at a time in a checkpoint folder: an advisory lock on a file in it, held while a run writes there.

Two runs that write checkpoints into one folder would delete each other's files (each keeps only its newest
checkpoints, and clears the temporaries a killed process left). The lock is ``flock(2)`` on ``.lock`` in the
folder: the kernel drops it when its process ends, however it ends, so a killed run never leaves the folder
locked. Where ``fcntl`` does not exist (Windows) no lock is taken.

A process that claims a folder it already holds (a run that failed and is started again in the same interpreter)
keeps its claim.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["FolderInUseError", "FolderClaim", "LOCK_NAME"]

#: The lock file's name in the claimed folder.
LOCK_NAME = ".lock"

# Claims of this process, by resolved folder: flock locks of two open files conflict even within one process.
_HELD: dict[Path, IO[str]] = {}


class FolderInUseError(ValueError):
    """Another process holds the folder (a ``ValueError``: the command line reports it as a usage error)."""


class FolderClaim:
    """This process's claim on ``directory`` (created if needed), until :meth:`release` or the process ends.

    Raises:
        FolderInUseError: if another process holds it; the message names that process when it can.
    """

    def __init__(self, directory: Path, what: str) -> None:
        self.directory = Path(directory).resolve()
        if fcntl is None or self.directory in _HELD:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.directory / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the claim's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            by = f" (process {holder})" if holder.isdigit() else ""
            raise FolderInUseError(f"{what} {str(directory)!r} is in use by another run{by}; wait for it to end, "
                                   "or pass another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _HELD[self.directory] = handle

    def release(self) -> None:
        """Give the folder up (the lock file stays; it holds no state)."""
        handle = _HELD.pop(self.directory, None)
        if handle is not None:
            handle.close()
