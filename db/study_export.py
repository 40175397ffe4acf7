"""A study's readings as long-format records for the statistics and the exports (coordinators
and admins only; a study still open only by an admin; every export audited).

One record per reader x assignment x phase x question asked there, for every phase the reader
opened: the first answer (version 1) and the final one (latest version), their timestamps, the
time on the case, and exactly which prediction and maps were shown (and on which side a
pairwise comparison put each method), whether the prediction's uncertainty was shown with it
(``shown_uncertainty``: measured, and the arm does not hide it) and whether the rule frozen with it flagged the case answer uncertain
(``shown_ai_uncertain``); both are None where the reading showed no AI output, and the flag is
None too where the uncertainty was not measured. Cases appear under their pseudonyms with the ground
truth; the key to real cases is ``db.study_progress.study_key``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db.audit import record
from db.errors import NotAllowed
from db.models import Assignment, Study, StudyCase, StudyReading
from db.permissions import allowed, require_permission
from db.study_spec import question_visible
from db.studies import get_study
from db.uncertainty import case_columns


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


def _pairwise(question: Any, order: dict[str, list[str]], final: Any) -> dict[str, Any]:
    if question.kind != "pairwise_explanation" or question.key not in order:
        return {"pairwise_left": None, "pairwise_right": None, "pairwise_preferred": None}
    left, right = order[question.key]
    preferred = {"left": left, "right": right, "equal": "equal"}.get(final) if final is not None else None
    return {"pairwise_left": left, "pairwise_right": right, "pairwise_preferred": preferred}


def _uncertainty(arm: Any, reading: StudyReading) -> dict[str, Any]:
    if reading.shown_prediction is None:
        return {"shown_uncertainty": None, "shown_ai_uncertain": None}
    record = reading.shown_prediction.uncertainty
    return {"shown_uncertainty": bool(arm.show_uncertainty) and record is not None,
            "shown_ai_uncertain": case_columns(record)["flagged_uncertain"]}


def _records(
    study: Study, assignment: Assignment, usernames: dict[int, str], predicted: dict[int, str]
) -> list[dict[str, Any]]:
    rows = []
    case = assignment.study_case
    for phase in range(1, assignment.phases + 1):
        versions = sorted((r for r in assignment.readings if r.phase == phase), key=lambda r: r.version)
        if not versions:
            continue
        first, final = versions[0], versions[-1]
        first_answers = {a.question_id: a for a in first.answers}
        final_answers = {a.question_id: a for a in final.answers}
        for question in study.questions:
            if not question_visible(question, assignment.arm.name, phase):
                continue
            given, kept = first_answers.get(question.id), final_answers.get(question.id)
            rows.append({
                "study_id": study.id, "study": study.name, "design": study.design,
                "reader": usernames[assignment.reader_id], "case": case.pseudonym, "ground_truth": case.ground_truth,
                "arm": assignment.arm.name, "shows_prediction": assignment.arm.shows_prediction,
                "cam_method": assignment.arm.cam_method, "session": assignment.session.number,
                "repeat": assignment.repeat, "position": assignment.position, "phase": phase,
                "question": question.key, "question_kind": question.kind,
                "first_answer": None if given is None else given.value,
                "first_answer_given_at": None if given is None else _iso(given.first_given_at),
                "final_answer": None if kept is None else kept.value,
                "final_answer_at": None if kept is None else _iso(kept.updated_at),
                "versions": len(versions), "submitted": final.submitted_at is not None,
                "opened_at": _iso(first.opened_at), "first_answer_at": _iso(first.first_answer_at),
                "submitted_at": _iso(first.submitted_at), "final_submitted_at": _iso(final.submitted_at),
                "seconds_to_first_answer": None if first.first_answer_at is None
                else (first.first_answer_at - first.opened_at).total_seconds(),
                "seconds_open": sum(r.seconds_open for r in versions),
                "shown_prediction_id": final.shown_prediction_id,
                "shown_predicted_class": predicted.get(final.shown_prediction_id) if final.shown_prediction_id else None,
                "shown_explanation_ids": dict(final.shown_explanation_ids),
                **_uncertainty(assignment.arm, final),
                **_pairwise(question, final.pairwise_order, None if kept is None else kept.value),
                "bundle_name": case.bundle_name if final.shown_prediction_id else None,
                "bundle_version": case.bundle_version if final.shown_prediction_id else None,
                "bundle_sha256": case.bundle_sha256 if final.shown_prediction_id else None,
            })
    return rows


def export_study_records(session: Session, requester_id: int, study_id: int) -> list[dict[str, Any]]:
    """Every reading of a study as long-format, JSON-ready records, by reader, session and position.

    Raises:
        NotAllowed: the requester may not export, or the study is not closed and the requester
            is not an admin.
        NotFound: no such study.
    """
    requester = require_permission(session, requester_id, "study.export")
    study = get_study(session, study_id)
    if study.status != "closed" and not allowed(requester.role, "study.export_open"):
        raise NotAllowed(f"study {study.name!r} is {study.status}: it can be exported once closed (or by an admin)")
    query = (
        sa.select(Assignment)
        .where(Assignment.study_id == study.id)
        .options(
            selectinload(Assignment.readings).selectinload(StudyReading.answers),
            selectinload(Assignment.readings).selectinload(StudyReading.shown_prediction),
            selectinload(Assignment.study_case).selectinload(StudyCase.maps),
            selectinload(Assignment.arm), selectinload(Assignment.session), selectinload(Assignment.reader),
        )
    )
    assignments = sorted(session.scalars(query), key=lambda a: (a.reader.username, a.session.number, a.position))
    usernames = {a.reader_id: a.reader.username for a in assignments}
    predicted = {r.shown_prediction_id: r.shown_prediction.predicted_class
                 for a in assignments for r in a.readings if r.shown_prediction is not None}
    records = [row for assignment in assignments for row in _records(study, assignment, usernames, predicted)]
    record(session, actor=requester.username, action="study.exported", entity="studies", entity_id=study.id,
           detail={"records": len(records), "status": study.status})
    return records
