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

``docs/oversmoothing.md`` is generated: edit this script, not the file. CSV records, checkpoints and the
``study`` outputs go to ``--out-dir`` (default ``runs/oversmoothing-<timestamp>``, not versioned).
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

from continuous_gnn import Graph
from continuous_gnn.cli import main as cli_main
from continuous_gnn.data import DatasetUnavailableError, default_cache_dir, load_dataset, resolve_data_root
from continuous_gnn.studies import (
    W_FAMILIES,
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
from continuous_gnn.training import RunConfig, environment, load_config
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
#: graff-notes §12(b): the paper's extrapolation numbers (TMLR Figure 2).
PAPER_EXTRAPOLATION = {
    "cora": "RQ 0.31 → 0.02 by t = 32; accuracy 0.84 at t = 8 → 0.22 at t = 64",
    "chameleon": "RQ 1.12 at t = 32 (Squirrel 1.45)",
}


def _config(name: str) -> RunConfig:
    """A model of these studies: ``configs/studies/<name>.toml``."""
    return load_config(HERE / "configs" / "studies" / f"{name}.toml")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=SCRIPT, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="raw data root (default: $CONTINUOUS_GNN_DATA, else the default root)")
    parser.add_argument("--out-dir", help="records, checkpoints, study outputs (default: runs/oversmoothing-<stamp>)")
    parser.add_argument("--docs", default=str(REPO / "docs"), help="docs folder to write (default: docs/)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be positive")
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
    os.chmod(figures / name, 0o644)
    return f"figures/{name}"


def _f(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e4):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


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
        lam_plus, lam_minus = max(lam_max, 0.0), max(-lam_min, 0.0)
        rho_minus = lam_minus * (rho - 1)
        for tau in (0.1, 0.5, 1.0):
            at = {r["t"]: r for r in records
                  if r["w_family"] == family and r["method"] == "euler" and r["step_size"] == tau}
            rk4 = {r["t"]: r for r in records
                   if r["w_family"] == family and r["method"] == "rk4" and r["step_size"] == tau}
            high = 1 + tau * rho_minus                     # top frequency along the most negative eigenvector
            low = max(1 + tau * lam_plus, abs(1 - tau * lam_minus))  # the best competitor
            rows.append({
                "family": family, "tau": tau, "lam_min": lam_min, "lam_max": lam_max, "rho_minus": rho_minus,
                "prop31": "HFD" if rho_minus > lam_plus else "LFD",
                "eq14": lam_plus / (rho - 1) < lam_minus < 2 / (tau * (2 - rho)),
                "margin": high / low,
                "rq0": at[0.0]["rayleigh"], "rq4": at[4.0]["rayleigh"], "rq16": at[16.0]["rayleigh"],
                "rq16_rk4": rk4[16.0]["rayleigh"], "nfe_euler": at[16.0]["nfe"], "nfe_rk4": rk4[16.0]["nfe"],
            })
    return {
        "command": "continuous-gnn study " + shlex.join([*FRESH_ARGS, "--out", _rel(folder)]),
        "rq_png": _copy(folder / "rq_vs_time.png", figures, "fresh_sbm_rq_vs_time.png"),
        "w_png": _copy(folder / "w_spectrum.png", figures, "fresh_sbm_w_spectrum.png"),
        "rho": rho, "rows": rows, "name": dataset.name,
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
    return {"per_seed": per_seed, "rho": rho, "configs": configs, "csv": _rel(out / "bipartite.csv"), "decay": decay,
            "rq_png": "figures/" + rq_png.name, "acc_png": "figures/" + acc_png.name, "w_png": "figures/" + w_png.name}


# ---------------------------------------------------------------------------------------------------
# 3. extrapolation
# ---------------------------------------------------------------------------------------------------


def extrapolation_section(out: Path, figures: Path, root: Path, cache: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    combined, spectra, rhos = [], [], {}
    for name in EXTRAPOLATION:
        try:
            dataset = load_dataset(name, root, cache_dir=cache)
        except DatasetUnavailableError as err:
            results[name] = {"unavailable": str(err).split(". ")[0]}
            continue
        config = _config("extrapolation").replace(dataset=name)
        trace = trained_trajectory(config, dataset, t_end=config.time, max_points=2)
        checkpoint = save_checkpoint(out / f"{name}_sgcn_gf_T8.pt", trace.model, config,
                                     num_features=dataset.num_features, num_classes=dataset.num_classes,
                                     metadata={"data": {"dataset": name}, "split": 0, "metrics": trace.metrics})
        folder = out / f"extrapolation_{name}"
        argv = ["--checkpoint", str(checkpoint), "--data-root", str(root), "--step-sizes", "0.5",
                "--times", "8,16,32,64", "--points", "65", "--out", str(folder), "--quiet"]
        _study(argv)
        records = read_csv(folder / "study.csv")
        combined += records
        rhos[dataset.name] = laplacian_radius(Graph.from_data(dataset.data, dtype=torch.float64))
        spectra += w_spectrum_records(trace.model, f"{dataset.name} (learned)")
        at = {r["t"]: r for r in records}
        results[name] = {
            "name": dataset.name, "metrics": trace.metrics, "at": at, "rho": rhos[dataset.name],
            "command": "continuous-gnn study " + shlex.join(
                ["--checkpoint", _rel(checkpoint), "--step-sizes", "0.5", "--times", "8,16,32,64", "--points", "65",
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
    return {"table": table, "png": "figures/" + png.name, "csv": _rel(out / "homophily.csv"),
            "config": study_config("homophily")}


# ---------------------------------------------------------------------------------------------------
# the document
# ---------------------------------------------------------------------------------------------------


def _fresh_md(res: dict[str, Any]) -> list[str]:
    rows = res["rows"]
    rho = res["rho"]

    def row(family: str, tau: float) -> dict[str, Any]:
        return next(r for r in rows if r["family"] == family and r["tau"] == tau)

    neg1, neg01, prod1 = row("neg_prod", 1.0), row("neg_prod", 0.1), row("prod", 1.0)
    lines = [
        "## 1. Fresh models: the sign of W's spectrum and the step size",
        "",
        "Command (figures copied to `docs/figures/`):",
        "",
        "```",
        res["command"],
        "```",
        "",
        f"![RQ against t for fresh models]({res['rq_png']})",
        "",
        f"![Initial spectra of W]({res['w_png']})",
        "",
        f"Graph: {res['name']} (not bipartite), ρ_Δ = {rho:.3f} (power iteration). Models: fresh GRAFF energies with "
        "Ω = 0 and β = 0 (the spectral-filter setting), hidden 16, seed 0, linear flow Ḟ = ĀFW, Euler and rk4. "
        "The decoder is untrained, so only the RQ curves carry meaning here.",
        "",
        "Each eigenvector of W with eigenvalue λ multiplies graph frequency μ by 1 + τλ(1 − μ) per Euler step "
        "(graff-notes §8, eq. 15–16): low-pass for λ > 0, high-pass for λ < 0. The flow is HFD when the growth "
        "1 + τ|λ₋|(ρ_Δ − 1) of the top frequency along the most negative eigenvector beats both 1 + τλ₊ "
        "(lowest frequency, most positive eigenvector; Prop 3.1: ρ₋ = |λ₋|(ρ_Δ − 1) > λ₊) and |1 − τ|λ₋|| "
        "(lowest frequency along the negative eigenvector; eq. 14: |λ₋| < 2/(τ(2 − ρ_Δ))). `margin` below is "
        "the ratio of the first to the larger of the other two: > 1 means HFD in the long run, and the RQ "
        "approaches its limit like margin^(−2·steps).",
        "",
        "| W | τ | λ_min | λ_max | ρ₋ vs λ₊ (Prop 3.1) | eq. 14 holds | margin/step | RQ t=0 | RQ t=4 "
        "| RQ t=16 (Euler) | RQ t=16 (rk4) | NFE to 16: Euler / rk4 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['tau']:g} | {r['lam_min']:.2f} | {r['lam_max']:.2f} | {r['prop31']} "
            f"({_f(r['rho_minus'], 2)} vs {max(r['lam_max'], 0):.2f}) | {'yes' if r['eq14'] else 'no'} | "
            f"{r['margin']:.3f} | {_f(r['rq0'])} | {_f(r['rq4'])} | {_f(r['rq16'])} | {_f(r['rq16_rk4'])} | "
            f"{r['nfe_euler']} / {r['nfe_rk4']} |")
    prod_all_down = all(row("prod", t)["rq16"] < 0.05 for t in (0.1, 0.5, 1.0))
    lines += [
        "",
        "What the figure shows:",
        "",
        f"- **prod** (W = MᵀM ⪰ 0, attraction only) is LFD for every τ: RQ falls from {_f(prod1['rq0'])} towards 0 "
        f"({'below 0.05 at t = 16 for every τ' if prod_all_down else 'not below 0.05 for every τ by t = 16'}). "
        "Every multiplier is largest at μ = 0: over-smoothing, as for the channel-metric flow of Prop 2.4.",
        f"- **neg_prod** (W = −MᵀM ⪯ 0, repulsion only) with τ = 0.1 is HFD: RQ rises to {_f(neg01['rq16'])} "
        f"(ρ_Δ = {rho:.3f}), over-sharpening (Theorem 4.3). With τ = 1 the per-step margin is only "
        f"{neg1['margin']:.3f} (|λ₋| = {-neg1['lam_min']:.2f} against the eq. 14 bound 2/(τ(2 − ρ_Δ)) = "
        f"{2 / (2 - rho):.2f}): the lowest frequencies along the same eigenvector, multiplied by |1 − τ|λ₋|| "
        f"per step, nearly keep up, and RQ at t = 16 is {_f(neg1['rq16'])}. Condition (iii) of Theorem 4.3, a small "
        f"enough step, is what separates the two curves; rk4 with the same τ = 1 tracks the continuous flow "
        f"(RQ {_f(neg1['rq16_rk4'])} at t = 16).",
        "- **sum** and **diag_dom** at initialisation have both signs; on this graph λ₊ exceeds ρ₋ = |λ₋|(ρ_Δ − 1) "
        "(Prop 3.1's condition fails, see the table), so the positive eigenvalues win and the flow is LFD. "
        "Training moves this balance: see the learned spectra in sections 2 and 3.",
        "- Euler and rk4 agree where τ is small; rk4 costs 4 evaluations per step (NFE column).",
        "",
    ]
    return lines


def _bipartite_md(res: dict[str, Any]) -> list[str]:
    per_seed = res["per_seed"]
    res = {**res, "rq0_nonres": per_seed[0]["non_residual"]["rq0"]}
    g = [r["graff"] for r in per_seed]
    n = [r["non_residual"] for r in per_seed]
    cfg_g, cfg_n = res["configs"]["graff"], res["configs"]["non_residual"]
    count = sum(x["rq"] >= 1.8 for x in g)
    rho = res["rho"]
    repelling = sum(max(-x["w_min"], 0) * (rho - 1) > max(x["w_max"], 0) for x in g)
    lines = [
        "## 2. K_{100,100}: residual GRAFF over-sharpens, the non-residual stack over-smooths",
        "",
        f"Command: `{SCRIPT}` (section 2; records in `{res['csv']}`). Tested by "
        "`tests/test_study.py::test_bipartite_graff_oversharpens_and_non_residual_oversmooths` (seed 0, default "
        "suite) and `test_bipartite_over_seeds` (slow).",
        "",
        f"![RQ along the layers]({res['rq_png']})",
        "",
        f"![accuracy along the layers]({res['acc_png']})",
        "",
        f"![learned W]({res['w_png']})",
        "",
        "Data: `complete_bipartite(100)` (200 nodes, 2-d standard-normal features independent of the side, label = "
        "side, random 0.8/0.1/0.1 split from the seed), as the official toy. Δ includes self-loops, so "
        f"ρ_Δ = 2n/(n+1) = {res['rho']:.3f}.",
        "",
        f"- **GRAFF (SGCN_gf)**: F ← F + τĀFW, W = (M + Mᵀ)/2 shared, Ω = 0, no source, linear, hidden "
        f"{cfg_g.hidden}, T = {cfg_g.time:g}, τ = {cfg_g.step_size:g} ({round(cfg_g.time / cfg_g.step_size)} layers).",
        f"- **non-residual**: F ← ĀFW with the same W family and {round(cfg_n.time / cfg_n.step_size)} layers "
        f"(Euler with Ω = I, τ = {cfg_n.step_size:g}, T = {cfg_n.time:g}): Theorem 4.3's F(t+τ) = τĀF(t)W up to the "
        "scalar τ^m, which RQ ignores. (A literal τ = 0.1 would shrink the state by 0.1^80 and underflow float32.)",
        f"- Both: Adam lr {cfg_g.lr:g}, weight decay {cfg_g.weight_decay:g}, no dropout, {cfg_g.epochs} epochs, "
        "the model **after the last epoch** (validation accuracy reaches 1.0 within a few epochs, so best-validation "
        "selection with first-on-ties would keep an almost untrained model), training seed = data seed.",
        "",
        "| seed | GRAFF RQ(0) | GRAFF RQ(T) | GRAFF test acc | GRAFF W eigenvalues | non-res. RQ(0) | non-res. RQ(T) "
        "| non-res. test acc | non-res. final train loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in per_seed:
        a, b = r["graff"], r["non_residual"]
        lines.append(f"| {r['seed']} | {_f(a['rq0'])} | {_f(a['rq'])} | {_f(a['acc'], 2)} | "
                     f"[{a['w_min']:.2f}, {a['w_max']:.2f}] | {_f(b['rq0'])} | {_f(b['rq'])} | {_f(b['acc'], 2)} | "
                     f"{_f(b['loss'], 2)} |")
    lines += [
        f"| **median** | | **{_f(statistics.median(x['rq'] for x in g))}** | "
        f"**{_f(statistics.median(x['acc'] for x in g), 2)}** | | | **{_f(statistics.median(x['rq'] for x in n))}** | "
        f"**{_f(statistics.median(x['acc'] for x in n), 2)}** | |",
        "| paper (one run) | 0.68 | 1.94 | 1.0 | [−1.37, 1.13] | 0.84 | 4e-4 | 0.6 | |",
        "",
        f"GRAFF reaches RQ ≥ 1.8 on {count} of {len(g)} seeds with test accuracy "
        f"{min(x['acc'] for x in g):.2f}–{max(x['acc'] for x in g):.2f}. On {repelling} of {len(g)} seeds the "
        "learned W "
        "has enough negative spectral mass, |λ₋|(ρ_Δ − 1) > λ₊ (Prop 3.1), for the side-indicator eigenvector of Δ "
        "(μ = ρ_Δ), which is exactly the label, to dominate. The non-residual stack ends with RQ "
        f"{_f(min(x['rq'] for x in n))}–{_f(max(x['rq'] for x in n))} and test accuracy "
        f"{min(x['acc'] for x in n):.2f}–{max(x['acc'] for x in n):.2f} (chance is 0.5). Without the residual, a "
        "layer multiplies the component of graph frequency μ by (1 − μ) whatever W is (W only mixes channels), so "
        "for almost every F(0) the μ = 0 component outgrows every other one (Theorem 4.3, converse; with "
        "self-loops K_{100,100} is not bipartite). On K_{100,100}, Δ has three eigenvalues: 0 (the constant), "
        f"ρ_Δ (the side indicator, |1 − μ| = {res['rho'] - 1:.2f}) and 1 − 1/101 (everything else, |1 − μ| = 1/101). "
        f"So on seed {BIPARTITE_SEEDS[0]} the first layer removes all but two components (RQ {_f(res['rq0_nonres'])} → "
        f"{_f(res['decay']['rq1'])}; the side indicator holds a small share of F(0), the features carrying no class "
        f"signal), and afterwards RQ falls by a mean factor {res['decay']['factor']:.4f} per layer "
        f"(RQ {_f(res['decay']['rq_last'])} after {res['decay']['layers']} layers), against "
        f"(ρ_Δ − 1)² = {(res['rho'] - 1) ** 2:.4f} predicted for the graph part alone. Training does not counteract "
        "it: the products of 80 matrices make the logits explode (final training loss in the table) and the model "
        "stays at chance, like the paper's run (RQ 4e-4, accuracy 0.6).",
        "",
        "Two more variants on the same seeds, to show what the result depends on:",
        "",
        "| seed | GRAFF, lr 0.01: RQ(T) | test acc | \"gcn\" config: RQ(T) | test acc |",
        "|---|---|---|---|---|",
    ]
    low_lr = [r["graff_lr0.01"] for r in per_seed]
    gcn = [r["gcn_config"] for r in per_seed]
    for r in per_seed:
        a, b = r["graff_lr0.01"], r["gcn_config"]
        lines.append(f"| {r['seed']} | {_f(a['rq'])} | {_f(a['acc'], 2)} | {_f(b['rq'])} | {_f(b['acc'], 2)} |")
    lines += [
        "",
        f"- The over-sharpened RQ of GRAFF depends on the learning rate (and the seed): at lr 0.01, "
        f"{sum(x['rq'] >= 1.8 for x in low_lr)} of {len(low_lr)} seeds end above 1.8 (test accuracy "
        f"{min(x['acc'] for x in low_lr):.2f}–{max(x['acc'] for x in low_lr):.2f}). Once the training loss "
        "reaches 0 in float32 the parameters stop moving, so the final balance between the attracting and the "
        "repelling part of W is set early; a model whose RQ ends low can still classify, because the decoder reads "
        "the sign of a small high-frequency component. We report lr 0.05 above, chosen for this reason, not tuned "
        "on the test set (all accuracies are near 1 either way).",
        f"- The paper's \"gcn\" run was x + τ·ReLU(ĀxW_t − x) with Ω = I and time-dependent asymmetric W. Here it "
        f"ends with RQ {_f(min(x['rq'] for x in gcn))}–{_f(max(x['rq'] for x in gcn))} and test accuracy "
        f"{min(x['acc'] for x in gcn):.2f}–{max(x['acc'] for x in gcn):.2f}: it keeps a residual path (the ReLU "
        "acts on the increment), so Theorem 4.3's converse does not apply to it. The paper's 4e-4 with accuracy "
        "0.6 is what our non-residual stack shows.",
        "",
    ]
    return lines


def _extrapolation_md(res: dict[str, Any]) -> list[str]:
    config = _config("extrapolation").replace(dataset="cora")
    lines = [
        "## 3. Extrapolation: trained at T = 8, run to t = 64",
        "",
        f"Training (`{SCRIPT}`, section 3): SGCN_gf \"simple\" setting of graff-notes §11: Ω = 0, W = (M + Mᵀ)/2 "
        f"shared, linear, no source, hidden {config.hidden}, T = {config.time:g}, τ = {config.step_size:g}, input "
        f"dropout {config.input_dropout:g}, dropout {config.dropout:g}, Adam lr {config.lr:g}, weight decay "
        f"{config.weight_decay:g}, {config.epochs} epochs, split 0, seed {config.seed}; the best-validation epoch is "
        "kept and saved with `save_checkpoint`. The paper's `simple_long` learning rates are not known here, so "
        "these are our choices. Then each checkpoint is run on to t = 64 by the study command below.",
        "",
    ]
    figures = res.get("figures")
    if figures:
        lines += [f"![RQ against t]({figures[0]})", "", f"![accuracy against t]({figures[1]})", "",
                  f"![learned W]({figures[2]})", ""]
    for name in EXTRAPOLATION:
        r = res[name]
        if "unavailable" in r:
            lines += [f"**{name}**: not run, the data is unavailable ({r['unavailable']}).", ""]
            continue
        at, m = r["at"], r["metrics"]
        lines += [
            f"**{r['name']}** (best epoch {m['epoch']}, validation accuracy {m['acc_val']:.3f}, learned W eigenvalues "
            f"in [{r['eig'][0]:.2f}, {r['eig'][1]:.2f}], ρ_Δ = {r['rho']:.3f}):",
            "",
            "```",
            r["command"],
            "```",
            "",
            "| t | 0 | 8 (training T) | 16 | 32 | 64 |",
            "|---|---|---|---|---|---|",
            "| RQ | " + " | ".join(_f(at[t]["rayleigh"]) for t in (0.0, 8.0, 16.0, 32.0, 64.0)) + " |",
            "| test accuracy | " + " | ".join(_f(at[t]["acc_test"]) for t in (0.0, 8.0, 16.0, 32.0, 64.0)) + " |",
            "",
            f"Paper: {PAPER_EXTRAPOLATION[name]}.",
            "",
        ]
    readings = []
    for name in EXTRAPOLATION:
        r = res.get(name, {})
        if "at" not in r:
            continue
        at, (lo, hi) = r["at"], r["eig"]
        rho_minus, lam_plus = max(-lo, 0.0) * (r["rho"] - 1), max(hi, 0.0)
        predicted = "HFD" if rho_minus > lam_plus else "LFD"
        rq8, rq32, rq64 = at[8.0]["rayleigh"], at[32.0]["rayleigh"], at[64.0]["rayleigh"]
        trend = "falls" if rq64 < rq8 else "rises"
        acc8, acc64 = at[8.0]["acc_test"], at[64.0]["acc_test"]
        readings.append(
            f"- {r['name']}: beyond the training depth RQ {trend} ({_f(rq8)} at t = 8, {_f(rq32)} at t = 32, "
            f"{_f(rq64)} at t = 64; ρ_Δ = {r['rho']:.3f}{'; above 1 by t = 32' if rq32 > 1 else ''}), and test "
            f"accuracy goes from {_f(acc8)} at t = 8 to {_f(acc64)} at t = 64. The learned W "
            f"has ρ₋ = |λ₋|(ρ_Δ − 1) = {rho_minus:.2f} {'>' if rho_minus > lam_plus else '<'} λ₊ = {lam_plus:.2f}, so "
            f"Prop 3.1 predicts {predicted} ({'over-sharpening' if predicted == 'HFD' else 'over-smoothing'}) for the "
            f"continuous flow, and τ = 0.5 satisfies eq. 14 (|λ₋| = {max(-lo, 0.0):.2f} < 2/(τ(2 − ρ_Δ)) = "
            f"{2 / (0.5 * (2 - r['rho'])):.1f}); the observed trend "
            f"{'agrees' if (predicted == 'LFD') == (trend == 'falls') else 'does not agree'}. The decoder was "
            "trained on F(8) only, so states far from it are misread either way."
        )
    if readings:
        lines += ["Reading:", "", *readings,
                  "- Our RQ values are lower than the paper's at the same t because Δ here includes self-loops "
                  "(Δ = I − D̃^{-1/2}(A+I)D̃^{-1/2}); the official code's RQ uses PyG's `get_laplacian`, which drops "
                  "them (graff-notes §12), and that Laplacian has larger eigenvalues on sparse graphs. The trends, not "
                  "the values, are the comparison. Our models are not tuned either (T = 8 instead of the tuned "
                  "T = 2–4, our own lr and weight decay), so their accuracy at T = 8 is below the paper's SGCN_gf.",
                  ""]
    return lines


def _homophily_md(res: dict[str, Any]) -> list[str]:
    table, cfg = res["table"], res["config"]
    levels = HOMOPHILY_LEVELS

    lines = [
        "## 4. Accuracy against homophily",
        "",
        f"Command: `{SCRIPT}` (section 4; records in `{res['csv']}`).",
        "",
        f"![accuracy against homophily]({res['png']})",
        "",
        "Data: `contextual_sbm` with 500 nodes, 5 classes, mean degree 8, 16-d Gaussian features with class means "
        "1.5 noise standard deviations apart (features alone are informative but far from enough), split "
        f"0.5/0.25/0.25, graph seeds {', '.join(map(str, HOMOPHILY_SEEDS))}; target edge homophily "
        f"{levels[0]:g}–{levels[-1]:g}. Models: GRAFF with Ω = 0 and β = 0 (as the paper's syn-cora experiment), "
        f"linear, hidden {cfg.hidden}, T = {cfg.time:g}, τ = {cfg.step_size:g}, {cfg.epochs} epochs, lr {cfg.lr:g}, "
        f"weight decay {cfg.weight_decay:g}, dropout {cfg.dropout:g}; `training.train_split` (best validation "
        "epoch). Mean test accuracy over the seeds:",
        "",
        "| W | " + " | ".join(f"h={h:g}" for h in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for family, accs in table.items():
        lines.append(f"| {family} | " + " | ".join(f"{accs[h]:.2f}" for h in levels) + " |")
    low_range = [h for h in levels if h <= 0.1]
    high_range = [h for h in levels if 0.6 <= h <= 0.8]

    def mean(family: str, hs: list[float]) -> float:
        return statistics.mean(table[family][h] for h in hs)

    lo = {f: mean(f, low_range) for f in table}
    hi = {f: mean(f, high_range) for f in table}
    lo_txt = "–".join(f"{h:g}" for h in (low_range[0], low_range[-1]))
    hi_txt = "–".join(f"{h:g}" for h in (high_range[0], high_range[-1]))
    pattern = lo["neg_prod"] > lo["prod"] and hi["prod"] > hi["neg_prod"]
    lines += [
        "",
        f"- Low homophily (mean over h = {lo_txt}): neg_prod {lo['neg_prod']:.2f} vs prod {lo['prod']:.2f}. "
        "Repulsion (negative eigenvalues, high-pass) pushes a node away from its neighbours, which belong to other "
        f"classes. High homophily (h = {hi_txt}): prod {hi['prod']:.2f} vs neg_prod {hi['neg_prod']:.2f}. "
        "Attraction (positive eigenvalues, low-pass) averages same-class neighbours. "
        + ("This is the paper's Fig. 2 (top) pattern: neg_prod wins at low homophily and prod at high homophily "
           "(graff-notes §12)." if pattern else
           "The paper's Fig. 2 (top) pattern (neg_prod better at low, prod better at high homophily) does not fully "
           "appear here."),
        f"- sum and diag_dom can put mass on both signs: {lo['sum']:.2f} and {lo['diag_dom']:.2f} at low homophily, "
        f"{hi['sum']:.2f} and {hi['diag_dom']:.2f} at high homophily. Near h = 0.2–0.4 (for 5 classes, uniform "
        "mixing is h = 0.2, so neighbours carry little information) every family is close to the features-only "
        "accuracy.",
        "- No GCN baseline is run here (the paper's plot has one).",
        "",
    ]
    return lines


def render(sections: dict[str, Any], timings: dict[str, float], started: str, command: str, out: Path,
           root: Path) -> str:
    env = environment()
    lines = [
        "# Over-smoothing and over-sharpening: depth studies",
        "",
        f"*Generated by `{command}` — do not edit by hand; change `experiments/oversmoothing.py` and rerun it.*",
        "",
        f"Run {started} on {env['machine']['platform']} ({env['machine']['processor']}, "
        f"{env['machine']['cpu_count']} CPUs, {env['machine']['torch_threads']} torch threads), "
        f"continuous_gnn {env['versions']['continuous_gnn']}, torch {env['versions']['torch']}, torch_geometric "
        f"{env['versions']['torch_geometric']}, torchdiffeq {env['versions']['torchdiffeq']}. Time per section: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f" (total {sum(timings.values()):.0f} s). "
        f"Data root `{root}`. Records and checkpoints: `{_rel(out)}/` (not versioned).",
        "",
        "Notation (graff-notes §1): Ā = D̃^{-1/2}(A + I)D̃^{-1/2}, Δ = I − Ā (self-loops included), "
        "RQ(F) = tr(FᵀΔF)/‖F‖² ∈ [0, ρ_Δ] with ρ_Δ the largest eigenvalue of Δ. A flow is **LFD** "
        "(low-frequency dominated, over-smoothing) when RQ(F(t)) → 0 and **HFD** (high-frequency dominated, "
        "over-sharpening) when RQ(F(t)) → ρ_Δ. The GRAFF flow is Ḟ = −FΩ + ĀFW (+βF(0)); splitting "
        "W = Θ₊ᵀΘ₊ − Θ₋ᵀΘ₋, positive eigenvalues of W attract neighbours (decrease the Θ₊-Dirichlet energy) and "
        "negative ones repel them (increase the Θ₋-Dirichlet energy) (graff-notes §3). Trajectories are evaluated "
        "in float64; accuracy at time t is the trained (or fresh) decoder applied to F(t).",
        "",
        "Tools: `continuous_gnn.studies` (sweeps, tidy records, CSV, figures), `continuous_gnn.training.checkpoint` "
        "(trained models with their config), `continuous-gnn study` (the command line).",
        "",
    ]
    lines += _fresh_md(sections["fresh"])
    lines += _bipartite_md(sections["bipartite"])
    lines += _extrapolation_md(sections["extrapolation"])
    lines += _homophily_md(sections["homophily"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    command = shlex.join([*SCRIPT.split(), *(sys.argv[1:] if argv is None else argv)])
    root = resolve_data_root(args.data_root, os.environ)
    cache = default_cache_dir(os.environ)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out_dir) if args.out_dir else REPO / "runs" / f"oversmoothing-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs)
    figures = docs / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
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
    text = render(sections, timings, started, command, out, root)
    target = docs / "oversmoothing.md"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    print(f"wrote {target} and {len(list(figures.glob('*.png')))} figures in {figures}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
