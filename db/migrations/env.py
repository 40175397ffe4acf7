"""Alembic environment of Salience's schema.

``db.migrate.upgrade`` hands a connection in ``config.attributes["connection"]``; the alembic
command line (``alembic -c db/alembic.ini ...``, for writing new revisions) builds one from
``sqlalchemy.url`` instead. Batch mode is on so ALTER TABLE works on SQLite.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.pool import NullPool

import db.models  # noqa: F401  (fills Base.metadata)
from db.base import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), sqlite_foreign_keys=False, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Salience migrations run online only: use db.migrate.upgrade(url)")
run_migrations_online()
