"""Reader: an account that reads cases, coordinates studies or administers the workstation."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at, intpk, label_text, short_text

ROLES = ("reader", "coordinator", "admin")


class Reader(Base):
    """An account.

    Attributes:
        username: unique login name.
        display_name: how the account is shown.
        role: "reader" (sees only their own readings), "coordinator" (runs studies, exports
            readings across readers) or "admin" (manages accounts).
        password_hash: ``scrypt$...`` from ``db.readers.hash_password``, or None for an account
            that signs in without a password (a single-user workstation).
    """

    __tablename__ = "readers"
    __table_args__ = (sa.CheckConstraint("role IN ('reader', 'coordinator', 'admin')", name="role"),)

    id: Mapped[intpk]
    username: Mapped[short_text] = mapped_column(unique=True)
    display_name: Mapped[label_text]
    role: Mapped[str] = mapped_column(sa.String(16), default="reader")
    password_hash: Mapped[str | None] = mapped_column(sa.String(256))
    created_at: Mapped[created_at]

    def __repr__(self) -> str:
        return f"Reader(id={self.id}, username={self.username!r}, role={self.role!r})"
