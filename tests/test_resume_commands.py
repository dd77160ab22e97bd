"""Multi-run commands resume: a killed ``reproduce``, seed spread, ``study`` or ``tune`` rerun with the same
arguments skips the work whose record is there and ends with the outputs of an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from continuous_gnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import seed_spread  # noqa: E402

#: A subprocess imports torch and PyG before it trains; on a busy two-core machine that takes a while. The two
#: tests that kill a subprocess take tens of seconds for that reason: a real kill is what they test.
TIMEOUT_S = 300


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "continuous_gnn", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when(process: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` is true; fail if it ends or times out first."""
    deadline = time.monotonic() + TIMEOUT_S
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the command ended (status {process.returncode}) before {what}:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} within {TIMEOUT_S} s")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()


def _page_without_times(path: Path, folder: str) -> list[str]:
    """A reproduction page without its provenance line, wall times and epoch times, with ``folder`` renamed."""
    text = path.read_text().replace(f"/{folder}/", "/FOLDER/")
    text = re.sub(r"Total wall time \d+ s \([\d.]+ min\)", "Total wall time", text)
    lines = [line for line in text.splitlines() if not line.startswith("Generated")]
    lines = [re.sub(r"\| \d+ \|$", "| TIME |", line) for line in lines]  # the table's time column
    return [re.sub(r"\| [\d.]+ \| `", "| MS | `", line) for line in lines]  # the per-run ms / epoch


@pytest.mark.data
def test_a_killed_reproduction_resumes_without_training_again(data_root, data_cache, tmp_path, capsys):
    def argv(folder: str) -> list[str]:
        # Texas trains in about a second, film in a few: the kill lands while film trains.
        return ["reproduce", "--datasets", "texas,film", "--models", "graff", "--splits", "0", "--epochs", "30",
                "--threads", "1", "--data-root", str(data_root), "--cache-dir", str(data_cache), "--quiet",
                "--out-dir", str(tmp_path / folder / "runs"), "--results", str(tmp_path / folder / "results.md")]

    texas = tmp_path / "resumed" / "runs" / "texas-graff.json"
    _kill_when(_start(argv("resumed")), texas.is_file, "the texas record")
    assert not (tmp_path / "resumed" / "runs" / "film-graff.json").exists(), "killed too late: film had finished"
    assert not (tmp_path / "resumed" / "results.md").exists()  # the page waits for every run
    before = texas.stat().st_mtime_ns, texas.read_text()

    assert main(argv("resumed")) == 0
    out = capsys.readouterr().out
    assert f"Texas      GRAFF       record found in {texas}, skipped" in out
    assert re.search(r"^Film +GRAFF +test ", out, re.M) and not re.search(r"^Texas +GRAFF +test ", out, re.M)
    assert (texas.stat().st_mtime_ns, texas.read_text()) == before  # not trained, not rewritten
    assert main(argv("whole")) == 0
    for name in ("texas-graff.json", "film-graff.json"):
        resumed, whole = (json.loads((tmp_path / f / "runs" / name).read_text()) for f in ("resumed", "whole"))
        assert resumed["aggregate"]["test_mean"] == whole["aggregate"]["test_mean"]
        assert [s["val_curve"] for s in resumed["splits"]] == [s["val_curve"] for s in whole["splits"]]
    resumed, whole = (_page_without_times(tmp_path / f / "results.md", f) for f in ("resumed", "whole"))
    assert resumed == whole
    assert any(line.startswith("| Texas | GRAFF |") for line in whole)


@pytest.mark.data
def test_a_seed_spread_with_a_lost_seed_trains_only_that_seed(data_root, data_cache, tmp_path, capsys):
    def argv(folder: str) -> list[str]:
        return ["--datasets", "texas", "--models", "graff", "--seeds", "0,10,20", "--splits", "0", "--epochs", "3",
                "--threads", "1", "--data-root", str(data_root), "--cache-dir", str(data_cache),
                "--out-dir", str(tmp_path / folder), "--results", str(tmp_path / f"{folder}.md")]

    assert seed_spread.main(argv("resumed")) == 0
    kept = {seed: tmp_path / "resumed" / f"texas-graff-seed{seed}.json" for seed in (0, 10)}
    stamps = {seed: path.stat().st_mtime_ns for seed, path in kept.items()}
    # A kill during seed 20 leaves the records of seeds 0 and 10 and none of seed 20.
    (tmp_path / "resumed" / "texas-graff-seed20.json").unlink()
    (tmp_path / "resumed.md").unlink()
    capsys.readouterr()
    assert seed_spread.main(argv("resumed")) == 0
    out = capsys.readouterr().out
    for seed, path in kept.items():
        assert re.search(rf"seed +{seed}  record found in {re.escape(str(path))}, skipped", out)
        assert path.stat().st_mtime_ns == stamps[seed]
    assert re.search(r"seed +20  test ", out) and len(re.findall(r"  test ", out)) == 1
    assert seed_spread.main(argv("whole")) == 0

    def tables(page: Path) -> list[str]:
        return [line for line in page.read_text().splitlines() if line.startswith("|")]

    assert tables(tmp_path / "resumed.md") == tables(tmp_path / "whole.md")
    assert len(tables(tmp_path / "whole.md")) == 6


def test_a_stale_trial_of_a_killed_worker_runs_again_and_the_study_completes_its_budget(tmp_path):
    optuna = pytest.importorskip("optuna")
    from continuous_gnn.training.trial_queue import open_queue, open_storage, replaced_trials

    url = f"sqlite:///{tmp_path / 'q.db'}"
    default = open_storage(url)  # the documented defaults: a heartbeat every 5 s, stale after 20 s without one
    assert (default.heartbeat_interval, default.grace_period) == (5, 20)

    def worker():
        return open_queue(storage=open_storage(url, heartbeat_s=1, grace_s=1), study_name="q",
                          sampler=optuna.samplers.RandomSampler(seed=0), settings={}, first={"x": 0.25}, trials=3)

    killed = worker().claim()  # its worker dies: no more heartbeats, the trial stays RUNNING
    killed.suggest_float("x", 0.0, 1.0)
    ran = []

    def objective(trial):
        ran.append(trial.number)
        return trial.suggest_float("x", 0.0, 1.0)

    started = time.monotonic()
    queue = worker()
    queue.run(objective)
    states = {t.number: t.state.name for t in queue.study.trials}
    assert states == {0: "FAIL", 1: "COMPLETE", 2: "COMPLETE", 3: "COMPLETE"}, states
    assert ran == [1, 2, 3] and time.monotonic() - started < 30
    retry = queue.study.trials[3]
    assert retry.params == {"x": 0.25} and retry.system_attrs["failed_trial"] == 0  # trial 0 again, same values
    assert replaced_trials(queue.study.trials) == {0}


def test_an_interrupted_trial_is_queued_again(tmp_path):
    optuna = pytest.importorskip("optuna")
    from continuous_gnn.training.trial_queue import open_queue

    queue = open_queue(storage=None, study_name=None, sampler=optuna.samplers.RandomSampler(seed=0), settings={},
                       first={"x": 0.5}, trials=2)

    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        queue.run(objective)
    states = [t.state.name for t in queue.study.trials]
    assert states == ["FAIL", "WAITING", "WAITING"]
    assert queue.study.trials[2].params == {"x": 0.5} and queue.study.trials[2].system_attrs["failed_trial"] == 0


@pytest.mark.data
def test_a_killed_tune_continues_its_study_and_ends_with_the_requested_trials(data_root, data_cache, tmp_path,
                                                                             capsys, monkeypatch):
    optuna = pytest.importorskip("optuna")
    from continuous_gnn.training import trial_queue

    out = tmp_path / "best.toml"
    trials = 4
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "30", "--hidden", "8", "--trials", str(trials),
            "--fix", "hidden,self_loops", "--data-root", str(data_root), "--cache-dir", str(data_cache),
            "--out", str(out)]
    process = _start(argv)
    lines: list[str] = []

    def second_trial_done() -> bool:
        lines.append(process.stdout.readline())
        return bool(re.match(r"trial +1 +val", lines[-1]))

    _kill_when(process, second_trial_done, "the second trial")
    time.sleep(0.3)  # noqa - the kill above already landed; the study must show the trial it interrupted
    storage = f"sqlite:///{tmp_path / 'best.optuna.sqlite3'}"
    (name,) = optuna.get_all_study_names(storage)
    killed = optuna.load_study(study_name=name, storage=storage)
    states = [t.state.name for t in killed.trials]
    assert states.count("COMPLETE") >= 1 and states.count("RUNNING") == 1, states
    assert not out.exists()

    # The killed trial goes stale 2 s after its last heartbeat instead of GRACE_S (the wait itself is timed in
    # the test above), to keep this test short.
    default = trial_queue.open_storage
    monkeypatch.setattr(trial_queue, "open_storage", lambda url: default(url, heartbeat_s=1, grace_s=2))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    done_before = states.count("COMPLETE")
    assert f"{done_before} of {trials} trials had finished (found in the study): running the others" in printed
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == trials and all(t.state.name != "RUNNING" for t in study.trials)
    (stale,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert [t.system_attrs.get("failed_trial") for t in complete].count(stale.number) == 1
    summary = json.loads(out.with_suffix(".json").read_text())
    assert len(summary["trials"]) == trials and {t["state"] for t in summary["trials"]} == {"COMPLETE"}

    assert f"{trials} of {trials} trials completed" in out.read_text()

    def with_flag(flags: list[str], flag: str, value: str) -> list[str]:
        at = flags.index(flag)
        return [*flags[:at + 1], value, *flags[at + 2:]]

    # Rerun with a larger budget, the same study runs the difference; with a smaller one, it is refused.
    assert main(with_flag(argv, "--trials", str(trials + 1))) == 0
    printed = capsys.readouterr().out
    assert f"the study had a budget of {trials} trials: 1 more queued" in printed
    assert f"{trials} of {trials + 1} trials had finished" in printed and optuna.get_all_study_names(storage) == [name]
    assert len(json.loads(out.with_suffix(".json").read_text())["trials"]) == trials + 1
    assert f"{trials + 1} of {trials + 1} trials completed" in out.read_text()
    assert main(argv) == 2
    assert f"has a budget of {trials + 1} trials, not {trials}" in capsys.readouterr().err
    # Other flags with the same --out would replace the finished search's config: refused, and nothing changes.
    extended = len(optuna.load_study(study_name=name, storage=storage).trials)
    written = out.read_text()
    assert main(with_flag(with_flag(argv, "--trials", "1"), "--epochs", "29")) == 2
    assert "holds the best config of another search" in capsys.readouterr().err
    assert optuna.get_all_study_names(storage) == [name]
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == extended
    assert out.read_text() == written


@pytest.mark.data
def test_a_default_named_tune_names_the_out_that_continues_it(data_root, data_cache, tmp_path, capsys, monkeypatch):
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)  # the default name is runs/tune-<dataset>-<timestamp>.toml under the working folder
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "10", "--hidden", "8", "--trials", "1",
            "--fix", "hidden,self_loops", "--data-root", str(data_root), "--cache-dir", str(data_cache)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # Rerun as it was, the command would claim the next free name and with it a new study; the message names the
    # --out that finds this one.
    assert "rerun this command to continue" not in printed
    (out,) = re.findall(r"rerun this command with --out (\S+) to continue if it stops", printed)
    assert (tmp_path / out).exists() and (tmp_path / out).parent == tmp_path / "runs"
    assert main([*argv, "--out", out]) == 0
    again = capsys.readouterr().out
    assert "1 of 1 trials had finished (found in the study): nothing left to run" in again
    assert "rerun this command to continue if it stops" in again  # a named --out: the command as it was
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.optuna.sqlite3")) == [Path(out).stem + ".optuna.sqlite3"]


def test_a_trial_is_replaced_only_once_its_repetition_has_started(tmp_path):
    optuna = pytest.importorskip("optuna")
    from continuous_gnn.training.trial_queue import open_queue, replaced_trials, requeued_trials

    queue = open_queue(storage=None, study_name=None, sampler=optuna.samplers.RandomSampler(seed=0), settings={},
                       first={"x": 0.5}, trials=1)
    calls = []

    def objective(trial):
        calls.append(trial.number)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return trial.suggest_float("x", 0.0, 1.0)

    with pytest.raises(KeyboardInterrupt):
        queue.run(objective)
    assert replaced_trials(queue.study.trials) == set()  # trial 1 repeats trial 0 but has not run
    assert requeued_trials(queue.study.trials) == {0}  # ... and trial 0 is still to run, not finished
    queue.run(objective)
    assert calls == [0, 1] and replaced_trials(queue.study.trials) == {0} == requeued_trials(queue.study.trials)
    assert queue.study.trials[1].value == 0.5


def _rows_without(path: Path, column: str) -> list[list[str]]:
    lines = [line.split(",") for line in path.read_text().splitlines()]
    drop = lines[0].index(column) if column in lines[0] else None
    return [[cell for i, cell in enumerate(line) if i != drop] for line in lines]


def test_a_study_with_a_lost_unit_computes_only_that_unit(tmp_path, capsys):
    def argv(out: Path) -> list[str]:
        return ["study", "--homophily-sweep", "0.2,0.8", "--w-families", "prod,neg_prod", "--nodes", "60",
                "--epochs", "2", "--hidden", "4", "--seed", "3", "--out", str(out)]

    resumed = tmp_path / "resumed"
    assert main(argv(resumed)) == 0
    units = sorted((resumed / "units").glob("*.json"))
    assert [u.name for u in units] == ["h0.2-neg_prod-seed3.json", "h0.2-prod-seed3.json",
                                       "h0.8-neg_prod-seed3.json", "h0.8-prod-seed3.json"]
    stamps = {u: u.stat().st_mtime_ns for u in units}
    # A kill while the last unit trained leaves the other units' records and no CSV.
    lost = resumed / "units" / "h0.8-neg_prod-seed3.json"
    lost.unlink()
    (resumed / "homophily.csv").unlink()
    capsys.readouterr()
    assert main(argv(resumed)) == 0
    out = capsys.readouterr().out
    assert out.count(", skipped") == 3
    for unit in units:
        if unit != lost:
            assert f"  {unit.stem}: record found in {unit}, skipped" in out
            assert unit.stat().st_mtime_ns == stamps[unit]
    (trained,) = [line for line in out.splitlines() if line.startswith("  h=")]
    assert trained.startswith("  h=0.8 ") and " neg_prod " in trained
    whole = tmp_path / "whole"
    assert main(argv(whole)) == 0
    # The rows equal those of an uninterrupted run; only the training times differ.
    assert _rows_without(resumed / "homophily.csv", "wall_time") == _rows_without(whole / "homophily.csv",
                                                                                 "wall_time")


def test_a_depth_study_reuses_its_saved_trajectories_and_keeps_other_settings_apart(tmp_path, capsys):
    def argv(*extra: str) -> list[str]:
        return ["study", "--synthetic", "ring", "--nodes", "20", "--step-sizes", "0.5,1", "--times", "1,2",
                "--methods", "euler", "--w-families", "prod,sum", "--out", str(tmp_path / "out"), *extra]

    assert main(argv()) == 0
    first = (tmp_path / "out" / "study.csv").read_text()
    (tmp_path / "out" / "units" / "fresh-sum-euler-tau1.json").unlink()
    capsys.readouterr()
    assert main(argv()) == 0
    out = capsys.readouterr().out
    assert out.count(", skipped") == 3 and "  fresh sum        euler          τ=1" in out
    assert (tmp_path / "out" / "study.csv").read_text() == first
    # Another seed draws other fresh models: nothing is reused.
    assert main(argv("--seed", "1")) == 0
    assert ", skipped" not in capsys.readouterr().out


def test_settings_keys_ignore_key_order_and_finished_records_take_a_units_identity(tmp_path):
    from continuous_gnn.studies import unit_key
    from continuous_gnn.training import finished_records, read_json_object, save_record, settings_key

    assert settings_key({"a": 1, "b": [1.5, None]}) == settings_key({"b": [1.5, None], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 1.5})
    save_record({"settings": {"seed": 1, "h": 0.5}, "rows": [{"x": 1}]}, tmp_path / "b.json")
    save_record({"settings": {"h": 0.5, "seed": 1}, "rows": [{"x": 2}]}, tmp_path / "a.json")  # the same unit
    save_record({"settings": {"h": 0.5, "seed": 2}, "rows": []}, tmp_path / "c.json")
    save_record({"settings": [1, 2], "rows": []}, tmp_path / "d.json")  # settings that are not an object
    from helpers import run_record

    whole = run_record()
    save_record(whole, tmp_path / "run.json")  # not a unit
    # a damaged run record (an entry the pages or a suite's merge read is gone) is no finished run: it trains again
    damaged = {**whole, "aggregate": {k: v for k, v in whole["aggregate"].items() if k != "test_mean"}}
    save_record(damaged, tmp_path / "run-1.json")
    save_record({**whole, "splits": [{"split": 0, "best_epoch": 1}]}, tmp_path / "run-2.json")
    save_record({k: v for k, v in whole.items() if k != "date"}, tmp_path / "run-3.json")
    (tmp_path / "e.json").write_text("[1, 2]")
    found = finished_records(tmp_path, key_of=unit_key)
    assert found == {settings_key({"h": 0.5, "seed": 1}): tmp_path / "a.json",  # the first in name order
                     settings_key({"h": 0.5, "seed": 2}): tmp_path / "c.json"}
    from continuous_gnn.training import RunConfig, record_key

    # By default only run records count: an empty config is the default one.
    assert finished_records(tmp_path) == {record_key(RunConfig()): tmp_path / "run.json"}
    from continuous_gnn.training import load_record

    with pytest.raises(ValueError, match=r"run-1.json' is not a continuous_gnn run record: its aggregate lacks "
                                         r"\['test_mean'\]"):
        load_record(tmp_path / "run-1.json")
    with pytest.raises(ValueError, match=r"its splits are not a list of per-split results with \['split', 'seed'"):
        load_record(tmp_path / "run-2.json")
    with pytest.raises(ValueError, match=r"run-3.json' is not a continuous_gnn run record: it lacks \['date'\]"):
        load_record(tmp_path / "run-3.json")
    with pytest.raises(ValueError, match="holds a JSON list, not a continuous_gnn record"):
        read_json_object(tmp_path / "e.json")
    with pytest.raises(KeyError):
        unit_key({"rows": []})
    with pytest.raises(TypeError, match="settings are a JSON object"):
        unit_key({"settings": [1]})


def test_a_worker_leaves_a_live_trial_of_another_worker_to_it(tmp_path):
    optuna = pytest.importorskip("optuna")
    from continuous_gnn.training.trial_queue import open_queue, open_storage

    url = f"sqlite:///{tmp_path / 'q.db'}"

    def worker():
        return open_queue(storage=open_storage(url, heartbeat_s=1, grace_s=2), study_name="q",
                          sampler=optuna.samplers.RandomSampler(seed=0), settings={}, first={}, trials=2)

    other = worker()
    live = other.claim()
    started = time.monotonic()
    with other._heartbeats(live._trial_id):  # the other worker is alive: it keeps recording heartbeats
        queue = worker()
        queue.run(lambda trial: 1.0)
        waited = time.monotonic() - started
    assert [t.state.name for t in queue.study.trials] == ["RUNNING", "COMPLETE"]
    assert 2 <= waited < 15  # it waited one grace period and a heartbeat for the trial to go stale, then left


@pytest.mark.data
def test_a_continued_search_draws_new_trials_not_the_ones_it_ran(data_root, data_cache, tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    out = tmp_path / "best.toml"
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "2", "--hidden", "8", "--fix",
            "hidden,self_loops", "--quiet", "--data-root", str(data_root), "--cache-dir", str(data_cache),
            "--out", str(out)]
    assert main([*argv, "--trials", "3"]) == 0
    assert main([*argv, "--trials", "5"]) == 0  # as after a Ctrl-C, or to extend the search
    capsys.readouterr()
    storage = f"sqlite:///{tmp_path / 'best.optuna.sqlite3'}"
    (name,) = optuna.get_all_study_names(storage)
    params = [t.params for t in optuna.load_study(study_name=name, storage=storage).trials]
    assert len(params) == 5
    # Trial 0 is the configured start; 1 and 2 were drawn by the first start, 3 and 4 by the second, which drew
    # the same two again when it was seeded alike.
    assert params[3] not in params[1:3] and params[4] not in params[1:3]
