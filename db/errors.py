"""Errors raised by the database layer, each with one line naming the thing and the problem."""

from __future__ import annotations


class DbError(Exception):
    """Base class of every error raised on purpose by ``db``."""


class InvalidInput(DbError, ValueError):
    """A value handed to a data function breaks a rule of the domain (e.g. confidence 7)."""


class NotFound(DbError, LookupError):
    """A row referred to by id does not exist."""


class MigrationError(DbError):
    """The database schema cannot be brought to the revision this program needs."""


class BlobMissing(DbError, FileNotFoundError):
    """A content-addressed file named in the database is not in the blob store."""


class BlobCorrupted(DbError):
    """A content-addressed file's bytes no longer hash to the sha256 recorded for it."""


class NotAllowed(DbError, PermissionError):
    """The account may not do or see this (its role, the study's blinding, or its step)."""


class StudyStateError(DbError):
    """The study's state forbids the change (closed, already being read, not yet open)."""
