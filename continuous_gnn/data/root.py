"""Where the raw benchmark data and the processing cache live.

Both functions are pure: they take the environment as a mapping instead of
reading ``os.environ``, so the command-line interface decides what to pass
(normally ``os.environ``) and tests can pass a plain ``dict``.

Precedence for the raw data root:

1. the explicit path (the ``--data-root`` command-line flag),
2. ``environ["CONTINUOUS_GNN_DATA"]``,
3. ``$XDG_CACHE_HOME/continuous_gnn/data`` (``~/.cache/continuous_gnn/data``
   when ``XDG_CACHE_HOME`` is unset).

The processing cache defaults to ``$XDG_CACHE_HOME/continuous_gnn/processed``
(``~/.cache/continuous_gnn/processed``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATA_ROOT_ENV", "default_cache_dir", "default_data_root", "resolve_data_root"]

#: Environment variable that names the raw data root.
DATA_ROOT_ENV = "CONTINUOUS_GNN_DATA"

_APP_DIR = "continuous_gnn"


def _check_environ(environ: object) -> Mapping[str, str]:
    if not isinstance(environ, Mapping):
        raise TypeError(
            f"environ must be a mapping such as os.environ or a dict, got {type(environ).__name__}"
        )
    return environ


def _home(environ: Mapping[str, str]) -> Path:
    """Home directory, taken from ``environ['HOME']`` when it is set."""
    home = environ.get("HOME")
    # Path.home() is only the fallback, for mappings without HOME (e.g. {}).
    return Path(home) if home else Path.home()


def _expand_user(path: Path, environ: Mapping[str, str]) -> Path:
    """Expand a leading ``~`` using the given environment, not ``os.environ``."""
    parts = path.parts
    if parts and parts[0] == "~":
        return _home(environ).joinpath(*parts[1:])
    # "~user" forms need the password database; let the standard library do it.
    return path.expanduser() if parts and parts[0].startswith("~") else path


def _cache_home(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME``, or ``~/.cache`` when it is unset, empty or relative.

    The XDG base-directory specification says relative values must be ignored.
    """
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    return _home(environ) / ".cache"


def default_data_root(environ: Mapping[str, str]) -> Path:
    """Default raw data root: ``<cache home>/continuous_gnn/data``.

    Args:
        environ: Environment mapping (normally ``os.environ``).

    Returns:
        The default data root (it may not exist).
    """
    return _cache_home(_check_environ(environ)) / _APP_DIR / "data"


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Default writable processing cache: ``<cache home>/continuous_gnn/processed``.

    ``<cache home>`` is ``$XDG_CACHE_HOME`` when set to an absolute path, else
    ``~/.cache``.

    Args:
        environ: Environment mapping (normally ``os.environ``).

    Returns:
        The cache directory (it is created lazily by the loader, not here).

    Raises:
        TypeError: If ``environ`` is not a mapping.
    """
    return _cache_home(_check_environ(environ)) / _APP_DIR / "processed"


def resolve_data_root(
    explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> Path:
    """Resolve the raw data root.

    Precedence: ``explicit`` (the ``--data-root`` flag) >
    ``environ["CONTINUOUS_GNN_DATA"]`` > :func:`default_data_root`. Empty
    strings count as unset, and a leading ``~`` is expanded.

    Args:
        explicit: Path given on the command line, or ``None``.
        environ: Environment mapping; the library never reads ``os.environ``
            itself, the caller passes it in.

    Returns:
        The data root. Its existence is not checked here; the loader raises
        :class:`~continuous_gnn.data.DatasetUnavailableError` with advice when
        files are missing.

    Raises:
        TypeError: If ``explicit`` is not a string, path or ``None``, or
            ``environ`` is not a mapping.
    """
    environ = _check_environ(environ)
    if explicit is not None and not isinstance(explicit, (str, os.PathLike)):
        raise TypeError(
            f"explicit data root must be a str, os.PathLike or None, got {type(explicit).__name__}"
        )
    if explicit is not None and os.fspath(explicit) != "":
        return _expand_user(Path(explicit), environ)
    from_env = environ.get(DATA_ROOT_ENV)
    if from_env:
        return _expand_user(Path(from_env), environ)
    return default_data_root(environ)
