"""AuditEvent: the append-only record of who did what to which row."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, JsonDict, UtcDateTime, intpk, short_text, utcnow


class AuditEvent(Base):
    """One action, recorded once and never changed.

    Append-only is enforced by the database, not only by this code: migration 0001 creates
    triggers that abort any UPDATE or DELETE on ``audit_events`` (SQLite ``RAISE(ABORT)``,
    PostgreSQL a PL/pgSQL function raising an exception). A later migration that rebuilds this
    table in batch mode must create the triggers again.

    ``actor`` is a username (or "system"), not a foreign key, so that no account change can ever
    need to touch an audit row.

    Attributes:
        actor: who acted.
        action: what happened, dotted, e.g. "reading.saved", "readings.exported".
        entity: the table acted on, e.g. "readings".
        entity_id: the row's id, when there is one.
        detail: what else matters (ids, counts); never PHI.
        at: when, UTC.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_entity_entity_id", "entity", "entity_id"),)

    id: Mapped[intpk]
    actor: Mapped[short_text]
    action: Mapped[short_text]
    entity: Mapped[short_text]
    entity_id: Mapped[int | None]
    detail: Mapped[JsonDict]
    at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utcnow, server_default=sa.func.current_timestamp(), index=True
    )

    def __repr__(self) -> str:
        return f"AuditEvent(id={self.id}, actor={self.actor!r}, action={self.action!r}, entity={self.entity!r}:{self.entity_id})"
