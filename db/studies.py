"""A study's life as a coordinator runs it: create, edit, extend, open, close.

* A draft study is set up (design, cases with frozen AI output, readers); assignments follow the
  design at every change, so there is no separate step to forget.
* Until a reader first opens a case, everything can be edited (``edit_study`` rebuilds the design,
  cases and readers; pseudonyms of kept cases stay). From then on the study can only be
  extended: ``add_study_readers`` and ``add_study_cases`` append assignments without moving any
  existing one.
* ``open_study`` dates the sessions (session ``s`` opens ``offset_days`` after the start);
  ``close_study`` makes the study read-only.

Every change is audited with the coordinator's name; no detail names a patient or a source.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db._checks import require_text
from db._rows import fetch
from db.audit import record
from db.base import utcnow
from db.errors import InvalidInput, StudyStateError
from db.models import (
    Assignment,
    Case,
    Explanation,
    Prediction,
    Reader,
    Study,
    StudyArm,
    StudyCase,
    StudyCaseMap,
    StudyQuestion,
    StudyReader,
    StudyReading,
    StudySession,
)
from db.permissions import require_permission
from db.study_plan import case_design_indices, choose_repeats, plan_reader, plan_sessions
from db.study_spec import (
    ArmSpec,
    QuestionSpec,
    StudyCaseSpec,
    StudyDesign,
    check_design,
    maps_needed,
    prediction_needed,
)

TOKEN_BYTES = 16


@dataclass(frozen=True)
class StudySummary:
    """A study as listed for a coordinator."""

    id: int
    name: str
    task: str
    design: str
    status: str
    readers: int
    cases: int
    created_by: str


def get_study(session: Session, study_id: int) -> Study:
    """The study with this id (for coordinators' screens; readers use ``db.study_reader``).

    Raises:
        NotFound: no such study.
    """
    return fetch(session, Study, study_id, "study")


def require_open_for_change(study: Study) -> None:
    """Refuse any change to a closed study.

    Raises:
        StudyStateError: the study is closed.
    """
    if study.status == "closed":
        raise StudyStateError(f"study {study.id} {study.name!r} is closed: it is read-only")


def first_reading_at(session: Session, study_id: int) -> datetime | None:
    """When a reader first opened one of the study's cases, or None if nobody has."""
    query = (
        sa.select(sa.func.min(StudyReading.opened_at))
        .join(Assignment, StudyReading.assignment_id == Assignment.id)
        .where(Assignment.study_id == study_id)
    )
    return session.scalar(query)


def _require_unread(session: Session, study: Study) -> None:
    require_open_for_change(study)
    first = first_reading_at(session, study.id)
    if first is not None:
        raise StudyStateError(
            f"study {study.id} {study.name!r} has been read since {first:%Y-%m-%d %H:%M} UTC: "
            "it can only be extended (add readers or cases) or closed"
        )


def _locked(session: Session, study_id: int) -> Study:
    """The study, its row locked until the transaction ends (PostgreSQL; SQLite's writer lock
    already serialises), so a first reading cannot slip in while the design changes."""
    study = session.scalar(sa.select(Study).where(Study.id == study_id).with_for_update())
    return study if study is not None else get_study(session, study_id)


def _write_design(study: Study, design: StudyDesign) -> None:
    study.name = require_text(design.name, "study name", 128)
    study.description = str(design.description or "")
    study.task = require_text(design.task, "study task", 64)
    study.design = design.design
    study.washout_days = design.washout_days
    study.repeat_fraction = float(design.repeat_fraction)
    study.allow_revisions = bool(design.allow_revisions)
    if design.order_seed is not None:
        study.order_seed = design.order_seed
    study.arms = [
        StudyArm(position=i, name=arm.name, shows_prediction=bool(arm.shows_prediction), cam_method=arm.cam_method,
                 show_uncertainty=bool(arm.show_uncertainty))
        for i, arm in enumerate(design.arms)
    ]
    study.questions = [
        StudyQuestion(
            position=i, key=q.key, prompt=q.prompt.strip(), kind=q.kind, options=list(q.options),
            required=bool(q.required), arms=None if q.arms is None else list(q.arms),
            phases=None if q.phases is None else sorted(q.phases),
        )
        for i, q in enumerate(design.questions)
    ]
    planned = plan_sessions(design.design, len(design.arms), design.washout_days, repeat=design.repeat_fraction > 0)
    study.sessions = [
        StudySession(number=s.number, offset_days=s.offset_days, repeat=s.repeat, opens_on=_opens_on(study, s.offset_days))
        for s in planned
    ]


def _opens_on(study: Study, offset_days: int) -> date | None:
    return None if study.starts_on is None else study.starts_on + timedelta(days=offset_days)


def design_of(study: Study) -> StudyDesign:
    """The study's design as plain values (what the editor shows, or ``edit_study`` takes back)."""
    return StudyDesign(
        name=study.name,
        task=study.task,
        design=study.design,
        arms=tuple(ArmSpec(a.name, a.shows_prediction, a.cam_method, a.show_uncertainty) for a in study.arms),
        questions=tuple(
            QuestionSpec(q.key, q.prompt, q.kind, tuple(q.options), q.required,
                         None if q.arms is None else tuple(q.arms), None if q.phases is None else tuple(q.phases))
            for q in study.questions
        ),
        washout_days=study.washout_days,
        repeat_fraction=study.repeat_fraction,
        order_seed=study.order_seed,
        allow_revisions=study.allow_revisions,
        description=study.description,
    )


def _frozen_maps(session: Session, spec: StudyCaseSpec, design: StudyDesign) -> list[StudyCaseMap]:
    where = f"study case {spec.case_id}"
    needed = maps_needed(design)
    missing = sorted(needed - set(spec.explanation_ids))
    if missing:
        raise InvalidInput(f"{where}: no frozen map for {missing}, which an arm or a pairwise question shows")
    maps = []
    for method, explanation_id in sorted(spec.explanation_ids.items()):
        explanation = fetch(session, Explanation, explanation_id, f"{where}: explanation")
        if explanation.prediction_id != spec.prediction_id:
            raise InvalidInput(
                f"{where}: explanation {explanation_id} explains prediction {explanation.prediction_id}, "
                f"not the frozen prediction {spec.prediction_id}"
            )
        if explanation.method != method:
            raise InvalidInput(f"{where}: explanation {explanation_id} is a {explanation.method} map, not {method}")
        maps.append(StudyCaseMap(method=method, explanation_id=explanation_id))
    return maps


def _study_case(session: Session, spec: StudyCaseSpec, design: StudyDesign, pseudonym: str, index: int) -> StudyCase:
    where = f"study case {spec.case_id}"
    fetch(session, Case, spec.case_id, where)
    row = StudyCase(
        case_id=spec.case_id,
        pseudonym=pseudonym,
        design_index=index,
        ground_truth=None if spec.ground_truth is None
        else require_text(spec.ground_truth, f"{where} ground truth", 128),
        prediction_id=spec.prediction_id,
    )
    if spec.prediction_id is None:
        if prediction_needed(design) or spec.explanation_ids:
            raise InvalidInput(f"{where}: an arm shows the AI, but no frozen prediction was given")
        return row
    prediction = fetch(session, Prediction, spec.prediction_id, f"{where}: prediction")
    if prediction.case_id != spec.case_id:
        raise InvalidInput(f"{where}: prediction {prediction.id} is of case {prediction.case_id}")
    run = prediction.model_run
    row.bundle_name, row.bundle_version, row.bundle_sha256 = run.bundle_name, run.version, run.weights_sha256
    row.maps = _frozen_maps(session, spec, design)
    return row


def _pseudonyms(session: Session, study: Study, count: int, reserved: Sequence[str] = ()) -> list[str]:
    """``count`` new pseudonyms "S<study>-C<number>", numbers drawn at random (``secrets``) from
    a range ten times the case count, so they reveal neither the case nor the order added."""
    taken = set(session.scalars(sa.select(StudyCase.pseudonym).where(StudyCase.study_id == study.id)))
    taken.update(reserved)
    total = len(taken) + count
    digits = max(3, len(str(10 * total)))
    names: list[str] = []
    while len(names) < count:
        name = f"S{study.id}-C{1 + secrets.randbelow(10**digits - 1):0{digits}d}"
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _add_cases(
    session: Session, study: Study, specs: Sequence[StudyCaseSpec], keep: dict[int, str] | None = None
) -> list[StudyCase]:
    design = design_of(study)
    existing = {c.case_id for c in study.cases}
    ids = [spec.case_id for spec in specs]
    repeated = sorted({i for i in ids if ids.count(i) > 1} | (set(ids) & existing))
    if repeated:
        raise InvalidInput(f"study {study.name!r}: cases {repeated} are listed twice")
    keep = keep or {}
    new_names = _pseudonyms(session, study, sum(1 for spec in specs if spec.case_id not in keep), list(keep.values()))
    fresh = iter(new_names)
    first = len(study.cases)
    indices = case_design_indices(study.order_seed, first, len(specs))
    rows = [
        _study_case(session, spec, design, keep.get(spec.case_id) or next(fresh), index)
        for spec, index in zip(specs, indices)
    ]
    repeats = choose_repeats(study.order_seed, indices, study.repeat_fraction)
    for row in rows:
        row.repeat_read = row.design_index in repeats
    study.cases.extend(rows)
    session.flush()
    return rows


def _add_readers(session: Session, study: Study, reader_ids: Sequence[int]) -> list[StudyReader]:
    already = {r.reader_id for r in study.readers}
    repeated = sorted({i for i in reader_ids if list(reader_ids).count(i) > 1} | (set(reader_ids) & already))
    if repeated:
        raise InvalidInput(f"study {study.name!r}: readers {repeated} are listed twice")
    rows = []
    for offset, reader_id in enumerate(reader_ids):
        fetch(session, Reader, reader_id, "reader")
        rows.append(StudyReader(reader_id=reader_id, design_index=len(study.readers) + offset))
    study.readers.extend(rows)
    session.flush()
    return rows


def _assign(session: Session, study: Study, readers: Sequence[StudyReader], cases: Sequence[StudyCase]) -> int:
    """Append the design's assignments of ``cases`` for ``readers`` after their current orders."""
    arms = list(study.arms)
    sessions = {s.number: s for s in study.sessions}
    by_index = {c.design_index: c for c in cases}
    repeats = [c.design_index for c in cases if c.repeat_read]
    next_free: dict[tuple[int, int], int] = defaultdict(int)
    query = (
        sa.select(Assignment.reader_id, StudySession.number, sa.func.max(Assignment.position))
        .join(StudySession, Assignment.session_id == StudySession.id)
        .where(Assignment.study_id == study.id)
        .group_by(Assignment.reader_id, StudySession.number)
    )
    for reader_id, number, last in session.execute(query):
        next_free[(reader_id, number)] = last + 1
    rows = []
    for reader in readers:
        starts = {number: next_free[(reader.reader_id, number)] for number in sessions}
        for read in plan_reader(study.design, study.order_seed, reader.design_index, sorted(by_index), len(arms),
                                repeat_cases=repeats, start_positions=starts):
            rows.append(
                Assignment(
                    study_id=study.id, reader_id=reader.reader_id, study_case_id=by_index[read.case].id,
                    arm_id=arms[read.arm].id, session_id=sessions[read.session].id, position=read.position,
                    phases=read.phases, repeat=read.repeat, token=secrets.token_urlsafe(TOKEN_BYTES)[:32],
                )
            )
    session.add_all(rows)
    session.flush()
    return len(rows)


def create_study(
    session: Session,
    requester_id: int,
    design: StudyDesign,
    cases: Sequence[StudyCaseSpec],
    reader_ids: Sequence[int] = (),
) -> Study:
    """Create a draft study with its cases (pseudonyms drawn, AI output frozen), readers and
    their assignments.

    Args:
        session: the caller's session.
        requester_id: the coordinator (or admin) creating it.
        design: the design; ``order_seed=None`` draws one.
        cases: the cases with their ground truth and frozen prediction and maps.
        reader_ids: the readers' accounts (more can be added later).

    Returns:
        The study, with ids.

    Raises:
        NotAllowed: the requester may not create studies.
        InvalidInput: a broken design, a duplicate name, case or reader, an unknown case, a
            missing or mismatched frozen output.
    """
    coordinator = require_permission(session, requester_id, "study.create")
    check_design(design)
    if session.scalar(sa.select(Study.id).where(Study.name == design.name.strip())) is not None:
        raise InvalidInput(f"a study named {design.name.strip()!r} already exists")
    study = Study(created_by_id=coordinator.id, status="draft", order_seed=secrets.randbelow(2**31))
    _write_design(study, design)
    session.add(study)
    session.flush()
    study_cases = _add_cases(session, study, cases)
    readers = _add_readers(session, study, reader_ids)
    count = _assign(session, study, readers, study_cases)
    record(
        session, actor=coordinator.username, action="study.created", entity="studies", entity_id=study.id,
        detail={"design": study.design, "arms": len(study.arms), "questions": len(study.questions),
                "cases": len(study_cases), "readers": len(readers), "assignments": count},
    )
    return study


def edit_study(
    session: Session,
    requester_id: int,
    study_id: int,
    *,
    design: StudyDesign | None = None,
    cases: Sequence[StudyCaseSpec] | None = None,
    reader_ids: Sequence[int] | None = None,
) -> Study:
    """Replace a study's design, cases or readers (those given), before any case was opened.

    Assignments are rebuilt from the new design; cases kept keep their pseudonyms.

    Raises:
        NotAllowed: the requester may not edit studies.
        StudyStateError: the study is closed or has been read.
        InvalidInput: as ``create_study``.
    """
    coordinator = require_permission(session, requester_id, "study.edit")
    study = _locked(session, study_id)
    _require_unread(session, study)
    new_design = check_design(design) if design is not None else design_of(study)
    clash = session.scalar(sa.select(Study.id).where(Study.name == new_design.name.strip(), Study.id != study.id))
    if clash is not None:
        raise InvalidInput(f"a study named {new_design.name.strip()!r} already exists")
    kept_specs = cases if cases is not None else [
        StudyCaseSpec(c.case_id, c.ground_truth, c.prediction_id, {m.method: m.explanation_id for m in c.maps})
        for c in sorted(study.cases, key=lambda c: c.id)
    ]
    kept_pseudonyms = {c.case_id: c.pseudonym for c in study.cases}
    readers = list(reader_ids) if reader_ids is not None else [r.reader_id for r in study.readers]
    session.execute(sa.delete(Assignment).where(Assignment.study_id == study.id))
    study.cases.clear()
    study.readers.clear()
    study.arms.clear()
    study.questions.clear()
    study.sessions.clear()
    session.flush()
    _write_design(study, new_design)
    session.flush()
    study_cases = _add_cases(session, study, kept_specs, keep=kept_pseudonyms)
    count = _assign(session, study, _add_readers(session, study, readers), study_cases)
    changed = [name for name, value in (("design", design), ("cases", cases), ("readers", reader_ids)) if value is not None]
    record(
        session, actor=coordinator.username, action="study.edited", entity="studies", entity_id=study.id,
        detail={"changed": changed, "cases": len(study_cases), "readers": len(readers), "assignments": count},
    )
    return study


def add_study_readers(session: Session, requester_id: int, study_id: int, reader_ids: Sequence[int]) -> int:
    """Add readers to a study (draft, open, or already read); each gets the design's full set of
    assignments in their own order. Existing assignments do not move.

    Returns:
        How many assignments were added.

    Raises:
        NotAllowed: the requester may not edit studies.
        StudyStateError: the study is closed.
        InvalidInput: a reader already in the study or listed twice; NotFound: no such account.
    """
    coordinator = require_permission(session, requester_id, "study.edit")
    study = _locked(session, study_id)
    require_open_for_change(study)
    count = _assign(session, study, _add_readers(session, study, reader_ids), list(study.cases))
    record(
        session, actor=coordinator.username, action="study.readers_added", entity="studies", entity_id=study.id,
        detail={"reader_ids": list(reader_ids), "assignments": count},
    )
    return count


def add_study_cases(session: Session, requester_id: int, study_id: int, cases: Sequence[StudyCaseSpec]) -> list[str]:
    """Add cases to a study: each reader's new assignments come after their existing ones, in a
    seeded order of their own; nothing already assigned moves.

    Returns:
        The new cases' pseudonyms, in the order given.

    Raises:
        NotAllowed, StudyStateError, InvalidInput: as ``add_study_readers`` and ``create_study``.
    """
    coordinator = require_permission(session, requester_id, "study.edit")
    study = _locked(session, study_id)
    require_open_for_change(study)
    rows = _add_cases(session, study, cases)
    count = _assign(session, study, list(study.readers), rows)
    record(
        session, actor=coordinator.username, action="study.cases_added", entity="studies", entity_id=study.id,
        detail={"cases": len(rows), "assignments": count},
    )
    return [row.pseudonym for row in rows]


def open_study(
    session: Session, requester_id: int, study_id: int, *, starts_on: date | None = None, now: datetime | None = None
) -> Study:
    """Open a draft study to its readers; session ``s`` opens ``offset_days`` after ``starts_on``.

    Args:
        starts_on: the first session's date; today (UTC) by default.

    Raises:
        NotAllowed: the requester may not edit studies.
        StudyStateError: the study is not a draft, or has no readers or cases.
    """
    coordinator = require_permission(session, requester_id, "study.edit")
    study = _locked(session, study_id)
    if study.status != "draft":
        raise StudyStateError(f"study {study.id} {study.name!r} is {study.status}, not a draft")
    if not study.readers or not study.cases:
        raise StudyStateError(
            f"study {study.id} {study.name!r} has {len(study.readers)} readers and {len(study.cases)} cases; "
            "it needs at least one of each to open"
        )
    moment = now or utcnow()
    study.starts_on = starts_on or moment.date()
    for row in study.sessions:
        row.opens_on = _opens_on(study, row.offset_days)
    study.status, study.opened_at = "open", moment
    record(
        session, actor=coordinator.username, action="study.opened", entity="studies", entity_id=study.id,
        detail={"starts_on": study.starts_on.isoformat(), "sessions": [s.opens_on.isoformat() for s in study.sessions]},
    )
    return study


def close_study(session: Session, requester_id: int, study_id: int, *, now: datetime | None = None) -> Study:
    """Close a study: from now on it is read-only (answers, edits and extensions are refused).

    Raises:
        NotAllowed: the requester may not close studies.
        StudyStateError: it is already closed.
    """
    coordinator = require_permission(session, requester_id, "study.close")
    study = _locked(session, study_id)
    require_open_for_change(study)
    study.status, study.closed_at = "closed", now or utcnow()
    record(session, actor=coordinator.username, action="study.closed", entity="studies", entity_id=study.id,
           detail={"was": "open" if study.opened_at else "draft"})
    return study


def list_studies(session: Session, requester_id: int) -> list[StudySummary]:
    """Every study, newest first, for a coordinator's or admin's screen.

    Raises:
        NotAllowed: the requester may not see study progress.
    """
    require_permission(session, requester_id, "study.progress")
    summaries = []
    for study in session.scalars(sa.select(Study).order_by(Study.id.desc())):
        summaries.append(StudySummary(study.id, study.name, study.task, study.design, study.status,
                                      len(study.readers), len(study.cases), study.created_by.username))
    return summaries
