"""The database's and the engine's refusals as the one-line ``SalienceError`` a user sees."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from db.errors import DbError
from engine.errors import SalienceError


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the database's refusals into the one-line errors the window shows."""
    try:
        yield
    except (DbError, PermissionError) as exc:
        raise SalienceError(str(exc)) from exc


@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's refusals of an input (unknown method, class or item) into one-line errors."""
    try:
        yield
    except ValueError as exc:
        raise SalienceError(str(exc)) from exc
