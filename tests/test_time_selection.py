"""Choosing the integration time on validation at evaluation (``eval_time_multiple``, GRAND's early-stopping
evaluation): the steps it scores, the step it picks, the rules of the config, and the training loop with it."""

from __future__ import annotations

import math

import pytest
import torch

from continuous_gnn import Adaptive, ContinuousGNN, FixedGrid, Graph
from continuous_gnn.data import NodeDataset
from continuous_gnn.data.synthetic import contextual_sbm
from continuous_gnn.energies import DirichletEnergy
from continuous_gnn.training import RunConfig, build_graph, prepare_features, train_split
from continuous_gnn.training.history import SplitHistory
from continuous_gnn.training.metrics import metrics
from continuous_gnn.training.records import RunResult, SplitResult
from continuous_gnn.training.time_selection import best_step, scores_along_flow

SMALL = dict(hidden=16, time=1.0, step_size=0.5, lr=0.01, weight_decay=5e-4, dropout=0.2, input_dropout=0.1)


def _dataset() -> NodeDataset:
    data = contextual_sbm(120, num_classes=3, homophily=0.85, avg_degree=6.0, num_features=12, snr=2.0, seed=3,
                          num_splits=2)
    return NodeDataset(name="csbm", data=data, num_classes=3, num_splits=2, metric="accuracy", homophilous=True)


def _model_and_inputs(solver, t_end: float = 1.0):
    dataset = _dataset()
    data = dataset.data
    torch.manual_seed(0)
    model = ContinuousGNN(12, 8, 3, DirichletEnergy(), t_end=t_end, solver=solver).eval()
    graph = Graph.from_edge_index(data.edge_index, data.num_nodes)
    masks = torch.stack(dataset.split(0))
    return model, data.x, graph, data.y, masks


def test_every_step_is_scored_with_the_state_a_solve_to_its_time_ends_in():
    model, x, graph, y, masks = _model_and_inputs(FixedGrid("euler", step_size=0.25))
    with torch.no_grad():
        times, scores = scores_along_flow(model, x, graph, y, masks, "accuracy", t_end=3.0)
        assert times.tolist() == [0.25 * k for k in range(1, 13)]
        for k in (0, 3, 7, 11):
            expected = metrics(model.forward_with_solution(x, graph, t_end=float(times[k]))[0], y, masks, "accuracy")
            torch.testing.assert_close(scores[k], expected)
        # The step that ends at the model's T scores its ordinary prediction.
        torch.testing.assert_close(scores[3], metrics(model(x, graph), y, masks, "accuracy"))


def test_a_step_that_does_not_divide_the_end_leaves_one_shorter_last_step():
    model, x, graph, y, masks = _model_and_inputs(FixedGrid("rk4", step_size=1.0), t_end=1.3)
    with torch.no_grad():
        times, scores = scores_along_flow(model, x, graph, y, masks, "accuracy", t_end=3.9)
    assert times.tolist() == pytest.approx([1.0, 2.0, 3.0, 3.9])
    assert scores.shape == (4, 3)


def test_a_number_of_steps_is_read_as_the_step_it_gives_over_the_models_time():
    model, x, graph, y, masks = _model_and_inputs(FixedGrid("euler", num_steps=4), t_end=2.0)
    with torch.no_grad():
        times, _ = scores_along_flow(model, x, graph, y, masks, "accuracy", t_end=6.0)
    assert times.tolist() == [0.5 * k for k in range(1, 13)]


def test_an_adaptive_solver_scores_its_accepted_steps_and_the_end():
    # GRAND's EarlyStopDopri5 scores the state after every accepted step; here the last is scored at the end.
    model, x, graph, y, masks = _model_and_inputs(Adaptive("dopri5", rtol=1e-4, atol=1e-6))
    model.double()
    x, graph = x.double(), graph.to(dtype=torch.float64)
    with torch.no_grad():
        times, scores = scores_along_flow(model, x, graph, y, masks, "accuracy", t_end=3.0)
        _, solution = model.solve(x, graph, t_end=3.0)
        assert len(times) == solution.stats.steps_accepted >= 3  # every step but the last ends inside (0, 3)
        assert times[-1] == 3.0 and bool((times.diff() > 0).all())
        # Each state scored is the solve's state at that time: the dense output at a step's end is the step's.
        _, at_times = model.solve(x, graph, t_end=3.0, save_at=times[:-1].tolist())
        for k, state in enumerate(at_times.states[1:]):
            torch.testing.assert_close(scores[k], metrics(model.decode(state), y, masks, "accuracy"))


def test_scipy_solver_is_refused_with_the_fix():
    model, x, graph, y, masks = _model_and_inputs(Adaptive("scipy_solver", options={"solver": "RK45"}))
    with pytest.raises(ValueError, match="does not report: use a torchdiffeq method such as dopri5"):
        scores_along_flow(model, x, graph, y, masks, "accuracy", t_end=3.0)


@pytest.mark.parametrize("values, expected", [
    ([0.5, 0.7, 0.7, 0.6], 1),            # the first on ties, as GRAND's strict > keeps it
    ([math.nan, 0.2, math.nan, 0.1], 1),  # NaN never wins
    ([math.nan, math.nan], 1),            # nothing to choose by: the last step, where the solve ends
    ([0.9], 0),
])
def test_the_first_step_of_best_validation_metric_is_chosen(values, expected):
    scores = torch.tensor([[0.0, v, 1.0 - k] for k, v in enumerate(values)], dtype=torch.float64)
    assert best_step(scores) == expected


@pytest.mark.parametrize("changes, message", [
    (dict(eval_time_multiple=0.5), r"must lie in \[1, 100\]"),
    (dict(eval_time_multiple=1000), r"must lie in \[1, 100\]"),
    (dict(time_dependent=True, eval_time_multiple=3), "time_dependent weights have no piece"),
    (dict(batching="random", num_parts=2, evaluation="batches", eval_time_multiple=3), "evaluation = full"),
    (dict(step_size=1e-6, eval_time_multiple=3), "at evaluation.*lower eval_time_multiple"),
])
def test_the_config_refuses_what_evaluation_could_not_integrate(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**{**SMALL, **changes})


def test_the_loop_keeps_the_training_and_scores_each_epoch_at_its_best_step():
    dataset = _dataset()
    plain_config = RunConfig(epochs=6, **SMALL)
    plain = train_split(plain_config, dataset, 0)
    chosen = train_split(plain_config.replace(eval_time_multiple=3), dataset, 0)
    # Evaluation draws no random numbers, so training is the same run.
    assert chosen.train_loss == plain.train_loss
    assert len(chosen.eval_time) == chosen.epochs_run == 6 and not plain.eval_time
    assert set(chosen.eval_time) <= {0.5 * k for k in range(1, 7)}
    # T is one of the steps scored, so every epoch's chosen validation metric is at least the one at T.
    assert all(c >= p for c, p in zip(chosen.val_curve, plain.val_curve))
    assert chosen.val_metric >= plain.val_metric


def test_the_loop_picks_the_step_scores_along_flow_picks():
    """The epoch's metrics are those of the chosen step: the loop's record matches a rerun of the chosen step."""
    dataset = _dataset()
    config = RunConfig(epochs=3, eval_time_multiple=2, **SMALL)
    result = train_split(config, dataset, 0, keep="last")
    model = result.kept.model
    data = dataset.data
    masks = torch.stack(dataset.split(0))
    graph, features = build_graph(data, config, torch.device("cpu")), prepare_features(data.x, torch.device("cpu"))
    with torch.no_grad():
        times, scores = scores_along_flow(model, features, graph, data.y, masks, "accuracy", t_end=2.0)
    k = best_step(scores)
    assert result.eval_time[-1] == float(times[k])
    assert result.val_curve[-1] == pytest.approx(float(scores[k, 1]))
    assert result.train_curve[-1] == pytest.approx(float(scores[k, 0]))


def test_records_report_the_time_chosen_at_each_best_epoch():
    def split(best: int, times: list[float]) -> SplitResult:
        return SplitResult(split=0, seed=0, best_epoch=best, epochs_run=len(times), train_metric=1.0, val_metric=1.0,
                           test_metric=1.0, wall_time=1.0, epoch_time=0.1, num_parameters=1, train_loss=[0.0] * 3,
                           train_curve=[0.0] * 3, val_curve=[0.0] * 3, nfe_forward=[0] * 3, nfe_backward=[0] * 3,
                           eval_time=times)

    result = RunResult(config=RunConfig(**SMALL), dataset={}, metric="accuracy",
                       splits=[split(2, [1.0, 2.0, 3.0]), split(3, [1.0, 2.0, 4.0])], wall_time=1.0, date="d")
    aggregate = result.aggregate()
    assert (aggregate["eval_time_mean"], aggregate["eval_time_std"]) == (3.0, 1.0)
    result.splits = [split(2, [])]
    assert "eval_time_mean" not in result.aggregate()


def test_a_history_saved_before_evaluation_could_choose_the_time_still_loads():
    history = SplitHistory()
    history.add_epoch(1.0, 0.5, 0.5, 0.5, (4, 0), {}, keep=None, model=torch.nn.Linear(1, 1), eval_time=2.0)
    state = history.state_dict()
    assert SplitHistory.from_state_dict(state).eval_time == [2.0]
    del state["eval_time"]
    assert SplitHistory.from_state_dict(state).eval_time == []


def test_a_suite_page_shows_the_times_its_rows_chose(tmp_path):
    from continuous_gnn.benchmarks.suite import load_suite
    from continuous_gnn.cli.suite_page import RunSummary, render

    record = {"config": {"dataset": "texas", "seed": 1, "epochs": 5},
              "splits": [{"test_metric": 0.5, "val_metric": 0.5, "best_epoch": 2, "eval_time": [1.0, 2.0, 3.0]},
                         {"test_metric": 0.5, "val_metric": 0.5, "best_epoch": 3, "eval_time": [1.0, 2.0, 4.0]}],
              "aggregate": {"metric": "accuracy", "wall_time": 1.0, "epoch_time_mean": 0.1}}
    run = RunSummary.from_record("GRAFF", record, "runs/texas.json")
    assert run.eval_times == [2.0, 4.0]
    path = tmp_path / "one.toml"
    path.write_text('title = "t"\nseeds = [1]\n[[models]]\nlabel = "GRAFF"\npreset = "graff"\ndatasets = ["texas"]\n')
    page = render(load_suite(path), [run], command="c", started="s", total=1.0, partial=False, out_dir="runs")
    assert "| texas | GRAFF | 3.00 ± 1.00 | 2.00 | 4.00 |" in page
    plain = RunSummary.from_record("GRAFF", {**record, "splits": [{**s, "eval_time": []} for s in record["splits"]]},
                                   "runs/texas.json")
    assert "chose on validation" not in render(load_suite(path), [plain], command="c", started="s", total=1.0,
                                               partial=False, out_dir="runs")


@pytest.mark.data
def test_the_command_line_chooses_the_time_and_says_which(data_root, data_cache, tmp_path, capsys):
    import json

    from continuous_gnn.cli import main

    out = tmp_path / "texas.json"
    argv = ["train", "--dataset", "texas", "--splits", "0", "--epochs", "2", "--hidden", "8", "--method", "rk4",
            "--step-size", "0.5", "--time", "1", "--eval-time-multiple", "3", "--data-root", str(data_root),
            "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    assert "integration time chosen on validation at the best epoch" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["config"]["eval_time_multiple"] == 3
    assert len(record["splits"][0]["eval_time"]) == 2 and "eval_time_mean" in record["aggregate"]
    assert main([*argv[:-2], "--method", "rk4", "--step-size", "1e-6"]) == 2
    assert "lower eval_time_multiple" in capsys.readouterr().err
