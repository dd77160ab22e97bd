"""Over-smoothing and over-sharpening study: regenerate ``docs/oversmoothing.md`` and ``docs/figures/*.png``.

    python experiments/oversmoothing.py [--data-root PATH] [--out-dir DIR] [--threads N]

Four experiments (graff-notes §3, §8, §12):

1. **Fresh models, τ × T × solver × W family** on a contextual SBM, through the ``study`` command
   (``continuous-gnn study``): the sign of W's spectrum decides LFD vs HFD (Prop 3.1), the step size
   decides whether the discrete flow keeps it (Theorem 4.3, eq. 14).
2. **K_{100,100}**: trained residual GRAFF (SGCN_gf) vs the non-residual stack F ← ĀFW with as many layers,
   five seeds (the paper: RQ 1.94 vs 4e-4).
3. **Extrapolation**: SGCN_gf trained on Cora and Chameleon at T = 8 (τ = 0.5), saved as checkpoints, then run
   to T = 64 with the ``study`` command (the paper: Cora RQ 0.31 → 0.02, accuracy 0.84 → 0.22; Chameleon RQ
   1.12 at t = 32).
4. **Accuracy against homophily** on contextual SBMs for the W families prod, neg_prod, sum, diag_dom.

The trained models of sections 2 and 3 are ``experiments/configs/studies/*.toml``; the fresh models of section 1
and the homophily models of section 4 are the ``study`` command's packaged ones
(:func:`continuous_gnn.training.presets.study_config`).

``docs/oversmoothing.md`` is generated: edit this script (the experiments) or ``oversmoothing_page.py`` beside it
(the page's text), not the file. CSV records, checkpoints, the
``study`` outputs and the figures go to ``--out-dir`` (default ``runs/oversmoothing-<timestamp>``, not versioned);
the figures are copied into ``docs/figures`` together with the page, once every section has run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from oversmoothing_page import render  # the page, beside this script

from continuous_gnn import Graph
from continuous_gnn.atomic import atomic_open, atomic_write_text, check_output_file, check_output_folder
from continuous_gnn.cli import main as cli_main
from continuous_gnn.data import DatasetUnavailableError, default_cache_dir, load_dataset, resolve_data_root
from continuous_gnn.studies import (
    W_FAMILIES,
    euler_frequencies,
    fresh_model,
    homophily_sweep,
    laplacian_radius,
    plot_accuracy_vs_depth,
    plot_accuracy_vs_homophily,
    plot_rq_vs_time,
    plot_w_spectrum,
    read_csv,
    synthetic_dataset,
    trained_trajectory,
    w_eigenvalues,
    w_spectrum_records,
    write_csv,
)
from continuous_gnn.studies.spectra import EXACT_RADIUS_NODES
from continuous_gnn.training import RunConfig, load_config
from continuous_gnn.training.checkpoint import save_checkpoint
from continuous_gnn.training.presets import study_config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCRIPT = "python experiments/oversmoothing.py"

# Experiment settings (all seeds explicit).
FRESH_ARGS = ["--synthetic", "sbm", "--homophily", "0.3", "--nodes", "300", "--seed", "0", "--step-sizes", "0.1,0.5,1",
              "--times", "1,4,16", "--methods", "euler,rk4", "--w-families", ",".join(W_FAMILIES), "--points", "65"]
BIPARTITE_SEEDS = (0, 1, 2, 3, 4)
EXTRAPOLATION = ("cora", "chameleon")
HOMOPHILY_LEVELS = tuple(round(0.1 * k, 1) for k in range(11))
HOMOPHILY_SEEDS = (0, 1, 2)


def _config(name: str) -> RunConfig:
    """A model of these studies: ``configs/studies/<name>.toml``."""
    return load_config(HERE / "configs" / "studies" / f"{name}.toml")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=SCRIPT, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--data-root", help="raw data root (default: $CONTINUOUS_GNN_DATA, else the default root)")
    parser.add_argument("--out-dir", help="records, checkpoints, study outputs (default: runs/oversmoothing-<stamp>)")
    parser.add_argument("--docs", default=str(REPO / "docs"), help="docs folder to write (default: docs/)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be positive")
    try:  # before the hours of training, so that no run is lost to a bad path
        if args.out_dir is not None:
            check_output_folder(args.out_dir, "--out-dir")
        check_output_folder(args.docs, "--docs")
        check_output_folder(Path(args.docs) / "figures", "--docs figures folder")
        check_output_file(Path(args.docs) / "oversmoothing.md", "--docs page")
    except ValueError as err:
        parser.error(str(err))
    return args


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _study(argv: list[str]) -> None:
    status = cli_main(["study", *argv])
    if status != 0:
        raise RuntimeError(f"continuous-gnn study {shlex.join(argv)} exited with status {status}")


def _copy(src: Path, figures: Path, name: str) -> str:
    shutil.copyfile(src, figures / name)
    return f"figures/{name}"


# ---------------------------------------------------------------------------------------------------
# 1. fresh models
# ---------------------------------------------------------------------------------------------------


def fresh_section(out: Path, figures: Path) -> dict[str, Any]:
    folder = out / "fresh_sbm"
    argv = [*FRESH_ARGS, "--out", str(folder), "--quiet"]
    _study(argv)
    records = read_csv(folder / "study.csv")
    dataset = synthetic_dataset("sbm", nodes=300, homophily=0.3, seed=0)
    rho = laplacian_radius(Graph.from_data(dataset.data, dtype=torch.float64))
    rows = []
    for family in W_FAMILIES:
        eig = w_eigenvalues(fresh_model(study_config("fresh").replace(w=family), dataset.num_features,
                                        dataset.num_classes, 0))
        lam_min, lam_max = float(eig.min()), float(eig.max())
        for tau in (0.1, 0.5, 1.0):
            at = {r["t"]: r for r in records
                  if r["w_family"] == family and r["method"] == "euler" and r["step_size"] == tau}
            rk4 = {r["t"]: r for r in records
                   if r["w_family"] == family and r["method"] == "rk4" and r["step_size"] == tau}
            predicted = euler_frequencies(lam_min, lam_max, rho, tau)
            rows.append({
                "family": family, "tau": tau, "lam_min": lam_min, "lam_max": lam_max,
                "rho_minus": predicted.rho_minus,
                "prop31": "HFD" if predicted.high_frequency_dominant else "LFD",
                "step_bound": predicted.step_bound, "eq14": predicted.eq14, "margin": predicted.margin,
                "rq0": at[0.0]["rayleigh"], "rq4": at[4.0]["rayleigh"], "rq16": at[16.0]["rayleigh"],
                "rq16_rk4": rk4[16.0]["rayleigh"], "nfe_euler": at[16.0]["nfe"], "nfe_rk4": rk4[16.0]["nfe"],
            })
    return {
        "command": "continuous-gnn study " + shlex.join([*FRESH_ARGS, "--out", _rel(folder)]),
        "rq_png": _copy(folder / "rq_vs_time.png", figures, "fresh_sbm_rq_vs_time.png"),
        "w_png": _copy(folder / "w_spectrum.png", figures, "fresh_sbm_w_spectrum.png"),
        "rho": rho, "rho_method": "exact" if dataset.num_nodes <= EXACT_RADIUS_NODES else "power iteration",
        "rows": rows, "name": dataset.name,
    }


# ---------------------------------------------------------------------------------------------------
# 2. K_{100,100}
# ---------------------------------------------------------------------------------------------------

_VARIANTS = {"graff": "GRAFF / SGCN_gf (residual)", "non_residual": "non-residual F ← ĀFW",
             "graff_lr0.01": "GRAFF, lr 0.01", "gcn_config": "\"gcn\" config x + τ·ReLU(ĀxW_t − x)"}


def _bipartite_variants() -> dict[str, Any]:
    """The two models of the toy, plus GRAFF at a lower learning rate and the paper's "gcn" configuration."""
    configs = {name: _config(f"bipartite_{name}") for name in ("graff", "non_residual")}
    configs["graff_lr0.01"] = configs["graff"].replace(lr=0.01)
    configs["gcn_config"] = configs["graff"].replace(w="asymm", omega="const", activation="relu", time_dependent=True)
    return configs


def bipartite_section(out: Path, figures: Path) -> dict[str, Any]:
    configs = _bipartite_variants()
    per_seed, traces, all_records = [], {}, []
    for seed in BIPARTITE_SEEDS:
        data = synthetic_dataset("bipartite", nodes=200, seed=seed)
        row: dict[str, Any] = {"seed": seed}
        for name, config in configs.items():
            trace = trained_trajectory(config.replace(seed=seed), data, select="last", max_points=81)
            for r in trace.records:
                r["variant"] = _VARIANTS[name]
            all_records += trace.records
            final = trace.records[-1]
            try:
                eig = w_eigenvalues(trace.model)
                w_range = (float(eig.min()), float(eig.max()))
            except ValueError:  # the asymmetric, time-dependent W of the "gcn" configuration
                w_range = (math.nan, math.nan)
            row[name] = {"rq0": trace.records[0]["rayleigh"], "rq": final["rayleigh"], "acc": final["acc_test"],
                         "acc_train": final["acc_train"], "w_min": w_range[0], "w_max": w_range[1],
                         "loss": trace.metrics["loss"], "time": trace.metrics["wall_time"]}
            if seed == BIPARTITE_SEEDS[0] and name in ("graff", "non_residual"):
                traces[name] = trace
        per_seed.append(row)
    write_csv(all_records, out / "bipartite.csv")
    # The non-residual trajectory of the first seed, layer by layer: RQ after 1 and 2 layers, and the mean factor
    # per layer afterwards (to compare with (ρ_Δ − 1)² for the side indicator against the μ = 0 component).
    stack = {r["steps"]: r["rayleigh"] for r in all_records
             if r["seed"] == BIPARTITE_SEEDS[0] and r["variant"] == _VARIANTS["non_residual"]}
    last = max(stack)
    decay = {"rq1": stack[1], "rq2": stack[2], "rq_last": stack[last], "layers": last,
             "factor": (stack[last] / stack[2]) ** (1 / (last - 2))}
    first = [r for r in all_records if r["seed"] == BIPARTITE_SEEDS[0] and r["variant"] in
             (_VARIANTS["graff"], _VARIANTS["non_residual"])]
    rho = 200 / 101
    rq_png = plot_rq_vs_time(first, figures / "bipartite_rq_vs_steps.png", x="steps", hue="variant", panel=None,
                             rho=rho, title=f"K_{{100,100}}, seed {BIPARTITE_SEEDS[0]}: RQ along the 80 layers")
    acc_png = plot_accuracy_vs_depth(first, figures / "bipartite_accuracy_vs_steps.png", x="steps", hue="variant",
                                     panel=None, title="K_{100,100}: test accuracy of the decoded state")
    spectra = []
    for name, trace in traces.items():
        spectra += w_spectrum_records(trace.model, _VARIANTS[name])
    w_png = plot_w_spectrum(spectra, figures / "bipartite_w_spectrum.png", title="learned W, K_{100,100}")
    return {"per_seed": per_seed, "seeds": BIPARTITE_SEEDS, "rho": rho, "configs": configs,
            "csv": _rel(out / "bipartite.csv"), "decay": decay,
            "rq_png": "figures/" + rq_png.name, "acc_png": "figures/" + acc_png.name, "w_png": "figures/" + w_png.name}


# ---------------------------------------------------------------------------------------------------
# 3. extrapolation
# ---------------------------------------------------------------------------------------------------


def extrapolation_section(out: Path, figures: Path, root: Path, cache: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"datasets": EXTRAPOLATION, "config": _config("extrapolation")}
    combined, spectra, rhos = [], [], {}
    for name in EXTRAPOLATION:
        try:
            dataset = load_dataset(name, root, cache_dir=cache)
        except DatasetUnavailableError as err:
            results[name] = {"unavailable": str(err).split(". ")[0]}
            continue
        config = _config("extrapolation").replace(dataset=name)
        step = config.step_size  # the flow is extrapolated with the step it was trained with
        trace = trained_trajectory(config, dataset, t_end=config.time, max_points=2)
        checkpoint = save_checkpoint(out / f"{name}_sgcn_gf_T8.pt", trace.model, config,
                                     num_features=dataset.num_features, num_classes=dataset.num_classes,
                                     metadata={"data": {"dataset": name}, "split": 0, "metrics": trace.metrics})
        folder = out / f"extrapolation_{name}"
        argv = ["--checkpoint", str(checkpoint), "--data-root", str(root), "--step-sizes", f"{step:g}",
                "--times", "8,16,32,64", "--points", "65", "--out", str(folder), "--quiet"]
        _study(argv)
        records = read_csv(folder / "study.csv")
        combined += records
        rhos[dataset.name] = laplacian_radius(Graph.from_data(dataset.data, dtype=torch.float64))
        spectra += w_spectrum_records(trace.model, f"{dataset.name} (learned)")
        at = {r["t"]: r for r in records}
        results[name] = {
            "name": dataset.name, "metrics": trace.metrics, "at": at, "rho": rhos[dataset.name],
            "step_size": step,
            "command": "continuous-gnn study " + shlex.join(
                ["--checkpoint", _rel(checkpoint), "--step-sizes", f"{step:g}", "--times", "8,16,32,64", "--points", "65",
                 "--out", _rel(folder)]),
            "eig": (min(r["eigenvalue"] for r in spectra if r["label"].startswith(dataset.name)),
                    max(r["eigenvalue"] for r in spectra if r["label"].startswith(dataset.name))),
        }
    if combined:
        rq = plot_rq_vs_time(combined, figures / "extrapolation_rq_vs_time.png", hue=None, panel="source", rho=rhos,
                             mark_times=(8.0,), title="SGCN_gf trained at T = 8 (dotted), run to t = 64")
        acc = plot_accuracy_vs_depth(combined, figures / "extrapolation_accuracy_vs_time.png", hue=None,
                                     panel="source", mark_times=(8.0,), title="test accuracy of the decoded F(t)")
        w = plot_w_spectrum(spectra, figures / "extrapolation_w_spectrum.png", title="learned W (SGCN_gf, T = 8)")
        results["figures"] = ["figures/" + p.name for p in (rq, acc, w)]
    return results


# ---------------------------------------------------------------------------------------------------
# 4. homophily
# ---------------------------------------------------------------------------------------------------


def homophily_section(out: Path, figures: Path) -> dict[str, Any]:
    records = homophily_sweep(HOMOPHILY_LEVELS, W_FAMILIES, seeds=HOMOPHILY_SEEDS, config=study_config("homophily"))
    write_csv(records, out / "homophily.csv")
    png = plot_accuracy_vs_homophily(records, figures / "homophily_accuracy.png",
                                     title="contextual SBM (n=500, 5 classes): test accuracy")
    table: dict[str, dict[float, float]] = {}
    for family in W_FAMILIES:
        table[family] = {h: statistics.mean(r["acc_test"] for r in records
                                            if r["w_family"] == family and r["homophily"] == h)
                         for h in HOMOPHILY_LEVELS}
    return {"table": table, "levels": HOMOPHILY_LEVELS, "seeds": HOMOPHILY_SEEDS, "png": "figures/" + png.name,
            "csv": _rel(out / "homophily.csv"), "config": study_config("homophily")}


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    command = shlex.join([*SCRIPT.split(), *(sys.argv[1:] if argv is None else argv)])
    root = resolve_data_root(args.data_root, os.environ)
    cache = default_cache_dir(os.environ)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out_dir) if args.out_dir else REPO / "runs" / f"oversmoothing-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs)
    # The sections draw their figures here; they join docs/figures only with the page, so that an interrupted run
    # leaves the docs as they were rather than new figures beside the old page.
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print(f"{SCRIPT}: records in {out}; data root {root}; torch threads {torch.get_num_threads()}", flush=True)
    sections: dict[str, Any] = {}
    timings: dict[str, float] = {}
    steps = [
        ("fresh", lambda: fresh_section(out, figures)),
        ("bipartite", lambda: bipartite_section(out, figures)),
        ("extrapolation", lambda: extrapolation_section(out, figures, root, cache)),
        ("homophily", lambda: homophily_section(out, figures)),
    ]
    for name, step in steps:
        t0 = time.perf_counter()
        sections[name] = step()
        timings[name] = time.perf_counter() - t0
        print(f"  {name}: {timings[name]:.0f} s", flush=True)
    text = render(sections, timings, started, command, _rel(out), root, SCRIPT)
    pngs = sorted(figures.glob("*.png"))
    for png in pngs:
        with atomic_open(docs / "figures" / png.name, "wb") as handle:
            handle.write(png.read_bytes())
    target = atomic_write_text(docs / "oversmoothing.md", text)
    print(f"wrote {target} and {len(pngs)} figures in {docs / 'figures'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
