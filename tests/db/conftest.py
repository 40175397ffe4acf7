"""Fixtures: a fresh SQLite database in tmp_path, upgraded to head, and a few rows in it; a
PostgreSQL server on loopback and fresh databases in it; both backends in turn (``any_factory``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from db.cases import get_or_create_case
from db.migrate import upgrade
from db.readers import get_or_create_reader
from db.session import make_engine, make_session_factory, sqlite_url
from tests.db.pg_server import PostgresServer, Unavailable, running_server

CASE_HASH = "a" * 64
OTHER_CASE_HASH = "b" * 64
CASE_SHAPE = (4, 20, 64, 48)  # (C, N, H, W)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "salience.db"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database upgraded to head, copied for each test (upgrading costs ~0.3 s)."""
    path = tmp_path_factory.mktemp("template") / "head.db"
    upgrade(sqlite_url(path))
    assert not path.with_name("head.db-wal").exists()  # everything checkpointed into the file
    return path


@pytest.fixture
def db_url(db_path: Path, migrated_template: Path) -> str:
    shutil.copyfile(migrated_template, db_path)
    return sqlite_url(db_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@dataclass(frozen=True)
class Seeded:
    reader_a: int
    reader_b: int
    coordinator: int
    admin: int
    case: int
    other_case: int


@pytest.fixture
def seeded(factory: sessionmaker[Session]) -> Seeded:
    """Two readers, a coordinator, an admin and two glioma cases."""
    with factory.begin() as session:
        ids = {
            name: get_or_create_reader(session, username=name, role=role).id
            for name, role in (("alice", "reader"), ("bob", "reader"), ("carol", "coordinator"), ("dan", "admin"))
        }
        case = get_or_create_case(
            session,
            content_hash=CASE_HASH,
            source="/data/glioma/case1",
            modality="MR",
            kind="volume",
            shape=CASE_SHAPE,
            task="glioma",
            header={"Manufacturer": "ACME", "SliceThickness": 1.0},
        )
        other = get_or_create_case(
            session,
            content_hash=OTHER_CASE_HASH,
            source="/data/glioma/case2",
            modality="MR",
            kind="volume",
            shape=CASE_SHAPE,
            task="glioma",
        )
        session.flush()
        return Seeded(ids["alice"], ids["bob"], ids["carol"], ids["dan"], case.id, other.id)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server on loopback for the whole run (skips, with the reason, where it
    cannot run)."""
    try:
        with running_server() as server:
            yield server
    except Unavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database."""
    return postgres_server.create()


@pytest.fixture(scope="session")
def postgres_head(postgres_server: PostgresServer) -> str:
    """The name of a PostgreSQL database upgraded to head, to copy for each test."""
    url = postgres_server.create()
    upgrade(url)
    return make_url(url).database


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, db_path: Path, migrated_template: Path) -> str:
    """A database upgraded to head, on SQLite and on PostgreSQL in turn."""
    if request.param == "sqlite":
        shutil.copyfile(migrated_template, db_path)
        return sqlite_url(db_path)
    server = request.getfixturevalue("postgres_server")
    return server.create(template=request.getfixturevalue("postgres_head"))


@pytest.fixture
def any_factory(any_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on SQLite and on PostgreSQL in turn."""
    engine = make_engine(any_url)
    yield make_session_factory(engine)
    engine.dispose()
