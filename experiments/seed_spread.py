"""How much of a gap to a target is seed noise: rerun presets with other seeds and report the spread.

    python experiments/seed_spread.py --datasets texas,film,chameleon,cora    # default seeds: 5000,0,1000,2000,3000

The reproduction (``continuous-gnn reproduce``) runs each preset once, with base seed ``REPORT_SEED`` (5000):
split *i* uses seed *REPORT_SEED + i*. Here each preset runs once per ``--seeds`` value *s* (split *i* then uses
seed *s + i*), everything else as configured, and ``docs/seed_spread.md`` reports the 10-split test mean of every
seed, their mean and sample standard deviation across seeds, and how many seeds meet the target; and the
validation means at the seeds a tuned preset's search trained with against the others, which show how much the
search inflated its validation accuracy. Nothing is selected: every seed is reported. That file is generated:
edit this script, not the file.

Each seed's record is written as soon as its run finishes; killed and rerun with the same flags and ``--out-dir``,
the script reuses the records it finds there (matched by resolved config and seed, not by file name) and trains
only the others. ``--render-from`` matches records the same way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from continuous_gnn.atomic import check_output_file
from continuous_gnn.benchmarks import DATASETS, MODELS, NAMES, OPTIONAL, TARGETS, preset_config
from continuous_gnn.cli import UsageError
from continuous_gnn.cli.reproduce import REPORT_SEED, prepare_run, validate_selection
from continuous_gnn.cli.reproduce_page import provenance, repo_relative, write_page
from continuous_gnn.data import DatasetUnavailableError
from continuous_gnn.training import RunConfig, finished_records, load_record, load_run_dataset, record_key, run, save_record
from continuous_gnn.training.config_rules import MAX_SEED
from continuous_gnn.training.presets import preset_file
from continuous_gnn.training.search import search_seeds

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SEEDS = f"{REPORT_SEED},0,1000,2000,3000"
DEFAULT_DATASETS = ("texas", "film", "cora")
DEFAULT_MODELS = ("graff", "graff_tuned")


@dataclass
class SeedRun:
    """One preset run with one base seed: means over its splits, in %."""

    seed: int
    test_mean: float
    val_mean: float

    @classmethod
    def from_record(cls, seed: int, record: dict) -> SeedRun:
        """The means of a run's JSON record (fractions there, % here)."""
        agg = record["aggregate"]
        return cls(seed, 100 * agg["test_mean"], 100 * agg["val_mean"])


@dataclass
class Spread:
    """A preset's runs over several base seeds."""

    dataset: str
    model: str
    runs: list[SeedRun]
    searched: frozenset[int] = frozenset()  # the seeds the preset's search trained with; empty when untuned

    @property
    def test_means(self) -> list[float]:
        return [r.test_mean for r in self.runs]

    def validation_split(self) -> tuple[float, float] | None:
        """The mean validation metric over the runs at searched seeds and over the others; None unless both ran."""
        inside = [r.val_mean for r in self.runs if r.seed in self.searched]
        outside = [r.val_mean for r in self.runs if r.seed not in self.searched]
        if not inside or not outside:
            return None
        return statistics.fmean(inside), statistics.fmean(outside)

    def summary(self, target: float) -> dict[str, float]:
        """Mean and sample std (ddof = 1) of the per-seed test means, their range and the count at or above target."""
        means = self.test_means
        return {
            "mean": statistics.fmean(means),
            "std": statistics.stdev(means) if len(means) > 1 else float("nan"),
            "min": min(means),
            "max": max(means),
            "met": sum(m >= target for m in means),
        }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python experiments/seed_spread.py",
        description="Rerun presets with several base seeds and write the spread of the test mean.",
        allow_abbrev=False,  # records quote the command line: every flag in it must be one that exists
    )
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS),
                        help=f"comma-separated datasets (default: texas,film,cora); from {','.join(DATASETS)}")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated presets (default: graff,graff_tuned; a missing graff_tuned file is "
                             "skipped)")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS,
                        help=f"comma-separated base seeds, at least 10 apart so no split seed repeats "
                             f"(default: {DEFAULT_SEEDS})")
    parser.add_argument("--splits", default=None, help="splits, e.g. 0-9 (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs (a smoke test only)")
    parser.add_argument("--data-root", help="raw data root (default: $CONTINUOUS_GNN_DATA, else the user cache)")
    parser.add_argument("--cache-dir", help="processing cache (default: ~/.cache/continuous_gnn/processed)")
    parser.add_argument("--out-dir", help="folder for the JSON records; rerun with the same folder to resume: a seed "
                                          "whose record is there (same resolved config and seed) is not trained "
                                          "again (default: runs/seed-spread-<timestamp>)")
    parser.add_argument("--results", default=str(REPO / "docs" / "seed_spread.md"),
                        help="markdown file to (re)generate (default: docs/seed_spread.md); 'none' to skip")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--render-from", metavar="DIR",
                        help="train nothing: rebuild the page from the JSON records a run wrote in DIR, with the "
                             "same --datasets, --models, --seeds, --splits and --epochs (records are matched by "
                             "resolved config and seed)")
    try:
        args = validate_selection(parser.parse_args(argv))
    except UsageError as err:
        parser.error(str(err))
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if len(args.seeds) < 2:
        parser.error("--seeds: give at least two seeds, e.g. 0,1000")
    out_of_range = [seed for seed in args.seeds if not 0 <= seed <= MAX_SEED]
    if out_of_range:
        parser.error(f"--seeds must be in [0, 2**63 - {2**63 - MAX_SEED}] (split i trains with seed + i); got "
                     f"{', '.join(map(str, out_of_range))}")
    ordered = sorted(args.seeds)
    if any(b - a < 10 for a, b in zip(ordered, ordered[1:])):
        parser.error(f"--seeds must be at least 10 apart (split i uses seed + i, so closer seeds share split "
                     f"seeds); got {args.seeds}")
    if args.results.lower() != "none":  # before any training or rendering, so that no work is lost to it
        try:
            check_output_file(args.results, "--results")
        except ValueError as err:
            parser.error(f"{err}, or 'none'")
    return args


def _configs(name: str, model: str, args: argparse.Namespace) -> dict[int, RunConfig] | None:
    """The run config of each ``--seeds`` value for a preset; None when an optional preset has no file."""
    path = preset_file(model, name)
    if model in OPTIONAL and not path.is_file():
        return None
    base = preset_config(path, splits=args.splits, epochs=args.epochs)
    return {seed: base.replace(seed=seed) for seed in args.seeds}


def _spread(name: str, model: str, args: argparse.Namespace, root: Path, cache: Path, out_dir: Path,
            command: str, done: dict[str, Path]) -> tuple[Spread | None, float]:
    """A preset's spread over the seeds, and the seconds of the runs whose records were reused.

    A seed whose record is in ``done`` (by resolved config) is not trained again; a new record is saved as soon
    as its seed's run finishes.
    """
    configs = _configs(name, model, args)
    if configs is None:
        return None, 0.0
    path = preset_file(model, name)
    label = f"{NAMES[name]:<10} {MODELS[model]:<11}"
    dataset = None
    runs, reused_s = [], 0.0
    for seed, config in configs.items():
        key = record_key(config)
        if key in done:
            record = load_record(done[key])
            reused_s += record["aggregate"]["wall_time"]
            runs.append(SeedRun.from_record(seed, record))
            print(f"{label} seed {seed:>5}  record found in {repo_relative(done[key])}, skipped", flush=True)
            continue
        if dataset is None:
            dataset = load_run_dataset(config, root, cache_dir=cache)
        result = run(config, dataset)
        record = result.to_record(preset=model, preset_file=repo_relative(path), config_file=None,
                                  data_root=str(root), command=command)
        done[key] = save_record(record, out_dir / f"{name}-{model}-seed{seed}.json", numbered=True)
        runs.append(SeedRun.from_record(seed, record))
        print(f"{label} seed {seed:>5}  test {runs[-1].test_mean:6.2f}  val {runs[-1].val_mean:6.2f}  "
              f"{result.wall_time:6.1f} s", flush=True)
    return _with_search_seeds(name, model, runs), reused_s


def _with_search_seeds(name: str, model: str, runs: list[SeedRun]) -> Spread:
    """A preset's spread, with the seeds its search trained with when it is a tuned preset."""
    searched = search_seeds(preset_file(model, name)) if model == "graff_tuned" else set()
    return Spread(name, model, runs, frozenset(searched))


def _read_spreads(folder: Path, args: argparse.Namespace) -> tuple[list[Spread], list[str], list[dict]]:
    """The spreads of an earlier run from the records in ``folder``, matched by resolved config and seed."""
    done = finished_records(folder)
    spreads, skipped, records = [], [], []
    for name in args.datasets:
        for model in args.models:
            label = f"{NAMES[name]} {MODELS[model]}"
            configs = _configs(name, model, args)
            keys = [record_key(config) for config in (configs or {}).values()]
            if not keys or not all(key in done for key in keys):
                skipped.append(f"{label} (no records in {repo_relative(folder)})")
                continue
            runs = []
            for seed, key in zip(args.seeds, keys):
                record = load_record(done[key])
                records.append(record)
                runs.append(SeedRun.from_record(seed, record))
            spreads.append(_with_search_seeds(name, model, runs))
    return spreads, skipped, records


def is_partial(args: argparse.Namespace) -> bool:
    """Whether a run measures less than the default command does (its page then says so)."""
    default_seeds = {int(seed) for seed in DEFAULT_SEEDS.split(",")}
    return (args.epochs is not None or args.splits is not None or not set(DEFAULT_DATASETS) <= set(args.datasets)
            or not set(DEFAULT_MODELS) <= set(args.models) or not default_seeds <= set(args.seeds))


def render(spreads: list[Spread], skipped: list[str], args: argparse.Namespace, total: float, started: str,
           command: str, out_dir: Path, env: dict | None = None, rendered_by: str = "") -> str:
    lines = [
        "<!-- GENERATED by experiments/seed_spread.py: do not edit by hand; rerun the command below. -->",
        "",
        "# Seed spread of the reproduction's test means",
        "",
    ]
    if is_partial(args):
        lines += ["> **Partial run** (a subset of the default datasets, models, seeds or splits, or overridden "
                  "epochs): not the measurement.", ""]
    lines += [
        provenance(started, command, total, env)
        + (f" This page was rebuilt from those records by `{rendered_by}`." if rendered_by else ""),
        "",
        "Each preset `continuous_gnn/presets/<model>/<dataset>.toml` runs once per base seed *s*, split *i* using seed "
        "*s + i*, everything else as configured. A cell is the test accuracy (%) at the epoch of best validation "
        f"accuracy, averaged over the splits, as in [results.md](results.md), whose runs are seed "
        f"{REPORT_SEED}. **across seeds** "
        "= mean ± **sample** standard deviation (ddof = 1) of those per-seed means; **met** = seeds whose mean "
        "reaches the target. Every seed is reported; none is chosen.",
        "",
        f"| dataset | model | target | {' | '.join(f'seed {s}' for s in args.seeds)} | across seeds | "
        "min – max | met |",
        f"|---|---|---|{'---:|' * len(args.seeds)}---|---|---|",
    ]
    for spread in spreads:
        target = TARGETS[spread.dataset]
        s = spread.summary(target)
        cells = " | ".join(f"{m:.2f}" for m in spread.test_means)
        lines.append(f"| {NAMES[spread.dataset]} | {MODELS[spread.model]} | {target:.2f} | "
                     f"{cells} | {s['mean']:.2f} ± {s['std']:.2f} | {s['min']:.2f} – {s['max']:.2f} | "
                     f"{s['met']} of {len(spread.runs)} |")
    lines += [
        "",
        "Mean validation accuracy (%) of the same runs. A search keeps the trial with the highest validation "
        "accuracy at the seeds it trained with (`continuous-gnn tune --seeds`, named in the preset's header), so a "
        "tuned preset's validation accuracy there is a maximum over trials; at the other seeds it is not. The last "
        "columns compare the two: how much the selection inflated it. Untuned presets have no searched seeds. A seed "
        "is sure to repeat a run only at the same torch thread count: with another count multithreaded sums may "
        "round differently, and over hundreds of epochs that makes another draw. So the comparison is sure to "
        "measure the inflation only when this page ran with the search's thread count (above; the searches' "
        "counts are in docs/training.md, \"Search seeds\"); where a run at a searched seed did not repeat the "
        "search's, the difference is seed noise.",
        "",
        f"| dataset | model | {' | '.join(f'seed {s}' for s in args.seeds)} | searched seeds | at searched | "
        "at others | searched − others |",
        f"|---|---|{'---:|' * len(args.seeds)}---|---:|---:|---:|",
    ]
    for spread in spreads:
        cells = " | ".join(f"{r.val_mean:.2f}" for r in spread.runs)
        searched = ", ".join(map(str, sorted(spread.searched))) or "–"
        split = spread.validation_split()
        compared = "– | – | –" if split is None else f"{split[0]:.2f} | {split[1]:.2f} | {split[0] - split[1]:+.2f}"
        lines.append(f"| {NAMES[spread.dataset]} | {MODELS[spread.model]} | {cells} | "
                     f"{searched} | {compared} |")
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    lines += [
        "",
        "Rerun:",
        "",
        "```bash",
        f"CONTINUOUS_GNN_DATA=../shared/data {command}",
        "```",
        "",
        f"JSON records (resolved config, seeds, per-split metrics) are in `{repo_relative(out_dir)}/`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    command = shlex.join(["python", "experiments/seed_spread.py", *(sys.argv[1:] if argv is None else argv)])
    if args.render_from:
        return _render_from(Path(args.render_from), args, command)
    try:
        root, cache, out_dir = prepare_run(args, "seed-spread")
    except ValueError as err:
        print(f"seed_spread: error: {err}", file=sys.stderr)
        return 2
    started_iso = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print(f"records in {out_dir} (rerun with --out-dir {out_dir} to resume)", flush=True)
    done = finished_records(out_dir)
    started = time.perf_counter()
    reused_s = 0.0
    spreads: list[Spread] = []
    skipped: list[str] = []
    for name in args.datasets:
        for model in args.models:
            label = f"{NAMES[name]} {MODELS[model]}"
            try:
                spread, reused = _spread(name, model, args, root, cache, out_dir, command, done)
                reused_s += reused
            except DatasetUnavailableError as err:
                skipped.append(f"{label} (unavailable: {str(err).split('. ')[0]})")
                print(f"{label}: unavailable", flush=True)
                continue
            if spread is None:
                skipped.append(f"{label} (no preset file)")
                continue
            spreads.append(spread)
    total = time.perf_counter() - started + reused_s  # reused records' runs count as when they ran
    print(f"total {total:.0f} s", flush=True)
    if not spreads:  # a page of nothing but skipped rows would replace the last real one
        print(f"seed_spread: error: no preset ran ({'; '.join(skipped) or 'nothing selected'}); "
              + ("no page written" if args.results.lower() == "none" else f"{args.results} was not written"),
              file=sys.stderr)
        return 1
    write_page(args.results, render(spreads, skipped, args, total, started_iso, command, out_dir))
    return 0


def _render_from(folder: Path, args: argparse.Namespace, command: str) -> int:
    if not folder.is_dir():
        print(f"seed_spread: error: --render-from {str(folder)!r} is not a folder of seed-spread records",
              file=sys.stderr)
        return 2
    spreads, skipped, records = _read_spreads(folder, args)
    if not records:
        print(f"seed_spread: error: no records for these --datasets/--models/--seeds in {str(folder)!r}",
              file=sys.stderr)
        return 2
    first = min(records, key=lambda r: r["date"])
    env = {"versions": first["versions"], "machine": first["machine"]}
    total = sum(r["aggregate"]["wall_time"] for r in records)
    write_page(args.results, render(spreads, skipped, args, total, first["date"], first["command"], folder,
                                              env, rendered_by=command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
