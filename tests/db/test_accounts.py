"""Accounts: creation by an administrator or the command line, audited sign-in, passwords, roles."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from db.accounts import change_password, create_account, last_signed_in, list_accounts, sign_in
from db.errors import InvalidInput, NotAllowed
from db.models import AuditEvent, Reader
from db.permissions import PERMISSIONS, allowed, permissions_of, require_permission


def _events(factory, action):
    with factory() as session:
        rows = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        return [(e.actor, e.entity_id, e.detail) for e in rows]


@pytest.fixture
def accounts(any_factory):
    with any_factory.begin() as session:
        admin = create_account(session, None, username="root", role="admin", password="root-pass")
        alice = create_account(session, admin.id, username="alice", role="reader", password="alice-pass",
                               display_name="Dr Alice")
        carol = create_account(session, admin.id, username="carol", role="coordinator", password="carol-pass")
        solo = create_account(session, None, username="solo", role="reader")
        return {"admin": admin.id, "alice": alice.id, "carol": carol.id, "solo": solo.id}


def test_accounts_are_created_by_an_admin_or_the_command_line_and_audited(any_factory, accounts) -> None:
    created = _events(any_factory, "account.created")
    assert [(actor, detail["username"], detail["role"]) for actor, _, detail in created] == [
        ("system", "root", "admin"), ("root", "alice", "reader"), ("root", "carol", "coordinator"), ("system", "solo", "reader"),
    ]
    with any_factory.begin() as session:
        with pytest.raises(NotAllowed, match="'carol' \\(coordinator\\) may not accounts.manage"):
            create_account(session, accounts["carol"], username="eve", role="admin", password="eve-pass!")
        with pytest.raises(InvalidInput, match="account 'alice' already exists"):
            create_account(session, None, username="alice", role="reader", password="whatever!")
        with pytest.raises(InvalidInput, match="role 'root' is not one of"):
            create_account(session, None, username="eve", role="root", password="whatever!")
        with pytest.raises(InvalidInput, match="at least 8 characters"):
            create_account(session, None, username="eve", role="reader", password="short")
    with any_factory() as session:
        listed = list_accounts(session)
        assert [(a.username, a.role, a.has_password) for a in listed] == [
            ("alice", "reader", True), ("carol", "coordinator", True), ("root", "admin", True), ("solo", "reader", False),
        ]
        assert "alice-pass" not in session.scalar(sa.select(Reader.password_hash).where(Reader.username == "alice"))


def test_sign_in_succeeds_and_fails_on_the_record(any_factory, accounts) -> None:
    with any_factory.begin() as session:
        assert sign_in(session, " alice ", "alice-pass").display_name == "Dr Alice"
        assert sign_in(session, "alice", "alice-pasS") is None
        assert sign_in(session, "mallory", "alice-pass") is None
        assert sign_in(session, "solo", None) is None  # single-user mode is off
        assert sign_in(session, "alice", None, passwordless_allowed=True) is None  # alice has a password
        assert sign_in(session, "solo", None, passwordless_allowed=True).username == "solo"
        assert sign_in(session, "solo", "anything!") is None
    assert [(a, d["method"]) for a, _, d in _events(any_factory, "account.signed_in")] == [
        ("alice", "password"), ("solo", "passwordless"),
    ]
    assert [(a, d["username"], d["reason"]) for a, _, d in _events(any_factory, "account.sign_in_failed")] == [
        ("alice", "alice", "wrong password"),
        ("unknown", "mallory", "unknown account"),
        ("solo", "solo", "no password given"),
        ("alice", "alice", "no password given"),
        ("solo", "solo", "account has no password"),
    ]
    with any_factory() as session:
        assert last_signed_in(session) == "solo"


def test_passwords_change_with_the_old_one_or_by_an_admin(any_factory, accounts) -> None:
    with any_factory.begin() as session:
        with pytest.raises(NotAllowed, match="old password is wrong"):
            change_password(session, accounts["alice"], accounts["alice"], "new-alice-pass", old_password="nope")
        with pytest.raises(NotAllowed, match="may not accounts.manage"):
            change_password(session, accounts["carol"], accounts["alice"], "carols-choice")
        change_password(session, accounts["alice"], accounts["alice"], "new-alice-pass", old_password="alice-pass")
        change_password(session, accounts["admin"], accounts["carol"], "reset-by-root")
    with any_factory.begin() as session:
        assert sign_in(session, "alice", "new-alice-pass") is not None
        assert sign_in(session, "carol", "reset-by-root") is not None
    assert [a for a, _, _ in _events(any_factory, "account.password_changed")] == ["alice", "root"]


def test_roles_decide_permissions() -> None:
    assert permissions_of("reader") == frozenset()
    assert permissions_of("coordinator") == {
        "audit.read", "study.create", "study.edit", "study.close", "study.key", "study.progress", "study.export",
    }
    assert permissions_of("admin") == set(PERMISSIONS)
    assert not allowed("coordinator", "study.export_open") and allowed("admin", "study.export_open")
    with pytest.raises(KeyError, match="unknown permission 'study.delete'"):
        allowed("admin", "study.delete")


def test_require_permission_names_the_account_and_what_it_lacks(any_factory, accounts) -> None:
    with any_factory() as session:
        assert require_permission(session, accounts["carol"], "study.key").username == "carol"
        with pytest.raises(NotAllowed, match="'alice' \\(reader\\) may not study.key: it needs one of \\['admin', 'coordinator'\\]"):
            require_permission(session, accounts["alice"], "study.key")
