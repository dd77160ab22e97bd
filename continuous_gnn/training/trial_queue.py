"""A search's trials as a queue in one Optuna study, which several workers (processes or machines) can share.

``continuous-gnn tune --storage URL --study-name NAME`` keeps the study in Optuna's RDB storage: SQLite
(``sqlite:///tune.db``) for workers on one machine, PostgreSQL or MySQL for a cluster. The first worker creates
the study, records the search's settings in it (:func:`open_queue`), and enqueues the whole budget: trial 0 with
the configured values, the others empty, so that the sampler chooses their values when they run. Every worker
then claims queued trials one at a time until none is left (:meth:`TrialQueue.run`). A claim is the storage's atomic
change of a trial from WAITING to RUNNING, so no trial runs twice and the study ends with exactly the requested
number of trials, however many workers share it. Optuna makes it atomic with ``SELECT ... FOR UPDATE``, which
SQLite ignores: there two workers could both read WAITING and both claim the trial. :func:`open_storage` therefore
begins every SQLite transaction with ``BEGIN IMMEDIATE``, which takes the database's write lock before the read.
(``Study.optimize`` would create a fresh trial whenever the queue is empty, so two workers racing for the last
queued trial would run one trial too many.)

Without a storage the queue lives in memory and one worker runs it: the trials, their order and their values
are those of ``Study.optimize`` with the same sampler.

A worker that joins an existing study checks that its settings are the study's, so workers started with
different flags cannot mix their trials. The budget is the study's too: a worker may ask for it or, where it is
the study's only worker (``extend=True``), for more, which queues the difference; never for less.

A worker that is killed (or whose machine stops) leaves its trial RUNNING. While it runs a trial a worker records a
heartbeat in the storage every :data:`HEARTBEAT_S` seconds; a RUNNING trial without one for :data:`GRACE_S`
seconds is stale: the next worker to look marks it FAIL and queues it again with the same parameters (Optuna's
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, which records the trial it repeats), so the study
still completes its whole budget. A worker whose queue is empty while trials are RUNNING elsewhere waits long
enough for a dead worker's trial to go stale, runs it if it does, and otherwise leaves the live ones to their
workers. A worker stopped by Ctrl-C queues its trial again at once. A trial that was run again does not count in
the budget: :func:`replaced_trials` names them.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

__all__ = ["open_storage", "shown_url", "TrialQueue", "open_queue", "replaced_trials", "requeued_trials",
           "SETTINGS_KEY", "BUDGET_KEY", "HEARTBEAT_S", "GRACE_S"]

#: The study attribute that holds the search's settings; the creator writes it after enqueuing the budget.
SETTINGS_KEY = "continuous_gnn_settings"
#: The study attribute that holds its budget, the number of trials queued for it (studies created before it
#: existed hold the budget as the ``trials`` entry of their settings).
BUDGET_KEY = "continuous_gnn_budget"
#: Seconds between the heartbeats a worker records for its running trial.
HEARTBEAT_S = 5
#: Seconds without a heartbeat after which a RUNNING trial is stale: its worker was killed.
GRACE_S = 20
#: pip packages of the database drivers SQLAlchemy names by module.
_DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
            "pymysql": "PyMySQL", "mysql": "mysql-connector-python", "asyncpg": "asyncpg"}


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password to hide
        return url


def open_storage(url: str, *, attempts: int = 5, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int = GRACE_S) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``, its tables created if needed, with heartbeats of running trials.

    A RUNNING trial without a heartbeat for ``grace_s`` seconds is stale, and is queued again when a worker fails
    it (:meth:`TrialQueue.run`).

    Workers that start together on a fresh database race to create its tables (with SQLite, one of two often
    fails with "table ... already exists"); such a failure is retried after a short wait.

    Raises:
        ValueError: if the URL cannot be parsed, names an unknown database, needs a driver that is not installed
            (the message names the ``pip install``), or the database cannot be opened.
    """
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    shown = shown_url(url)
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as err:
        raise ValueError(f"--storage {shown} is not a database URL SQLAlchemy can use ({err}); use e.g. "
                         f"sqlite:///tune.db or postgresql://user@host/db") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(f"--storage {shown} is an in-memory SQLite database, which no other worker can reach and "
                         "which is lost when the command ends; name a file: sqlite:///tune.db")
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are an experimental Optuna feature
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback())
            if storage.engine.dialect.name == "sqlite":
                _lock_before_reading(storage.engine)
            return storage
        except ImportError as err:
            module = getattr(err.__cause__, "name", None) or "its driver"
            package = _DRIVERS.get(module, module)
            raise ValueError(f"--storage {shown}: the database driver {module} is not installed; pip install "
                             f"{package}, or name an installed driver in the URL (e.g. postgresql+psycopg2://, "
                             f"mysql+pymysql://); sqlite:///FILE needs none") from None
        except sqlalchemy.exc.ArgumentError as err:
            raise ValueError(f"--storage {shown} is not a database URL SQLAlchemy can use ({err}); use e.g. "
                             f"sqlite:///tune.db or postgresql://user@host/db") from None
        except sqlalchemy.exc.SQLAlchemyError as err:
            detail = str(getattr(err, "orig", None) or err).splitlines()[0]
            racing = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in detail or "locked" in detail
            if not racing or attempt + 1 == attempts:
                raise ValueError(f"--storage {shown}: cannot open the database ({detail})") from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


#: Milliseconds a SQLite connection waits for another's write lock before failing with "database is locked".
SQLITE_BUSY_MS = 60_000


def _lock_before_reading(engine: Any) -> None:
    """Make every transaction of a SQLite ``engine`` take the write lock first (``BEGIN IMMEDIATE``).

    SQLite has no row locks and ignores ``FOR UPDATE``, so a read-then-write transaction is atomic only if it
    holds the write lock from its start. This is SQLAlchemy's documented recipe for pysqlite: the driver's own
    transaction handling is switched off and the engine issues the ``BEGIN``. Pooled connections made before the
    listeners are closed, so that every connection from now on has them.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class TrialQueue:
    """The queued trials of one study and the storage that holds them.

    Attributes:
        study (optuna.Study): the study, for its trials and best trial.
        storage (optuna.storages.BaseStorage): where the study lives.
        study_id (int): the study's id in ``storage``.
        extended_from (int or None): the budget the study had before this worker extended it; ``None`` if it
            did not.
    """

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    study_id: int
    extended_from: int | None = None

    def claim(self) -> optuna.Trial | None:
        """The next queued trial, now RUNNING and this worker's; ``None`` when the queue is empty.

        ``Study.ask`` pops the queue the same way, but creates a new trial when it is empty. The first heartbeat
        is recorded before the claim, so a worker killed right after it still leaves a trial that goes stale.
        """
        for waiting in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, waiting.number)
            self._beat(trial_id)
            try:
                if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    # The study reads and writes through Optuna's cache of the storage, which must learn of the
                    # trial before the objective's suggestions write to it (a TPE sampler reads the trials
                    # anyway, a random one does not).
                    self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                    return optuna.Trial(self.study, trial_id)  # what Study.ask returns for a popped trial
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker claimed and finished it
                continue
        return None

    def run(self, objective: Callable[[optuna.Trial], float], *, catch: tuple[type[Exception], ...] = (),
            timeout: float | None = None) -> None:
        """Claim and run trials until the queue is empty or ``timeout`` seconds have passed.

        A trial whose objective raises one of ``catch``, or returns a value that is not finite, is marked FAIL
        and the next one runs; any other exception (``KeyboardInterrupt`` included) marks it FAIL and propagates,
        and ``KeyboardInterrupt`` first queues the trial again. Stale trials of killed workers are failed and
        queued again before every claim; when the queue is empty but trials are RUNNING, the worker waits up to
        one grace period and a heartbeat for them to go stale before it returns.
        """
        started = time.monotonic()
        idle_since = None
        while timeout is None or time.monotonic() - started < timeout:
            self._retry_stale()
            trial = self.claim()
            if trial is None:
                now = time.monotonic()
                idle_since = now if idle_since is None else idle_since
                if not self._others_running() or now - idle_since > self._stale_after():
                    return
                time.sleep(1.0)
                continue
            idle_since = None
            with self._heartbeats(trial._trial_id):
                try:
                    value = objective(trial)
                except catch:
                    self.study.tell(trial, state=TrialState.FAIL)
                    continue
                except KeyboardInterrupt:
                    self.study.tell(trial, state=TrialState.FAIL)
                    self._requeue(trial._trial_id)
                    raise
                except BaseException:
                    self.study.tell(trial, state=TrialState.FAIL)
                    raise
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.study.tell(trial, value)
            else:
                trial.set_user_attr("failed", f"the objective returned {value!r}")
                self.study.tell(trial, state=TrialState.FAIL)

    def _interval(self) -> int | None:
        return getattr(self.storage, "heartbeat_interval", None)

    def _stale_after(self) -> float:
        interval = self._interval()
        if interval is None:
            return 0.0
        return float(getattr(self.storage, "grace_period", None) or 2 * interval) + interval

    def _beat(self, trial_id: int) -> None:
        if self._interval() is not None:
            self.storage.record_heartbeat(trial_id)

    @contextmanager
    def _heartbeats(self, trial_id: int) -> Iterator[None]:
        """Record a heartbeat every heartbeat interval while the block runs (none without heartbeats)."""
        interval = self._interval()
        if interval is None:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                self._beat(trial_id)

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _others_running(self) -> bool:
        return bool(self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,)))

    def _retry_stale(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def _requeue(self, trial_id: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.RetryHeartbeatStaleTrialCallback()(self.study, self.storage.get_trial(trial_id))


def replaced_trials(trials: Iterable[optuna.trial.FrozenTrial]) -> set[int]:
    """The numbers of the trials that were queued again (stale, or interrupted) and whose repetition has started:
    the later trial takes their place. One whose repetition still waits in the queue is not replaced yet."""
    return {number for trial in trials if trial.state != TrialState.WAITING
            for number in trial.system_attrs.get("retry_history", [])}


def requeued_trials(trials: Iterable[optuna.trial.FrozenTrial]) -> set[int]:
    """The numbers of the trials that were queued again, whether or not their repetition has started: a trial here
    ended without its result and is still to run, so it is not one of the search's finished trials."""
    return {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}


def open_queue(*, storage: optuna.storages.BaseStorage | None, study_name: str | None,
               sampler: optuna.samplers.BaseSampler, settings: Mapping[str, Any], first: Mapping[str, Any],
               trials: int, wait_s: float = 120.0, extend: bool = False, on_wait: Callable[[float], None] | None = None,
               restart: str = "start the search in a study of another name") -> TrialQueue:
    """The queue of a search's study: created with its whole budget queued, or joined when it exists.

    Args:
        storage: from :func:`open_storage`, or ``None`` for an in-memory study of one worker.
        study_name: the name the workers share (required with a storage).
        sampler: this worker's sampler.
        settings: what every worker of the study must agree on (JSON-compatible); a joining worker compares.
        first: the parameters of trial 0.
        trials: the budget: the number of trials of the study.
        wait_s: how long a joining worker waits for the creator to finish queueing (default: 120).
        extend: whether a larger budget than the existing study's queues the difference (for a study with one
            worker: two workers extending at once would both queue it).
        on_wait: called with ``wait_s`` once, when a joining worker starts to wait for the creator (so that the
            caller can say why nothing happens yet).
        restart: how to start afresh when the creator never finished, for the error.

    Raises:
        ValueError: if the existing study was created with other settings, or its creator never finished
            queueing it, or it has another budget than ``trials`` (unless ``extend`` allows a larger one).
    """
    settings = _as_json(settings)
    storage = optuna.storages.InMemoryStorage() if storage is None else storage
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        study, budget = _join(storage, study_name, sampler, settings, wait_s, on_wait, restart)
    else:
        study.enqueue_trial(dict(first))
        for _ in range(trials - 1):
            study.enqueue_trial({})
        study.set_user_attr(BUDGET_KEY, trials)
        study.set_user_attr(SETTINGS_KEY, settings)
        budget = trials
    extended_from = None
    if trials != budget:
        if trials < budget or not extend:
            how = "the same --trials to continue it" + (", or more to extend it" if extend else "")
            raise ValueError(f"study {study_name!r} has a budget of {budget} trials, not {trials}; pass {how}, or "
                             f"start another study")
        for _ in range(trials - budget):
            study.enqueue_trial({})
        study.set_user_attr(BUDGET_KEY, trials)
        extended_from = budget
    return TrialQueue(study, storage, storage.get_study_id_from_name(study.study_name), extended_from)


def _join(storage: optuna.storages.BaseStorage, name: str | None, sampler: optuna.samplers.BaseSampler,
          settings: Any, wait_s: float, on_wait: Callable[[float], None] | None,
          restart: str) -> tuple[optuna.Study, int]:
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    deadline = time.monotonic() + wait_s
    waited = False
    while SETTINGS_KEY not in study.user_attrs:
        if time.monotonic() > deadline:
            raise ValueError(f"study {name!r} exists but its search was never set up (its first worker stopped "
                             f"while creating it?); {restart}")
        if not waited and on_wait is not None:
            on_wait(wait_s)
        waited = True
        time.sleep(0.5)
    theirs = dict(study.user_attrs[SETTINGS_KEY])
    budget = study.user_attrs.get(BUDGET_KEY, theirs.pop("trials", None))
    differ = _differences(theirs, settings)
    if differ:
        raise ValueError(f"study {name!r} was created by a search with other settings ({'; '.join(differ)}); start "
                         f"every worker of a study with the same flags, or use another --study-name")
    return study, budget


def _differences(theirs: dict[str, Any], ours: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: study A, this worker B`` for each setting that differs, nested settings (the run configuration)
    key by key, so that the message names the flag to change."""
    found = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key), ours.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}: study {a!r}, this worker {b!r}")
    return found
