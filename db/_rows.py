"""Insert a row with a unique key, tolerating another session that inserted it first."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import NotFound

Row = TypeVar("Row")


def insert_or_fetch(session: Session, row: Row, existing: Select[tuple[Row]]) -> Row:
    """Add ``row`` inside a savepoint; if its unique key was taken meanwhile, return the holder.

    Args:
        session: the caller's session; only the savepoint is rolled back on a clash.
        row: the new, unsaved row.
        existing: the query that finds the row holding the same unique key.

    Returns:
        ``row`` (now flushed, with an id), or the row another session stored first.

    Raises:
        IntegrityError: the insert failed for another reason (e.g. a CHECK constraint).
    """
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        holder = session.scalars(existing).one_or_none()
        if holder is None:
            raise
        return holder
    return row


def fetch(session: Session, model: type[Row], row_id: int, what: str) -> Row:
    """The row of ``model`` with this id.

    Args:
        what: how the row is named in the error, e.g. "case".

    Raises:
        NotFound: no such row.
    """
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{what} {row_id} does not exist")
    return row
