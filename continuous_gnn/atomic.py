"""Atomic file writes: a reader sees the old file or the new one, never a half-written one."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder (created if needed): its descriptor and name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the file the caller asked for, not the temporary one beside it
        raise type(err)(err.errno, f"cannot write {str(path)!r}: {err.strerror}") from err


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit, flush it to disk and rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched. The file gets the usual
    permissions (``0o666`` less the umask) rather than ``mkstemp``'s private ``0o600``.

    Args:
        path: the destination; its folder is created if needed.
        mode (str): ``"w"`` (text) or ``"wb"`` (binary) (default: ``"w"``).
        **kwargs: passed to :func:`open` (``encoding``, ``newline``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if _is_special(path):  # /dev/null, a pipe: written in place, since a rename would replace the device itself
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with open(path, mode, **kwargs) as handle:
            yield handle
        return
    with _staged(path, mode, lambda tmp: os.replace(tmp, path), **kwargs) as handle:
        yield handle


def _is_special(path: Path) -> bool:
    """Whether ``path`` exists and is neither a regular file nor a folder (a character device, a FIFO)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextmanager
def _staged(path: Path, mode: str, publish: Callable[[str], None], **kwargs) -> Iterator[IO]:
    """A temporary file beside ``path``, open for writing; on a clean exit it is flushed to disk, given the usual
    permissions and handed to ``publish`` (which moves or links it into place). Whatever is left of it is removed."""
    fd, tmp = _temporary_beside(path)
    try:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        publish(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, numbered: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8) and return the path written.

    Args:
        path: the destination; its folder is created if needed.
        text (str): the whole content.
        numbered (bool): never replace a file: write to the first of ``path``, ``<stem>-1<suffix>``,
            ``<stem>-2<suffix>``, ... that does not exist at the moment of the write (the finished file is
            hard-linked there, which fails if the name exists), so that two processes that chose the same default
            name, such as two runs started in the same second, both keep their file (default: ``False``,
            replace ``path``).
    """
    if not numbered:
        with atomic_open(path, "w") as handle:
            handle.write(text)
        return Path(path)
    path = Path(path)
    written: list[Path] = []
    with _staged(path, "w", lambda tmp: written.append(_link_to_free_name(tmp, path))) as handle:
        handle.write(text)
    return written[0]


def _link_to_free_name(tmp: str, path: Path) -> Path:
    """Put the finished file ``tmp`` at the first free one of :func:`numbered_names` of ``path``, replacing none."""
    for candidate in numbered_names(path):
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: claim the name, then rename onto it
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except FileExistsError:
                continue
            os.replace(tmp, candidate)
        return candidate
    raise FileExistsError(f"cannot write {str(path)!r}: it and {_MAX_NUMBERED - 1} numbered names beside it exist")


def numbered_names(path: str | os.PathLike[str]) -> Iterator[Path]:
    """``path``, then ``<stem>-1<suffix>``, ``<stem>-2<suffix>``, ...: the names a numbered write tries."""
    path = Path(path)
    yield path
    for i in range(1, _MAX_NUMBERED):
        yield path.with_name(f"{path.stem}-{i}{path.suffix}")


#: How many names a numbered write tries: the path and its numbered variants.
_MAX_NUMBERED = 1000


def check_creatable(path: str | os.PathLike[str], label: str = "path") -> None:
    """Raise ``ValueError`` unless ``path`` can be created: its nearest existing ancestor must be a writable
    folder (no ancestor may be a file). Commands call it before any work, so a bad path cannot lose a run.

    Args:
        path: the file or folder to be written.
        label (str): how the message names it, e.g. the flag that gave it (default: ``"path"``).
    """
    path = Path(path)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{label} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    problem = _write_problem(ancestor)
    if problem is not None:
        raise ValueError(f"{label} {str(path)!r} cannot be created: the folder {str(ancestor)!r} is not writable "
                         f"({problem})")


def _write_problem(folder: Path) -> str | None:
    """Why no file can be created in ``folder``, or ``None`` when one can: a file is made and removed, since
    permission bits alone miss a read-only or virtual file system (``/proc``) and say nothing for root."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        handle, name = tempfile.mkstemp(prefix=".write-check-", dir=folder)
    except OSError as err:
        if err.errno == errno.ENOENT:  # the folder exists, so the file system itself takes no new files
            return "it accepts no new files, as a virtual file system such as /proc does"
        return err.strerror or str(err)
    os.close(handle)
    os.unlink(name)
    return None


def check_output_file(path: str | os.PathLike[str], label: str = "path") -> None:
    """Raise ``ValueError`` unless ``path`` names a file that can be written (replaced, if it exists): not empty,
    not a folder, in a folder that exists and is writable or can be created."""
    text = os.fspath(path)
    if not text.strip():
        raise ValueError(f"{label} is empty; pass the file to write")
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise ValueError(f"{label} {text!r} is a folder; pass the file to write in it")
    if _is_special(path):  # written in place by atomic_open: its own permission decides, not its folder's
        if not os.access(path, os.W_OK):
            raise ValueError(f"{label} {text!r} is not writable")
    elif path.exists():
        problem = _write_problem(path.parent)
        if problem is not None:
            raise ValueError(f"{label} {text!r} cannot be replaced: its folder is not writable ({problem})")
    else:
        check_creatable(path, label)


def check_output_folder(path: str | os.PathLike[str], label: str = "folder") -> None:
    """Raise ``ValueError`` unless ``path`` is a writable folder or can be created as one."""
    path = Path(path)
    if not path.exists():
        check_creatable(path, label)
    elif not path.is_dir():
        raise ValueError(f"{label} {str(path)!r} is a file; pass a folder (it is created if needed)")
    elif (problem := _write_problem(path)) is not None:
        raise ValueError(f"{label} {str(path)!r} is not writable ({problem}); pass another folder")
