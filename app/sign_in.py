"""``SignInDesk``: the window's sign-in (``ui.backend.SignIn``) over the accounts in the database,
by the rules of ``app.accounts`` (a password; none only in single-user mode; every attempt audited)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings
from db.accounts import Account, create_account, last_signed_in, list_accounts, sign_in
from db.errors import DbError
from engine.errors import SalienceError
from ui.backend import ReaderInfo


class SignInDesk:
    """The window's sign-in (``ui.backend.SignIn``) over the accounts in the database.

    Args:
        factory: sessions on the migrated database.
        settings: whether single-user mode is on, and the OS account's name.
        preferred: the account to preselect (``salience gui --reader``); None: the last one
            signed in, else the OS account's name.
    """

    def __init__(self, factory: sessionmaker[Session], settings: Settings, preferred: str | None = None) -> None:
        self._sessions = factory
        self._settings = settings
        self._preferred = preferred

    @property
    def single_user(self) -> bool:
        return self._settings.single_user

    def accounts(self) -> list[Account]:
        with self._sessions() as session:
            return list_accounts(session)

    def preselected(self) -> str | None:
        if self._preferred:
            return self._preferred
        with self._sessions() as session:
            return last_signed_in(session) or self._settings.reader

    def sign_in(self, username: str, password: str | None) -> ReaderInfo | None:
        with self._sessions.begin() as session:
            account = sign_in(session, username, password, passwordless_allowed=self.single_user)
            return None if account is None else ReaderInfo(account.id, account.display_name or account.username, account.role)

    def create_first_account(self, username: str, password: str | None) -> ReaderInfo:
        """Create the first account, an administrator, and sign it in.

        Raises:
            SalienceError: accounts exist already, no password outside single-user mode, a
                short password or an empty name.
        """
        if self.accounts():
            raise SalienceError("accounts exist already: an administrator adds new ones")
        if password is None and not self.single_user:
            raise SalienceError("a password is needed (single-user mode, SALIENCE_SINGLE_USER=1, is off)")
        try:
            with self._sessions.begin() as session:
                create_account(session, None, username=username, role="admin", password=password)
        except DbError as exc:
            raise SalienceError(str(exc)) from None
        reader = self.sign_in(username.strip(), password)
        assert reader is not None
        return reader
