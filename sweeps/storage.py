"""Optuna storage for sweeps: open it safely, and serialise trial creation across workers.

One storage URL serves a laptop (SQLite, the default) and a cluster (PostgreSQL): every
worker on every machine runs the same command against it. Two things make that safe:

- Opening retries the schema race: workers started together on an EMPTY PostgreSQL database
  all try to create Optuna's tables, and all but one fail (e.g. a duplicate
  ``CREATE TYPE studydirection``); a retry then finds the tables made.
- :func:`trial_lock` serialises "count the trials, then create one" across processes (a
  PostgreSQL advisory lock, or a file lock next to a SQLite database), so a study ends with
  exactly the requested number of trials and trial numbers never repeat.
"""

import contextlib
import fcntl
import hashlib
import random
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

DEFAULT_STORAGE = "sqlite:///runs/optuna.db"
OPEN_ATTEMPTS = 8


class StorageError(RuntimeError):
    """The storage URL is malformed or unreachable; the message is one line."""


def open_storage(url, heartbeat_interval=30, max_retry=3):
    """An ``RDBStorage`` with heartbeats and retries of trials whose worker died.

    A trial whose heartbeat is older than ``3 × heartbeat_interval`` seconds is failed and
    re-queued with the same parameters (at most ``max_retry`` times).
    """
    _prepare_sqlite_folder(url)
    last_error = None
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat arguments are "experimental"
                return RDBStorage(
                    url,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=3 * heartbeat_interval,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry
                    ),
                    engine_kwargs=_engine_kwargs(url),
                )
        except Exception as error:  # noqa: BLE001 - SQLAlchemy/driver errors vary by backend
            last_error = error
            if not _is_schema_race(error):
                break
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
    raise StorageError(f"Cannot open storage {_redact(url)}: {_one_line(last_error)}")


def _engine_kwargs(url):
    if url.startswith("sqlite"):
        # Several worker processes share one SQLite file: wait for locks instead of failing.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def _prepare_sqlite_folder(url):
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)


def _is_schema_race(error):
    text = f"{type(error).__name__} {error}".lower()
    return any(
        sign in text
        for sign in ("already exists", "duplicate", "unique", "database is locked", "integrity")
    )


@contextlib.contextmanager
def trial_lock(storage, study_name):
    """Hold a lock, shared by every process on every machine using ``storage``, for a study."""
    url = str(storage.url) if hasattr(storage, "url") else ""
    if url.startswith("postgresql"):
        key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)
        from sqlalchemy import text

        with storage.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
        return
    # SQLite (one machine by nature) and anything else: a lock file per study.
    folder = (
        Path(url[len("sqlite:///") :]).resolve().parent
        if url.startswith("sqlite:///")
        else Path(tempfile.gettempdir())
    )
    digest = hashlib.sha1(f"{url}|{study_name}".encode()).hexdigest()[:16]
    with open(folder / f".optuna-{digest}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def create_or_load_study(storage, name, direction, sampler, pruner):
    """``optuna.create_study(load_if_exists=True)``, retried while workers race to create it."""
    last_error = None
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.create_study(
                storage=storage,
                study_name=name,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        except Exception as error:  # noqa: BLE001
            last_error = error
            if not _is_schema_race(error):
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
    raise StorageError(f"Cannot create study {name}: {_one_line(last_error)}")


def _redact(url):
    """Hide a password in ``scheme://user:password@host``."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _one_line(error):
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return f"{type(error).__name__}: {first}"[:300]
