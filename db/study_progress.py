"""What a coordinator sees of a running study: progress without answers, who is behind, the key.

``study_status`` returns plain JSON-ready values (``salience study status ID`` prints them).
It counts readings per reader, arm and session and never includes an answer, so a coordinator
cannot look at results before the study is closed. The key (pseudonym to case and ground
truth) is a separate, audited call.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db._study_access import is_complete, session_gates
from db.audit import record
from db.base import utcnow
from db.models import Assignment, StudyCase
from db.permissions import require_permission
from db.studies import first_reading_at, get_study


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


def _last_activity(assignments: list[Assignment]) -> datetime | None:
    stamps = [
        stamp
        for a in assignments
        for r in a.readings
        for stamp in (r.opened_at, r.closed_at, r.submitted_at, r.open_since)
        if stamp is not None
    ]
    return max(stamps, default=None)


def _counts(assignments: list[Assignment]) -> dict[str, int]:
    done = sum(map(is_complete, assignments))
    started = sum(1 for a in assignments if a.readings and not is_complete(a))
    return {"assigned": len(assignments), "submitted": done, "in_progress": started,
            "not_started": len(assignments) - done - started}


def _reader_progress(study: Any, username: str, mine: list[Assignment], now: datetime) -> dict[str, Any]:
    gates = session_gates(study, mine, now)
    last = _last_activity(mine)
    return {
        "reader": username,
        **_counts(mine),
        "by_arm": {arm.name: _counts([a for a in mine if a.arm_id == arm.id]) for arm in study.arms},
        "by_session": {
            str(s.number): {**_counts([a for a in mine if a.session_id == s.id]), "why_not_open": gates.get(s.number)}
            for s in study.sessions
        },
        "last_activity": _iso(last),
        "days_idle": None if last is None else round((now - last).total_seconds() / 86400, 1),
    }


def study_status(
    session: Session, requester_id: int, study_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """Progress of a study per reader, arm and session, and who is behind; no answers.

    "Behind" lists the readers who have submitted fewer cases than the median reader, fewest
    first, with their idle time.

    Raises:
        NotAllowed: the requester may not see study progress.
        NotFound: no such study.
    """
    require_permission(session, requester_id, "study.progress")
    moment = now or utcnow()
    study = get_study(session, study_id)
    query = (
        sa.select(Assignment)
        .where(Assignment.study_id == study.id)
        .options(selectinload(Assignment.readings), selectinload(Assignment.session), selectinload(Assignment.arm))
    )
    assignments = list(session.scalars(query))
    readers = [
        _reader_progress(study, member.reader.username, sorted(
            (a for a in assignments if a.reader_id == member.reader_id), key=lambda a: (a.session.number, a.position)
        ), moment)
        for member in study.readers
    ]
    median = statistics.median([r["submitted"] for r in readers]) if readers else 0
    behind = sorted((r for r in readers if r["submitted"] < median), key=lambda r: (r["submitted"], r["reader"]))
    return {
        "study": {
            "id": study.id, "name": study.name, "task": study.task, "design": study.design, "status": study.status,
            "washout_days": study.washout_days, "repeat_fraction": study.repeat_fraction,
            "allow_revisions": study.allow_revisions, "created_by": study.created_by.username,
            "created_at": _iso(study.created_at), "starts_on": _iso(study.starts_on), "opened_at": _iso(study.opened_at),
            "closed_at": _iso(study.closed_at), "first_reading_at": _iso(first_reading_at(session, study.id)),
        },
        "arms": [{"name": a.name, "shows_prediction": a.shows_prediction, "cam_method": a.cam_method,
                  "show_uncertainty": a.show_uncertainty} for a in study.arms],
        "sessions": [{"number": s.number, "opens_on": _iso(s.opens_on), "repeat": s.repeat} for s in study.sessions],
        "cases": len(study.cases),
        "totals": _counts(assignments),
        "readers": readers,
        "behind": [
            {"reader": r["reader"], "submitted": r["submitted"], "assigned": r["assigned"], "median_submitted": median,
             "last_activity": r["last_activity"], "days_idle": r["days_idle"]}
            for r in behind
        ],
    }


def study_key(session: Session, requester_id: int, study_id: int) -> list[dict[str, Any]]:
    """The study key: each pseudonym's case, source, ground truth and frozen model; audited.

    Raises:
        NotAllowed: the requester may not see the key.
    """
    coordinator = require_permission(session, requester_id, "study.key")
    study = get_study(session, study_id)
    rows = session.scalars(
        sa.select(StudyCase).where(StudyCase.study_id == study.id).options(selectinload(StudyCase.case))
        .order_by(StudyCase.pseudonym)
    )
    key = [
        {"pseudonym": c.pseudonym, "case_id": c.case_id, "source": c.case.source, "content_hash": c.case.content_hash,
         "ground_truth": c.ground_truth, "repeat_read": c.repeat_read, "prediction_id": c.prediction_id,
         "bundle_name": c.bundle_name, "bundle_version": c.bundle_version, "bundle_sha256": c.bundle_sha256}
        for c in rows
    ]
    record(session, actor=coordinator.username, action="study.key_viewed", entity="studies", entity_id=study.id,
           detail={"cases": len(key)})
    return key

