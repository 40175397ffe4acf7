"""Revision 0005 lets an annotation be a painted mask: the upgrade widens the CHECK on
``annotations.kind`` (SQLite: table rebuilt in batch mode) keeping every row; the downgrade
narrows it again, and refuses, changing nothing, while a mask is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from db.errors import MigrationError
from db.migrate import alembic_config, current_revision, head_revision, upgrade
from db.session import make_engine, sqlite_url

MASK_GEOMETRY = '{"encoding": "rle-rows", "shape": [3, 4], "counts": [5, 2, 5]}'


def _before_masks() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_revision("0005").down_revision


def _downgrade_one(url: str) -> None:
    engine = make_engine(url, sqlite_foreign_keys=False, poolclass=NullPool)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005-1")
    finally:
        engine.dispose()


def _sql(url: str, *statements: str) -> list:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            return [connection.exec_driver_sql(s).all() if s.startswith("SELECT") else connection.exec_driver_sql(s)
                    for s in statements][-1:]
    finally:
        engine.dispose()


def _annotation(kind: str, geometry: str = '{"points": [[1, 1]]}') -> str:
    return ("INSERT INTO annotations (reading_id, kind, slice_index, geometry, coordinate_space, label) "
            f"VALUES (1, '{kind}', 0, '{geometry}', 'index:slice,row,col', 'lesion')")


def _kind_checks(url: str) -> list[str]:
    (rows,) = _sql(url, "SELECT sql FROM sqlite_master WHERE name = 'annotations'")
    return [line.strip().rstrip(",") for line in rows[0][0].splitlines() if "kind IN" in line]


@pytest.fixture
def before(tmp_path: Path) -> str:
    """A database at the revision before 0005 holding a reading with a point."""
    url = sqlite_url(tmp_path / "before.db")
    upgrade(url, _before_masks())
    _sql(url,
         "INSERT INTO readers (username, display_name, role) VALUES ('alice', 'Alice', 'reader')",
         "INSERT INTO cases (source, content_hash, modality, kind, shape, task, header) "
         "VALUES ('/x', '" + "c" * 64 + "', 'MR', 'volume', '[1, 2, 3, 4]', 'glioma', '{}')",
         "INSERT INTO readings (reader_id, case_id, diagnosis, confidence, comment, seconds_on_case) "
         "VALUES (1, 1, 'grade II', 4, '', 1.0)",
         _annotation("point"))
    return url


def test_the_upgrade_lets_a_mask_in_and_keeps_the_rows(before):
    with pytest.raises(sa.exc.IntegrityError, match="CHECK"):
        _sql(before, _annotation("mask", MASK_GEOMETRY))
    assert upgrade(before) == head_revision()
    assert _kind_checks(before) == [
        "CONSTRAINT ck_annotations_kind CHECK (kind IN ('point', 'box', 'polygon', 'mask'))"]
    _sql(before, _annotation("mask", MASK_GEOMETRY))
    (rows,) = _sql(before, "SELECT kind, geometry FROM annotations ORDER BY id")
    assert rows == [("point", '{"points": [[1, 1]]}'), ("mask", MASK_GEOMETRY)]
    with pytest.raises(sa.exc.IntegrityError, match="CHECK"):
        _sql(before, _annotation("blob"))


def test_the_downgrade_narrows_the_check_again_when_no_mask_is_stored(before):
    upgrade(before)
    _downgrade_one(before)
    assert current_revision(before) == _before_masks()
    assert _kind_checks(before) == ["CONSTRAINT ck_annotations_kind CHECK (kind IN ('point', 'box', 'polygon'))"]
    (rows,) = _sql(before, "SELECT kind FROM annotations")
    assert rows == [("point",)]
    with pytest.raises(sa.exc.IntegrityError, match="CHECK"):
        _sql(before, _annotation("mask", MASK_GEOMETRY))
    assert upgrade(before) == head_revision()  # and up again


def test_the_downgrade_refuses_while_a_mask_is_stored_and_changes_nothing(before):
    upgrade(before)
    _sql(before, _annotation("mask", MASK_GEOMETRY))
    with pytest.raises(MigrationError, match="1 painted mask.*nothing was changed"):
        _downgrade_one(before)
    assert current_revision(before) == head_revision()
    (rows,) = _sql(before, "SELECT kind FROM annotations ORDER BY id")
    assert rows == [("point",), ("mask",)]


# -- what save_reading accepts as a mask (the case of ``seeded`` is 64 x 48 per slice) ---------------

@pytest.mark.parametrize("mask, message", [
    (None, "needs its run-length encoding"),
    ({"shape": [64, 48], "counts": [64 * 48]}, "paints no pixel"),
    ({"shape": [48, 64], "counts": [0, 64 * 48]}, r"not the case's \(64, 48\) slice"),
    ({"shape": [64, 48], "counts": [10, 5]}, "cover 15 pixels, not 3072"),
    ({"shape": [64, 48], "counts": [10, -5, 3067]}, "whole numbers >= 0"),
    ({"encoding": "coco", "shape": [64, 48], "counts": [0, 3072]}, "is not 'rle-rows'"),
])
def test_a_malformed_mask_is_refused_in_one_line(factory, seeded, mask, message):
    from db.annotations import NewAnnotation
    from db.errors import InvalidInput
    from db.readings import save_reading

    with pytest.raises(InvalidInput, match=message), factory.begin() as session:
        save_reading(session, seeded.reader_a, seeded.case, "grade II", 3,
                     annotations=[NewAnnotation("mask", 2, (), "lesion", mask=mask)])


def test_a_mask_is_stored_on_its_slice_in_index_space(factory, seeded):
    from db.annotations import NewAnnotation
    from db.readings import readings_for_reader, save_reading

    with factory.begin() as session:
        save_reading(session, seeded.reader_a, seeded.case, "grade II", 3,
                     annotations=[NewAnnotation("mask", 19, (), "lesion", mask={"shape": [64, 48],
                                                                               "counts": [7, 3, 3062]})])
    with factory() as session:
        (annotation,) = readings_for_reader(session, seeded.reader_a)[0].annotations
    assert (annotation.kind, annotation.slice_index, annotation.coordinate_space) == ("mask", 19, "index:slice,row,col")
    assert annotation.geometry == {"encoding": "rle-rows", "shape": [64, 48], "counts": [7, 3, 3062]}
