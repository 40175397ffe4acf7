"""Migrations: the packaged scripts build exactly the models' schema, idempotently, in place."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import db
import db.models  # noqa: F401
from db.base import Base
from db.errors import MigrationError
from db.migrate import MIGRATIONS_DIR, current_revision, head_revision, upgrade
from db.session import make_engine, sqlite_url

REPO = Path(__file__).resolve().parents[2]


def _schema_differences(url: str, metadata: sa.MetaData) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_empty_database_upgraded_to_head_matches_the_models(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fresh.db")
    assert current_revision(url) is None
    assert upgrade(url) == head_revision()
    assert _schema_differences(url, Base.metadata) == []


def test_schema_comparison_notices_a_column_the_migrations_lack(tmp_path: Path) -> None:
    """The comparison above can fail: a model column no migration creates is reported."""
    url = sqlite_url(tmp_path / "fresh.db")
    upgrade(url)
    drifted = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["readings"].append_column(sa.Column("second_opinion", sa.Text()))
    differences = _schema_differences(url, drifted)
    assert [(d[0], d[3].name) for d in differences] == [("add_column", "second_opinion")]


def test_upgrade_twice_is_harmless_and_keeps_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO readers (username, display_name, role) VALUES ('alice', 'Alice', 'reader')"
        )
    engine.dispose()
    assert upgrade(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT username FROM readers").all() == [("alice",)]
    engine.dispose()


def test_every_older_revision_upgrades_to_head_in_place(tmp_path: Path) -> None:
    """A database stamped at each known revision keeps its readings when upgraded to head."""
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config

    revisions = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    for revision in reversed(revisions):
        url = sqlite_url(tmp_path / f"at-{revision}.db")
        assert upgrade(url, revision) == revision
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO readers (username, display_name, role) VALUES ('alice', 'Alice', 'reader')"
            )
            connection.exec_driver_sql(
                "INSERT INTO cases (source, content_hash, modality, kind, shape, task, header) "
                "VALUES ('/x', '" + "c" * 64 + "', 'MR', 'volume', '[1, 2, 3, 4]', 'glioma', '{}')"
            )
            connection.exec_driver_sql(
                "INSERT INTO readings (reader_id, case_id, diagnosis, confidence, comment, seconds_on_case) "
                "VALUES (1, 1, 'grade II', 4, 'kept', 12.5)"
            )
        engine.dispose()
        assert upgrade(url) == head_revision()
        engine = make_engine(url)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT diagnosis, confidence, comment, seconds_on_case FROM readings")
            assert rows.all() == [("grade II", 4, "kept", 12.5)]
        engine.dispose()


def test_audit_triggers_exist_after_upgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as connection:
        triggers = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events' ORDER BY name"
        ).scalars().all()
    engine.dispose()
    assert triggers == ["audit_events_no_delete", "audit_events_no_update"]


def test_database_from_a_newer_program_is_refused_with_a_clear_error(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(MigrationError, match="cannot upgrade to head.*9999"):
        upgrade(db_url)
    assert current_revision(db_url) == "9999"


def test_foreign_keys_are_enforced_on_the_app_engine(db_url: str) -> None:
    engine = make_engine(db_url)
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO readings (reader_id, case_id, diagnosis, confidence, comment, seconds_on_case) "
                "VALUES (41, 42, 'x', 3, '', 0)"
            )
    engine.dispose()


def test_migration_scripts_ship_in_the_wheel() -> None:
    """Every file ``upgrade`` needs matches the package-data globs, so non-editable installs work."""
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = package_data["db"]
    package_root = Path(db.__file__).parent
    needed = [p.relative_to(package_root).as_posix() for p in MIGRATIONS_DIR.rglob("*.py")]
    assert "migrations/env.py" in needed and "migrations/versions/0001_initial.py" in needed
    shipped = {p.relative_to(package_root).as_posix() for glob in globs for p in package_root.glob(glob)}
    assert sorted(set(needed) - shipped) == [], f"not shipped by {globs}"
