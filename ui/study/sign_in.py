"""``SignInDialog``: who is signing in, asked when the window starts.

The accounts come from the database (``SignIn.accounts``), the last one signed in preselected.
An account without a password signs in without one only in single-user mode (a site's
setting). A wrong password is refused and audited by the data layer; the dialog stays open.
On a database with no account yet it creates the first one, an administrator.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget,
)

from engine.errors import SalienceError
from ui.backend import ReaderInfo, SignIn

ROLE_TEXT = {"reader": "reader", "coordinator": "study coordinator", "admin": "administrator"}


class SignInDialog(QDialog):
    """Sign in, or create the first account.

    Attributes:
        reader: the signed-in account once the dialog is accepted.
        first_run: True when there were no accounts and the dialog creates the first.
    """

    def __init__(self, desk: SignIn, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self.reader: ReaderInfo | None = None
        self.setWindowTitle("Salience \u2014 sign in")
        self.accounts = desk.accounts()
        self.first_run = not self.accounts
        self.intro = QLabel()
        self.intro.setWordWrap(True)
        self.account_box = QComboBox()
        self.new_name = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.again = QLineEdit()
        self.again.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff8a80;")
        form = QFormLayout()
        if self.first_run:
            self.intro.setText("No accounts yet. Create the first one: an administrator, who then adds readers "
                               "and coordinators (salience user add).")
            self.new_name.setText(desk.preselected() or "")
            form.addRow("User name", self.new_name)
            form.addRow("Password", self.password)
            form.addRow("Again", self.again)
        else:
            self.intro.setText("Who is reading?")
            for account in self.accounts:
                self.account_box.addItem(f"{account.display_name} ({ROLE_TEXT.get(account.role, account.role)})",
                                         account.username)
            index = self.account_box.findData(desk.preselected())
            self.account_box.setCurrentIndex(max(index, 0))
            form.addRow("Account", self.account_box)
            form.addRow("Password", self.password)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create and sign in" if self.first_run else "Sign in")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Quit")
        self.buttons.accepted.connect(self.attempt)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.account_box.currentIndexChanged.connect(lambda _index: self._password_state())
        self._password_state()
        self.setMinimumWidth(420)

    def chosen(self) -> str:
        """The user name chosen or typed."""
        return (self.new_name.text() if self.first_run else self.account_box.currentData() or "").strip()

    def _password_state(self) -> None:
        if self.first_run:
            self.password.setPlaceholderText("may stay empty (single-user mode)" if self.desk.single_user else "8 characters or more")
            return
        account = next((a for a in self.accounts if a.username == self.chosen()), None)
        passwordless = account is not None and not account.has_password
        self.password.setEnabled(not passwordless)
        self.password.setPlaceholderText(
            ("no password needed (single-user mode)" if self.desk.single_user else "this account has no password")
            if passwordless else "")
        self.password.setFocus()

    def attempt(self) -> bool:
        """Sign in (or create the first account) with what is typed; True when accepted."""
        password = self.password.text() or None
        try:
            if self.first_run:
                if password != (self.again.text() or None):
                    self.message.setText("The two passwords differ.")
                    return False
                reader = self.desk.create_first_account(self.chosen(), password)
            else:
                reader = self.desk.sign_in(self.chosen(), password)
        except SalienceError as exc:
            self.message.setText(str(exc))
            return False
        if reader is None:
            account = next((a for a in self.accounts if a.username == self.chosen()), None)
            self.message.setText("Wrong password." if account is not None and account.has_password else
                                 "This account has no password; it signs in only in single-user mode. "
                                 "Ask an administrator to set a password.")
            self.password.clear()
            self.password.setFocus()
            return False
        self.reader = reader
        self.accept()
        return True
