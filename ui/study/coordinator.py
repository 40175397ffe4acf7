"""The coordinator's "Studies" view: every study, its progress per reader, arm and session, who
is behind; create a study from a study file, open and close studies.

Progress comes from ``db.study_progress.study_status`` (through the workstation): counts and
times, never an answer, so results stay unseen until the study is closed.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView, QDockWidget, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from db.studies import StudySummary
from engine.errors import SalienceError
from ui.workers import Task

STUDY_COLUMNS = ("Id", "Name", "Design", "Status", "Readers", "Cases")


def _table(columns: tuple[str, ...] | list[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))


def progress_rows(status: dict) -> tuple[list[str], list[list[str]]]:
    """The status table: one row per reader, with a column per arm and (if several) per session."""
    arms = [a["name"] for a in status["arms"]]
    sessions = [str(s["number"]) for s in status["sessions"]]
    columns = ["Reader", "Submitted", "In progress", "Not started", *[f"arm {a}" for a in arms]]
    if len(sessions) > 1:
        columns += [f"session {s}" for s in sessions]
    columns += ["Last activity", "Days idle"]
    rows = []
    for reader in status["readers"]:
        row = [reader["reader"], f"{reader['submitted']} / {reader['assigned']}", str(reader["in_progress"]),
               str(reader["not_started"])]
        row += [f"{reader['by_arm'][a]['submitted']} / {reader['by_arm'][a]['assigned']}" for a in arms]
        if len(sessions) > 1:
            row += [f"{reader['by_session'][s]['submitted']} / {reader['by_session'][s]['assigned']}" for s in sessions]
        last = reader["last_activity"]
        row += [last[:16].replace("T", " ") if last else "never",
                "" if reader["days_idle"] is None else f"{reader['days_idle']:.1f}"]
        rows.append(row)
    return columns, rows


def behind_text(status: dict) -> str:
    """Who is behind the median reader, fewest submitted first."""
    if not status["behind"]:
        return "Nobody is behind." if status["readers"] else "No readers yet: assign some (salience study assign)."
    parts = [f"{b['reader']} ({b['submitted']} of {b['assigned']}; median {b['median_submitted']:g}"
             + (f"; idle {b['days_idle']:.1f} days)" if b["days_idle"] is not None else "; not started)")
             for b in status["behind"]]
    return "Behind: " + ", ".join(parts)


class StudiesPanel(QWidget):
    """The list of studies and the selected one's progress.

    Signals:
        selected(study_id): a study was picked in the list.
    """

    selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summaries: list[StudySummary] = []
        self.studies = _table(STUDY_COLUMNS)
        self.studies.setMinimumHeight(110)
        self.headline = QLabel()
        self.headline.setWordWrap(True)
        self.progress = _table(["Reader"])
        self.behind = QLabel()
        self.behind.setWordWrap(True)
        self.new_button = QPushButton("New from file\u2026")
        self.open_button = QPushButton("Open")
        self.close_button = QPushButton("Close")
        self.refresh_button = QPushButton("Refresh")
        self.report_button = QPushButton("Report\u2026")  # the dashboard of a closed study
        buttons = QHBoxLayout()
        for button in (self.new_button, self.open_button, self.close_button, self.report_button, self.refresh_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.studies, 1)
        layout.addWidget(self.headline)
        layout.addWidget(self.progress, 2)
        layout.addWidget(self.behind)
        self.studies.itemSelectionChanged.connect(self._picked)

    def set_studies(self, summaries: list[StudySummary], keep: int | None = None) -> None:
        self.summaries = list(summaries)
        self.studies.blockSignals(True)
        _fill(self.studies, [[str(s.id), s.name, s.design, s.status, str(s.readers), str(s.cases)] for s in summaries])
        self.studies.blockSignals(False)
        ids = [s.id for s in summaries]
        if ids:
            self.studies.selectRow(ids.index(keep) if keep in ids else 0)
        self._buttons()

    def current(self) -> StudySummary | None:
        row = self.studies.currentRow()
        return self.summaries[row] if 0 <= row < len(self.summaries) else None

    def set_status(self, status: dict | None) -> None:
        if status is None:
            self.headline.clear()
            self.progress.setRowCount(0)
            self.behind.clear()
            return
        study, totals = status["study"], status["totals"]
        opens = ", ".join(f"session {s['number']} opens {s['opens_on'] or 'when opened'}" for s in status["sessions"])
        self.headline.setText(
            f"<b>{study['name']}</b> ({study['design']}, {study['status']}): {status['cases']} cases, "
            f"{totals['submitted']} of {totals['assigned']} readings submitted, {totals['in_progress']} in progress. {opens}.")
        columns, rows = progress_rows(status)
        self.progress.setColumnCount(len(columns))
        self.progress.setHorizontalHeaderLabels(columns)
        _fill(self.progress, rows)
        self.behind.setText(behind_text(status))

    def _buttons(self) -> None:
        current = self.current()
        self.open_button.setEnabled(current is not None and current.status == "draft")
        self.close_button.setEnabled(current is not None and current.status != "closed")
        self.report_button.setEnabled(current is not None and current.status == "closed")

    def _picked(self) -> None:
        self._buttons()
        current = self.current()
        if current is not None:
            self.selected.emit(current.id)


class StudyCoordinatorMode(QObject):
    """Adds the "Studies" dock and File > New study from file... to ``window``."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window, self.workstation = window, window.workstation
        self.panel = StudiesPanel()
        self._create_task: Task | None = None
        dock = QDockWidget("Studies", window)
        dock.setObjectName("Studies")
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        dock.setWidget(self.panel)
        self.panel.setMinimumWidth(420)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        demo = next((d for d in window.findChildren(QDockWidget) if d.objectName() == "Demo cases"), None)
        if demo is not None:  # one tab each, the studies in front: a coordinator's first business
            window.tabifyDockWidget(demo, dock)
            dock.raise_()
        self.dock = dock
        self.new_action = QAction("New study from file\u2026", window)
        self.new_action.triggered.connect(self.choose_study_file)
        file_menu = next((a.menu() for a in window.menuBar().actions() if a.menu() and a.text() == "&File"), None)
        if file_menu is not None:
            quit_action = next((a for a in file_menu.actions() if a.text() == "&Quit"), None)
            file_menu.insertAction(quit_action, self.new_action)
        self.panel.new_button.clicked.connect(self.choose_study_file)
        self.panel.open_button.clicked.connect(lambda: self.open_selected())
        self.panel.close_button.clicked.connect(lambda: self.close_selected())
        self.panel.refresh_button.clicked.connect(lambda: self.refresh())
        self.panel.report_button.clicked.connect(lambda: self.show_report())
        self.dashboards: list[QWidget] = []  # open report windows (kept alive while shown)
        self.panel.selected.connect(self.show_status)
        self.refresh()

    def refresh(self, keep: int | None = None) -> None:
        """Reload the list of studies (keeping the selection) and the selected one's progress."""
        current = self.panel.current()
        try:
            self.panel.set_studies(self.workstation.studies(), keep if keep is not None else current and current.id)
        except SalienceError as exc:
            self.window.show_error("The studies could not be listed", exc)
            return
        selected = self.panel.current()
        self.show_status(selected.id if selected is not None else None)

    def show_status(self, study_id: int | None) -> None:
        if study_id is None:
            self.panel.set_status(None)
            return
        try:
            self.panel.set_status(self.workstation.study_status(study_id))
        except SalienceError as exc:
            self.window.show_error("The study's progress could not be loaded", exc)

    def choose_study_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "New study from a study file", "",
                                              "Study files (*.yaml *.yml *.json);;All files (*)")
        if path:
            self.create_from_file(path)

    def create_from_file(self, path: str) -> Task:
        """Create a draft study from ``path`` in a worker (its AI output is frozen there)."""
        task = self.window.runner.start("Creating the study", self.workstation.create_study_from_file, path)
        self._create_task = task
        self.window.open_progress.follow(task)
        self.window.statusBar().showMessage("Creating the study: reading each case and freezing the AI output\u2026")

        def created(summary: dict) -> None:
            self.refresh(keep=summary["study_id"])
            self.window.statusBar().showMessage(
                f"Study {summary['study_id']} \u201c{summary['name']}\u201d created as a draft: {summary['cases']} cases, "
                f"{len(summary['readers'])} readers. Assign readers and open it to start.", 15000)

        task.finished.connect(created)
        task.failed.connect(lambda exc: self.window.show_error("The study was not created", exc))
        return task

    def open_selected(self) -> bool:
        current = self.panel.current()
        if current is None:
            return False
        try:
            self.workstation.open_study(current.id)
        except SalienceError as exc:
            self.window.show_error("The study was not opened", exc)
            return False
        self.refresh(keep=current.id)
        self.window.statusBar().showMessage(f"Study {current.id} is open to its readers.", 8000)
        return True

    def close_selected(self, confirm: bool = True) -> bool:
        current = self.panel.current()
        if current is None:
            return False
        if confirm:
            answer = QMessageBox.question(
                self.window, "Close the study",
                f"Close \u201c{current.name}\u201d? Its readers can no longer answer and it becomes read-only.")
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            self.workstation.close_study(current.id)
        except SalienceError as exc:
            self.window.show_error("The study was not closed", exc)
            return False
        self.refresh(keep=current.id)
        return True

    def show_report(self) -> Task | None:
        """Compute the selected closed study's report in a worker and show it in a dashboard."""
        current = self.panel.current()
        if current is None:
            return None
        task = self.window.runner.start("Computing the study report", self.workstation.study_report, current.id)
        self.window.open_progress.follow(task)

        def computed(report) -> None:
            from ui.study_dashboard import StudyDashboard

            dashboard = StudyDashboard(report)
            dashboard.setWindowFlag(Qt.WindowType.Window)
            dashboard.resize(1100, 800)
            dashboard.show()
            self.dashboards.append(dashboard)

        task.finished.connect(computed)
        task.failed.connect(lambda exc: self.window.show_error("The study report could not be made", exc))
        return task
