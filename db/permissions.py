"""What each role may do: one table, read by every function that checks a permission.

Readers read and answer their own assignments and nothing else; no permission here lets them
see another account's work. Coordinators run studies; the administrator also manages accounts
and may export a study that is still open (e.g. for an interim safety look).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from db.errors import NotAllowed
from db.models import ROLES, Reader
from db.readers import get_reader

PERMISSIONS: Mapping[str, frozenset[str]] = {
    "accounts.manage": frozenset({"admin"}),
    "audit.read": frozenset({"coordinator", "admin"}),
    "study.create": frozenset({"coordinator", "admin"}),
    "study.edit": frozenset({"coordinator", "admin"}),
    "study.close": frozenset({"coordinator", "admin"}),
    "study.key": frozenset({"coordinator", "admin"}),
    "study.progress": frozenset({"coordinator", "admin"}),
    "study.export": frozenset({"coordinator", "admin"}),
    "study.export_open": frozenset({"admin"}),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission``.

    Raises:
        KeyError: an unknown permission (a programming error, not a user's).
    """
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}; known: {sorted(PERMISSIONS)}")
    return role in PERMISSIONS[permission]


def permissions_of(role: str) -> frozenset[str]:
    """Every permission ``role`` has (for the window to show or hide its actions)."""
    if role not in ROLES:
        raise NotAllowed(f"role {role!r} is not one of {ROLES}")
    return frozenset(name for name, roles in PERMISSIONS.items() if role in roles)


def require_permission(session: Session, account_id: int, permission: str) -> Reader:
    """The account, if its role has ``permission``.

    Raises:
        NotFound: no such account.
        NotAllowed: the role lacks the permission.
    """
    account = get_reader(session, account_id)
    if not allowed(account.role, permission):
        raise NotAllowed(
            f"{account.username!r} ({account.role}) may not {permission}: "
            f"it needs one of {sorted(PERMISSIONS[permission])}"
        )
    return account
