"""Reading in a study: answers stored as drafts the moment they are given, submit locks them,
a revision (where the study allows) is a new version that keeps the old.

Call each function in its own transaction (``with factory.begin() as session:``), one per click:
an answer is then on disk before the reader's next action, and a crash or a power cut loses
nothing but the seconds since the last answer on the case's timer.

In a sequential design phase 1 (unaided) must be submitted before phase 2 (aided) takes any
answer; phase 1 is never revised. Every function is scoped to the reader's own assignments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db._study_access import (
    editable_reading,
    latest_reading,
    later_session_started,
    new_reading,
    own_assignment,
    reading_state,
    require_available,
    stop,
    tick,
)
from db.audit import record
from db.base import utcnow
from db.errors import InvalidInput, NotAllowed, StudyStateError
from db.models import Assignment, StudyAnswer, StudyQuestion, StudyReading
from db.readers import get_reader
from db.study_spec import check_answer, question_visible


@dataclass(frozen=True)
class SavedAnswer:
    """An answer as stored: its canonical value (None when cleared), phase and version."""

    question_id: int
    value: Any
    phase: int
    version: int


def _audit(
    session: Session, reader_id: int, action: str, assignment: Assignment, reading: StudyReading, **extra: Any
) -> None:
    record(
        session, actor=get_reader(session, reader_id).username, action=action, entity="assignments",
        entity_id=assignment.id,
        detail={"study_id": assignment.study_id, "phase": reading.phase, "version": reading.version, **extra},
    )


def _question(assignment: Assignment, question_id: int, phase: int) -> StudyQuestion:
    for question in assignment.study.questions:
        if question.id == question_id:
            if not question_visible(question, assignment.arm.name, phase):
                raise NotAllowed(f"question {question.key!r} is not asked in arm {assignment.arm.name!r}, phase {phase}")
            return question
    raise NotAllowed(f"question {question_id} is not a question of this study")


def save_answer(
    session: Session, reader_id: int, assignment_id: int, question_id: int, value: Any, *, now: datetime | None = None
) -> SavedAnswer:
    """Store one answer as a draft of the current phase (``value=None`` clears it).

    Args:
        session: the caller's session (one transaction per answer).
        reader_id: the signed-in reader.
        assignment_id: one of their assignments.
        question_id: a question asked in this arm and phase.
        value: the answer (see ``db.study_spec.check_answer``), or None to clear it.
        now: the time (tests); the clock by default.

    Raises:
        NotAllowed: another reader's assignment, or a question not asked here.
        StudyStateError: the study or session is not open to the reader, or the answers are
            submitted.
        InvalidInput: the value does not answer the question.
    """
    moment = now or utcnow()
    assignment = own_assignment(session, reader_id, assignment_id)
    require_available(session, assignment, moment)
    reading = editable_reading(session, assignment, moment)
    question = _question(assignment, question_id, reading.phase)
    existing = next((a for a in reading.answers if a.question_id == question.id), None)
    where = f"{assignment.study_case.pseudonym}, {question.key}"
    if value is None:
        if existing is not None:
            reading.answers.remove(existing)
        stored = None
    else:
        shape = assignment.study_case.case.shape
        stored = check_answer(question.kind, question.options, value, case_shape=shape, where=where)
        if existing is None:
            reading.answers.append(
                StudyAnswer(question_id=question.id, value=stored, first_given_at=moment, updated_at=moment, changes=0)
            )
        elif existing.value != stored:
            existing.value, existing.updated_at, existing.changes = stored, moment, existing.changes + 1
    if reading.first_answer_at is None and stored is not None:
        reading.first_answer_at = moment
    if reading.open_since is None:
        reading.open_since = moment
    tick(reading, moment)
    session.flush()
    _audit(session, reader_id, "study.answer_saved" if stored is not None else "study.answer_cleared",
           assignment, reading, question=question.key)
    return SavedAnswer(question.id, stored, reading.phase, reading.version)


def submit_case(session: Session, reader_id: int, assignment_id: int, *, now: datetime | None = None) -> str:
    """Lock the current phase's answers.

    Returns:
        The assignment's state afterwards: "phase 1 locked" (sequential: the aided step comes
        next) or "submitted".

    Raises:
        NotAllowed: another reader's assignment.
        StudyStateError: not open to the reader, or nothing to submit.
        InvalidInput: a required question is unanswered (named).
    """
    moment = now or utcnow()
    assignment = own_assignment(session, reader_id, assignment_id)
    require_available(session, assignment, moment)
    reading = latest_reading(assignment)
    if reading is None or reading.submitted_at is not None:
        raise StudyStateError(f"{assignment.study_case.pseudonym}: there is no draft to submit; open the case first")
    answered = {a.question_id for a in reading.answers}
    missing = [
        q.key for q in assignment.study.questions
        if q.required and q.id not in answered and question_visible(q, assignment.arm.name, reading.phase)
    ]
    if missing:
        raise InvalidInput(f"{assignment.study_case.pseudonym}: answer {missing} before submitting")
    stop(reading, moment)
    reading.submitted_at = moment
    session.flush()
    _audit(session, reader_id, "study.case_submitted", assignment, reading, seconds_open=round(reading.seconds_open, 3))
    return reading_state(assignment)


def revise_case(session: Session, reader_id: int, assignment_id: int, *, now: datetime | None = None) -> int:
    """Reopen a submitted case as a new version (the submitted one is kept), if the study allows.

    The new version starts with the last answers as drafts and shows the same AI output.

    Returns:
        The new version number.

    Raises:
        NotAllowed: another reader's assignment, or the study does not allow revisions.
        StudyStateError: not submitted yet, sequential phase 1 (never revised), or the reader
            has started a later session (the washout would be broken).
    """
    moment = now or utcnow()
    assignment = own_assignment(session, reader_id, assignment_id)
    study = assignment.study
    if not study.allow_revisions:
        raise NotAllowed(f"study {study.name!r} does not allow changing a submitted answer")
    require_available(session, assignment, moment)
    last = latest_reading(assignment)
    if last is None or last.submitted_at is None or last.phase != assignment.phases:
        raise StudyStateError(f"{assignment.study_case.pseudonym}: only a submitted final answer can be revised")
    later = later_session_started(session, assignment)
    if later is not None:
        raise StudyStateError(f"{assignment.study_case.pseudonym}: you have started session {later}; "
                              f"session {assignment.session.number} can no longer be changed")
    reading = new_reading(session, assignment, last.phase, last.version + 1, moment)
    reading.shown_prediction_id = last.shown_prediction_id
    reading.shown_explanation_ids, reading.pairwise_order = dict(last.shown_explanation_ids), dict(last.pairwise_order)
    reading.answers = [
        StudyAnswer(question_id=a.question_id, value=a.value, first_given_at=a.first_given_at,
                    updated_at=a.updated_at, changes=0)
        for a in last.answers
    ]
    session.flush()
    _audit(session, reader_id, "study.case_revised", assignment, reading)
    return reading.version


def close_case(session: Session, reader_id: int, assignment_id: int, *, now: datetime | None = None) -> None:
    """The reader left the case (next, previous, sign-out): stop its timer. Drafts stay."""
    moment = now or utcnow()
    assignment = own_assignment(session, reader_id, assignment_id)
    reading = latest_reading(assignment)
    if reading is not None and reading.open_since is not None:
        stop(reading, moment)
        session.flush()
