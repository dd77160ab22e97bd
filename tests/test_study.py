"""The study toolkit: depth sweeps, checkpoints, figures, the ``study`` command, and the paper's toy results.

Scientific checks (graff-notes §12, §14):

* fresh models on a non-bipartite graph: ``prod`` (:math:`W \\succeq 0`) drives RQ to 0, ``neg_prod``
  (:math:`W \\preceq 0`, small τ) drives it up towards :math:`\\rho_\\Delta`;
* the :math:`K_{100,100}` toy: trained residual GRAFF over-sharpens (RQ near :math:`\\rho_\\Delta = 1.98`) and
  classifies; the non-residual stack :math:`F \\leftarrow \\bar A F W` with as many layers over-smooths;
* extrapolation (slow, needs the benchmark data): Cora's RQ falls and accuracy drops beyond the training
  depth, Chameleon's RQ rises above 1.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest
import torch

import continuous_gnn as cg
from continuous_gnn import Graph
from continuous_gnn.cli import SUBCOMMANDS, main
from continuous_gnn.cli.study import MAX_POINTS
from continuous_gnn.data import contextual_sbm
from continuous_gnn.energies import GRAFFEnergy
from continuous_gnn.studies import (
    HOMOPHILY_COLUMNS,
    TRAJECTORY_COLUMNS,
    W_FAMILIES,
    depth_sweep,
    depth_units,
    fresh_model,
    homophily_min_nodes,
    homophily_sweep,
    laplacian_radius,
    plot_accuracy_vs_depth,
    plot_accuracy_vs_homophily,
    plot_rq_vs_time,
    plot_w_spectrum,
    read_csv,
    synthetic_dataset,
    trained_trajectory,
    trajectory_records,
    w_eigenvalues,
    w_spectrum_records,
    write_csv,
)
from continuous_gnn.training import RunConfig, load_config
from continuous_gnn.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from continuous_gnn.training.presets import study_config

#: The packaged models of the study command, and the configs that only experiments/oversmoothing.py uses.
FRESH = study_config("fresh")
HOMOPHILY = study_config("homophily")
EXPERIMENT_CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "studies"


def _fresh(w: str = "sum", **changes) -> RunConfig:
    """The depth sweep's fresh model with W family ``w``."""
    return FRESH.replace(w=w, **changes)


def _bipartite_configs() -> dict[str, RunConfig]:
    return {name: load_config(EXPERIMENT_CONFIGS / f"bipartite_{name}.toml") for name in ("graff", "non_residual")}


def _extrapolation_config(dataset: str) -> RunConfig:
    return load_config(EXPERIMENT_CONFIGS / "extrapolation.toml").replace(dataset=dataset)


LABELS = ("source", "model", "w_family", "seed")


def _png_ok(path) -> None:
    from matplotlib.image import imread

    assert path.is_file() and path.stat().st_size > 0
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


@pytest.fixture(scope="module")
def sbm():
    return synthetic_dataset("sbm", nodes=150, homophily=0.3, seed=0)


# ---------------------------------------------------------------------------------------------------
# the models of studies (TOML files)
# ---------------------------------------------------------------------------------------------------


def test_the_study_configs_are_the_documented_models():
    # Depth sweep: the spectral-filter setting (Ω = 0, no source, linear, no dropout, Euler), hidden 16.
    assert FRESH == RunConfig(hidden=16, omega="zero", source=False, dropout=0.0, input_dropout=0.0, w="sum")
    # Homophily sweep: Ω = 0, β = 0, linear, hidden 16, T = 3, τ = 1, 100 epochs, lr 0.01, wd 5e-4, dropout 0.2.
    assert HOMOPHILY == RunConfig(energy="graff", omega="zero", source=False, activation=None, hidden=16, time=3.0,
                                  step_size=1.0, method="euler", epochs=100, lr=0.01, weight_decay=5e-4, dropout=0.2,
                                  input_dropout=0.2)
    # K_{100,100}: SGCN_gf (80 residual steps of 0.1) against the non-residual stack (80 steps of 1 with Ω = I).
    common = dict(energy="graff", w="sum", source=False, activation=None, hidden=16, dropout=0.0, input_dropout=0.0,
                  lr=0.05, weight_decay=5e-4, epochs=60, method="euler")
    assert _bipartite_configs() == {"graff": RunConfig(omega="zero", time=8.0, step_size=0.1, **common),
                                    "non_residual": RunConfig(omega="const", time=80.0, step_size=1.0, **common)}
    # Extrapolation: SGCN_gf trained at T = 8, τ = 0.5, hidden 128.
    assert _extrapolation_config("cora") == RunConfig(
        dataset="cora", energy="graff", w="sum", omega="zero", source=False, activation=None, hidden=128, time=8.0,
        step_size=0.5, method="euler", input_dropout=0.5, dropout=0.35, lr=0.005, weight_decay=5e-4, epochs=200,
        seed=0)
    with pytest.raises(ValueError, match="no packaged study config 'nope'; available: fresh, homophily"):
        study_config("nope")


# ---------------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------------


def test_fresh_prod_smooths_and_neg_prod_sharpens(sbm):
    """Spectral-filter view: W ⪰ 0 is low-pass at every step (LFD), W ⪯ 0 with small τ high-pass (HFD)."""
    rho = laplacian_radius(Graph.from_data(sbm.data))
    records = depth_sweep(sbm, step_sizes=(0.1,), times=(8.0,), w_families=("prod", "neg_prod"), max_points=41,
                          config=FRESH)
    rq = {f: [r["rayleigh"] for r in records if r["w_family"] == f] for f in ("prod", "neg_prod")}
    assert len(rq["prod"]) == len(rq["neg_prod"]) == 41
    assert all(b < a for a, b in zip(rq["prod"], rq["prod"][1:])), rq["prod"]
    assert all(b > a for a, b in zip(rq["neg_prod"], rq["neg_prod"][1:])), rq["neg_prod"]
    assert rq["prod"][-1] < 1e-3
    assert 0.9 * rho < rq["neg_prod"][-1] <= rho + 1e-9


def test_trajectory_records_columns_steps_and_nfe(sbm):
    model = fresh_model(_fresh("sum"), sbm.num_features, sbm.num_classes, seed=1)
    rows = trajectory_records(model, sbm, t_end=2.0, method="rk4", step_size=0.25, times=(1.0, 2.0), max_points=5,
                              labels={"source": "x"})
    assert list(rows[0]) == ["source", *TRAJECTORY_COLUMNS]
    assert [r["t"] for r in rows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [r["steps"] for r in rows] == [0, 2, 4, 6, 8]
    assert [r["nfe"] for r in rows] == [0, 8, 16, 24, 32]  # rk4: four evaluations per step
    assert [r["requested"] for r in rows] == [False, False, True, False, True]
    assert all(0 <= r["acc_test"] <= 1 and r["rayleigh"] >= 0 for r in rows)
    adaptive = trajectory_records(model, sbm, t_end=2.0, method="dopri5", times=(1.0,), max_points=3)
    nfe = [r["nfe"] for r in adaptive]
    assert nfe[0] == 0 and nfe == sorted(nfe) and nfe[-1] > 0
    assert all(r["steps"] is None and r["step_size"] is None for r in adaptive)
    # Euler and rk4 agree with the adaptive solve up to their discretisation error.
    assert abs(rows[-1]["rayleigh"] - adaptive[-1]["rayleigh"]) < 1e-3
    # The model itself is not modified (evaluated on a float64 copy).
    assert next(model.parameters()).dtype == torch.float32


def test_trajectory_records_rejects_bad_times(sbm):
    model = fresh_model(_fresh("sum"), sbm.num_features, sbm.num_classes)
    with pytest.raises(ValueError, match="not a multiple of the step size"):
        trajectory_records(model, sbm, t_end=1.2, step_size=0.3, times=(1.0,))
    # a t_end off the grid would end with a step shorter than the step_size every record carries
    for t_end, step in ((1.0, 0.3), (0.5, 1.0)):
        with pytest.raises(ValueError, match=f"t_end={t_end:g} is not a multiple of step_size={step:g}"):
            trajectory_records(model, sbm, t_end=t_end, step_size=step)
    with pytest.raises(TypeError, match=r"times must be a sequence, e.g. \[1.0, 4.0\], got str"):
        depth_sweep(sbm, step_sizes=(0.5,), times="1,2")
    with pytest.raises(ValueError, match="needs a step_size"):
        trajectory_records(model, sbm, t_end=1.0)
    with pytest.raises(ValueError, match="adaptive"):
        trajectory_records(model, sbm, t_end=1.0, method="dopri5", step_size=0.5)
    with pytest.raises(ValueError, match="must lie in"):
        depth_sweep(sbm, step_sizes=(0.5,), times=(-1.0,))
    with pytest.raises(ValueError, match="needs its config"):
        depth_sweep(sbm, model=model)
    with pytest.raises(ValueError, match=r"fresh models need a config, e.g. the packaged one: .*study_config\('fresh'\)"):
        depth_sweep(sbm, step_sizes=(0.5,), times=(1.0,))


def test_trajectory_blow_up_keeps_the_rows_before_it():
    """A flow that overflows float64 is recorded up to the last readout before the failure."""
    data = synthetic_dataset("ring", nodes=20, num_features=4)
    config = _fresh("identity", hidden=4)
    model = fresh_model(config, data.num_features, data.num_classes).double()
    with torch.no_grad():  # F ← F + ĀF doubles the lowest frequency per step: overflow after about 26 steps
        model.encoder.weight.mul_(1e300)
        model.encoder.bias.zero_()
    rows = trajectory_records(model, data, t_end=50.0, step_size=1.0, max_points=51)
    assert 0 < len(rows) < 51
    assert all(math.isfinite(r["failed_at"]) for r in rows)
    assert rows[-1]["t"] < rows[0]["failed_at"]


def test_w_spectra_signs():
    data = synthetic_dataset("path", nodes=10, num_features=3)
    spectra = {f: w_eigenvalues(fresh_model(_fresh(f), 3, 1, seed=2)) for f in W_FAMILIES}
    assert bool((spectra["prod"] >= -1e-10).all()) and bool((spectra["neg_prod"] <= 1e-10).all())
    assert spectra["sum"].min() < 0 < spectra["sum"].max()
    rows = w_spectrum_records(fresh_model(_fresh("sum"), 3, 1), "sum")
    assert len(rows) == 16 and set(rows[0]) == {"label", "index", "eigenvalue"}
    asymmetric = fresh_model(RunConfig(w="asymm", hidden=4), 3, 1)
    with pytest.raises(ValueError, match="asymmetric"):
        w_eigenvalues(asymmetric)
    assert data.num_classes == 1


def test_laplacian_radius_of_complete_bipartite():
    data = synthetic_dataset("bipartite", nodes=40)
    rho = laplacian_radius(Graph.from_data(data.data, dtype=torch.float64))
    assert rho == pytest.approx(2 * 20 / 21, abs=1e-9)


def test_csv_roundtrip_is_atomic(tmp_path):
    rows = [{"a": 1, "b": 0.1 + 0.2, "c": None, "d": True, "e": "x,y"}, {"a": 2, "f": math.nan}]
    path = write_csv(rows, tmp_path / "sub" / "r.csv")
    back = read_csv(path)
    assert back[0] == {"a": 1, "b": 0.1 + 0.2, "c": None, "d": True, "e": "x,y", "f": None}
    assert back[1]["a"] == 2 and math.isnan(back[1]["f"])
    assert [p.name for p in path.parent.iterdir()] == ["r.csv"]  # no temporary file left
    with pytest.raises(ValueError, match="no records"):
        write_csv([], tmp_path / "empty.csv")


def test_homophily_sweep_records():
    rows = homophily_sweep([0.2], ("prod", "neg_prod"), seeds=(0,), config=HOMOPHILY.replace(epochs=3), nodes=60,
                           num_classes=2)
    assert [r["w_family"] for r in rows] == ["prod", "neg_prod"]
    assert list(rows[0]) == list(HOMOPHILY_COLUMNS)
    assert abs(rows[0]["edge_homophily"] - 0.2) < 0.15 and all(0 <= r["acc_test"] <= 1 for r in rows)


@pytest.mark.parametrize("levels", [[0.0], [0.5], [0.8], [1.0], [0.1, 0.5, 0.9], [0.0, 1.0]])
def test_homophily_min_nodes_is_the_smallest_graph_contextual_sbm_draws(levels):
    need = homophily_min_nodes(levels)
    assert need == {(0.0,): 10, (0.5,): 25, (1.0,): 45}.get(tuple(levels), need)  # the numbers the help states
    for h in levels:
        contextual_sbm(need, 5, h, 8.0, seed=0)
    if need > 10:
        with pytest.raises(ValueError, match="too large for homophily"):
            for h in levels:
                contextual_sbm(need - 1, 5, h, 8.0, seed=0)
    assert homophily_min_nodes([0.0, 1.0]) == 45  # every level fits from 45 nodes on


def test_homophily_sweep_checks_the_node_count_before_training():
    trained = []
    with pytest.raises(ValueError, match=r"nodes=30 is too few .* need at least 41 nodes"):
        homophily_sweep([0.1, 0.9], ("prod",), config=HOMOPHILY.replace(epochs=1), nodes=30, on_result=trained.append)
    assert trained == []  # the feasible first level was not trained before the failure
    for empty in ({"homophilies": []}, {"w_families": ()}, {"seeds": []}):
        arguments = {"homophilies": [0.5], "w_families": ("prod",), "seeds": (0,), **empty}
        with pytest.raises(ValueError, match=f"{next(iter(empty))} is empty: the sweep would train nothing"):
            homophily_sweep(arguments.pop("homophilies"), arguments.pop("w_families"), config=HOMOPHILY, **arguments)


# ---------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------


def test_every_plot_writes_a_png(tmp_path, sbm):
    records = depth_sweep(sbm, step_sizes=(0.5, 1.0), times=(2.0,), methods=("euler", "dopri5"),
                          w_families=("prod", "sum"), max_points=5, config=FRESH)
    _png_ok(plot_rq_vs_time(records, tmp_path / "rq.png", rho=1.5, mark_times=(1.0,)))
    _png_ok(plot_rq_vs_time(records, tmp_path / "rq_steps.png", x="steps", rho={"prod": 1.5}, logy=False))
    _png_ok(plot_accuracy_vs_depth(records, tmp_path / "acc.png", x="steps", split="val"))
    spectra = w_spectrum_records(fresh_model(_fresh("sum"), 16, 2), "sum")
    _png_ok(plot_w_spectrum(spectra, tmp_path / "w.png", title="W"))
    homophily = [{"homophily": h, "w_family": f, "seed": s, "acc_test": 0.5 + 0.1 * h * s}
                 for h in (0.0, 0.5, 1.0) for f in ("prod", "sum") for s in (0, 1)]
    _png_ok(plot_accuracy_vs_homophily(homophily, tmp_path / "h.png", title="h"))
    with pytest.raises(ValueError, match="lack the column"):
        plot_rq_vs_time([{"t": 0.0}], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no records"):
        plot_accuracy_vs_depth([], tmp_path / "bad.png")


def test_plots_explain_a_missing_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="needs matplotlib"):
        plot_w_spectrum([{"label": "a", "eigenvalue": 1.0}], tmp_path / "w.png")


# ---------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------


def test_checkpoint_roundtrip(tmp_path, sbm):
    config = _fresh("diag_dom", hidden=8).replace(time=2.0, step_size=0.5)
    model = fresh_model(config, sbm.num_features, sbm.num_classes, seed=3)
    metadata = {"data": {"synthetic": "sbm", "nodes": 150, "homophily": 0.3, "seed": 0}, "metrics": [0.5, None]}
    path = save_checkpoint(tmp_path / "m.pt", model, config, num_features=sbm.num_features,
                           num_classes=sbm.num_classes, metadata=metadata)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    state = torch.random.get_rng_state()
    loaded = load_checkpoint(path)
    assert torch.equal(state, torch.random.get_rng_state())  # loading does not consume the global RNG
    assert loaded.config == config and loaded.metadata == metadata and not loaded.model.training
    graph = Graph.from_data(sbm.data)
    with torch.no_grad():
        assert torch.equal(model.eval()(sbm.data.x, graph), loaded.model(sbm.data.x, graph))


@pytest.mark.data
def test_a_checkpoint_loads_its_data_with_the_features_it_was_trained_on(tmp_path, data_root, data_cache):
    from continuous_gnn.data import load_dataset
    from continuous_gnn.training import RunConfig, build_model

    config = RunConfig(dataset="texas", normalize_features=False, hidden=8)  # as the presets: raw features
    model = build_model(config, 1703, 5)
    save_checkpoint(tmp_path / "m.pt", model, config, num_features=1703, num_classes=5)
    features = load_checkpoint(tmp_path / "m.pt").load_dataset(data_root, cache_dir=data_cache).data.x
    assert torch.equal(features, load_dataset("texas", data_root, cache_dir=data_cache,
                                              normalize_features=False).data.x)
    assert not torch.equal(features, load_dataset("texas", data_root, cache_dir=data_cache).data.x)


def test_checkpoint_errors(tmp_path, sbm):
    config = _fresh("sum", hidden=8)
    model = fresh_model(config, sbm.num_features, sbm.num_classes)
    with pytest.raises(CheckpointError, match="do not match"):
        save_checkpoint(tmp_path / "m.pt", model, config.replace(hidden=4), num_features=sbm.num_features,
                        num_classes=sbm.num_classes)
    with pytest.raises(TypeError, match="JSON-like"):
        save_checkpoint(tmp_path / "m.pt", model, config, num_features=sbm.num_features,
                        num_classes=sbm.num_classes, metadata={"x": object()})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint written by save_checkpoint: it is cut short, corrupt "
                                              "or another kind of file \\(torch.load: .*pass a file that "
                                              "save_checkpoint wrote") as refused:
        load_checkpoint(tmp_path / "junk.pt")
    assert "weights_only" not in str(refused.value)  # torch's advice to load it unsafely is not passed on
    torch.save({"kind": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a continuous_gnn"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt", "other.pt"]


@pytest.mark.parametrize("change", [dict(time=9.0), dict(method="rk4"), dict(step_size=0.25),
                                    dict(activation="tanh"), dict(method="dopri5", step_size=None, rtol=1e-4, atol=1e-6),
                                    dict(adjoint=True), dict(self_loops=False), dict(detach_source=True),
                                    dict(dropout=0.3), dict(input_dropout=0.2)])
def test_checkpoint_rejects_a_config_with_other_integration_settings(tmp_path, sbm, change):
    # These settings leave the state dict's shapes alone, so load_checkpoint would rebuild a different model.
    config = _fresh("sum", hidden=8)
    model = fresh_model(config, sbm.num_features, sbm.num_classes)
    with pytest.raises(CheckpointError, match=f"settings differ.*{next(iter(change))}: model"):
        save_checkpoint(tmp_path / "m.pt", model, config.replace(**change), num_features=sbm.num_features,
                        num_classes=sbm.num_classes)
    assert list(tmp_path.iterdir()) == []


def test_a_model_built_by_hand_saves_with_the_config_of_its_settings(tmp_path, sbm):
    # Its input dropout lives in the model, a config-built one's in its first linear map: the same setting.
    model = cg.ContinuousGNN(sbm.num_features, 8, sbm.num_classes, GRAFFEnergy(8), t_end=2.0,
                             solver=cg.FixedGrid("euler", step_size=0.5), input_dropout=0.4, dropout=0.1)
    config = RunConfig(hidden=8, time=2.0, step_size=0.5, input_dropout=0.4, dropout=0.1)
    save_checkpoint(tmp_path / "m.pt", model, config, num_features=sbm.num_features, num_classes=sbm.num_classes)
    with pytest.raises(CheckpointError, match=r"dropout: model 0\.1, config 0\.5.*input_dropout: model 0\.4, config "
                                              r"0\.5"):
        save_checkpoint(tmp_path / "n.pt", model, RunConfig(hidden=8, time=2.0, step_size=0.5),
                        num_features=sbm.num_features, num_classes=sbm.num_classes)
    graph = Graph.from_data(sbm.data)
    with torch.no_grad():
        assert torch.equal(model.eval()(sbm.data.x, graph), load_checkpoint(tmp_path / "m.pt").model(sbm.data.x, graph))


def test_checkpoint_width_and_payload_checks(tmp_path, sbm):
    config = _fresh("sum", hidden=8)
    model = fresh_model(config, sbm.num_features, sbm.num_classes)
    for bad, error in (("5", TypeError), (5.7, TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(error, match="num_features must be"):
            save_checkpoint(tmp_path / "m.pt", model, config, num_features=bad, num_classes=sbm.num_classes)
    with pytest.raises(TypeError, match="num_classes must be"):
        save_checkpoint(tmp_path / "m.pt", model, config, num_features=sbm.num_features, num_classes=None)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_checkpoint(tmp_path)
    good = torch.load(save_checkpoint(tmp_path / "m.pt", model, config, num_features=sbm.num_features,
                                      num_classes=sbm.num_classes), weights_only=True)
    for key, value, match in (("num_features", "abc", "num_features must be an int"),
                              ("num_features", None, "num_features must be an int"),
                              ("num_classes", 0, "num_classes must be a positive"),
                              ("metadata", [1, 2], "metadata must be a dict"),
                              ("versions", ["x"], "versions must be a dict"),
                              ("state_dict", [], "state_dict must be a dict")):
        torch.save({**good, key: value}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=f"corrupt: {match}"):
            load_checkpoint(tmp_path / "bad.pt")
    torch.save({**good, "metadata": None}, tmp_path / "bad.pt")
    assert load_checkpoint(tmp_path / "bad.pt").metadata == {}


# ---------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------


def test_cli_end_to_end_on_a_synthetic_graph(tmp_path, capsys):
    out = tmp_path / "out"
    status = main([
        "study", "--synthetic", "sbm", "--homophily", "0.3", "--nodes", "60", "--seed", "1", "--times", "1,2",
        "--step-sizes", "0.5,1", "--methods", "euler,rk4", "--w-families", "prod,neg_prod", "--points", "5",
        "--out", str(out), "--quiet",
    ])
    assert status == 0
    assert capsys.readouterr().out == ""
    rows = read_csv(out / "study.csv")
    assert list(rows[0]) == [*LABELS, *TRAJECTORY_COLUMNS]
    # per family and method: τ=0.5 gives the 5 grid points of [0, 2], τ=1 gives 3
    assert len(rows) == 2 * 2 * (5 + 3)
    assert {r["w_family"] for r in rows} == {"prod", "neg_prod"}
    assert {(r["method"], r["step_size"]) for r in rows} == {("euler", 0.5), ("euler", 1.0), ("rk4", 0.5), ("rk4", 1.0)}
    assert sum(r["requested"] for r in rows) == 2 * 2 * 2 * 2
    assert all(r["model"] == "fresh" and r["seed"] == 1 for r in rows)
    for name in ("rq_vs_time.png", "accuracy_vs_depth.png", "w_spectrum.png"):
        _png_ok(out / name)
    summary = json.loads((out / "study.json").read_text())
    assert summary["rows"] == len(rows) and summary["data"]["synthetic"] == "sbm"
    assert 0 < summary["rho_laplacian"] < 2
    assert "config" not in summary and summary["base_config"]["w"] == "sum"  # the rows' w families differ from it
    assert summary["num_classes"] == synthetic_dataset("sbm", nodes=60, homophily=0.3, seed=1).num_classes


def test_cli_prints_a_summary(tmp_path, capsys):
    status = main(["study", "--synthetic", "bipartite", "--nodes", "20", "--times", "1", "--step-sizes", "0.5",
                             "--methods", "euler,dopri5", "--w-families", "neg_prod", "--points", "3",
                             "--out", str(tmp_path)])
    assert status == 0
    text = capsys.readouterr().out
    assert "neg_prod" in text and "dopri5" in text and "study.csv" in text
    header = next(line for line in text.splitlines() if line.startswith("W "))
    assert header.split() == ["W", "method", "τ", "T", "RQ", "test", "acc", "NFE"]


def test_cli_studies_a_checkpoint(tmp_path):
    data = synthetic_dataset("sbm", nodes=60, homophily=0.3, seed=0)
    config = _fresh("neg_prod", hidden=8).replace(time=1.0, step_size=0.5)
    model = fresh_model(config, data.num_features, data.num_classes)
    path = save_checkpoint(tmp_path / "m.pt", model, config, num_features=data.num_features,
                           num_classes=data.num_classes,
                           metadata={"data": {"synthetic": "sbm", "nodes": 60, "homophily": 0.3, "seed": 0}})
    out = tmp_path / "out"
    assert main(["study", "--checkpoint", str(path), "--times", "1,2", "--step-sizes", "0.5", "--points", "3",
                           "--out", str(out), "--quiet"]) == 0
    rows = read_csv(out / "study.csv")
    assert {(r["model"], r["w_family"]) for r in rows} == {("trained", "neg_prod")}
    assert rows[0]["source"] == data.name
    _png_ok(out / "w_spectrum.png")
    # The data flags override the checkpoint's record, and a mismatch is a usage error.
    status = main(["study", "--checkpoint", str(path), "--synthetic", "bipartite", "--nodes", "20",
                             "--out", str(out), "--quiet"])
    assert status == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--synthetic", "sbm", "--step-sizes", "0.5,abc"], "not a number"),
        (["--synthetic", "sbm", "--step-sizes", "0"], "positive"),
        (["--synthetic", "sbm", "--times", "1", "--step-sizes", "0.3"], "not a multiple"),
        (["--synthetic", "sbm", "--w-families", "prod,bogus"], "unknown 'bogus'"),
        (["--synthetic", "sbm", "--methods", "eulr"], "unknown 'eulr'"),
        (["--synthetic", "moebius"], "unknown graph"),
        (["--synthetic", "ring", "--homophily", "0.2"], "sbm only"),
        (["--synthetic", "sbm", "--homophily", "1.5"], "<= 1"),
        (["--synthetic", "sbm", "--nodes", "many"], "integer"),
        (["--dataset", "cora", "--synthetic", "sbm"], "not both"),
        (["--times", "1"], "no data"),
        (["--synthetic", "sbm", "--split", "3"], "does not exist"),
        (["--checkpoint", "missing.pt", "--w-families", "prod"], "fresh models"),
        (["--checkpoint", "missing.pt"], "does not exist"),
        (["--synthetic", "sbm", "--bogus-flag"], "unrecognized"),
        (["--dataset", "no_such_dataset", "--data-root", "/nonexistent"], "no_such_dataset"),
        (["--synthetic", "sbm", "--methods", "dopri5", "--step-sizes", "0.5"],
         "--step-sizes applies to fixed-grid methods, not to the adaptive method dopri5"),
        (["--synthetic", "sbm", "--methods", "dopri5,bosh3", "--step-sizes", "0.5"], "methods dopri5, bosh3"),
        (["--homophily-sweep", "0.5", "--nodes", "10"], "--nodes 10 is too few for --homophily-sweep 0.5"),
        (["--homophily-sweep", "0.5,1", "--nodes", "44"], "need at least 45 nodes"),
        (["--synthetic", "sbm", "--checkpoint", "."], "is a directory"),
    ],
)
def test_cli_usage_errors_exit_2(argv, message, tmp_path, capsys):
    assert main(["study", *argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("continuous-gnn study: error:") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("sweep", [["--synthetic", "sbm", "--nodes", "20", "--times", "1", "--step-sizes", "1"],
                                   ["--homophily-sweep", "0.5", "--nodes", "25", "--epochs", "1"]],
                         ids=["depth", "homophily"])
@pytest.mark.parametrize(("where", "message"), [("afile", "is a file; pass a folder"),
                                                ("afile/sub", "cannot be created: '{afile}' is a file, not a folder")])
def test_cli_checks_the_out_folder_before_any_work(sweep, where, message, tmp_path, capsys, monkeypatch):
    import continuous_gnn.studies as study

    def no_work(*args, **kwargs):
        raise AssertionError("the sweep ran before --out was checked")

    monkeypatch.setattr(study, "depth_sweep", no_work)
    monkeypatch.setattr(study, "homophily_sweep", no_work)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    out = str(tmp_path / where)
    assert main(["study", *sweep, "--w-families", "prod", "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"continuous-gnn study: error: --out {out!r} ") and message.format(afile=afile) in err
    assert err.count("\n") == 1 and afile.read_text() == "keep me"


def test_cli_caps_points_before_the_sweep(tmp_path, capsys, monkeypatch):
    import continuous_gnn.studies as study

    def no_work(*args, **kwargs):  # without the cap, a billion readouts never finish
        raise AssertionError("the sweep started with --points 1000000000")

    monkeypatch.setattr(study, "depth_sweep", no_work)
    argv = ["--synthetic", "sbm", "--points", "1000000000", "--out", str(tmp_path / "o"), "--quiet"]
    assert main(["study", *argv]) == 2
    assert capsys.readouterr().err == "continuous-gnn study: error: --points must be <= 10000, got 1000000000\n"
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    help_text = capsys.readouterr().out
    assert MAX_POINTS == 10_000 and "2 to 10000" in " ".join(help_text.split())


def test_cli_step_sizes_apply_to_the_fixed_grid_methods_of_a_mixed_sweep(tmp_path):
    out = tmp_path / "out"
    assert main(["study", "--synthetic", "sbm", "--nodes", "30", "--times", "1", "--step-sizes", "0.5",
                           "--methods", "euler,dopri5", "--w-families", "prod", "--points", "2", "--out", str(out),
                           "--quiet"]) == 0
    rows = read_csv(out / "study.csv")
    assert {(r["method"], r["step_size"]) for r in rows} == {("euler", 0.5), ("dopri5", None)}
    assert json.loads((out / "study.json").read_text())["step_sizes"] == [0.5]


def test_cli_add_parser_plugs_into_a_subcommand_parser(tmp_path):
    import argparse

    command = SUBCOMMANDS["study"]
    parser = argparse.ArgumentParser(prog="continuous-gnn")
    command.add_arguments(parser.add_subparsers(dest="command").add_parser("study"))
    argv = ["study", "--synthetic", "path", "--nodes", "12", "--times", "1", "--step-sizes", "1",
            "--w-families", "prod", "--points", "2", "--out", str(tmp_path), "--quiet"]
    assert command.handler(parser.parse_args(argv), argv) == 0
    assert main(argv) == 0
    assert (tmp_path / "study.csv").is_file()
    assert json.loads((tmp_path / "study.json").read_text())["command"] == " ".join(["continuous-gnn", *argv])


# ---------------------------------------------------------------------------------------------------
# the paper's toy: K_{100,100} (graff-notes §12(a))
# ---------------------------------------------------------------------------------------------------


def _bipartite(seed: int) -> dict[str, tuple[float, float]]:
    data = synthetic_dataset("bipartite", nodes=200, seed=seed)
    out = {}
    for name, config in _bipartite_configs().items():
        trace = trained_trajectory(config.replace(seed=seed), data, select="last", max_points=3)
        out[name] = (trace.records[-1]["rayleigh"], trace.records[-1]["acc_test"])
    return out


def test_bipartite_graff_oversharpens_and_non_residual_oversmooths():
    """Paper: SGCN_gf RQ 1.94, test accuracy 1.0; the "gcn" run RQ 4e-4 (accuracy 0.6). ρ_Δ = 200/101 = 1.98."""
    result = _bipartite(seed=0)
    rq, acc = result["graff"]
    assert rq >= 1.8 and acc >= 0.95, result
    assert result["non_residual"][0] <= 0.05, result


@pytest.mark.slow
def test_bipartite_over_seeds():
    results = [_bipartite(seed) for seed in range(5)]
    graff_rq = [r["graff"][0] for r in results]
    assert statistics.median(graff_rq) >= 1.8, results
    assert min(r["graff"][1] for r in results) >= 0.95, results
    assert statistics.median(r["non_residual"][0] for r in results) <= 0.05, results


# ---------------------------------------------------------------------------------------------------
# extrapolation beyond the training depth (graff-notes §12(b)); needs the benchmark data
# ---------------------------------------------------------------------------------------------------


def _extrapolate(name: str, data_root, data_cache):
    from continuous_gnn.data import load_dataset

    dataset = load_dataset(name, data_root, cache_dir=data_cache)
    trace = trained_trajectory(_extrapolation_config(name), dataset, t_end=64.0, times=(8, 16, 32, 64),
                               max_points=17)
    return {r["t"]: (r["rayleigh"], r["acc_test"]) for r in trace.records if r["requested"]}


@pytest.mark.slow
@pytest.mark.data
def test_extrapolation_cora_oversmooths(data_root, data_cache):
    at = _extrapolate("cora", data_root, data_cache)
    assert at[32.0][0] < at[8.0][0] and at[64.0][0] < at[32.0][0] and at[64.0][0] < 0.05, at
    assert at[8.0][1] > 0.8 and at[64.0][1] < at[8.0][1] - 0.2, at


@pytest.mark.slow
@pytest.mark.data
def test_extrapolation_chameleon_oversharpens(data_root, data_cache):
    at = _extrapolate("chameleon", data_root, data_cache)
    assert at[32.0][0] > 1.0 and at[32.0][0] > at[8.0][0], at
    assert at[64.0][1] < at[8.0][1], at


@pytest.mark.parametrize("flags, message", [
    (["--step-sizes", "1e-9", "--times", "1"], "gives 1e[+]09 steps, more than the 1,000,000 a solve allows"),
    (["--step-sizes", "1e-6", "--times", "1"], "gives 1,000,000 steps, more than the evaluation budget max_nfe = 100,000"),
    (["--w-families", "", "--times", "1"], "--w-families must be a comma-separated list without empty items"),
])
def test_cli_refuses_a_sweep_it_cannot_run_before_any_work(tmp_path, capsys, flags, message):
    # A step of 1e-9 built a grid of 10⁹ points (8 GB) before any check; 1e-6 ran 100 s into the budget.
    status = main(["study", "--synthetic", "sbm", "--nodes", "40", "--w-families", "prod", *flags,
                   "--out", str(tmp_path / "out")])
    assert status == 2 and re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_library_sweeps_refuse_strings_for_lists_and_grids_they_cannot_solve():
    dataset = contextual_sbm(30, 2, 0.5, 4.0, 6, 1.0, seed=0)
    from continuous_gnn.data import NodeDataset

    dataset = NodeDataset(name="csbm", data=dataset, num_classes=2, num_splits=1, metric="accuracy", homophilous=True)
    for keyword, value in (("w_families", "prod"), ("methods", "euler"), ("step_sizes", "0.5")):
        with pytest.raises(TypeError, match=f"{keyword} must be a sequence"):
            depth_units(dataset, **{keyword: value}, config=study_config("fresh"))
    with pytest.raises(ValueError, match="more than the evaluation budget"):
        depth_units(dataset, step_sizes=[1e-6], times=[1.0], config=study_config("fresh"))


def test_cli_says_when_a_trajectory_blew_up_before_the_last_readout(tmp_path, capsys):
    status = main(["study", "--synthetic", "sbm", "--nodes", "40", "--w-families", "prod", "--step-sizes", "1",
                   "--times", "10,1000", "--points", "5", "--out", str(tmp_path / "out")])
    assert status == 0
    assert re.search(r"fresh prod +euler +τ=1  the solve failed at t=\d+: no readouts after t=\d+",
                     capsys.readouterr().out)


def test_cli_describes_the_synthetic_graph_it_built(tmp_path, capsys):
    status = main(["study", "--synthetic", "grid", "--nodes", "30", "--w-families", "prod", "--step-sizes", "1",
                   "--times", "1", "--points", "2", "--out", str(tmp_path / "out")])
    assert status == 0
    assert "--synthetic grid has 25 nodes for --nodes 30" in capsys.readouterr().out  # a 5 × 5 grid
    data = json.loads((tmp_path / "out" / "study.json").read_text())["data"]
    assert data["nodes"] == 25 and "homophily" not in data


def test_run_units_computes_each_unit_once_and_reads_it_back(tmp_path):
    from continuous_gnn.studies import StudyUnit, run_units

    calls: list[str] = []

    def unit(name: str, value: float) -> StudyUnit:
        def compute() -> list[dict]:
            calls.append(name)
            return [{"unit": name, "value": value}]
        return StudyUnit(name, {"value": value}, compute)

    units = [unit("a", 1.0), unit("b", 2.0)]
    computed, found = [], []
    first = run_units(units, tmp_path / "units", {"data": "x"}, on_computed=lambda u, rows: computed.append(u.name))
    assert first == [{"unit": "a", "value": 1.0}, {"unit": "b", "value": 2.0}]
    assert calls == ["a", "b"] and computed == ["a", "b"]
    again = run_units(units, tmp_path / "units", {"data": "x"}, on_found=lambda u, path: found.append((u.name, path)))
    assert again == first and calls == ["a", "b"]
    assert [name for name, _ in found] == ["a", "b"] and all(path.parent == tmp_path / "units" for _, path in found)
    # Another context is another unit: computed afresh.
    run_units(units[:1], tmp_path / "units", {"data": "y"})
    assert calls == ["a", "b", "a"]
