"""Cases: register an opened image set once, find it again by its content hash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db._checks import plain, require_sha256, require_text
from db._rows import fetch, insert_or_fetch
from db.errors import InvalidInput
from db.models import Case

CASE_KINDS = ("volume", "image", "clip", "slide")


def get_or_create_case(
    session: Session,
    *,
    content_hash: str,
    source: str,
    modality: str,
    kind: str,
    shape: Sequence[int],
    task: str,
    header: Mapping[str, Any] | None = None,
) -> Case:
    """The case with this content hash, registered first if it is new.

    An existing case is returned as stored: opening the same pixels from another path does not
    change its source or header.

    Args:
        session: the caller's session (the caller commits).
        content_hash: ``ImageVolume.content_hash`` (sha256 hex).
        source: where the image was read from.
        modality: DICOM modality code.
        kind: one of ``CASE_KINDS``.
        shape: the array shape, e.g. ``(C, N, H, W)``.
        task: the clinical task.
        header: the PHI-free header summary (must be JSON-serialisable).

    Returns:
        The case, with an id.

    Raises:
        InvalidInput: a malformed hash, an unknown kind, an empty source or task, a bad shape.
    """
    require_sha256(content_hash, "case content_hash")
    existing = session.scalar(sa.select(Case).where(Case.content_hash == content_hash))
    if existing is not None:
        return existing
    if kind not in CASE_KINDS:
        raise InvalidInput(f"case {content_hash[:12]}: kind {kind!r} is not one of {CASE_KINDS}")
    dims = [int(n) for n in plain(shape)]
    if not dims or any(n <= 0 for n in dims):
        raise InvalidInput(f"case {content_hash[:12]}: shape {dims} must be positive sizes")
    case = Case(
        content_hash=content_hash,
        source=require_text(str(source), "case source", 4096),
        modality=require_text(modality, "case modality", 16),
        kind=kind,
        shape=dims,
        task=require_text(task, "case task", 64),
        header=dict(header or {}),
    )
    return insert_or_fetch(session, case, sa.select(Case).where(Case.content_hash == content_hash))


def get_case(session: Session, case_id: int) -> Case:
    """The case with this id.

    Raises:
        NotFound: no such case.
    """
    return fetch(session, Case, case_id, "case")


def list_cases(session: Session, *, task: str | None = None) -> list[Case]:
    """Every registered case (of one task, if given), oldest first."""
    query = sa.select(Case).order_by(Case.id)
    if task is not None:
        query = query.where(Case.task == task)
    return list(session.scalars(query))
