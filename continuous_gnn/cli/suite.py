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
trains from its own seed. A rerun, with any ``--jobs``, keeps those splits and trains only the others
(:mod:`~continuous_gnn.cli.suite_runs`). The workers end within a second of the suite's process, killed or not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
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
from .reproduce_page import repo_relative, write_page
from .suite_page import RunSummary, covered_seconds, render, run_intervals
from .suite_runs import SPLITS, Task, head, merge, split_records, train_serially, train_split_by_split

__all__ = ["COMMAND"]

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
    found = split_records(out_dir / SPLITS)
    kept = {run: done[record_key(config)] for run, config in configs.items() if record_key(config) in done}
    tasks = [Task(label, dataset_name, seed, config, root, cache, out_dir, suite.name, command, threads)
             for (label, dataset_name, seed), config in configs.items() if (label, dataset_name, seed) not in kept]
    progress = [task.finished_splits(found) for task in tasks]
    # A run whose every split has a record (a --jobs suite killed before it merged them) is as done as one with its
    # own record; of the others, the splits done are said too, since they will not train again.
    merged = sum(not missing for finished, missing in progress if finished)
    partly = [len(finished) for finished, missing in progress if missing]
    of_others = f", {sum(partly)} splits of {len(partly)} more in {SPLITS}/" if partly else ""
    jobs = f"; {args.jobs} jobs at a time" if args.jobs > 1 else ""
    print(f"suite {suite.name}: {len(configs)} runs, {len(kept) + merged} already in {out_dir}{of_others}; "
          f"torch threads {torch.get_num_threads()}{jobs}", flush=True)
    started = time.perf_counter()
    summaries: dict[tuple[str, str, int], RunSummary] = {}
    reused = []  # the runs, and the splits of runs, that earlier commands trained, for their time
    for (label, dataset_name, seed), record in kept.items():
        summary = RunSummary.from_record(label, load_record(record), repo_relative(record))
        summaries[label, dataset_name, seed] = summary
        reused.append(summary)
        print(f"{head(label, dataset_name, seed)} done before ({record.name})", flush=True)
    to_train = []
    for task, (finished, missing) in zip(tasks, progress):
        parts = [load_record(record) for record in finished.values()]
        reused += [RunSummary.from_record(task.label, part, repo_relative(record))
                   for part, record in zip(parts, finished.values())]
        if finished and not missing:
            summaries[task.label, task.dataset, task.seed] = merge(task, parts)
            print(f"{task.head} done before (its {len(parts)} split records in {SPLITS}/)", flush=True)
        else:
            to_train.append(task)
    tasks = to_train
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
        trained = train_split_by_split(tasks, found, args.jobs)
    else:
        trained = train_serially(tasks, found, args.quiet)
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


COMMAND = Subcommand(
    "suite", "run a suite of models on its datasets (resumable) and write its page", _arguments, _suite,
    description="Run every model of a suite on its datasets and seeds, beside the suite's published anchors, and "
                "write its page. Rerun with the same --out-dir to resume: finished runs are skipped.",
)
