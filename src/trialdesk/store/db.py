"""Engines and migrations: SQLite under a data directory by default, PostgreSQL by URL.

* ``sqlite:///path/trialdesk.db`` — WAL journal, foreign keys on, a 30 s busy timeout, the
  file (and its WAL) readable by its owner only, ``synchronous`` FULL or NORMAL, a page cache
  of up to :data:`CACHE_KIB` KiB per connection (SQLite's default is 2 MiB), the math
  functions the registry measures distances with (Python's, where SQLite was built without
  its own);
* ``postgresql://user@host:port/db`` — through psycopg 3 (``postgresql+psycopg``).

The schema is created and upgraded only by Alembic (``store/migrations``); the ORM models
are checked against the migrations by a test.
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from trialdesk.errors import DatabaseError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"




def sqlite_url(data_dir: str | os.PathLike[str]) -> str:
    """The default database: ``trialdesk.db`` inside ``data_dir`` (created if needed)."""
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(directory / 'trialdesk.db').resolve()}"


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for a plain ``postgresql://`` URL.

    >>> normalise_url("postgresql://td@127.0.0.1:5432/td")
    'postgresql+psycopg://td@127.0.0.1:5432/td'
    >>> normalise_url("sqlite:///x.db")
    'sqlite:///x.db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


SYNCHRONOUS = ("FULL", "NORMAL")
# Pages a SQLite connection keeps between its queries, filled only as they are read. A
# registry search by place at 300,000 studies reads about 2,000 pages of the full-text and
# site indexes; with the default 2 MiB each was read again from the file on every search
# (measured: 17% of the search's CPU time).
CACHE_KIB = 64 * 1024


def _sqlite_pragmas(synchronous: str) -> Any:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.close()
        math_functions(dbapi_connection)
    return pragmas


MATH_FUNCTIONS = {"sin": math.sin, "cos": math.cos, "asin": math.asin, "sqrt": math.sqrt}


def math_functions(dbapi_connection: Any, *, replace: bool = False) -> None:
    """Give a SQLite connection the math functions of :data:`MATH_FUNCTIONS` from Python
    when its SQLite was built without them (``SQLITE_ENABLE_MATH_FUNCTIONS``), or always
    with ``replace``: both call the C library, so the numbers are the same."""
    if not replace:
        try:
            dbapi_connection.execute("SELECT sin(0.5), cos(0.5), asin(0.5), sqrt(0.5)").fetchall()
            return
        except sqlite3.OperationalError:
            pass
    for name, function in MATH_FUNCTIONS.items():
        def call(x: float | None, function: Any = function) -> float | None:
            return None if x is None else float(function(x))
        dbapi_connection.create_function(name, 1, call, deterministic=True)


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only (0600), or tighten an existing
    one; SQLite gives its -wal and -shm files the database file's permissions."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def make_engine(url: str, *, synchronous: str = "NORMAL") -> Engine:
    """An engine for ``url`` with the settings above.

    ``synchronous`` (SQLite only): ``FULL`` syncs the write-ahead log at every commit, so a
    committed change survives a power failure; ``NORMAL`` syncs only at checkpoints, so the
    last commits can be lost on power failure (never on a crash of the program alone), and
    is faster.
    """
    if synchronous not in SYNCHRONOUS:
        raise DatabaseError(f"must be one of {', '.join(SYNCHRONOUS)}", where="synchronous")
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL in it
        raise DatabaseError(f"not a database URL: {exc}", where="database URL") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # One shared connection, or every checkout would see a new empty database.
            from sqlalchemy.pool import StaticPool

            engine = create_engine(url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas(synchronous))
            return engine
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        _private_file(Path(database))
        # As many pooled connections as the web server runs request threads (anyio's 40),
        # so that a busy moment does not open (and set up) a connection per request only
        # to close it after; the most recently used first (LIFO), so that a quiet server
        # works on a few connections whose page caches are warm, and the others stay small.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=40, max_overflow=20, pool_use_lifo=True)
        event.listen(engine, "connect", _sqlite_pragmas(synchronous))
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise DatabaseError(f"unsupported database '{parsed.get_backend_name()}'; use sqlite or "
                        "postgresql", where="database URL")


def alembic_config(engine: Engine | None = None) -> Any:
    """The Alembic configuration for the bundled migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url",
                               engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships its migrations
    return head
