"""Downloads on the command line: whether to fetch missing raw files, and what to show while they arrive.

Every subcommand that reads a benchmark downloads the raw files its data root lacks, as the ``torch_geometric``
dataset classes do, unless ``--no-download`` is given or ``$CONTINUOUS_GNN_NO_DOWNLOAD`` is ``1`` (both keep the
strict offline error). The library downloads only when told to (:class:`continuous_gnn.data.Download`); this
module decides, from the flags and the environment, and draws the progress: one line on stderr naming the
dataset and the folder, then one tqdm bar per file on a terminal, or one line per file elsewhere (a log);
nothing with ``--quiet``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import UsageError, number

if TYPE_CHECKING:  # the data package imports torch_geometric, which --help does not need
    from ..data import Download

__all__ = ["NO_DOWNLOAD_ENV", "DEFAULT_TIMEOUT", "check_download_flags", "downloads_enabled", "fetch_dataset", "DownloadReport"]

#: Environment variable that turns downloads off (``1``) for every subcommand.
NO_DOWNLOAD_ENV = "CONTINUOUS_GNN_NO_DOWNLOAD"
#: Seconds to wait for a connection or a read, unless ``--download-timeout`` says otherwise (the library's own
#: default, the ``timeout`` of :class:`continuous_gnn.data.Download`; a test holds them equal).
DEFAULT_TIMEOUT = 30.0

_OFF = ("1", "true", "yes", "on")
_ON = ("", "0", "false", "no", "off")


def downloads_enabled(args: argparse.Namespace) -> bool:
    """Whether missing raw files may be downloaded: not with ``--no-download`` or ``$CONTINUOUS_GNN_NO_DOWNLOAD=1``,
    nor for a parser that declares no ``--no-download`` flag. Raises :class:`UsageError` for another value of
    the variable."""
    if getattr(args, "no_download", True):
        return False
    value = os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower()
    if value in _OFF:
        return False
    if value not in _ON:
        raise UsageError(f"{NO_DOWNLOAD_ENV}={value!r}: set it to 1 to never download, or to 0 (or unset it) to "
                         "download missing benchmark data")
    return True


def check_download_flags(args: argparse.Namespace) -> None:
    """Refuse a bad ``--download-timeout`` or ``CONTINUOUS_GNN_NO_DOWNLOAD`` now, for commands that create folders
    before they fetch their first dataset."""
    _download(args)
    downloads_enabled(args)


def _download(args: argparse.Namespace, progress: DownloadReport | None = None) -> Download:
    """The download settings of ``--download-timeout``, checked by :class:`~continuous_gnn.data.Download`."""
    from ..data import Download

    seconds = number(getattr(args, "download_timeout", None), "--download-timeout", float, DEFAULT_TIMEOUT)
    try:
        return Download(seconds, progress=progress)
    except ValueError as err:  # "timeout must be a positive, finite number of seconds, got ..."
        raise UsageError(f"--download-{err}") from None


def fetch_dataset(args: argparse.Namespace, name: str, root: Path) -> None:
    """Download the raw files of dataset ``name`` that ``root`` lacks, unless downloads are off.

    Nothing happens when every file is present. A failure raises :class:`continuous_gnn.data.DownloadError`
    (a ``FileNotFoundError``: one line on stderr, exit status 2).
    """
    settings = _download(args)  # a bad --download-timeout is refused even when downloads are off
    if not downloads_enabled(args):
        return
    from ..data import download_dataset

    if getattr(args, "quiet", False):
        download_dataset(name, root, settings)
        return
    with DownloadReport(name, root, bars=sys.stderr is not None and sys.stderr.isatty()) as report:
        download_dataset(name, root, _download(args, report))


class DownloadReport:
    """A :class:`continuous_gnn.data.Download` progress callback that reports on stderr.

    Args:
        dataset (str): the dataset's name, for the first line.
        root (Path): the data root, for the first line.
        bars (bool): one tqdm bar per file (a terminal); otherwise one line per file.
    """

    def __init__(self, dataset: str, root: Path, *, bars: bool) -> None:
        self.dataset, self.root, self.bars = dataset, root, bars
        self.index: int | None = None
        self.bar: Any = None

    def __call__(self, step: Any) -> None:  # a continuous_gnn.data.DownloadProgress
        if step.index != self.index:
            self.close()
            if self.index is None:
                print(f"downloading dataset {self.dataset!r}: {step.count} raw file(s) into {self.root}",
                      file=sys.stderr, flush=True)
            self.index = step.index
            if self.bars:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=step.total, desc=f"{step.path.rpartition('/')[2]} ({step.index + 1}/{step.count})",
                                unit="B", unit_scale=True, unit_divisor=1024, leave=False, file=sys.stderr,
                                dynamic_ncols=True, mininterval=0.25)
            else:
                print(f"downloading {step.url}", file=sys.stderr, flush=True)
        if self.bar is not None:
            if step.total is not None and self.bar.total != step.total:  # announced once the server answers
                self.bar.total = step.total
                self.bar.refresh()
            self.bar.update(step.received - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> DownloadReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
