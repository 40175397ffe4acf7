"""The one query that reads across readers: a coordinator's export of readings.

Kept apart from ``db.readings`` so that a reader's screen never imports it by accident. It checks
the requester's role and records every export in the audit log.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from db.audit import record
from db.models import Reading
from db.readers import require_role

EXPORT_ROLES = ("coordinator",)


def export_readings(
    session: Session, requester_id: int, *, case_ids: Collection[int] | None = None
) -> list[Reading]:
    """Every reader's readings (of some cases, if given), by case, reader and time.

    Readings come with their reader, case and annotations loaded, usable after the session
    closes.

    Args:
        session: the caller's session.
        requester_id: the account asking; must be a coordinator.
        case_ids: only these cases, if given.

    Raises:
        PermissionError: the requester is not a coordinator.
        NotFound: no such requester.
    """
    coordinator = require_role(session, requester_id, EXPORT_ROLES)
    query = (
        sa.select(Reading)
        .options(
            selectinload(Reading.annotations),
            selectinload(Reading.reader),
            selectinload(Reading.case),
        )
        .order_by(Reading.case_id, Reading.reader_id, Reading.created_at, Reading.id)
    )
    if case_ids is not None:
        query = query.where(Reading.case_id.in_(list(case_ids)))
    readings = list(session.scalars(query))
    record(
        session,
        actor=coordinator.username,
        action="readings.exported",
        entity="readings",
        detail={"count": len(readings), "case_ids": sorted(case_ids) if case_ids is not None else None},
    )
    return readings
