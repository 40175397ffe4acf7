"""Engines: SQLite gets foreign keys, WAL and a busy timeout; transactions and savepoints hold."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db.models import Reader
from db.readers import get_or_create_reader
from db.session import BUSY_TIMEOUT_MS, make_engine, sqlite_url


def test_sqlite_url_is_absolute_and_engine_creates_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = sqlite_url(Path("nested") / "deeper" / "s.db")
    assert url == f"sqlite+pysqlite:///{tmp_path}/nested/deeper/s.db"
    engine = make_engine(url)
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    engine.dispose()
    assert (tmp_path / "nested" / "deeper" / "s.db").is_file()


def test_every_sqlite_connection_has_foreign_keys_wal_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "s.db"))
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert (pragma("foreign_keys"), pragma("journal_mode"), pragma("busy_timeout")) == (1, "wal", BUSY_TIMEOUT_MS)
    engine.dispose()


def test_failed_ddl_rolls_back_with_the_transaction(tmp_path: Path) -> None:
    """DDL is transactional (pysqlite's implicit commits are off), so a failed migration leaves nothing."""
    engine = make_engine(sqlite_url(tmp_path / "s.db"))
    with pytest.raises(sa.exc.OperationalError):
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE half_done (id INTEGER)")
            connection.exec_driver_sql("CREATE TABLE broken (")
    with engine.connect() as connection:
        tables = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
    engine.dispose()
    assert tables == []


def test_savepoint_rollback_keeps_the_outer_transaction(factory) -> None:
    with factory.begin() as session:
        get_or_create_reader(session, username="alice")
        with pytest.raises(IntegrityError):
            with session.begin_nested():
                session.add(Reader(username="alice", display_name="Alice again", role="reader"))
        get_or_create_reader(session, username="bob")
    with factory() as session:
        assert session.scalars(sa.select(Reader.username).order_by(Reader.id)).all() == ["alice", "bob"]


def test_rows_written_in_a_worker_thread_are_read_in_another(factory) -> None:
    """The pool hands connections across threads (a worker stores, the window reads)."""
    with factory() as session:
        session.scalar(sa.select(sa.func.count(Reader.id)))  # a pooled connection made in this thread

    def store() -> None:
        with factory.begin() as session:
            get_or_create_reader(session, username="worker")

    thread = threading.Thread(target=store)
    thread.start()
    thread.join()
    with factory() as session:
        assert session.scalars(sa.select(Reader.username)).all() == ["worker"]


def test_session_factory_keeps_objects_readable_after_commit(factory) -> None:
    with factory.begin() as session:
        reader = get_or_create_reader(session, username="eve", display_name="Eve E.")
    assert (reader.username, reader.display_name, reader.role) == ("eve", "Eve E.", "reader")
    assert reader.created_at.tzinfo is not None


def test_postgresql_url_passes_through_unchanged() -> None:
    url = "postgresql+psycopg://user:secret@127.0.0.1:1/salience"
    engine = make_engine(url)
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.url.render_as_string(hide_password=False) == url
    finally:
        engine.dispose()


def test_insert_or_fetch_returns_the_row_stored_first_and_reraises_other_failures(factory) -> None:
    from db._rows import insert_or_fetch

    with factory.begin() as session:
        # As if another session had committed "alice" between our lookup and our insert.
        session.execute(sa.insert(Reader).values(username="alice", display_name="First", role="reader"))
        by_name = sa.select(Reader).where(Reader.username == "alice")
        holder = insert_or_fetch(session, Reader(username="alice", display_name="Second", role="reader"), by_name)
        assert holder.display_name == "First"
        with pytest.raises(IntegrityError, match="ck_readers_role"):
            insert_or_fetch(
                session,
                Reader(username="zed", display_name="Z", role="superuser"),
                sa.select(Reader).where(Reader.username == "zed"),
            )
    with factory() as session:
        assert session.scalars(sa.select(Reader.display_name)).all() == ["First"]
