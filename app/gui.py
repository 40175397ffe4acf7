"""Start the workstation window."""

from __future__ import annotations

import logging
import os
import sys

from app.logs import configure_logging
from app.settings import Settings

log = logging.getLogger(__name__)


def _route_qt_messages() -> None:
    """Qt's own warnings (a platform plugin's complaints) go to the log like any library's."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}
    qInstallMessageHandler(lambda kind, _context, message: qt_log.log(levels.get(kind, logging.WARNING), "%s", message))


def install_excepthook(window) -> None:
    """An exception raised in a GUI-thread slot is shown and logged; the window stays up."""

    def hook(kind, error, trace):
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, trace)
            return
        log.error("uncaught exception in the window", exc_info=(kind, error, trace))
        try:
            window.show_error("Unexpected error", error)
        except Exception:  # the dialog itself failed: the log still has it
            log.exception("could not show the error dialog")

    sys.excepthook = hook


def sign_in(settings: Settings, factory, reader: str | None):
    """Ask who is signing in (``ui.study.sign_in.SignInDialog``); the workstation of that
    account, or None when the dialog was closed."""
    from app.sign_in import SignInDesk
    from app.workstation import SalienceWorkstation
    from ui.study.sign_in import SignInDialog

    dialog = SignInDialog(SignInDesk(factory, settings, preferred=reader or os.environ.get("SALIENCE_READER")))
    if dialog.exec() != SignInDialog.DialogCode.Accepted or dialog.reader is None:
        return None
    return SalienceWorkstation(settings, factory, dialog.reader.id)


def run(reader: str | None = None, open_path: str | None = None, verbose: bool = False) -> int:
    """Start the window: migrate, ask who is signing in, show the workstation of that account."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.startup import open_database
    from ui.main_window import MainWindow
    from ui.theme import apply_reading_room_theme

    settings = Settings.from_env(reader=reader)
    settings.ensure_home()
    configure_logging(settings.log_file, verbose=verbose)
    _route_qt_messages()
    factory = open_database(settings)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Salience")
    apply_reading_room_theme(app)
    workstation = sign_in(settings, factory, reader)
    if workstation is None:
        return 0
    window = MainWindow(workstation, settings=QSettings(str(settings.home / "viewer.ini"), QSettings.Format.IniFormat))
    install_excepthook(window)
    window.resize(1400, 900)
    window.show()
    if open_path:
        window.open_path(open_path)
    return app.exec()
