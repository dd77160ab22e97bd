"""Training the runs of ``continuous-gnn suite``: in this process, or split by split in worker processes
(``--jobs``), resuming from the records of the splits an earlier command finished either way."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..training.config import RunConfig
from .common import project_dir, slug
from .progress import EpochBars
from .reproduce_page import repo_relative
from .suite_page import RunSummary

__all__ = ["SPLITS", "Task", "head", "merge", "outcome", "slug", "split_records", "train_serially",
           "train_split_by_split", "work"]

#: The folder of ``--out-dir`` that holds the record of each split trained as a run of its own.
SPLITS = "splits"

#: Seconds between a worker's checks that the suite's process still lives.
PARENT_POLL = 1.0


@dataclass(frozen=True)
class Task:
    """One (model, dataset, seed) run still to train, with everything a worker process needs."""

    label: str
    dataset: str
    seed: int
    config: RunConfig
    root: Path
    cache: Path | None
    out: Path
    suite: str
    command: str
    threads: int | None = None
    split: int | None = None  # the one split this task trains, when the run is trained a split at a time

    @property
    def head(self) -> str:
        line = head(self.label, self.dataset, self.seed)
        return line if self.split is None else f"{line} split {self.split:<3}"

    @property
    def record_path(self) -> Path:
        name = f"{self.dataset}-{slug(self.label)}-seed{self.seed}"
        return self.out / f"{name}.json" if self.split is None else self.out / SPLITS / f"{name}-split{self.split}.json"

    def part(self, split: int) -> Task:
        """This run's task for its split ``split`` alone."""
        return replace(self, config=self.config.replace(splits=(split,)), split=split)

    def splits(self, num_splits: int) -> list[int]:
        """The splits this run trains of a dataset with ``num_splits`` splits."""
        return list(self.config.splits) if self.config.splits is not None else list(range(num_splits))

    def finished_splits(self, found: dict[str, tuple[int, dict[int, Path]]]) -> tuple[dict[int, Path], list[int]]:
        """This run's splits with a record in ``found`` (:func:`split_records`), and its other splits; both empty
        when none of its splits has one (its split count is then known only once its dataset loads)."""
        from ..training import record_key

        num_splits, paths = found.get(record_key(self.config.replace(splits=None)), (0, {}))
        done = {split: paths[split] for split in self.splits(num_splits) if split in paths}
        return (done, [split for split in self.splits(num_splits) if split not in done]) if done else ({}, [])


def head(label: str, dataset: str, seed: int) -> str:
    """The start of a run's line in the suite's output."""
    return f"{label:<14} {dataset:<18} seed {seed:<6}"


def split_records(folder: Path) -> dict[str, tuple[int, dict[int, Path]]]:
    """The finished records in ``folder`` of runs of one split (:data:`SPLITS`), by
    :func:`~continuous_gnn.training.record_key` of their run over every split: the split count of the dataset they
    state, and each split's record.

    Keyed by the run over every split, a split's record serves each run of its config whose splits include it,
    whatever ``--splits`` or ``--jobs`` the command that trained it had.
    """
    from ..training import finished_records, record_key, run_record_key

    facts: dict[str, tuple[str, int, int]] = {}

    def key_of(record: dict[str, Any]) -> str:
        key = run_record_key(record)
        config = RunConfig.from_dict(record["config"])
        if config.splits is None or len(config.splits) != 1:
            raise ValueError("not the record of one split")
        facts[key] = (record_key(config.replace(splits=None)), config.splits[0], int(record["dataset"]["num_splits"]))
        return key

    found: dict[str, tuple[int, dict[int, Path]]] = {}
    for key, path in finished_records(folder, key_of).items():
        run, split, num_splits = facts[key]
        found.setdefault(run, (num_splits, {}))[1][split] = path
    return found


def train(task: Task, *, bars: bool = False) -> RunSummary:
    """Train one run and save its record; an unavailable dataset or a failed solve is a summary, not an error."""
    import torch

    from ..data import DatasetUnavailableError
    from ..errors import IntegrationError, TrainingDivergedError
    from ..training import load_run_dataset, run, save_record

    if task.threads is not None:
        torch.set_num_threads(task.threads)
    try:
        dataset = load_run_dataset(task.config, task.root, cache_dir=task.cache)
    except DatasetUnavailableError as err:
        return RunSummary.unavailable(task.label, task.dataset, task.seed, str(err))
    try:
        if bars:
            with EpochBars(dataset.name) as progress:
                result = run(task.config, dataset, progress=progress)
        else:
            result = run(task.config, dataset)
    except (IntegrationError, TrainingDivergedError) as err:  # reported in the page; the other runs go on
        return RunSummary.failed(task.label, task.dataset, task.seed, f"{type(err).__name__}: {err}")
    record = result.to_record(suite=task.suite, model=task.label, command=task.command, data_root=str(task.root))
    # Numbered beside a record of another config with this name (a rerun with other flags), which resume still finds.
    path = save_record(record, task.record_path, numbered=True)
    return RunSummary.from_record(task.label, record, repo_relative(path))


def _saved(summary: RunSummary) -> dict[str, Any]:
    """The record a successful :func:`train` wrote: at its summary's path, which is numbered where a record of
    other flags has the task's file name, so not always :attr:`Task.record_path`."""
    from ..training import load_record

    return load_record(project_dir() / summary.record)  # a path outside the project is absolute, and stays so


def merge(task: Task, parts: list[dict[str, Any]]) -> RunSummary:
    """Save the record of ``task``'s run formed by the records of its splits (``parts``), and return its summary."""
    from ..training import RunResult, save_record

    record = RunResult.from_parts(task.config, parts).to_record(suite=task.suite, model=task.label,
                                                                command=task.command, data_root=str(task.root))
    path = save_record(record, task.record_path, numbered=True)
    return RunSummary.from_record(task.label, record, repo_relative(path))


def outcome(summary: RunSummary) -> str:
    """A run's result in the suite's output: its test and validation metric and time, or why it has none."""
    if summary.status == "unavailable":
        return f"unavailable: {summary.reason.split('. ')[0]}"
    if summary.status == "failed":
        return f"failed: {summary.reason}"
    return f"test {summary.test:6.2f}  val {summary.val:6.2f}  {summary.wall_time:6.1f} s"


def train_serially(tasks: list[Task], found: dict[str, tuple[int, dict[int, Path]]],
                   quiet: bool) -> list[RunSummary]:
    """Train each task in this process, the summaries in task order.

    A run none of whose splits has a record in ``found`` (:func:`split_records`) trains as one run; one with
    some (a ``--jobs`` suite was killed) trains only its other splits, each as a run of its own as ``--jobs``
    trains them, and then forms its record from all of them, so that a resumed suite trains nothing twice
    whatever its ``--jobs``.
    """
    from ..training import load_record

    bars = not quiet and sys.stderr.isatty()
    summaries = []
    for task in tasks:
        done, missing = task.finished_splits(found)
        if not done:
            print(task.head, end=" ", flush=True)
            summaries.append(train(task, bars=bars))
            print(outcome(summaries[-1]), flush=True)
            continue
        parts = [load_record(path) for path in done.values()]
        print("\n".join(f"{task.part(split).head} done before" for split in done), flush=True)
        failed = None
        for split in missing:
            part = task.part(split)
            print(part.head, end=" ", flush=True)
            summary = train(part, bars=bars)
            print(outcome(summary), flush=True)
            if summary.status != "ok":  # the run fails with its split's reason, as a run trained whole would
                failed = summary
                break
            parts.append(_saved(summary))
        summaries.append(failed or merge(task, parts))
        print(f"{task.head} {outcome(summaries[-1])}", flush=True)
    return summaries


def _dataset_sizes(tasks: list[Task]) -> dict[str, tuple[int, int]]:
    """Each task dataset's nodes plus edges and its split count; (0, 0) for one that is unavailable."""
    from ..data import DatasetUnavailableError
    from ..training import load_run_dataset

    sizes: dict[str, tuple[int, int]] = {}
    for task in tasks:
        if task.dataset in sizes:
            continue
        try:
            dataset = load_run_dataset(task.config, task.root, cache_dir=task.cache)
        except DatasetUnavailableError:
            sizes[task.dataset] = (0, 0)
            continue
        sizes[task.dataset] = (dataset.data.num_nodes + dataset.data.edge_index.size(1), dataset.num_splits)
    return sizes


def work(tasks: list[Task], sizes: dict[str, tuple[int, int]] | None = None) -> list[int]:
    """Each task's epochs times splits times its graph's nodes and edges: a proxy of a run's time that needs no
    training, by which ``_train_in_processes`` orders the runs. An unavailable dataset counts 0 (its run
    fails at once)."""
    sizes = _dataset_sizes(tasks) if sizes is None else sizes
    return [task.config.epochs * len(task.splits(sizes[task.dataset][1])) * sizes[task.dataset][0] for task in tasks]


def _end_with_parent(parent: int) -> None:
    """Worker initializer: end this worker once the suite's process ``parent`` has ended.

    A suite killed by SIGKILL (an OOM kill, a scheduler's time limit) cannot stop its workers, which would go on
    training and writing records into the output folder, where a rerun may already be resuming, and then wait for
    work forever. An orphan gets another parent (init or a subreaper), so a changed parent id tells. Polled, as
    on any POSIX system: ``prctl(PR_SET_PDEATHSIG)`` is Linux's alone, and fires when the parent *thread* that
    started the worker ends, which for a pool may be a thread of its own.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _train_in_processes(tasks: list[Task], jobs: int, work: list[int],
                        on_done: Callable[[int, RunSummary], None]) -> None:
    """Train ``tasks`` in ``jobs`` worker processes, the most ``work`` first, calling ``on_done(index, summary)``
    in this process as each finishes.

    Starting the longest runs first keeps a long run from starting last while the other workers idle.
    The workers are spawned, not forked: a forked copy of a process that already ran torch's thread pools can
    deadlock. A run that raises anything but the errors :func:`train` reports stops the suite: the runs not yet
    started are cancelled, and the finished ones keep their records for the resume.
    """
    order = sorted(range(len(tasks)), key=lambda index: -work[index])
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_end_with_parent, initargs=(os.getpid(),)) as pool:
        pending = {pool.submit(train, tasks[index]): index for index in order}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    summary = future.result()
                    print(f"{tasks[index].head} {outcome(summary)}", flush=True)
                    on_done(index, summary)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def train_split_by_split(tasks: list[Task], found: dict[str, tuple[int, dict[int, Path]]],
                         jobs: int) -> list[RunSummary]:
    """Train each task's splits in ``jobs`` worker processes, but those with a record in ``found``
    (:func:`split_records`), and write each run's record once all of its splits are in; the summaries come back
    in task order."""
    from ..training import load_record

    sizes = _dataset_sizes(tasks)
    parts: dict[int, list[dict[str, Any]]] = {}  # the finished split records of each run, by task index
    waiting: dict[int, int] = {}  # the splits of each run still training
    summaries: dict[int, RunSummary] = {}
    units: list[tuple[int, Task]] = []

    def finish(index: int) -> None:
        summaries[index] = merge(tasks[index], parts[index])
        print(f"{tasks[index].head} {outcome(summaries[index])}", flush=True)

    for index, task in enumerate(tasks):
        num_splits = sizes[task.dataset][1]
        if num_splits == 0:  # an unavailable dataset: the whole run fails at once, with the reason
            units.append((index, task))
            continue
        done, _ = task.finished_splits(found)
        parts[index], waiting[index] = [], 0
        for split in task.splits(num_splits):
            if split in done:
                parts[index].append(load_record(done[split]))
                print(f"{task.part(split).head} done before", flush=True)
            else:
                units.append((index, task.part(split)))
                waiting[index] += 1
        if waiting[index] == 0:
            finish(index)

    def on_done(unit: int, summary: RunSummary) -> None:
        index, part = units[unit]
        if summary.status != "ok" or part.split is None:
            summaries.setdefault(index, summary)  # a run with a failed split fails, with that split's reason
            return
        parts[index].append(_saved(summary))
        waiting[index] -= 1
        if waiting[index] == 0 and index not in summaries:
            finish(index)

    if units:
        (tasks[0].out / SPLITS).mkdir(parents=True, exist_ok=True)
        unit_tasks = [part for _, part in units]
        _train_in_processes(unit_tasks, min(jobs, len(units)), work(unit_tasks, sizes), on_done)
    return [summaries[index] for index in range(len(tasks))]
