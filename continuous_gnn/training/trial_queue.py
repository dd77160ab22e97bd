"""A search's trials as a queue in one Optuna study, which several workers (processes or machines) can share.

``continuous-gnn tune --storage URL --study-name NAME`` keeps the study in Optuna's RDB storage: SQLite
(``sqlite:///tune.db``) for workers on one machine, PostgreSQL or MySQL for a cluster. The first worker creates
the study, records the search's settings in it (:func:`open_queue`), and enqueues the whole budget: trial 0 with
the configured values, the others empty, so that the sampler chooses their values when they run. Every worker
then claims queued trials one at a time until none is left (:meth:`TrialQueue.run`). A claim is the storage's atomic
change of a trial from WAITING to RUNNING, so no trial runs twice and the study ends with exactly the requested
number of trials, however many workers share it. (``Study.optimize`` would create a fresh trial whenever the
queue is empty, so two workers racing for the last queued trial would run one trial too many.)

Without a storage the queue lives in memory and one worker runs it: the trials, their order and their values
are those of ``Study.optimize`` with the same sampler.

A worker that joins an existing study checks that its settings are the study's, so workers started with
different flags cannot mix their trials. A worker killed during a trial leaves that trial RUNNING; the study then
completes one trial fewer.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

__all__ = ["open_storage", "shown_url", "TrialQueue", "open_queue", "SETTINGS_KEY"]

#: The study attribute that holds the search's settings; the creator writes it after enqueuing the budget.
SETTINGS_KEY = "continuous_gnn_settings"
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


def open_storage(url: str, *, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``, its tables created if needed.

    Workers that start together on a fresh database race to create its tables (with SQLite, one of two often
    fails with "table ... already exists"); such a failure is retried after a short wait.

    Raises:
        ValueError: if the URL cannot be parsed, names an unknown database, needs a driver that is not installed
            (the message names the ``pip install``), or the database cannot be opened.
    """
    import sqlalchemy.exc

    shown = shown_url(url)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
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


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class TrialQueue:
    """The queued trials of one study and the storage that holds them.

    Attributes:
        study (optuna.Study): the study, for its trials and best trial.
        storage (optuna.storages.BaseStorage): where the study lives.
        study_id (int): the study's id in ``storage``.
    """

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    study_id: int

    def claim(self) -> optuna.Trial | None:
        """The next queued trial, now RUNNING and this worker's; ``None`` when the queue is empty.

        ``Study.ask`` pops the queue the same way, but creates a new trial when it is empty.
        """
        for waiting in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, waiting.number)
            try:
                if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return optuna.Trial(self.study, trial_id)  # what Study.ask returns for a popped trial
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker claimed and finished it
                continue
        return None

    def run(self, objective: Callable[[optuna.Trial], float], *, catch: tuple[type[Exception], ...] = (),
            timeout: float | None = None) -> None:
        """Claim and run trials until the queue is empty or ``timeout`` seconds have passed.

        A trial whose objective raises one of ``catch``, or returns a value that is not finite, is marked FAIL
        and the next one runs; any other exception (``KeyboardInterrupt`` included) marks it FAIL and propagates.
        """
        started = time.monotonic()
        while timeout is None or time.monotonic() - started < timeout:
            trial = self.claim()
            if trial is None:
                return
            try:
                value = objective(trial)
            except catch:
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            except BaseException:
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.study.tell(trial, value)
            else:
                trial.set_user_attr("failed", f"the objective returned {value!r}")
                self.study.tell(trial, state=TrialState.FAIL)


def open_queue(*, storage: optuna.storages.BaseStorage | None, study_name: str | None,
               sampler: optuna.samplers.BaseSampler, settings: Mapping[str, Any], first: Mapping[str, Any],
               trials: int, wait_s: float = 120.0) -> TrialQueue:
    """The queue of a search's study: created with its whole budget queued, or joined when it exists.

    Args:
        storage: from :func:`open_storage`, or ``None`` for an in-memory study of one worker.
        study_name: the name the workers share (required with a storage).
        sampler: this worker's sampler.
        settings: what every worker of the study must agree on (JSON-compatible); a joining worker compares.
        first: the parameters of trial 0.
        trials: the budget: the number of trials of the study.
        wait_s: how long a joining worker waits for the creator to finish queueing (default: 120).

    Raises:
        ValueError: if the existing study was created with other settings, or its creator never finished
            queueing it.
    """
    settings = _as_json(settings)
    storage = optuna.storages.InMemoryStorage() if storage is None else storage
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        study = _join(storage, study_name, sampler, settings, wait_s)
    else:
        study.enqueue_trial(dict(first))
        for _ in range(trials - 1):
            study.enqueue_trial({})
        study.set_user_attr(SETTINGS_KEY, settings)
    return TrialQueue(study, storage, storage.get_study_id_from_name(study.study_name))


def _join(storage: optuna.storages.BaseStorage, name: str | None, sampler: optuna.samplers.BaseSampler,
          settings: Any, wait_s: float) -> optuna.Study:
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    deadline = time.monotonic() + wait_s
    while SETTINGS_KEY not in study.user_attrs:
        if time.monotonic() > deadline:
            raise ValueError(f"study {name!r} exists but its search was never set up (its first worker stopped "
                             f"while creating it?); use another --study-name")
        time.sleep(0.5)
    theirs = study.user_attrs[SETTINGS_KEY]
    differ = sorted(key for key in set(theirs) | set(settings) if theirs.get(key) != settings.get(key))
    if differ:
        raise ValueError(f"study {name!r} was created by a search with other settings (they differ in "
                         f"{', '.join(differ)}); start every worker of a study with the same flags, or use another "
                         f"--study-name")
    return study
