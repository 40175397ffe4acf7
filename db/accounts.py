"""Accounts as the window and the command line use them: create, sign in, change a password.

Every sign-in, successful or not, is written to the audit log with the caller's transaction;
``sign_in`` therefore returns None on failure instead of raising, so the caller commits the
failure's record too. Passwords are hashed by ``db.readers`` (scrypt).

``requester_id=None`` means the command line run by whoever holds the database (recorded as
"system"); the window always passes the signed-in account.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db._checks import require_text
from db.audit import record
from db.errors import InvalidInput, NotAllowed
from db.models import ROLES, AuditEvent, Reader
from db.permissions import require_permission
from db.readers import authenticate, get_reader, set_password, verify_password

SYSTEM_ACTOR = "system"
SIGNED_IN = "account.signed_in"


@dataclass(frozen=True)
class Account:
    """An account as shown on the sign-in screen (no hash)."""

    id: int
    username: str
    display_name: str
    role: str
    has_password: bool


def _actor(session: Session, requester_id: int | None, permission: str) -> str:
    if requester_id is None:
        return SYSTEM_ACTOR
    return require_permission(session, requester_id, permission).username


def create_account(
    session: Session,
    requester_id: int | None,
    *,
    username: str,
    role: str,
    password: str | None = None,
    display_name: str | None = None,
) -> Reader:
    """Create an account (an administrator, or the command line, creates accounts).

    Args:
        session: the caller's session.
        requester_id: the administrator creating it, or None for the command line.
        username: unique login name.
        role: "reader", "coordinator" or "admin".
        password: its password (at least 8 characters), or None for an account that signs in
            without one where the site allows it.
        display_name: how it is shown; the username by default.

    Raises:
        NotAllowed: the requester is not an administrator.
        InvalidInput: the username exists, an unknown role, a short password.
    """
    actor = _actor(session, requester_id, "accounts.manage")
    name = require_text(username, "username", 64)
    if role not in ROLES:
        raise InvalidInput(f"account {name!r}: role {role!r} is not one of {ROLES}")
    if session.scalar(sa.select(Reader.id).where(Reader.username == name)) is not None:
        raise InvalidInput(f"account {name!r} already exists")
    account = Reader(username=name, display_name=require_text(display_name or name, "display name", 128), role=role)
    if password is not None:
        set_password(account, password)
    session.add(account)
    session.flush()
    record(
        session,
        actor=actor,
        action="account.created",
        entity="readers",
        entity_id=account.id,
        detail={"username": name, "role": role, "has_password": password is not None},
    )
    return account


def sign_in(
    session: Session, username: str, password: str | None, *, passwordless_allowed: bool = False
) -> Reader | None:
    """The account if the credentials are right, else None; both outcomes are audited.

    Args:
        session: the caller's session; commit it whatever the outcome, to keep the record.
        username: the login name typed.
        password: the password typed, or None to sign in without one.
        passwordless_allowed: the site's single-user setting; only then may an account that has
            no password sign in with ``password=None``.

    Returns:
        The account, or None (unknown account, wrong or missing password).
    """
    name = (username or "").strip()[:64]
    account = session.scalar(sa.select(Reader).where(Reader.username == name)) if name else None
    if password is None:
        ok = passwordless_allowed and account is not None and account.password_hash is None
        reason = "no password given" if account is not None else "unknown account"
        method = "passwordless"
    else:
        ok = authenticate(session, name, password) is not None
        if account is None:
            reason = "unknown account"
        else:
            reason = "wrong password" if account.password_hash else "account has no password"
        method = "password"
    if ok and account is not None:
        record(session, actor=account.username, action=SIGNED_IN, entity="readers", entity_id=account.id,
               detail={"method": method})
        return account
    record(
        session,
        actor=account.username if account is not None else "unknown",
        action="account.sign_in_failed",
        entity="readers",
        entity_id=account.id if account is not None else None,
        detail={"username": name, "reason": reason, "method": method},
    )
    return None


def change_password(
    session: Session,
    requester_id: int | None,
    account_id: int,
    new_password: str,
    *,
    old_password: str | None = None,
) -> None:
    """Set an account's password: its owner with the old password, an administrator, or the
    command line.

    Raises:
        NotAllowed: another account that is not an administrator, or a wrong old password.
        InvalidInput: the new password is too short.
    """
    account = get_reader(session, account_id)
    if requester_id == account_id and account.role != "admin":
        if account.password_hash is not None and not verify_password(account, old_password or ""):
            raise NotAllowed(f"{account.username!r}: the old password is wrong")
        actor = account.username
    else:
        actor = _actor(session, requester_id, "accounts.manage")
    set_password(account, new_password)
    record(session, actor=actor, action="account.password_changed", entity="readers", entity_id=account.id)


def list_accounts(session: Session) -> list[Account]:
    """Every account, by username, without hashes (the sign-in screen's choices)."""
    rows = session.scalars(sa.select(Reader).order_by(Reader.username))
    return [Account(r.id, r.username, r.display_name, r.role, r.password_hash is not None) for r in rows]


def last_signed_in(session: Session) -> str | None:
    """The username of the latest successful sign-in (preselected at the next start), or None."""
    query = sa.select(AuditEvent.actor).where(AuditEvent.action == SIGNED_IN).order_by(AuditEvent.id.desc()).limit(1)
    return session.scalar(query)
