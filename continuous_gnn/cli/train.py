"""``continuous-gnn train``: one configuration on the splits of one dataset; prints the metrics, writes a record."""

from __future__ import annotations

import argparse
import shlex

from .common import PROG, Subcommand, data_paths, output_path, percent, show_progress, timestamp
from .config_flags import add_config_flags, add_source_flags, dataset_name, resolve_cli_config
from .downloads import fetch_dataset
from .progress import EpochBars

__all__ = ["COMMAND"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)
    add_source_flags(parser)
    parser.add_argument("--out", metavar="PATH",
                        help="JSON record path, or a folder for the default name "
                             "(default: runs/<dataset>-<preset or energy>-<timestamp>.json)")


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    from ..training import load_run_dataset, run, save_record

    resolved = resolve_cli_config(args)
    config = resolved.config
    label = resolved.preset or config.energy
    path = output_path(args.out, f"{dataset_name(config.dataset)}-{label}-{timestamp()}.json")
    root, cache = data_paths(args)
    fetch_dataset(args, config.dataset, root)
    dataset = load_run_dataset(config, root, cache_dir=cache)
    metric = dataset.metric
    print(f"dataset {dataset.name}: {dataset.num_nodes} nodes, {dataset.num_classes} classes; "
          f"{'preset ' + resolved.preset if resolved.preset else 'energy ' + config.energy}; metric {metric}",
          flush=True)

    def on_split(s) -> None:
        print(f"split {s.split:>2}  test {percent(s.test_metric)}  val {percent(s.val_metric)}  "
              f"best epoch {s.best_epoch:>3}/{s.epochs_run}  {s.wall_time:.1f} s", flush=True)

    if show_progress(args):
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
    print(f"test {metric} {percent(agg['test_mean'])} ± {percent(agg['test_std'])} "
          f"(mean ± population std over {agg['num_splits']} split{'s' if agg['num_splits'] != 1 else ''})")
    print(f"time {result.wall_time:.1f} s ({1000 * result.wall_time / max(epochs, 1):.1f} ms per epoch)")
    print(f"record {path}")
    return 0


COMMAND = Subcommand("train", "train one configuration on the splits of a dataset", _arguments, _train)
