"""Raw files of a dataset: what must be in the data root, and what to say when it is not.

Every failure to read a dataset's raw files is a :class:`DatasetUnavailableError`
whose message says how to repair it. Nothing here downloads: fetching missing
files, when the caller allows it, is :mod:`~continuous_gnn.data.download`.

* **Missing files.** Before any ``torch_geometric`` class is called, every raw
  file the dataset needs is checked; a missing one is reported with its name,
  the folder it belongs in and where to get it.
* **Truncated or corrupt files.** Before a dataset is processed, each raw
  file is checked against its SHA-256 (the data root's ``SHA256SUMS`` where it
  lists the file, else the package's own), and a file that differs is named. A
  file no list names and that cannot be read is reported with the dataset, its
  raw folder and the cause, with the command that checks the files.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch_geometric

from continuous_gnn.data.root import DATA_ROOT_ENV

if TYPE_CHECKING:  # the registry imports this module for the error class
    from continuous_gnn.data.registry import _Spec

__all__ = ["DatasetUnavailableError"]

#: Checksum file of a data root (``sha256sum`` format, paths relative to the root).
_CHECKSUMS = "SHA256SUMS"
#: Longest excerpt of the underlying error quoted in a corrupt-file message.
_CAUSE_CHARS = 200


class DatasetUnavailableError(FileNotFoundError):
    """Raw files of a dataset are missing from the data root, or present but unreadable.

    The message names the missing files, the directory they belong in and
    where to obtain them; for files that are present but truncated or corrupt,
    it names the dataset, its raw folder and the underlying error, and says how
    to check the files against the data root's ``SHA256SUMS``. When a download
    was allowed and failed, it is the subclass
    :class:`~continuous_gnn.data.download.DownloadError`.
    """


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise DatasetUnavailableError(
            f"data root {str(root)!r} does not exist or is not a directory; set "
            f"--data-root or the {DATA_ROOT_ENV} environment variable to the folder "
            "that holds Planetoid/, WebKB/, Actor/, WikipediaNetwork/, "
            "HeterophilousGraphDataset/ and HeterophilousFiltered/"
        )


def _source(spec: _Spec) -> str:
    """Where the raw files come from, with the dataset's folder name filled in."""
    return spec.source.replace("<name>", spec.name)


def _check_raw_files(spec: _Spec, root: Path) -> None:
    """Raise :class:`DatasetUnavailableError` unless every raw file exists."""
    missing = [f for f in spec.files if not (root / f).is_file()]
    if not missing:
        return
    by_dir: dict[str, list[str]] = {}
    for rel in missing:
        directory, _, filename = rel.rpartition("/")
        by_dir.setdefault(directory, []).append(filename)
    where = "; ".join(f"{', '.join(names)} into {root / d}{os.sep}" for d, names in by_dir.items())
    note = f" {spec.note.replace('<root>', str(root))}" if spec.note else ""
    raise DatasetUnavailableError(
        f"dataset {spec.name!r} is incomplete under data root {str(root)!r}: "
        f"{len(missing)} raw file(s) missing. Copy {where}. Get them from "
        f"{_source(spec)}.{note} Nothing is downloaded automatically; set --data-root "
        f"or {DATA_ROOT_ENV} if the data lives elsewhere."
    )


@lru_cache(maxsize=1)
def _known_checksums() -> dict[str, str]:
    """``relative path -> sha256`` of the raw files, shipped with the package (``continuous_gnn/data/SHA256SUMS``):
    the files the downloader accepts and the package was tested with."""
    return _parse_checksums(resources.files("continuous_gnn.data").joinpath(_CHECKSUMS).read_text("utf-8"))


def _check_checksums(spec: _Spec, root: Path, files: Path) -> None:
    """Raise :class:`DatasetUnavailableError` unless each raw file (read under ``files``, a copy of ``root``'s)
    has its checksum: the data root's ``SHA256SUMS`` where it lists the file, else the package's. A text file cut
    at a line break still parses, into a smaller graph, so only its checksum tells."""
    own = _read_checksums(root)
    bad = []
    for rel in spec.files:
        listed = (own.get(rel), root / _CHECKSUMS) if rel in own else (_known_checksums().get(rel), None)
        if listed[0] is not None and _sha256(files / rel) != listed[0]:
            bad.append((rel, listed[1]))
    if bad:
        where = {str(place) if place is not None else "the package's continuous_gnn/data/SHA256SUMS"
                 for _, place in bad}
        raise DatasetUnavailableError(
            f"dataset {spec.name!r}: {', '.join(str(root / rel) for rel, _ in bad)} differ(s) from the checksum "
            f"in {' and '.join(sorted(where))}: truncated, corrupt or another version of the file. Copy it again "
            f"from {_source(spec)}, or delete it and let a command that may download fetch it again."
        )


def _read_checksums(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` from the data root's ``SHA256SUMS`` (empty if absent or unreadable)."""
    try:
        text = (root / _CHECKSUMS).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return _parse_checksums(text)


def _parse_checksums(text: str) -> dict[str, str]:
    """``relative path -> sha256`` from text in ``sha256sum`` format; malformed lines are skipped."""
    sums = {}
    for line in text.splitlines():
        digest, _, rel = line.strip().partition(" ")
        rel = rel.strip().lstrip("*")  # "*" marks binary mode in sha256sum's format
        if len(digest) == 64 and rel:
            sums[rel.removeprefix("./")] = digest.lower()
    return sums


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksum_advice(spec: _Spec, root: Path) -> str:
    """What the data root's ``SHA256SUMS`` says about the dataset's raw files."""
    sums = _read_checksums(root)
    listed = [rel for rel in spec.files if rel in sums]
    if not listed:
        pinned = resources.files("continuous_gnn.data").joinpath(_CHECKSUMS)
        return (
            f"Check the files against the checksums the package ships (cd {root} && sha256sum --ignore-missing "
            f"-c {pinned}) or copy them again from {_source(spec)}."
        )
    try:
        bad = [rel for rel in listed if _sha256(root / rel) != sums[rel]]
    except OSError:  # unreadable now: say nothing more specific
        bad = []
    if bad:
        names = ", ".join(str(root / rel) for rel in bad)
        return (
            f"These differ from their entry in {root / _CHECKSUMS}: {names}. "
            f"Copy them again from {_source(spec)}."
        )
    unlisted = len(spec.files) - len(listed)
    if unlisted:
        return (
            f"The {len(listed)} file(s) listed in {root / _CHECKSUMS} match it; check the other {unlisted} "
            f"or copy them again from {_source(spec)}."
        )
    return (
        f"All of them match {root / _CHECKSUMS}, so the files are intact: the installed torch_geometric "
        f"{torch_geometric.__version__} may read them differently; please report this."
    )


def _corrupt_error(spec: _Spec, root: Path, stage: Path, err: BaseException) -> DatasetUnavailableError:
    folders = sorted({str(root / rel.rpartition("/")[0]) for rel in spec.files})
    # Name the data root, not the private copy the files were processed in; keep the message on one line.
    cause = " ".join(str(err).replace(str(stage), str(root)).split())
    if len(cause) > _CAUSE_CHARS:
        cause = cause[: _CAUSE_CHARS - 3] + "..."
    cause = f"{type(err).__name__}: {cause}" if cause else type(err).__name__
    return DatasetUnavailableError(
        f"dataset {spec.name!r}: the raw files in {', '.join(folders)} could not be read ({cause}); "
        f"one of them is probably truncated or corrupt. {_checksum_advice(spec, root)}"
    )
