"""Reading in a study: drafts kept the moment they are given, a per-case timer, submit locks,
revisions are new versions, the sequential lock, sessions, washout and what was shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from db.errors import InvalidInput, NotAllowed, StudyStateError
from db.models import AuditEvent, StudyQuestion, StudyReading
from db.studies import close_study
from db.study_export import export_study_records
from db.study_reader import ai_output_for_reader, case_for_reader, reader_worklist
from db.study_reading import close_case, revise_case, save_answer, submit_case
from tests.db.study_world import NOON, START, build_world, open_new_study, pocovid_design, sequential_design

ANSWERS = {
    "single_choice": "pneumonia", "confidence_1_5": 4, "helpfulness": -2, "pairwise_explanation": "left",
    "free_text": "B-lines", "probability_0_100": 62.5,
}


@pytest.fixture
def world(any_factory):
    return build_world(any_factory, readers=2, cases=4)


def at(seconds: float):
    return NOON + timedelta(seconds=seconds)


def _answer_all(session, reader, assignment_id, now, required_only=False):
    case = case_for_reader(session, reader, assignment_id, now=now)
    for question in case.questions:
        if question.required or not required_only:
            save_answer(session, reader, assignment_id, question.id, ANSWERS[question.kind], now=now)
    return case


def _entry(factory, reader, study_id, arm=None, now=NOON):
    with factory() as session:
        entries = reader_worklist(session, reader, study_id, now=now).entries
    return next(e for e in entries if arm is None or e.arm == arm)


def test_drafts_survive_closing_and_the_reader_resumes_at_the_same_case(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, pocovid_design())
    reader = world.readers[0]
    entry = _entry(any_factory, reader, study_id, "ai+gradcam")
    with any_factory.begin() as session:
        case = case_for_reader(session, reader, entry.assignment_id, now=at(0))
        ids = {q.key: q.id for q in case.questions}
        assert list(ids) == ["diagnosis", "confidence", "helpfulness", "better_map", "notes"]
        save_answer(session, reader, entry.assignment_id, ids["diagnosis"], "healthy", now=at(4))
    with any_factory.begin() as session:
        save_answer(session, reader, entry.assignment_id, ids["diagnosis"], "COVID-19", now=at(6))
        save_answer(session, reader, entry.assignment_id, ids["notes"], "maybe", now=at(7))
        save_answer(session, reader, entry.assignment_id, ids["notes"], None, now=at(8))  # cleared
        close_case(session, reader, entry.assignment_id, now=at(10))
    with any_factory() as session:
        worklist = reader_worklist(session, reader, study_id, now=at(60))
        resumed = next(e for e in worklist.entries if e.assignment_id == entry.assignment_id)
        assert resumed.state == "draft"
    with any_factory.begin() as session:
        again = case_for_reader(session, reader, entry.assignment_id, now=at(100))
        assert again.answers == {ids["diagnosis"]: "COVID-19"} and not again.locked
        assert (again.seconds_open, again.seconds_to_first_answer) == (10.0, 4.0)
        close_case(session, reader, entry.assignment_id, now=at(105))
    with any_factory() as session:
        reading = session.scalars(sa.select(StudyReading)).one()
        answer = reading.answers[0]
        assert (answer.value, answer.changes, answer.first_given_at, answer.updated_at) == ("COVID-19", 1, at(4), at(6))
        assert (reading.opened_at, reading.first_answer_at, reading.closed_at, reading.seconds_open) == (at(0), at(4), at(105), 15.0)
        actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.entity == "assignments")).all()
        assert actions == ["study.answer_saved"] * 3 + ["study.answer_cleared"]


def test_resume_point_is_the_first_unfinished_case_in_the_readers_order(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, pocovid_design())
    reader = world.readers[1]
    first = _entry(any_factory, reader, study_id)
    with any_factory.begin() as session:
        _answer_all(session, reader, first.assignment_id, at(0), required_only=True)
        assert submit_case(session, reader, first.assignment_id, now=at(5)) == "submitted"
    with any_factory() as session:
        worklist = reader_worklist(session, reader, study_id, now=at(6))
    assert (worklist.done, worklist.total) == (1, 4)
    assert worklist.resume_at == worklist.entries[1].assignment_id
    assert [e.place for e in worklist.entries] == [1, 2, 3, 4]


def test_submit_needs_every_required_answer_then_locks(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, pocovid_design())
    reader = world.readers[0]
    entry = _entry(any_factory, reader, study_id, "ai")
    with any_factory.begin() as session:
        case = case_for_reader(session, reader, entry.assignment_id, now=at(0))
        ids = {q.key: q.id for q in case.questions}
        save_answer(session, reader, entry.assignment_id, ids["diagnosis"], "healthy", now=at(1))
        with pytest.raises(InvalidInput, match="answer \\['confidence'\\] before submitting"):
            submit_case(session, reader, entry.assignment_id, now=at(2))
        with pytest.raises(InvalidInput, match="'sure' must be a whole number from 1 to 5"):
            save_answer(session, reader, entry.assignment_id, ids["confidence"], "sure", now=at(2))
        assert "helpfulness" not in ids  # not on this arm's form, and refused when forced:
        helpfulness = session.scalar(sa.select(StudyQuestion.id).where(StudyQuestion.key == "helpfulness"))
        with pytest.raises(NotAllowed, match="'helpfulness' is not asked in arm 'ai'"):
            save_answer(session, reader, entry.assignment_id, helpfulness, 1, now=at(2))
        save_answer(session, reader, entry.assignment_id, ids["confidence"], 5, now=at(3))
        submit_case(session, reader, entry.assignment_id, now=at(4))
        with pytest.raises(StudyStateError, match="is submitted: its answers are locked$"):
            save_answer(session, reader, entry.assignment_id, ids["confidence"], 1, now=at(5))
        with pytest.raises(NotAllowed, match="does not allow changing a submitted answer"):
            revise_case(session, reader, entry.assignment_id, now=at(5))
        locked = case_for_reader(session, reader, entry.assignment_id, now=at(9))
        assert locked.locked and locked.answers == {ids["diagnosis"]: "healthy", ids["confidence"]: 5}
        assert locked.seconds_open == 4.0  # opening a submitted case does not run its timer


def test_sequential_locks_the_unaided_answer_before_the_ai_and_keeps_both(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, sequential_design())
    reader = world.readers[0]
    entry = _entry(any_factory, reader, study_id)
    with any_factory.begin() as session:
        unaided = case_for_reader(session, reader, entry.assignment_id, now=at(0))
        assert (unaided.phase, unaided.phases, unaided.shows_ai) == (1, 2, False)
        assert [q.key for q in unaided.questions] == ["diagnosis", "probability"]
        with pytest.raises(NotAllowed, match="shown in the aided step, once your unaided answer is locked"):
            ai_output_for_reader(session, reader, entry.assignment_id)
        ids = {q.key: q.id for q in unaided.questions}
        save_answer(session, reader, entry.assignment_id, ids["diagnosis"], "healthy", now=at(3))
        save_answer(session, reader, entry.assignment_id, ids["probability"], 20, now=at(4))
        with pytest.raises(NotAllowed, match="shown in the aided step"):
            ai_output_for_reader(session, reader, entry.assignment_id)  # drafts are not a lock
        assert submit_case(session, reader, entry.assignment_id, now=at(5)) == "phase 1 locked"
        with pytest.raises(NotAllowed, match="shown in the aided step"):
            ai_output_for_reader(session, reader, entry.assignment_id)  # the aided step is not open yet
    with any_factory.begin() as session:
        aided = case_for_reader(session, reader, entry.assignment_id, now=at(10))
        assert (aided.phase, aided.shows_ai, aided.answers) == (2, True, {})
        assert aided.earlier_answers == {ids["diagnosis"]: "healthy", ids["probability"]: 20.0}
        assert [q.key for q in aided.questions] == ["diagnosis", "probability", "helpfulness"]
        output = ai_output_for_reader(session, reader, entry.assignment_id)
        assert (output.map_method, output.predicted_class, output.pairwise) == ("gradcam", "COVID-19", {})
        for key, value in (("diagnosis", "COVID-19"), ("probability", 85), ("helpfulness", 3)):
            question = next(q for q in aided.questions if q.key == key)
            save_answer(session, reader, entry.assignment_id, question.id, value, now=at(20))
        assert submit_case(session, reader, entry.assignment_id, now=at(30)) == "submitted"
        version = revise_case(session, reader, entry.assignment_id, now=at(40))
        assert version == 2
        save_answer(session, reader, entry.assignment_id, ids["diagnosis"], "pneumonia", now=at(41))
        submit_case(session, reader, entry.assignment_id, now=at(42))
        close_study(session, world.coordinator, study_id)
    with any_factory.begin() as session:
        rows = export_study_records(session, world.coordinator, study_id)
    mine = {(r["phase"], r["question"]): r for r in rows if r["reader"] == "reader0" and r["case"] == entry.pseudonym}
    assert [(k, r["first_answer"], r["final_answer"], r["versions"]) for k, r in sorted(mine.items())] == [
        ((1, "diagnosis"), "healthy", "healthy", 1),
        ((1, "probability"), 20.0, 20.0, 1),
        ((2, "diagnosis"), "COVID-19", "pneumonia", 2),
        ((2, "helpfulness"), 3, 3, 2),
        ((2, "probability"), 85.0, 85.0, 2),
    ]
    phase1, phase2 = mine[(1, "diagnosis")], mine[(2, "diagnosis")]
    assert (phase1["shown_prediction_id"], phase1["shown_explanation_ids"]) == (None, {})
    case = next(c for c in world.cases if c.prediction_id == phase2["shown_prediction_id"])
    assert phase2["shown_explanation_ids"] == {"gradcam": case.explanation_ids["gradcam"]}
    assert (phase2["bundle_name"], phase2["bundle_version"]) == ("lung-ultrasound", "1.1.0")
    assert (phase1["submitted_at"], phase2["submitted_at"], phase2["final_submitted_at"]) == (
        at(5).isoformat(), at(30).isoformat(), at(42).isoformat()
    )


def test_the_pairwise_sides_are_drawn_recorded_and_resolved_in_the_export(any_factory) -> None:
    world = build_world(any_factory, readers=1, cases=12)
    design = pocovid_design(design="fully_crossed")
    study_id = open_new_study(any_factory, world, design)
    reader = world.readers[0]
    orders = []
    with any_factory.begin() as session:
        for entry in reader_worklist(session, reader, study_id, now=at(0)).entries:
            if entry.arm == "unaided":
                continue
            case = case_for_reader(session, reader, entry.assignment_id, now=at(0))
            output = ai_output_for_reader(session, reader, entry.assignment_id)
            question = next(q for q in case.questions if q.key == "better_map")
            assert question.options == ("left", "right", "equal")
            left, right = output.pairwise[question.id]
            orders.append((left.explanation_id, right.explanation_id))
            save_answer(session, reader, entry.assignment_id, question.id, "left", now=at(1))
        close_study(session, world.coordinator, study_id)
    with any_factory.begin() as session:
        rows = [r for r in export_study_records(session, world.admin, study_id) if r["question"] == "better_map"]
    assert len(rows) == 24 and {r["pairwise_preferred"] for r in rows} == {"gradcam", "eigencam"}
    for row in rows:
        assert row["pairwise_preferred"] == row["pairwise_left"] and {row["pairwise_left"], row["pairwise_right"]} == {"gradcam", "eigencam"}
    gradcam_left = sum(r["pairwise_left"] == "gradcam" for r in rows)
    assert 3 <= gradcam_left <= 21  # drawn at random: P(outside) < 1e-4


def test_crossover_sessions_open_on_their_date_after_the_previous_session_and_the_washout(any_factory, world) -> None:
    design = pocovid_design(design="crossover", washout_days=14,
                            arms=pocovid_design().arms[:2], questions=pocovid_design().questions[:2])
    study_id = open_new_study(any_factory, world, design)
    reader = world.readers[0]
    day = lambda n, h=12: NOON + timedelta(days=n, hours=h - 12)  # noqa: E731
    with any_factory() as session:
        entries = reader_worklist(session, reader, study_id, now=day(0)).entries
    first = [e for e in entries if e.session == 1]
    second = [e for e in entries if e.session == 2]
    assert len(first) == len(second) == 4 and {e.pseudonym for e in first} == {e.pseudonym for e in second}
    assert {e.why_not for e in second} == {f"session 2 opens on {START + timedelta(days=14)}"}
    with any_factory.begin() as session:
        with pytest.raises(StudyStateError, match="session 2 opens on"):
            case_for_reader(session, reader, second[0].assignment_id, now=day(0))
        for e in first[:3]:
            _answer_all(session, reader, e.assignment_id, day(0))
            submit_case(session, reader, e.assignment_id, now=day(0))
    with any_factory() as session:
        late = reader_worklist(session, reader, study_id, now=day(15)).entries
    assert {e.why_not for e in late if e.session == 2} == {"finish session 1 first (1 cases left)"}
    with any_factory.begin() as session:
        _answer_all(session, reader, first[3].assignment_id, day(20))
        submit_case(session, reader, first[3].assignment_id, now=day(20))
    with any_factory() as session:
        waiting = reader_worklist(session, reader, study_id, now=day(21)).entries
        assert {e.why_not for e in waiting if e.session == 2} == {
            f"washout: session 2 opens to you on {(day(34)).date()}"
        }
        ready = reader_worklist(session, reader, study_id, now=day(34, 13)).entries
        assert all(e.available for e in ready if e.session == 2)
        assert ready[0].state == "submitted" and reader_worklist(session, reader, study_id, now=day(34, 13)).resume_at == second[0].assignment_id


def test_repeat_reads_come_in_their_own_session_in_the_same_arm(any_factory) -> None:
    world = build_world(any_factory, readers=2, cases=6)
    study_id = open_new_study(any_factory, world, pocovid_design(repeat_fraction=0.5, washout_days=7))
    with any_factory() as session:
        entries = reader_worklist(session, world.readers[0], study_id, now=NOON).entries
    repeats = [e for e in entries if e.repeat]
    assert len(repeats) == 3 and {e.session for e in repeats} == {2}
    for again in repeats:
        original = next(e for e in entries if e.pseudonym == again.pseudonym and not e.repeat)
        assert again.arm == original.arm
    assert {e.why_not for e in repeats} == {f"session 2 opens on {START + timedelta(days=7)}"}


def test_revisions_are_refused_once_a_later_session_has_started(any_factory, world) -> None:
    design = pocovid_design(design="crossover", washout_days=0, allow_revisions=True,
                            arms=pocovid_design().arms[:2], questions=pocovid_design().questions[:2])
    study_id = open_new_study(any_factory, world, design)
    reader = world.readers[1]
    with any_factory.begin() as session:
        entries = reader_worklist(session, reader, study_id, now=at(0)).entries
        for e in entries[:4]:
            _answer_all(session, reader, e.assignment_id, at(1))
            submit_case(session, reader, e.assignment_id, now=at(2))
        assert revise_case(session, reader, entries[0].assignment_id, now=at(3)) == 2
        submit_case(session, reader, entries[0].assignment_id, now=at(4))
        case_for_reader(session, reader, entries[4].assignment_id, now=at(5))
        with pytest.raises(StudyStateError, match="you have started session 2; session 1 can no longer be changed"):
            revise_case(session, reader, entries[1].assignment_id, now=at(6))
