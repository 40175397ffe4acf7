"""The same migrations and data functions on a real PostgreSQL server, started in a temp folder.

Skips with the reason when PostgreSQL's server binaries (``initdb``, ``pg_ctl``) or the psycopg
driver are not installed. Debian: ``apt-get install postgresql`` puts them in
``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root, so under root the
server runs as the ``postgres`` user in a folder it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import db.models  # noqa: F401
from db.annotations import NewAnnotation
from db.base import Base
from db.cases import get_or_create_case
from db.migrate import current_revision, head_revision, upgrade
from db.readers import get_or_create_reader
from db.readings import readings_for_reader, save_reading
from db.session import make_engine, make_session_factory


def _server_binaries() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="salience-pg-"))
    if as_user:
        os.chown(home, account.pw_uid, account.pw_gid)
    data, log, port = home / "data", home / "server.log", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "salience", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield f"postgresql+psycopg://salience@127.0.0.1:{port}/postgres"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    except subprocess.CalledProcessError as error:
        server_log = log.read_text() if log.exists() else ""
        raise RuntimeError(f"{error.cmd[len(as_user)]} failed: {error.stderr.decode()}{server_log}") from error
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_postgresql_upgrades_to_head_matching_the_models_and_round_trips_a_reading(postgres_url) -> None:
    assert current_revision(postgres_url) is None
    assert upgrade(postgres_url) == head_revision()
    assert upgrade(postgres_url) == head_revision()

    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []

    factory = make_session_factory(engine)
    with factory.begin() as session:
        reader = get_or_create_reader(session, username="alice", role="reader")
        case = get_or_create_case(
            session, content_hash="a" * 64, source="/data/case1", modality="MR", kind="volume",
            shape=(4, 20, 64, 48), task="glioma", header={"SliceThickness": 1.0},
        )
        box = NewAnnotation("box", 7, ((10.0, 12.5), (30.0, 40.25)), "enhancing tumour")
        saved = save_reading(session, reader.id, case.id, "grade III", 4, "rim", annotations=[box], seconds_on_case=9.5)
    with pytest.raises(sa.exc.IntegrityError, match="ck_readings_confidence_1_to_5"):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"INSERT INTO readings (reader_id, case_id, diagnosis, confidence, comment, seconds_on_case) "
                f"VALUES ({reader.id}, {case.id}, 'x', 6, '', 0)"
            )
    with pytest.raises(sa.exc.IntegrityError, match="audit_events is append-only"):
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM audit_events")
    engine.dispose()

    engine = make_engine(postgres_url)
    with make_session_factory(engine)() as session:
        (reading,) = readings_for_reader(session, reader.id)
        assert (reading.id, reading.diagnosis, reading.confidence, reading.seconds_on_case) == (saved.id, "grade III", 4, 9.5)
        assert [(a.kind, a.slice_index, a.geometry) for a in reading.annotations] == [
            ("box", 7, {"points": [[10.0, 12.5], [30.0, 40.25]]})
        ]
        assert reading.created_at.tzinfo is not None
    engine.dispose()
