"""What every subcommand shares: the subcommand record, usage errors, and parsing of numbers, lists and paths.

A subcommand module defines ``COMMAND = Subcommand(...)``; :mod:`continuous_gnn.cli` registers it and runs it
inside the one error ladder (:func:`continuous_gnn.cli.main`). Helpers raise :class:`UsageError` with a message
that names the flag and the fix; the ladder prints it on one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import check_creatable, check_output_folder

__all__ = ["PROG", "UsageError", "Parser", "Subcommand", "number", "at_least", "items", "floats", "choices",
           "output_path", "output_folder", "add_data_flags", "data_paths", "show_progress", "percent", "slug", "timestamp",
           "project_dir", "check_distinct_outputs", "check_splits_and_epochs", "require_package"]

PROG = "continuous-gnn"


class UsageError(Exception):
    """A mistake in the command line or the configuration: reported on stderr with exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing usage and exiting.

    So a bad flag is one line on stderr like every other usage error, and ``main([...])`` returns 2 in-process.
    ``--help`` still prints and exits. Flags must be spelled out: argparse would otherwise take ``--epoch`` for
    ``--epochs``, and the records, which quote the command line, would then name a flag that does not exist.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: ``add_arguments(parser)`` declares its flags, ``handler(args, argv)`` runs it.

    ``argv`` is the whole command line after the program name (``argv[0]`` is the subcommand), for records.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, list[str]], int]
    #: The longer text of ``continuous-gnn NAME --help`` (default: ``help``).
    description: str | None = None


# ---------------------------------------------------------------------- numbers and lists


def number(text: str | None, flag: str, kind: type, default: Any, *, minimum: float | None = None,
           maximum: float | None = None) -> Any:
    """``text`` as an ``int`` or ``float`` within the bounds, or ``default`` when the flag was not given."""
    if text is None:
        return default
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and value != value:
        raise UsageError(f"{flag} must be a number, got {text!r}")
    if minimum is not None and value < minimum:
        raise UsageError(f"{flag} must be >= {minimum:g}, got {text}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{flag} must be <= {maximum:g}, got {text}")
    return value


def at_least(minimum: float, kind: type) -> Callable[[str], Any]:
    """An argparse ``type`` for numbers of ``kind`` that are at least ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


def items(text: str, flag: str) -> list[str]:
    """A comma-separated list without empty or repeated items."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise UsageError(f"{flag} must be a comma-separated list without empty items, got {text!r}")
    if len(set(parts)) != len(parts):
        raise UsageError(f"{flag} lists an item twice: {text!r}")
    return parts


def floats(text: str, flag: str, valid: Callable[[float], bool], requirement: str) -> list[float]:
    """A comma-separated list of numbers for which ``valid`` holds (``requirement`` says what it checks)."""
    values = []
    for item in items(text, flag):
        try:
            value = float(item)
        except ValueError:
            raise UsageError(f"{flag}: {item!r} is not a number") from None
        if not valid(value):  # write ``valid`` as comparisons: they are all False for nan
            raise UsageError(f"{flag}: {requirement}, got {item}")
        values.append(value)
    return values


def choices(text: str, flag: str, valid: Sequence[str]) -> list[str]:
    """A comma-separated list of names from ``valid``."""
    names = items(text, flag)
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise UsageError(f"{flag}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(valid)}")
    return names


# ---------------------------------------------------------------------- paths


def check_splits_and_epochs(args: argparse.Namespace) -> None:
    """Parse ``args.splits`` in place and check ``args.epochs`` (the run-selection flags of reproduce and suite).

    Raises:
        UsageError: on a bad split list or a non-positive epoch count.
    """
    from ..training.splits import parse_splits

    try:
        args.splits = parse_splits(args.splits)
    except ValueError as err:
        raise UsageError(f"--splits: {err}") from None
    if args.epochs is not None and args.epochs < 1:
        raise UsageError("--epochs must be positive")


def slug(label: str) -> str:
    """An ASCII file-name part for a label (a model's, a preset's, an energy's import path): a Greek letter by
    its name (``Ω`` → ``omega``), an accented letter without its accent, anything else that is no letter or
    digit as ``_``."""
    parts = []
    for ch in unicodedata.normalize("NFKD", label.lower()):
        if ch.isascii():
            parts.append(ch if ch.isalnum() else "_")
        elif unicodedata.combining(ch):
            continue
        elif ch.isalpha() and " LETTER " in unicodedata.name(ch, ""):
            parts.append(unicodedata.name(ch).split(" LETTER ")[-1].lower().replace(" ", "_"))
        else:
            parts.append("_")
    return "".join(parts)


def timestamp() -> str:
    """The local time as ``YYYYmmdd-HHMMSS``, for default file names."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class OutputFile:
    """Where a command writes its result file.

    Attributes:
        path (Path): the file, or, when ``numbered``, the name that the write starts from.
        numbered (bool): a default name: the write takes the first free one of ``path``, ``<stem>-1``, ... at the
            moment it writes, so that runs started in the same second keep their own files.
    """

    path: Path
    numbered: bool


def output_path(out: str | None, default_name: str) -> OutputFile:
    """Where a command writes its result file, checked before any work so that a bad path cannot lose a run.

    ``out`` is a file, or a folder (existing, or ending in ``/``) for ``default_name``; ``None`` means
    ``runs/<default_name>``. A default name that exists when the command writes gets a ``-1``, ``-2``, ...
    suffix; a file named by ``out`` is replaced.
    """
    if out is None:
        target = OutputFile(Path("runs") / default_name, numbered=True)
    elif not out.strip():
        raise UsageError("--out is empty; pass a file or a folder")
    else:
        given = Path(out).expanduser()
        folder = given.is_dir() or out.endswith(("/", os.sep))
        target = OutputFile(given / default_name if folder else given, numbered=folder)
    check_creatable(target.path, "--out")
    return target


def check_distinct_outputs(*flags: tuple[str, str | None]) -> None:
    """Refuse two output flags that name the same file (the second write would replace the first)."""
    seen: dict[Path, str] = {}
    for flag, path in flags:
        if path is None:
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise UsageError(f"{seen[resolved]} and {flag} name the same file {path!r}; give each its own")
        seen[resolved] = flag


def output_folder(text: str, flag: str = "--out") -> Path:
    """An output folder, checked before any work: not a file, and creatable in a writable folder."""
    if not text.strip():
        raise UsageError(f"{flag} is empty; pass a folder")
    check_output_folder(text, flag)
    return Path(text)


def project_dir() -> Path:
    """Where generated pages and run folders go by default: the source checkout this package is imported from,
    else (an installed wheel) the current folder."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "continuous_gnn").is_dir() else Path.cwd()


def add_data_flags(group: Any, *, cache: bool = True) -> None:
    """``--data-root``, (with ``cache``) ``--cache-dir``, ``--no-download`` and ``--download-timeout`` on a parser or
    argument group (:mod:`continuous_gnn.cli.downloads` reads the last two)."""
    group.add_argument("--data-root", metavar="DIR",
                       help="raw benchmark data (default: $CONTINUOUS_GNN_DATA, else $XDG_CACHE_HOME or ~/.cache, under "
                            "continuous_gnn/data)")
    if cache:
        group.add_argument("--cache-dir", metavar="DIR",
                           help="processing cache (default: ~/.cache/continuous_gnn/processed)")
    group.add_argument("--no-download", action="store_true",
                       help="never download: raw files missing from the data root are an error (also: "
                            "CONTINUOUS_GNN_NO_DOWNLOAD=1)")
    group.add_argument("--download-timeout", metavar="SECONDS",
                       help="seconds to wait for a connection or a read while downloading (default: 30)")


def data_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The raw data root and the processing cache of ``--data-root`` and ``--cache-dir`` (or their defaults)."""
    from ..data import default_cache_dir, resolve_data_root

    for flag, value in (("--data-root", args.data_root), ("--cache-dir", getattr(args, "cache_dir", None))):
        if value is not None and not value.strip():  # an empty path fell back to the default folder unannounced
            raise UsageError(f"{flag} is empty; pass a folder, or leave the flag out for the default")
    root = resolve_data_root(args.data_root, os.environ)
    cache_dir = getattr(args, "cache_dir", None)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(os.environ)
    return root, cache


# ---------------------------------------------------------------------- output


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and not with ``--quiet``."""
    return not args.quiet and sys.stderr is not None and sys.stderr.isatty()


def require_package(module: str, purpose: str, extra: str) -> None:
    """Refuse a command whose output needs the optional ``module``, before any of its work.

    Raises:
        UsageError: naming the ``pip install`` of the module and of the package extra that brings it.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UsageError(f"{module} is not installed, and it draws {purpose}: pip install {module} (or the extra: "
                         f"pip install 'continuous_gnn[{extra}]')")


def percent(value: float) -> str:
    """A fraction as a percentage with two decimals."""
    return f"{100 * value:.2f}"
