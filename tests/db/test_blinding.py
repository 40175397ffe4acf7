"""Blinding is a rule of the data layer: readers see only their own readings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa

import db
from db.audit import audit_trail
from db.export import export_readings
from db.models import AuditEvent
from db.readings import read_case_ids, readings_for_reader, save_reading, sources_read_by


def _read_both(factory, seeded) -> tuple[list[int], list[int]]:
    with factory.begin() as session:
        a = [save_reading(session, seeded.reader_a, case, "grade II", 3).id for case in (seeded.case, seeded.other_case)]
        b = [save_reading(session, seeded.reader_b, case, "grade IV", 5).id for case in (seeded.case, seeded.other_case)]
    return a, b


def test_a_readers_query_never_returns_another_readers_readings(factory, seeded) -> None:
    a, b = _read_both(factory, seeded)
    with factory() as session:
        assert sorted(r.id for r in readings_for_reader(session, seeded.reader_a)) == sorted(a)
        assert sorted(r.id for r in readings_for_reader(session, seeded.reader_b)) == sorted(b)
        for case in (seeded.case, seeded.other_case):
            assert {r.reader_id for r in readings_for_reader(session, seeded.reader_a, case)} == {seeded.reader_a}
        assert readings_for_reader(session, seeded.coordinator) == []


def test_worklist_marks_come_only_from_the_readers_own_readings(factory, seeded) -> None:
    with factory.begin() as session:
        save_reading(session, seeded.reader_b, seeded.other_case, "grade IV", 5)
        save_reading(session, seeded.reader_a, seeded.case, "grade II", 3)
        save_reading(session, seeded.reader_a, seeded.case, "grade III", 4)
    with factory() as session:
        assert sources_read_by(session, seeded.reader_a) == {"/data/glioma/case1"}
        assert sources_read_by(session, seeded.reader_b) == {"/data/glioma/case2"}
        assert read_case_ids(session, seeded.reader_a) == {seeded.case}
        assert sources_read_by(session, seeded.coordinator) == set()


@pytest.mark.parametrize("role_of", ["reader_a", "admin"])
def test_export_refuses_anyone_but_a_coordinator(factory, seeded, role_of) -> None:
    _read_both(factory, seeded)
    with factory.begin() as session:
        with pytest.raises(PermissionError, match="needs one of \\['coordinator'\\]"):
            export_readings(session, getattr(seeded, role_of))
    with factory() as session:
        actions = session.scalars(sa.select(AuditEvent.action)).all()
    assert "readings.exported" not in actions


def test_coordinator_export_returns_every_reader_and_is_audited(factory, seeded) -> None:
    a, b = _read_both(factory, seeded)
    with factory.begin() as session:
        exported = export_readings(session, seeded.coordinator, case_ids=[seeded.case])
    assert [(r.case.content_hash[:1], r.reader.username, r.diagnosis) for r in exported] == [
        ("a", "alice", "grade II"),
        ("a", "bob", "grade IV"),
    ]
    with factory() as session:
        event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "readings.exported")).one()
    assert (event.actor, event.detail) == ("carol", {"count": 2, "case_ids": [seeded.case]})


def test_audit_trail_is_not_for_readers(factory, seeded) -> None:
    _read_both(factory, seeded)
    with factory() as session:
        with pytest.raises(PermissionError):
            audit_trail(session, seeded.reader_a)
        trail = audit_trail(session, seeded.admin, entity="readings")
    assert [e.actor for e in trail] == ["alice", "alice", "bob", "bob"]


def test_no_module_but_export_queries_readings_without_a_reader_filter() -> None:
    """Every query over readings in db/ outside export.py is filtered by ``Reading.reader_id``."""
    package = Path(db.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "export.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                source = ast.unparse(node)
                touches_readings = any(f"{verb}(Reading" in source for verb in ("select", "join"))
                if touches_readings and "Reading.reader_id ==" not in source:
                    offenders.append(f"{path.name}:{node.name}")
    assert offenders == []
