"""What a reader's screen may know about a study: the only study queries the reader's window uses.

Blinding is enforced here, not on screen. Every function takes the signed-in reader's id and
returns frozen values (never ORM rows, whose relationships would lead to the case's source, other
readers' answers or the ground truth):

* ``reader_worklist``: their own assignments only, under pseudonyms, in their order, with their
  progress; no source, file name, patient id, date of the image, ground truth or study key.
* ``case_for_reader``: opens one assignment (starts its timer, records what it will show) and
  returns the form (questions for this arm and phase) and the reader's own drafts. The image
  comes as an opaque ``token``: the app turns it into pixels with ``db.study_pixels``, and
  hands the screen the pixels, never a path.
* ``ai_output_for_reader``: the frozen prediction and maps, only in arms that show them and, in
  a sequential design, only once the unaided answer is locked; the prediction's uncertainty
  with them unless the arm hides it (``show_uncertainty: false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db._study_access import (
    editable_reading,
    is_complete,
    latest_reading,
    later_session_started,
    own_assignment,
    own_assignments,
    reading_state,
    require_available,
    session_gates,
)
from db.base import utcnow
from db.errors import NotAllowed, StudyStateError
from db.models import Assignment, Explanation, Prediction, Study, StudyReader
from db.study_spec import PAIRWISE_CHOICES, question_visible, shows_ai, shows_uncertainty


@dataclass(frozen=True)
class ReaderStudy:
    """A study the reader takes part in, with their progress."""

    id: int
    name: str
    task: str
    status: str
    done: int
    total: int


@dataclass(frozen=True)
class WorklistEntry:
    """One assignment on a reader's worklist.

    Attributes:
        assignment_id: what the other functions take.
        token: the opaque handle the app resolves to pixels (``db.study_pixels``).
        pseudonym: the case's study name, e.g. "S3-C417".
        arm: the arm's name.
        session: the session number.
        place: 1-based place in the reader's order over all sessions.
        state: "new", "draft", "phase 1 locked", "phase 2 draft" or "submitted".
        available: whether the reader can read it now.
        why_not: why not, when not (e.g. "session 2 opens on 2026-12-01").
        repeat: whether it is a repeat read (known to the reader, as a session is).
    """

    assignment_id: int
    token: str
    pseudonym: str
    arm: str
    session: int
    place: int
    state: str
    available: bool
    why_not: str | None
    repeat: bool


@dataclass(frozen=True)
class Worklist:
    """A reader's worklist of one study; ``resume_at`` is the first available unfinished entry."""

    study_id: int
    study_name: str
    task: str
    design: str
    entries: tuple[WorklistEntry, ...]
    done: int
    total: int
    resume_at: int | None


@dataclass(frozen=True)
class QuestionView:
    """A question as the form shows it; pairwise questions offer "left", "right" or "equal"."""

    id: int
    key: str
    prompt: str
    kind: str
    options: tuple[str, ...]
    required: bool


@dataclass(frozen=True)
class ReaderCase:
    """One opened assignment as the reading form needs it.

    Attributes:
        phase: 1, or 2 (the aided step of a sequential design).
        version: 1, or higher after revisions.
        questions: the questions of this arm and phase.
        answers: ``{question_id: value}`` of the reader's own current reading (drafts or locked).
        earlier_answers: ``{question_id: value}`` of their own locked phase 1, in phase 2.
        locked: whether the current answers are submitted.
        can_revise: whether a revision may be started.
        shows_ai: whether ``ai_output_for_reader`` will answer now.
        seconds_open: time on this phase so far.
        seconds_to_first_answer: from opening to the first answer, once given.
    """

    assignment_id: int
    token: str
    pseudonym: str
    arm: str
    phase: int
    phases: int
    version: int
    questions: tuple[QuestionView, ...]
    answers: dict[int, Any]
    earlier_answers: dict[int, Any]
    locked: bool
    can_revise: bool
    shows_ai: bool
    seconds_open: float
    seconds_to_first_answer: float | None


@dataclass(frozen=True)
class MapView:
    """A frozen map: the explanation to draw (its blob path and hash are content addresses)."""

    explanation_id: int
    class_index: int
    class_name: str
    map_path: str
    map_sha256: str
    map_stats: dict[str, float]


@dataclass(frozen=True)
class AiOutput:
    """The frozen AI output of one reading, exactly as recorded for it.

    Attributes:
        class_names, probabilities, predicted_class, item_axis, calibrated: the prediction.
        map: the arm's map (its method named by ``map_method``), if the arm shows one.
        pairwise: ``{question_id: (left map, right map)}``; which method is which is not said.
        uncertainty: the prediction's uncertainty record frozen with it (``db.uncertainty``);
            None when it was not measured or the arm hides it.
        uncertainty_hidden: whether the arm hides the uncertainty (``show_uncertainty: false``),
            so the screen says nothing of it rather than "not measured".
    """

    prediction_id: int
    class_names: tuple[str, ...]
    probabilities: list[list[float]]
    predicted_class: str
    item_axis: str
    calibrated: bool
    map_method: str | None
    map: MapView | None
    pairwise: dict[int, tuple[MapView, MapView]]
    uncertainty: dict | None = None
    uncertainty_hidden: bool = False


def reader_studies(session: Session, reader_id: int) -> list[ReaderStudy]:
    """The open and closed studies the reader takes part in, with their progress (drafts are
    not shown to readers)."""
    query = (
        sa.select(Study)
        .join(StudyReader, StudyReader.study_id == Study.id)
        .where(StudyReader.reader_id == reader_id, Study.status != "draft")
        .order_by(Study.id)
    )
    studies = []
    for study in session.scalars(query):
        mine = own_assignments(session, reader_id, study.id)
        studies.append(ReaderStudy(study.id, study.name, study.task, study.status, sum(map(is_complete, mine)), len(mine)))
    return studies


def reader_worklist(session: Session, reader_id: int, study_id: int, *, now: datetime | None = None) -> Worklist:
    """The reader's own assignments in one study, in their order, with their progress.

    Raises:
        NotAllowed: the reader is not in this study, or it is still a draft.
    """
    study = session.scalar(
        sa.select(Study).join(StudyReader, StudyReader.study_id == Study.id)
        .where(Study.id == study_id, StudyReader.reader_id == reader_id)
    )
    if study is None or study.status == "draft":
        raise NotAllowed(f"study {study_id} is not on your list")
    mine = own_assignments(session, reader_id, study.id)
    gates = session_gates(study, mine, now or utcnow())
    entries = tuple(
        WorklistEntry(
            assignment_id=a.id, token=a.token, pseudonym=a.study_case.pseudonym, arm=a.arm.name,
            session=a.session.number, place=place, state=reading_state(a),
            available=gates[a.session.number] is None, why_not=gates[a.session.number], repeat=a.repeat,
        )
        for place, a in enumerate(mine, start=1)
    )
    done = sum(1 for e in entries if e.state == "submitted")
    resume = next((e.assignment_id for e in entries if e.available and e.state != "submitted"), None)
    return Worklist(study.id, study.name, study.task, study.design, entries, done, len(entries), resume)


def _questions(assignment: Assignment, phase: int) -> tuple[QuestionView, ...]:
    return tuple(
        QuestionView(q.id, q.key, q.prompt, q.kind,
                     PAIRWISE_CHOICES if q.kind == "pairwise_explanation" else tuple(q.options), q.required)
        for q in assignment.study.questions
        if question_visible(q, assignment.arm.name, phase)
    )


def _view(assignment: Assignment, later_started: bool) -> ReaderCase:
    reading = latest_reading(assignment)
    assert reading is not None
    earlier = {}
    if reading.phase == 2:
        first = max((r for r in assignment.readings if r.phase == 1), key=lambda r: r.version)
        earlier = {a.question_id: a.value for a in first.answers}
    locked = reading.submitted_at is not None
    return ReaderCase(
        assignment_id=assignment.id, token=assignment.token, pseudonym=assignment.study_case.pseudonym,
        arm=assignment.arm.name, phase=reading.phase, phases=assignment.phases, version=reading.version,
        questions=_questions(assignment, reading.phase),
        answers={a.question_id: a.value for a in reading.answers}, earlier_answers=earlier, locked=locked,
        can_revise=locked and is_complete(assignment) and assignment.study.allow_revisions and not later_started,
        shows_ai=reading.shown_prediction_id is not None,
        seconds_open=reading.seconds_open,
        seconds_to_first_answer=None if reading.first_answer_at is None
        else (reading.first_answer_at - reading.opened_at).total_seconds(),
    )


def case_for_reader(
    session: Session, reader_id: int, assignment_id: int, *, now: datetime | None = None
) -> ReaderCase:
    """Open one of the reader's assignments: start (or resume) its reading and timer, and return
    the form with their drafts. A submitted case is returned locked, its timer untouched.

    In a sequential design, once phase 1 is submitted this opens phase 2 (recording the AI
    output it shows).

    Raises:
        NotAllowed: not this reader's assignment.
        StudyStateError: the study or the case's session is not open to them.
    """
    moment = now or utcnow()
    assignment = own_assignment(session, reader_id, assignment_id)
    require_available(session, assignment, moment)
    if not is_complete(assignment):
        reading = editable_reading(session, assignment, moment)
        reading.open_since = moment  # a visit left open by a crash restarts here
        session.flush()
    return _view(assignment, later_session_started(session, assignment) is not None)


def _map_view(session: Session, explanation_id: int, class_names: list[str]) -> MapView:
    explanation = session.get(Explanation, explanation_id)
    assert explanation is not None  # restricted from deletion while a study refers to it
    return MapView(explanation.id, explanation.class_index, class_names[explanation.class_index],
                   explanation.map_path, explanation.map_sha256, dict(explanation.map_stats))


def ai_output_for_reader(session: Session, reader_id: int, assignment_id: int) -> AiOutput:
    """The AI output the reader's current reading shows, exactly as recorded when it opened.

    Raises:
        NotAllowed: not this reader's assignment; an arm that shows no AI; in a sequential design,
            before the unaided answer is locked and the aided step opened.
        StudyStateError: the case has not been opened yet.
    """
    assignment = own_assignment(session, reader_id, assignment_id)
    study, arm = assignment.study, assignment.arm
    if not arm.shows_prediction:
        raise NotAllowed(f"arm {arm.name!r} shows no AI output")
    reading = latest_reading(assignment)
    if reading is None:
        raise StudyStateError(f"{assignment.study_case.pseudonym}: open the case first")
    if not shows_ai(arm, reading.phase, study.design) or reading.shown_prediction_id is None:
        raise NotAllowed(
            f"{assignment.study_case.pseudonym}: the AI output is shown in the aided step, "
            "once your unaided answer is locked and the case opened again"
        )
    prediction = session.get(Prediction, reading.shown_prediction_id)
    assert prediction is not None
    shown = shows_uncertainty(arm, reading.phase, study.design)
    names = list(prediction.class_names)
    maps = reading.shown_explanation_ids
    own = arm.cam_method if arm.cam_method in maps else None
    by_key = {q.key: q.id for q in study.questions}
    pairwise = {
        by_key[key]: (_map_view(session, maps[left], names), _map_view(session, maps[right], names))
        for key, (left, right) in reading.pairwise_order.items()
    }
    return AiOutput(
        prediction_id=prediction.id, class_names=tuple(names), probabilities=[list(r) for r in prediction.probabilities],
        predicted_class=prediction.predicted_class, item_axis=prediction.item_axis, calibrated=prediction.calibrated,
        map_method=own, map=None if own is None else _map_view(session, maps[own], names), pairwise=pairwise,
        uncertainty=None if prediction.uncertainty is None or not shown else dict(prediction.uncertainty),
        uncertainty_hidden=not shown,
    )

