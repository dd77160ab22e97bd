"""Config layers and files: merge partial configs with precedence, and read and write TOML.

    library defaults < preset file < ``--config`` file < command-line flags the user actually typed

:func:`resolve_config` merges the layers and validates the result once; every layer goes through the same key
and type checks (:func:`~continuous_gnn.training.config.check_overrides`). TOML has no null, so optional fields
are either omitted from a file or given the string ``"none"``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..ode.methods import is_fixed
from .config import RunConfig, check_overrides

__all__ = ["resolve_config", "dropped_energy_options", "read_toml", "read_config_file", "load_config", "config_to_toml"]


def resolve_config(*layers: Mapping[str, Any] | None, sources: Iterable[str] | None = None) -> RunConfig:
    """Merge partial configs over the defaults (later layers win) and validate the result.

    Args:
        layers: partial configs, lowest precedence first; ``None`` entries are skipped.
        sources: a name per layer for error messages (default: "layer 1", "layer 2", ...).
    """
    names = _layer_names(layers, sources)
    merged: dict[str, Any] = {}
    level: dict[str, int] = {}  # the layer that last set each key; the defaults are layer -1
    for index, (layer, name) in enumerate(zip(layers, names, strict=True)):
        if layer is not None:
            checked = check_overrides(layer, source=name)
            merged.update(checked)
            level.update(dict.fromkeys(checked, index))
    # Choosing a method in a layer also chooses its kind of step control: a step size (or tolerances) from
    # the defaults or a lower layer belongs to the method it replaced, so it is dropped rather than reported
    # as a conflict. Set in the same or a higher layer, it stays and the cross-field check explains.
    method = merged.get("method", RunConfig.method)
    method_level = level.get("method", -1)
    stale = ("step_size",) if not is_fixed(method) else ("rtol", "atol")
    for key in stale:
        if level.get(key, -1) < method_level:
            merged[key] = None
    merged["energy_options"] = _energy_options(layers, names)[0]
    try:
        return RunConfig(**merged)
    except ValueError as err:  # a rule between fields: say where the merged fields came from
        given = [name for layer, name in zip(layers, names, strict=True) if layer]
        if not given:
            raise
        raise ValueError(f"{err} (settings merged from: {', '.join(given)})") from None


def dropped_energy_options(*layers: Mapping[str, Any] | None,
                           sources: Iterable[str] | None = None) -> list[tuple[str, str, list[str]]]:
    """The energy options that :func:`resolve_config` drops because a later layer chose another energy.

    Returns:
        list: ``(source, energy, option names)`` for each layer whose options were dropped, in layer order.
    """
    return _energy_options(layers, _layer_names(layers, sources))[1]


def _layer_names(layers: tuple[Mapping[str, Any] | None, ...], sources: Iterable[str] | None) -> list[str]:
    """A name per layer for the messages: ``sources``, checked to name each layer once, or "layer 1", ..."""
    if sources is None:
        return [f"layer {i + 1}" for i in range(len(layers))]
    if isinstance(sources, str):
        raise TypeError(f"sources must be a list of names, one per layer, not the string {sources!r}")
    names = [str(name) for name in sources]
    if len(names) != len(layers):
        raise ValueError(f"sources names {len(names)} layer(s) but {len(layers)} were given; give one name per "
                         "layer")
    return names


def _energy_options(layers: tuple[Mapping[str, Any] | None, ...],
                    names: list[str]) -> tuple[dict[str, Any], list[tuple[str, str, list[str]]]]:
    # Energy options merge key by key across layers, except that choosing another energy drops the options of
    # the one it replaced (they are keyword arguments of another class).
    final = RunConfig.energy
    for layer in layers:
        if layer is not None:
            final = layer.get("energy", final)
    options: dict[str, Any] = {}
    dropped: list[tuple[str, str, list[str]]] = []
    energy = RunConfig.energy
    for layer, name in zip(layers, names, strict=True):
        if layer is None:
            continue
        energy = layer.get("energy", energy)
        if "energy_options" not in layer:
            continue
        if energy == final:
            options.update(check_overrides({"energy_options": layer["energy_options"]})["energy_options"])
        elif layer["energy_options"]:
            dropped.append((name, energy, sorted(layer["energy_options"])))
    return options, dropped


def read_toml(path: Path, label: str) -> dict[str, Any]:
    """The tables of a TOML file; ``label`` names it in the errors (a folder, a missing file, invalid TOML).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is a folder or not valid TOML.
    """
    if path.is_dir():
        raise ValueError(f"{label} is a directory; pass a TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{label} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{label} is not valid TOML: {err}") from None


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file into a checked partial config (keys at the top level).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: on invalid TOML, unknown keys (named, with suggestions) or bad values.
    """
    path = Path(path)
    values = read_toml(path, f"config file {str(path)!r}")
    tables = [k for k, v in values.items() if isinstance(v, dict) and k != "energy_options"]
    if tables:
        raise ValueError(
            f"config file {str(path)!r}: tables {tables} are not supported; put every key at the top level "
            "(the one table is [energy_options])"
        )
    return check_overrides(values, source=f"config file {str(path)!r}")


def load_config(path: str | os.PathLike[str], base: RunConfig | Mapping[str, Any] | None = None) -> RunConfig:
    """A :class:`RunConfig` from a TOML file, over ``base`` (default: the library defaults)."""
    base_dict = base.to_dict() if isinstance(base, RunConfig) else base
    return resolve_config(base_dict, read_config_file(path), sources=["base", str(path)])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_string(text: str) -> str:
    """A TOML basic string: the quote, the backslash and the control characters TOML forbids raw are escaped."""
    escaped = (f"\\u{ord(c):04x}" if (ord(c) < 0x20 and c != "\t") or c == "\x7f" else "\\" + c if c in '"\\' else c
               for c in text)
    return '"' + "".join(escaped) + '"'


def _toml_key(key: str) -> str:
    """A bare key where TOML allows one, else a quoted key (a dot would otherwise open a nested table)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def config_to_toml(values: RunConfig | Mapping[str, Any], *, header: str = "",
                   keys: Iterable[str] | None = None) -> str:
    """TOML text for a config or a partial config; ``None`` values are omitted (TOML has no null).

    Args:
        values: the config.
        header: comment lines placed at the top (each prefixed with ``#``).
        keys: write only these fields (default: all).
    """
    data = values.to_dict() if isinstance(values, RunConfig) else dict(values)
    selected = list(keys) if keys is not None else list(data)
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    for key in selected:
        if data.get(key) is not None and key != "energy_options":
            lines.append(f"{key} = {_toml_value(data[key])}")
    if "energy_options" in selected and data.get("energy_options"):
        lines += ["", "[energy_options]"] + [f"{_toml_key(k)} = {_toml_value(v)}"
                                               for k, v in data["energy_options"].items()]
    return "\n".join(lines) + "\n"
