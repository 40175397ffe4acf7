"""Bring a database's schema to the revision this program needs, with no alembic.ini on disk.

Alembic is configured in code from the package's own ``migrations`` folder, so this works from
a source checkout, an installed wheel and a frozen program alike (as long as ``db/migrations``
ships with it: see ``[tool.setuptools.package-data]``).

On SQLite the migration runs as SQLite's ALTER TABLE procedure asks: foreign keys off (so a
batch-mode table rebuild cannot cascade deletes into other tables), everything in one
transaction, ``PRAGMA foreign_key_check`` before commit; any violation rolls the whole upgrade
back. So a database made by an older revision upgrades in place, or not at all.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from db.errors import MigrationError
from db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic ``Config`` that points at the packaged migrations; nothing read from disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision this program knows (what ``upgrade`` brings a database to)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"{MIGRATIONS_DIR}: no migration scripts found")
    return head


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def upgrade(url: str, revision: str = "head") -> str:
    """Upgrade the database at ``url`` to ``revision``; running it again does nothing.

    An empty or missing SQLite file is created and brought to ``revision``.

    Args:
        url: a SQLAlchemy URL (``db.session.sqlite_url(path)`` or PostgreSQL).
        revision: the target; the program always uses "head".

    Returns:
        The database's revision afterwards.

    Raises:
        MigrationError: the database is at a revision this program does not know (written by a
            newer Salience), a migration failed, or it left foreign keys broken. The database is
            then left as it was.
    """
    engine = make_engine(url, sqlite_foreign_keys=False, poolclass=NullPool)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if connection.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise MigrationError(
                        f"{_shown(url)}: upgrade to {revision} would break foreign keys "
                        f"(table, rowid, parent): {broken[:5]}; nothing was changed"
                    )
            current = MigrationContext.configure(connection).get_current_revision()
    except CommandError as error:
        raise MigrationError(f"{_shown(url)}: cannot upgrade to {revision}: {error}") from error
    finally:
        engine.dispose()
    if current is None:
        raise MigrationError(f"{_shown(url)}: upgrade to {revision} left no revision stamped")
    return current


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is stamped with, or None for an empty database."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
