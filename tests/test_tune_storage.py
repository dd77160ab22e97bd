"""``tune --storage``: workers sharing one Optuna study through its RDB storage, and the errors before any work."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from continuous_gnn.cli import main

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
#: Each worker imports torch, PyG and Optuna before it trains; on a busy two-core machine that takes a while.
TIMEOUT_S = 300


@pytest.mark.parametrize("argv, fragment", [
    (["--storage", "sqlite:///x.db"], "--storage needs --study-name NAME"),
    (["--study-name", "s"], "--study-name names the shared study in --storage: give both or neither"),
    (["--storage", " ", "--study-name", "s"], "--storage and --study-name must not be empty"),
    (["--storage", "not a url", "--study-name", "s"], "is not a database URL SQLAlchemy can use"),
    (["--storage", "sqlite:////nonexistent/folder/x.db", "--study-name", "s"], "cannot open the database"),
    (["--storage", "sqlite://", "--study-name", "s"], "is an in-memory SQLite database"),
    (["--storage", "sqlite:///:memory:", "--study-name", "s"], "name a file: sqlite:///tune.db"),
])
def test_storage_mistakes_are_usage_errors_before_any_work(argv, fragment, capsys):
    # The data root does not exist: the storage is checked first.
    assert main(["tune", "--dataset", "texas", "--data-root", "/nonexistent", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("continuous-gnn tune: error: ") and err.count("\n") == 1 and fragment in err, err


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None, reason="the PostgreSQL driver is installed")
def test_a_storage_whose_driver_is_missing_names_the_install(capsys):
    argv = ["tune", "--dataset", "texas", "--data-root", "/nonexistent", "--study-name", "s",
            "--storage", "postgresql://searcher:secret@db.example:5432/tune"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the database driver psycopg is not installed; pip install 'psycopg[binary]'" in err
    assert "secret" not in err and "postgresql://searcher:***@db.example:5432/tune" in err


def _worker(out: Path, argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "continuous_gnn", *argv, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.data
def test_two_workers_share_one_study_and_run_each_trial_once(tmp_path, data_root, data_cache, capsys):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    trials = 6
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "15", "--hidden", "8", "--trials", str(trials),
            "--fix", "hidden,self_loops", "--storage", storage, "--study-name", "texas-search", "--quiet",
            "--data-root", str(data_root), "--cache-dir", str(data_cache)]
    workers = [_worker(tmp_path / f"best{i}.toml", argv) for i in (0, 1)]
    outputs = [w.communicate(timeout=TIMEOUT_S) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, out + err
    ran = [[int(n) for n in re.findall(r"^trial +(\d+) +val", out, re.M)] for out, _ in outputs]
    assert all(ran), f"a worker ran no trial: {ran}"  # the two workers shared the search
    assert sorted(ran[0] + ran[1]) == list(range(trials))  # every trial exactly once, by one worker or the other
    study = optuna.load_study(study_name="texas-search", storage=storage)
    assert sorted(t.number for t in study.trials) == list(range(trials))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].params["lr"] == 0.005  # trial 0 is the configured config
    # A worker that joins the finished study runs nothing and writes the study's best config.
    assert main([*argv, "--out", str(tmp_path / "late.toml")]) == 0
    record = json.loads((tmp_path / "late.json").read_text())
    assert len(record["trials"]) == trials and record["best_value"] == study.best_value
    assert f"{trials} of {trials} trials completed in study 'texas-search'" in (tmp_path / "late.toml").read_text()
    # A worker with other flags cannot join it.
    capsys.readouterr()
    assert main([*[a if a != "15" else "16" for a in argv], "--out", str(tmp_path / "other.toml")]) == 2
    assert ("study 'texas-search' was created by a search with other settings (config.epochs: study 15, this "
            "worker 16); start every worker") in capsys.readouterr().err


def _toy(trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return -(x - 0.5) ** 2 + (0.1 if kind == "b" else 0.0)


def test_the_in_memory_queue_runs_the_trials_of_study_optimize():
    from continuous_gnn.training.trial_queue import open_queue

    queue = open_queue(storage=None, study_name=None, sampler=optuna.samplers.TPESampler(seed=4), settings={},
                       first={"x": 0.0, "kind": "a"}, trials=14)
    queue.run(_toy)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    reference = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=4))
    reference.enqueue_trial({"x": 0.0, "kind": "a"})
    reference.optimize(_toy, n_trials=14)
    assert [(t.params, t.value) for t in queue.study.trials] == [(t.params, t.value) for t in reference.trials]


def test_workers_claim_each_queued_trial_once_and_never_add_one(tmp_path):
    from continuous_gnn.training.trial_queue import open_queue, open_storage

    url = f"sqlite:///{tmp_path / 'q.db'}"

    def worker():
        return open_queue(storage=open_storage(url), study_name="q", sampler=optuna.samplers.RandomSampler(seed=0),
                          settings={"a": [1]}, first={"x": 1.0}, trials=3)

    first, second = worker(), worker()  # the second joins the study the first created
    claimed = [first.claim(), second.claim(), first.claim()]
    assert sorted(t.number for t in claimed) == [0, 1, 2]
    assert second.claim() is None and first.claim() is None
    assert len(first.study.trials) == 3  # an empty queue adds no trial
    with pytest.raises(ValueError, match=r"was created by a search with other settings \(a: study \[1\], this worker \[2\]\)"):
        open_queue(storage=open_storage(url), study_name="q", sampler=optuna.samplers.RandomSampler(),
                   settings={"a": [2]}, first={}, trials=3)


def test_a_larger_budget_extends_a_study_of_one_worker_and_a_smaller_one_is_refused(tmp_path):
    from continuous_gnn.training.trial_queue import BUDGET_KEY, SETTINGS_KEY, open_queue, open_storage

    url = f"sqlite:///{tmp_path / 'q.db'}"

    def queue(trials, extend=True, name="q"):
        return open_queue(storage=open_storage(url), study_name=name, sampler=optuna.samplers.RandomSampler(seed=0),
                          settings={"a": [1]}, first={"x": 1.0}, trials=trials, extend=extend)

    first = queue(3)
    assert first.extended_from is None
    first.run(lambda trial: trial.suggest_float("x", 0.0, 2.0))
    again = queue(3)  # the same budget: nothing queued
    assert again.extended_from is None and len(again.study.trials) == 3 and again.claim() is None
    larger = queue(5)
    assert larger.extended_from == 3 and larger.study.user_attrs[BUDGET_KEY] == 5
    larger.run(lambda trial: trial.suggest_float("x", 0.0, 2.0))
    assert [t.state.name for t in larger.study.trials] == ["COMPLETE"] * 5
    with pytest.raises(ValueError, match=r"study 'q' has a budget of 5 trials, not 4; pass the same --trials to "
                                         r"continue it, or more to extend it, or start another study"):
        queue(4)
    with pytest.raises(ValueError, match=r"has a budget of 5 trials, not 6; pass the same --trials to continue it, "
                                         r"or start another study"):
        queue(6, extend=False)  # workers sharing a study could both queue the difference
    # A study created before the budget had its own attribute holds it in its settings.
    old = optuna.create_study(storage=open_storage(url), study_name="old", direction="maximize")
    old.set_user_attr(SETTINGS_KEY, {"a": [1], "trials": 2})
    assert queue(2, name="old").extended_from is None
    assert queue(4, name="old").extended_from == 2


def test_a_failed_trial_is_marked_and_the_queue_goes_on_unless_the_error_is_unexpected():
    from continuous_gnn.training.trial_queue import open_queue

    queue = open_queue(storage=None, study_name=None, sampler=optuna.samplers.RandomSampler(seed=0), settings={},
                       first={}, trials=4)
    outcomes = iter([ValueError("diverged"), float("nan"), 1.0, KeyError("bug")])

    def objective(trial):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(KeyError, match="bug"):
        queue.run(objective, catch=(ValueError,))
    states = [t.state.name for t in queue.study.trials]
    assert states == ["FAIL", "FAIL", "COMPLETE", "FAIL"]
    assert queue.study.trials[1].user_attrs["failed"] == "the objective returned nan"


def test_a_sqlite_transaction_holds_the_write_lock_from_its_first_read(tmp_path):
    # SQLite ignores SELECT ... FOR UPDATE, so a claim (read WAITING, write RUNNING) is atomic only when its
    # transaction takes the write lock before it reads; otherwise two workers can both claim one trial.
    import sqlite3

    from sqlalchemy import text

    from continuous_gnn.training.trial_queue import open_storage

    path = tmp_path / "tune.db"
    storage = open_storage(f"sqlite:///{path}")
    with storage.engine.connect() as connection, connection.begin():
        assert connection.execute(text("SELECT count(*) FROM trials")).scalar() == 0
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # free once that transaction ended
    other.execute("ROLLBACK")
    other.close()


def test_threads_claiming_one_queue_take_each_trial_once(tmp_path):
    import threading

    from continuous_gnn.training.trial_queue import open_storage

    url = f"sqlite:///{tmp_path / 'tune.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="race")
    for _ in range(40):
        study.enqueue_trial({})
    claimed: list[list[int]] = [[] for _ in range(4)]

    def worker(index: int) -> None:
        from continuous_gnn.training.trial_queue import TrialQueue

        storage = open_storage(url)
        mine = optuna.load_study(study_name="race", storage=storage)
        queue = TrialQueue(mine, storage, storage.get_study_id_from_name("race"))
        while (trial := queue.claim()) is not None:
            claimed[index].append(trial.number)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT_S)
    numbers = sorted(n for mine in claimed for n in mine)
    assert numbers == list(range(40)), "every queued trial claimed exactly once"


def test_the_recorded_command_hides_the_storage_password():
    from continuous_gnn.cli.tune import _without_password

    argv = ["--dataset", "texas", "--storage", "postgresql://searcher:s3cret@db.example/tune", "--study-name", "s",
            "--storage=mysql://me:pw@host/db", "--out", "best.toml"]
    assert _without_password(argv) == [
        "--dataset", "texas", "--storage", "postgresql://searcher:***@db.example/tune", "--study-name", "s",
        "--storage=mysql://me:***@host/db", "--out", "best.toml"]


@pytest.mark.data
def test_a_shared_search_keeps_its_storage_password_out_of_the_files_it_writes(tmp_path, data_root, data_cache,
                                                                               monkeypatch):
    from continuous_gnn.training import trial_queue

    local = f"sqlite:///{tmp_path / 'tune.db'}"
    opened = trial_queue.open_storage
    # Stands in for the PostgreSQL server, whose driver is not installed here.
    monkeypatch.setattr(trial_queue, "open_storage", lambda url, **kw: opened(local, **kw))
    out = tmp_path / "best.toml"
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "2", "--hidden", "8", "--trials", "1",
            "--storage", "postgresql://searcher:s3cret@db.example/tune", "--study-name", "pw", "--quiet",
            "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(out)]
    assert main(argv) == 0
    for written in (out, out.with_suffix(".json")):
        text = written.read_text()
        assert "s3cret" not in text and "postgresql://searcher:***@db.example/tune" in text, written


def test_a_worker_that_joins_a_study_never_set_up_says_it_waits_then_how_to_restart(tmp_path):
    from continuous_gnn.training.trial_queue import open_queue, open_storage

    url = f"sqlite:///{tmp_path / 'q.db'}"
    optuna.create_study(study_name="half", storage=url)  # a creator stopped before queueing its trials
    waits = []
    with pytest.raises(ValueError, match=r"study 'half' exists but its search was never set up .*; delete it"):
        open_queue(storage=open_storage(url), study_name="half", sampler=optuna.samplers.RandomSampler(),
                   settings={}, first={}, trials=2, wait_s=0.6, on_wait=waits.append, restart="delete it")
    assert waits == [0.6]


@pytest.mark.data
def test_tune_joining_a_study_never_set_up_prints_why_it_waits(tmp_path, data_root, data_cache, capsys, monkeypatch):
    from continuous_gnn.cli import tune

    monkeypatch.setattr(tune, "JOIN_WAIT_S", 1.0)
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    optuna.create_study(study_name="foreign", storage=url)
    argv = ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "2", "--trials", "1", "--storage", url,
            "--study-name", "foreign", "--quiet", "--data-root", str(data_root), "--cache-dir", str(data_cache),
            "--out", str(tmp_path / "best.toml")]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "study 'foreign' exists but is not set up yet: waiting up to 1 s for the worker that created it" in out
    assert "never set up (its first worker stopped while creating it?); use another --study-name" in err
