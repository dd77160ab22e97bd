"""``continuous-gnn suite NAME``: run every model of a suite on its datasets and write the suite's page.

A suite (:mod:`continuous_gnn.benchmarks.suite`) fixes the models, datasets, seeds and the published anchors;
the packaged ones are ``grand`` (GRAND-l and GRAND-nl on the Planetoid public splits), ``family`` (the
GRAND family beside GRAFF on the Geom-GCN splits), ``heterophily`` (minesweeper, tolokers and the
filtered Chameleon and Squirrel) and ``heterophily_nl`` (GRAFF-NL with per-step weights on minesweeper). Each
(model, dataset, seed) run writes its JSON record into ``--out-dir``.

Killed and rerun with the same ``--out-dir``, the command skips every run whose record is there: records are
matched by their resolved config (seed included), not by their file names, so the page equals that of an
uninterrupted run. The page is written once, atomically, after every run has finished.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path

from ..benchmarks.suite import Suite, available_suites, load_suite, run_config, suite_path
from ..training.config import RunConfig
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
from .downloads import fetch_dataset
from .progress import EpochBars
from .reproduce_page import repo_relative, write_page
from .suite_page import RunSummary, render

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
                                          "(default: runs/suite-<name>-<timestamp>)")
    parser.add_argument("--page", help="markdown file to write (default: the suite's page); 'none' to skip")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
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
    return {(label, dataset, seed): run_config(suite.model(label), dataset, seed, epochs=args.epochs,
                                               splits=args.splits)
            for label, dataset, seed in plan}


def _suite(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from ..data import DatasetUnavailableError
    from ..errors import IntegrationError, TrainingDivergedError
    from ..training import finished_records, load_record, load_run_dataset, record_key, run, save_record

    suite = load_suite(suite_path(args.suite))
    configs = _plan(suite, args)
    page = args.page or (str(project_dir() / suite.page) if suite.page else "none")
    out_dir = output_folder(args.out_dir or str(project_dir() / "runs" / f"suite-{suite.name}-{timestamp()}"),
                            "--out-dir")
    root, cache = data_paths(args)
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be positive")
        torch.set_num_threads(args.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join([PROG, *argv])
    started_iso = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    done = finished_records(out_dir)
    before = sum(record_key(config) in done for config in configs.values())
    print(f"suite {suite.name}: {len(configs)} runs, {before} already in {out_dir}; torch threads "
          f"{torch.get_num_threads()}", flush=True)
    started = time.perf_counter()
    summaries: list[RunSummary] = []
    reused_s = 0.0  # the recorded time of runs found done, so a resumed page states an uninterrupted run's total
    for (label, dataset_name, seed), config in configs.items():
        key = record_key(config)
        head = f"{label:<14} {dataset_name:<18} seed {seed:<6}"
        if key in done:
            summaries.append(RunSummary.from_record(label, load_record(done[key]), repo_relative(done[key])))
            reused_s += summaries[-1].wall_time
            print(f"{head} done before ({done[key].name})", flush=True)
            continue
        try:
            fetch_dataset(args, dataset_name, root)
            dataset = load_run_dataset(config, root, cache_dir=cache)
        except DatasetUnavailableError as err:
            summaries.append(RunSummary.unavailable(label, dataset_name, seed, str(err)))
            print(f"{head} unavailable: {str(err).split('. ')[0]}", flush=True)
            continue
        print(head, end=" ", flush=True)
        try:
            if not args.quiet and sys.stderr.isatty():
                with EpochBars(dataset.name) as bars:
                    result = run(config, dataset, progress=bars)
            else:
                result = run(config, dataset)
        except (IntegrationError, TrainingDivergedError) as err:  # reported in the page; the other runs go on
            summaries.append(RunSummary.failed(label, dataset_name, seed, f"{type(err).__name__}: {err}"))
            print(f"failed: {err}", flush=True)
            continue
        record = result.to_record(suite=suite.name, model=label, command=command, data_root=str(root))
        path = save_record(record, out_dir / f"{dataset_name}-{_slug(label)}-seed{seed}.json")
        done[key] = path
        summary = RunSummary.from_record(label, record, repo_relative(path))
        summaries.append(summary)
        print(f"test {summary.test:6.2f}  val {summary.val:6.2f}  {summary.wall_time:6.1f} s", flush=True)
    total = time.perf_counter() - started + reused_s
    print(f"total {total:.0f} s", flush=True)
    if not any(s.status == "ok" for s in summaries):
        print(f"{PROG} suite: error: no run succeeded (every dataset was unavailable), so no page was written",
              file=sys.stderr)
        return 1
    partial = (args.models, args.datasets, args.seeds, args.splits, args.epochs) != (None,) * 5
    write_page(page, render(suite, summaries, command=command, started=started_iso, total=total, partial=partial,
                            out_dir=repo_relative(Path(out_dir))))
    return 0


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower())


COMMAND = Subcommand(
    "suite", "run a suite of models on its datasets (resumable) and write its page", _arguments, _suite,
    description="Run every model of a suite on its datasets and seeds, beside the suite's published anchors, and "
                "write its page. Rerun with the same --out-dir to resume: finished runs are skipped.",
)
