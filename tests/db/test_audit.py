"""The audit log is append-only in the database itself."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from db.audit import record
from db.models import AuditEvent


@pytest.fixture
def event_id(factory) -> int:
    with factory.begin() as session:
        return record(session, actor="carol", action="study.created", entity="studies", entity_id=3, detail={"arms": 2}).id


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"],
)
def test_audit_rows_cannot_be_updated_or_deleted_with_sql(engine, event_id, statement) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="audit_events is append-only"):
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT id, actor, action, entity_id FROM audit_events").all()
    assert rows == [(event_id, "carol", "study.created", 3)]


def test_audit_rows_cannot_be_changed_through_the_orm(factory, event_id) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        with factory.begin() as session:
            session.get(AuditEvent, event_id).detail = {"arms": 3}
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        with factory.begin() as session:
            session.delete(session.get(AuditEvent, event_id))
    with factory() as session:
        event = session.get(AuditEvent, event_id)
        assert (event.actor, event.detail, event.at.tzinfo is not None) == ("carol", {"arms": 2}, True)


def test_audit_rows_are_appended_in_order(factory, event_id) -> None:
    with factory.begin() as session:
        record(session, actor="system", action="db.upgraded", entity="alembic_version")
    with factory() as session:
        assert session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all() == ["study.created", "db.upgraded"]
