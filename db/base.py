"""Declarative base, constraint naming and the column kinds shared by every model.

Constraint names follow ``NAMING_CONVENTION`` so that Alembic batch migrations on SQLite can
find and alter them by name, and so PostgreSQL and SQLite carry the same names.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zones: values are stored as naive UTC text and given ``timezone.utc``
    again on the way out. PostgreSQL stores ``timestamp with time zone``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where a UTC time is stored")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JsonDict = dict[str, Any]
JsonList = list[Any]

intpk = Annotated[int, mapped_column(primary_key=True)]
created_at = Annotated[
    datetime,
    mapped_column(UtcDateTime(), default=utcnow, server_default=sa.func.current_timestamp()),
]
sha256_hex = Annotated[str, mapped_column(sa.String(64))]
short_text = Annotated[str, mapped_column(sa.String(64))]
label_text = Annotated[str, mapped_column(sa.String(128))]


class Base(DeclarativeBase):
    """Every Salience table derives from this; ``Base.metadata`` is what migrations target."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        JsonDict: sa.JSON(),
        JsonList: sa.JSON(),
    }
