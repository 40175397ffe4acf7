"""``StudyWorklistPanel``: a reader's studies and their own cases, under pseudonyms, in their order.

Cases are read in order: the first unfinished case and those before it can be opened, later
ones wait (a session that is not open yet says why). Nothing here names a file or a patient:
the rows come from ``db.study_reader.Worklist``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QComboBox, QLabel, QListWidget, QListWidgetItem, QProgressBar, QVBoxLayout, QWidget

from db.study_reader import ReaderStudy, Worklist, WorklistEntry

_ENTRY = Qt.ItemDataRole.UserRole
STATE_MARK = {"submitted": "\u2713", "phase 1 locked": "\u25d1", "draft": "\u270e", "phase 2 draft": "\u270e", "new": " "}


def reachable(worklist: Worklist, entry: WorklistEntry) -> bool:
    """Whether the reader may open ``entry`` now: available, and not past their first
    unfinished case (cases are read in the reader's order)."""
    if not entry.available:
        return False
    if worklist.resume_at is None:
        return True
    resume = next(e.place for e in worklist.entries if e.assignment_id == worklist.resume_at)
    return entry.place <= resume


def entry_text(entry: WorklistEntry) -> str:
    repeat = " \u00b7 repeat" if entry.repeat else ""
    return f"{STATE_MARK.get(entry.state, ' ')} {entry.place}. {entry.pseudonym}\n      {entry.arm} \u00b7 {entry.state}{repeat}"


class StudyWorklistPanel(QWidget):
    """The study picker, the reader's progress and their cases.

    Signals:
        study_chosen(study_id): another study was picked.
        open_requested(assignment_id): the reader asked to open a case.
    """

    study_chosen = Signal(int)
    open_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worklist: Worklist | None = None
        self.study_box = QComboBox()
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m cases submitted")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.study_box)
        layout.addWidget(self.progress)
        layout.addWidget(self.note)
        layout.addWidget(self.list, 1)
        self.study_box.currentIndexChanged.connect(self._study_picked)
        self.list.itemActivated.connect(self._activated)

    def set_studies(self, studies: list[ReaderStudy], current: int | None = None) -> None:
        """List the reader's studies; pick ``current`` (else the first open one) quietly."""
        self.study_box.blockSignals(True)
        self.study_box.clear()
        for study in studies:
            self.study_box.addItem(f"{study.name} ({study.status}, {study.done}/{study.total})", study.id)
        wanted = current if current is not None else next((s.id for s in studies if s.status == "open"), None)
        self.study_box.setCurrentIndex(max(self.study_box.findData(wanted), 0))
        self.study_box.blockSignals(False)

    def current_study(self) -> int | None:
        return self.study_box.currentData()

    def set_worklist(self, worklist: Worklist, open_assignment: int | None = None) -> None:
        """Show the reader's cases of one study; the open one in bold."""
        self.worklist = worklist
        self.progress.setRange(0, max(worklist.total, 1))
        self.progress.setValue(worklist.done)
        self.note.setText("All your cases of this study are submitted. Thank you."
                          if worklist.resume_at is None and worklist.total else "")
        self.list.clear()
        for entry in worklist.entries:
            row = QListWidgetItem(entry_text(entry))
            row.setData(_ENTRY, entry)
            if not reachable(worklist, entry):
                row.setFlags(Qt.ItemFlag.NoItemFlags)
                row.setToolTip(entry.why_not or "Cases are read in order: finish the ones before it first.")
            if entry.assignment_id == open_assignment:
                font = QFont(row.font())
                font.setBold(True)
                row.setFont(font)
            self.list.addItem(row)
            if entry.assignment_id == open_assignment:
                self.list.setCurrentItem(row)

    def entries(self) -> list[WorklistEntry]:
        return [self.list.item(i).data(_ENTRY) for i in range(self.list.count())]

    def _study_picked(self, _index: int) -> None:
        study = self.current_study()
        if study is not None:
            self.study_chosen.emit(study)

    def _activated(self, row: QListWidgetItem) -> None:
        entry = row.data(_ENTRY)
        if self.worklist is not None and reachable(self.worklist, entry):
            self.open_requested.emit(entry.assignment_id)
