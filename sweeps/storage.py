"""Optuna storage for sweeps: open it safely, and serialise trial creation across workers.

One storage URL serves a laptop (SQLite, the default) and a cluster (PostgreSQL): every
worker on every machine runs the same command against it. Two things make that safe:

- Opening retries the schema race: workers started together on an EMPTY PostgreSQL database
  all try to create Optuna's tables, and all but one fail (e.g. a duplicate
  ``CREATE TYPE studydirection``); a retry then finds the tables made.
- :func:`trial_lock` serialises "count the trials, then create one" across processes (a
  PostgreSQL advisory lock, or a file lock next to a SQLite database), so a study ends with
  exactly the requested number of trials (a failed attempt re-queued as a retry is kept but
  not counted: :func:`~dgl_ssm_sweeps.runner.counted`) and trial numbers never repeat.
"""

import contextlib
import hashlib
import random
import re
import sqlite3
import tempfile
import time
import urllib.parse
import warnings
from pathlib import Path

import optuna
import sqlalchemy.engine
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from dgl_ssm_bench.locks import exclusive_lock

DEFAULT_STORAGE = "sqlite:///runs/optuna.db"
OPEN_ATTEMPTS = 8


class StorageError(RuntimeError):
    """The storage URL is malformed or unreachable; the message is one line."""


def open_storage(url, heartbeat_interval=30, max_retry=3, *, read_only=False):
    """An ``RDBStorage`` with heartbeats and retries of trials whose worker died.

    A trial whose heartbeat is older than ``3 × heartbeat_interval`` seconds is failed and
    re-queued with the same parameters (at most ``max_retry`` times).

    With ``read_only`` (the leaderboard), an existing storage is opened to be read: a missing
    or non-Optuna SQLite file is an error, never created, no table is created in any database,
    and there are no heartbeats.
    """
    if not str(url).strip():
        raise StorageError(f"The storage URL is empty. {URL_FORMS}, e.g. {DEFAULT_STORAGE}")
    if read_only:
        shown = _check_readable(url)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # keep bad input to one stderr line
                return RDBStorage(url, skip_table_creation=True, engine_kwargs=_engine_kwargs(url))
        except Exception as error:  # noqa: BLE001 - unknown dialect, no driver, refused, old schema
            message = f"cannot open storage {shown}: {one_line(error)}{_driver_hint(error, url)}"
            raise StorageError(redact(message, url)) from None

    def connect():
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

    if _in_memory(url):
        raise StorageError(
            f"{redact(url, url)} is an in-memory SQLite database: the study would be lost when "
            "the sweep ends, and workers could not share it. Give a file, e.g. "
            f"{DEFAULT_STORAGE}"
        )
    _refuse_other_databases(url)
    try:
        _prepare_sqlite_folder(url)
        return _retrying_schema_races(connect)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy/driver errors vary by backend
        hint = _driver_hint(error, url)
        if not hint and "://" not in url:
            hint = f". For a SQLite file at that path: sqlite:///{url}"
        elif not hint and _not_a_url(error):
            hint = f". {URL_FORMS}"
        message = f"Cannot open storage {url}: {one_line(error)}{hint}"
        raise StorageError(redact(message, url)) from None


def _driver_hint(error, url):
    """What to install or write when ``error`` says a database driver is missing (its name is
    in the cause's message), or the scheme is misspelt as PostgreSQL's own; else ""."""
    text = one_line(error)
    if isinstance(error, ImportError) and "psycopg2" in text:
        return (  # SQLAlchemy < 2.1 reads postgresql:// with psycopg2
            " (that URL asks for psycopg2; write postgresql+psycopg://… for psycopg 3, "
            'which pip install "dgl-ssm[postgres]" installs)'
        )
    if isinstance(error, ImportError) and "psycopg" in text:
        return ' (PostgreSQL storage needs its driver: pip install "dgl-ssm[postgres]")'
    if isinstance(error, ImportError) and url.startswith("mysql"):
        return (
            " (MySQL storage needs a driver the project does not install: pip install "
            "mysqlclient for mysql://, or pip install PyMySQL and write mysql+pymysql://)"
        )
    if url.startswith("postgres://"):
        return " (SQLAlchemy spells the scheme postgresql://)"
    return ""


#: What a storage URL looks like, for messages about one that is not.
URL_FORMS = (
    "A storage URL is sqlite:///relative/path.db, sqlite:////absolute/path.db or "
    "postgresql+psycopg://user@host/database"
)


def _not_a_url(error):
    """Whether SQLAlchemy refused the URL itself (no scheme, unknown dialect, bad SQLite form)."""
    name = type(error).__name__
    return name in ("ArgumentError", "NoSuchModuleError") or "Invalid SQLite URL" in str(error)


def _in_memory(url):
    """Whether ``url`` names an in-memory SQLite database (nothing outlives the process)."""
    return _sqlite_target(url) == MEMORY


def new_sqlite_file(url):
    """The file a SQLite ``url`` names when it does not exist yet (opening will create it),
    else None."""
    path = _sqlite_target(url)
    return path if isinstance(path, Path) and not path.exists() else None


MEMORY = ":memory:"


def _sqlite_target(url):
    """What a SQLite ``url`` opens: the absolute path of its file, or :data:`MEMORY`; None
    when it is no SQLite URL SQLAlchemy accepts (opening it says why). Read from the
    arguments SQLAlchemy itself gives the driver."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. query arguments the driver ignores
            args, options = parsed.get_dialect()().create_connect_args(parsed)
    except Exception:  # noqa: BLE001 - not a URL, or not a valid SQLite one
        return None
    name = args[0] if args else ""
    if options.get("uri") and name.startswith("file:"):  # SQLite's own URI form
        parts = urllib.parse.urlsplit(name)
        if dict(urllib.parse.parse_qsl(parts.query)).get("mode") == "memory":
            return MEMORY
        name = urllib.parse.unquote(parts.path)
    return MEMORY if name in ("", MEMORY) else Path(name).resolve()


def _check_readable(url):
    """The URL as shown in messages, once a SQLite URL is known to name an Optuna file (checked
    read-only, before SQLAlchemy would create an empty one); else :class:`StorageError`."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception as error:  # noqa: BLE001 - ArgumentError, ValueError: not a URL at all
        message = f"invalid storage URL {url!r}: {one_line(error)}. {URL_FORMS}"
        raise StorageError(redact(message, url)) from None
    shown = redact(url if parsed.password is None else parsed.render_as_string(True))
    if parsed.get_backend_name() != "sqlite":
        return shown
    path = _sqlite_target(url)
    if path is None:
        raise StorageError(f"invalid storage URL {shown!r}. {URL_FORMS}")
    if path == MEMORY:
        raise StorageError(
            f"{shown} is an in-memory SQLite database, which holds no studies; "
            "pass the URL of the file the sweep wrote"
        )
    if path.is_dir():
        raise StorageError(f"{path} (from {shown}) is a folder; name the SQLite file in it, "
                           f"e.g. sqlite:///{path / 'optuna.db'}")  # fmt: skip
    if not path.is_file():
        raise StorageError(f"no SQLite file at {path} (from {shown}); not creating one")
    if "studies" not in _sqlite_tables(path):
        raise StorageError(f"{path} is not an Optuna storage (it has no 'studies' table)")
    return shown


def _retrying_schema_races(action):
    """Call ``action``; while it fails because another worker is creating the same schema or
    study, wait a little and try again (the last error is raised)."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return action()
        except Exception as error:  # noqa: BLE001
            if not _is_schema_race(error) or attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)


def _engine_kwargs(url):
    if url.startswith("sqlite"):
        # Several worker processes share one SQLite file: wait for locks instead of failing.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        # A server that accepts the connection and never answers would hang every worker.
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    return {"pool_pre_ping": True}


#: Seconds to wait for a database server to answer a connection.
CONNECT_TIMEOUT = 20


def _sqlite_tables(path):
    """The names of the tables in the SQLite file ``path``, read without writing to it."""
    try:
        # Read-only URI: looking must not write (no journal, no tables).
        with sqlite3.connect(path.as_uri() + "?mode=ro", uri=True) as con:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        con.close()
    except sqlite3.Error as error:
        raise StorageError(f"{path} is not a readable SQLite database: {error}") from None
    return {name for (name,) in rows}


def _refuse_other_databases(url):
    """A sweep adds Optuna's tables to an existing SQLite file only if it is empty or already
    an Optuna storage: a typo'd path must not fill another program's database."""
    path = _sqlite_target(url)
    if isinstance(path, Path) and path.is_file() and path.stat().st_size > 0:
        try:
            tables = _sqlite_tables(path)
        except StorageError:  # e.g. a hot journal a killed worker left: the open repairs it
            return
        if tables and "studies" not in tables:
            shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
            raise StorageError(
                f"{path} is another program's SQLite database (tables: {shown}), not an "
                "Optuna storage; not adding Optuna's tables to it. Give a new file or an "
                f"Optuna storage, e.g. {DEFAULT_STORAGE}"
            )


def _prepare_sqlite_folder(url):
    path = _sqlite_target(url)
    if isinstance(path, Path):
        for folder in (path.parent, *path.parent.parents):
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(f"{folder} is a file, not a folder")
        if path.is_dir():
            raise IsADirectoryError(
                f"{path} is a folder; name the SQLite file in it, e.g. "
                f"sqlite:///{path / 'optuna.db'}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)


def _is_schema_race(error):
    text = f"{type(error).__name__} {error}".lower()
    return any(
        sign in text
        for sign in ("already exists", "duplicate", "unique", "database is locked", "integrity")
    )


@contextlib.contextmanager
def trial_lock(storage, study_name):
    """Hold a lock on a study, shared by every process using ``storage``: on every machine
    for PostgreSQL (an advisory lock), on this machine only for other databases (a file)."""
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
    target = _sqlite_target(url)  # (the file a SQLite URI-form URL names, too)
    folder = target.parent if isinstance(target, Path) else Path(tempfile.gettempdir())
    digest = hashlib.sha1(f"{url}|{study_name}".encode()).hexdigest()[:16]
    with exclusive_lock(folder / f".optuna-{digest}.lock"):
        yield


def create_or_load_study(storage, name, direction, sampler, pruner):
    """``optuna.create_study(load_if_exists=True)``, retried while workers race to create it."""
    try:
        return _retrying_schema_races(
            lambda: optuna.create_study(
                storage=storage,
                study_name=name,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        )
    except ValueError:
        raise  # Optuna's own message is clear (another direction: runner._check_direction)
    except Exception as error:  # noqa: BLE001
        url = str(getattr(storage, "url", ""))
        raise StorageError(
            redact(f"Cannot create or load study {name}: {one_line(error)}", url)
        ) from None


_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)([^\s@]+)@")
_QUERY_PASSWORD = re.compile(r"([?&;]password=)([^&\s'\"]+)", re.IGNORECASE)


def redact(text, *urls):
    """``text`` with every password hidden: those of ``urls`` wherever they appear (also
    percent-decoded), and any ``scheme://user:password@`` or ``password=`` it contains.

    >>> redact("Cannot open postgresql://me:s3cret@db/x", "postgresql://me:s3cret@db/x")
    'Cannot open postgresql://me:***@db/x'
    """
    text = str(text)
    for url in urls:
        for password in _passwords(str(url)):
            text = text.replace(password, "***")
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + "***@", text)
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + "***", text)


def _passwords(url):
    import urllib.parse

    found = [m.group(2) for m in _URL_PASSWORD.finditer(url)]
    found += [m.group(2) for m in _QUERY_PASSWORD.finditer(url)]
    found += [urllib.parse.unquote(p) for p in found]
    return sorted({p for p in found if len(p) >= 3}, key=len, reverse=True)


def one_line(error):
    """The first line of an exception's message, plus its cause's (driver errors live there).

    Optuna's generic "exception raised during the commit" wrapper is dropped: its cause (e.g.
    the driver's "Connection refused") is the message that helps.
    """

    def first(e):
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        return lines[0] if lines else type(e).__name__

    while isinstance(error, optuna.exceptions.StorageInternalError) and error.__cause__:
        error = error.__cause__
    text = first(error)
    if error.__cause__ is not None and first(error.__cause__) not in text:
        text += f" ({first(error.__cause__)})"
    return f"{type(error).__name__}: {text}"[:300]
