"""The ``continuous-gnn`` command line (also ``python -m continuous_gnn``).

Subcommands: ``train`` (one configuration over the splits of one dataset), ``study`` (over-smoothing sweeps),
``solvers`` (solver benchmark), ``tune`` (Optuna search on the
validation metric) and ``reproduce`` (the GRAFF table, implemented in ``experiments/reproduce.py``). More are
added by registering them in :data:`SUBCOMMANDS`.

Configuration precedence for ``train`` and ``tune``:

    library defaults < ``--preset NAME`` < ``--config FILE`` < flags actually typed

Every config flag is declared with ``default=argparse.SUPPRESS``, so a flag the user did not type is absent
from the parsed namespace and a flag typed with the default value still overrides the file.

User errors (bad flags, bad config values, missing data, unusable output paths) print one line on stderr and
exit with status 2, before any training when they can be known then; a failed solve or a diverged training
run exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import difflib
import importlib
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, check_creatable
from ..errors import IntegrationError, TrainingDivergedError
from ..training.config import MAX_SEED, MAX_SPLITS, RunConfig, check_overrides, field_type, parse_splits
from ..training.config_io import config_to_toml, read_config_file, resolve_config
from ..training.presets import available_presets, preset_path, search_space_path
from ..training.search import config_header, load_search_space, selection_scope
from . import study as cli_study
from .progress import EpochBars

PROG = "continuous-gnn"
#: ``experiments/`` of the source checkout: ``reproduce.py`` and ``solver_benchmark.py``.
EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"


class UsageError(Exception):
    """A mistake in the command line or the configuration: reported on stderr with exit status 2."""


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: ``add_arguments(parser)`` declares its flags, ``handler(args, argv)`` runs it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, list[str]], int]
    #: Forward the raw arguments to ``handler`` unparsed (for commands with their own parser).
    passthrough: bool = False


SUBCOMMANDS: dict[str, Subcommand] = {}


def register(command: Subcommand) -> Subcommand:
    """Add a subcommand (a later registration of the same name replaces the earlier one)."""
    SUBCOMMANDS[command.name] = command
    return command


# ---------------------------------------------------------------------- config flags


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


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sources")
    group.add_argument("--preset", metavar="NAME",
                       help="load the packaged preset NAME/<dataset>.toml (e.g. graff, graff_nl)")
    group.add_argument("--config", metavar="FILE", help="TOML config file (overrides the preset)")
    group.add_argument("--data-root", metavar="DIR",
                       help="raw benchmark data (default: $CONTINUOUS_GNN_DATA, else ~/.cache/continuous_gnn/data)")
    group.add_argument("--cache-dir", metavar="DIR",
                       help="processing cache (default: ~/.cache/continuous_gnn/processed)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _dataset_name(name: str) -> str:
    """The dataset's canonical name (``Actor`` is ``film``); a ``ValueError`` lists the valid names."""
    from ..data import canonical_name  # torch_geometric is imported only by commands that need it

    return canonical_name(name)


@dataclass(frozen=True)
class ResolvedConfig:
    config: RunConfig
    preset: str | None
    preset_file: str | None
    config_file: str | None


def resolve_cli_config(args: argparse.Namespace) -> ResolvedConfig:
    """defaults < preset < config file < typed flags."""
    if args.preset is not None and not args.preset.strip():
        raise UsageError(f"--preset is empty; available: {', '.join(available_presets())}")
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
    config = resolve_config(preset_layer, file_layer, typed,
                            sources=[f"preset {args.preset}", f"config file {args.config}", "command line"])
    if config.dataset is None:
        raise UsageError("no dataset: pass --dataset NAME (or set dataset in the --config file)")
    return ResolvedConfig(config, args.preset, preset_file, args.config)


def _data_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    from ..data import default_cache_dir, resolve_data_root

    root = resolve_data_root(args.data_root, os.environ)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir(os.environ)
    return root, cache


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr is not None and sys.stderr.isatty()


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(1, 1000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    return path


def _output_path(out: str | None, default_name: str) -> Path:
    """Where a command writes its result, checked before any work so that a bad path cannot lose a run."""
    if out is None:
        path = _unique(Path("runs") / default_name)
    elif not out.strip():
        raise UsageError("--out is empty; pass a file or a folder")
    else:
        given = Path(out).expanduser()
        path = _unique(given / default_name) if given.is_dir() or out.endswith(("/", os.sep)) else given
    check_creatable(path, "--out")
    return path


# ---------------------------------------------------------------------- train


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)
    _add_source_flags(parser)
    parser.add_argument("--out", metavar="PATH",
                        help="JSON record path, or a folder for the default name "
                             "(default: runs/<dataset>-<preset or energy>-<timestamp>.json)")


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from ..training import load_run_dataset, run, save_record

    resolved = resolve_cli_config(args)
    config = resolved.config
    label = resolved.preset or config.energy
    path = _output_path(args.out, f"{_dataset_name(config.dataset)}-{label}-{_timestamp()}.json")
    root, cache = _data_paths(args)
    dataset = load_run_dataset(config, root, cache_dir=cache)
    metric = dataset.metric
    print(f"dataset {dataset.name}: {dataset.num_nodes} nodes, {dataset.num_classes} classes; "
          f"{'preset ' + resolved.preset if resolved.preset else 'energy ' + config.energy}; metric {metric}",
          flush=True)

    def on_split(s) -> None:
        print(f"split {s.split:>2}  test {_percent(s.test_metric)}  val {_percent(s.val_metric)}  "
              f"best epoch {s.best_epoch:>3}/{s.epochs_run}  {s.wall_time:.1f} s", flush=True)

    if _show_progress(args):
        with EpochBars(dataset.name) as bars:
            result = run(config, dataset, progress=bars, on_split=on_split)
    else:
        result = run(config, dataset, on_split=on_split)
    record = result.to_record(
        preset=resolved.preset,
        preset_file=resolved.preset_file,
        config_file=resolved.config_file,
        data_root=str(root),
        command=shlex.join([PROG, *argv]),
    )
    save_record(record, path)
    agg = record["aggregate"]
    epochs = sum(s.epochs_run for s in result.splits)
    print(f"test {metric} {_percent(agg['test_mean'])} ± {_percent(agg['test_std'])} "
          f"(mean ± population std over {agg['num_splits']} split{'s' if agg['num_splits'] != 1 else ''})")
    print(f"time {result.wall_time:.1f} s ({1000 * result.wall_time / max(epochs, 1):.1f} ms per epoch)")
    print(f"record {path}")
    return 0


register(Subcommand("train", "train one configuration on the splits of a dataset", _train_arguments, _train))


# ---------------------------------------------------------------------- tune


#: The packaged search space (``presets/search/graff.toml``): the official random search and the ``--also`` keys.
_SPACE = load_search_space(search_space_path())
TUNE_SPACE = _SPACE.search
EXTRA_SPACE = _SPACE.also


def tune_space(base: RunConfig, searched: list[str]) -> dict[str, tuple[str, tuple]]:
    """The search space of ``searched`` widened so that ``base``'s own values lie in it."""
    return _SPACE.widen(base, searched)


def _tune_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)
    _add_source_flags(parser)
    group = parser.add_argument_group("search")
    group.add_argument("--trials", type=int, default=20, help="number of trials (default: 20)")
    group.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    group.add_argument("--sampler-seed", type=int, default=None, help="seed of the TPE sampler (default: --seed)")
    group.add_argument("--seeds", default=None, metavar="SEEDS",
                       help="comma-separated base seeds to train every trial with; the objective averages them "
                            "(default: --seed). The best config keeps --seed, so a run at a seed outside this "
                            "list is not flattered by the search")
    group.add_argument("--fix", default="", metavar="KEYS",
                       help=f"comma-separated search keys to keep at their configured value; searched: "
                            f"{', '.join(TUNE_SPACE)}")
    group.add_argument("--also", default="", metavar="KEYS",
                       help=f"comma-separated keys to search as well: {', '.join(EXTRA_SPACE)}")
    group.add_argument("--out", metavar="FILE.toml",
                       help="best config (default: runs/tune-<dataset>-<timestamp>.toml; a .json with all "
                            "trials goes beside it)")


def parse_seeds(text: str | None, default: int) -> tuple[int, ...]:
    """``tune --seeds``: distinct non-negative integers, comma-separated; ``None`` gives ``(default,)``."""
    if text is None:
        return (default,)
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--seeds: expected comma-separated integers such as 0,1000, got {text!r}") from None
    if any(not 0 <= seed <= MAX_SEED for seed in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: expected distinct integers in [0, 2**63 - {MAX_SPLITS + 1}], got {text!r}")
    return seeds


def _self_loops_optional(dataset: Any, config: RunConfig) -> bool:
    """Whether the graph can be normalised without self-loops (it cannot with isolated nodes)."""
    from ..training.build import build_graph

    try:
        build_graph(dataset.data, config.replace(self_loops=False))
    except ValueError:
        return False
    return True


def _suggest(trial, name: str, space: dict[str, tuple[str, tuple]]) -> Any:
    kind, values = space[name]
    if kind == "categorical":
        return trial.suggest_categorical(name, list(values))
    return trial.suggest_float(name, *values)


#: Errors that fail one trial of a search (a configuration the sampler drew can diverge or be invalid) instead
#: of the whole search.
TRIAL_FAILURES = (IntegrationError, TrainingDivergedError, ValueError)


def _tune(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        import optuna
    except ImportError:
        raise UsageError("tune needs Optuna: pip install optuna (or pip install -e '.[tune]')") from None
    import torch

    from ..training import check_run, environment, load_run_dataset, population_mean_std, run, save_record

    if args.trials < 1:
        raise UsageError(f"--trials must be a positive integer, got {args.trials}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.sampler_seed is not None and not 0 <= args.sampler_seed < 2**32:
        raise UsageError(f"--sampler-seed must be in [0, 2**32 - 1] (Optuna's TPE sampler), got {args.sampler_seed}")
    if args.out is not None and Path(args.out).suffix == ".json":
        raise UsageError(f"--out {args.out}: the best config is a TOML file (the trials go to a .json beside "
                         "it); name it .toml")
    resolved = resolve_cli_config(args)
    base = resolved.config
    fixed = {k.strip() for k in args.fix.split(",") if k.strip()}
    unknown = sorted(fixed - set(TUNE_SPACE))
    if unknown:
        raise UsageError(f"--fix: unknown search key(s) {unknown}; searched keys: {', '.join(TUNE_SPACE)}")
    also = [k.strip() for k in args.also.split(",") if k.strip()]
    unknown = sorted(set(also) - set(EXTRA_SPACE))
    if unknown:
        raise UsageError(f"--also: unknown key(s) {unknown}; choose from {', '.join(EXTRA_SPACE)}")
    searched = [k for k in TUNE_SPACE if k not in fixed] + [k for k in EXTRA_SPACE if k in also]
    if not base.fixed_grid and "step_size" in searched:
        searched.remove("step_size")
    if not searched:
        raise UsageError("--fix keeps every search key at its configured value, so there is nothing to search; "
                         "fix fewer keys or add some with --also")
    seeds = parse_seeds(args.seeds, base.seed)
    path = _output_path(args.out, f"tune-{_dataset_name(base.dataset)}-{_timestamp()}.toml")
    root, cache = _data_paths(args)
    dataset = load_run_dataset(base, root, cache_dir=cache)
    check_run(base, dataset)  # a bad split or device is a usage error, not 20 failed trials
    splits = base.splits if base.splits is not None else tuple(range(dataset.num_splits))
    space = tune_space(base, searched)
    if "self_loops" in space and base.self_loops and not _self_loops_optional(dataset, base):
        space["self_loops"] = ("categorical", (True,))
        print(f"{dataset.name} has isolated nodes: self_loops stays True (without self-loops the "
              "normalisation divides by zero)", flush=True)
    where = selection_scope(splits, seeds)
    print(f"tuning {dataset.name}: {len(searched)} parameters, {args.trials} trials (trial 0 = the configured "
          f"values), objective = mean validation {dataset.metric} {where} (the test metric is never read)",
          flush=True)

    def objective(trial) -> float:
        config = base.replace(**{name: _suggest(trial, name, space) for name in searched})
        per_seed, seconds = [], 0.0
        for seed in seeds:
            try:
                result = run(config.replace(seed=seed), dataset)
            except TRIAL_FAILURES as err:  # one line here; Optuna's own warning would add a traceback
                trial.set_user_attr("failed", f"{type(err).__name__}: {err}")
                print(f"trial {trial.number:>3}  failed: {err}", flush=True)
                raise
            per_seed.append(population_mean_std([s.val_metric for s in result.splits])[0])
            seconds += result.wall_time
        mean = sum(per_seed) / len(per_seed)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("per_seed", dict(zip(map(str, seeds), per_seed)))
        print(f"trial {trial.number:>3}  val {_percent(mean)}  {seconds:.1f} s", flush=True)
        return mean

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.TPESampler(seed=args.sampler_seed if args.sampler_seed is not None else base.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({name: getattr(base, name) for name in searched})
    interrupted = False
    try:
        study.optimize(objective, n_trials=args.trials, timeout=args.timeout,
                       catch=TRIAL_FAILURES, show_progress_bar=False)
    except KeyboardInterrupt:  # keep what the finished trials found
        interrupted = True
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        if interrupted:
            raise KeyboardInterrupt
        first = next((t.user_attrs["failed"] for t in study.trials if "failed" in t.user_attrs), None)
        print(f"{PROG} tune: every trial failed{f' (first: {first})' if first else ''}", file=sys.stderr)
        return 1
    if interrupted:
        print(f"interrupted after {len(completed)} completed trial(s); writing the best so far", file=sys.stderr)
    best = study.best_trial
    baseline = study.trials[0].value
    best_config = RunConfig.from_dict(best.user_attrs["config"])
    header = (
        f"Tuned by `{shlex.join([PROG, *argv])}`\n"
        f"on {_dt.datetime.now().isoformat(timespec='seconds')} with {torch.get_num_threads()} torch thread(s) (a "
        f"seed repeats a run only at the same count): {len(completed)} of {len(study.trials)} trials "
        f"completed{' (interrupted)' if interrupted else ''}.\nSelection: mean validation {dataset.metric} {where} = "
        f"{_percent(best.value)} (trial {best.number}; the configured values, trial 0: "
        f"{_percent(baseline) if baseline is not None else 'failed'}); the test metric was not used."
    )
    inherited = config_header(args.config) if getattr(args, "config", None) else []
    if inherited:
        header += f"\nStarted from `{args.config}`, whose header reads:\n" + "\n".join(f"  {line}" for line in inherited)
    keys = [k for k in RunConfig.field_names() if k not in ("splits", "device")]
    with atomic_open(path) as handle:
        handle.write(config_to_toml(best_config, header=header, keys=keys))
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               "per_seed": t.user_attrs.get("per_seed"), "failed": t.user_attrs.get("failed")} for t in study.trials]
    save_record({"command": shlex.join([PROG, *argv]), "selection": f"mean validation {dataset.metric}",
                 "splits": list(splits), "seeds": list(seeds), "best_trial": best.number, "best_value": best.value,
                 "configured_value": baseline,
                 "space": {name: [kind, list(values)] for name, (kind, values) in space.items()},
                 "base_config": base.to_dict(), "trials": trials, **environment()}, path.with_suffix(".json"))
    print(f"best validation {dataset.metric} {_percent(best.value)} (trial {best.number}); config {path}")
    return 0


register(Subcommand("tune", "search hyperparameters on the validation metric (Optuna)", _tune_arguments, _tune))


# ---------------------------------------------------------------------- reproduce


def _load_experiment(name: str):
    path = EXPERIMENTS_DIR / f"{name}.py"
    if not path.is_file():
        raise UsageError(f"{path} not found: '{name}' runs from a source checkout of continuous_gnn")
    # Imported by its own name from experiments/ on sys.path, so that worker processes (the solver benchmark's
    # forkserver children receive the parent's sys.path) can import it again to unpickle its functions.
    folder = str(EXPERIMENTS_DIR)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.import_module(name)
    if Path(module.__file__).resolve() != path.resolve():
        raise UsageError(f"'{name}' resolved to {module.__file__}, not {path}: another module of that name "
                         "shadows the experiment script")
    return module


def _reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    return int(_load_experiment("reproduce").main(argv[1:]) or 0)


register(Subcommand("reproduce", "run GRAFF and GRAFF-NL on every benchmark and write docs/results.md "
                    "(experiments/reproduce.py; see its --help)", lambda p: None, _reproduce, passthrough=True))


def _solvers(args: argparse.Namespace, argv: list[str]) -> int:
    return int(_load_experiment("solver_benchmark").main(argv[1:], prog=f"{PROG} solvers") or 0)


register(Subcommand("solvers", "benchmark every solver with direct and adjoint backprop and write docs/solvers.md "
                    "(experiments/solver_benchmark.py; see its --help)", lambda p: None, _solvers, passthrough=True))
register(Subcommand("study", "sweep step size, integration time, solver and W family; write a CSV and figures",
                    cli_study.add_arguments, cli_study.handler))


# ---------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Continuous-depth GNNs as gradient flows of learnable energies.",
        epilog="Configuration precedence: defaults < --preset < --config < typed flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help,
                           add_help=not command.passthrough)
        command.add_arguments(p)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parse_args``, except that an unknown flag is reported by its subcommand, with the closest flag."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        subparser = _subparsers(parser).get(args.command, parser)
        flags = [flag for action in subparser._actions for flag in action.option_strings]
        hints = []
        for token in extra:
            close = difflib.get_close_matches(token.split("=")[0], flags, n=1) if token.startswith("--") else []
            hints.append(f"{token} (did you mean {close[0]}?)" if close else token)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = SUBCOMMANDS.get(argv[0]) if argv else None
    try:
        if command is not None and command.passthrough:
            return command.handler(argparse.Namespace(), argv)
        parser = build_parser()
        args = _parse(parser, argv)  # exits with status 2 on bad flags
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return SUBCOMMANDS[args.command].handler(args, argv)
    except UsageError as err:
        return _error(argv[0] if argv else None, str(err), 2)
    except BrokenPipeError:  # before OSError, its base: output piped into `head` is not an error of ours
        return 1
    except (ValueError, OSError) as err:
        # OSError covers continuous_gnn.data.DatasetUnavailableError (a FileNotFoundError) and unusable paths.
        return _error(argv[0] if argv else None, str(err), 2)
    except IntegrationError as err:
        return _error(argv[0] if argv else None, f"the solve failed: {err}", 1)
    except TrainingDivergedError as err:
        return _error(argv[0] if argv else None, str(err), 1)
    except MemoryError:
        return _error(argv[0] if argv else None, "out of memory; lower --hidden, the graph size or T/step_size", 1)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser", "register", "Subcommand", "SUBCOMMANDS", "UsageError", "add_config_flags",
           "typed_overrides", "resolve_cli_config", "preset_path", "available_presets"]
