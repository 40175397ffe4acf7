"""Revision 0003 replaces the study tables of 0001 only where no rows would be lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.errors import MigrationError
from db.migrate import current_revision, head_revision, upgrade
from db.session import make_engine, sqlite_url


def _at_0002(path: Path, *statements: str) -> str:
    url = sqlite_url(path)
    assert upgrade(url, "0002") == "0002"
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()
    return url


def test_empty_old_study_tables_are_replaced(tmp_path: Path) -> None:
    url = _at_0002(tmp_path / "old.db")
    assert upgrade(url) == head_revision()
    engine = make_engine(url)
    with engine.connect() as connection:
        columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(studies)")]
    engine.dispose()
    assert "design" in columns and "arms" not in columns


def test_old_study_rows_stop_the_upgrade_and_nothing_changes(tmp_path: Path) -> None:
    url = _at_0002(
        tmp_path / "old.db",
        "INSERT INTO studies (name, task, arms, blinding, order_seed, washout_days) "
        "VALUES ('hand-made', 'glioma', '[]', 'readers', 1, 0)",
    )
    with pytest.raises(MigrationError, match="table studies holds 1 rows that no Salience release wrote"):
        upgrade(url)
    assert current_revision(url) == "0002"
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM studies").scalars().all() == ["hand-made"]
    engine.dispose()
