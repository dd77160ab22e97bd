"""Reproduce the GRAFF node-classification table: GRAFF and GRAFF-NL on every benchmark, all 10 splits.

    python experiments/reproduce.py            # or: continuous-gnn reproduce

Runs the presets ``continuous_gnn/presets/{graff,graff_nl}/<dataset>.toml`` (the paper's hyperparameters) and,
where one exists, ``continuous_gnn/presets/graff_tuned/<dataset>.toml`` (our own ``continuous-gnn tune`` search)
on every dataset whose raw files are present (a missing dataset is reported as unavailable, with the reason),
writes one JSON record per run under ``--out-dir`` and regenerates ``docs/results.md``. That file is
generated: edit this script, not the file.

The flags, the presets they override (``--seed``, ``--epochs``, ``--splits`` against each dataset's splits) and the
output paths are checked before anything is created or run (exit status 2). When no run succeeds (every one
failed, was skipped or had no data) the script exits with status 1 and leaves ``--results`` untouched; a dataset
that is unavailable while others ran is reported in the page as before.

Targets (the issue's table): max(paper's best GRAFF mean - 1 paper std, the official code run here), the paper
being arXiv v1 Table 1 (better of GRAFF (DD) and GRAFF (D)) and "the official code run here" graff-notes §15.
Nothing here looks at the test metric to choose anything: each preset is run once, as configured, and our
GRAFF number is whichever of GRAFF and GRAFF-tuned has the higher mean validation accuracy.

Every run uses the base seed ``--seed`` (default :data:`REPORT_SEED`), which no search may use: a tuned preset's
validation accuracy at a seed its search trained with is a maximum over trials, so it would flatter the tuned
preset in that choice (``docs/seed_spread.md`` measures by how much). :func:`search_seeds` reads the seeds from a
tuned preset's header, and the reproduction refuses a tuned preset searched at its seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from continuous_gnn.atomic import atomic_open, check_creatable, check_output_folder
from continuous_gnn.cli.progress import EpochBars
from continuous_gnn.data import NUM_SPLITS, DatasetUnavailableError, default_cache_dir, resolve_data_root
from continuous_gnn.training import (
    RunConfig,
    environment,
    load_run_dataset,
    parse_splits,
    read_config_file,
    resolve_config,
    run,
    save_record,
)
from continuous_gnn.training.presets import preset_file
from continuous_gnn.training.search import search_seeds

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODELS = {"graff": "GRAFF", "graff_tuned": "GRAFF-tuned", "graff_nl": "GRAFF-NL"}
#: Linear-GRAFF presets that compete, on validation accuracy, for the number held against the target.
LINEAR = ("graff", "graff_tuned")
#: Presets that need not exist for every dataset.
OPTIONAL = ("graff_tuned",)
DATASETS = ("texas", "wisconsin", "cornell", "film", "squirrel", "chameleon", "citeseer", "pubmed", "cora")
NAMES = {"texas": "Texas", "wisconsin": "Wisconsin", "cornell": "Cornell", "film": "Film", "squirrel": "Squirrel",
         "chameleon": "Chameleon", "citeseer": "CiteSeer", "pubmed": "PubMed", "cora": "Cora"}

#: arXiv 2206.10991 v1, Table 1: (mean, std) of GRAFF (DD) and GRAFF (D) (graff-notes §10.1).
PAPER_DD = {"texas": (88.38, 4.53), "wisconsin": (87.45, 2.94), "cornell": (83.24, 6.49), "film": (36.09, 0.81),
            "squirrel": (54.52, 1.37), "chameleon": (71.08, 1.75), "citeseer": (76.92, 1.70),
            "pubmed": (88.95, 0.52), "cora": (87.61, 0.97)}
PAPER_D = {"texas": (88.11, 5.57), "wisconsin": (88.83, 3.29), "cornell": (84.05, 6.10), "film": (37.11, 1.08),
           "squirrel": (47.36, 1.89), "chameleon": (66.78, 1.28), "citeseer": (77.30, 1.85),
           "pubmed": (90.04, 0.41), "cora": (88.01, 1.03)}
#: The official code with its best_lin parameters on the shared data (graff-notes §15): (mean, std, splits).
OFFICIAL_HERE = {"texas": (85.14, 6.86, 10), "wisconsin": (86.27, 4.88, 10), "cornell": (71.62, 5.02, 10),
                 "film": (35.75, 1.06, 10), "squirrel": (58.41, 0.55, 3), "chameleon": (69.32, 1.84, 10),
                 "citeseer": (74.25, 2.71, 10), "cora": (87.85, 1.26, 10)}
#: The issue's target table.
TARGETS = {"texas": 85.14, "wisconsin": 86.27, "cornell": 71.62, "film": 36.03, "squirrel": 58.41,
           "chameleon": 69.33, "citeseer": 75.45, "pubmed": 89.63, "cora": 87.85}
TARGET_NOTES = {
    "cornell": "the formula gives 77.95 (paper 84.05 - 6.10), but the paper's Cornell ran on the pre-July-2022 "
               "geom-gcn file, whose features are a copy of Texas's; on the corrected file in the shared data the "
               "issue sets the target to the official code's 71.62",
}


#: Base seed of the reproduction's runs (split i uses REPORT_SEED + i). It was fixed before any run at it: the
#: searches use seeds 0 and 1000, and docs/seed_spread.md had reported the test means of seeds 0-4000.
REPORT_SEED = 5000

def paper_best(name: str) -> tuple[float, float, str]:
    dd, d = PAPER_DD[name], PAPER_D[name]
    return (*dd, "DD") if dd[0] >= d[0] else (*d, "D")


def formula_target(name: str) -> float:
    mean, std, _ = paper_best(name)
    official = OFFICIAL_HERE.get(name)
    return round(max(mean - std, official[0] if official else -1.0), 2)


@dataclass
class Outcome:
    dataset: str
    model: str
    status: str  # "ok", "unavailable", "failed", "absent" (no preset file for an optional model)
    reason: str = ""
    test_mean: float = float("nan")
    test_std: float = float("nan")
    val_mean: float = float("nan")
    splits: int = 0
    wall_time: float = 0.0
    epoch_time: float = 0.0
    best_epochs: list[int] = field(default_factory=list)
    epochs: int = 0
    record: str = ""
    test_nodes: int = 0  # summed over the splits that ran


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="continuous-gnn reproduce",
        description="Run GRAFF and GRAFF-NL on every benchmark (10 splits) and regenerate docs/results.md.",
    )
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated datasets (default: {','.join(DATASETS)})")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated presets (default: {','.join(MODELS)})")
    parser.add_argument("--splits", default=None, help="splits, e.g. 0-9 or 0,3 (default: all)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every preset's epochs (a smoke test, not the reproduction)")
    parser.add_argument("--seed", type=int, default=REPORT_SEED,
                        help=f"base seed of every run, split i using seed + i (default: {REPORT_SEED}); no tuned "
                             "preset may have been searched at it")
    parser.add_argument("--data-root", help="raw data root (default: $CONTINUOUS_GNN_DATA, else the user cache)")
    parser.add_argument("--cache-dir", help="processing cache (default: ~/.cache/continuous_gnn/processed)")
    parser.add_argument("--out-dir", help="folder for the JSON records (default: runs/reproduce-<timestamp>)")
    parser.add_argument("--results", default=str(REPO / "docs" / "results.md"),
                        help="markdown file to (re)generate (default: docs/results.md); 'none' to skip")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is fastest when another job shares "
                             "the cores")
    return validate_selection(parser, parser.parse_args(argv))


def validate_selection(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Check and parse the flags this script shares with its siblings: datasets, models, splits, epochs, threads."""
    for key, valid in (("datasets", DATASETS), ("models", tuple(MODELS))):
        values = [v.strip().lower() for v in getattr(args, key).split(",") if v.strip()]
        bad = [v for v in values if v not in valid]
        if bad or not values:
            parser.error(f"--{key}: unknown {bad or 'empty list'}; choose from {', '.join(valid)}")
        setattr(args, key, values)
    try:
        args.splits = parse_splits(args.splits)
    except ValueError as err:
        parser.error(f"--splits: {err}")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be positive")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be positive")
    return args


def check_splits(datasets: list[str], splits: tuple[int, ...] | None) -> None:
    """Raise ValueError unless every selected split exists in every selected dataset (known without its files)."""
    if splits is None:
        return
    for name in datasets:
        missing = [s for s in splits if s >= NUM_SPLITS[name]]
        if missing:
            raise ValueError(f"--splits: split(s) {missing} do not exist: {name} has splits "
                             f"0..{NUM_SPLITS[name] - 1}")


def check_outputs(out_dir: Path, results: str) -> None:
    """Raise ValueError, naming the path and the problem, unless the record folder and the page can be written.

    ``out_dir`` must be a folder or creatable; ``results`` ('none' skips it) must not be a folder, and its folder
    must exist or be creatable. Checked before any run, so that a bad path cannot lose one.
    """
    check_output_folder(out_dir, "--out-dir")
    if results.lower() == "none":
        return
    page = Path(results)
    if page.is_dir() or not page.name:
        raise ValueError(f"--results {results!r} is a folder; pass the markdown file to write, e.g. "
                         f"{str(page / 'results.md')!r}, or 'none'")
    if page.exists():
        if not os.access(page.parent, os.W_OK | os.X_OK):
            raise ValueError(f"--results {results!r} cannot be replaced: its folder is not writable")
    else:
        check_creatable(page, "--results")


def prepare_run(args: argparse.Namespace, prog: str, folder: str) -> tuple[Path, Path, Path] | None:
    """Resolve the data root, cache and record folder (``runs/<folder>-<timestamp>``) and set the threads.

    Returns None, after printing an error that names the fix, when the data root does not exist or the record
    folder or ``args.results`` cannot be written (:func:`check_outputs`); nothing is created then.
    """
    root = resolve_data_root(args.data_root, os.environ)
    if not root.is_dir():
        print(f"{prog}: error: data root {str(root)!r} does not exist; pass --data-root or set "
              "CONTINUOUS_GNN_DATA", file=sys.stderr)
        return None
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir(os.environ)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out_dir) if args.out_dir else REPO / "runs" / f"{folder}-{stamp}"
    try:
        check_outputs(out_dir, args.results)
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return root, cache, out_dir


def provenance(started: str, command: str, total: float, env: dict | None = None) -> str:
    """The "Generated <when> by <command> in <minutes> on <machine>. Versions: ..." line of a generated page.

    ``env`` is a record's ``versions``/``machine`` pair (default: this process's, :func:`environment`).
    """
    env = env or environment()
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    machine = env["machine"]
    return (f"Generated {started} by `{command}` in {total / 60:.1f} min on {machine['platform']} "
            f"({machine['cpu_count']} CPUs, {machine['torch_threads']} torch threads). Versions: {versions}.")


def preset_config(path: Path, args: argparse.Namespace) -> RunConfig:
    """A preset file's config with the ``--splits``, ``--epochs`` and (where the script has it) ``--seed``
    overrides applied."""
    overrides = {}
    if args.splits is not None:
        overrides["splits"] = list(args.splits)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    return resolve_config(read_config_file(path), overrides, sources=[str(path), "command-line flags"])


def write_page(results: str, text: str) -> None:
    """Write a generated page atomically, unless ``results`` is 'none'."""
    if results.lower() == "none":
        return
    with atomic_open(Path(results)) as handle:
        handle.write(text)
    print(f"wrote {results}")


def _run_one(name: str, model: str, args: argparse.Namespace, root: Path, cache: Path, out_dir: Path,
             command: str) -> Outcome:
    path = preset_file(model, name)
    if model in OPTIONAL and not path.is_file():
        return Outcome(name, model, "absent")
    config = preset_config(path, args)
    if model == "graff_tuned" and config.seed in search_seeds(path):
        reason = (f"its search trained with seed {config.seed}, so its validation accuracy there is a maximum over "
                  f"trials; run the reproduction with another --seed")
        print(f"{NAMES[name]:<10} {MODELS[model]:<11} skipped: {reason}", flush=True)
        return Outcome(name, model, "failed", reason=reason)
    try:
        dataset = load_run_dataset(config, root, cache_dir=cache)
    except DatasetUnavailableError as err:
        return Outcome(name, model, "unavailable", reason=str(err))
    progress = not args.quiet and sys.stderr.isatty()
    print(f"{NAMES[name]:<10} {MODELS[model]:<11} ", end="", flush=True)
    try:
        if progress:
            with EpochBars(dataset.name) as bars:
                result = run(config, dataset, progress=bars)
        else:
            result = run(config, dataset)
    except Exception as err:  # noqa: BLE001 - reported in the table, the other runs go on
        print(f"failed: {err}", flush=True)
        return Outcome(name, model, "failed", reason=f"{type(err).__name__}: {err}")
    record = result.to_record(preset=model, preset_file=repo_relative(path), config_file=None,
                              data_root=str(root), command=command)
    path = save_record(record, out_dir / f"{name}-{model}.json")
    agg = record["aggregate"]
    outcome = Outcome(
        name, model, "ok", test_mean=100 * agg["test_mean"], test_std=100 * agg["test_std"],
        val_mean=100 * agg["val_mean"], splits=agg["num_splits"], wall_time=result.wall_time,
        epoch_time=agg["epoch_time_mean"], best_epochs=[s.best_epoch for s in result.splits],
        epochs=config.epochs, record=repo_relative(path),
        test_nodes=sum(int(dataset.split(s.split)[2].sum()) for s in result.splits),
    )
    print(f"test {outcome.test_mean:6.2f} ± {outcome.test_std:5.2f}  val {outcome.val_mean:6.2f}  "
          f"{outcome.wall_time:6.1f} s  ({1000 * outcome.epoch_time:.1f} ms/epoch)", flush=True)
    return outcome


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def _n_splits(n: int) -> str:
    return f" ({n} split{'s' if n != 1 else ''})"


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository when inside it, else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def stretch_bar(name: str) -> float:
    """The stretch goal's bar: max(paper's best mean, the official code here)."""
    official = OFFICIAL_HERE.get(name)
    return max(paper_best(name)[0], official[0] if official else -1.0)


def shortfall_note(outcome: Outcome, target: float) -> str:
    """Why a run misses its target, in test predictions: the gap times the test nodes over its splits."""
    gap = target - outcome.test_mean
    nodes = gap / 100 * outcome.test_nodes
    splits = f"{outcome.splits} split{'s' if outcome.splits != 1 else ''}"
    return (f"{NAMES[outcome.dataset]} misses its target: {MODELS[outcome.model]} is {gap:.2f} points below it, "
            f"about {nodes:.1f} of the {outcome.test_nodes} test predictions over {splits} "
            f"(the splits' test sets are near equal in size). [seed_spread.md](seed_spread.md) measures how far "
            f"the mean moves with the seed alone. Nothing was tuned on test accuracy to close the gap.")


def select_by_validation(outcomes: dict[tuple[str, str], Outcome], name: str) -> Outcome | None:
    """The linear-GRAFF run held against the target: the highest mean validation metric, the paper preset on ties."""
    runs = [o for model in LINEAR if (o := outcomes.get((name, model))) is not None and o.status == "ok"]
    return max(runs, key=lambda o: o.val_mean, default=None)


def render(outcomes: dict[tuple[str, str], Outcome], args: argparse.Namespace, total: float, started: str,
           command: str, out_dir: Path) -> str:
    partial = args.epochs is not None or args.splits is not None or len(args.datasets) < len(DATASETS) \
        or len(args.models) < len(MODELS)
    lines = [
        "<!-- GENERATED by experiments/reproduce.py: do not edit by hand; rerun the command below. -->",
        "",
        "# GRAFF reproduction: node classification on the Geom-GCN splits",
        "",
    ]
    if partial:
        lines += ["> **Partial run** (a subset of datasets/models/splits, or overridden epochs): "
                  "not the reproduction.", ""]
    lines += [
        provenance(started, command, total),
        "",
        "Accuracy in %, mean ± **population** standard deviation (ddof = 0, as the paper's code) over the splits, "
        "test accuracy at the epoch of best validation accuracy (first on ties). Each model is the preset "
        "`continuous_gnn/presets/<model>/<dataset>.toml`, run once as configured with base seed "
        f"{args.seed} (split *i* uses seed {args.seed} + *i*); nothing was selected on test accuracy. Protocol and "
        "every deviation from the official code: [docs/training.md](training.md).",
        "",
        "Columns: **paper** = arXiv v1 Table 1, the better of GRAFF (DD) and GRAFF (D) (which one in brackets); "
        "**official here** = the official code with its `best_lin` parameters on this data (graff-notes §15); "
        "**target** = max(paper − 1 paper std, official here), the issue's table; **GRAFF** = the paper's "
        "hyperparameters (`graff` presets); **GRAFF-tuned** = linear GRAFF with hyperparameters from our own "
        "`continuous-gnn tune` search on mean validation accuracy (`graff_tuned` presets, only where a search was "
        "run; each file's header has its command); **GRAFF-NL** = the paper's GRAFF-NL hyperparameters; "
        "**ours** = whichever of GRAFF and GRAFF-tuned has the higher mean validation accuracy (in brackets; the "
        "targets are linear-GRAFF numbers); **ours − target** = its mean minus the target (✓ when ≥ 0); "
        "**NL − target** = the same for GRAFF-NL; **time** = wall time of all models on the dataset. No search "
        f"trained with seed {args.seed} (each tuned file's header names its search seeds; the reproduction refuses "
        "one that did), so the validation accuracies that choose are not a search's maximum, and the choice "
        "never reads the test metric.",
        "",
        "| dataset | paper | official here | target | GRAFF | GRAFF-tuned | GRAFF-NL | ours − target | "
        "NL − target | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---:|",
    ]
    passed = failed = beaten = 0
    notes: list[str] = []
    for name in args.datasets:
        mean, std, variant = paper_best(name)
        official = OFFICIAL_HERE.get(name)
        official_text = "–" if official is None else (
            _fmt(official[0], official[1]) + ("" if official[2] == 10 else _n_splits(official[2])))
        cells = []
        time_total = 0.0
        unavailable = None
        for model in MODELS:
            o = outcomes.get((name, model))
            if o is None:
                cells.append("not run")
            elif o.status == "ok":
                cells.append(_fmt(o.test_mean, o.test_std) + ("" if o.splits == 10 else _n_splits(o.splits)))
                time_total += o.wall_time
            elif o.status == "absent":
                cells.append("–")
            elif o.status == "unavailable":
                cells.append("unavailable")
                unavailable = o.reason
            else:
                cells.append("failed")
                notes.append(f"{NAMES[name]} {MODELS[model]} failed: {o.reason}")
        target = TARGETS[name]
        ours = select_by_validation(outcomes, name)
        if ours is None:
            ours_text = "–"
        else:
            ok = ours.test_mean >= target
            passed += ok
            failed += not ok
            beaten += ours.test_mean > stretch_bar(name)
            ours_text = f"{ours.test_mean - target:+.2f} {'✓' if ok else '✗'} ({MODELS[ours.model]})"
            if not ok:
                notes.append(shortfall_note(ours, target))
        nl = outcomes.get((name, "graff_nl"))
        nl_text = "–" if nl is None or nl.status != "ok" else \
            f"{nl.test_mean - target:+.2f} {'✓' if nl.test_mean >= target else '✗'}"
        lines.append(f"| {NAMES[name]} | {_fmt(mean, std)} ({variant}) | {official_text} | {target:.2f} | "
                     f"{' | '.join(cells)} | {ours_text} | {nl_text} | {time_total:.0f} |")
        if unavailable:
            notes.append(f"**{NAMES[name]} unavailable**: {'. '.join(unavailable.split('. ')[:2])}.")
        if formula_target(name) != target:
            notes.append(f"{NAMES[name]} target: {TARGET_NOTES.get(name, 'differs from the formula')}.")
    lines += ["", f"Our GRAFF meets {passed} of {passed + failed} targets on the datasets that ran, and beats "
              f"max(paper mean, official here) on {beaten}. Total wall time {total:.0f} s ({total / 60:.1f} min).",
              "", "How far these means move with the seed alone: [seed_spread.md](seed_spread.md) "
              "(`experiments/seed_spread.py`).", ""]
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    lines += [
        "Per run (mean validation accuracy, best epochs over the splits, epoch time):",
        "",
        "| dataset | model | val | best epochs (min / median / max of epochs) | ms / epoch | record |",
        "|---|---|---|---|---:|---|",
    ]
    for name in args.datasets:
        for model in args.models:
            o = outcomes.get((name, model))
            if o is None or o.status != "ok":
                continue
            be = sorted(o.best_epochs)
            lines.append(f"| {NAMES[name]} | {MODELS[model]} | {o.val_mean:.2f} | {be[0]} / {be[len(be) // 2]} / "
                         f"{be[-1]} of {o.epochs} | {1000 * o.epoch_time:.1f} | `{o.record}` |")
    lines += [
        "",
        "Rerun:",
        "",
        "```bash",
        "CONTINUOUS_GNN_DATA=../shared/data continuous-gnn reproduce    # or: python experiments/reproduce.py",
        "```",
        "",
        f"JSON records (resolved config, seeds, versions, per-split metrics, NFE per epoch) are in "
        f"`{repo_relative(out_dir)}/`.",
        "",
    ]
    return "\n".join(lines)


def _check_presets(args: argparse.Namespace) -> None:
    """Resolve every selected preset with the command-line overrides, so that a bad value (e.g. ``--seed -1``)
    fails before anything is created or run. Raises ValueError or OSError."""
    check_splits(args.datasets, args.splits)
    for name in args.datasets:
        for model in args.models:
            path = preset_file(model, name)
            if model in OPTIONAL and not path.is_file():
                continue
            preset_config(path, args)


def _nothing_succeeded(outcomes: dict[tuple[str, str], Outcome], results: str) -> str:
    """The one-line error of a reproduction in which no run succeeded."""
    labels = {"failed": "failed or skipped", "unavailable": "unavailable", "absent": "without a preset file"}
    counts = [f"{n} {label}" for status, label in labels.items()
              if (n := sum(o.status == status for o in outcomes.values()))]
    page = "no page written" if results.lower() == "none" else f"{results} was not written"
    return (f"no run succeeded ({', '.join(counts)}; the reasons are above), so {page}; fix the data root, "
            "--splits, --seed or --models and rerun")


def main(argv: list[str] | None = None) -> int:
    """Run the reproduction; returns 0 when at least one run succeeded, 1 when none did (nothing is written then),
    2 for a bad command line, data root or output path (checked before anything is created or run)."""
    prog = "continuous-gnn reproduce"
    args = _parse_args(argv)
    command = shlex.join(["continuous-gnn", "reproduce", *(sys.argv[1:] if argv is None else argv)])
    try:
        _check_presets(args)
    except (ValueError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    paths = prepare_run(args, prog, "reproduce")
    if paths is None:
        return 2
    root, cache, out_dir = paths
    started_iso = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    print(f"data root {root}; records in {out_dir}; torch threads {torch.get_num_threads()}", flush=True)
    started = time.perf_counter()
    outcomes: dict[tuple[str, str], Outcome] = {}
    for name in args.datasets:
        for model in args.models:
            outcome = _run_one(name, model, args, root, cache, out_dir, command)
            outcomes[(name, model)] = outcome
            if outcome.status == "unavailable":
                print(f"{NAMES[name]:<10} {MODELS[model]:<11} unavailable: {outcome.reason.split('. ')[0]}", flush=True)
    total = time.perf_counter() - started
    print(f"total {total:.0f} s", flush=True)
    if not any(o.status == "ok" for o in outcomes.values()):
        print(f"{prog}: error: {_nothing_succeeded(outcomes, args.results)}", file=sys.stderr)
        return 1
    write_page(args.results, render(outcomes, args, total, started_iso, command, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
