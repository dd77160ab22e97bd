"""Downloading the raw files a data root lacks, checked, from where ``torch_geometric`` gets them.

:func:`download_dataset` fetches the missing raw files of one dataset from the
URLs that the ``torch_geometric`` dataset class's own ``download()`` uses (read
from the class attributes when asked, see :mod:`~continuous_gnn.data.registry`)
into the layout that class expects. It does not call
``torch_geometric.data.download_url``, which waits without a timeout (a server
that accepts the connection and never answers hangs it), turns off TLS
certificate checks and prints to stderr. Here:

* **Bounded time.** Connecting and each read wait at most
  ``Download.timeout`` seconds; a server that stops answering fails within
  that time. (Name resolution is the operating system's and is not bounded by it.)
* **Checked.** Each file must match the SHA-256 that the package ships
  (``continuous_gnn/data/SHA256SUMS``, ``sha256sum`` format, the checksums of
  the benchmark data root); the one raw file it does not list, PubMed's
  ``ind.pubmed.allx``, is checked only against its announced length. TLS
  certificates are verified.
* **Never half-written.** The files are fetched into a hidden folder
  ``<root>/.download-<name>-*`` beside their destination, and only when every
  one has arrived and matches are they moved into place: a raw folder that does
  not exist yet is renamed into place whole, into an existing one each file is
  moved with :func:`os.replace`. A failure removes the temporary folder and the
  folders it created, so the data root is as before. Temporary folders of killed
  processes are removed after a day.
* **Silent.** Progress goes to :attr:`Download.progress`; nothing is printed.

A failure is a :class:`DownloadError` naming the URL, the cause, the files and
the folder to copy them into by hand.
"""

from __future__ import annotations

import http.client
import math
import numbers
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from continuous_gnn.data.cache import _remove_stale_builds
from continuous_gnn.data.raw_files import DatasetUnavailableError, _check_root, _known_checksums, _sha256
from continuous_gnn.data.registry import _lookup, _Spec
from continuous_gnn.data.root import DATA_ROOT_ENV

__all__ = ["Download", "DownloadError", "DownloadProgress", "download_dataset"]

_STAGE_PREFIX = ".download-"
#: Bytes asked of the connection per read: one progress step.
_BLOCK = 1 << 16
_DIGEST_CHARS = 16


class DownloadError(DatasetUnavailableError):
    """A download of raw files failed: unreachable, too slow, refused, truncated or not matching its checksum.

    The message names the URL and the cause, the files and the folder to copy
    them into by hand. Nothing is left behind in the data root.
    """


@dataclass(frozen=True)
class DownloadProgress:
    """One step of a download, passed to :attr:`Download.progress`.

    Attributes:
        url: The file's URL.
        path: Its destination, relative to the data root.
        received: Bytes received so far (0 when the file starts).
        total: The size the server announced, or ``None`` when it announced none.
        index: Position of the file among those being downloaded, from 0.
        count: Number of files being downloaded.
    """

    url: str
    path: str
    received: int
    total: int | None
    index: int
    count: int


@dataclass(frozen=True)
class Download:
    """Permission to download missing raw files, with its settings (``download=None`` stays offline).

    Attributes:
        timeout: Seconds to wait for the connection and for each read
            (default: 30). A server that stops answering fails after this long.
        progress: Called with a :class:`DownloadProgress` when a file starts and
            after each block received; ``None`` reports nothing.
    """

    timeout: float = 30.0
    progress: Callable[[DownloadProgress], None] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, numbers.Real):
            raise TypeError(f"timeout must be a number of seconds, got {type(self.timeout).__name__}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a positive, finite number of seconds, got {self.timeout}")
        if self.progress is not None and not callable(self.progress):
            raise TypeError(f"progress must be callable or None, got {type(self.progress).__name__}")


def _manual_advice(spec: _Spec, root: Path, missing: list[str]) -> str:
    """Which files to fetch from which URL folder, and where to put them."""
    groups: dict[tuple[str, str], list[str]] = {}
    for rel in missing:
        folder, _, name = rel.rpartition("/")
        groups.setdefault((spec.remote(rel).rpartition("/")[0], folder), []).append(name)
    return "; ".join(
        f"{', '.join(names)} from {url_folder}/ into {root / folder}{os.sep}" for (url_folder, folder), names in groups.items()
    )


def _error(spec: _Spec, root: Path, missing: list[str], cause: str, *, written: bool = False) -> DownloadError:
    state = (
        "Some complete, checked files may already be in place."
        if written
        else f"Nothing was written to {root}."
    )
    return DownloadError(
        f"could not download dataset {spec.name!r}: {cause}. {state} To install it by hand, copy "
        f"{_manual_advice(spec, root, missing)}; or point --data-root (or {DATA_ROOT_ENV}) at a folder "
        "that holds it."
    )


def _describe(err: BaseException, timeout: float) -> str:
    """The cause of a failed request, in words."""
    reason = err.reason if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError) else err
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"could not connect ({reason})"
    if isinstance(err, http.client.HTTPException):
        return f"the connection broke ({type(err).__name__}: {err})"
    return f"{type(err).__name__}: {err}"


class _Failed(Exception):
    """A file could not be fetched; ``cause`` says why, in words."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(cause)
        self.url, self.cause = url, cause


def _fetch(url: str, dest: Path, timeout: float, report: Callable[[int, int | None], None]) -> None:
    """Write ``url`` to ``dest``, checking the length the server announced."""
    request = urllib.request.Request(url, headers={"User-Agent": "continuous_gnn"})
    report(0, None)  # before the wait for the server, so that a user sees what is being waited on
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            received = 0
            report(received, total)
            while block := response.read(_BLOCK):
                out.write(block)
                received += len(block)
                report(received, total)
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise _Failed(url, _describe(err, timeout)) from err
    if total is not None and received != total:
        raise _Failed(url, f"the connection closed after {received} of the {total} bytes announced")


def _verify(rel: str, path: Path, url: str) -> None:
    expected = _known_checksums().get(rel)
    if expected is None:  # only PubMed's ind.pubmed.allx; its length was checked
        return
    actual = _sha256(path)
    if actual != expected:
        raise _Failed(
            url,
            f"the file received ({path.stat().st_size} bytes) does not match its SHA-256 "
            f"({actual[:_DIGEST_CHARS]}..., expected {expected[:_DIGEST_CHARS]}...): it is truncated or "
            "changed upstream",
        )


def _publish(stage: Path, root: Path, missing: list[str]) -> tuple[Path, ...]:
    """Move the staged files into the data root: a new folder whole, else file by file (each atomic)."""
    by_folder: dict[str, list[str]] = {}
    for rel in missing:
        by_folder.setdefault(rel.rpartition("/")[0], []).append(rel)
    for folder, rels in by_folder.items():
        target = root / folder
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(stage / folder, target)
                continue
            except OSError:
                if not target.is_dir():  # not a concurrent download that got there first
                    raise
        for rel in rels:
            os.replace(stage / rel, root / rel)
    return tuple(root / rel for rel in missing)


def _folders_to_create(root: Path) -> list[Path]:
    """The data root and those of its parents that do not exist yet, deepest first."""
    missing = []
    path = root
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download created, deepest first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:  # never created
            continue
        except OSError:  # not empty: something else lives there now
            return


def download_dataset(
    name: str, root: str | os.PathLike[str], download: Download = Download()
) -> tuple[Path, ...]:
    """Download the raw files of dataset ``name`` that ``root`` lacks (see the module docstring).

    Args:
        name: Dataset name, as for :func:`~continuous_gnn.data.load_dataset`.
        root: The raw data root; created if it does not exist.
        download: Timeout and progress callback.

    Returns:
        The files written, in the data root; empty when nothing was missing
        (then nothing is touched and the network is not used).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``name`` is unknown.
        DownloadError: If a file cannot be fetched within the timeout, is
            refused, truncated or does not match its checksum, or the data root
            cannot be written. Nothing is left behind then, unless moving the
            checked files into place fails part way (the message says so).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    if not isinstance(download, Download):
        raise TypeError(f"download must be a Download, got {type(download).__name__}")
    spec = _lookup(name)
    root = Path(root)
    if root.exists():
        _check_root(root)  # a file: no download could make it a data root, and no copy advice applies
    missing = [rel for rel in spec.files if not (root / rel).is_file()]
    if not missing:
        return ()
    created = _folders_to_create(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE_PREFIX}{spec.name}-", dir=root))
    except OSError as err:
        _remove_empty(created)
        raise _error(spec, root, missing, f"the data root cannot be written ({err})") from err
    written = False
    try:
        try:
            for index, rel in enumerate(missing):
                url = spec.remote(rel)
                dest = stage / rel
                dest.parent.mkdir(parents=True, exist_ok=True)

                def report(received: int, total: int | None, url: str = url, rel: str = rel, index: int = index) -> None:
                    if download.progress is not None:
                        download.progress(DownloadProgress(url, rel, received, total, index, len(missing)))

                _fetch(url, dest, download.timeout, report)
                _verify(rel, dest, url)
            written = True  # from here on, files may reach the data root
            files = _publish(stage, root, missing)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except _Failed as err:
        _remove_empty(created)
        raise _error(spec, root, missing, f"{err.cause} ({err.url})") from err
    except OSError as err:
        _remove_empty(created)
        cause = f"the files could not be written to the data root ({err})"
        raise _error(spec, root, missing, cause, written=written) from err
    except BaseException:
        _remove_empty(created)
        raise
    _remove_stale_builds(root, _STAGE_PREFIX)
    return files
