"""``continuous-gnn train``: one configuration on the splits of one dataset; prints the metrics, writes a record.

With ``--distributed`` it is one rank of a data-parallel run started by torchrun
(:mod:`continuous_gnn.training.distributed`): every rank checks the configuration and the data before the
process group starts, trains its own batches, and only rank 0 prints and writes the record.

With ``--checkpoint-dir`` the run writes checkpoints there, and ``--resume`` continues from the newest one
(:mod:`continuous_gnn.training.resume`); a warning of the resume is one line on stderr. Such a run stops
cleanly on Ctrl-C or SIGTERM (:mod:`continuous_gnn.training.stopping`): it finishes the epoch in progress,
writes a checkpoint, prints the command that resumes it and exits with status 128 + the signal's number (130,
143); a second signal, a few seconds after the first, stops it at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    PROG,
    Subcommand,
    UsageError,
    at_least,
    check_creatable,
    check_distinct_outputs,
    data_paths,
    number,
    output_folder,
    output_path,
    percent,
    show_progress,
    slug,
    timestamp,
)
from .config_flags import add_config_flags, add_source_flags, dataset_name, resolve_cli_config
from .downloads import fetch_dataset
from .progress import EpochBars

if TYPE_CHECKING:
    from ..training.resume import Checkpointing

__all__ = ["COMMAND"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)
    add_source_flags(parser)
    parser.add_argument("--out", metavar="PATH",
                        help="JSON record path, or a folder for the default name "
                             "(default: runs/<dataset>-<preset or energy>-<timestamp>.json; a default name that "
                             "exists when the run ends gets a -1, -2, ... suffix, a file you name is replaced)")
    parser.add_argument("--save-model", metavar="PATH",
                        help="save each split's model of its best validation epoch (the epoch its test metric is "
                             "read at) with its config, for study --checkpoint or load_checkpoint: to PATH with one "
                             "split, with several to one file each, named with -split<N> before the suffix (runs/model.pt: "
                             "runs/model-split0.pt, ...)")
    parser.add_argument("--threads", type=at_least(1, int), default=None, metavar="N",
                        help="torch CPU threads (default: torch's choice, every core); the record notes the count, "
                             "and a seed repeats a run only at the same count")
    parser.add_argument("--distributed", action="store_true",
                        help="be one process of a data-parallel run started by torchrun: each process trains its "
                             "own batches (needs --batching) and DDP averages the gradients; only rank 0 prints and "
                             "writes the record. Launch: torchrun --nproc-per-node 2 -m continuous_gnn train "
                             "--distributed --batching random --num-parts 4 ...")
    group = parser.add_argument_group("checkpoints (see docs/training.md)")
    group.add_argument("--checkpoint-dir", metavar="DIR",
                       help="write checkpoints of the whole training state into DIR (created if needed), at the end "
                            "of each split and every --checkpoint-every epochs; Ctrl-C or SIGTERM then stops the run "
                            "at the end of the epoch with a checkpoint of it (a second signal, seconds later, stops it at once)")
    group.add_argument("--checkpoint-every", metavar="N",
                       help="also write one every N epochs of a split (default: only at the end of each split)")
    group.add_argument("--checkpoint-keep", metavar="K", help="keep the newest K checkpoints (default: 2)")
    group.add_argument("--resume", action="store_true",
                       help="continue the run from the newest readable checkpoint in --checkpoint-dir; the record "
                            "equals that of an uninterrupted run (same torch build, device and thread count)")


#: What torchrun sets in each process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def torchrun_world():
    """This process's :class:`~continuous_gnn.training.distributed.World` from torchrun's environment."""
    from ..training.distributed import World

    missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name)]
    if missing:
        raise UsageError(f"--distributed runs under torchrun, which sets {', '.join(missing)}; launch it as "
                         f"torchrun --nproc-per-node 2 -m continuous_gnn train --distributed ... (on several "
                         f"machines add --nnodes and --rdzv-endpoint, see docs/training.md)")
    port = os.environ["MASTER_PORT"]
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise UsageError(f"--distributed: MASTER_PORT={port!r} is not a port number (1 to 65535); give torchrun "
                         "--master-port N, or --rdzv-endpoint HOST:N")
    try:
        return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    except ValueError as err:
        raise UsageError(f"--distributed: torchrun's RANK, WORLD_SIZE and LOCAL_RANK are not a valid rank: {err}") from None


def refuse_torchrun_without_distributed() -> None:
    """Refuse a run that torchrun started in several processes without ``--distributed``: each would train the
    whole run alone and write its own record."""
    size = os.environ.get("WORLD_SIZE", "")
    if size.isdigit() and int(size) > 1:
        raise UsageError(f"this process is one of {size} that torchrun started (WORLD_SIZE={size}), but --distributed "
                         "is not given, so each would train the whole run alone; add --distributed to train together, "
                         "or run the command without torchrun")


def checkpointing(args: argparse.Namespace) -> Checkpointing | None:
    """The :class:`~continuous_gnn.training.resume.Checkpointing` of the checkpoint flags (``None`` without
    ``--checkpoint-dir``), its folder checked."""
    from ..training.resume import Checkpointing

    if args.checkpoint_dir is None:
        given = [flag for flag, value in (("--checkpoint-every", args.checkpoint_every),
                                          ("--checkpoint-keep", args.checkpoint_keep), ("--resume", args.resume))
                 if value not in (None, False)]
        if given:
            raise UsageError(f"{given[0]} needs --checkpoint-dir DIR, the folder the checkpoints are written to "
                             f"and resumed from")
        return None
    settings = Checkpointing(output_folder(args.checkpoint_dir, "--checkpoint-dir"),
                             every=number(args.checkpoint_every, "--checkpoint-every", int, None, minimum=1),
                             keep=number(args.checkpoint_keep, "--checkpoint-keep", int, 2, minimum=1),
                             resume=args.resume)
    settings.check_folder()
    return settings


@contextlib.contextmanager
def _resume_warnings(command: str, main: bool) -> Iterator[None]:
    """Show the warnings of a resume as one line on stderr, like the errors (on rank 0 only: the ranks read the
    same checkpoint)."""
    from ..training.resume import ResumeWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, ResumeWarning):
            shown(message, category, filename, lineno, file, line)
        elif main:
            print(f"{PROG} {command}: warning: {message}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", ResumeWarning)
        warnings.showwarning = show
        yield


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from ..data import NUM_SPLITS
    from ..errors import DistributedError
    from ..training import check_before_loading, check_run, load_run_dataset, run, save_record
    from ..training.distributed import backend_for, join, leave, process_group_failed
    from ..training.stopping import RunStopped, StopRequest, stop_on_signals

    resolved = resolve_cli_config(args)
    config = resolved.config
    checkpoints = checkpointing(args)
    if not args.distributed:
        refuse_torchrun_without_distributed()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    world = torchrun_world() if args.distributed else None
    main = world is None or world.is_main
    label = slug(resolved.preset or config.energy)  # an energy's import path has a colon, which Windows refuses
    target = output_path(args.out, f"{dataset_name(config.dataset)}-{label}-{timestamp()}.json") if main else None
    if args.save_model is not None and main and (
            not args.save_model.strip() or Path(args.save_model).expanduser().is_dir()):
        raise UsageError(f"--save-model {args.save_model!r} is not a file path; pass one such as runs/model.pt")
    known_splits = NUM_SPLITS.get(dataset_name(config.dataset))
    if main and (config.splits is not None or known_splits is not None):
        _check_outputs(args, resolved, target, list(config.splits or range(known_splits)))
    check_before_loading(config, known_splits)
    root, cache = data_paths(args)
    fetch_dataset(args, config.dataset, root)
    dataset = load_run_dataset(config, root, cache_dir=cache)
    metric = dataset.metric
    if world is not None:
        check_run(config, dataset, world=world)  # on every rank, before the process group waits for the others
    say = print if main else _silent
    say(f"dataset {dataset.name}: {dataset.num_nodes} nodes, {dataset.num_classes} classes; "
        f"{'preset ' + resolved.preset if resolved.preset else 'energy ' + config.energy}; metric {metric}"
        + (f"; {world.size} processes" if world is not None else ""), flush=True)

    splits = list(config.splits) if config.splits is not None else list(range(dataset.num_splits))
    if main and config.splits is None and known_splits is None:
        _check_outputs(args, resolved, target, splits)
    saved_models: dict[str, str] = {}

    def on_split(s) -> None:
        print(f"split {s.split:>2}  test {percent(s.test_metric)}  val {percent(s.val_metric)}  "
              f"best epoch {s.best_epoch:>3}/{s.epochs_run}  {s.wall_time:.1f} s", flush=True)
        saved = None if args.save_model is None else _save_model(args.save_model, s, splits, config, dataset, argv)
        if saved is not None:
            saved_models[str(s.split)] = saved

    rank = world
    stop = None if checkpoints is None else StopRequest()  # without checkpoints a signal stops at once, as always
    try:
        if rank is not None:  # waits for every rank: one that never comes ends it after the timeout
            world = join(config.device, rank.local_rank)
        with _resume_warnings("train", main), contextlib.ExitStack() as stack:
            bars = stack.enter_context(EpochBars(dataset.name)) if main and show_progress(args) else None
            if stop is not None:
                stack.enter_context(stop_on_signals(stop, on_signal=_stopping if main else None))
            result = run(config, dataset, progress=bars, on_split=on_split if main else None, world=world,
                         checkpointing=checkpoints, stop=stop, keep=None if args.save_model is None else "best")
    except RunStopped as stopped:
        if main:
            print(_stopped(stopped, argv, distributed=rank is not None), file=sys.stderr, flush=True)
        return 128 + signal.Signals[stopped.reason] if stopped.reason in signal.Signals.__members__ else 1
    except RuntimeError as err:
        if rank is None or not process_group_failed(err):
            raise
        first = " ".join(str(err).split())[:200]
        raise DistributedError(f"rank {rank.rank} of {rank.size}: the process group failed, most likely because "
                               f"another rank stopped or never started ({first}); rerun the whole command, with "
                               "--resume and the same --checkpoint-dir to keep the epochs done") from err
    finally:
        if world is not None:
            leave()
    if not main:
        return 0
    extra = {} if world is None else {"distributed": {"world_size": world.size, "backend": backend_for(config.device)}}
    if saved_models:
        extra["saved_models"] = saved_models
    record = result.to_record(
        preset=resolved.preset,
        preset_file=resolved.preset_file,
        config_file=resolved.config_file,
        data_root=str(root),
        command=shlex.join([PROG, *argv]),
        **extra,
    )
    path = save_record(record, target.path, numbered=target.numbered)
    agg = record["aggregate"]
    epochs = sum(s.epochs_run for s in result.splits)
    print(f"test {metric} {percent(agg['test_mean'])} ± {percent(agg['test_std'])} "
          f"(mean ± population std over {agg['num_splits']} split{'s' if agg['num_splits'] != 1 else ''})")
    if "eval_time_mean" in agg:
        print(f"integration time chosen on validation at the best epoch {agg['eval_time_mean']:.4g} ± "
              f"{agg['eval_time_std']:.4g} (trained to T = {config.time:g})")
    print(f"time {result.wall_time:.1f} s ({1000 * result.wall_time / max(epochs, 1):.1f} ms per epoch)")
    print(f"record {path}")
    return 0


def _check_outputs(args: argparse.Namespace, resolved, target, splits: list[int]) -> None:
    """Refuse, before any training, outputs that would overwrite an input or each other (the record and every
    split's ``--save-model`` file, against the ``--config`` and preset files read), or that cannot be created."""
    models = [] if args.save_model is None else [_model_path(args.save_model, s, splits) for s in splits]
    check_distinct_outputs(("--config", resolved.config_file), ("--preset", resolved.preset_file),
                           ("--out", str(target.path)), *(("--save-model", str(path)) for path in models))
    for path in models:
        if path.is_dir():
            raise UsageError(f"--save-model {args.save_model!r} would write {str(path)!r}, which is a folder; "
                             "pass another file path")
        check_creatable(path, "--save-model")


def _model_path(save_model: str, split: int, splits: list[int]) -> Path:
    """``--save-model``'s file for ``split``: the path itself with one split, ``<stem>-split<N><suffix>`` with more."""
    path = Path(save_model).expanduser()
    return path if len(splits) == 1 else path.with_name(f"{path.stem}-split{split}{path.suffix or '.pt'}")


def _save_model(save_model: str, result, splits: list[int], config, dataset, argv: list[str]) -> str | None:
    """Save a finished split's best-validation model and return its path. A split that a resumed run finished in
    an earlier process has no model here: that process saved it, and its path is returned if the file is there."""
    from ..training import save_checkpoint

    path = _model_path(save_model, result.split, splits)
    if result.kept is None:
        return str(path) if _saved_earlier(path, result, config) else None
    metadata = {"data": {"dataset": dataset.name}, "split": result.split, "seed": result.seed,
                "epoch": result.kept.epoch, "metrics": {"train": result.kept.train, "val": result.kept.val,
                                                        "test": result.kept.test},
                "command": shlex.join([PROG, *argv])}
    save_checkpoint(path, result.kept.model, config, num_features=dataset.num_features,
                    num_classes=dataset.num_classes, metadata=metadata)
    print(f"split {result.split:>2}  model of epoch {result.kept.epoch} saved to {path}", flush=True)
    return str(path)


def _saved_earlier(path: Path, result, config) -> bool:
    """Whether ``path`` holds the model that an earlier process of this run saved for a split it finished (the
    same config, split, seed and best epoch); a warning on stderr says why not, so that the record names no other
    run's file (an earlier process may have saved to another path)."""
    from ..training.checkpoint import CheckpointError, load_checkpoint

    reason = "there is no file there"
    if path.is_file():
        try:
            saved = load_checkpoint(path)
        except (CheckpointError, OSError) as err:
            reason = f"it cannot be read: {err}"
        else:
            facts = saved.metadata
            if saved.config.to_dict() == config.to_dict() and (facts.get("split"), facts.get("seed"), facts.get(
                    "epoch")) == (result.split, result.seed, result.best_epoch):
                return True
            reason = "it holds the model of another run or split"
    print(f"{PROG} train: warning: split {result.split} was finished by an earlier process of this run, and {path} "
          f"is not the model it saved ({reason}); the record lists no model for that split", file=sys.stderr,
          flush=True)
    return False


def _stopping(name: str) -> None:
    """Say at once that a signal was heard. From a signal handler: a raw write, since ``print`` may be in the
    middle of writing to the same stream (a progress bar) and would then raise."""
    os.write(sys.stderr.fileno(), f"\n{PROG} train: {name}: stopping at the end of this epoch to write a checkpoint "
                                  f"(send it again, a few seconds later, to stop at once without one)\n".encode())


def _stopped(stopped, argv: list[str], distributed: bool) -> str:
    """What a stopped run says: where it stopped, its checkpoint, and the command that continues it."""
    resume = shlex.join([PROG, *argv] + ([] if "--resume" in argv else ["--resume"]))
    again = ("rerun the torchrun command with --resume added" if distributed else f"continue with: {resume}")
    return (f"{PROG} train: stopped ({stopped.reason}) after epoch {stopped.epochs_done} of split {stopped.split}; "
            f"checkpoint {stopped.checkpoint}; {again}")


def _silent(*args, **kwargs) -> None:
    """``print`` on ranks other than 0."""


COMMAND = Subcommand("train", "train one configuration on the splits of a dataset", _arguments, _train)
