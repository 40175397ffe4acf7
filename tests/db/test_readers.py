"""Reader accounts: roles and salted scrypt passwords."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from db.errors import InvalidInput
from db.models import Reader
from db.readers import (
    authenticate,
    check_password,
    get_or_create_reader,
    hash_password,
    set_password,
    verify_password,
)


def test_password_hash_is_salted_and_verifies_only_the_right_password() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$n=32768,r=8,p=1$")
    assert check_password(first, "correct horse") and check_password(second, "correct horse")
    assert not check_password(first, "correct hors")


def test_short_password_and_foreign_hash_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 8 characters"):
        hash_password("short")
    with pytest.raises(InvalidInput, match="scheme 'pbkdf2'"):
        check_password("pbkdf2$n=1,r=1,p=1$AAAA$AAAA", "whatever!")
    with pytest.raises(InvalidInput, match="malformed"):
        check_password("scrypt$garbage", "whatever!")


def test_passwords_are_stored_hashed_and_authenticate(factory) -> None:
    with factory.begin() as session:
        reader = get_or_create_reader(session, username="alice", display_name="Dr Alice")
        assert not verify_password(reader, "anything at all")  # no password yet
        set_password(reader, "s3cret-enough")
    with factory() as session:
        stored = session.scalars(sa.select(Reader.password_hash)).one()
        assert "s3cret-enough" not in stored
        assert authenticate(session, "alice", "s3cret-enough").display_name == "Dr Alice"
        assert authenticate(session, "alice", "s3cret-enougH") is None
        assert authenticate(session, "nobody", "s3cret-enough") is None


def test_get_or_create_never_changes_an_existing_role(factory) -> None:
    with factory.begin() as session:
        first = get_or_create_reader(session, username="bob")
        again = get_or_create_reader(session, username=" bob ", role="admin")
        assert (again.id, again.role, again.display_name) == (first.id, "reader", "bob")
        with pytest.raises(InvalidInput, match="role 'root' is not one of"):
            get_or_create_reader(session, username="eve", role="root")


def test_database_check_rejects_unknown_roles(factory) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="ck_readers_role"):
        with factory.begin() as session:
            session.add(Reader(username="eve", display_name="Eve", role="superuser"))
