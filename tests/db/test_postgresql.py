"""The same migrations and data functions on a real PostgreSQL server, started in a temp folder
(``postgres_url`` in conftest: a fresh database on a server on loopback; skips with the reason
where PostgreSQL cannot run)."""

from __future__ import annotations

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
        mask = NewAnnotation("mask", 7, (), "oedema", mask={"shape": [64, 48], "counts": [100, 5, 64 * 48 - 105]})
        saved = save_reading(session, reader.id, case.id, "grade III", 4, "rim", annotations=[box, mask],
                             seconds_on_case=9.5)
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
            ("box", 7, {"points": [[10.0, 12.5], [30.0, 40.25]]}),
            ("mask", 7, {"encoding": "rle-rows", "shape": [64, 48], "counts": [100, 5, 64 * 48 - 105]}),
        ]
        assert reading.created_at.tzinfo is not None
    engine.dispose()
