"""Readings: a reader saves an answer on a case, and sees only their own answers again.

Blinding is a rule of this module: every query here is scoped to one reader. Reading across
readers is only possible through ``db.export.export_readings``, which checks the role.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db._checks import require_finite, require_text
from db._rows import fetch
from db.annotations import AnnotationLike, build_annotation
from db.audit import record
from db.base import utcnow
from db.errors import InvalidInput
from db.models import Case, Prediction, Reading
from db.readers import get_reader

CONFIDENCE_RANGE = range(1, 6)


def save_reading(
    session: Session,
    reader_id: int,
    case_id: int,
    diagnosis: str,
    confidence: int,
    comment: str = "",
    annotations: Iterable[AnnotationLike] = (),
    prediction_id: int | None = None,
    seconds_on_case: float = 0.0,
) -> Reading:
    """Store a reader's answer on a case, with its annotations, and audit it.

    The answer is locked when saved (``first_answer_locked_at``): a later change of mind is a
    new reading, never an edit.

    Args:
        session: the caller's session; the reading and its audit event commit together.
        reader_id: who read.
        case_id: what they read.
        diagnosis: their answer.
        confidence: 1 (guess) to 5 (certain).
        comment: free text.
        annotations: points, boxes and polygons drawn (``NewAnnotation`` or any object with
            ``kind``, ``slice_index``, ``points``, ``label``).
        prediction_id: the model output they were shown, if any; must be of this case.
        seconds_on_case: time the case was open, >= 0.

    Returns:
        The reading, with id and annotations; usable after the session closes.

    Raises:
        NotFound: no such reader, case or prediction.
        InvalidInput: confidence outside 1-5, an empty diagnosis, negative time, a prediction
            of another case, or a malformed annotation.
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int) or confidence not in CONFIDENCE_RANGE:
        raise InvalidInput(f"reading of case {case_id}: confidence {confidence!r} must be an integer 1-5")
    seconds = require_finite(seconds_on_case, "seconds_on_case")
    if seconds < 0:
        raise InvalidInput(f"reading of case {case_id}: seconds_on_case {seconds} is negative")
    reader = get_reader(session, reader_id)
    case = fetch(session, Case, case_id, "case")
    if prediction_id is not None:
        prediction = fetch(session, Prediction, prediction_id, "prediction")
        if prediction.case_id != case_id:
            raise InvalidInput(f"prediction {prediction_id} is of case {prediction.case_id}, not case {case_id}")
    rows = [build_annotation(draft, case.shape, position) for position, draft in enumerate(annotations)]
    reading = Reading(
        reader_id=reader.id,
        case_id=case.id,
        prediction_id=prediction_id,
        diagnosis=require_text(diagnosis, f"reading of case {case_id}: diagnosis", 128),
        confidence=confidence,
        comment=str(comment or ""),
        seconds_on_case=seconds,
        first_answer_locked_at=utcnow(),
        annotations=rows,
    )
    session.add(reading)
    session.flush()
    record(
        session,
        actor=reader.username,
        action="reading.saved",
        entity="readings",
        entity_id=reading.id,
        detail={"case_id": case.id, "prediction_id": prediction_id, "annotations": len(rows)},
    )
    return reading


def sources_read_by(session: Session, reader_id: int) -> set[str]:
    """The sources of the cases this reader has read (for marking their worklist)."""
    query = sa.select(Case.source).join(Reading, Reading.case_id == Case.id).where(Reading.reader_id == reader_id)
    return set(session.scalars(query.distinct()))


def read_case_ids(session: Session, reader_id: int) -> set[int]:
    """The ids of the cases this reader has read."""
    query = sa.select(Reading.case_id).where(Reading.reader_id == reader_id)
    return set(session.scalars(query.distinct()))


def readings_for_reader(session: Session, reader_id: int, case_id: int | None = None) -> list[Reading]:
    """One reader's own readings (of one case, if given), newest first, with annotations.

    Never returns another reader's readings: this is the only reading query a reader's screen
    may use.
    """
    query = (
        sa.select(Reading)
        .where(Reading.reader_id == reader_id)
        .options(selectinload(Reading.annotations))
        .order_by(Reading.created_at.desc(), Reading.id.desc())
    )
    if case_id is not None:
        query = query.where(Reading.case_id == case_id)
    return list(session.scalars(query))
