"""Engines and session factories, built by functions at start-up and never at import.

SQLite connections get ``PRAGMA foreign_keys=ON`` (SQLite ignores foreign keys otherwise),
the WAL journal (readers do not block the writer) and a busy timeout, all set by a ``connect``
event listener. pysqlite's own transaction handling is switched off and every transaction starts
with ``BEGIN IMMEDIATE`` from a ``begin`` listener, so DDL is transactional (a failed migration
leaves nothing half-done), SAVEPOINTs work, and two writers wait for each other within the busy
timeout instead of failing on a stale read snapshot. PostgreSQL URLs pass through unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 10_000


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file.

    Args:
        path: the database file; relative paths are resolved against the working directory.

    Returns:
        e.g. ``"sqlite+pysqlite:////home/me/.local/share/salience/salience.db"``.
    """
    return URL.create("sqlite+pysqlite", database=str(Path(path).expanduser().resolve())).render_as_string()


def make_engine(url: str, *, sqlite_foreign_keys: bool = True, **engine_kwargs: Any) -> Engine:
    """Build an engine for a SQLite or PostgreSQL URL.

    For a SQLite file, its parent folder is created if missing.

    Args:
        url: a SQLAlchemy URL (``sqlite_url(path)``, ``"postgresql+psycopg://..."``).
        sqlite_foreign_keys: keep True. ``db.migrate`` turns foreign keys off while it rebuilds
            tables, as SQLite's ALTER TABLE procedure requires, and checks them afterwards.
        **engine_kwargs: passed to ``sqlalchemy.create_engine`` (e.g. ``poolclass``).

    Returns:
        The engine. Call ``dispose()`` when done with it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine_kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **engine_kwargs)

    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(engine_kwargs.pop("connect_args", {}))
    # Connections move between the GUI thread and workers through the pool; SQLAlchemy's
    # pool already hands one connection to one thread at a time.
    connect_args.setdefault("check_same_thread", False)
    engine = sa.create_engine(parsed, connect_args=connect_args, **engine_kwargs)
    _install_sqlite_listeners(engine, foreign_keys=sqlite_foreign_keys)
    return engine


def _install_sqlite_listeners(engine: Engine, *, foreign_keys: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" listener starts transactions
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory for ``engine``; the app opens one session per user action.

    Objects stay readable after commit (``expire_on_commit=False``) so a saved row can be handed
    to the interface once its session has closed.

    Args:
        engine: from ``make_engine``.

    Returns:
        Use as ``with factory.begin() as session:`` (commits on success, rolls back on error).
    """
    return sessionmaker(bind=engine, expire_on_commit=False)
