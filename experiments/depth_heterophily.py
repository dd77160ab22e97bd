"""Depth on the heterophilous benchmarks: does the GRAFF flow keep improving with depth where a non-residual
stack collapses? Regenerates ``docs/heterophily_depth.md`` and ``docs/figures/heterophily_depth.png``.

    python experiments/depth_heterophily.py [--datasets minesweeper,tolokers] [--depths 1,2,4,8,16,32]
                                            [--splits 0-2] [--preset graff_tuned] [--nl-preset graff_nl_tuned]
                                            [--data-root PATH] [--threads N] [--out-dir runs/heterophily_depth]

At every depth L (number of layers = Euler steps) these models are trained, on the same splits and seed:

* **GRAFF** (residual, weights shared over the layers): the dataset's preset (``graff_tuned``, from
  validation-only searches) with T = L·τ, τ its step size: F ← F + τ(−FΩ + ĀFW + βF(0)).
* **GRAFF-NL with per-step weights** (residual, one set of weights per layer), where the dataset has a
  ``--nl-preset`` file (``graff_nl_tuned`` covers minesweeper): that preset with T = L·τ,
  F ← F + τ·ReLU(BN(−FΩₖ + ĀFWₖ + βₖF(0))), the deep residual GCN with normalisation in the GRAFF form.
* **Non-residual** (shared weights): F ← ĀFW for L layers, i.e. the Euler scheme of the GRAFF energy with
  Ω = I, τ = 1 and no source (F + (ĀFW − F) = ĀFW), run to T = L, with the ``--preset``'s other settings.

Each run is the package's one training loop (``continuous_gnn.training.run``). The test metric is read at the
epoch of best validation metric; nothing is chosen here. The page is generated: edit this script, not the page.

Each finished run writes its JSON record into ``--out-dir``. Killed and rerun with the same arguments, the script
skips every run whose record is there (matched by resolved config, never by file name), so a long study survives
an interrupted session; the page's total time counts the reused runs' recorded times.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from continuous_gnn.atomic import atomic_open, atomic_write_text, check_output_file, check_output_folder
from continuous_gnn.cli import UsageError
from continuous_gnn.cli.common import check_distinct_outputs, require_package
from continuous_gnn.data import (
    NUM_SPLITS,
    DatasetUnavailableError,
    canonical_name,
    check_dataset_files,
    default_cache_dir,
    resolve_data_root,
)
from continuous_gnn.errors import IntegrationError, TrainingDivergedError
from continuous_gnn.training import (
    RunConfig,
    finished_records,
    load_record,
    load_run_dataset,
    record_key,
    run,
    save_record,
    still_improving,
)
from continuous_gnn.training.config import parse_splits
from continuous_gnn.training.config_io import read_config_file, resolve_config
from continuous_gnn.training.preflight import check_splits
from continuous_gnn.training.presets import available_presets, preset_file, preset_path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "python experiments/depth_heterophily.py"
SEED = 5000
DEFAULT_DATASETS, DEFAULT_DEPTHS, DEFAULT_SPLITS = "minesweeper,tolokers", "1,2,4,8,16,32", "0-2"


GRAFF, GRAFF_NL, PLAIN = "GRAFF (residual)", "GRAFF-NL, per-step W", "non-residual ĀFW"


def _configs(preset_name: str, dataset: str, depth: int, splits, epochs: int | None,
             nl_preset_name: str | None = None):
    """The runs at one depth, by model label; GRAFF-NL only where ``nl_preset_name`` has a file for ``dataset``."""
    common = {"splits": list(splits), "seed": SEED, **({"epochs": epochs} if epochs is not None else {})}

    def at_depth(preset: dict) -> RunConfig:
        return resolve_config(preset, {**common, "time": depth * resolve_config(preset).step_size})

    preset = read_config_file(preset_path(preset_name, dataset))
    configs = {GRAFF: at_depth(preset)}
    nl_file = preset_file(nl_preset_name, canonical_name(dataset)) if nl_preset_name else None
    if nl_file is not None and nl_file.is_file():
        configs[GRAFF_NL] = at_depth(read_config_file(nl_file))
    configs[PLAIN] = resolve_config(preset, {**common, "omega": "const", "source": False, "step_size": 1.0,
                                             "time": float(depth), "normalize_field": False, "activation": None})
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SCRIPT, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--depths", default=DEFAULT_DEPTHS)
    parser.add_argument("--splits", default=DEFAULT_SPLITS)
    parser.add_argument("--preset", default="graff_tuned", help="the run preset GRAFF starts from")
    parser.add_argument("--nl-preset", default="graff_nl_tuned",
                        help="the run preset of GRAFF-NL with per-step weights, trained on the datasets it covers "
                             "('none' leaves that model out)")
    parser.add_argument("--epochs", type=int, default=None, help="override the presets' epochs (a smoke test)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--cache-dir", default=None, help="processing cache (default: the library's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--page", default=str(REPO / "docs" / "heterophily_depth.md"))
    parser.add_argument("--figure", default=str(REPO / "docs" / "figures" / "heterophily_depth.png"))
    parser.add_argument("--csv", default=str(REPO / "runs" / "heterophily_depth.csv"))
    parser.add_argument("--out-dir", default=str(REPO / "runs" / "heterophily_depth"),
                        help="folder of the runs' JSON records; rerun with the same folder to resume")
    args = parser.parse_args(argv)
    try:
        datasets, depths, splits, plan, root = _check_arguments(args)
    except (UsageError, ValueError) as err:
        parser.error(str(err))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    nl_preset = None if args.nl_preset == "none" else args.nl_preset
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir(os.environ)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = finished_records(out_dir)
    command = " ".join([SCRIPT, shlex.join(argv if argv is not None else sys.argv[1:])]).strip()
    started_iso = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    reused_s = 0.0
    rows = []
    for name in datasets:
        for depth in depths:
            for label, config in plan[name, depth].items():
                key = record_key(config)
                if key in done:
                    record = load_record(done[key])
                    reused_s += record["aggregate"]["wall_time"]
                    row, status = _row(name, label, depth, record), "done before"
                else:
                    try:
                        dataset = load_run_dataset(config, root, cache_dir=cache_dir)
                    except DatasetUnavailableError as err:  # present, but not what the checksums say
                        print(f"{SCRIPT}: error: {err}", file=sys.stderr)
                        return 2
                    try:
                        result = run(config, dataset)
                    except (IntegrationError, TrainingDivergedError) as err:  # a deep stack may blow up
                        row = {"dataset": name, "model": label, "layers": depth, "test_mean": float("nan"),
                               "test_std": float("nan"), "val_mean": float("nan"), "metric": dataset.metric,
                               "status": f"failed: {type(err).__name__}", "best_epochs": "",
                               "epochs": config.epochs}
                        status = row["status"]
                    else:
                        record = result.to_record(model=label, layers=depth, command=command, data_root=str(root))
                        done[key] = save_record(record, out_dir / f"{name}-{_slug(label)}-L{depth}.json", numbered=True)
                        row, status = _row(name, label, depth, record), "ok"
                rows.append(row)
                print(f"{name:<12} {label:<20} L={depth:<3} test {row['test_mean']:6.2f} ± {row['test_std']:5.2f}  "
                      f"{status}", flush=True)
    total = time.perf_counter() - started + reused_s
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _figure(rows, datasets, args.figure)
    figure_link = Path(os.path.relpath(Path(args.figure).resolve(), Path(args.page).resolve().parent)).as_posix()
    atomic_write_text(args.page, _page(rows, datasets, depths, splits, args.preset, command, started_iso, total,
                                       figure_link, nl_preset, partial=_is_partial(args, datasets, depths, splits)))
    print(f"wrote {args.page}, {args.figure}, {args.csv}")
    return 0


def _check_arguments(args: argparse.Namespace):
    """The datasets, depths, splits, every run's config by (dataset, depth) and the data root, each flag checked
    before anything is created or trained. Raises UsageError or ValueError, naming the flag."""
    require_package("matplotlib", "the page's figure", "plot")  # drawn after every run has trained
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    try:
        depths = [int(d) for d in args.depths.split(",")]
        splits = parse_splits(args.splits)
    except ValueError as err:
        raise UsageError(f"--depths must be comma-separated integers and --splits a split list ({err})") from None
    if not datasets or min(depths) < 1:
        raise UsageError("--datasets must name at least one dataset and every --depths value must be >= 1")
    for flag, value in (("--epochs", args.epochs), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}; leave it out for the default")
    if args.preset not in available_presets():
        raise UsageError(f"--preset {args.preset!r} is no packaged preset; available: {', '.join(available_presets())}")
    if args.nl_preset != "none" and args.nl_preset not in available_presets():
        raise UsageError(f"--nl-preset {args.nl_preset!r} is no packaged preset; available: "
                         f"{', '.join(available_presets())}, or 'none'")
    for name in datasets:
        try:
            preset_path(args.preset, name)  # an unknown dataset, or one the preset has no file for
        except ValueError as err:
            raise UsageError(f"--datasets: {err}") from None
        try:
            check_splits(name, splits, NUM_SPLITS[canonical_name(name)])
        except ValueError as err:
            raise UsageError(f"--splits: {err}") from None
    nl_preset = None if args.nl_preset == "none" else args.nl_preset
    plan = {(name, depth): _configs(args.preset, name, depth, splits, args.epochs, nl_preset)
            for name in datasets for depth in depths}
    root = resolve_data_root(args.data_root, os.environ)
    if not root.is_dir():
        raise UsageError(f"data root {str(root)!r} is not a folder; pass --data-root or set CONTINUOUS_GNN_DATA to "
                         "the folder of the raw benchmark data")
    check_output_folder(args.out_dir, "--out-dir")
    for flag, path in (("--page", args.page), ("--figure", args.figure), ("--csv", args.csv)):
        check_output_file(path, flag)
    check_distinct_outputs(("--page", args.page), ("--figure", args.figure), ("--csv", args.csv))
    for name in datasets:  # every dataset, before the first one trains
        try:
            check_dataset_files(name, root)
        except DatasetUnavailableError as err:
            raise UsageError(str(err)) from None
    return datasets, depths, splits, plan, root


def _is_partial(args: argparse.Namespace, datasets, depths, splits) -> bool:
    """Whether a run measures less than the default command (fewer datasets, depths or splits, or its own epochs)."""
    return (args.epochs is not None
            or not {canonical_name(d) for d in DEFAULT_DATASETS.split(",")} <= {canonical_name(d) for d in datasets}
            or not {int(d) for d in DEFAULT_DEPTHS.split(",")} <= set(depths)
            or not set(parse_splits(DEFAULT_SPLITS)) <= set(splits))


def _row(name: str, label: str, depth: int, record: dict) -> dict:
    aggregate = record["aggregate"]
    return {"dataset": name, "model": label, "layers": depth, "test_mean": 100 * aggregate["test_mean"],
            "test_std": 100 * aggregate["test_std"], "val_mean": 100 * aggregate["val_mean"],
            "metric": aggregate["metric"], "status": "ok",
            "best_epochs": " ".join(str(s["best_epoch"]) for s in record["splits"]),
            "epochs": record["config"]["epochs"]}


def _slug(label: str) -> str:
    return "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in label.lower()).strip("_")


def _figure(rows, datasets, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 2.8), squeeze=False)
    labels = list(dict.fromkeys(r["model"] for r in rows))
    colours = {label: f"C{k}" for k, label in enumerate(labels)}  # one colour per model on every panel
    for axis, name in zip(axes[0], datasets):
        for label in labels:
            points = [(r["layers"], r["test_mean"], r["test_std"]) for r in rows
                      if r["dataset"] == name and r["model"] == label]
            if not points:  # a model without a preset for this dataset
                continue
            xs, ys, es = zip(*points)
            axis.errorbar(xs, ys, yerr=es, marker="o", capsize=2, label=label, color=colours[label])
        axis.set_xscale("log", base=2)
        axis.set_xlabel("layers L")
        metric = next(r["metric"] for r in rows if r["dataset"] == name)
        axis.set_ylabel(f"test {metric.replace('_', '-')} (%)")
        axis.set_title(name)
        axis.grid(alpha=0.3)
    # the legend where the most models ran (a model without a preset for a dataset is absent from its panel)
    max(axes[0], key=lambda axis: len(axis.get_legend_handles_labels()[1])).legend(fontsize=7)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=90)
    plt.close(figure)


def _page(rows, datasets, depths, splits, preset, command, started, total, figure_link, nl_preset=None,
          partial=False) -> str:
    from continuous_gnn.cli.reproduce_page import provenance

    lines = ["# Depth on the heterophilous benchmarks", ""]
    if partial:
        lines += ["> **Partial run** (fewer datasets, depths or splits than the default command, or epochs set by "
                  "--epochs): not the study.", ""]
    lines += [provenance(started, command, total), "",
             "Does the GRAFF flow keep improving with depth where a stack without residual connections collapses? "
             f"GRAFF is the dataset's `{preset}` preset with T = L·τ and its weights shared over the layers; "
             + (f"GRAFF-NL with per-step weights, where the dataset has a `{nl_preset}` preset, is that preset "
                "with T = L·τ: one set of weights per layer, the field standardised over the nodes and a ReLU "
                "after each step, F ← F + τ·ReLU(BN(−FΩₖ + ĀFWₖ + βₖF(0))); " if nl_preset else "")
             + "the non-residual stack is F ← ĀFW with shared weights (the Euler scheme of the GRAFF energy with "
             "Ω = I, τ = 1, no source). Test metric in %, "
             + (f"mean ± population std over splits {', '.join(map(str, splits))}" if len(splits) > 1 else
                f"on split {splits[0]} alone (one training run per cell, so no spread is shown)")
             + f" at seed {SEED}, read at the epoch of best validation metric.", "",
             f"![depth]({figure_link})", ""]
    for name in datasets:
        models = list(dict.fromkeys(r["model"] for r in rows if r["dataset"] == name))
        lines += [f"## {name}", "", "| layers | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for depth in depths:
            cells = []
            for label in models:
                row = next(r for r in rows if r["dataset"] == name and r["model"] == label and r["layers"] == depth)
                spread = f" ± {row['test_std']:.2f}" if len(splits) > 1 else ""  # no spread over one split
                cells.append(f"{row['test_mean']:.2f}{spread}" if row["status"] == "ok"
                             else row["status"])
            lines.append(f"| {depth} | " + " | ".join(cells) + " |")
        lines += ["", _epochs(rows, name, models), "", _findings(rows, name), ""]
        if nl_preset and GRAFF_NL not in models:
            lines += [f"{GRAFF_NL} is not run on {name}: the `{nl_preset}` preset has no file for it.", ""]
    return "\n".join(lines)


def _epochs(rows, name, models) -> str:
    """The epochs each model trained for on one dataset (its preset's, or --epochs)."""
    parts = []
    for label in models:
        counts = sorted({int(r["epochs"]) for r in rows if r["dataset"] == name and r["model"] == label})
        parts.append(f"{label} {', '.join(map(str, counts))}")
    return "Epochs per run: " + "; ".join(parts) + "."


def _findings(rows, name) -> str:
    """What the table of one dataset shows, in words computed from its rows (never typed by hand)."""
    ok = [r for r in rows if r["dataset"] == name and r["status"] == "ok"]
    models = list(dict.fromkeys(r["model"] for r in rows if r["dataset"] == name))
    parts = []
    for label in models:
        mine = [r for r in ok if r["model"] == label]
        if not mine:
            parts.append(f"every {label} run failed")
            continue
        best, deepest = max(mine, key=lambda r: r["test_mean"]), max(mine, key=lambda r: r["layers"])
        change = deepest["test_mean"] - best["test_mean"]
        parts.append(f"{label} peaks at L = {best['layers']} ({best['test_mean']:.2f})"
                     + ("" if deepest is best else
                        f" and is at {deepest['test_mean']:.2f} at L = {deepest['layers']} ({change:+.2f})"))
    text = "; ".join(parts) + "."
    by_depth = {}
    for r in ok:
        by_depth.setdefault(r["layers"], {})[r["model"]] = r["test_mean"]
    baseline = models[-1]  # the non-residual stack comes last
    for label in models[:-1]:
        shared = sorted(d for d, means in by_depth.items() if label in means and baseline in means)
        ahead = [d for d in shared if by_depth[d][label] > by_depth[d][baseline]]
        text += f" {label} is above {baseline} at {len(ahead)} of the {len(shared)} depths where both ran."
    late = [f"{r['model']} at L = {r['layers']}" for r in ok
            if still_improving([int(b) for b in r["best_epochs"].split()], int(r["epochs"]))]
    if late:
        text += (" Still improving when training stopped (best validation epoch in the last tenth of the epochs on "
                 f"at least half of the splits), so the epoch budget rather than the depth may limit them: "
                 f"{', '.join(late)}.")
    return "In words: " + text


if __name__ == "__main__":
    sys.exit(main())
