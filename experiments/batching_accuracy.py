"""What mini-batches on subgraphs cost in accuracy: the GRAFF preset full batch against random and METIS batches.

    python experiments/batching_accuracy.py                     # cora, splits 0-2, seed 5000, one torch thread

Each batch's flow runs on the batch's subgraph with the batch's own normalisation
(:mod:`continuous_gnn.training.batches`); evaluation is one full-graph pass, except in the rows "evaluated in
batches" (``evaluation = "batches"``: each node scored on its fixed batch subgraph). Every setting trains the same
preset on the same splits with the same seed; only ``batching`` (and ``evaluation``) changes. The table in the "Mini-batches" section of
``docs/training.md`` is generated from here (between its ``batching-accuracy`` markers): edit this script, not
the table. The JSON record of every run goes to ``--out-dir`` (default: ``runs/batching-<timestamp>`` in the
repository, as the other experiment scripts write theirs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from continuous_gnn.atomic import atomic_open, check_output_file, check_output_folder
from continuous_gnn.benchmarks import preset_config
from continuous_gnn.cli.common import timestamp
from continuous_gnn.cli.reproduce_page import provenance
from continuous_gnn.data import (
    NUM_SPLITS,
    DatasetUnavailableError,
    canonical_name,
    check_dataset_files,
    default_cache_dir,
    resolve_data_root,
)
from continuous_gnn.training import load_run_dataset, parse_splits, run, save_record
from continuous_gnn.training.batches import EpochBatches, batches_per_epoch
from continuous_gnn.training.preflight import check_splits
from continuous_gnn.training.presets import preset_path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "training.md"
BEGIN, END = "<!-- BEGIN batching-accuracy -->", "<!-- END batching-accuracy -->"
#: The batching settings compared with full batch: (label, config fields).
SETTINGS = [
    ("full batch", {}),
    ("random, 2 parts", {"batching": "random", "num_parts": 2}),
    ("random, 4 parts", {"batching": "random", "num_parts": 4}),
    ("METIS, 4 clusters", {"batching": "metis", "num_parts": 4}),
    ("METIS, 16 clusters, 4 per batch", {"batching": "metis", "num_parts": 16, "parts_per_batch": 4}),
    ("random, 4 parts, evaluated in batches", {"batching": "random", "num_parts": 4, "evaluation": "batches"}),
    ("METIS, 16 clusters, 4 per batch, evaluated in batches",
     {"batching": "metis", "num_parts": 16, "parts_per_batch": 4, "evaluation": "batches"}),
]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The parsed flags, each checked before any data loads or run trains (a bad one exits with status 2)."""
    parser = argparse.ArgumentParser(prog="python experiments/batching_accuracy.py", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--dataset", default="cora", help="dataset with a graff preset (default: cora)")
    parser.add_argument("--splits", default="0-2", help="splits (default: 0-2)")
    parser.add_argument("--seed", type=int, default=5000, help="base seed (default: 5000, the reproduction's)")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (a smoke test only)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--data-root", help="raw data root (default: $CONTINUOUS_GNN_DATA)")
    parser.add_argument("--out-dir", help="folder for the JSON records (default: runs/batching-<timestamp> in the "
                                          "repository)")
    parser.add_argument("--page", default=str(PAGE), help="page whose batching-accuracy table to regenerate "
                                                          "(default: docs/training.md); 'none' to skip")
    args = parser.parse_args(argv)
    for flag, value in (("--epochs", args.epochs), ("--threads", args.threads)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be a positive integer, got {value}")
    try:
        path = preset_path("graff", args.dataset)
    except ValueError as err:
        parser.error(f"--dataset: {err}")
    try:
        splits = parse_splits(args.splits)
        check_splits(args.dataset, splits, NUM_SPLITS[canonical_name(args.dataset)])
    except ValueError as err:
        parser.error(f"--splits: {err}")
    try:
        args.config = preset_config(path, splits=splits, epochs=args.epochs, seed=args.seed)
    except ValueError as err:  # the splits and epochs are checked above, so the seed is out of range
        parser.error(f"--seed: {err}")
    args.root = resolve_data_root(args.data_root, os.environ)
    if not args.root.is_dir():
        parser.error(f"data root {str(args.root)!r} is not a folder; pass --data-root or set CONTINUOUS_GNN_DATA to "
                     "the folder of the raw benchmark data")
    args.out_dir = Path(args.out_dir) if args.out_dir else REPO / "runs" / f"batching-{timestamp()}"
    try:
        check_output_folder(args.out_dir, "--out-dir")
        if args.page.lower() != "none":
            check_output_file(args.page, "--page")
            _block(Path(args.page))
    except ValueError as err:
        parser.error(str(err))
    try:
        check_dataset_files(args.dataset, args.root)
    except DatasetUnavailableError as err:
        parser.error(str(err))
    return args


def _block(page: Path) -> tuple[str, re.Pattern]:
    """The page's text and the pattern of its generated block. Raises ValueError when there is none."""
    try:
        text = page.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"--page {str(page)!r} does not exist; pass the page that holds the {BEGIN} ... {END} "
                         "block, or 'none'") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--page {str(page)!r} cannot be read as text ({err})") from None
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"--page {str(page)!r} has no {BEGIN} ... {END} block to regenerate; add one where the "
                         "table belongs, or pass --page none")
    return text, pattern


def _edges_inside(config, dataset) -> float:
    """The fraction of the graph's edges whose two ends share a batch, over one epoch's batches of split 0."""
    if config.batching == "none":
        return 1.0
    batch_of = torch.empty(dataset.num_nodes, dtype=torch.long)
    for i, nodes in enumerate(EpochBatches(config, dataset, 0, config.seed, torch.device("cpu")).groups()):
        batch_of[nodes] = i
    row, col = dataset.data.edge_index
    return float((batch_of[row] == batch_of[col]).float().mean())


def _table(rows: list[dict], header: str) -> str:
    """The generated block: header, table, and the largest paired difference from full batch."""
    full = rows[0]["tests"]
    for row in rows:  # the same splits and seeds, so the per-split difference removes the split-to-split spread
        row["delta"] = 100 * statistics.fmean(b - a for a, b in zip(full, row["tests"], strict=True))
    lines = [header, "", "| batching | batches per epoch | edges inside a batch | test accuracy (%) | Δ test vs full "
             "batch (points, paired) | validation accuracy (%) | ms per epoch |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['label']} | {row['batches']} | {100 * row['inside']:.0f}% | "
                     f"{100 * row['test_mean']:.2f} ± {100 * row['test_std']:.2f} | {row['delta']:+.2f} | "
                     f"{100 * row['val_mean']:.2f} ± {100 * row['val_std']:.2f} | {1000 * row['epoch_time']:.0f} |")
    worst = min(rows[1:], key=lambda row: row["delta"])
    lines += ["", f"Lowest paired difference from full batch: {worst['delta']:+.2f} points ({worst['label']}); the test "
                  f"accuracy of full batch varies by {100 * rows[0]['test_std']:.2f} points (std) across these splits."]
    return "\n".join(lines)


def _write(page: Path, table: str) -> None:
    text, pattern = _block(page)  # read again: the page may have been edited while the runs trained
    with atomic_open(page) as handle:
        handle.write(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text))
    print(f"wrote the table of {page}")


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    command = shlex.join(["python", "experiments/batching_accuracy.py", *(sys.argv[1:] if argv is None else argv)])
    out_dir, base = args.out_dir, args.config
    try:
        dataset = load_run_dataset(base, args.root, cache_dir=default_cache_dir(os.environ))
    except DatasetUnavailableError as err:  # present, but not what the checksums say
        print(f"python experiments/batching_accuracy.py: error: {err}", file=sys.stderr)
        return 2
    clock = time.perf_counter()
    rows = []
    for label, fields in SETTINGS:
        config = base.replace(**fields)
        result = run(config, dataset)
        agg = result.aggregate()
        rows.append({"label": label, "batches": batches_per_epoch(config, dataset.num_nodes),
                     "inside": _edges_inside(config, dataset), **agg, "epoch_time": agg["epoch_time_mean"],
                     "tests": result.test_metrics})
        save_record(result.to_record(preset="graff", command=command), out_dir / f"{args.dataset}-{label.replace(' ', '')}.json",
                    numbered=True)
        print(f"{label}: test {100 * agg['test_mean']:.2f} ± {100 * agg['test_std']:.2f}, "
              f"{1000 * agg['epoch_time_mean']:.0f} ms per epoch", flush=True)
    splits = ",".join(map(str, base.splits))
    header = (f"GRAFF preset on {dataset.name} (splits {splits}, seed {args.seed}, {base.epochs} epochs; mean ± "
              f"population std over splits). " + provenance(started, command, time.perf_counter() - clock))
    table = _table(rows, header)
    print(table)
    if args.page.lower() != "none":
        _write(Path(args.page), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
