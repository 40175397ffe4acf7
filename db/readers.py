"""Reader accounts, their roles, and salted scrypt password hashes.

Passwords are hashed with scrypt (Percival, "Stronger key derivation via sequential
memory-hard functions", BSDCan 2009) through ``hashlib.scrypt``, with a random 16-byte salt per
password. The cost parameters are stored in the hash, so they can be raised later without
breaking existing accounts, and hashes are compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.orm import Session

from db._checks import require_text
from db._rows import fetch, insert_or_fetch
from db.errors import InvalidInput
from db.models import ROLES, Reader

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 8
_SCHEME = "scrypt"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r + 2**20
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A salted scrypt hash, ``"scrypt$n=..,r=..,p=..$<salt>$<key>"`` (base64).

    Raises:
        InvalidInput: the password is shorter than ``MIN_PASSWORD_LENGTH`` characters.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password: at least {MIN_PASSWORD_LENGTH} characters are required")
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"{_SCHEME}$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"


def check_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (from ``hash_password``), in constant time.

    Raises:
        InvalidInput: ``stored_hash`` is not a hash this module wrote.
    """
    try:
        scheme, cost, salt_b64, key_b64 = stored_hash.split("$")
        params = dict(item.split("=") for item in cost.split(","))
        n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        salt, expected = base64.b64decode(salt_b64, validate=True), base64.b64decode(key_b64, validate=True)
    except (ValueError, KeyError) as error:
        raise InvalidInput(f"stored password hash is malformed ({error})") from None
    if scheme != _SCHEME or not expected:
        raise InvalidInput(f"stored password hash uses scheme {scheme!r}, expected {_SCHEME!r}")
    candidate = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(candidate, expected)


def set_password(reader: Reader, password: str) -> None:
    """Give ``reader`` a new password (stored as a salted scrypt hash; the caller commits)."""
    reader.password_hash = hash_password(password)


def verify_password(reader: Reader, password: str) -> bool:
    """Whether ``password`` is ``reader``'s password; always False for an account without one."""
    if reader.password_hash is None:
        return False
    return check_password(reader.password_hash, password)


def get_or_create_reader(
    session: Session, *, username: str, display_name: str | None = None, role: str = "reader"
) -> Reader:
    """The account with this username, created first (with no password) if it is new.

    An existing account is returned unchanged, whatever ``display_name`` and ``role`` say, so
    this can never raise an account's role.

    Raises:
        InvalidInput: an empty username or an unknown role.
    """
    name = require_text(username, "username", 64)
    existing = session.scalar(sa.select(Reader).where(Reader.username == name))
    if existing is not None:
        return existing
    if role not in ROLES:
        raise InvalidInput(f"reader {name!r}: role {role!r} is not one of {ROLES}")
    reader = Reader(username=name, display_name=require_text(display_name or name, "display name", 128), role=role)
    return insert_or_fetch(session, reader, sa.select(Reader).where(Reader.username == name))


def get_reader(session: Session, reader_id: int) -> Reader:
    """The account with this id.

    Raises:
        NotFound: no such account.
    """
    return fetch(session, Reader, reader_id, "reader")


def authenticate(session: Session, username: str, password: str) -> Reader | None:
    """The account if ``password`` is its password, else None (unknown user, wrong password).

    An unknown username costs one scrypt like a known one, so timing does not reveal accounts.
    """
    reader = session.scalar(sa.select(Reader).where(Reader.username == username.strip()))
    if reader is None or reader.password_hash is None:
        _scrypt(password, b"\0" * SALT_BYTES, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
        return None
    return reader if check_password(reader.password_hash, password) else None


def require_role(session: Session, reader_id: int, allowed: Collection[str]) -> Reader:
    """The account, if its role is one of ``allowed``.

    Raises:
        NotFound: no such account.
        PermissionError: the account's role is not allowed.
    """
    reader = get_reader(session, reader_id)
    if reader.role not in allowed:
        raise PermissionError(
            f"reader {reader.username!r} has role {reader.role!r}; this needs one of {sorted(allowed)}"
        )
    return reader
