"""Start the workstation window."""

from __future__ import annotations

import sys

from app.settings import Settings


def run(reader: str | None = None, open_path: str | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from app.startup import open_workstation
    from ui.main_window import MainWindow

    settings = Settings.from_env(reader=reader)
    workstation = open_workstation(settings)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Salience")
    window = MainWindow(workstation)
    window.resize(1400, 900)
    window.show()
    if open_path:
        window.open_path(open_path)
    return app.exec()
