"""One run at a time in a checkpoint folder: an advisory lock on a file in it, held while a run writes there.

Two runs that write checkpoints into one folder would delete each other's files (each keeps only its newest
checkpoints, and clears the temporaries a killed process left). The lock is ``flock(2)`` on ``.lock`` in the
folder: the kernel drops it when its process ends, however it ends, so a killed run never leaves the folder
locked. Two claims conflict even within one process (each opens the file anew), so a run started while another
run of the same process writes there is refused too.

Where a lock cannot be taken at all (no ``fcntl`` on Windows; a network file system mounted without lock support,
which fails with ``ENOLCK`` or ``ENOSYS``; a lock file of another user) the folder is used unlocked, with a
:class:`FolderClaimWarning` that says so.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["FolderInUseError", "FolderClaimWarning", "FolderClaim", "LOCK_NAME"]

#: The lock file's name in the claimed folder.
LOCK_NAME = ".lock"


class FolderInUseError(ValueError):
    """Another run holds the folder (a ``ValueError``: the command line reports it as a usage error)."""


class FolderClaimWarning(UserWarning):
    """The folder could not be locked and is used without a lock."""


class FolderClaim:
    """This run's claim on ``directory`` (created if needed), until :meth:`release` or the process ends.

    Raises:
        FolderInUseError: if another run holds it; the message names that run's process and machine.
    """

    def __init__(self, directory: Path, what: str) -> None:
        self.directory = Path(directory)
        self._handle = None
        if fcntl is None:  # pragma: no cover - not POSIX
            warnings.warn(f"{what} {str(directory)!r} is used without a lock: this system has no flock",
                          FolderClaimWarning, stacklevel=2)
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(self.directory / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the claim's lifetime
        except OSError as err:
            warnings.warn(f"{what} {str(directory)!r} is used without a lock: its lock file cannot be opened ({err})",
                          FolderClaimWarning, stacklevel=2)
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            by = f" ({holder})" if holder else ""
            raise FolderInUseError(f"{what} {str(directory)!r} is in use by another run{by}; wait for it to end, "
                                   "or pass another folder") from None
        except OSError as err:  # a file system without locks (NFS without lockd: ENOLCK; Lustre: ENOSYS)
            handle.close()
            warnings.warn(f"{what} {str(directory)!r} is used without a lock: its file system cannot lock files "
                          f"({err}); make sure no other run writes there", FolderClaimWarning, stacklevel=2)
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the folder up (the lock file stays; it holds no state). Releasing twice does nothing."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
