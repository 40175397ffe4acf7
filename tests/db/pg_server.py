"""A throwaway PostgreSQL server on loopback for the db tests, and fresh databases in it.

Skips (through the fixtures in conftest) with the reason when PostgreSQL's server binaries
(``initdb``, ``pg_ctl``) or the psycopg driver are not installed. Debian: ``apt-get install
postgresql`` puts them in ``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as
root, so under root the server runs as the ``postgres`` user in a folder it owns.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

_names = itertools.count()


class Unavailable(Exception):
    """PostgreSQL cannot run here; the message says why."""


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


class PostgresServer:
    """A running server; ``url(name)`` of a database, ``create(template=...)`` a new one."""

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://salience@127.0.0.1:{self.port}/{database}"

    def create(self, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its URL."""
        name = f"t{os.getpid()}_{next(_names)}"
        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                copy = f" TEMPLATE {template}" if template else ""
                connection.exec_driver_sql(f"CREATE DATABASE {name}{copy}")
        finally:
            engine.dispose()
        return self.url(name)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a server in a temp folder (fsync off, loopback only); stop and delete it after.

    Raises:
        Unavailable: no psycopg, no server binaries, or root without a postgres user.
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install 'psycopg[binary]')") from None
    binaries = _server_binaries()
    if binaries is None:
        raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin")
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
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
            yield PostgresServer(port)
        finally:
            # immediate: no shutdown checkpoint of every test database; the folder is deleted next
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as error:
        server_log = log.read_text() if log.exists() else ""
        raise RuntimeError(f"{error.cmd[len(as_user)]} failed: {error.stderr.decode()}{server_log}") from error
    finally:
        shutil.rmtree(home, ignore_errors=True)
