"""The audit log: record who did what; read it back only as a coordinator or admin.

Rows are append-only at the database level (triggers created by migration 0001 abort any UPDATE
or DELETE on ``audit_events``), so this module has no function that changes or removes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db._checks import plain, require_text
from db.models import AuditEvent
from db.readers import require_role

AUDIT_READER_ROLES = ("coordinator", "admin")


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the audit log (written with the caller's transaction).

    Args:
        session: the caller's session; the event commits or rolls back with the action itself.
        actor: the username who acted, or "system".
        action: dotted verb, e.g. "reading.saved".
        entity: the table acted on, e.g. "readings".
        entity_id: the row acted on, if any.
        detail: JSON-serialisable facts (ids, counts); never PHI.

    Returns:
        The event, with an id.
    """
    event = AuditEvent(
        actor=require_text(actor, "audit actor", 64),
        action=require_text(action, "audit action", 64),
        entity=require_text(entity, "audit entity", 64),
        entity_id=entity_id,
        detail={str(key): plain(value) for key, value in (detail or {}).items()},
    )
    session.add(event)
    session.flush()
    return event


def audit_trail(
    session: Session, requester_id: int, *, entity: str | None = None, entity_id: int | None = None
) -> list[AuditEvent]:
    """Audit events, oldest first, optionally of one entity or row; coordinators and admins only.

    Raises:
        PermissionError: the requester is a reader.
        NotFound: no such requester.
    """
    require_role(session, requester_id, AUDIT_READER_ROLES)
    query = sa.select(AuditEvent).order_by(AuditEvent.id)
    if entity is not None:
        query = query.where(AuditEvent.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEvent.entity_id == entity_id)
    return list(session.scalars(query))
