"""``continuous-gnn tune``: search hyperparameters with Optuna on the mean validation metric.

The space is a TOML file (:mod:`continuous_gnn.training.search`): the packaged GRAFF random search unless
``--space FILE`` names another. Trial 0 is the configured config (every range is widened to contain it), so
the best trial is never worse on validation than the starting point; the test metric is never read. The best
config is written as TOML with the selection in its header, and every trial to a JSON file beside it.

The trials live in an Optuna study in a SQLite file beside the output (``<out>.optuna.sqlite3`` for
``<out>.toml``), named after the search's settings, so a search that was killed or interrupted continues when the
same command (the same ``--out``) runs again: it runs only the trials that did not finish, and a trial its
worker was running is run again (:mod:`continuous_gnn.training.trial_queue`), so the study ends with ``--trials``
trials. Run again with a larger ``--trials``, it extends the same study by the difference (a smaller one is an
error). Deleting that file, or another ``--out``, starts over.

With ``--storage URL --study-name NAME`` the trials live in that RDB storage instead and every worker started with
the same flags (on this machine or others) shares them: together they run exactly ``--trials`` trials, and each
writes the best config of the trials completed when it stops.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text, numbered_names
from ..errors import IntegrationError, TrainingDivergedError
from ..training.config import RunConfig
from ..training.config_io import config_to_toml
from ..training.config_rules import GRAFF_FIELDS, MAX_SEED, uses_graff_fields
from ..training.presets import search_space_path
from ..training.search import SearchSpace, config_header, largest_draw, load_search_space, selection_scope, suggest
from ..training.splits import MAX_SPLITS
from .common import PROG, Subcommand, UsageError, data_paths, output_path, percent, timestamp
from .config_flags import add_config_flags, add_source_flags, dataset_name, resolve_cli_config
from .downloads import fetch_dataset

__all__ = ["COMMAND", "parse_seeds", "TRIAL_FAILURES"]

#: Errors that fail one trial of a search (a configuration the sampler drew can diverge or be invalid) instead
#: of the whole search.
TRIAL_FAILURES = (IntegrationError, TrainingDivergedError, ValueError)


def _arguments(parser: argparse.ArgumentParser) -> None:
    default = load_search_space(search_space_path())
    add_config_flags(parser)
    add_source_flags(parser)
    group = parser.add_argument_group("search")
    group.add_argument("--trials", type=int, default=20,
                       help="number of trials (default: 20); rerun with the same --out and a larger number to extend "
                            "a finished or interrupted search")
    group.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    group.add_argument("--sampler-seed", type=int, default=None,
                       help="seed of the TPE sampler (default: --seed; not with --storage, whose workers each draw "
                            "from their own stream)")
    group.add_argument("--seeds", default=None, metavar="SEEDS",
                       help="comma-separated base seeds to train every trial with; the objective averages them "
                            "(default: --seed). The best config keeps --seed, so a run at a seed outside this "
                            "list is not flattered by the search")
    group.add_argument("--space", metavar="FILE",
                       help="search space: a TOML file with a [search] table of keys searched by default and an "
                            "[also] table of keys searched on request, each { categorical = [choices] } or "
                            "{ uniform = [low, high] } (default: the packaged official GRAFF random search)")
    group.add_argument("--fix", default="", metavar="KEYS",
                       help=f"comma-separated search keys to keep at their configured value; searched (default "
                            f"space): {', '.join(default.search)}")
    group.add_argument("--also", default="", metavar="KEYS",
                       help=f"comma-separated keys to search as well (default space): {', '.join(default.also)}")
    group.add_argument("--storage", metavar="URL",
                       help="share the search with other workers through Optuna's RDB storage: sqlite:///tune.db "
                            "on one machine, postgresql://user@host/db or mysql+pymysql://user@host/db for a "
                            "cluster; start every worker with the same flags (default: a SQLite file beside --out, "
                            "<out>.optuna.sqlite3, so that rerunning the same command continues a search that was "
                            "killed; delete it to start over)")
    group.add_argument("--study-name", metavar="NAME",
                       help="the study the workers share in --storage (required with it)")
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch CPU threads of this worker (default: torch's choice, every core); with several "
                            "workers on one machine give each its share of the cores (--threads 1 for two workers "
                            "on two cores): more threads than cores slow every worker several times. The best "
                            "config's header records the count, since a seed repeats a run only at the same one")
    group.add_argument("--out", metavar="FILE.toml",
                       help="best config (default: runs/tune-<dataset>-<timestamp>.toml; a .json with all "
                            "trials and the .optuna.sqlite3 study go beside it; rerun with the same --out to "
                            "continue a search that stopped)")


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


def _searched(space: SearchSpace, fix: str, also: str, base: RunConfig) -> list[str]:
    """The keys to search: the space's [search] keys not in ``--fix``, then the [also] keys in ``--also``."""
    fixed = {k.strip() for k in fix.split(",") if k.strip()}
    unknown = sorted(fixed - set(space.search))
    if unknown:
        raise UsageError(f"--fix: unknown search key(s) {unknown}; searched keys: {', '.join(space.search)}")
    extra = [k.strip() for k in also.split(",") if k.strip()]
    unknown = sorted(set(extra) - set(space.also))
    if unknown:
        choose = f"choose from {', '.join(space.also)}" if space.also else "the search space has no [also] table"
        raise UsageError(f"--also: unknown key(s) {unknown}; {choose}")
    searched = [k for k in space.search if k not in fixed] + [k for k in space.also if k in extra]
    if not base.fixed_grid and "step_size" in searched:
        searched.remove("step_size")
    unread = [] if uses_graff_fields(base) else [k for k in searched if k in GRAFF_FIELDS]
    if unread:  # each trial would repeat another one: the energy does not read them
        print(f"note: {', '.join(unread)} not searched: {'it configures' if len(unread) == 1 else 'they configure'} "
              f"the GRAFF energy, and the energy is {base.energy!r}", file=sys.stderr, flush=True)
        searched = [k for k in searched if k not in unread]
    if not searched:
        raise UsageError("--fix keeps every search key at its configured value, so there is nothing to search; "
                         "fix fewer keys or add some with --also")
    return searched


def _check_widest(base: RunConfig, space: dict) -> None:
    """The largest model a trial can draw must fit in memory too: a trial the kernel kills ends the search."""
    from ..training import check_before_loading

    largest, drawn = largest_draw(base, space)
    if not drawn:
        return  # no draw has more parameters than the start, which was checked
    try:
        check_before_loading(largest)
    except ValueError as err:
        values = ", ".join(f"{name} = {value}" for name, value in drawn.items())
        keys = ", ".join(drawn)
        raise UsageError(f"a trial may draw {values} from the search space, and then: {err}; narrow the space's "
                         f"choices of {keys}, or keep {'it' if len(drawn) == 1 else 'them'} out of the "
                         "search") from None


def _self_loops_optional(dataset: Any, config: RunConfig) -> bool:
    """Whether the graph can be normalised without self-loops (it cannot with isolated nodes)."""
    from ..training.build import build_graph

    try:
        build_graph(dataset.data, config.replace(self_loops=False))
    except ValueError:
        return False
    return True


#: Seconds a worker that finds the study it joins not yet set up waits for the worker that is creating it.
JOIN_WAIT_S = 120.0


def _tune(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        import optuna
    except ImportError:
        raise UsageError("tune needs Optuna: pip install optuna (or the extra: pip install 'continuous_gnn[tune]')") from None
    import torch

    from ..data import NUM_SPLITS
    from ..training import check_before_loading, check_run, environment, load_run_dataset, population_mean_std, run, save_record
    from ..training.batches import metis_parts
    from ..training.trial_queue import open_queue, open_storage, replaced_trials, requeued_trials, shown_url

    if args.trials < 1:
        raise UsageError(f"--trials must be a positive integer, got {args.trials}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {args.threads}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.sampler_seed is not None and not 0 <= args.sampler_seed < 2**32:
        raise UsageError(f"--sampler-seed must be in [0, 2**32 - 1] (Optuna's TPE sampler), got {args.sampler_seed}")
    if args.sampler_seed is not None and args.storage is not None:
        raise UsageError("--sampler-seed with --storage: every worker started with the same flags would draw the same "
                         "trials; leave --sampler-seed out, and each worker of the shared study draws its own")
    if args.out is not None and Path(args.out).suffix == ".json":
        raise UsageError(f"--out {args.out}: the best config is a TOML file (the trials go to a .json beside "
                         "it); name it .toml")
    if args.space is not None and not args.space.strip():
        raise UsageError("--space is empty; pass a search space TOML file")
    if (args.storage is None) != (args.study_name is None):
        raise UsageError("--study-name names the shared study in --storage: give both or neither" if args.storage
                         is None else "--storage needs --study-name NAME: the workers of one search share the study "
                         "by its name")
    if args.storage is not None and not (args.storage.strip() and args.study_name.strip()):
        raise UsageError("--storage and --study-name must not be empty")
    storage = open_storage(args.storage) if args.storage is not None else None  # a missing driver fails first
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    resolved = resolve_cli_config(args)
    base = resolved.config
    # Read with the config it heads: a preset updated while the trials run (by another search, say) must not
    # lend this search its newer history.
    inherited = config_header(args.config) if getattr(args, "config", None) else []
    search_space = load_search_space(args.space if args.space is not None else search_space_path())
    searched = _searched(search_space, args.fix, args.also, base)
    seeds = parse_seeds(args.seeds, base.seed)
    # Batches need self-loops (a batch's subgraph has nodes without neighbours): pinned before the values are
    # checked, which would otherwise refuse the space for its self_loops = false.
    pin_self_loops = "self_loops" in searched and base.self_loops and base.batching != "none"
    space = search_space.widen(base, [name for name in searched if not (pin_self_loops and name == "self_loops")])
    if pin_self_loops:
        space["self_loops"] = ("categorical", (True,))
        print(f"batching = {base.batching}: self_loops stays True (a batch's subgraph has nodes without "
              "neighbours)", flush=True)
    target = output_path(args.out, f"tune-{dataset_name(base.dataset)}-{timestamp()}.toml")
    path = target.path
    check_before_loading(base, NUM_SPLITS.get(dataset_name(base.dataset)))
    _check_widest(base, space)
    root, cache = data_paths(args)
    fetch_dataset(args, base.dataset, root)
    dataset = load_run_dataset(base, root, cache_dir=cache)
    check_run(base, dataset)  # a bad split or device is a usage error, not 20 failed trials
    if base.batching == "metis" and not {"num_parts", "seed"} & set(searched):
        metis_parts(base, dataset.data)  # too many clusters for the graph: one error now, not one per trial
    splits = base.splits if base.splits is not None else tuple(range(dataset.num_splits))
    if "self_loops" in space and base.self_loops and not pin_self_loops and not _self_loops_optional(dataset, base):
        space["self_loops"] = ("categorical", (True,))
        print(f"{dataset.name} has isolated nodes: self_loops stays True (without self-loops the "
              "normalisation divides by zero)", flush=True)
    where = selection_scope(splits, seeds)
    shared = f" in study {args.study_name!r} at {shown_url(args.storage)}" if storage is not None else ""
    trial_count = f"{args.trials} trial{'s' if args.trials != 1 else ''}"
    print(f"tuning {dataset.name}: {len(searched)} parameters, {trial_count}{shared} (trial 0 = the "
          f"configured values), objective = mean validation {dataset.metric} {where} (the test metric is never "
          "read)", flush=True)

    # A search over normalize_features trains on both loadings of the data, each loaded once.
    loaded = {base.normalize_features: dataset}

    def failed(trial, err: Exception) -> None:  # one line here; Optuna's own warning would add a traceback
        trial.set_user_attr("failed", f"{type(err).__name__}: {err}")
        print(f"trial {trial.number:>3}  failed: {err}", flush=True)

    def objective(trial) -> float:
        try:  # values valid one by one can still clash (a step size that does not divide T, say)
            config = base.replace(**{name: suggest(trial, name, space) for name in searched})
        except ValueError as err:
            failed(trial, err)
            raise
        if config.normalize_features not in loaded:
            loaded[config.normalize_features] = load_run_dataset(config, root, cache_dir=cache)
        per_seed, seconds = [], 0.0
        for seed in seeds:
            try:
                result = run(config.replace(seed=seed), loaded[config.normalize_features])
            except TRIAL_FAILURES as err:
                failed(trial, err)
                raise
            per_seed.append(population_mean_std([s.val_metric for s in result.splits])[0])
            seconds += result.wall_time
        mean = sum(per_seed) / len(per_seed)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("per_seed", dict(zip(map(str, seeds), per_seed)))
        print(f"trial {trial.number:>3}  val {percent(mean)}  {seconds:.1f} s", flush=True)
        return mean

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Workers of a shared study draw from their own streams unless told otherwise: with one seed for all, their
    # first random trials would repeat each other.
    sampler_seed = args.sampler_seed if args.sampler_seed is not None else base.seed if storage is None else None
    settings = {"dataset": dataset.name, "config": {k: v for k, v in base.to_dict().items() if k != "device"},
                "splits": list(splits), "seeds": list(seeds), "searched": searched,
                "space": {name: [kind, list(values)] for name, (kind, values) in space.items()}}
    study_name = args.study_name
    numbered = target.numbered
    if storage is None:  # this command's own study, beside its output; other flags make another study
        path.parent.mkdir(parents=True, exist_ok=True)
        resume = "rerun this command"
        if numbered:  # a default name: claim it now, with its study file, for the config written at the end
            path, numbered = _claim_study_name(path), False
            # The same command would claim the next free name, and with it a new study.
            resume = f"rerun this command with --out {shlex.quote(str(path))}"
        study_file = path.with_suffix(".optuna.sqlite3")
        storage = open_storage(f"sqlite:///{study_file}")
        digest = hashlib.sha256(json.dumps([settings, sampler_seed], sort_keys=True).encode()).hexdigest()[:12]
        study_name = f"{path.stem}-{digest}"
        print(f"trials kept in {study_file} (study {study_name}): {resume} to continue if it stops", flush=True)
        restart = f"delete {study_file} to start the search afresh, or give another --out"
    else:
        restart = "use another --study-name"
    _check_out_is_this_search(path, study_name)

    def waiting(seconds: float) -> None:
        print(f"study {study_name!r} exists but is not set up yet: waiting up to {seconds:.0f} s for the worker "
              "that created it", flush=True)

    queue = open_queue(storage=storage, study_name=study_name, sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                       settings=settings, first={name: getattr(base, name) for name in searched}, trials=args.trials,
                       extend=args.storage is None,  # a shared study's other workers may be extending it too
                       wait_s=JOIN_WAIT_S, on_wait=waiting, restart=restart)
    study = queue.study
    if queue.extended_from is not None:
        print(f"the study had a budget of {queue.extended_from} trials: {args.trials - queue.extended_from} more "
              f"queued", flush=True)
    trials = study.trials  # one read of the storage
    started_before = sum(t.state != optuna.trial.TrialState.WAITING for t in trials)
    if sampler_seed is not None and started_before:
        # TPE's first trials are random draws that do not read the history: with the seed it started with, a
        # continued search would draw the trials it already ran again.
        study.sampler = optuna.samplers.TPESampler(seed=(sampler_seed + started_before) % 2**32)
    # A trial that another worker found stale has failed, but it runs again: it has not finished.
    again = requeued_trials(trials)
    finished = [t for t in trials if t.state.is_finished() and t.number not in again]
    if finished:
        rest = "running the others" if len(finished) < args.trials else "nothing left to run"
        print(f"{len(finished)} of {args.trials} trials had finished (found in the study): {rest}", flush=True)
    interrupted = False
    try:
        queue.run(objective, catch=TRIAL_FAILURES, timeout=args.timeout)
    except KeyboardInterrupt:  # keep what the finished trials found
        interrupted = True
    state = optuna.trial.TrialState
    replaced = replaced_trials(study.trials)  # a killed worker's trials, run again: not in the budget
    # The rest of the queue never ran.
    started = [t for t in study.trials if t.state != state.WAITING and t.number not in replaced]
    completed = [t for t in started if t.state == state.COMPLETE]
    if not completed:
        if interrupted:
            raise KeyboardInterrupt
        if any(t.state == state.RUNNING for t in started):
            where = ("in other workers; the worker that finishes last writes the best config" if args.storage
                     else "in a worker that stopped without finishing them; rerun to continue once they go stale")
            print(f"no trial of study {study_name!r} has completed yet, and the others are running {where}",
                  flush=True)
            return 0
        first = next((t.user_attrs["failed"] for t in started if "failed" in t.user_attrs), None)
        print(f"{PROG} tune: every trial failed{f' (first: {first})' if first else ''}", file=sys.stderr)
        return 1
    if interrupted:
        print(f"interrupted after {len(completed)} completed trial(s); writing the best so far", file=sys.stderr)
    best = study.best_trial
    # Trial 0, or the trial that ran it again after its worker was killed.
    configured = next((t for t in started if t.system_attrs.get("failed_trial", t.number) == 0), study.trials[0])
    baseline = configured.value
    shown_baseline = (percent(baseline) if baseline is not None
                      else "failed" if configured.state == state.FAIL else "not finished")
    best_config = RunConfig.from_dict(best.user_attrs["config"])
    stopped = f" (interrupted; {args.trials} were asked for)" if interrupted else ""
    command = shlex.join([PROG, *_without_password(argv)])  # kept in files that get committed
    header = (
        f"Tuned by `{command}`\n"
        f"on {_dt.datetime.now().isoformat(timespec='seconds')} with {torch.get_num_threads()} torch thread(s) (a "
        f"seed repeats a run only at the same count): {len(completed)} of {len(started)} trials "
        f"completed{shared}{stopped}.\nSelection: mean validation {dataset.metric} "
        f"{where} = {percent(best.value)} (trial {best.number}; the configured values, trial 0: {shown_baseline}); "
        "the test metric was not used."
    )
    if inherited:
        header += f"\nStarted from `{args.config}`, whose header reads:\n" + "\n".join(f"  {line}" for line in inherited)
    keys = [k for k in RunConfig.field_names() if k not in ("splits", "device")]
    path = atomic_write_text(path, config_to_toml(best_config, header=header, keys=keys), numbered=numbered)
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               "per_seed": t.user_attrs.get("per_seed"), "failed": t.user_attrs.get("failed")} for t in started]
    save_record({"command": command, "study": study_name, "selection": f"mean validation {dataset.metric}",
                 "splits": list(splits), "seeds": list(seeds), "best_trial": best.number, "best_value": best.value,
                 "configured_value": baseline,
                 "space": settings["space"],
                 "base_config": base.to_dict(), "trials": trials, **environment()}, path.with_suffix(".json"))
    print(f"best validation {dataset.metric} {percent(best.value)} (trial {best.number}); config {path}")
    return 130 if interrupted else 0  # Ctrl-C's status, as every command: a script sees that the search stopped early


def _without_password(argv: list[str]) -> list[str]:
    """``argv`` with the password of its ``--storage`` URL hidden, as every message shows the URL."""
    from ..training.trial_queue import shown_url

    hidden = []
    for i, arg in enumerate(argv):
        if arg.startswith("--storage="):
            arg = "--storage=" + shown_url(arg[len("--storage="):])
        elif i > 0 and argv[i - 1] == "--storage":
            arg = shown_url(arg)
        hidden.append(arg)
    return hidden


def _check_out_is_this_search(path: Path, study_name: str) -> None:
    """Refuse an ``--out`` whose config another search wrote (another study: other settings, splits, seeds or
    space), which this one would replace at its end; the same search, continued or extended, writes it again."""
    record = path.with_suffix(".json")
    if not path.exists() or not record.exists():
        return
    try:
        previous = json.loads(record.read_text()).get("study")
    except (OSError, ValueError, AttributeError):
        return  # not a search's record: the config beside it is the user's to replace
    if previous is not None and previous != study_name:
        raise UsageError(f"--out {path} holds the best config of another search (study {previous!r}; this one is "
                         f"{study_name!r}: other settings, splits, seeds or search space), which this search would "
                         "replace; give another --out, or delete that config and its .json to replace it")


def _claim_study_name(path: Path) -> Path:
    """The first of ``path``, ``<stem>-1.toml``, ... that is free, claimed by creating its study file (an empty
    file is an empty SQLite database), so that searches started in the same second keep their own studies."""
    for candidate in numbered_names(path):
        if candidate.exists():
            continue
        try:
            os.close(os.open(candidate.with_suffix(".optuna.sqlite3"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"cannot start a study beside {str(path)!r}: every numbered name beside it is taken")


COMMAND = Subcommand("tune", "search hyperparameters on the validation metric (Optuna)", _arguments, _tune)
