"""Blinding in studies is a rule of the data layer: each rule is tested through the functions the
reader's window uses, including attempts to cheat."""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

import db
from db.audit import audit_trail
from db.base import Base
from db.errors import NotAllowed, StudyStateError
from db.models import AuditEvent
from db.studies import close_study, get_study
from db.study_export import export_study_records
from db.study_pixels import pixels_for_token
from db.study_progress import study_key, study_status
from db.study_reader import ai_output_for_reader, case_for_reader, reader_studies, reader_worklist
from db.study_reading import close_case, revise_case, save_answer, submit_case
from tests.db.study_world import NOON, SECRET_SOURCE, build_world, open_new_study, pocovid_design, sequential_design

REPO = Path(__file__).resolve().parents[2]
HIDDEN_TRUTH = "HIDDEN-TRUTH-{}"
FREE_TEXT = "ZEBRA-7781 looks like consolidation"


@pytest.fixture
def world(any_factory):
    built = build_world(any_factory, readers=2, cases=6)
    cases = tuple(replace(c, ground_truth=HIDDEN_TRUTH.format(i)) for i, c in enumerate(built.cases))
    return replace(built, cases=cases)


@pytest.fixture
def study_id(any_factory, world):
    return open_new_study(any_factory, world, pocovid_design(allow_revisions=True))


def _values(item):
    """Every value inside a returned DTO, refusing any ORM row (whose relationships would leak)."""
    assert not isinstance(item, Base), f"an ORM row {item!r} was handed out"
    if dataclasses.is_dataclass(item):
        return [v for f in dataclasses.fields(item) for v in _values(getattr(item, f.name))]
    if isinstance(item, dict):
        return [v for pair in item.items() for part in pair for v in _values(part)]
    if isinstance(item, (list, tuple, set)):
        return [v for part in item for v in _values(part)]
    return [item]


def _assert_nothing_identifying(dto, factory) -> None:
    text = " ".join(map(str, _values(dto)))
    hashes = [f"{i:064x}" for i in range(6)]  # the world's content hashes
    for secret in ("DOE_JANE", "/data/", ".avi", "HIDDEN-TRUTH", *hashes):
        assert secret not in text


def test_worklist_shows_only_the_readers_own_cases_under_pseudonyms(any_factory, world, study_id) -> None:
    with any_factory() as session:
        a = reader_worklist(session, world.readers[0], study_id, now=NOON)
        b = reader_worklist(session, world.readers[1], study_id, now=NOON)
        key = {row["pseudonym"] for row in study_key(session, world.coordinator, study_id)}
    assert [f.name for f in dataclasses.fields(a.entries[0])] == [
        "assignment_id", "token", "pseudonym", "arm", "session", "place", "state", "available", "why_not", "repeat",
    ]
    assert not {e.assignment_id for e in a.entries} & {e.assignment_id for e in b.entries}
    assert {e.pseudonym for e in a.entries} == {e.pseudonym for e in b.entries} == key
    assert [e.pseudonym for e in a.entries] != [e.pseudonym for e in b.entries]  # orders differ
    for worklist in (a, b):
        _assert_nothing_identifying(worklist, any_factory)
    with any_factory() as session:
        assert [(s.name, s.done, s.total) for s in reader_studies(session, world.readers[0])] == [("pocovid", 0, 6)]
        assert reader_studies(session, world.coordinator) == []
        with pytest.raises(NotAllowed, match=f"study {study_id} is not on your list"):
            reader_worklist(session, world.coordinator, study_id)


def test_the_form_and_the_ai_output_hold_nothing_identifying_and_no_orm_rows(any_factory, world, study_id) -> None:
    reader = world.readers[0]
    with any_factory.begin() as session:
        for entry in reader_worklist(session, reader, study_id, now=NOON).entries:
            case = case_for_reader(session, reader, entry.assignment_id, now=NOON)
            _assert_nothing_identifying(case, any_factory)
            if case.shows_ai:
                _assert_nothing_identifying(ai_output_for_reader(session, reader, entry.assignment_id), any_factory)


def test_another_readers_assignment_or_token_is_refused_like_a_missing_one(any_factory, world, study_id) -> None:
    mine, theirs = world.readers
    with any_factory() as session:
        their_entry = reader_worklist(session, theirs, study_id, now=NOON).entries[0]
        question = get_study(session, study_id).questions[0].id
    attempts = [
        lambda s, a: case_for_reader(s, mine, a, now=NOON),
        lambda s, a: save_answer(s, mine, a, question, "healthy", now=NOON),
        lambda s, a: submit_case(s, mine, a, now=NOON),
        lambda s, a: revise_case(s, mine, a, now=NOON),
        lambda s, a: close_case(s, mine, a, now=NOON),
        lambda s, a: ai_output_for_reader(s, mine, a),
    ]
    for attempt in attempts:
        for assignment_id in (their_entry.assignment_id, 987654):
            with any_factory() as session:
                with pytest.raises(NotAllowed, match=f"assignment {assignment_id} is not on your worklist"):
                    attempt(session, assignment_id)
    with any_factory() as session:
        with pytest.raises(NotAllowed, match="this case token is not on your worklist"):
            pixels_for_token(session, mine, their_entry.token, now=NOON)
        own = reader_worklist(session, mine, study_id, now=NOON).entries[0]
        pixels = pixels_for_token(session, mine, own.token, now=NOON)
    assert pixels.source.startswith("/data/patients/DOE_JANE") and pixels.pseudonym == own.pseudonym


def test_a_reader_never_sees_another_readers_answers_on_the_same_case(any_factory, world, study_id) -> None:
    mine, theirs = world.readers
    with any_factory.begin() as session:
        entry = reader_worklist(session, theirs, study_id, now=NOON).entries[0]
        case = case_for_reader(session, theirs, entry.assignment_id, now=NOON)
        save_answer(session, theirs, entry.assignment_id, case.questions[0].id, "healthy", now=NOON)
    with any_factory.begin() as session:
        same = next(e for e in reader_worklist(session, mine, study_id, now=NOON).entries if e.pseudonym == entry.pseudonym)
        assert same.state == "new"
        assert case_for_reader(session, mine, same.assignment_id, now=NOON).answers == {}


def test_no_ai_output_in_an_unaided_arm_or_before_the_case_is_opened(any_factory, world, study_id) -> None:
    reader = world.readers[0]
    with any_factory.begin() as session:
        entries = reader_worklist(session, reader, study_id, now=NOON).entries
        unaided = next(e for e in entries if e.arm == "unaided")
        aided = next(e for e in entries if e.arm == "ai+gradcam")
        with pytest.raises(StudyStateError, match="open the case first"):
            ai_output_for_reader(session, reader, aided.assignment_id)
        assert not case_for_reader(session, reader, unaided.assignment_id, now=NOON).shows_ai
        with pytest.raises(NotAllowed, match="arm 'unaided' shows no AI output"):
            ai_output_for_reader(session, reader, unaided.assignment_id)
        assert case_for_reader(session, reader, aided.assignment_id, now=NOON).shows_ai
        output = ai_output_for_reader(session, reader, aided.assignment_id)
        assert (output.map_method, output.class_names) == ("gradcam", ("COVID-19", "pneumonia", "healthy"))


def test_sequential_ai_output_is_refused_until_the_first_answer_is_locked(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, sequential_design())
    reader = world.readers[1]
    with any_factory.begin() as session:
        entry = reader_worklist(session, reader, study_id, now=NOON).entries[0]
        case = case_for_reader(session, reader, entry.assignment_id, now=NOON)
        for question in case.questions:
            save_answer(session, reader, entry.assignment_id, question.id, "healthy" if question.kind == "single_choice" else 30, now=NOON)
            with pytest.raises(NotAllowed, match="once your unaided answer is locked"):
                ai_output_for_reader(session, reader, entry.assignment_id)
        submit_case(session, reader, entry.assignment_id, now=NOON)
        case_for_reader(session, reader, entry.assignment_id, now=NOON)
        assert ai_output_for_reader(session, reader, entry.assignment_id).map_method == "gradcam"


def test_coordinators_follow_progress_without_seeing_answers_until_the_study_is_closed(any_factory, world, study_id) -> None:
    reader = world.readers[0]
    with any_factory.begin() as session:
        entry = reader_worklist(session, reader, study_id, now=NOON).entries[0]
        case = case_for_reader(session, reader, entry.assignment_id, now=NOON)
        notes = next(q for q in case.questions if q.key == "notes")
        save_answer(session, reader, entry.assignment_id, notes.id, FREE_TEXT, now=NOON)
        for question in case.questions:
            if question.required:
                save_answer(session, reader, entry.assignment_id, question.id,
                            {"single_choice": "healthy", "confidence_1_5": 2, "helpfulness": 0}[question.kind], now=NOON)
        submit_case(session, reader, entry.assignment_id, now=NOON)
    with any_factory.begin() as session:
        status = study_status(session, world.coordinator, study_id, now=NOON)
        trail = audit_trail(session, world.coordinator)
        with pytest.raises(NotAllowed, match="is open: it can be exported once closed \\(or by an admin\\)"):
            export_study_records(session, world.coordinator, study_id)
    dumped = json.dumps(status) + json.dumps([e.detail for e in trail])
    assert "ZEBRA" not in dumped and "healthy" not in dumped and "HIDDEN-TRUTH" not in dumped
    assert [(r["reader"], r["submitted"], r["assigned"]) for r in status["readers"]] == [("reader0", 1, 6), ("reader1", 0, 6)]
    assert [(b["reader"], b["submitted"], b["median_submitted"]) for b in status["behind"]] == [("reader1", 0, 0.5)]
    assert status["readers"][0]["by_arm"][entry.arm]["submitted"] == 1
    with any_factory.begin() as session:
        interim = export_study_records(session, world.admin, study_id)  # an admin may look early
        close_study(session, world.coordinator, study_id)
        final = export_study_records(session, world.coordinator, study_id)
    assert FREE_TEXT in json.dumps(interim) and json.dumps(final) == json.dumps(interim)
    assert final and {r["ground_truth"] for r in final} <= {HIDDEN_TRUTH.format(i) for i in range(6)}
    with any_factory() as session:
        exports = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "study.exported")).all()
    assert [(e.actor, e.detail["status"]) for e in exports] == [("dan", "open"), ("carol", "closed")]


def test_readers_cannot_reach_the_coordinators_views(any_factory, world, study_id) -> None:
    reader = world.readers[0]
    with any_factory() as session:
        for attempt, permission in (
            (lambda: study_status(session, reader, study_id), "study.progress"),
            (lambda: study_key(session, reader, study_id), "study.key"),
            (lambda: export_study_records(session, reader, study_id), "study.export"),
        ):
            with pytest.raises(NotAllowed, match=f"'reader0' \\(reader\\) may not {permission}"):
                attempt()
        with pytest.raises(PermissionError):
            audit_trail(session, reader)


def test_the_key_is_for_coordinators_and_every_look_is_audited(any_factory, world, study_id) -> None:
    with any_factory.begin() as session:
        key = study_key(session, world.coordinator, study_id)
    assert {(row["source"], row["ground_truth"]) for row in key} == {
        (SECRET_SOURCE.format(i), HIDDEN_TRUTH.format(i)) for i in range(6)
    }
    with any_factory() as session:
        looks = session.scalars(sa.select(AuditEvent.actor).where(AuditEvent.action == "study.key_viewed")).all()
    assert looks == ["carol"]


def _functions(path: Path):
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)]


def test_reader_modules_reach_assignments_only_through_the_reader_scoped_helpers() -> None:
    """No reader-facing module selects assignments itself; every helper that does filters by
    ``Assignment.reader_id``."""
    package = Path(db.__file__).parent
    for name in ("study_reader.py", "study_reading.py", "study_pixels.py"):
        for function in _functions(package / name):
            assert "select(Assignment" not in ast.unparse(function), f"{name}:{function.name}"
    for function in _functions(package / "_study_access.py"):
        source = ast.unparse(function)
        if "select(Assignment" in source or "select(StudyReading" in source:
            assert "Assignment.reader_id ==" in source, f"_study_access.py:{function.name}"


def test_the_screen_never_imports_the_pixel_resolver() -> None:
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "ui").rglob("*.py") if "study_pixels" in p.read_text()]
    assert offenders == []
