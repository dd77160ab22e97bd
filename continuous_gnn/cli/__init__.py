"""The ``continuous-gnn`` command line (also ``python -m continuous_gnn``).

================  ===========================================================================================
module            subcommand or shared part
================  ===========================================================================================
``common``        :class:`Subcommand`, :class:`UsageError`, parsing of numbers, lists, output and data paths
``config_flags``  the run-configuration flags: defaults < ``--preset`` < ``--config`` < typed flags
``downloads``     whether to download missing benchmark data (``--no-download``) and the download progress
``train``         ``train``: one configuration on the splits of one dataset
``tune``          ``tune``: Optuna search on the validation metric
``study``         ``study``: over-smoothing sweeps (step size, time, solver, W family; homophily)
``reproduce``     ``reproduce``: the GRAFF table (``reproduce_page`` writes docs/results.md)
``suite``         ``suite``: models beside published anchors, from a suite file (``suite_page`` writes its page)
``solvers``       ``solvers``: the solver benchmark (``solvers_page`` writes docs/solvers.md)
``bench``         ``bench``: the performance benchmark (``bench_page`` writes docs/performance.md)
``progress``      the per-split progress bars
================  ===========================================================================================

Every subcommand runs inside one error ladder (:func:`main`): mistakes in the command line, the configuration,
the data or an output path print one line on stderr and exit with status 2, before any training when they can
be known then; a failed solve or a diverged training run exits with status 1; Ctrl-C with 130.

The subcommands that train (:data:`KEEPS_FREED_MEMORY`) keep freed memory for reuse
(:func:`continuous_gnn.allocator.arrange_from_environment`; ``CONTINUOUS_GNN_ALLOCATOR=system`` turns it off).
The benchmarks choose their allocator per measurement and record it, so they leave the process's own alone.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..allocator import arrange_from_environment
from ..errors import DistributedError, IntegrationError, TrainingDivergedError
from . import bench, reproduce, solvers, study, suite, train, tune
from .common import PROG, Parser, Subcommand, UsageError
from .config_flags import add_config_flags, resolve_cli_config, typed_overrides

__all__ = ["main", "build_parser", "register", "Subcommand", "SUBCOMMANDS", "UsageError", "add_config_flags",
           "typed_overrides", "resolve_cli_config"]

SUBCOMMANDS: dict[str, Subcommand] = {}
#: Subcommands that train, and so keep freed memory for reuse unless the environment says otherwise.
KEEPS_FREED_MEMORY = ("train", "tune", "study", "reproduce", "suite")


def register(command: Subcommand) -> Subcommand:
    """Add a subcommand (a later registration of the same name replaces the earlier one)."""
    SUBCOMMANDS[command.name] = command
    return command


for _module in (train, tune, reproduce, suite, solvers, study, bench):
    register(_module.COMMAND)


# ---------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered subcommand."""
    parser = Parser(
        prog=PROG,
        description="Continuous-depth GNNs as gradient flows of learnable energies.",
        epilog="Configuration precedence: defaults < --preset < --config < typed flags.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, except that an unknown flag is reported by its subcommand, with the closest flag."""
    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        close = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown command {argv[0]!r}{hint}; choose from {', '.join(SUBCOMMANDS)}")
    args, extra = parser.parse_known_args(argv)
    if extra:
        subparser = _subparsers(parser).get(args.command, parser)
        # Compared without their dashes, which every flag shares and which would make any flag look close.
        names = {flag.lstrip("-"): flag for action in subparser._actions for flag in action.option_strings}
        hints = []
        for token in extra:
            close = (difflib.get_close_matches(token.split("=")[0].lstrip("-"), names, n=1)
                     if token.startswith("--") else [])
            hints.append(f"{token} (did you mean {names[close[0]]}?)" if close else token)
        subparser.error(f"unrecognized arguments: {' '.join(hints)}")
    return args


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _error(command: str | None, message: str, status: int) -> int:
    prefix = f"{PROG} {command}" if command else PROG
    print(f"{prefix}: error: {message}", file=sys.stderr)
    return status


def _import_from_working_folder() -> None:
    """Let ``--energy mypkg.energies:MyEnergy`` find ``mypkg`` in the folder the command runs from, as
    ``python -m continuous_gnn`` does (the ``continuous-gnn`` script's own ``sys.path`` lacks that folder). It comes
    last, so a folder there never hides an installed package."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    _import_from_working_folder()
    try:
        parser = build_parser()
        args = _parse(parser, argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        if args.command in KEEPS_FREED_MEMORY:
            arrange_from_environment("keep")
        return SUBCOMMANDS[args.command].handler(args, argv)
    except UsageError as err:
        return _error(command, str(err), 2)
    except BrokenPipeError:  # before OSError, its base: output piped into `head` is not an error of ours
        return 1
    except (ValueError, OSError) as err:
        # ValueError covers bad configuration values and unreadable checkpoints; OSError missing data
        # (continuous_gnn.data.DatasetUnavailableError is a FileNotFoundError) and unusable paths.
        return _error(command, str(err), 2)
    except IntegrationError as err:
        return _error(command, f"the solve failed: {err}", 1)
    except (TrainingDivergedError, DistributedError) as err:
        return _error(command, str(err), 1)
    except MemoryError:
        return _error(command, "out of memory; lower --hidden, the graph size or T/step_size", 1)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
