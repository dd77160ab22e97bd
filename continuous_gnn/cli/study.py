"""``continuous-gnn study``: sweep step size τ × time T × solver × W family and write a CSV and figures.

Examples:

.. code-block:: console

    continuous-gnn study --synthetic sbm --homophily 0.3 --nodes 300 --out out/sbm
    continuous-gnn study --dataset cora --step-sizes 0.5,1 --times 1,4,16,64 --out out/cora
    continuous-gnn study --checkpoint model.pt --times 8,16,32,64 --step-sizes 0.5 --out out/ext
    continuous-gnn study --homophily-sweep 0.1,0.5,0.9 --w-families prod,neg_prod --out out/hom

The data is a benchmark (``--dataset``, read from ``--data-root``, else ``$CONTINUOUS_GNN_DATA``, else the
default root) or a synthetic graph (``--synthetic``). The models are fresh ones, one per W family and
initialised from ``--seed``, or the trained model of ``--checkpoint`` (written by
:func:`continuous_gnn.training.save_checkpoint`), whose stored data description is used when no data flag
is given. ``--out DIR`` receives ``study.csv`` (one row per configuration and saved time),
``study.json`` (settings, data, versions, date), ``rq_vs_time.png``, ``accuracy_vs_depth.png`` and
``w_spectrum.png``. ``--step-sizes`` apply to the fixed-grid methods of ``--methods`` (one trajectory per method and
τ); an adaptive method in the same sweep runs once, choosing its own steps, and ``--step-sizes`` with adaptive
methods only is an error.

``--homophily-sweep LIST`` (target edge homophilies in [0, 1], e.g. ``0.1,0.5,0.9``) runs the homophily study
instead of the depth sweep: for each level a contextual SBM is drawn (``--nodes``, default 500, 5 classes,
graph seed ``--seed``; the levels set a minimum, e.g. 25 nodes for 0.5 and 45 for 1, checked up front, see
:func:`~continuous_gnn.studies.homophily_min_nodes`) and one small GRAFF model per ``--w-families`` entry is trained
on it
(:func:`continuous_gnn.studies.homophily_sweep` with the packaged study config ``homophily``: Ω = 0, no
source, T = 3, τ = 1, hidden ``--hidden`` (default 16), ``--epochs`` (default 100), seed ``--seed``). The fresh
models of the depth sweep are the packaged study config ``fresh`` (the spectral-filter setting, hidden
``--hidden``, default 16), one per W family.
``--out DIR`` then receives ``homophily.csv`` (one row per level and family: target and measured homophily,
train/validation/test accuracy at the best validation epoch), ``accuracy_vs_homophily.png`` and
``homophily.json``. It takes ``--synthetic sbm`` or no data option; the depth-sweep options (``--step-sizes``,
``--times``, ``--methods``, ``--points``, ``--split``), ``--checkpoint``, ``--dataset`` and ``--homophily``
do not apply to it, and ``--epochs`` applies only to it.

Each unit of work (one trajectory of the depth sweep, one trained model of the homophily sweep) is saved in
``--out``/``units/`` as soon as it finishes, under its settings (the model's config and seed, the data, the solver,
the readouts, a checkpoint's SHA-256); a study killed and rerun with the same flags and ``--out`` reads those back
instead of computing them again, and writes the CSV, figures and JSON, as always, once every unit has finished.

Mistakes in the command line or its values, including an ``--out`` that is a file or cannot be created (checked
before any work), print one line on stderr and exit with status 2; a failed solve exits with status 1
(the ladder of :func:`continuous_gnn.cli.main`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from .common import PROG, Subcommand, UsageError, add_data_flags, choices, data_paths, floats, number, output_folder, require_package
from .downloads import fetch_dataset
from .study_homophily import DEFAULT_FAMILIES, run_homophily, unit_found

__all__ = ["COMMAND", "MAX_POINTS"]

#: Defaults of the depth-sweep flags (applied in the command, so that typing one can be detected).
_DEFAULTS = {"step_sizes": "0.1,0.5,1", "times": "1,4,16", "methods": "euler", "points": "65"}
#: Most readouts per trajectory: every readout stores a row and evaluates the decoder, so far beyond what a figure
#: can show (or a fixed grid has steps) only costs time and memory; a typo like 1000000000 would never finish.
MAX_POINTS = 10_000


def _arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``study`` flags on ``parser``."""
    data = parser.add_argument_group("data (one of --dataset, --synthetic; or the checkpoint's own)")
    data.add_argument("--dataset", metavar="NAME", help="benchmark dataset, e.g. cora, chameleon, texas")
    add_data_flags(data, cache=False)
    data.add_argument("--synthetic", metavar="KIND", help="synthetic graph: sbm, bipartite, ring, path, grid")
    data.add_argument("--homophily", metavar="H", help="target edge homophily of --synthetic sbm (default: 0.5)")
    data.add_argument("--nodes", metavar="N",
                      help="number of nodes of a synthetic graph (default: 200; 500 with --homophily-sweep, which "
                           "needs enough nodes for its levels: 25 for 0.5, 45 for 1)")
    data.add_argument("--split", metavar="I", help="split whose masks give the accuracies (default: 0)")
    data.add_argument("--seed", metavar="S", default="0",
                      help="seed of the synthetic graph and of fresh models (default: 0)")
    model = parser.add_argument_group("model (fresh models unless --checkpoint)")
    model.add_argument("--checkpoint", metavar="PATH", help="a trained model saved with save_checkpoint")
    model.add_argument("--hidden", metavar="D", help="hidden width of fresh models (default: 16)")
    model.add_argument("--w-families", metavar="LIST",
                       help=f"W styles of fresh models, comma-separated (default: {DEFAULT_FAMILIES})")
    sweep = parser.add_argument_group("depth sweep")
    sweep.add_argument("--step-sizes", metavar="LIST",
                       help="step sizes τ of the fixed-grid methods; adaptive methods in the same sweep run once "
                            "with their own steps, and --step-sizes with adaptive methods only is an error "
                            f"(default: {_DEFAULTS['step_sizes']})")
    sweep.add_argument("--times", metavar="LIST",
                       help="readout times T; the flow runs to the largest; multiples of every τ "
                            f"(default: {_DEFAULTS['times']})")
    sweep.add_argument("--methods", metavar="LIST",
                       help=f"solvers, e.g. euler,rk4,dopri5 (default: {_DEFAULTS['methods']})")
    sweep.add_argument("--points", metavar="K",
                       help="readouts per trajectory besides the requested times, 2 to "
                            f"{MAX_POINTS} (a fixed grid gives at most one per step; more than a figure can show "
                            f"only costs time) (default: {_DEFAULTS['points']})")
    homophily = parser.add_argument_group("homophily sweep (instead of the depth sweep)")
    homophily.add_argument("--homophily-sweep", metavar="LIST",
                           help="train one model per W family on contextual SBMs with these target edge "
                                "homophilies in [0, 1], e.g. 0.1,0.5,0.9; writes homophily.csv and "
                                "accuracy_vs_homophily.png")
    homophily.add_argument("--epochs", metavar="E",
                           help="training epochs per model of --homophily-sweep (default: 100)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", default="study", help="output folder (default: ./study)")
    out.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _load_data(args: argparse.Namespace, metadata: dict[str, Any], normalize: bool | None, seed: int):
    """The dataset and a JSON description of it (for study.json)."""
    from ..data import load_dataset
    from ..studies import SYNTHETIC_KINDS, synthetic_dataset

    if args.dataset is not None and args.synthetic is not None:
        raise UsageError("give either --dataset or --synthetic, not both")
    spec = dict(metadata.get("data") or {}) if args.dataset is None and args.synthetic is None else {}
    if args.dataset is None and args.synthetic is None and not spec:
        raise UsageError("no data: give --dataset NAME or --synthetic KIND (or a --checkpoint that records its data)")
    if args.synthetic is None and args.dataset is None:
        # The checkpoint's own data description.
        name, kind = spec.get("dataset"), spec.get("synthetic")
    else:
        name, kind = args.dataset, args.synthetic
    if name is not None:
        typed = [flag for flag, value in (("--nodes", args.nodes), ("--homophily", args.homophily)) if value is not None]
        if typed:
            raise UsageError(f"{' and '.join(typed)} appl{'ies' if len(typed) == 1 else 'y'} to --synthetic graphs, "
                             f"not to the dataset {name!r}; drop {'it' if len(typed) == 1 else 'them'} or use "
                             "--synthetic KIND")
        root, cache = data_paths(args)
        fetch_dataset(args, name, root)
        dataset = load_dataset(name, root, cache_dir=cache, normalize_features=normalize)
        return dataset, {"dataset": dataset.name, "data_root": str(root)}
    if kind not in SYNTHETIC_KINDS:
        raise UsageError(f"--synthetic: unknown graph {kind!r}; choose from {', '.join(SYNTHETIC_KINDS)}")
    nodes = number(args.nodes, "--nodes", int, spec.get("nodes", 200), minimum=4)
    homophily = number(args.homophily, "--homophily", float, spec.get("homophily", 0.5), minimum=0.0, maximum=1.0)
    if args.homophily is not None and kind != "sbm":
        raise UsageError("--homophily applies to --synthetic sbm only")
    graph_seed = spec.get("seed", seed) if args.synthetic is None else seed
    extra = {k: spec[k] for k in ("num_classes", "num_features", "snr", "avg_degree") if k in spec}
    dataset = synthetic_dataset(kind, nodes=nodes, homophily=homophily, seed=graph_seed, **extra)
    if dataset.num_nodes != nodes and not args.quiet:  # a square grid, or two equal sides
        print(f"{PROG} study: --synthetic {kind} has {dataset.num_nodes} nodes for --nodes {nodes}", flush=True)
    # What was built: its node count, and a homophily only where the generator takes one.
    return dataset, {"synthetic": kind, "nodes": dataset.num_nodes, **({"homophily": homophily} if kind == "sbm" else {}),
                     "seed": graph_seed, **extra}


def _or_default(args: argparse.Namespace, name: str) -> str:
    value = getattr(args, name)
    return _DEFAULTS[name] if value is None else value


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from ..energies import W_STYLES
    from ..ode.methods import METHODS, is_fixed
    from ..studies import (
        depth_units,
        fresh_model,
        laplacian_radius,
        model_family,
        plot_accuracy_vs_depth,
        plot_rq_vs_time,
        plot_w_spectrum,
        run_units,
        w_spectrum_records,
        write_csv,
    )
    from ..studies.trajectory import MAX_NFE, check_grid
    from ..training import check_before_loading, environment
    from ..training.checkpoint import load_checkpoint
    from ..training.presets import study_config

    require_package("matplotlib", "the study's figures", "plot")
    if args.homophily_sweep is not None:
        return run_homophily(args, argv)
    if args.epochs is not None:
        raise UsageError("--epochs applies to --homophily-sweep only (the depth sweep trains nothing)")
    seed = number(args.seed, "--seed", int, 0, minimum=0)
    split = number(args.split, "--split", int, None, minimum=0)
    points = number(_or_default(args, "points"), "--points", int, 65, minimum=2, maximum=MAX_POINTS)
    step_sizes = _positive_floats(_or_default(args, "step_sizes"), "--step-sizes")
    times = _positive_floats(_or_default(args, "times"), "--times")
    methods = choices(_or_default(args, "methods"), "--methods", [m for m in METHODS if m != "scipy_solver"])
    if not any(is_fixed(m) for m in methods):
        if args.step_sizes is not None:
            raise UsageError(
                f"--step-sizes applies to fixed-grid methods, not to the adaptive method{'s' * (len(methods) > 1)} "
                f"{', '.join(methods)}, which {'choose their' if len(methods) > 1 else 'chooses its'} own steps; "
                "remove --step-sizes, or add a fixed-grid method such as euler or rk4 to --methods"
            )
        step_sizes = []
    for tau in step_sizes:  # before a grid of a tiny step is built, or the data loaded
        try:
            check_grid(max(times), tau, MAX_NFE)
        except ValueError as err:
            raise UsageError(f"--step-sizes {tau:g} with --times up to {max(times):g}: {err}") from None
    out = output_folder(args.out)

    checkpoint = None
    if args.checkpoint is not None:
        if args.w_families is not None:
            raise UsageError("--w-families applies to fresh models; a checkpoint keeps its own W")
        if args.hidden is not None:
            raise UsageError("--hidden applies to fresh models; a checkpoint keeps its own width")
        checkpoint = load_checkpoint(args.checkpoint)
        families = None
    else:
        families = choices(DEFAULT_FAMILIES if args.w_families is None else args.w_families, "--w-families",
                            [w for w in W_STYLES if w != "asymm"])
    fresh = study_config("fresh")
    hidden = number(args.hidden, "--hidden", int, fresh.hidden, minimum=1)
    for family in families or ():
        # A fresh model is only evaluated: its float32 parameters and the float64 copy its trajectories integrate.
        check_before_loading(fresh.replace(hidden=hidden, w=family), copies=3)

    metadata = checkpoint.metadata if checkpoint is not None else {}
    normalize = checkpoint.config.normalize_features if checkpoint is not None else None
    dataset, data_info = _load_data(args, metadata, normalize, seed)
    if split is None:
        split = int(metadata.get("split", 0)) if checkpoint is not None and args.dataset is None \
            and args.synthetic is None else 0
    if not 0 <= split < dataset.num_splits:
        raise UsageError(f"--split {split} does not exist: {dataset.name} has splits 0..{dataset.num_splits - 1}")
    if checkpoint is not None and (checkpoint.num_features, checkpoint.num_classes) != (
            dataset.num_features, dataset.num_classes):
        raise UsageError(
            f"the checkpoint's model takes {checkpoint.num_features} features and {checkpoint.num_classes} classes, "
            f"but {dataset.name} has {dataset.num_features} and {dataset.num_classes}; use the data it was trained on"
        )

    def announce(rows: list[dict[str, Any]]) -> None:
        first = rows[0]
        tau = "adaptive" if first["step_size"] is None else f"τ={first['step_size']:g}"
        failed = first["failed_at"]
        # A blown-up solve keeps the readouts before the failure; the tables and figures stop there.
        note = "" if math.isnan(failed) else (f"  the solve failed at t={failed:g}: no readouts after "
                                            f"t={max(r['t'] for r in rows):g}")
        print(f"  {first['model']} {first['w_family']:<10} {first['method']:<14} {tau}{note}", flush=True)

    if not args.quiet:
        print(f"{PROG} study: {dataset.name}, {dataset.num_nodes} nodes; T up to {max(times):g}")
    base = fresh.replace(hidden=hidden) if checkpoint is None else checkpoint.config
    units = depth_units(
        dataset, step_sizes=step_sizes, times=times, methods=methods, w_families=families,
        model=None if checkpoint is None else checkpoint.model, config=base, split=split, seed=seed,
        max_points=points,
    )
    # A unit's settings name the model's config; the data and a checkpoint's weights identify the rest.
    model_id = "fresh" if checkpoint is None else {"checkpoint": _digest(args.checkpoint)}
    records = run_units(units, out / "units", {"data": data_info, "weights": model_id},
                        on_computed=None if args.quiet else lambda unit, rows: announce(rows),
                        on_found=None if args.quiet else unit_found)

    csv_path = write_csv(records, out / "study.csv")
    from ..graph import Graph

    rho = laplacian_radius(Graph.from_data(dataset.data, self_loops=base.self_loops, dtype=torch.float64))
    marks = (checkpoint.config.time,) if checkpoint is not None else ()  # the training depth
    figures = [
        plot_rq_vs_time(records, out / "rq_vs_time.png", rho=rho, mark_times=marks,
                        title=f"Rayleigh quotient along the flow, {dataset.name}"),
        plot_accuracy_vs_depth(records, out / "accuracy_vs_depth.png", mark_times=marks,
                               title=f"test accuracy of the decoded state F(t), {dataset.name}"),
    ]
    spectra: list[dict[str, Any]] = []
    note = None
    try:
        if checkpoint is None:
            for family in families:
                model = fresh_model(base.replace(w=family), dataset.num_features, dataset.num_classes, seed)
                spectra += w_spectrum_records(model, f"{family} (initial)")
        else:
            spectra += w_spectrum_records(checkpoint.model, f"{model_family(checkpoint.config)} (learned)")
    except ValueError as err:
        note = f"no W spectrum: {err}"
    if spectra:
        figures.append(plot_w_spectrum(spectra, out / "w_spectrum.png", title="eigenvalues of W"))

    summary = {
        "command": " ".join([PROG, *argv]),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "data": data_info,
        "split": split,
        "model": ("checkpoint " + str(args.checkpoint)) if checkpoint is not None else "fresh",
        # Every row replaces w, method, step_size and time with its own (study.csv), so this is no run's config.
        "base_config": base.to_dict(),
        "num_classes": dataset.num_classes,  # chance accuracy is about 1 / num_classes
        "seed": seed,
        "w_families": families,
        "methods": methods,
        "step_sizes": step_sizes,
        "times": times,
        "points": points,
        "rho_laplacian": rho,
        "rows": len(records),
        "files": [csv_path.name, *(p.name for p in figures)],
        **environment(),
    }
    if note:
        summary["note"] = note
    atomic_write_text(out / "study.json", json.dumps(summary, indent=1) + "\n")

    if not args.quiet:
        width = max([10, *(len(r["w_family"]) for r in records)])
        print(f"{'W':<{width}} {'method':<8} {'τ':>6} {'T':>6} {'RQ':>9} {'test acc':>8} {'NFE':>6}")
        for r in records:
            if r["requested"]:
                tau = "-" if r["step_size"] is None else f"{r['step_size']:g}"
                print(f"{r['w_family']:<{width}} {r['method']:<8} {tau:>6} {r['t']:>6g} {r['rayleigh']:>9.3g} "
                      f"{r['acc_test']:>8.3f} {r['nfe']:>6d}")
        if note:
            print(note)
        written = ", ".join(str(p) for p in [*figures, out / "study.json"])
        print(f"wrote {csv_path} ({len(records)} rows), {written}")
    return 0


def _digest(path: str) -> str:
    """SHA-256 of a checkpoint file: its weights, which its config does not identify."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _positive_floats(text: str, flag: str) -> list[float]:
    return floats(text, flag, lambda v: 0 < v < float("inf"), "values must be positive and finite")


COMMAND = Subcommand("study", "sweep step size, integration time, solver and W family; write a CSV and figures",
                     _arguments, _run)
