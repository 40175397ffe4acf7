"""Who is acting: the account rules of the command line and of the window's sign-in.

The rules (README, "Reader studies"):

* An account signs in with its password (scrypt, ``db.readers``). An account created without a
  password signs in only in single-user mode (``SALIENCE_SINGLE_USER=1``), a site's setting for a
  workstation one person uses. Every attempt, failed ones included, is in the audit log.
* A command that acts for a person (``salience study ...``; ``salience user add`` once an
  administrator exists) names the account with ``--as NAME`` (default: ``SALIENCE_READER``, else
  the OS account name) and asks for its password: a hidden prompt at a terminal, else the first
  line of standard input. A password is never a command-line argument.
* Until the database has an administrator, ``salience user add`` runs as the command line itself
  (``system`` in the audit log): whoever holds the database sets up its first accounts.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings
from db.accounts import Account, create_account, list_accounts, sign_in
from db.errors import DbError
from db.permissions import allowed
from engine.errors import SalienceError

PasswordReader = Callable[[str], str]


def read_password(prompt: str, *, confirm: bool = False) -> str:
    """A password from a hidden prompt at a terminal, else the next line of standard input.

    Raises:
        SalienceError: standard input ended, or the two typed passwords differ.
    """
    if sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != password:
            raise SalienceError("the two passwords differ")
        return password
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise SalienceError(f"{prompt.rstrip(': ')}: no password on standard input (one line per password)")
    return line.rstrip("\r\n")


def find_account(factory: sessionmaker[Session], username: str) -> Account | None:
    """The account with this user name, or None."""
    with factory() as session:
        return next((a for a in list_accounts(session) if a.username == username), None)


def act_as(
    factory: sessionmaker[Session],
    settings: Settings,
    username: str | None,
    permission: str | None = None,
    *,
    password_reader: PasswordReader = read_password,
) -> Account:
    """Sign in the account a command acts for (audited), checking ``permission`` if given.

    Args:
        factory: sessions on the migrated database.
        settings: single-user mode, and the default account (``settings.reader``).
        username: ``--as``; None uses ``settings.reader``.
        permission: a ``db.permissions`` name the account's role must have.
        password_reader: how the password is asked for.

    Raises:
        SalienceError: no such account, a wrong or missing password, or a role without the
            permission (one line).
    """
    name = username or settings.reader
    account = find_account(factory, name)
    if account is None:
        raise SalienceError(f"no account named {name!r}: pass --as with your user name (`salience user add` creates accounts)")
    password = password_reader(f"password for {name}: ") if account.has_password else None
    with factory.begin() as session:  # committed either way: the attempt is audited
        signed_in = sign_in(session, name, password, passwordless_allowed=settings.single_user)
    if signed_in is None:
        why = "wrong password" if account.has_password else (
            "the account has no password and single-user mode (SALIENCE_SINGLE_USER=1) is off")
        raise SalienceError(f"account {name!r} could not sign in: {why}")
    if permission is not None and not allowed(account.role, permission):
        raise SalienceError(f"account {name!r} ({account.role}) may not do this ({permission})")
    return account


def add_account(
    factory: sessionmaker[Session],
    settings: Settings,
    username: str,
    role: str,
    *,
    acting: str | None,
    no_password: bool,
    password_reader: PasswordReader = read_password,
    new_password: PasswordReader | None = None,
) -> Account:
    """``salience user add``: create an account, as the command line until an administrator
    exists, then as the administrator named by ``acting``. The new password is typed twice at a
    terminal (``new_password`` replaces how it is asked for).

    Raises:
        SalienceError: ``no_password`` outside single-user mode, a refused administrator, a
            taken name, an unknown role, a short password.
    """
    if no_password and not settings.single_user:
        raise SalienceError("--no-password is only for single-user mode (set SALIENCE_SINGLE_USER=1)")
    with factory() as session:
        has_admin = any(a.role == "admin" for a in list_accounts(session))
    requester = None
    if has_admin or acting is not None:
        requester = act_as(factory, settings, acting, "accounts.manage", password_reader=password_reader).id
    ask = new_password or (lambda prompt: read_password(prompt, confirm=True))
    password = None if no_password else ask(f"password for the new account {username}: ")
    try:
        with factory.begin() as session:
            create_account(session, requester, username=username, role=role, password=password)
    except DbError as exc:
        raise SalienceError(str(exc)) from None
    created = find_account(factory, username.strip())
    assert created is not None
    return created
