"""``continuous-gnn solvers``: benchmark every solver with direct and adjoint backprop; write docs/solvers.md.

    flock /tmp/continuous_gnn_heavy.lock python experiments/solver_benchmark.py    # the same command

Trains a GRAFF :class:`~continuous_gnn.ContinuousGNN` (hidden 64, T = 3) on Cora and Chameleon (split 0) with
each method (fixed step 0.5 or adaptive rtol 1e-3), each with direct and adjoint backprop, plus the adjoint
memory-vs-T experiment (Chameleon, Euler τ = 1, T = 4 vs T = 64). Every configuration runs in a fresh
subprocess that measures it (:mod:`continuous_gnn.benchmarks.solvers`, which explains the memory method);
speed and memory are reported as ratios to the (euler, direct) baseline of the same session and dataset, and as
absolute numbers. Writes ``docs/solvers.md`` and ``docs/solvers_accuracy_vs_nfe.png`` atomically
(:mod:`continuous_gnn.cli.solvers_page`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

from ..atomic import atomic_write_text, check_output_file
from ..benchmarks.solvers import ModelSettings, fork_server, run_child
from .common import PROG, Subcommand, UsageError, at_least, check_distinct_outputs, project_dir, require_package

__all__ = ["COMMAND", "METHODS", "DATASETS", "SETTINGS"]

METHODS = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams", "dopri5", "bosh3", "adaptive_heun")
DATASETS = ("cora", "chameleon")
NAMES = {"cora": "Cora", "chameleon": "Chameleon"}
HIDDEN, T_END, STEP, RTOL, ATOL, LR = 64, 3.0, 0.5, 1e-3, 1e-3, 0.02
SEMINORM_EPOCHS = 3
#: Per-dataset model settings: dropouts and weight decay of the GRAFF presets (presets/graff), with W = diag
#: (GRAFF-D) on both (Chameleon's preset diag_dom W starts far stiffer: 3x the adaptive NFE at initialisation,
#: which the time budget cannot afford), a larger learning rate for the short epoch budget and T = 3 everywhere.
SETTINGS = {
    "cora": ModelSettings(HIDDEN, T_END, STEP, RTOL, ATOL, LR, w="diag", normalize_features=False, dropout=0.3386,
                          input_dropout=0.5294, weight_decay=0.04125),
    "chameleon": ModelSettings(HIDDEN, T_END, STEP, RTOL, ATOL, LR, w="diag", normalize_features=None,
                               dropout=0.3674, input_dropout=0.4327, weight_decay=0.0004295),
}


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="raw benchmark data (default: $CONTINUOUS_GNN_DATA, else $XDG_CACHE_HOME or ~/.cache, under "
                             "continuous_gnn/data); "
                             "read only, never downloaded into")
    parser.add_argument("--epochs", type=at_least(3, int), default=15,
                        help="training epochs per configuration; the first two are warm-up and not timed "
                             "(default: 15, at least 3)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS,
                        help="default: all (the memory-against-T runs use chameleon whatever this says; "
                             "--no-memory-vs-t leaves them out)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="default: all")
    parser.add_argument("--out", default=str(project_dir() / "docs" / "solvers.md"),
                        help="the report (default: docs/solvers.md)")
    parser.add_argument("--plot", default=None,
                        help="accuracy-vs-NFE figure, which the page links to (default: "
                             "solvers_accuracy_vs_nfe.png beside --out)")
    parser.add_argument("--timeout", type=at_least(1, float), default=240.0,
                        help="seconds per configuration (default: 240)")
    parser.add_argument("--no-memory-vs-t", action="store_true", help="skip the memory-vs-T comparison")
    parser.add_argument("--json", default=None,
                        help="also write the raw results here, under 'results', beside the command, date, machine "
                             "and versions under 'meta'")


def _configs(args: argparse.Namespace) -> list[dict]:
    """Every configuration of the session, in the order they run."""
    base = {"data_root": args.data_root, "epochs": args.epochs}
    configs = []
    for name in args.datasets:
        for method in args.methods:
            for adjoint in (False, True):
                configs.append({**base, "kind": "main", "dataset": name, "method": method, "adjoint": adjoint})
        if "dopri5" in args.methods:  # compared with the first epochs of (dopri5, adjoint)
            configs.append({**base, "kind": "seminorm", "dataset": name, "method": "dopri5", "adjoint": True,
                            "adjoint_kwargs": {"seminorm": True}, "epochs": min(SEMINORM_EPOCHS, args.epochs)})
    if not args.no_memory_vs_t:
        for adjoint in (False, True):
            for t_end in (4.0, 64.0):
                configs.append({**base, "kind": "memory_vs_t", "dataset": "chameleon", "method": "euler",
                                "adjoint": adjoint, "t_end": t_end, "step": 1.0, "epochs": 2, "activation": "tanh"})
    for name in args.datasets:  # the baseline again, to show how much timings drift within the session
        configs.append({**base, "kind": "baseline_repeat", "dataset": name, "method": "euler", "adjoint": False})
    return configs


def _solvers(args: argparse.Namespace, argv: list[str]) -> int:
    from ..data import check_dataset_files, resolve_data_root
    from .solvers_page import machine, mb, plot, report, versions

    require_package("matplotlib", "the benchmark's figure", "plot")
    for flag, values in (("--datasets", args.datasets), ("--methods", args.methods)):
        twice = sorted({value for value in values if values.count(value) > 1})
        if twice:
            raise UsageError(f"{flag} lists {', '.join(twice)} twice; name each once")
    args.data_root = str(resolve_data_root(args.data_root, os.environ))
    if not Path(args.data_root).is_dir():
        raise UsageError(f"data root {args.data_root} is not a folder; pass --data-root or set CONTINUOUS_GNN_DATA")
    if args.plot is None:
        args.plot = str(Path(args.out).parent / "solvers_accuracy_vs_nfe.png")
    check_distinct_outputs(("--out", args.out), ("--plot", args.plot), ("--json", args.json))
    for flag, path in (("--out", args.out), ("--plot", args.plot), ("--json", args.json)):
        if path is not None:
            check_output_file(path, flag)  # before the runs, so that a bad path cannot lose them
    configs = _configs(args)
    for name in dict.fromkeys(config["dataset"] for config in configs):  # before the first run, not in its child
        check_dataset_files(name, args.data_root)
    started = time.perf_counter()
    # What ran, as reproduce records it (experiments/solver_benchmark.py runs the same command)
    command = shlex.join([PROG, *argv])
    context = fork_server()
    results = []
    for i, config in enumerate(configs, 1):
        result = run_child(context, config, SETTINGS[config["dataset"]], args.timeout)
        results.append(result)
        label = f"{config['kind']} {config['dataset']} {config['method']} {'adjoint' if config['adjoint'] else 'direct'}"
        if config.get("t_end"):
            label += f" T={config['t_end']:g}"
        if result.get("failed"):
            status = "FAILED " + result["failed"]
        elif "test_acc" in result:
            status = (f"acc {100 * result['test_acc']:.1f} nfe {result['nfe_forward']:.0f}+{result['nfe_backward']:.0f} "
                      f"{1000 * result['epoch_wall']:.0f} ms peak {mb(result['peak_bytes'])} MB")
        else:
            status = ""
        print(f"[{i}/{len(configs)} {time.perf_counter() - started:6.0f}s] {label}: {status}", file=sys.stderr, flush=True)

    if all(r.get("failed") for r in results):
        print(f"every configuration failed (first: {results[0]['failed']}); nothing written", file=sys.stderr)
        return 1
    environment = versions()
    if args.json:
        meta = {"command": command, "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                "machine": machine(), "versions": environment, "epochs": args.epochs, "datasets": list(args.datasets),
                "methods": list(args.methods), "timeout_s": args.timeout, "total_s": time.perf_counter() - started}
        atomic_write_text(args.json, json.dumps({"meta": meta, "results": results}, indent=1))
    plot(results, Path(args.plot))
    text = report(results, args, command, started, environment)
    atomic_write_text(args.out, text)
    print(f"wrote {args.out} and {args.plot} in {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr)
    return 0


COMMAND = Subcommand(
    "solvers", "benchmark every solver with direct and adjoint backprop and write docs/solvers.md", _arguments,
    _solvers, description=("Solver benchmark: accuracy, NFE, time and memory of every torchdiffeq method, direct vs "
                           "adjoint backprop."),
)
