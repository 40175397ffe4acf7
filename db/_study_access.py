"""What a reader may touch in a study, and when: shared by ``db.study_reader`` (what a reader
sees) and ``db.study_reading`` (what a reader writes).

Every assignment is fetched through ``own_assignment``, which filters by the reader's id, so an
assignment id or token of another reader is refused exactly like one that does not exist.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db.errors import NotAllowed, StudyStateError
from db.models import Assignment, Study, StudyCase, StudyReading, StudySession
from db.study_spec import question_visible, shows_ai

_LOADED = (
    selectinload(Assignment.readings).selectinload(StudyReading.answers),
    selectinload(Assignment.arm),
    selectinload(Assignment.session),
    selectinload(Assignment.study_case).selectinload(StudyCase.maps),
)


def own_assignment(session: Session, reader_id: int, assignment_id: int) -> Assignment:
    """The reader's assignment with this id.

    Raises:
        NotAllowed: no such assignment on this reader's worklist (another reader's included).
    """
    query = sa.select(Assignment).where(Assignment.id == assignment_id, Assignment.reader_id == reader_id)
    assignment = session.scalar(query.options(*_LOADED))
    if assignment is None:
        raise NotAllowed(f"assignment {assignment_id} is not on your worklist")
    return assignment


def own_assignment_by_token(session: Session, reader_id: int, token: str) -> Assignment:
    """The reader's assignment with this case token.

    Raises:
        NotAllowed: no such token on this reader's worklist.
    """
    query = sa.select(Assignment).where(Assignment.token == str(token), Assignment.reader_id == reader_id)
    assignment = session.scalar(query.options(*_LOADED))
    if assignment is None:
        raise NotAllowed("this case token is not on your worklist")
    return assignment


def own_assignments(session: Session, reader_id: int, study_id: int) -> list[Assignment]:
    """Every assignment of one reader in one study, by session and position."""
    query = (
        sa.select(Assignment)
        .where(Assignment.reader_id == reader_id, Assignment.study_id == study_id)
        .options(*_LOADED)
    )
    return sorted(session.scalars(query), key=lambda a: (a.session.number, a.position))


def latest_reading(assignment: Assignment) -> StudyReading | None:
    """The reading of the latest phase and version, or None before the case was first opened."""
    return max(assignment.readings, key=lambda r: (r.phase, r.version), default=None)


def is_complete(assignment: Assignment) -> bool:
    """Whether the last phase has a submitted reading."""
    last = latest_reading(assignment)
    return last is not None and last.submitted_at is not None and last.phase == assignment.phases


def reading_state(assignment: Assignment) -> str:
    """"new", "draft", "phase 1 locked" (sequential: the aided step is next), "phase 2 draft" or
    "submitted"."""
    last = latest_reading(assignment)
    if last is None:
        return "new"
    if last.submitted_at is None:
        return "phase 2 draft" if last.phase == 2 else "draft"
    return "submitted" if last.phase == assignment.phases else "phase 1 locked"


def _last_submitted(assignments: Iterable[Assignment]) -> datetime | None:
    times = [r.submitted_at for a in assignments for r in a.readings if r.submitted_at is not None]
    return max(times, default=None)


def _gate(study: Study, number: int, opens_on: date | None, before: list[Assignment], now: datetime) -> str | None:
    """Why session ``number`` is closed to a reader now, given their assignments of the session
    before it; None when it is open."""
    if study.status != "open":
        return "the study is not open yet" if study.status == "draft" else "the study is closed"
    if opens_on is None or now.date() < opens_on:
        return f"session {number} opens on {opens_on}"
    left = sum(1 for a in before if not is_complete(a))
    if left:
        return f"finish session {number - 1} first ({left} cases left)"
    last = _last_submitted(before)
    if last is not None and now < last + timedelta(days=study.washout_days):
        return f"washout: session {number} opens to you on {(last + timedelta(days=study.washout_days)).date()}"
    return None


def session_gates(study: Study, mine: list[Assignment], now: datetime) -> dict[int, str | None]:
    """Why each of the reader's sessions is closed to them now (None where it is open).

    A session opens to a reader on its date, once they finished the session before, and once the
    washout has passed since their last answer in it.
    """
    by_session: dict[int, list[Assignment]] = defaultdict(list)
    for assignment in mine:
        by_session[assignment.session.number].append(assignment)
    return {
        number: _gate(study, number, group[0].session.opens_on, by_session.get(number - 1, []), now)
        for number, group in by_session.items()
    }


def _in_session(session: Session, assignment: Assignment, number: int) -> list[Assignment]:
    query = (
        sa.select(Assignment)
        .join(StudySession, Assignment.session_id == StudySession.id)
        .where(Assignment.reader_id == assignment.reader_id, Assignment.study_id == assignment.study_id,
               StudySession.number == number)
        .options(selectinload(Assignment.readings))
    )
    return list(session.scalars(query))


def require_available(session: Session, assignment: Assignment, now: datetime) -> None:
    """Refuse work on an assignment whose study or session is not open to its reader.

    Raises:
        StudyStateError: the study is a draft or closed, or the session is not open to them yet.
    """
    number = assignment.session.number
    before = _in_session(session, assignment, number - 1) if number > 1 else []
    reason = _gate(assignment.study, number, assignment.session.opens_on, before, now)
    if reason is not None:
        raise StudyStateError(f"{assignment.study_case.pseudonym}: {reason}")


def later_session_started(session: Session, assignment: Assignment) -> int | None:
    """The first later session in which the reader has opened a case, or None."""
    query = (
        sa.select(sa.func.min(StudySession.number))
        .select_from(StudyReading)
        .join(Assignment, StudyReading.assignment_id == Assignment.id)
        .join(StudySession, Assignment.session_id == StudySession.id)
        .where(Assignment.reader_id == assignment.reader_id, Assignment.study_id == assignment.study_id,
               StudySession.number > assignment.session.number)
    )
    return session.scalar(query)


def _shown(assignment: Assignment, phase: int) -> tuple[int | None, dict[str, int], dict[str, list[str]]]:
    """The prediction, maps and pairwise left/right order a new reading shows (random sides)."""
    study, arm = assignment.study, assignment.arm
    if not shows_ai(arm, phase, study.design):
        return None, {}, {}
    maps = {m.method: m.explanation_id for m in assignment.study_case.maps}
    shown = {arm.cam_method: maps[arm.cam_method]} if arm.cam_method else {}
    order: dict[str, list[str]] = {}
    for question in study.questions:
        if question.kind == "pairwise_explanation" and question_visible(question, arm.name, phase):
            left, right = question.options if secrets.randbelow(2) == 0 else reversed(question.options)
            order[question.key] = [left, right]
            shown.update({left: maps[left], right: maps[right]})
    return assignment.study_case.prediction_id, shown, order


def new_reading(session: Session, assignment: Assignment, phase: int, version: int, now: datetime) -> StudyReading:
    """Start a reading of one phase and version, recording what it shows."""
    prediction_id, maps, order = _shown(assignment, phase)
    reading = StudyReading(
        phase=phase, version=version, opened_at=now, open_since=now, seconds_open=0.0,
        shown_prediction_id=prediction_id, shown_explanation_ids=maps, pairwise_order=order,
    )
    assignment.readings.append(reading)
    session.flush()
    return reading


def editable_reading(session: Session, assignment: Assignment, now: datetime) -> StudyReading:
    """The reading answers go to now: the open draft, or a new one for the next phase.

    Raises:
        StudyStateError: every phase is submitted (answers locked).
    """
    last = latest_reading(assignment)
    if last is None:
        return new_reading(session, assignment, 1, 1, now)
    if last.submitted_at is None:
        return last
    if last.phase < assignment.phases:
        return new_reading(session, assignment, last.phase + 1, 1, now)
    hint = "; revise it to change an answer" if assignment.study.allow_revisions else ""
    raise StudyStateError(f"{assignment.study_case.pseudonym} is submitted: its answers are locked{hint}")


def tick(reading: StudyReading, now: datetime) -> None:
    """Add the time since the visit's last mark to the reading's time, and mark now.

    Marks are set on opening and on every answer, so a crash loses at most the time since the
    last answer.
    """
    if reading.open_since is not None:
        reading.seconds_open += max(0.0, (now - reading.open_since).total_seconds())
        reading.open_since = now


def stop(reading: StudyReading, now: datetime) -> None:
    """End the current visit."""
    tick(reading, now)
    reading.open_since = None
    reading.closed_at = now
