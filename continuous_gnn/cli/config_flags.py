"""The flags of a run configuration and how they resolve: defaults < ``--preset`` < ``--config`` < typed flags.

Every :class:`~continuous_gnn.training.RunConfig` field has a flag (``--step-size`` for ``step_size``), declared
with ``default=argparse.SUPPRESS``: a flag the user did not type is absent from the parsed namespace, and a flag
typed with the default value still overrides the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..training.config import RunConfig, check_overrides, field_type, parse_splits
from ..training.config_io import dropped_energy_options, read_config_file, resolve_config
from ..training.config_rules import GRAFF_FIELDS, SOURCE_OPTION_FLOWS, has_source_term, uses_graff_fields
from ..training.presets import available_presets, preset_path
from .common import UsageError, add_data_flags

__all__ = ["add_config_flags", "add_source_flags", "typed_overrides", "dataset_name", "ResolvedConfig",
           "resolve_cli_config"]


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_parser(name: str, hint: Any, optional: bool, choices: tuple | None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if optional and text.strip().lower() in ("none", "null"):
            return None
        if choices is not None:
            valid = [c for c in choices if c is not None]
            if text not in valid:
                shown = ", ".join(str(c) for c in valid) + (", none" if optional else "")
                raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {shown})")
            return text
        try:
            if hint is int:
                return int(text)
            if hint is float:
                return float(text)
        except ValueError:
            kind = "an integer" if hint is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}{' or none' if optional else ''}, got {text!r}") from None
        return text

    parse.__name__ = name  # argparse shows it in "invalid <name> value" messages
    return parse


def _parse_splits_flag(text: str) -> tuple[int, ...] | None:
    try:
        return parse_splits(text)
    except (TypeError, ValueError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parse_energy_option(text: str) -> dict[str, Any]:
    """``KEY=VALUE`` with a TOML value (``heads=2``, ``p=1.5``, ``learnable=false``, ``inner="dirichlet"``); a
    value that is not TOML is taken as a string (``inner=dirichlet``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return {key.strip(): parsed}


class _MergeOptions(argparse.Action):
    """Repeated ``--energy-option`` flags build one dict (a later key wins)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        current = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, {**(current if isinstance(current, dict) else {}), **values})


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`RunConfig` field (``--step-size`` for ``step_size``), all ``default=SUPPRESS``."""
    group = parser.add_argument_group("configuration (override --preset and --config)")
    for f in dataclasses.fields(RunConfig):
        hint, optional = field_type(f.name)
        help_text = f.metadata.get("help", "")
        default = f.default
        shown = f.metadata.get("shown_default")
        if shown is None:
            shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
        help_text = f"{help_text} (default: {shown})".replace("%", "%%")
        flag = _flag_name(f.name)
        if f.name == "splits":
            group.add_argument(flag, dest=f.name, type=_parse_splits_flag, default=argparse.SUPPRESS,
                               metavar="SPEC", help=help_text)
        elif f.name == "energy_options":
            group.add_argument("--energy-option", dest=f.name, type=_parse_energy_option, action=_MergeOptions,
                               default=argparse.SUPPRESS, metavar="KEY=VALUE", help=help_text)
        elif hint is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            choices = f.metadata.get("choices")
            metavar = None
            if choices is not None:
                metavar = "{" + ",".join(("none" if c is None else str(c)) for c in choices) + "}"
            else:
                metavar = f.name.upper()
            group.add_argument(flag, dest=f.name, type=_value_parser(f.name, hint, optional, choices),
                               default=argparse.SUPPRESS, metavar=metavar, help=help_text)


def typed_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the user typed on the command line (untyped flags are absent)."""
    return {name: getattr(args, name) for name in RunConfig.field_names() if hasattr(args, name)}


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags that name where a configuration comes from: ``--preset``, ``--config`` and the dataset."""
    group = parser.add_argument_group("sources")
    group.add_argument("--preset", metavar="NAME",
                       help="load the packaged preset NAME/<dataset>.toml (e.g. graff, graff_nl)")
    group.add_argument("--config", metavar="FILE", help="TOML config file (overrides the preset)")
    add_data_flags(group)
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def dataset_name(name: str) -> str:
    """The dataset's canonical name (``Actor`` is ``film``); a ``ValueError`` lists the valid names."""
    from ..data import canonical_name  # torch_geometric is imported only by commands that need it

    return canonical_name(name)


@dataclass(frozen=True)
class ResolvedConfig:
    """A config resolved from the command line, with where its layers came from (for the run's record)."""

    config: RunConfig
    preset: str | None
    preset_file: str | None
    config_file: str | None


def resolve_cli_config(args: argparse.Namespace) -> ResolvedConfig:
    """defaults < preset < config file < typed flags."""
    if args.preset is not None and not args.preset.strip():
        raise UsageError(f"--preset is empty; available: {', '.join(available_presets())}")
    if args.config is not None and not args.config.strip():
        raise UsageError("--config is empty; pass a TOML config file")
    typed = check_overrides(typed_overrides(args), source="command line")
    file_layer = read_config_file(args.config) if args.config else None
    preset_layer = None
    preset_file = None
    if args.preset:
        dataset = typed.get("dataset") or (file_layer or {}).get("dataset")
        if not dataset:
            raise UsageError("--preset needs a dataset: pass --dataset NAME (or set dataset in the --config file)")
        path = preset_path(args.preset, dataset)
        preset_layer = read_config_file(path)
        preset_file = str(path)
    layers = (preset_layer, file_layer, typed)
    sources = [f"preset {args.preset}", f"config file {args.config}", "command line"]
    config = resolve_config(*layers, sources=sources)
    if config.dataset is None:
        raise UsageError("no dataset: pass --dataset NAME (or set dataset in the --config file)")
    _check_graff_fields(config, typed)
    if config.detach_source and has_source_term(config) is False:  # it was recorded and changed nothing
        graff = uses_graff_fields(config)
        keep = (", or keep the source term" if graff else ", or give the flow its source term with --energy-option "
                "source=true" if config.energy in SOURCE_OPTION_FLOWS else "")
        raise UsageError(f"detach_source detaches F(0) where the source term reads it, and this flow "
                         f"({config.energy}{', source = false' if graff else ''}) has no source term; drop "
                         f"--detach-source (or detach_source from the config file){keep}")
    for source, energy, keys in dropped_energy_options(*layers, sources=sources):
        # Not an error (another energy may take other options), but easy to miss: say what was left behind.
        print(f"note: the energy is {config.energy}, so the {energy} options of the {source} ({', '.join(keys)}) "
              f"do not apply; pass any that {config.energy} takes again with --energy-option KEY=VALUE",
              file=sys.stderr, flush=True)
    return ResolvedConfig(config, args.preset, preset_file, args.config)


def _check_graff_fields(config: RunConfig, typed: dict[str, Any]) -> None:
    """GRAFF's fields (``--w``, ``--omega``, ...) typed for an energy that does not read them are a usage error;
    set by a file to other than their defaults, a note (presets and saved configs carry every field)."""
    if uses_graff_fields(config):
        return
    energy = repr(config.energy)
    if config.energy == "second_order":
        energy = f"second_order over {config.energy_options['inner']!r}"
    typed_here = [_flag_name(name) for name in GRAFF_FIELDS if name in typed]
    if typed_here:
        verb, them = ("configures", "it") if len(typed_here) == 1 else ("configure", "them")
        raise UsageError(f"{', '.join(typed_here)} {verb} the GRAFF energy, but the energy is {energy}, which does "
                         f"not read {them}: leave {them} out, and pass the energy's own options with --energy-option "
                         "KEY=VALUE")
    unread = [f"{name} = {str(getattr(config, name)).lower()}" for name in GRAFF_FIELDS
              if getattr(config, name) != getattr(RunConfig, name)]
    if unread:
        what = "a field of the GRAFF energy, changes" if len(unread) == 1 else "fields of the GRAFF energy, change"
        print(f"note: the energy is {energy}, so {', '.join(unread)}, {what} nothing", file=sys.stderr, flush=True)
