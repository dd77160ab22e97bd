"""``continuous-gnn suite NAME``: run every model of a suite on its datasets and write the suite's page.

A suite (:mod:`continuous_gnn.benchmarks.suite`) fixes the models, datasets, seeds and the published anchors;
the packaged ones are ``grand`` (GRAND-l and GRAND-nl on the Planetoid public splits), ``family`` (the
GRAND family beside GRAFF on the Geom-GCN splits), ``heterophily`` (minesweeper, tolokers and the
filtered Chameleon and Squirrel), ``heterophily_nl`` (GRAFF-NL with per-step weights on minesweeper and the
filtered Squirrel) and ``heterophily_omega`` (GRAFF and GRAFF-NL with a full Ω). Each (model, dataset, seed)
run writes its JSON record into ``--out-dir``.

Killed and rerun with the same ``--out-dir``, the command skips every run whose record is there: records are
matched by their resolved config (seed included), not by their file names, so the page equals that of an
uninterrupted run. The page is written once, atomically, after every run has finished.

``--jobs N`` trains N splits at a time, each in its own process with ``--threads`` torch threads (default: the
cores divided among the jobs), the runs with the most work first, so that a suite with one run left still uses
every job. Each split's record goes into ``splits/`` of ``--out-dir`` as it finishes, so a killed suite also
keeps the splits it finished; once all of a run's splits are in, they form its record (whose wall time is the
run's span on the clock). Every run's result is that of a serial suite at the same thread count, since each split
trains from its own seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import shlex
import sys
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import check_output_file
from ..benchmarks.suite import Suite, available_suites, load_suite, run_config, suite_path
from ..training.config import RunConfig
from ..training.presets import presets_dir
from .common import (
    PROG,
    Subcommand,
    UsageError,
    add_data_flags,
    check_splits_and_epochs,
    choices,
    data_paths,
    output_folder,
    project_dir,
    timestamp,
)
from .downloads import check_download_flags, fetch_dataset
from .progress import EpochBars
from .reproduce_page import repo_relative, write_page
from .suite_page import RunSummary, covered_seconds, render, run_intervals

__all__ = ["COMMAND"]

#: The folder of ``--out-dir`` that holds the record of each split trained in a process of its own (``--jobs``).
_SPLITS = "splits"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help=f"a packaged suite ({', '.join(available_suites())}) or a suite .toml file")
    parser.add_argument("--models", help="comma-separated model labels to run (default: all of the suite's)")
    parser.add_argument("--datasets", help="comma-separated datasets to run (default: all of the suite's)")
    parser.add_argument("--seeds", help="comma-separated base seeds (default: the suite's)")
    parser.add_argument("--splits", help="splits, e.g. 0-9 or 0,3 (default: every split of each dataset)")
    parser.add_argument("--epochs", type=int, help="override every run's epochs (a smoke test, not the suite)")
    add_data_flags(parser)
    parser.add_argument("--out-dir", help="folder of the JSON records; rerun with the same folder to resume "
                                          "(default: runs/suite-<name>-<timestamp> in the source checkout, or in the "
                                          "current folder for an installed package)")
    parser.add_argument("--page", help="markdown file to write (default: the suite's page, from the project's folder "
                                       "for a packaged suite, else from the suite file's); 'none' to skip")
    parser.add_argument("--threads", type=int, help="torch CPU threads of each run (default: torch's choice; with "
                                                      "--jobs, the cores divided among the jobs)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="splits trained at a time, each in its own process (its record in splits/ of "
                             "--out-dir); progress bars are off when above 1 (default: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _plan(suite: Suite, args: argparse.Namespace) -> dict[tuple[str, str, int], RunConfig]:
    """The (model label, dataset, seed) runs selected by the flags, with their configs (built, so checked, before
    anything runs)."""
    labels = [m.label for m in suite.models]
    labels = labels if args.models is None else choices(args.models, "--models", labels)
    datasets = list(suite.datasets) if args.datasets is None else choices(args.datasets, "--datasets",
                                                                          list(suite.datasets))
    seeds = None
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise UsageError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    check_splits_and_epochs(args)
    plan = [(m.label, d, s) for m in suite.models if m.label in labels for d in m.datasets if d in datasets
            for s in (seeds or m.seeds or suite.seeds)]
    if not plan:
        raise UsageError("the selection names no run: no chosen model runs on a chosen dataset")
    configs = {}
    for label, dataset, seed in plan:
        try:
            configs[label, dataset, seed] = run_config(suite.model(label), dataset, seed, epochs=args.epochs,
                                                       splits=args.splits)
        except ValueError as err:  # a preset without this dataset, a bad override: say which model of which suite
            raise ValueError(f"suite {suite.name!r}, model {label!r} on {dataset!r}: {err}") from None
    return configs


@dataclass(frozen=True)
class _Task:
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
    split: int | None = None  # the one split this task trains, when the run is trained a split per process

    @property
    def head(self) -> str:
        head = _head(self.label, self.dataset, self.seed)
        return head if self.split is None else f"{head} split {self.split:<3}"

    @property
    def record_path(self) -> Path:
        name = f"{self.dataset}-{_slug(self.label)}-seed{self.seed}"
        return self.out / f"{name}.json" if self.split is None else self.out / _SPLITS / f"{name}-split{self.split}.json"

    def part(self, split: int) -> _Task:
        """This run's task for its split ``split`` alone."""
        return replace(self, config=self.config.replace(splits=(split,)), split=split)


def _head(label: str, dataset: str, seed: int) -> str:
    """The start of a run's line in the suite's output."""
    return f"{label:<14} {dataset:<18} seed {seed:<6}"


def _train(task: _Task, *, bars: bool = False) -> RunSummary:
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


def _outcome(summary: RunSummary) -> str:
    if summary.status == "unavailable":
        return f"unavailable: {summary.reason.split('. ')[0]}"
    if summary.status == "failed":
        return f"failed: {summary.reason}"
    return f"test {summary.test:6.2f}  val {summary.val:6.2f}  {summary.wall_time:6.1f} s"


def _train_serially(tasks: list[_Task], quiet: bool) -> list[RunSummary]:
    summaries = []
    for task in tasks:
        print(task.head, end=" ", flush=True)
        summaries.append(_train(task, bars=not quiet and sys.stderr.isatty()))
        print(_outcome(summaries[-1]), flush=True)
    return summaries


def _dataset_sizes(tasks: list[_Task]) -> dict[str, tuple[int, int]]:
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


def _work(tasks: list[_Task], sizes: dict[str, tuple[int, int]] | None = None) -> list[int]:
    """Each task's epochs times splits times its graph's nodes and edges: a proxy of a run's time that needs no
    training, by which :func:`_train_in_processes` orders the runs. An unavailable dataset counts 0 (its run
    fails at once)."""
    sizes = _dataset_sizes(tasks) if sizes is None else sizes
    work = []
    for task in tasks:
        size, num_splits = sizes[task.dataset]
        splits = len(task.config.splits) if task.config.splits is not None else num_splits
        work.append(task.config.epochs * splits * size)
    return work


def _train_in_processes(tasks: list[_Task], jobs: int, work: list[int],
                        on_done: Callable[[int, RunSummary], None]) -> None:
    """Train ``tasks`` in ``jobs`` worker processes, the most ``work`` first, calling ``on_done(index, summary)``
    in this process as each finishes.

    Starting the longest runs first keeps a long run from starting last while the other workers idle.
    The workers are spawned, not forked: a forked copy of a process that already ran torch's thread pools can
    deadlock. A run that raises anything but the errors :func:`_train` reports stops the suite: the runs not yet
    started are cancelled, and the finished ones keep their records for the resume.
    """
    order = sorted(range(len(tasks)), key=lambda index: -work[index])
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(_train, tasks[index]): index for index in order}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    summary = future.result()
                    print(f"{tasks[index].head} {_outcome(summary)}", flush=True)
                    on_done(index, summary)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _train_split_by_split(tasks: list[_Task], jobs: int) -> list[RunSummary]:
    """Train each task's splits in ``jobs`` worker processes, reusing the split records of an earlier command, and
    write each run's record once all of its splits are in; the summaries come back in task order."""
    from ..training import RunResult, finished_records, load_record, record_key, save_record

    sizes = _dataset_sizes(tasks)
    done = finished_records(tasks[0].out / _SPLITS)
    parts: dict[int, list[dict]] = {}  # the finished split records of each run, by task index
    waiting: dict[int, int] = {}  # the splits of each run still training
    summaries: dict[int, RunSummary] = {}
    units: list[tuple[int, _Task]] = []

    def finish(index: int) -> None:
        task = tasks[index]
        result = RunResult.from_parts(task.config, parts[index])
        record = result.to_record(suite=task.suite, model=task.label, command=task.command,
                                  data_root=str(task.root))
        path = save_record(record, task.record_path, numbered=True)
        summaries[index] = RunSummary.from_record(task.label, record, repo_relative(path))
        print(f"{task.head} {_outcome(summaries[index])}", flush=True)

    for index, task in enumerate(tasks):
        num_splits = sizes[task.dataset][1]
        if num_splits == 0:  # an unavailable dataset: the whole run fails at once, with the reason
            units.append((index, task))
            continue
        parts[index], waiting[index] = [], 0
        for split in task.config.splits if task.config.splits is not None else range(num_splits):
            part = task.part(split)
            key = record_key(part.config)
            if key in done:
                parts[index].append(load_record(done[key]))
                print(f"{part.head} done before", flush=True)
            else:
                units.append((index, part))
                waiting[index] += 1
        if waiting[index] == 0:
            finish(index)

    def on_done(unit: int, summary: RunSummary) -> None:
        index, part = units[unit]
        if summary.status != "ok" or part.split is None:
            summaries.setdefault(index, summary)  # a run with a failed split fails, with that split's reason
            return
        parts[index].append(load_record(part.record_path))
        waiting[index] -= 1
        if waiting[index] == 0 and index not in summaries:
            finish(index)

    if units:
        (tasks[0].out / _SPLITS).mkdir(parents=True, exist_ok=True)
        unit_tasks = [part for _, part in units]
        _train_in_processes(unit_tasks, min(jobs, len(units)), _work(unit_tasks, sizes), on_done)
    return [summaries[index] for index in range(len(tasks))]


def _suite(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from ..data import DownloadError
    from ..training import finished_records, load_record, record_key

    path = suite_path(args.suite)
    suite = load_suite(path)
    configs = _plan(suite, args)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be positive")
    check_download_flags(args)  # before the record folder is made
    if args.page is not None and not args.page.strip():
        raise UsageError("--page is empty; pass the markdown file to write, or 'none'")
    # A packaged suite's page is a page of the project; a user's suite file names its page from its own folder.
    packaged = path.resolve().parent == (presets_dir() / "suites").resolve()
    page = args.page or (str((project_dir() if packaged else path.parent) / suite.page) if suite.page else "none")
    if page.lower() != "none":
        check_output_file(page, "--page")  # before any run, so that a bad path cannot lose them
    out_dir = output_folder(args.out_dir or str(project_dir() / "runs" / f"suite-{suite.name}-{timestamp()}"),
                            "--out-dir")
    root, cache = data_paths(args)
    threads = args.threads
    if threads is None and args.jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if threads is not None:  # also here, so the page states the threads every run had
        torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join([PROG, *argv])
    started_iso = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    done = finished_records(out_dir)
    before = sum(record_key(config) in done for config in configs.values())
    jobs = f"; {args.jobs} jobs at a time" if args.jobs > 1 else ""
    print(f"suite {suite.name}: {len(configs)} runs, {before} already in {out_dir}; torch threads "
          f"{torch.get_num_threads()}{jobs}", flush=True)
    started = time.perf_counter()
    summaries: dict[tuple[str, str, int], RunSummary] = {}
    reused = []
    tasks = []
    for (label, dataset_name, seed), config in configs.items():
        key = record_key(config)
        if key in done:
            summary = RunSummary.from_record(label, load_record(done[key]), repo_relative(done[key]))
            summaries[label, dataset_name, seed] = summary
            reused.append(summary)
            print(f"{_head(label, dataset_name, seed)} done before ({done[key].name})", flush=True)
            continue
        tasks.append(_Task(label, dataset_name, seed, config, root, cache, out_dir, suite.name, command, threads))
    for dataset_name in dict.fromkeys(task.dataset for task in tasks):
        try:
            fetch_dataset(args, dataset_name, root)
        except DownloadError as err:  # the dataset's runs are unavailable, with this reason; the others go on
            print(f"dataset {dataset_name}: {err}", file=sys.stderr, flush=True)
            for task in [task for task in tasks if task.dataset == dataset_name]:
                summaries[task.label, task.dataset, task.seed] = RunSummary.unavailable(task.label, task.dataset,
                                                                                        task.seed, str(err))
            tasks = [task for task in tasks if task.dataset != dataset_name]
    if args.jobs > 1 and tasks:
        trained = _train_split_by_split(tasks, args.jobs)
    else:
        trained = _train_serially(tasks, args.quiet)
    summaries.update(((t.label, t.dataset, t.seed), summary) for t, summary in zip(tasks, trained))
    ordered = [summaries[key] for key in configs]
    # A resumed page states the wall time of all its runs: this command's, plus the time the earlier commands covered.
    total = time.perf_counter() - started + _reused_time(reused)
    print(f"total {total:.0f} s", flush=True)
    if not any(s.status == "ok" for s in ordered):
        print(f"{PROG} suite: error: no run succeeded (every dataset was unavailable), so no page was written",
              file=sys.stderr)
        return 1
    partial = (args.models, args.datasets, args.seeds, args.splits, args.epochs) != (None,) * 5
    write_page(page, render(suite, ordered, command=command, started=started_iso, total=total, partial=partial,
                            out_dir=repo_relative(Path(out_dir))))
    return 0


def _reused_time(reused: list[RunSummary]) -> float:
    """Seconds the runs found done took: the time during which at least one of them was training
    (:func:`~continuous_gnn.cli.suite_page.covered_seconds`), whichever commands trained them; the run time of a
    record that lacks its start."""
    dated = [r for r in reused if r.started]
    undated = sum(r.wall_time for r in reused if not r.started)
    return undated + (covered_seconds(run_intervals(dated)) if dated else 0.0)


def _slug(label: str) -> str:
    """An ASCII file-name part for a model label: a Greek letter by its name (``Ω`` → ``omega``), an accented
    letter without its accent, anything else that is no letter or digit as ``_``."""
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


COMMAND = Subcommand(
    "suite", "run a suite of models on its datasets (resumable) and write its page", _arguments, _suite,
    description="Run every model of a suite on its datasets and seeds, beside the suite's published anchors, and "
                "write its page. Rerun with the same --out-dir to resume: finished runs are skipped.",
)
