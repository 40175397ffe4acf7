"""Start the workstation window."""

from __future__ import annotations

import logging
import sys

from app.settings import Settings

log = logging.getLogger(__name__)


def _log_to_file(settings: Settings) -> None:
    """Keep errors and their tracebacks in the data folder's log (never patient identifiers)."""
    handler = logging.FileHandler(settings.log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)


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


def run(reader: str | None = None, open_path: str | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from app.startup import open_workstation
    from ui.main_window import MainWindow

    settings = Settings.from_env(reader=reader)
    settings.ensure_home()
    _log_to_file(settings)
    workstation = open_workstation(settings)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Salience")
    window = MainWindow(workstation)
    install_excepthook(window)
    window.resize(1400, 900)
    window.show()
    if open_path:
        window.open_path(open_path)
    return app.exec()
